"""The real ccxt.pro `okx` class against the local OKX venue over loopback: markets, REST, streams and faults.

Each fault test states what ccxt 4.5.90 does with it, because that is what the connector has to handle: it raises
InvalidNonce on a `prevSeqId` break and resubscribes for a fresh snapshot, NetworkError on a drop or the 64008
maintenance notice, RateLimitExceeded on 50011 and OnMaintenance on 50001; it does not verify the `books` checksum and
takes NaN / crossing levels and a malformed update into its book silently. Those are what the connector-side guard
(`arb.connectors.guards.okx`, run here through the connector's own `guarded` client class) refuses.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import ccxt
import ccxt.pro as ccxtpro
import pytest

from arb.connectors.guards import guarded
from arb.connectors.guards.okx import OkxGuard
from arb.sim.market import MarketConfig
from arb.sim.server import SimVenue
from arb.sim.venues.okx import OkxProtocol

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
    step_every_book,
    watch_until,
    watch_until_error,
)


@asynccontextmanager
async def okx_venue(*, config: MarketConfig = LIVELY, run: bool = True) -> AsyncIterator[SimVenue]:
    """An OKX-protocol venue on a free port; its market runs unless `run=False` (then books hold still)."""
    async with sim_venue("okx", OkxProtocol(), config=config, run=run) as venue:
        yield venue


@asynccontextmanager
async def ccxt_okx(venue: SimVenue, *, guard: bool = False) -> AsyncIterator[Any]:
    """The real ccxt.pro okx class (or the connector's guarded subclass of it) talking to `venue`; always closed."""
    async with ccxt_client(venue, guarded(ccxtpro.okx, OkxGuard) if guard else None, **CONNECTOR_OPTIONS) as exchange:
        yield exchange


def okx(venue: SimVenue) -> OkxProtocol:
    assert isinstance(venue.protocol, OkxProtocol)
    return venue.protocol


def levels(ob: dict[str, Any], depth: int = 20) -> tuple[list[list[float]], list[list[float]]]:
    """ccxt's book as [[price, amount], ...] (okx levels carry a third field, the order count)."""
    return [[p, s] for p, s, *_ in ob["bids"][:depth]], [[p, s] for p, s, *_ in ob["asks"][:depth]]


async def watch_until_synced(exchange: Any, venue: SimVenue, symbol: str, timeout_s: float = 5.0) -> Any:
    """Watch until ccxt's book is at the venue book's current seqId (nothing moved in between)."""
    return await watch_until(exchange, symbol, lambda ob: ob["nonce"] == okx(venue).seq_id(venue, symbol), timeout_s)


async def test_load_markets_lists_exactly_the_symbols_the_settings_map_to_okx() -> None:
    async with configured_venue("okx") as (venue, configured), ccxt_okx(venue) as exchange:
        markets = await exchange.load_markets()

        assert set(markets) == configured
        btc = markets["BTC/USDT"]
        book = venue.book_for_symbol("BTC/USDT")
        assert (btc["id"], btc["spot"], btc["active"], btc["type"]) == ("BTC-USDT", True, True, "spot")
        assert (btc["precision"]["price"], btc["precision"]["amount"]) == (book.tick, book.step)
        assert btc["limits"]["amount"]["min"] == book.step
        assert sorted(path for _, _, path in venue.requests) == [  # what ccxt asks for, keys or not
            "/api/v5/public/instruments?instType=FUTURES",
            "/api/v5/public/instruments?instType=OPTION&uly=BTC-USD",
            "/api/v5/public/instruments?instType=OPTION&uly=ETH-USD",
            "/api/v5/public/instruments?instType=SPOT",
            "/api/v5/public/instruments?instType=SWAP",
        ]


async def test_fetch_order_book_is_the_sim_book_and_time_and_status_answer() -> None:
    async with okx_venue(run=False) as venue, ccxt_okx(venue) as exchange:
        ob = await exchange.fetch_order_book("ETH/USDT")
        server_ms = await exchange.fetch_time()
        status = await exchange.fetch_status()

        book = venue.book_for_symbol("ETH/USDT")
        assert levels(ob) == sim_book(book)
        assert len(ob["bids"]) == len(ob["asks"]) == 20
        assert ob["timestamp"] == book.ts_ns // 1_000_000
        assert abs(server_ms - time.time() * 1000) < 5_000
        assert status["status"] == "ok"
        assert "/api/v5/market/books?instId=ETH-USDT&sz=100" in [path for _, _, path in venue.requests]


async def test_fetch_ticker_and_tickers_carry_the_sim_top_of_book_and_a_sane_day() -> None:
    async with okx_venue(run=False) as venue, ccxt_okx(venue) as exchange:
        ticker = await exchange.fetch_ticker("BTC/USDT")
        tickers = await exchange.fetch_tickers()

        top = venue.book_for_symbol("BTC/USDT").top()
        assert (ticker["bid"], ticker["bidVolume"], ticker["ask"], ticker["askVolume"]) == top
        assert ticker["bid"] <= ticker["last"] <= ticker["ask"]
        assert ticker["low"] <= min(ticker["open"], ticker["last"]) <= ticker["high"]
        assert ticker["baseVolume"] > 0
        assert ticker["quoteVolume"] > ticker["baseVolume"]
        assert set(tickers) == set(SYMBOLS.values())
        assert all((t["bid"], t["ask"]) == venue.book_for_symbol(s).top()[::2] for s, t in tickers.items())


async def test_fetch_ohlcv_gives_consecutive_candles_ending_at_the_current_price_and_pages_by_since() -> None:
    async with okx_venue(run=False) as venue, ccxt_okx(venue) as exchange:
        candles = await exchange.fetch_ohlcv("SOL/USDT", "1m", limit=30)
        again = await exchange.fetch_ohlcv("SOL/USDT", "1m", limit=30)
        since = (int(time.time()) // 3600 - 48) * 3_600_000
        hours = await exchange.fetch_ohlcv("SOL/USDT", "1h", since=since, limit=10)
        old = await exchange.fetch_ohlcv("SOL/USDT", "1h", since=since - 90 * 86_400_000, limit=5)

        check_minute_candles(candles, venue.book_for_symbol("SOL/USDT"))
        assert again == candles  # the same history on every request
        assert [c[0] for c in hours] == [since + k * 3_600_000 for k in range(10)]
        assert [c[0] for c in old] == [since - 90 * 86_400_000 + k * 3_600_000 for k in range(5)]
        assert any("/api/v5/market/history-candles" in path for _, _, path in venue.requests)


async def test_watch_order_book_converges_to_the_sim_book_level_for_level() -> None:
    async with okx_venue() as venue, ccxt_okx(venue) as exchange:
        first = await exchange.watch_order_book("BTC/USDT")  # resolved by the WebSocket snapshot
        first_nonce = first["nonce"]

        ob = await watch_until_synced(exchange, venue, "BTC/USDT")

        book = venue.book_for_symbol("BTC/USDT")
        assert ob["nonce"] > first_nonce  # updates were applied on top of the snapshot
        assert levels(ob) == sim_book(book)
        assert ob["timestamp"] == book.ts_ns // 1_000_000
        assert not any("/market/books" in path for _, _, path in venue.requests)  # no REST snapshot on OKX


async def test_watch_bids_asks_and_watch_ticker_follow_the_sim_top_of_book() -> None:
    async with okx_venue() as venue, ccxt_okx(venue) as exchange:
        book = venue.book_for_symbol("ETH/USDT")

        async def bbo_synced() -> bool:
            t = (await exchange.watch_bids_asks(["ETH/USDT"]))["ETH/USDT"]
            return bool(
                t["info"]["seqId"] == okx(venue).seq_id(venue, "ETH/USDT")
                and (t["bid"], t["bidVolume"], t["ask"], t["askVolume"]) == book.top()
            )

        async def ticker_synced() -> bool:
            t = await exchange.watch_ticker("ETH/USDT")
            return bool((t["bid"], t["bidVolume"], t["ask"], t["askVolume"]) == book.top())

        await eventually(bbo_synced)
        await eventually(ticker_synced)


async def test_keepalives_and_a_sequence_restart_are_not_gaps_for_ccxt_or_the_guard() -> None:
    async with okx_venue(run=False) as venue, ccxt_okx(venue, guard=True) as exchange:
        snapshot = dict(await exchange.watch_order_book("BTC/USDT"))

        assert okx(venue).send_keepalives(venue) == 1
        kept = dict(await asyncio.wait_for(exchange.watch_order_book("BTC/USDT"), 3))
        okx(venue).reset_sequences(venue)
        step_every_book(venue)
        restarted = dict(await asyncio.wait_for(exchange.watch_order_book("BTC/USDT"), 3))
        step_every_book(venue)
        ob = await watch_until_synced(exchange, venue, "BTC/USDT")

        assert kept["nonce"] == snapshot["nonce"]
        assert restarted["nonce"] < snapshot["nonce"]
        assert ob["nonce"] > restarted["nonce"]
        assert levels(ob) == sim_book(venue.book_for_symbol("BTC/USDT"))
        assert exchange.arb_tripped is None
        assert (exchange.arb_guard.keepalives, exchange.arb_guard.restarts) == (1, 1)


async def test_a_skipped_update_makes_ccxt_raise_invalid_nonce_and_a_new_watch_resubscribes_and_resyncs() -> None:
    async with okx_venue() as venue, ccxt_okx(venue) as exchange:
        await watch_until_synced(exchange, venue, "BTC/USDT")

        venue.faults.skip_sequence(symbol="BTC/USDT")

        with pytest.raises(ccxt.InvalidNonce):
            await watch_until_error(exchange, "BTC/USDT")
        assert venue.faults.injected["skip_sequence"] == 1
        ob = await watch_until_synced(exchange, venue, "BTC/USDT")
        assert levels(ob) == sim_book(venue.book_for_symbol("BTC/USDT"))
        assert venue.stats["ws_connections"] == 1  # unsubscribe + subscribe on the same socket
        assert venue.stats["ws_received"] == 3  # subscribe, unsubscribe, subscribe


async def test_a_bad_checksum_goes_unnoticed_by_ccxt_and_trips_the_guarded_client() -> None:
    async with okx_venue() as venue, ccxt_okx(venue) as plain, ccxt_okx(venue, guard=True) as guarded_client:
        await watch_until_synced(plain, venue, "SOL/USDT")
        await watch_until_synced(guarded_client, venue, "SOL/USDT")

        venue.faults.bad_checksum(symbol="SOL/USDT")
        await eventually(lambda: guarded_client.arb_tripped is not None)

        ob = await watch_until_synced(plain, venue, "SOL/USDT")  # ccxt 4.5.90 never looks at the checksum
        assert levels(ob) == sim_book(venue.book_for_symbol("SOL/USDT"))  # (only the checksum was wrong)
        assert guarded_client.arb_tripped.startswith("checksum mismatch (sent ")
        assert guarded_client.arb_tripped.endswith("books SOL-USDT")
        assert venue.faults.injected["bad_checksum"] == 1


@pytest.mark.parametrize("kind", ["crossed", "nan_price", "wrong_types"])
async def test_a_bad_update_is_taken_into_ccxts_book_silently_and_trips_the_guarded_client(kind: str) -> None:
    async with okx_venue(run=False) as venue, ccxt_okx(venue) as plain, ccxt_okx(venue, guard=True) as guarded_client:
        await plain.watch_order_book("BTC/USDT")
        await guarded_client.watch_order_book("BTC/USDT")

        venue.faults.malformed(kind, symbol="BTC/USDT")  # type: ignore[arg-type]
        step_every_book(venue)
        ob = await watch_until_synced(plain, venue, "BTC/USDT")  # no error: ccxt took the update
        await eventually(lambda: guarded_client.arb_tripped is not None)

        bids, asks = levels(ob, 400)
        true_bids, true_asks = sim_book(venue.book_for_symbol("BTC/USDT"))
        if kind == "nan_price":
            assert any(math.isnan(p) for p, _ in bids)
        elif kind == "crossed":
            assert bids[0][0] > asks[0][0]
        else:  # the update's bid changes were lost: a wrong book at the right seqId, nothing shows it
            assert bids != true_bids
            assert asks == true_asks
        assert venue.faults.injected[f"malformed_{kind}"] == 1
        problem = guarded_client.arb_tripped
        assert problem.startswith("checksum mismatch" if kind == "crossed" else "malformed books BTC-USDT")


async def test_an_invalid_json_frame_stops_ccxts_receive_loop_while_the_socket_stays_up() -> None:
    async with okx_venue() as venue, ccxt_okx(venue) as exchange:
        await watch_until_synced(exchange, venue, "SOL/USDT")

        await check_invalid_json_stops_the_reader(exchange, venue, "SOL/USDT")


async def test_a_dropped_connection_fails_the_watch_and_the_next_watch_reconnects_and_resyncs() -> None:
    async with okx_venue() as venue, ccxt_okx(venue) as exchange:
        await watch_until_synced(exchange, venue, "ETH/USDT")

        ob = await check_drop_then_resync(exchange, venue, "ETH/USDT", watch_until_synced)
        assert levels(ob) == sim_book(venue.book_for_symbol("ETH/USDT"))


async def test_a_429_carries_retry_after_and_ccxt_raises_rate_limit_exceeded() -> None:
    async with okx_venue(run=False) as venue, ccxt_okx(venue) as exchange:
        await exchange.load_markets()
        venue.faults.rate_limit(retry_after_s=1)

        with pytest.raises(ccxt.RateLimitExceeded, match="50011"):
            await exchange.fetch_order_book("BTC/USDT")
        assert exchange.last_response_headers["Retry-After"] == "1"
        await asyncio.sleep(1.0)
        ob = await exchange.fetch_order_book("BTC/USDT")

        assert levels(ob) == sim_book(venue.book_for_symbol("BTC/USDT"))
        assert dict(venue.faults.injected) == {"http_429": 1}


async def test_maintenance_sends_the_64008_notice_refuses_rest_and_sockets_and_restarts_the_sequence() -> None:
    async with okx_venue() as venue, ccxt_okx(venue, guard=True) as exchange:
        before = await watch_until_synced(exchange, venue, "ETH/USDT")
        nonce_before = before["nonce"]

        venue.faults.maintenance()

        with pytest.raises(ccxt.NetworkError, match="64008"):
            await watch_until_error(exchange, "ETH/USDT")
        with pytest.raises(ccxt.OnMaintenance):
            await exchange.fetch_order_book("ETH/USDT")
        with pytest.raises(ccxt.NetworkError):  # the reconnect is refused with 503
            await asyncio.wait_for(exchange.watch_order_book("ETH/USDT"), 5)
        assert (await exchange.fetch_status())["status"] == "maintenance"
        await asyncio.sleep(0.3)  # the market moves on meanwhile: the restarted numbering is in use
        venue.faults.end_maintenance()
        ob = await watch_until_synced(exchange, venue, "ETH/USDT")

        assert ob["nonce"] < nonce_before  # a snapshot with a lower seqId: accepted, not a gap (M5)
        assert levels(ob) == sim_book(venue.book_for_symbol("ETH/USDT"))
        assert exchange.arb_tripped is None
        assert venue.faults.injected["ws_closed"] == 1
        assert venue.faults.injected["ws_refused"] >= 1
        assert venue.faults.injected["http_503"] >= 1
