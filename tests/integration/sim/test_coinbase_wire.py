"""The local Coinbase Advanced Trade venue's wire format read directly (no ccxt): subscribe, l2_data, sequence_num,
heartbeats, error replies, malformed frames, REST error bodies.

The market is stepped by hand where a test needs to know exactly which updates were sent, so the book a test
rebuilds from the wire can be compared level for level with the venue's.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson
import pytest

from arb.connectors.guards.coinbase import CoinbaseGuard
from arb.sim.market import Book, Market
from arb.sim.server import SimVenue
from arb.sim.venues.coinbase import CoinbaseProtocol

from .support import receive, sim_venue, ws_client
from .test_coinbase_ccxt import ALL_SPECS, SYMBOLS


@asynccontextmanager
async def coinbase_venue(*, run: bool = False, **protocol_options: Any) -> AsyncIterator[tuple[SimVenue, Market]]:
    """A Coinbase-protocol venue on a free port and its market (stepped by hand unless `run`)."""
    protocol = CoinbaseProtocol(**protocol_options)
    async with sim_venue("coinbase", protocol, SYMBOLS, specs=ALL_SPECS, run=run) as venue:
        yield venue, venue.market


class Clock:
    """Steps the market one second at a time, so every book refreshes at every step (book_update_hz x 1 s >= 1)."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self.now_ns = time.time_ns()
        market.step(self.now_ns)  # the first step only sets the market's clock

    def step(self, n: int = 1) -> None:
        for _ in range(n):
            self.now_ns += 1_000_000_000
            self.market.step(self.now_ns)


async def subscribe(
    ws: aiohttp.ClientWebSocketResponse, channel: str, *product_ids: str, kind: str = "subscribe"
) -> None:
    request: dict[str, Any] = {"type": kind, "channel": channel}
    if product_ids:
        request["product_ids"] = list(product_ids)
    await ws.send_str(orjson.dumps(request).decode())


def apply(book: dict[str, dict[float, float]], event: dict[str, Any]) -> None:
    """Coinbase's documented merge: new_quantity replaces the level's size, "0" removes the level."""
    if event["type"] == "snapshot":
        book["bid"].clear()
        book["offer"].clear()
    for level in event["updates"]:
        side = book[level["side"]]
        price, size = float(level["price_level"]), float(level["new_quantity"])
        if size == 0:
            side.pop(price, None)
        else:
            side[price] = size


def levels(local: dict[str, dict[float, float]]) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    return sorted(local["bid"].items(), reverse=True), sorted(local["offer"].items())


def venue_levels(book: Book) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    bids, asks = book.levels()
    return [(p, s) for p, s in bids], [(p, s) for p, s in asks]


async def test_a_level2_subscribe_gets_the_whole_book_as_a_snapshot_then_the_subscriptions_ack() -> None:
    async with (
        coinbase_venue() as (venue, _),
        ws_client(venue) as ws,
    ):
        await subscribe(ws, "level2", "BTC-USD", "CGLD-USD")

        first, second, ack = await receive(ws), await receive(ws), await receive(ws)

        assert [m["sequence_num"] for m in (first, second, ack)] == [0, 1, 2]
        assert {first["channel"], second["channel"]} == {"l2_data"}
        assert {first["client_id"], ack["client_id"]} == {""}
        assert first["timestamp"].endswith("Z")
        assert len(first["timestamp"]) == len("2023-02-09T20:32:50.714964855Z")
        snapshots = {m["events"][0]["product_id"]: m["events"][0] for m in (first, second)}
        assert set(snapshots) == {"BTC-USD", "CGLD-USD"}  # ccxt's commonCurrencies CGLD -> CELO, reversed
        btc = snapshots["BTC-USD"]
        assert btc["type"] == "snapshot"
        assert {u["event_time"] for u in btc["updates"]} == {"1970-01-01T00:00:00Z"}
        local: dict[str, dict[float, float]] = {"bid": {}, "offer": {}}
        apply(local, btc)
        assert levels(local) == venue_levels(venue.book_for_symbol("BTC/USD"))
        assert ack == {
            "channel": "subscriptions",
            "client_id": "",
            "timestamp": ack["timestamp"],
            "sequence_num": 2,
            "events": [{"subscriptions": {"level2": ["BTC-USD", "CGLD-USD"]}}],
        }


