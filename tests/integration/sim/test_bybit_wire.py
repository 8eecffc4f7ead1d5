"""The local Bybit venue's wire format read directly (no ccxt): handshake, topics, `u` chain, errors, REST bodies.

The market is stepped by hand here (`Stepper`), so every update a test waits for is one it caused. Bybit sends no
checksum, so there is none to recompute: the `u` chain is what a client checks (see test_guard_bybit.py).
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import aiohttp
import orjson
import pytest

from arb.sim.market import Book, Market, MarketConfig
from arb.sim.server import SimVenue
from arb.sim.venues import protocol_for
from arb.sim.venues.bybit import BybitProtocol

from .support import LIVELY, receive, sim_venue, ws_client

WS_PATH = "/v5/public/spot"


@asynccontextmanager
async def bybit_venue(*, config: MarketConfig = LIVELY, **venue_options: Any) -> AsyncIterator[SimVenue]:
    """A Bybit-protocol venue on a free port whose market does not run: tests step it (`Stepper`)."""
    async with sim_venue("bybit", BybitProtocol(), config=config, run=False, **venue_options) as venue:
        yield venue


class Stepper:
    """Steps the market one simulated second at a time, so every book refreshes on every step."""

    def __init__(self, market: Market) -> None:
        self.market = market
        self.now_ns = time.time_ns()
        market.step(self.now_ns)  # the first step only sets the clock

    def step(self) -> None:
        self.now_ns += 1_000_000_000
        assert self.market.step(self.now_ns) > 0


async def receive_topic(ws: aiohttp.ClientWebSocketResponse, topic: str, timeout_s: float = 3.0) -> Any:
    async with asyncio.timeout(timeout_s):
        while True:
            msg = await receive(ws)
            if msg.get("topic") == topic:
                return msg


async def nothing_for(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> bool:
    try:
        msg = await ws.receive(timeout=seconds)
    except TimeoutError:
        return True
    raise AssertionError(f"expected silence, got {msg}")


async def subscribe(ws: aiohttp.ClientWebSocketResponse, *topics: str, req_id: str = "1") -> Any:
    await ws.send_str(orjson.dumps({"op": "subscribe", "args": list(topics), "req_id": req_id}).decode())
    return await receive(ws)


def as_wire(book: Book, depth: int) -> tuple[list[list[str]], list[list[str]]]:
    pd, sd = book.price_decimals, book.size_decimals
    bids, asks = book.levels(depth)
    return (
        [[f"{p:.{pd}f}", f"{s:.{sd}f}"] for p, s in bids],
        [[f"{p:.{pd}f}", f"{s:.{sd}f}"] for p, s in asks],
    )


class LocalBook:
    """A client book kept exactly as the docs say: a snapshot replaces it, a delta sets sizes and "0" deletes."""

    def __init__(self) -> None:
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}

    def apply(self, msg: dict[str, Any]) -> None:
        data = msg["data"]
        if msg["type"] == "snapshot":
            self.bids, self.asks = {}, {}
        for side, levels in ((self.bids, data["b"]), (self.asks, data["a"])):
            for price, size in levels:
                if size == "0":
                    side.pop(price, None)
                else:
                    side[price] = size

    def levels(self) -> tuple[list[list[str]], list[list[str]]]:
        bids = sorted(self.bids.items(), key=lambda kv: -float(kv[0]))
        asks = sorted(self.asks.items(), key=lambda kv: float(kv[0]))
        return [list(kv) for kv in bids], [list(kv) for kv in asks]


def spot_socket(venue: SimVenue) -> AbstractAsyncContextManager[aiohttp.ClientWebSocketResponse]:
    return ws_client(venue, WS_PATH)


def test_bybit_is_served_in_its_own_format() -> None:
    assert protocol_for("bybit") is BybitProtocol


async def test_subscribe_is_acknowledged_then_a_snapshot_of_the_book_arrives() -> None:
    async with bybit_venue() as venue, spot_socket(venue) as ws:
        ack = await subscribe(ws, "orderbook.50.BTCUSDT", req_id="10001")
        snapshot = await receive(ws)

        book = venue.book_for_symbol("BTC/USDT")
        assert ack == {
            "success": True,
            "ret_msg": "subscribe",
            "conn_id": ack["conn_id"],
            "req_id": "10001",
            "op": "subscribe",
        }
        uuid.UUID(ack["conn_id"])
        assert list(snapshot) == ["topic", "ts", "type", "data", "cts"]  # spot's documented field order
        assert (snapshot["topic"], snapshot["type"]) == ("orderbook.50.BTCUSDT", "snapshot")
        data = snapshot["data"]
        assert (data["s"], data["seq"]) == ("BTCUSDT", book.update_id)
        assert (data["b"], data["a"]) == as_wire(book, 50)
        assert len(data["b"]) == len(data["a"]) == 20  # the whole book: the market keeps 20 levels
        assert isinstance(data["u"], int)
        assert snapshot["ts"] == snapshot["cts"] == book.ts_ns // 1_000_000


async def test_deltas_chain_by_u_and_applied_to_the_snapshot_give_the_venue_book() -> None:
    async with bybit_venue() as venue, spot_socket(venue) as ws:
        stepper = Stepper(venue.market)
        await subscribe(ws, "orderbook.50.ETHUSDT")
        local = LocalBook()
        snapshot = await receive(ws)
        local.apply(snapshot)
        book = venue.book_for_symbol("ETH/USDT")
        messages = [snapshot]
        for _ in range(8):
            stepper.step()
            msg = await receive_topic(ws, "orderbook.50.ETHUSDT")
            local.apply(msg)
            messages.append(msg)
            assert local.levels() == as_wire(book, 50)  # the documented delta rules rebuild the book exactly

        deltas = messages[1:]
        assert {m["type"] for m in deltas} == {"delta"}
        assert [b["data"]["u"] - a["data"]["u"] for a, b in itertools.pairwise(messages)] == [1] * 8
        assert all(b["data"]["seq"] > a["data"]["seq"] for a, b in itertools.pairwise(messages))
        assert any(size == "0" for m in deltas for _, size in m["data"]["b"] + m["data"]["a"])
        for m in deltas:  # levels in book order, as Bybit sends them
            bids = [float(p) for p, _ in m["data"]["b"]]
            asks = [float(p) for p, _ in m["data"]["a"]]
            assert bids == sorted(bids, reverse=True)
            assert asks == sorted(asks)


async def test_a_deeper_book_than_the_topic_keeps_the_window_at_its_depth() -> None:
    deep = MarketConfig(seed=3, tick_hz=20.0, book_update_hz=10.0, depth=60, volatility_bps=20.0)
    async with bybit_venue(config=deep) as venue, spot_socket(venue) as ws:
        await subscribe(ws, "orderbook.50.BTCUSDT")
        local = LocalBook()
        local.apply(await receive(ws))
        book = venue.book_for_symbol("BTC/USDT")
        u = []
        for _ in range(10):
            venue.market.inject("bybit", "BTC/USD", bps=3, duration_ms=60_000)  # levels leave and enter the window
            msg = await receive_topic(ws, "orderbook.50.BTCUSDT")
            local.apply(msg)
            u.append(msg["data"]["u"])

            assert local.levels() == as_wire(book, 50)
        assert len(book.bids) == 60
        assert u == list(range(u[0], u[0] + 10))


async def test_level_1_sends_snapshots_of_the_top_only() -> None:
    async with bybit_venue() as venue, spot_socket(venue) as ws:
        await subscribe(ws, "orderbook.1.SOLUSDT")
        book = venue.book_for_symbol("SOL/USDT")
        messages = [await receive(ws)]
        for _ in range(4):
            venue.market.inject("bybit", "SOL/USD", bps=2, duration_ms=60_000)  # the top moves every time
            messages.append(await receive_topic(ws, "orderbook.1.SOLUSDT"))
            assert (messages[-1]["data"]["b"], messages[-1]["data"]["a"]) == as_wire(book, 1)

        assert {m["type"] for m in messages} == {"snapshot"}
        assert all(b["data"]["u"] > a["data"]["u"] for a, b in itertools.pairwise(messages))


async def test_the_ticker_topic_sends_spot_snapshots_with_the_last_price_at_the_mid() -> None:
    async with bybit_venue() as venue, spot_socket(venue) as ws:
        await subscribe(ws, "tickers.BTCUSDT")
        msg = await receive(ws)

        book = venue.book_for_symbol("BTC/USDT")
        assert list(msg) == ["topic", "ts", "type", "cs", "data"]
        assert (msg["topic"], msg["type"], msg["cs"]) == ("tickers.BTCUSDT", "snapshot", book.update_id)
        data = msg["data"]
        assert set(data) == {
            "symbol",
            "lastPrice",
            "highPrice24h",
            "lowPrice24h",
            "prevPrice24h",
            "volume24h",
            "turnover24h",
            "price24hPcnt",
            "usdIndexPrice",
        }
        last = float(data["lastPrice"])
        assert last == book.price((book.bid_top + book.ask_top) // 2)
        assert float(data["lowPrice24h"]) <= min(last, float(data["prevPrice24h"])) <= float(data["highPrice24h"])
        assert float(data["price24hPcnt"]) == pytest.approx(last / float(data["prevPrice24h"]) - 1, abs=1e-4)


@pytest.mark.parametrize("req_id", ["100001", None])
async def test_an_application_ping_gets_the_spot_pong(req_id: str | None) -> None:
    async with bybit_venue() as venue, spot_socket(venue) as ws:
        ping: dict[str, Any] = {"op": "ping"} if req_id is None else {"req_id": req_id, "op": "ping"}
        await ws.send_str(orjson.dumps(ping).decode())

        pong = await receive(ws)
        expected = {"success": True, "ret_msg": "pong", "conn_id": pong["conn_id"], "op": "ping"}
        if req_id is not None:
            expected["req_id"] = req_id
        assert pong == expected


async def test_application_pings_keep_a_client_that_ignores_ping_frames_connected() -> None:
    async with (
        bybit_venue(ping_interval_s=0.1, pong_timeout_s=0.3) as venue,
        aiohttp.ClientSession() as session,
        session.ws_connect(venue.ws_url + WS_PATH, autoping=False) as pinging,
        session.ws_connect(venue.ws_url + WS_PATH, autoping=False) as silent,
    ):
        for _ in range(8):  # 0.8 s: well past the pong deadline
            await pinging.send_str('{"op":"ping"}')
            await asyncio.sleep(0.1)

        async with asyncio.timeout(3):
            async for _ in silent:  # read everything, answer nothing
                pass
        assert silent.closed
        assert not pinging.closed
        assert venue.stats["pong_timeouts"] == 1


async def test_two_connections_get_each_their_own_conn_id() -> None:
    async with bybit_venue() as venue, spot_socket(venue) as first, spot_socket(venue) as second:
        a = await subscribe(first, "tickers.BTCUSDT")
        b = await subscribe(second, "tickers.BTCUSDT")

        assert a["conn_id"] != b["conn_id"]


@pytest.mark.parametrize(
    ("request_text", "ret_msg", "op"),
    [
        ('{"op":"subscribe","args":["orderbook.30.BTCUSDT"],"req_id":"e1"}', "error:handler not found,topic:"
         "orderbook.30.BTCUSDT", "subscribe"),
        ('{"op":"subscribe","args":["orderbook.50.btcusdt"],"req_id":"e1"}', "error:handler not found,topic:"
         "orderbook.50.btcusdt", "subscribe"),
        ('{"op":"subscribe","args":["tickers.ETHUSDT","orderbook.50.NOPEUSDT"],"req_id":"e1"}',
         "error:handler not found,topic:orderbook.50.NOPEUSDT", "subscribe"),
        ('{"op":"subscribe","args":["publicTrade.BTCUSDT"],"req_id":"e1"}',
         "error:handler not found,topic:publicTrade.BTCUSDT", "subscribe"),
        ('{"op":"subscribe","args":' + orjson.dumps([f"orderbook.{d}.{s}" for d in (1, 50, 200, 1000)
         for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT")]).decode() + ',"req_id":"e1"}', "args size >10", "subscribe"),
        ('{"op":"subscribe","args":[],"req_id":"e1"}', "error:args is empty", "subscribe"),
        ('{"op":"nope","req_id":"e1"}', "error:invalid op", "nope"),
    ],
)  # fmt: skip
async def test_bad_subscribe_requests_get_bybit_error_replies_and_subscribe_nothing(
    request_text: str, ret_msg: str, op: str
) -> None:
    async with bybit_venue() as venue, spot_socket(venue) as ws:
        await ws.send_str(request_text)

        reply = await receive(ws)
        assert reply == {"success": False, "ret_msg": ret_msg, "conn_id": reply["conn_id"], "req_id": "e1", "op": op}
        (conn,) = venue.connections
        assert conn.topics == set()  # nothing half-applied
        assert await nothing_for(ws, 0.2)


@pytest.mark.parametrize(
    ("text", "starts"),
    [
        ("hello", "Failed to decode incoming data:readObjectStart: expect { or n, but found h"),
        ('{"op":"subscribe", "args": [', "Failed to decode incoming data:ReadObject"),
    ],
)
async def test_a_frame_that_is_not_json_gets_a_decode_error_and_the_socket_stays_open(text: str, starts: str) -> None:
    async with bybit_venue() as venue, spot_socket(venue) as ws:
        await ws.send_str(text)
        reply = await receive(ws)
        await ws.send_str('{"op":"ping"}')
        pong = await receive(ws)

        assert reply["success"] is False
        assert reply["ret_msg"].startswith(starts)
        assert pong["ret_msg"] == "pong"


async def test_subscribing_twice_is_refused_and_the_first_subscription_keeps_delivering() -> None:
    async with bybit_venue() as venue, spot_socket(venue) as ws:
        stepper = Stepper(venue.market)
        await subscribe(ws, "orderbook.1.ETHUSDT")
        first = await receive(ws)

        again = await subscribe(ws, "orderbook.1.ETHUSDT", req_id="e6")
        venue.market.inject("bybit", "ETH/USD", bps=2, duration_ms=60_000)
        stepper.step()
        later = await receive_topic(ws, "orderbook.1.ETHUSDT")

        assert (again["success"], again["ret_msg"]) == (False, "error:already subscribed,topic:orderbook.1.ETHUSDT")
        assert later["data"]["u"] > first["data"]["u"]


async def test_unsubscribe_is_acknowledged_and_stops_the_topic() -> None:
    async with bybit_venue() as venue, spot_socket(venue) as ws:
        stepper = Stepper(venue.market)
        await subscribe(ws, "orderbook.50.BTCUSDT", "tickers.BTCUSDT")
        await receive(ws)
        await receive(ws)

        await ws.send_str('{"op":"unsubscribe","args":["orderbook.50.BTCUSDT","tickers.BTCUSDT"],"req_id":"u1"}')
        ack = await receive(ws)
        stepper.step()

        assert ack == {"success": True, "ret_msg": "", "conn_id": ack["conn_id"], "req_id": "u1", "op": "unsubscribe"}
        assert await nothing_for(ws, 0.3)


async def test_a_withheld_update_shows_as_a_u_that_jumps_by_two() -> None:
    async with bybit_venue() as venue, spot_socket(venue) as ws:
        await subscribe(ws, "orderbook.50.BTCUSDT")
        before = await receive(ws)

        venue.faults.skip_sequence(symbol="BTC/USDT")
        venue.market.inject("bybit", "BTC/USD", bps=2, duration_ms=60_000)  # withheld
        venue.market.inject("bybit", "BTC/USD", bps=2, duration_ms=60_000)
        after = await receive_topic(ws, "orderbook.50.BTCUSDT")

        assert after["data"]["u"] == before["data"]["u"] + 2
        assert venue.faults.injected["skip_sequence"] == 1


async def test_after_a_stall_the_next_delta_shows_the_gap() -> None:
    async with bybit_venue() as venue, spot_socket(venue) as ws:
        stepper = Stepper(venue.market)
        await subscribe(ws, "orderbook.200.SOLUSDT")
        before = await receive(ws)

        venue.faults.stall(0.3)
        stepper.step()
        stepper.step()
        await asyncio.sleep(0.35)
        venue.market.inject("bybit", "SOL/USD", bps=2, duration_ms=60_000)
        after = await receive_topic(ws, "orderbook.200.SOLUSDT")

        assert after["data"]["u"] == before["data"]["u"] + 2  # one u for everything lost, then this delta's


async def test_after_maintenance_the_restarted_service_counts_u_from_1() -> None:
    async with bybit_venue() as venue:
        stepper = Stepper(venue.market)
        for _ in range(3):
            stepper.step()
        async with spot_socket(venue) as ws:
            await subscribe(ws, "orderbook.50.BTCUSDT")
            before = await receive(ws)
            venue.faults.maintenance(0.2)
            closed = await ws.receive(timeout=3)
        await asyncio.sleep(0.25)
        async with spot_socket(venue) as ws:
            await subscribe(ws, "orderbook.50.BTCUSDT", "orderbook.1.BTCUSDT")
            after = [await receive(ws), await receive(ws)]

        assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert before["data"]["u"] > 1
        assert [(m["type"], m["data"]["u"]) for m in after] == [("snapshot", 1), ("snapshot", 1)]


@pytest.mark.parametrize("topic", ["orderbook.50.BTCUSDT", "orderbook.1.BTCUSDT"])
async def test_malformed_frames_come_in_bybit_format(topic: str) -> None:
    async with bybit_venue() as venue, spot_socket(venue) as ws:
        await subscribe(ws, topic)
        await receive(ws)
        book = venue.book_for_symbol("BTC/USDT")
        frames, best_asks = {}, {}
        for kind in ("wrong_types", "nan_price", "crossed", "invalid_json"):
            venue.faults.malformed(kind, symbol="BTC/USDT")  # type: ignore[arg-type]
            venue.market.inject("bybit", "BTC/USD", bps=2, duration_ms=60_000)
            best_asks[kind] = book.price(book.ask_top)
            frames[kind] = await ws.receive_str(timeout=3)
            if kind != "invalid_json":  # the rest of the frame is intact
                assert orjson.loads(frames[kind])["topic"] == topic

        wrong = orjson.loads(frames["wrong_types"])["data"]
        assert (wrong["b"], type(wrong["u"])) == ("not a list of levels", str)
        assert orjson.loads(frames["nan_price"])["data"]["b"][0][0] == "NaN"
        assert float(orjson.loads(frames["crossed"])["data"]["b"][0][0]) > best_asks["crossed"]
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(frames["invalid_json"])
        assert venue.faults.injected["malformed"] == 4


# ---------------------------------------------------------------------------------------------------- REST


async def get(venue: SimVenue, path: str, **params: str) -> tuple[int, Any, Any]:
    async with aiohttp.ClientSession() as session, session.get(venue.http_url + path, params=params) as r:
        body = await r.read()
        try:
            return r.status, orjson.loads(body), r.headers
        except orjson.JSONDecodeError:
            return r.status, body.decode(), r.headers


async def test_the_rest_book_is_the_venue_book_and_its_u_is_the_1000_level_streams() -> None:
    async with bybit_venue() as venue, spot_socket(venue) as ws:
        stepper = Stepper(venue.market)
        await subscribe(ws, "orderbook.1000.BTCUSDT")
        await receive(ws)
        stepper.step()
        streamed = await receive_topic(ws, "orderbook.1000.BTCUSDT")

        status, body, _ = await get(venue, "/v5/market/orderbook", category="spot", symbol="BTCUSDT", limit="5")

        book = venue.book_for_symbol("BTC/USDT")
        assert (status, body["retCode"], body["retMsg"]) == (200, 0, "OK")
        assert set(body) == {"retCode", "retMsg", "result", "retExtInfo", "time"}
        result = body["result"]
        assert (result["b"], result["a"]) == as_wire(book, 5)
        assert (result["u"], result["seq"]) == (streamed["data"]["u"], book.update_id)
        assert result["cts"] == book.ts_ns // 1_000_000


async def test_instruments_list_the_spot_symbols_and_no_contracts() -> None:
    async with bybit_venue() as venue:
        _, spot, _ = await get(venue, "/v5/market/instruments-info", category="spot")
        _, linear, _ = await get(venue, "/v5/market/instruments-info", category="linear", limit="1000")
        _, one, _ = await get(venue, "/v5/market/instruments-info", category="spot", symbol="ETHUSDT")

        rows = spot["result"]["list"]
        assert [r["symbol"] for r in rows] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
        btc = rows[0]
        book = venue.book_for_symbol("BTC/USDT")
        assert (btc["baseCoin"], btc["quoteCoin"], btc["status"]) == ("BTC", "USDT", "Trading")
        assert float(btc["priceFilter"]["tickSize"]) == book.tick
        assert float(btc["lotSizeFilter"]["basePrecision"]) == book.step
        assert "nextPageCursor" not in spot["result"]  # spot has no pagination
        assert linear["result"] == {"category": "linear", "list": [], "nextPageCursor": ""}
        assert [r["symbol"] for r in one["result"]["list"]] == ["ETHUSDT"]


async def test_kline_lists_the_newest_candle_first_and_starts_at_the_candle_holding_start() -> None:
    async with bybit_venue() as venue:
        _, newest, _ = await get(venue, "/v5/market/kline", category="spot", symbol="SOLUSDT", interval="5", limit="4")
        start = int(newest["result"]["list"][-1][0]) + 1  # inside the oldest of those candles
        _, ranged, _ = await get(
            venue, "/v5/market/kline", category="spot", symbol="SOLUSDT", interval="5", start=str(start), limit="2"
        )

        rows = newest["result"]["list"]
        assert [int(b[0]) - int(a[0]) for a, b in itertools.pairwise(rows)] == [-300_000] * 3
        assert all(len(r) == 7 and all(isinstance(x, str) for x in r) for r in rows)
        assert [r[0] for r in ranged["result"]["list"]] == [rows[2][0], rows[3][0]]


@pytest.mark.parametrize(
    ("path", "params", "ret_msg"),
    [
        ("/v5/market/orderbook", {"category": "spot", "symbol": "DOGEUSDT"}, "Not supported symbols"),
        ("/v5/market/orderbook", {"category": "linear", "symbol": "BTCUSDT"}, "Not supported symbols"),
        ("/v5/market/orderbook", {"symbol": "BTCUSDT"}, "Illegal category"),
        ("/v5/market/orderbook", {"category": "spot", "symbol": "BTCUSDT", "limit": "1001"}, "params error"),
        ("/v5/market/tickers", {"category": "spot", "symbol": "btcusdt"}, "Not supported symbols"),
        ("/v5/market/kline", {"symbol": "BTCUSDT", "interval": "1"}, "Not supported symbols"),  # default: linear
        ("/v5/market/kline", {"category": "spot", "symbol": "BTCUSDT", "interval": "7"}, "Invalid period!"),
        ("/v5/market/instruments-info", {"category": "futures"}, "Illegal category"),
    ],
)
async def test_bad_rest_requests_get_retcode_10001_on_http_200(path: str, params: dict[str, str], ret_msg: str) -> None:
    async with bybit_venue() as venue:
        status, body, _ = await get(venue, path, **params)

        assert (status, body["retCode"]) == (200, 10001)
        assert body["retMsg"].startswith(ret_msg)
        assert body["result"] == {}


async def test_rate_limits_answer_10006_with_its_headers_and_a_ban_answers_403() -> None:
    async with bybit_venue() as venue:
        venue.faults.rate_limit(retry_after_s=2, ban_s=30)

        status, body, headers = await get(venue, "/v5/market/time")
        banned_status, banned_body, banned_headers = await get(venue, "/v5/market/time")

        assert (status, body["retCode"], body["retMsg"]) == (429, 10006, "Too many visits!")
        assert headers["Retry-After"] == "2"
        assert headers["X-Bapi-Limit-Status"] == "0"
        assert int(headers["X-Bapi-Limit-Reset-Timestamp"]) >= body["time"] + 1900
        assert (banned_status, banned_body, banned_headers["Retry-After"]) == (403, "access too frequent", "30")


async def test_maintenance_answers_10016_on_503_and_the_status_endpoint_says_ongoing() -> None:
    async with bybit_venue() as venue:
        venue.faults.maintenance(30)

        status, body, headers = await get(venue, "/v5/market/tickers", category="spot")
        _, system, _ = await get(venue, "/v5/system/status")
        venue.faults.end_maintenance()
        _, after, _ = await get(venue, "/v5/system/status")

        assert (status, body["retCode"], headers["Retry-After"]) == (503, 10016, "30")
        (event,) = system["result"]["list"]
        assert event["state"] == "ongoing"
        assert int(event["end"]) - int(event["begin"]) == 30_000
        assert after["result"]["list"] == []


async def test_server_time_is_in_seconds_and_nanoseconds() -> None:
    async with bybit_venue() as venue:
        before = time.time_ns()
        _, body, _ = await get(venue, "/v5/market/time")

        result = body["result"]
        assert before <= int(result["timeNano"]) <= time.time_ns()
        assert int(result["timeSecond"]) == int(result["timeNano"]) // 1_000_000_000
