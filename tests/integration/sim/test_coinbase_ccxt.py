"""The real ccxt.pro `coinbase` class against the local Coinbase Advanced Trade venue over loopback: markets, REST,
streams, and the faults as ccxt 4.5.90 sees them.

What ccxt does NOT do for this venue is pinned here too, because the connector has to make up for it: it keeps no
sequence (the book's nonce stays None) and never looks at `sequence_num`, so a dropped update is merged silently;
`arb.connectors.guards.coinbase` catches it (shown through the connector's own `guarded` client).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import ccxt
import ccxt.pro as ccxtpro
import pytest

from arb.connectors.guards import guarded
from arb.connectors.guards.coinbase import CoinbaseGuard
from arb.sim.market import Book, InstrumentSpec
from arb.sim.server import SimVenue
from arb.sim.venues.coinbase import CoinbaseProtocol

from .support import (
    CONNECTOR_OPTIONS,
    SPECS,
    ccxt_client,
    check_drop_then_resync,
    check_invalid_json_stops_the_reader,
    check_minute_candles,
    configured_venue,
    eventually,
    sim_book,
    sim_venue,
    watch_until,
    watch_until_error,
)

ALL_SPECS = [*SPECS, InstrumentSpec.derive("CELO/USD", base="CELO", asset_class="crypto_alt")]
SYMBOLS = {"BTC/USD": "BTC/USD", "ETH/USD": "ETH/USD", "SOL/USD": "SOL/USD", "CELO/USD": "CELO/USD"}
QUICK: dict[str, Any] = {**CONNECTOR_OPTIONS, "rateLimit": 2}
"""The same with a 2 ms throttle step, for tests that are not about REST pacing: at coinbase's real 34 ms a v2 call
costs 360 ms of throttle, so every load_markets would add about 1.2 s."""


@asynccontextmanager
async def coinbase_venue(*, run: bool = True) -> AsyncIterator[SimVenue]:
    """A Coinbase-protocol venue on a free port; its market runs unless `run=False` (then books hold still)."""
    async with sim_venue("coinbase", CoinbaseProtocol(), SYMBOLS, specs=ALL_SPECS, run=run) as venue:
        yield venue


@asynccontextmanager
async def ccxt_coinbase(
    venue: SimVenue, cls: type[Any] = ccxtpro.coinbase, config: dict[str, Any] = QUICK
) -> AsyncIterator[Any]:
    """The real ccxt.pro coinbase class (or the connector's guarded subclass of it) talking to `venue`."""
    async with ccxt_client(venue, cls, **config) as exchange:
        yield exchange


def matches(ob: Any, book: Book) -> bool:
    """ccxt's book is the venue's book right now, level for level, stamped with its last update's time."""
    bids, asks = sim_book(book)
    return bool(ob["bids"][:20] == bids and ob["asks"][:20] == asks and ob["timestamp"] == book.ts_ns // 1_000_000)


async def watch_until_synced(exchange: Any, venue: SimVenue, symbol: str, timeout_s: float = 5.0) -> Any:
    """Watch until ccxt's book equals the venue's (ccxt keeps no nonce for coinbase, so compare the levels)."""
    book = venue.book_for_symbol(symbol)
    return await watch_until(exchange, symbol, lambda ob: matches(ob, book), timeout_s)


async def test_load_markets_lists_exactly_the_symbols_the_settings_map_to_coinbase() -> None:
    async with (
        configured_venue("coinbase") as (venue, configured),
        ccxt_coinbase(venue, config=CONNECTOR_OPTIONS) as exchange,
    ):
        markets = await exchange.load_markets()

        assert isinstance(venue.protocol, CoinbaseProtocol)
        assert set(markets) == configured
        btc = markets["BTC/USD"]
        book = venue.book_for_symbol("BTC/USD")
        assert (btc["id"], btc["spot"], btc["active"], btc["type"]) == ("BTC-USD", True, True, "spot")
        assert (btc["precision"]["price"], btc["precision"]["amount"]) == (book.tick, book.step)
        assert btc["limits"]["cost"]["min"] == 1.0
        assert markets["CELO/USD"]["id"] == "CGLD-USD"  # ccxt's CGLD -> CELO rename, reversed by the venue
        assert sorted(path for _, _, path in venue.requests) == [  # what ccxt asks for without keys
            "/api/v3/brokerage/market/products",
            "/api/v3/brokerage/market/products?product_type=FUTURE",
            "/v2/currencies",
            "/v2/currencies/crypto",
            "/v2/exchange-rates",
        ]


async def test_fetch_order_book_is_the_sim_book() -> None:
    async with coinbase_venue(run=False) as venue, ccxt_coinbase(venue) as exchange:
        ob = await exchange.fetch_order_book("ETH/USD", limit=20)

        book = venue.book_for_symbol("ETH/USD")
        assert (ob["bids"], ob["asks"]) == sim_book(book)
        assert len(ob["bids"]) == len(ob["asks"]) == 20
        assert ob["nonce"] is None  # the product book carries no sequence


async def test_fetch_ticker_and_tickers_carry_the_sim_top_of_book_and_a_sane_day() -> None:
    async with coinbase_venue(run=False) as venue, ccxt_coinbase(venue) as exchange:
        ticker = await exchange.fetch_ticker("BTC/USD")
        tickers = await exchange.fetch_tickers(["BTC/USD", "SOL/USD"])

        bid, _, ask, _ = venue.book_for_symbol("BTC/USD").top()
        assert (ticker["bid"], ticker["ask"]) == (bid, ask)
        assert bid <= ticker["last"] <= ask
        assert ticker["timestamp"] == venue.book_for_symbol("BTC/USD").ts_ns // 1_000_000
        assert set(tickers) == {"BTC/USD", "SOL/USD"}
        assert tickers["BTC/USD"]["baseVolume"] > 0
        assert bid <= tickers["BTC/USD"]["last"] <= ask
        assert -50 < tickers["SOL/USD"]["percentage"] < 50


async def test_fetch_ohlcv_gives_consecutive_candles_ending_at_the_current_price() -> None:
    async with coinbase_venue(run=False) as venue, ccxt_coinbase(venue) as exchange:
        candles = await exchange.fetch_ohlcv("SOL/USD", "1m", limit=30)
        again = await exchange.fetch_ohlcv("SOL/USD", "1m", limit=30)

        check_minute_candles(candles, venue.book_for_symbol("SOL/USD"))
        assert again == candles


async def test_watch_order_book_converges_to_the_sim_book_level_for_level() -> None:
    async with coinbase_venue() as venue, ccxt_coinbase(venue) as exchange:
        first = await exchange.watch_order_book("BTC/USD")  # resolved by the level2 snapshot
        first_ts = first["timestamp"]

        ob = await watch_until_synced(exchange, venue, "BTC/USD")

        assert ob["timestamp"] > first_ts  # updates were merged on top of the snapshot
        assert ob["nonce"] is None  # ccxt keeps no sequence for coinbase
        assert venue.stats["ws_connections"] == 1
        assert not any(path.endswith("product_book") for _, _, path in venue.requests)  # no REST snapshot


async def test_watch_order_book_for_symbols_keeps_every_book_on_one_connection() -> None:
    async with coinbase_venue() as venue, ccxt_coinbase(venue) as exchange:
        seen: set[str] = set()
        async with asyncio.timeout(5):
            while seen != {"ETH/USD", "CELO/USD"}:
                ob = await exchange.watch_order_book_for_symbols(["ETH/USD", "CELO/USD"])
                if matches(ob, venue.book_for_symbol(ob["symbol"])):
                    seen.add(ob["symbol"])

        assert len(venue.connections) == 1


async def test_watch_ticker_follows_the_sim_top_of_book() -> None:
    async with coinbase_venue() as venue, ccxt_coinbase(venue) as exchange:
        book = venue.book_for_symbol("ETH/USD")

        async def synced() -> bool:
            t = await exchange.watch_ticker("ETH/USD")
            return bool((t["bid"], t["bidVolume"], t["ask"], t["askVolume"]) == book.top())

        await eventually(synced)


async def test_ccxt_merges_across_a_skipped_sequence_num_and_the_guard_trips_on_it() -> None:
    async with coinbase_venue() as venue, ccxt_coinbase(venue) as plain:
        await watch_until_synced(plain, venue, "BTC/USD")

        venue.faults.skip_sequence(symbol="BTC/USD")
        for _ in range(10):  # ccxt 4.5.90 does not check sequence_num: no error, the book just keeps going
            await asyncio.wait_for(plain.watch_order_book("BTC/USD"), 2)

        assert venue.faults.injected["skip_sequence"] == 1

    async with coinbase_venue() as venue, ccxt_coinbase(venue, guarded(ccxtpro.coinbase, CoinbaseGuard)) as exchange:
        trips: list[str] = []
        exchange.arb_on_trip = trips.append
        await watch_until_synced(exchange, venue, "BTC/USD")

        venue.faults.skip_sequence(symbol="BTC/USD")
        await eventually(lambda: bool(trips))

        assert len(trips) == 1
        assert trips[0].startswith("seq gap ")
        assert trips[0].endswith("(l2_data BTC-USD)")
        last, new = (int(x) for x in trips[0].split()[2:5:2])
        assert new == last + 2


async def test_a_dropped_connection_fails_the_watch_and_the_next_watch_resyncs_without_tripping_the_guard() -> None:
    async with coinbase_venue() as venue, ccxt_coinbase(venue, guarded(ccxtpro.coinbase, CoinbaseGuard)) as exchange:
        trips: list[str] = []
        exchange.arb_on_trip = trips.append
        await watch_until_synced(exchange, venue, "ETH/USD")

        await check_drop_then_resync(exchange, venue, "ETH/USD", watch_until_synced)  # a fresh snapshot on it
        assert trips == []  # the new connection counts from 0 again: not a gap


async def test_an_invalid_json_frame_stops_ccxts_receive_loop_while_the_socket_stays_up() -> None:
    async with coinbase_venue() as venue, ccxt_coinbase(venue) as exchange:
        await watch_until_synced(exchange, venue, "SOL/USD")

        await check_invalid_json_stops_the_reader(exchange, venue, "SOL/USD")


@pytest.mark.parametrize("kind", ["crossed", "nan_price"])
async def test_a_bad_level_is_taken_into_ccxts_book(kind: str) -> None:
    async with coinbase_venue() as venue, ccxt_coinbase(venue) as exchange:
        await watch_until_synced(exchange, venue, "BTC/USD")

        venue.faults.malformed(kind, symbol="BTC/USD")  # type: ignore[arg-type]

        def poisoned(bids: list[list[float]], asks: list[list[float]]) -> bool:
            if kind == "nan_price":
                return any(math.isnan(p) for p, _ in bids)
            return bids[0][0] > asks[0][0]

        async with asyncio.timeout(5):
            while not poisoned((ob := await exchange.watch_order_book("BTC/USD"))["bids"], ob["asks"]):
                pass
        bids, asks = sim_book(venue.book_for_symbol("BTC/USD"))
        assert bids[0][0] < asks[0][0]
        assert not math.isnan(bids[0][0])
        assert venue.faults.injected[f"malformed_{kind}"] == 1


async def test_a_429_carries_retry_after_and_waiting_it_out_is_served() -> None:
    async with coinbase_venue(run=False) as venue, ccxt_coinbase(venue, config=CONNECTOR_OPTIONS) as exchange:
        await exchange.load_markets()
        venue.faults.rate_limit(retry_after_s=1)

        with pytest.raises(ccxt.RateLimitExceeded, match="rate_limit_exceeded"):
            await exchange.fetch_order_book("BTC/USD")
        assert exchange.last_response_headers["Retry-After"] == "1"
        await asyncio.sleep(1.0)
        ob = await exchange.fetch_order_book("BTC/USD")

        assert (ob["bids"], ob["asks"]) == sim_book(venue.book_for_symbol("BTC/USD"), depth=100)
        assert dict(venue.faults.injected) == {"http_429": 1}


async def test_maintenance_is_exchange_not_available_on_rest_and_closes_and_refuses_websockets() -> None:
    async with coinbase_venue() as venue, ccxt_coinbase(venue) as exchange:
        await watch_until_synced(exchange, venue, "ETH/USD")

        venue.faults.maintenance()

        with pytest.raises(ccxt.NetworkError):
            await watch_until_error(exchange, "ETH/USD")
        with pytest.raises(ccxt.ExchangeNotAvailable, match="503"):
            await exchange.fetch_order_book("ETH/USD")
        with pytest.raises(ccxt.NetworkError):  # the reconnect is refused with 503
            await asyncio.wait_for(exchange.watch_order_book("ETH/USD"), 5)
        venue.faults.end_maintenance()
        await watch_until_synced(exchange, venue, "ETH/USD")
        assert venue.faults.injected["ws_closed"] == 1
        assert venue.faults.injected["ws_refused"] >= 1
        assert venue.faults.injected["http_503"] >= 1


async def test_a_frozen_venue_clock_keeps_updates_coming_with_the_same_timestamp() -> None:
    async with coinbase_venue() as venue, ccxt_coinbase(venue) as exchange:
        await watch_until_synced(exchange, venue, "BTC/USD")

        venue.faults.freeze_time(5.0)
        await exchange.watch_order_book("BTC/USD")  # may still carry the time of an update sent before the freeze
        tops, stamps = set(), set()
        for _ in range(5):
            ob = await exchange.watch_order_book("BTC/USD")
            tops.add((*ob["bids"][0], *ob["asks"][0]))
            stamps.add(ob["timestamp"])

        assert len(tops) > 1  # the book moves...
        assert len(stamps) == 1  # ...stamped with one venue time (FAULTS M2)