async def test_updates_rebuild_the_venue_book_and_sequence_num_counts_every_message_on_the_connection() -> None:
    async with (
        coinbase_venue(heartbeat_interval_s=0.05) as (venue, market),
        ws_client(venue) as ws,
    ):
        clock = Clock(market)
        await subscribe(ws, "level2", "ETH-USD")
        await subscribe(ws, "ticker", "SOL-USD")
        await subscribe(ws, "heartbeats")
        messages = [await receive(ws) for _ in range(5)]  # 2 snapshots, 3 acks
        clock.step(6)
        book = venue.book_for_symbol("ETH/USD")
        async with asyncio.timeout(3):
            while len(messages) < 12 or messages[-1]["channel"] != "heartbeats":  # one after the updates
                messages.append(await receive(ws))

        local: dict[str, dict[float, float]] = {"bid": {}, "offer": {}}
        for event in (e for m in messages if m["channel"] == "l2_data" for e in m["events"]):
            apply(local, event)
        assert levels(local) == venue_levels(book)

        assert [m["sequence_num"] for m in messages] == list(range(len(messages)))
        channels = {m["channel"] for m in messages}
        assert channels == {"l2_data", "ticker", "subscriptions", "heartbeats"}
        updates = [e for m in messages if m["channel"] == "l2_data" for e in m["events"] if e["type"] == "update"]
        assert len(updates) >= 5
        assert {e["product_id"] for e in updates} == {"ETH-USD"}
        assert all(isinstance(u["price_level"], str) and isinstance(u["new_quantity"], str) for e in updates
                   for u in e["updates"])  # fmt: skip
        assert any(u["new_quantity"] == "0" for e in updates for u in e["updates"])  # levels leave the book
        tickers = [t for m in messages if m["channel"] == "ticker" for e in m["events"] for t in e["tickers"]]
        sol = venue.book_for_symbol("SOL/USD")
        bid, bid_size, ask, ask_size = sol.top()
        last = tickers[-1]
        assert (float(last["best_bid"]), float(last["best_bid_quantity"])) == (bid, bid_size)
        assert (float(last["best_ask"]), float(last["best_ask_quantity"])) == (ask, ask_size)
        assert CoinbaseGuard().check(messages[0]) is None


async def test_heartbeats_tick_with_a_counter_and_a_silent_connection_is_closed_after_5_s_without_subscribing() -> None:
    async with (
        coinbase_venue(heartbeat_interval_s=0.05, subscribe_timeout_s=0.3) as (venue, _),
        aiohttp.ClientSession() as session,
        session.ws_connect(venue.ws_url) as ws,
        session.ws_connect(venue.ws_url) as idle,
    ):
        await subscribe(ws, "heartbeats")
        ack = await receive(ws)
        beats = [await receive(ws) for _ in range(3)]

        assert ack["events"] == [{"subscriptions": {"heartbeats": []}}]
        assert [b["sequence_num"] for b in beats] == [1, 2, 3]
        assert [b["events"][0]["heartbeat_counter"] for b in beats] == ["0", "1", "2"]
        assert " +0000 UTC m=+" in beats[0]["events"][0]["current_time"]
        closing = await idle.receive(timeout=3)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        await subscribe(ws, "heartbeats", kind="unsubscribe")
        async with asyncio.timeout(3):
            while (msg := await receive(ws))["channel"] != "subscriptions":
                pass
        assert msg["events"] == [{"subscriptions": {}}]  # what ccxt waits for to finish an unWatch


async def test_a_withheld_update_shows_as_a_sequence_num_jump_that_the_guard_reports() -> None:
    async with (
        coinbase_venue() as (venue, market),
        ws_client(venue) as ws,
    ):
        clock = Clock(market)
        guard = CoinbaseGuard()
        await subscribe(ws, "level2", "BTC-USD")
        seen = [await receive(ws), await receive(ws)]
        clock.step(2)
        seen += [await receive(ws), await receive(ws)]

        venue.faults.skip_sequence(symbol="BTC/USD")
        clock.step(2)
        after = await receive(ws)

        assert [m["sequence_num"] for m in seen] == [0, 1, 2, 3]
        assert after["sequence_num"] == 5  # number 4 went with the withheld update
        assert [guard.check(m) for m in seen] == [None] * 4
        assert guard.check(after) == "seq gap 3 -> 5 (l2_data BTC-USD)"
        assert venue.faults.injected["skip_sequence"] == 1


