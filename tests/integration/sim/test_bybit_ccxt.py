"""The real ccxt.pro `bybit` class against the local Bybit venue over loopback: markets, REST, streams, faults.

Each fault test states what ccxt 4.5.90 does with it, because that is what the connector has to handle. The short
of it for Bybit: ccxt checks no `u` continuity, so a lost update is merged silently into a wrong book (the
connector-side `BybitGuard` is what notices, and it is shown doing so here on the real client); a wrong-typed side is
dropped silently, NaN and crossing levels are kept, and an invalid JSON frame stops ccxt's receive loop.
ccxt's own order book for Bybit carries no nonce (`nonce` is None), so "synced" here means: the book ccxt holds is
stamped with the venue time of the book's latest change (one change per book per market step).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import ccxt
import ccxt.pro as ccxtpro
import pytest

from arb.connectors.guards import guarded
from arb.connectors.guards.bybit import BybitGuard
from arb.sim.market import MarketConfig
from arb.sim.server import SimVenue
from arb.sim.venues.bybit import BybitProtocol

from .support import (
    CONNECTOR_OPTIONS,
    LIVELY,
    SYMBOLS,
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

_MARKETS: dict[str, Any] = {}
"""ccxt's markets for SPECS, parsed from the first venue a test loaded them from (load_markets costs ~1 s of rate
limiter: 11 requests); tests about something else start from a copy of them."""


@asynccontextmanager
async def bybit_venue(
    *, config: MarketConfig = LIVELY, run: bool = True, **venue_options: Any
) -> AsyncIterator[SimVenue]:
    """A Bybit-protocol venue on a free port; its market runs unless `run=False` (then tests inject by hand)."""
    async with sim_venue("bybit", BybitProtocol(), config=config, run=run, **venue_options) as venue:
        yield venue


@asynccontextmanager
async def ccxt_bybit(venue: SimVenue, *, guard: bool = False, fresh_markets: bool = False) -> AsyncIterator[Any]:
    """The real ccxt.pro bybit class (guarded as the connector builds it, with `guard`), talking to `venue`."""
    cls = guarded(ccxtpro.bybit, BybitGuard) if guard else None
    async with ccxt_client(venue, cls, **copy.deepcopy(CONNECTOR_OPTIONS)) as exchange:
        if fresh_markets or not _MARKETS:
            markets = await exchange.load_markets()
            if not _MARKETS and set(markets) == set(SYMBOLS.values()):
                _MARKETS.update(copy.deepcopy(markets))
        else:
            exchange.set_markets(copy.deepcopy(_MARKETS))
        yield exchange


async def watch_until_synced(exchange: Any, venue: SimVenue, symbol: str, timeout_s: float = 5.0) -> Any:
    """Watch until ccxt's book carries the time of the venue book's latest change (nothing moved in between)."""
    book = venue.book_for_symbol(symbol)
    return await watch_until(exchange, symbol, lambda ob: ob["timestamp"] == book.ts_ns // 1_000_000, timeout_s)


def top20(ob: Any) -> tuple[list[list[float]], list[list[float]]]:
    return ob["bids"][:20], ob["asks"][:20]


# ------------------------------------------------------------------------------------------------ markets, REST


async def test_load_markets_lists_exactly_the_symbols_the_settings_map_to_bybit() -> None:
    async with configured_venue("bybit") as (venue, configured):
        async with ccxt_bybit(venue, fresh_markets=True) as exchange:
            markets = exchange.markets

        assert set(markets) == configured
        btc = markets["BTC/USDT"]
        book = venue.book_for_symbol("BTC/USDT")
        assert (btc["id"], btc["type"], btc["spot"], btc["active"]) == ("BTCUSDT", "spot", True, True)
        assert (btc["precision"]["price"], btc["precision"]["amount"]) == (book.tick, book.step)
        assert (btc["limits"]["amount"]["min"], btc["limits"]["cost"]["min"]) == (book.step, 5.0)
        assert sorted(path for _, _, path in venue.requests) == sorted(  # what ccxt asks for, keys or not
            [
                "/v5/market/instruments-info?category=spot",
                "/v5/market/instruments-info?category=linear&limit=1000",
                "/v5/market/instruments-info?category=linear&limit=1000&status=PreLaunch",
                "/v5/market/instruments-info?category=inverse&limit=1000",
                "/v5/market/instruments-info?category=inverse&limit=1000&status=PreLaunch",
                *(
                    f"/v5/market/instruments-info?category=option&baseCoin={coin}"
                    for coin in ("BTC", "ETH", "SOL", "XRP", "MNT", "DOGE")
                ),
            ]
        )


async def test_books_for_more_than_10_symbols_in_one_watch_are_refused_as_on_bybit_spot() -> None:
    async with configured_venue("bybit") as (venue, _):
        async with ccxt_bybit(venue, fresh_markets=True) as exchange:
            symbols = sorted(exchange.markets)[:11]

            with pytest.raises(ccxt.ExchangeError, match="args size >10"):  # ccxt sends them all in one request
                await asyncio.wait_for(exchange.watch_order_book_for_symbols(symbols), 5)
            ob = await asyncio.wait_for(exchange.watch_order_book_for_symbols(symbols[:10]), 5)

            assert ob["symbol"] in symbols[:10]
            assert ob["bids"][0][0] < ob["asks"][0][0]
            (conn,) = venue.connections
            assert len(conn.topics) == 10


async def test_fetch_order_book_is_the_sim_book() -> None:
    async with bybit_venue(run=False) as venue, ccxt_bybit(venue) as exchange:
        ob = await exchange.fetch_order_book("ETH/USDT")

        book = venue.book_for_symbol("ETH/USDT")
        assert (ob["bids"], ob["asks"]) == sim_book(book)
        assert len(ob["bids"]) == len(ob["asks"]) == 20
        assert ob["nonce"] is None  # ccxt does not keep Bybit's `u`
        assert venue.requests[-1][2] == "/v5/market/orderbook?symbol=ETHUSDT&category=spot&limit=50"


async def test_fetch_ticker_carries_the_sim_top_of_book_and_a_sane_day() -> None:
    async with bybit_venue(run=False) as venue, ccxt_bybit(venue) as exchange:
        ticker = await exchange.fetch_ticker("BTC/USDT")
        tickers = await exchange.fetch_tickers(["BTC/USDT", "SOL/USDT"])

        top = venue.book_for_symbol("BTC/USDT").top()
        assert (ticker["bid"], ticker["bidVolume"], ticker["ask"], ticker["askVolume"]) == top
        assert ticker["bid"] <= ticker["last"] <= ticker["ask"]
        assert ticker["low"] <= min(ticker["open"], ticker["last"]) <= ticker["high"]
        assert ticker["percentage"] == pytest.approx((ticker["last"] / ticker["open"] - 1) * 100, abs=0.01)
        assert ticker["baseVolume"] > 0
        assert ticker["quoteVolume"] > 0
        assert set(tickers) == {"BTC/USDT", "SOL/USDT"}
        assert tickers["SOL/USDT"]["bid"] == venue.book_for_symbol("SOL/USDT").top()[0]


async def test_fetch_ohlcv_gives_consecutive_candles_ending_at_the_current_price() -> None:
    async with bybit_venue(run=False) as venue, ccxt_bybit(venue) as exchange:
        candles = await exchange.fetch_ohlcv("SOL/USDT", "1m", limit=30)
        again = await exchange.fetch_ohlcv("SOL/USDT", "1m", limit=30)
        hourly = await exchange.fetch_ohlcv("SOL/USDT", "1h", since=candles[0][0] - 5 * 3_600_000, limit=3)

        check_minute_candles(candles, venue.book_for_symbol("SOL/USDT"))  # (ccxt sorts them oldest first)
        assert again == candles  # the same history on every request
        assert [b[0] - a[0] for a, b in itertools.pairwise(hourly)] == [3_600_000] * 2
        assert hourly[0][0] >= candles[0][0] - 5 * 3_600_000


async def test_server_time_and_a_normal_status() -> None:
    async with bybit_venue(run=False) as venue, ccxt_bybit(venue) as exchange:
        before = exchange.milliseconds()
        server_ms = await exchange.fetch_time()
        status = await exchange.fetch_status()

        assert before <= server_ms <= exchange.milliseconds()
        assert (status["status"], status["eta"]) == ("ok", None)


# ------------------------------------------------------------------------------------------------ streams


async def test_watch_order_book_converges_to_the_sim_book_level_for_level() -> None:
    async with bybit_venue() as venue, ccxt_bybit(venue) as exchange:
        first = await exchange.watch_order_book("BTC/USDT")  # resolved by the subscribe snapshot
        first_ts = first["timestamp"]

        ob = await watch_until_synced(exchange, venue, "BTC/USDT")

        book = venue.book_for_symbol("BTC/USDT")
        assert ob["timestamp"] > first_ts  # deltas were applied on top of the snapshot
        assert top20(ob) == sim_book(book)
        assert len(ob["bids"]) == len(ob["asks"]) == 20  # no level left behind
        assert not any(path.startswith("/v5/market/orderbook") for _, _, path in venue.requests)  # WS-only book


async def test_watch_bids_asks_follows_the_sim_top_of_book() -> None:
    async with bybit_venue() as venue, ccxt_bybit(venue) as exchange:
        book = venue.book_for_symbol("ETH/USDT")

        async def synced() -> bool:
            tickers = await exchange.watch_bids_asks(["ETH/USDT"])
            t = tickers["ETH/USDT"]
            return bool(
                t["timestamp"] == book.ts_ns // 1_000_000
                and (t["bid"], t["bidVolume"], t["ask"], t["askVolume"]) == book.top()
            )

        await eventually(synced)


async def test_watch_ticker_follows_the_sim_mid() -> None:
    async with bybit_venue() as venue, ccxt_bybit(venue) as exchange:
        book = venue.book_for_symbol("SOL/USDT")

        async def synced() -> bool:
            t = await exchange.watch_ticker("SOL/USDT")
            mid = book.price((book.bid_top + book.ask_top) // 2)
            return bool(t["timestamp"] == book.ts_ns // 1_000_000 and t["last"] == mid and t["low"] <= mid)

        await eventually(synced)


async def test_ccxt_pings_with_op_ping_and_the_pongs_keep_it_connected() -> None:
    async with bybit_venue() as venue, ccxt_bybit(venue) as exchange:
        exchange.streaming["keepAlive"] = 100  # ccxt's 18 s, shortened; it gives up after two unanswered
        await watch_until_synced(exchange, venue, "BTC/USDT")
        client = next(iter(exchange.clients.values()))

        await asyncio.sleep(0.6)

        assert venue.stats["ws_received"] >= 1 + 3  # the subscribe, then its pings
        assert exchange.milliseconds() - client.lastPong < 300
        await watch_until_synced(exchange, venue, "BTC/USDT")
        assert venue.stats["ws_connections"] == 1


# ------------------------------------------------------------------------------------------------ faults


async def test_ccxt_merges_a_skipped_update_silently_and_the_guard_names_the_gap() -> None:
    async with (
        bybit_venue(run=False) as venue,
        ccxt_bybit(venue) as plain,
        ccxt_bybit(venue, guard=True) as guarded_exchange,
    ):
        trips: list[str] = []
        guarded_exchange.arb_on_trip = trips.append
        await plain.watch_order_book("ETH/USDT")
        await guarded_exchange.watch_order_book("ETH/USDT")
        market, book = venue.market, venue.book_for_symbol("ETH/USDT")
        u = guarded_exchange.arb_guard.last_u["orderbook.50.ETHUSDT"]

        venue.faults.skip_sequence(symbol="ETH/USDT")
        market.inject("bybit", "ETH/USD", bps=50, duration_ms=60_000)  # withheld: the book jumps 50 bps
        market.inject("bybit", "ETH/USD", bps=1, duration_ms=60_000)
        ob = await asyncio.wait_for(plain.watch_order_book("ETH/USDT"), 2)  # no error

        assert ob["timestamp"] == book.ts_ns // 1_000_000  # ccxt took the next delta as if nothing was lost...
        assert top20(ob) != sim_book(book)  # ...and holds a wrong book
        assert ob["bids"][0][0] > ob["asks"][0][0]  # here even a crossed one: the levels the gap removed stayed
        await eventually(lambda: bool(trips))
        assert trips == [f"seq gap orderbook.50.ETHUSDT {u} -> {u + 2}"]
        assert guarded_exchange.arb_tripped == trips[0]
        with pytest.raises(TimeoutError):  # the guarded client merges nothing after the gap
            await asyncio.wait_for(guarded_exchange.watch_order_book("ETH/USDT"), 0.3)
        assert venue.faults.injected["skip_sequence"] == 1


async def test_a_new_subscription_after_a_gap_resyncs_ccxts_book() -> None:
    async with bybit_venue(run=False) as venue, ccxt_bybit(venue) as exchange:
        await asyncio.wait_for(exchange.watch_order_book("BTC/USDT"), 2)
        book = venue.book_for_symbol("BTC/USDT")
        venue.faults.skip_sequence(symbol="BTC/USDT")
        venue.market.inject("bybit", "BTC/USD", bps=50, duration_ms=60_000)  # withheld
        venue.market.inject("bybit", "BTC/USD", bps=1, duration_ms=60_000)
        wrong = await asyncio.wait_for(exchange.watch_order_book("BTC/USDT"), 2)
        assert top20(wrong) != sim_book(book)

        assert await exchange.un_watch_order_book("BTC/USDT") is True
        ob = await asyncio.wait_for(exchange.watch_order_book("BTC/USDT"), 2)  # a fresh snapshot

        assert (ob["bids"], ob["asks"]) == sim_book(book)
        assert venue.stats["ws_connections"] == 1  # the same connection


async def test_a_stall_sends_nothing_on_an_open_socket_and_the_guard_sees_the_gap_after_it() -> None:
    async with bybit_venue() as venue, ccxt_bybit(venue, guard=True) as exchange:
        await watch_until_synced(exchange, venue, "SOL/USDT")
        update_id = venue.book_for_symbol("SOL/USDT").update_id

        venue.faults.stall(0.8)

        with pytest.raises(TimeoutError):
            await asyncio.wait_for(exchange.watch_order_book("SOL/USDT"), 0.6)
        assert len(venue.connections) == 1  # silent, not closed
        assert venue.book_for_symbol("SOL/USDT").update_id > update_id  # the market moved on meanwhile
        await eventually(lambda: exchange.arb_tripped is not None)
        assert exchange.arb_tripped.startswith("seq gap orderbook.50.SOLUSDT ")
        assert venue.faults.injected["stall"] == 1


async def test_a_dropped_connection_fails_the_watch_and_the_next_watch_reconnects_and_resyncs() -> None:
    async with bybit_venue() as venue, ccxt_bybit(venue) as exchange:
        await watch_until_synced(exchange, venue, "ETH/USDT")

        ob = await check_drop_then_resync(exchange, venue, "ETH/USDT", watch_until_synced)
        assert top20(ob) == sim_book(venue.book_for_symbol("ETH/USDT"))


async def test_an_invalid_json_frame_stops_ccxts_receive_loop_while_the_socket_stays_up() -> None:
    async with bybit_venue() as venue, ccxt_bybit(venue) as exchange:
        await watch_until_synced(exchange, venue, "SOL/USDT")

        await check_invalid_json_stops_the_reader(exchange, venue, "SOL/USDT")


@pytest.mark.parametrize(
    ("kind", "guard_says"),
    [
        ("wrong_types", "bad u orderbook.50.BTCUSDT: '"),
        ("nan_price", "bad level ['NaN', "),
        ("crossed", None),  # a delta crossing the book held: the connector's check, the guard keeps no book
    ],
)
async def test_a_bad_frame_is_merged_by_ccxt_and_the_guard_refuses_what_it_can_see(
    kind: str, guard_says: str | None
) -> None:
    async with (
        bybit_venue(run=False) as venue,
        ccxt_bybit(venue) as plain,
        ccxt_bybit(venue, guard=True) as guarded_exchange,
    ):
        before = top20(await asyncio.wait_for(plain.watch_order_book("BTC/USDT"), 2))
        await asyncio.wait_for(guarded_exchange.watch_order_book("BTC/USDT"), 2)
        book = venue.book_for_symbol("BTC/USDT")

        venue.faults.malformed(kind, symbol="BTC/USDT")  # type: ignore[arg-type]
        venue.market.inject("bybit", "BTC/USD", bps=5, duration_ms=60_000)
        ob = await asyncio.wait_for(plain.watch_order_book("BTC/USDT"), 2)  # ccxt takes it without a word
        bids, asks = ob["bids"], ob["asks"]

        if kind == "wrong_types":  # the bid side's text is iterated as levels: no bid changed
            assert bids[:20] == before[0]
            assert asks[:20] != before[1]
        elif kind == "nan_price":
            assert any(math.isnan(p) for p, _ in bids)
        else:
            assert bids[0][0] > asks[0][0]
        assert sim_book(book) != (bids[:20], asks[:20])
        if guard_says is None:  # the guarded client merged it too
            await eventually(lambda: guarded_exchange.orderbooks["BTC/USDT"]["timestamp"] == ob["timestamp"])
            assert guarded_exchange.arb_tripped is None
        else:
            await eventually(lambda: guarded_exchange.arb_tripped is not None)
            assert guarded_exchange.arb_tripped.startswith(guard_says)
        assert venue.faults.injected[f"malformed_{kind}"] == 1


async def test_a_429_carries_retry_after_and_waiting_it_out_is_served_without_a_ban() -> None:
    async with bybit_venue(run=False) as venue, ccxt_bybit(venue) as exchange:
        venue.faults.rate_limit(retry_after_s=1)

        with pytest.raises(ccxt.RateLimitExceeded, match="Too many visits"):
            await exchange.fetch_order_book("BTC/USDT")
        headers = exchange.last_response_headers
        assert headers["Retry-After"] == "1"
        assert int(headers["X-Bapi-Limit-Reset-Timestamp"]) > exchange.milliseconds()
        await asyncio.sleep(1.0)
        ob = await exchange.fetch_order_book("BTC/USDT")

        assert (ob["bids"], ob["asks"]) == sim_book(venue.book_for_symbol("BTC/USDT"))
        assert dict(venue.faults.injected) == {"http_429": 1}


async def test_coming_back_before_retry_after_gets_the_403_ip_ban() -> None:
    async with bybit_venue(run=False) as venue, ccxt_bybit(venue) as exchange:
        venue.faults.rate_limit(retry_after_s=30, ban_s=60)

        with pytest.raises(ccxt.RateLimitExceeded, match="Too many visits"):
            await exchange.fetch_order_book("BTC/USDT")
        with pytest.raises(ccxt.RateLimitExceeded, match="403") as banned:
            await exchange.fetch_ticker("BTC/USDT")

        assert "access too frequent" in str(banned.value)
        assert exchange.last_response_headers["Retry-After"] == "60"
        assert dict(venue.faults.injected) == {"http_429": 1, "http_418": 1}


async def test_maintenance_fails_rest_and_websockets_and_afterwards_the_books_restart_at_u_1() -> None:
    async with bybit_venue() as venue, ccxt_bybit(venue, guard=True) as exchange:
        await watch_until_synced(exchange, venue, "ETH/USDT")

        venue.faults.maintenance()

        with pytest.raises(ccxt.NetworkError):
            await watch_until_error(exchange, "ETH/USDT")
        with pytest.raises(ccxt.ExchangeError, match="10016"):  # ccxt has no OnMaintenance for Bybit
            await exchange.fetch_order_book("ETH/USDT")
        with pytest.raises(ccxt.NetworkError):  # the reconnect is refused with 503
            await asyncio.wait_for(exchange.watch_order_book("ETH/USDT"), 5)
        assert (await exchange.fetch_status())["status"] == "maintenance"
        venue.faults.end_maintenance()
        ob = await watch_until_synced(exchange, venue, "ETH/USDT")
        assert top20(ob) == sim_book(venue.book_for_symbol("ETH/USDT"))
        assert exchange.arb_tripped is None  # the restarted chain is a reset, not a gap
        assert exchange.arb_guard.last_u["orderbook.50.ETHUSDT"] < 50  # counted from 1 again
        assert venue.faults.injected["ws_closed"] == 1
        assert venue.faults.injected["ws_refused"] >= 1
        assert venue.faults.injected["http_503"] >= 1
