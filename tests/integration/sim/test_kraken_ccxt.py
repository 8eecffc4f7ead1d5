"""The real ccxt.pro `kraken` class against the local Kraken venue over loopback: markets, REST, v2 streams, faults.

What ccxt 4.5.90 does with Kraken, which is what the connector has to live with: it merges the v2 `book` stream and
trims it to the subscribed depth, but never checks the CRC32 (option off; turned on, it crashes on the first
snapshot), so a lost or corrupted update leaves a wrong book that still looks alive. `KrakenGuard`, wired in through
`arb.connectors.guards.guarded`, is what notices; the rebuild is one new connection with one subscribe.
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

from arb.connectors.guards import guard_class, guarded
from arb.sim.market import Book, InstrumentSpec, Market, MarketConfig
from arb.sim.server import SimVenue
from arb.sim.venues.kraken import LOT_DECIMALS, KrakenProtocol, book_checksum

from .support import (
    CONNECTOR_OPTIONS,
    LIVELY,
    ccxt_client,
    check_drop_then_resync,
    check_invalid_json_stops_the_reader,
    check_minute_candles,
    configured_venue,
    eventually,
    sim_venue,
    watch_until,
    watch_until_error,
)
from .support import SPECS as BTC_ETH_SOL

SPECS = [*BTC_ETH_SOL[:2], InstrumentSpec.derive("DOGE/USD", base="DOGE", asset_class="crypto_major"), BTC_ETH_SOL[2]]
"""The shared BTC, ETH and SOL with DOGE (Kraken's XDG, ccxt's DOGE) among them."""
SYMBOLS = {s.id: s.id for s in SPECS}
REST_PACE_MS = 100
"""ccxt paces Kraken REST calls 1 s apart (`rateLimit` 1000, Kraken's public limit); the tests, which are not about
pacing, space them 100 ms apart so that this file stays fast. Everything else is the connector's configuration."""


@asynccontextmanager
async def kraken_venue(
    *, config: MarketConfig = LIVELY, run: bool = True, market: Market | None = None, **venue_options: Any
) -> AsyncIterator[SimVenue]:
    """A Kraken-protocol venue on a free port; its market runs unless `run=False` (then books move only by hand)."""
    async with sim_venue(
        "kraken", KrakenProtocol(), SYMBOLS, specs=SPECS, config=config, run=run, market=market, **venue_options
    ) as venue:
        yield venue


@asynccontextmanager
async def ccxt_kraken(venue: SimVenue, exchange_cls: Any = ccxtpro.kraken, **options: Any) -> AsyncIterator[Any]:
    """The real ccxt.pro kraken class (or a guarded subclass), configured as the connector does; always closed."""
    config = {**CONNECTOR_OPTIONS, "rateLimit": REST_PACE_MS, "options": {**CONNECTOR_OPTIONS["options"], **options}}
    async with ccxt_client(venue, exchange_cls, **config) as exchange:
        yield exchange


def top(book: Book, depth: int = 10) -> tuple[list[list[float]], list[list[float]]]:
    """The venue's top `depth` levels as ccxt shows a book: [[price, amount], ...] best first."""
    bids, asks = book.levels(depth)
    return [[p, s] for p, s in bids], [[p, s] for p, s in asks]


def venue_checksum(book: Book) -> int:
    """The CRC32 Kraken puts on the venue's top 10 (wire strings per the guide)."""
    bids, asks = book.levels(10)
    pd = book.price_decimals
    return book_checksum(
        [(f"{p:.{pd}f}", f"{s:.{LOT_DECIMALS}f}") for p, s in asks],
        [(f"{p:.{pd}f}", f"{s:.{LOT_DECIMALS}f}") for p, s in bids],
    )


def ccxt_checksum(ob: Any, book: Book) -> int:
    """The same CRC32 computed from ccxt's book, written with the market's precision as Kraken writes it."""
    pd = book.price_decimals
    return book_checksum(
        [(f"{p:.{pd}f}", f"{s:.{LOT_DECIMALS}f}") for p, s in ob["asks"]],
        [(f"{p:.{pd}f}", f"{s:.{LOT_DECIMALS}f}") for p, s in ob["bids"]],
    )


async def watch_until_synced(exchange: Any, venue: SimVenue, symbol: str, timeout_s: float = 5.0, **kw: Any) -> Any:
    """Watch until ccxt's book is the venue's current top of book, level for level."""
    book = venue.book_for_symbol(symbol)
    depth = kw.get("limit") or 10
    return await watch_until(exchange, symbol, lambda ob: (ob["bids"], ob["asks"]) == top(book, depth), timeout_s, **kw)


def recording(exchange: Any) -> list[Any]:
    """Every decoded WebSocket message ccxt handles from now on (set before the first watch opens a connection)."""
    seen: list[Any] = []
    handle = exchange.handle_message

    def record(client: Any, message: Any) -> Any:
        seen.append(message)
        return handle(client, message)

    exchange.handle_message = record
    return seen


def guarded_kraken(trips: list[str]) -> Any:
    """The client the connector runs: ccxt.pro kraken behind `KrakenGuard`, reporting each trip to `trips`."""
    guard = guard_class("kraken")
    assert guard is not None
    cls = guarded(ccxtpro.kraken, guard)

    def make(config: Any) -> Any:
        exchange = cls(config)
        exchange.arb_on_trip = trips.append
        return exchange

    return make


# ---------------------------------------------------------------------------------------------------- REST


async def test_load_markets_lists_exactly_the_symbols_the_settings_map_to_kraken_under_their_kraken_ids() -> None:
    async with configured_venue("kraken") as (venue, configured), ccxt_kraken(venue) as exchange:
        markets = await exchange.load_markets()

        assert set(markets) == configured
        btc = markets["BTC/USD"]
        book = venue.book_for_symbol("BTC/USD")
        assert (btc["id"], btc["altname"], btc["wsId"], btc["base"], btc["spot"], btc["active"]) == (
            "XXBTZUSD",
            "XBTUSD",
            "XBT/USD",
            "BTC",
            True,
            True,
        )
        assert (btc["precision"]["price"], btc["precision"]["amount"]) == (book.tick, 1e-08)
        assert btc["limits"]["amount"]["min"] == book.step
        ids = {s: markets[s]["id"] for s in ("DOGE/USD", "USD/JPY", "USD/CHF", "EUR/USD")}
        assert ids == {
            "DOGE/USD": "XDGUSD",
            "USD/JPY": "ZUSDZJPY",
            "USD/CHF": "USDCHF",
            "EUR/USD": "ZEURZUSD",
        }  # LUNA/LUNC (renamed by ccxt) are not configured on Kraken: see the test of what ccxt subscribes for them
        # ccxt 4.5.90 fetches currencies whatever options.fetchCurrencies says
        assert sorted(path for _, _, path in venue.requests) == ["/0/public/AssetPairs", "/0/public/Assets"]


async def test_fetch_order_book_is_the_sim_book() -> None:
    async with kraken_venue(run=False) as venue, ccxt_kraken(venue) as exchange:
        ob = await exchange.fetch_order_book("ETH/USD", limit=100)

        book = venue.book_for_symbol("ETH/USD")
        assert ([[p, a] for p, a, _ in ob["bids"]], [[p, a] for p, a, _ in ob["asks"]]) == top(book, 100)
        assert len(ob["bids"]) == len(ob["asks"]) == 20
        assert {t for _, _, t in ob["bids"]} == {book.ts_ns // 1_000_000_000}


async def test_fetch_tickers_carry_the_sim_top_of_book_and_a_sane_day_in_one_request() -> None:
    async with kraken_venue(run=False) as venue, ccxt_kraken(venue) as exchange:
        tickers = await exchange.fetch_tickers(["BTC/USD", "DOGE/USD"])

        assert set(tickers) == {"BTC/USD", "DOGE/USD"}
        for symbol, ticker in tickers.items():
            top_ = venue.book_for_symbol(symbol).top()
            assert (ticker["bid"], ticker["bidVolume"], ticker["ask"], ticker["askVolume"]) == top_
            assert ticker["bid"] <= ticker["last"] <= ticker["ask"]
            assert ticker["low"] <= min(ticker["open"], ticker["last"]) <= ticker["high"]
            assert ticker["low"] <= ticker["vwap"] <= ticker["high"]
            assert ticker["baseVolume"] > 0
        assert venue.stats["GET /0/public/Ticker"] == 1


async def test_fetch_ohlcv_gives_consecutive_candles_ending_at_the_current_price() -> None:
    async with kraken_venue(run=False) as venue, ccxt_kraken(venue) as exchange:
        candles = await exchange.fetch_ohlcv("SOL/USD", "1m", limit=30)
        again = await exchange.fetch_ohlcv("SOL/USD", "1m", limit=30)
        since = candles[10][0]
        later = await exchange.fetch_ohlcv("SOL/USD", "1m", since=since)

        check_minute_candles(candles, venue.book_for_symbol("SOL/USD"))
        assert again == candles
        assert later == candles[10:]  # ccxt asks for `since` minus one interval; Kraken's `since` is exclusive


# ---------------------------------------------------------------------------------------------------- streams


async def test_watch_order_book_converges_to_the_sim_top_10_level_for_level() -> None:
    async with kraken_venue() as venue, ccxt_kraken(venue) as exchange:
        first = await exchange.watch_order_book("BTC/USD")  # the v2 snapshot

        ob = await watch_until_synced(exchange, venue, "BTC/USD")

        book = venue.book_for_symbol("BTC/USD")
        assert len(first["bids"]) == len(first["asks"]) == 10
        assert ob["timestamp"] == book.ts_ns // 1_000_000
        assert ccxt_checksum(ob, book) == venue_checksum(book)
        assert venue.stats["GET /0/public/Depth"] == 0  # the snapshot comes on the socket


async def test_watch_order_book_for_several_symbols_at_depth_25_gets_the_whole_book_on_one_connection() -> None:
    async with kraken_venue() as venue, ccxt_kraken(venue) as exchange:
        symbols = ["ETH/USD", "DOGE/USD"]
        seen: set[str] = set()
        async with asyncio.timeout(5):
            while seen != set(symbols):
                ob = await exchange.watch_order_book_for_symbols(symbols, limit=25)
                if (ob["bids"], ob["asks"]) == top(venue.book_for_symbol(ob["symbol"]), 25):
                    seen.add(ob["symbol"])

        assert len(ob["bids"]) == 20  # the sim's depth
        assert venue.stats["ws_connections"] == 1


async def test_levels_pushed_out_of_depth_arrive_without_deletes_and_ccxts_trimmed_book_matches_the_checksum() -> None:
    market = Market(SPECS, LIVELY)
    async with kraken_venue(run=False, market=market) as venue, ccxt_kraken(venue) as exchange:
        seen = recording(exchange)
        book = venue.book_for_symbol("BTC/USD")
        before = await exchange.watch_order_book("BTC/USD")
        old_bids = [p for p, _ in before["bids"]]

        market.inject("kraken", "BTC/USD", bps=2, duration_ms=60_000)  # new bids on top push the last ones out
        ob = await watch_until_synced(exchange, venue, "BTC/USD")

        update = next(m for m in reversed(seen) if m.get("channel") == "book" and m["type"] == "update")["data"][0]
        new_bid_prices = {level["price"] for level in update["bids"] if level["qty"] > 0}
        deleted = {level["price"] for level in update["bids"] if level["qty"] == 0}
        pushed_out = [
            p for p in old_bids if p not in {q for q, _ in ob["bids"]} and book.bids.get(round(p / book.tick))
        ]
        assert pushed_out  # still on the venue's book, no longer in its top 10...
        assert not deleted & set(pushed_out)  # ...and never deleted on the wire
        assert len(set(old_bids) | new_bid_prices) > 10  # so without trimming ccxt would hold more than 10 bids
        assert (ob["bids"], ob["asks"]) == top(book)
        assert ccxt_checksum(ob, book) == update["checksum"] == venue_checksum(book)


async def test_watch_bids_asks_follows_the_sim_top_of_book() -> None:
    async with kraken_venue() as venue, ccxt_kraken(venue) as exchange:
        book = venue.book_for_symbol("DOGE/USD")

        async def synced() -> bool:
            tickers = await exchange.watch_bids_asks(["DOGE/USD"])
            t = tickers["DOGE/USD"]
            return bool((t["bid"], t["bidVolume"], t["ask"], t["askVolume"]) == book.top())

        await eventually(synced)


async def test_ccxts_luna_usd_stream_is_krakens_luna_usd_which_ccxt_lists_as_lunc() -> None:
    specs = [InstrumentSpec.derive("LUNA/USD", base="LUNA"), InstrumentSpec.derive("LUNC/USD", base="LUNC")]
    symbols = {"LUNA/USD": "LUNA/USD", "LUNC/USD": "LUNC/USD"}
    async with (
        sim_venue("kraken", KrakenProtocol(), symbols, specs=specs, run=False) as venue,
        ccxt_kraken(venue) as exchange,
    ):
        ob = await exchange.watch_order_book("LUNA/USD")

        luna2, luna_classic = venue.book_for_symbol("LUNA/USD"), venue.book_for_symbol("LUNC/USD")
        assert (ob["bids"], ob["asks"]) == top(luna_classic)  # ccxt subscribes v2 "LUNA/USD" with its unified name
        assert (ob["bids"], ob["asks"]) != top(luna2)


# ---------------------------------------------------------------------------------------------------- faults


async def test_ccxt_ignores_a_lost_update_and_keeps_a_wrong_book_the_guard_trips_once_and_a_new_connection_heals() -> (
    None
):
    market = Market(SPECS, LIVELY)
    async with kraken_venue(run=False, market=market) as venue:
        book = venue.book_for_symbol("BTC/USD")
        async with ccxt_kraken(venue) as plain:
            await plain.watch_order_book("BTC/USD")
            venue.faults.skip_sequence(symbol="BTC/USD")
            market.inject("kraken", "BTC/USD", bps=2, duration_ms=60_000)  # withheld
            market.inject("kraken", "BTC/USD", bps=-1, duration_ms=60_000)
            ob = await plain.watch_order_book("BTC/USD")  # no error: ccxt merged it into a book missing one update
            assert (ob["bids"], ob["asks"]) != top(book)

        trips: list[str] = []
        async with ccxt_kraken(venue, exchange_cls=guarded_kraken(trips)) as exchange:
            await watch_until_synced(exchange, venue, "BTC/USD")
            venue.faults.skip_sequence(symbol="BTC/USD")
            market.inject("kraken", "BTC/USD", bps=2, duration_ms=60_000)  # withheld: its new bids never arrive
            market.inject("kraken", "BTC/USD", bps=1, duration_ms=60_000)
            await eventually(lambda: bool(trips))
            assert len(trips) == 1
            assert "checksum" in trips[0]
        connections = venue.stats["ws_connections"]

        async with ccxt_kraken(venue, exchange_cls=guarded_kraken(trips)) as rebuilt:  # what the connector does
            ob = await watch_until_synced(rebuilt, venue, "BTC/USD")
        assert venue.stats["ws_connections"] == connections + 1
        assert len(trips) == 1
        assert venue.faults.injected["skip_sequence"] == 2


async def test_a_corrupted_checksum_passes_ccxt_silently_and_trips_the_guard() -> None:
    async with kraken_venue() as venue:
        async with ccxt_kraken(venue) as plain:
            await watch_until_synced(plain, venue, "ETH/USD")
            venue.faults.bad_checksum(symbol="ETH/USD")
            await eventually(lambda: venue.faults.injected["bad_checksum"] == 1)
            await watch_until_synced(plain, venue, "ETH/USD")  # the book itself was right; ccxt never looked

        trips: list[str] = []
        async with ccxt_kraken(venue, exchange_cls=guarded_kraken(trips)) as exchange:
            await watch_until_synced(exchange, venue, "ETH/USD")
            venue.faults.bad_checksum(symbol="ETH/USD")
            await eventually(lambda: bool(trips))
        assert "checksum" in trips[0]


async def test_turning_on_ccxts_own_kraken_checksum_crashes_its_reader_at_the_first_snapshot() -> None:
    errors: list[BaseException] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: errors.append(context.get("exception")))  # type: ignore[arg-type]
    try:
        async with kraken_venue() as venue, ccxt_kraken(venue, watchOrderBook={"checksum": True}) as exchange:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(exchange.watch_order_book("BTC/USD"), 1.5)
    finally:
        loop.set_exception_handler(None)
    assert any(isinstance(e, AttributeError) and "split" in str(e) for e in errors)


@pytest.mark.parametrize(("kind", "problem"), [("crossed", "crossed"), ("nan_price", "finite numbers")])
async def test_a_bad_level_poisons_ccxts_book_and_trips_the_guard(kind: str, problem: str) -> None:
    async with kraken_venue() as venue:
        async with ccxt_kraken(venue) as plain:
            await watch_until_synced(plain, venue, "BTC/USD")
            venue.faults.malformed(kind, symbol="BTC/USD")  # type: ignore[arg-type]

            def poisoned(ob: Any) -> bool:
                bid = ob["bids"][0][0]
                return math.isnan(bid) if kind == "nan_price" else bid > ob["asks"][0][0]

            async with asyncio.timeout(3):
                while not poisoned(await plain.watch_order_book("BTC/USD")):
                    pass

        trips: list[str] = []
        async with ccxt_kraken(venue, exchange_cls=guarded_kraken(trips)) as exchange:
            await watch_until_synced(exchange, venue, "BTC/USD")
            venue.faults.malformed(kind, symbol="BTC/USD")  # type: ignore[arg-type]
            await eventually(lambda: bool(trips))
        assert problem in trips[0]


async def test_an_invalid_json_frame_stops_ccxts_receive_loop_while_the_socket_stays_up() -> None:
    async with kraken_venue() as venue, ccxt_kraken(venue) as exchange:
        await watch_until_synced(exchange, venue, "SOL/USD")

        await check_invalid_json_stops_the_reader(exchange, venue, "SOL/USD")


async def test_a_dropped_connection_fails_the_watch_and_the_next_watch_reconnects_with_a_fresh_snapshot() -> None:
    async with kraken_venue() as venue, ccxt_kraken(venue) as exchange:
        await watch_until_synced(exchange, venue, "ETH/USD")

        await check_drop_then_resync(exchange, venue, "ETH/USD", watch_until_synced)


async def test_a_429_is_ddos_protection_with_retry_after_and_coming_back_early_gets_a_lockout() -> None:
    async with kraken_venue(run=False) as venue, ccxt_kraken(venue) as exchange:
        await exchange.load_markets()
        venue.faults.rate_limit(retry_after_s=1)

        with pytest.raises(ccxt.DDoSProtection, match="EGeneral:Too many requests"):
            await exchange.fetch_order_book("BTC/USD")
        assert exchange.last_response_headers["Retry-After"] == "1"
        await asyncio.sleep(1.0)
        await exchange.fetch_order_book("BTC/USD")

        venue.faults.rate_limit(retry_after_s=30, ban_s=60)
        with pytest.raises(ccxt.DDoSProtection):
            await exchange.fetch_ticker("BTC/USD")
        with pytest.raises(ccxt.DDoSProtection, match="EGeneral:Temporary lockout"):
            await exchange.fetch_ticker("BTC/USD")
        assert exchange.last_response_headers["Retry-After"] == "60"
        assert dict(venue.faults.injected) == {"http_429": 2, "http_418": 1}


async def test_maintenance_closes_and_refuses_websockets_and_rest_says_service_unavailable() -> None:
    async with kraken_venue() as venue, ccxt_kraken(venue) as exchange:
        await watch_until_synced(exchange, venue, "ETH/USD")

        venue.faults.maintenance()

        with pytest.raises(ccxt.NetworkError):
            await watch_until_error(exchange, "ETH/USD")
        with pytest.raises(ccxt.ExchangeNotAvailable, match="EService:Unavailable"):
            await exchange.fetch_order_book("ETH/USD")
        with pytest.raises(ccxt.NetworkError):  # the reconnect is refused with 503
            await asyncio.wait_for(exchange.watch_order_book("ETH/USD"), 5)
        assert (await exchange.fetch_status())["status"] == "maintenance"
        venue.faults.end_maintenance()
        await watch_until_synced(exchange, venue, "ETH/USD")
        assert venue.faults.injected["ws_closed"] == 1
        assert venue.faults.injected["ws_refused"] >= 1