async def test_coinbase_has_no_checksum_so_a_bad_checksum_fault_changes_nothing() -> None:
    async with (
        coinbase_venue() as (venue, market),
        ws_client(venue) as ws,
    ):
        clock = Clock(market)
        await subscribe(ws, "level2", "BTC-USD")
        await receive(ws), await receive(ws)

        venue.faults.bad_checksum(symbol="BTC/USD")
        clock.step()
        update = await receive(ws)

        assert update["sequence_num"] == 2
        assert set(update) == {"channel", "client_id", "timestamp", "sequence_num", "events"}
        assert "bad_checksum" not in venue.faults.injected
        assert venue.faults.state()["armed"] == {"bad_checksum": {"BTC/USD": 1}}  # never taken here


async def test_updates_lost_in_a_stall_show_as_a_sequence_num_jump_after_it() -> None:
    async with (
        coinbase_venue() as (venue, market),
        ws_client(venue) as ws,
    ):
        clock = Clock(market)
        await subscribe(ws, "level2", "SOL-USD")
        await receive(ws), await receive(ws)

        venue.faults.stall(0.2)
        clock.step(3)  # the market moves on; nothing goes out
        await asyncio.sleep(0.3)
        clock.step()
        after = await receive(ws)

        assert after["sequence_num"] == 3
        assert after["events"][0]["type"] == "update"


@pytest.mark.parametrize("kind", ["nan_price", "crossed", "wrong_types", "invalid_json"])
async def test_malformed_frames_come_in_coinbase_format_and_the_guard_refuses_the_bad_levels(kind: str) -> None:
    async with (
        coinbase_venue() as (venue, market),
        ws_client(venue) as ws,
    ):
        clock = Clock(market)
        await subscribe(ws, "level2", "ETH-USD")
        await receive(ws), await receive(ws)
        book = venue.book_for_symbol("ETH/USD")

        venue.faults.malformed(kind, symbol="ETH/USD")  # type: ignore[arg-type]
        clock.step()
        text = await ws.receive_str(timeout=3)

        if kind == "invalid_json":
            with pytest.raises(orjson.JSONDecodeError):
                orjson.loads(text)
            return
        msg = orjson.loads(text)
        assert msg["sequence_num"] == 2  # a bad message still takes its number: the sequence does not catch it
        event = msg["events"][0]
        if kind == "wrong_types":
            assert not isinstance(event["updates"], list)
        else:
            bad = event["updates"][0]
            assert bad["side"] == "bid"
            if kind == "nan_price":
                assert math.isnan(float(bad["price_level"]))
            else:
                assert float(bad["price_level"]) > book.top()[2]  # a bid above the best ask
        reason = CoinbaseGuard().check(msg)
        if kind == "crossed":
            assert reason is None  # well-formed; only the book it builds is wrong (the connector's quote check)
        else:
            assert reason is not None
            assert "ETH-USD" in reason or "l2_data" in reason


@pytest.mark.parametrize(
    ("request_text", "message_starts"),
    [
        ('{"type":"subscribe","product_ids":["BTC-USD"],"channel":"level2"', "failure to parse message"),
        ('{"type":"subscrib","product_ids":["BTC-USD"],"channel":"level2"}', "unknown message type"),
        ('{"type":"subscribe","product_ids":["BTC-USD"]}', "channel is required"),
        ('{"type":"subscribe","product_ids":["BTC-USD"],"channels":["level2"]}', "'channels' is not supported"),
        ('{"type":"subscribe","product_ids":["BTC-USD"],"channel":"level3"}', "unknown channel"),
        ('{"type":"subscribe","product_ids":["BTC-USD","DOGE-USD"],"channel":"level2"}', "failure to subscribe"),
        ('{"type":"subscribe","channel":"level2"}', "failure to subscribe"),
        ('{"type":"subscribe","product_ids":["BTC-USD"],"channel":"market_trades"}', "channel market_trades"),
        ('{"type":"subscribe","product_ids":"BTC-USD","channel":"ticker"}', "product_ids must be a list"),
    ],
)
async def test_bad_requests_get_coinbase_error_messages_and_subscribe_nothing(
    request_text: str, message_starts: str
) -> None:
    async with (
        coinbase_venue() as (venue, _),
        ws_client(venue) as ws,
    ):
        await ws.send_str(request_text)

        answer = await receive(ws)
        assert answer["type"] == "error"
        assert answer["message"].startswith(message_starts)
        assert "sequence_num" not in answer
        await subscribe(ws, "heartbeats")
        ack = await receive(ws)
        assert ack["sequence_num"] == 0  # errors take no number
        assert ack["events"] == [{"subscriptions": {"heartbeats": []}}]


async def test_unsubscribing_stops_the_product_and_the_ack_lists_what_is_left() -> None:
    async with (
        coinbase_venue() as (venue, market),
        ws_client(venue) as ws,
    ):
        clock = Clock(market)
        await subscribe(ws, "level2", "BTC-USD", "ETH-USD")
        [await receive(ws) for _ in range(3)]

        await subscribe(ws, "level2", "BTC-USD", kind="unsubscribe")
        ack = await receive(ws)
        clock.step(3)
        later = [await receive(ws) for _ in range(3)]

        assert ack["events"] == [{"subscriptions": {"level2": ["ETH-USD"]}}]
        assert {m["events"][0]["product_id"] for m in later} == {"ETH-USD"}
        assert [m["sequence_num"] for m in later] == [4, 5, 6]


@pytest.mark.parametrize(
    ("path", "params", "status", "error"),
    [
        ("/api/v3/brokerage/market/product_book", {}, 400, "INVALID_ARGUMENT"),
        ("/api/v3/brokerage/market/product_book", {"product_id": "DOGE-USD"}, 404, "NOT_FOUND"),
        ("/api/v3/brokerage/market/product_book", {"product_id": "BTC-USD", "limit": "ten"}, 400, "INVALID_ARGUMENT"),
        ("/api/v3/brokerage/market/products/BTC-USD/ticker", {}, 400, "INVALID_ARGUMENT"),
        ("/api/v3/brokerage/market/products/DOGE-USD/ticker", {"limit": "1"}, 404, "NOT_FOUND"),
        (
            "/api/v3/brokerage/market/products/BTC-USD/candles",
            {"granularity": "SEVEN_MINUTE", "start": "0", "end": "60"},
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "/api/v3/brokerage/market/products/BTC-USD/candles",
            {"granularity": "ONE_MINUTE", "start": str(int(time.time()) - 400 * 60), "end": str(int(time.time()))},
            400,
            "INVALID_ARGUMENT",
        ),
        ("/api/v3/brokerage/market/products", {"product_type": "OPTION"}, 400, "INVALID_ARGUMENT"),
    ],
)
async def test_bad_rest_requests_get_advanced_trade_error_bodies(
    path: str, params: dict[str, str], status: int, error: str
) -> None:
    async with coinbase_venue() as (venue, _), aiohttp.ClientSession() as session:
        async with session.get(venue.http_url + path, params=params) as response:
            body = await response.json()

        assert response.status == status
        assert body["error"] == error
        assert body["message"] == body["error_details"]
        assert isinstance(body["message"], str)
        assert body["message"]


async def test_rest_book_candles_and_products_are_in_coinbase_shapes() -> None:
    async with coinbase_venue() as (venue, _), aiohttp.ClientSession() as session:
        market = venue.http_url + "/api/v3/brokerage/market"
        async with session.get(market + "/product_book", params={"product_id": "SOL-USD", "limit": "5"}) as r:
            pricebook = (await r.json())["pricebook"]
        now = int(time.time())
        candles_params = {"granularity": "FIVE_MINUTE", "start": str(now - 3000), "end": str(now)}
        async with session.get(market + "/products/SOL-USD/candles", params=candles_params) as r:
            candles = (await r.json())["candles"]
        async with session.get(market + "/products", params={"product_type": "FUTURE"}) as r:
            futures = await r.json()
        async with session.get(venue.http_url + "/api/v3/brokerage/time") as r:
            server_time = await r.json()

        book = venue.book_for_symbol("SOL/USD")
        bids, asks = book.levels(5)
        assert [(float(x["price"]), float(x["size"])) for x in pricebook["bids"]] == [(p, s) for p, s in bids]
        assert [(float(x["price"]), float(x["size"])) for x in pricebook["asks"]] == [(p, s) for p, s in asks]
        assert pricebook["product_id"] == "SOL-USD"
        starts = [int(c["start"]) for c in candles]
        assert starts == sorted(starts, reverse=True)  # newest first
        assert [a - b for a, b in itertools.pairwise(starts)] == [300] * (len(starts) - 1)
        assert 10 <= len(starts) <= 11
        assert futures == {"products": [], "num_products": 0, "pagination": None}
        assert abs(int(server_time["epochSeconds"]) - now) <= 2
