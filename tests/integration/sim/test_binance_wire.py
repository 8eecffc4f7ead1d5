"""The local Binance venue's wire format read directly (no ccxt): handshake, streams, REST errors, control API."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiohttp
import pytest

from arb.sim.market import Market
from arb.sim.server import SimVenue
from arb.sim.venues.binance import BinanceProtocol

from .support import LIVELY, SPECS, SYMBOLS, binance_venue, receive, ws_client


async def receive_where(ws: aiohttp.ClientWebSocketResponse, key: str, timeout_s: float = 3.0) -> Any:
    async with asyncio.timeout(timeout_s):
        while True:
            msg = await receive(ws)
            if key in msg:
                return msg


async def test_subscribe_list_and_unsubscribe_answer_as_documented() -> None:
    async with (
        binance_venue(run=False) as venue,
        ws_client(venue, "/ws") as ws,
    ):
        await ws.send_str('{"method":"SUBSCRIBE","params":["btcusdt@depth@100ms","ethusdt@bookTicker"],"id":1}')
        assert await receive(ws) == {"result": None, "id": 1}
        await ws.send_str('{"method":"LIST_SUBSCRIPTIONS","id":"list2"}')
        assert await receive(ws) == {"result": ["btcusdt@depth@100ms", "ethusdt@bookTicker"], "id": "list2"}
        await ws.send_str('{"method":"UNSUBSCRIBE","params":["btcusdt@depth@100ms"],"id":3}')
        assert await receive(ws) == {"result": None, "id": 3}
        await ws.send_str('{"method":"LIST_SUBSCRIPTIONS","id":4}')
        assert await receive(ws) == {"result": ["ethusdt@bookTicker"], "id": 4}
        await ws.send_str('{"method":"GET_PROPERTY","params":["combined"],"id":5}')
        assert await receive(ws) == {"result": False, "id": 5}


@pytest.mark.parametrize(
    ("request_text", "reply"),
    [
        ('{"method":"SUBSCRIB","params":[],"id":1}', {"code": 2, "msg_starts": "Invalid request: unknown variant"}),
        ('{"method":"SUBSCRIBE","params":["btcusdt@nonsense"],"id":1}', {"code": 2, "msg_starts": "Invalid request"}),
        ('{"method":"SUBSCRIBE","params":["BTCUSDT@depth"],"id":1}', {"code": 2, "msg_starts": "Invalid request"}),
        ('{"method":"SET_PROPERTY","params":["combined","yes"],"id":1}', {"code": 1, "msg_starts": "Invalid value"}),
        ('{"method":"GET_PROPERTY","params":["colour"],"id":1}', {"code": 0, "msg_starts": "Unknown property"}),
        ('{"method":"SUBSCRIBE","params":[],"id":true}', {"code": 2, "msg_starts": "Invalid request: request ID"}),
        ('{"method":"SUBSCRIBE", "params": [', {"code": 3, "msg_starts": "Invalid JSON"}),
    ],
)
async def test_bad_requests_get_binance_error_replies_and_change_nothing(
    request_text: str, reply: dict[str, Any]
) -> None:
    async with (
        binance_venue(run=False) as venue,
        ws_client(venue, "/ws") as ws,
    ):
        await ws.send_str(request_text)

        answer = await receive(ws)
        assert answer["error"]["code"] == reply["code"]
        assert answer["error"]["msg"].startswith(reply["msg_starts"])
        await ws.send_str('{"method":"LIST_SUBSCRIPTIONS","id":9}')
        assert await receive(ws) == {"result": [], "id": 9}


async def test_diffs_chain_from_the_rest_snapshot_by_u_and_combined_streams_are_wrapped() -> None:
    async with (
        binance_venue() as venue,
        aiohttp.ClientSession() as session,
        session.ws_connect(venue.ws_url + "/stream?streams=btcusdt@depth@100ms/btcusdt@depth5@100ms") as ws,
    ):
        first = await receive_where(ws, "stream")
        async with session.get(venue.http_url + "/api/v3/depth", params={"symbol": "BTCUSDT", "limit": "1000"}) as r:
            snapshot = await r.json()
        diffs = []
        while len(diffs) < 5:
            msg = await receive(ws)
            if msg["stream"] == "btcusdt@depth@100ms" and msg["data"]["u"] > snapshot["lastUpdateId"]:
                diffs.append(msg["data"])

        assert first["stream"] in ("btcusdt@depth@100ms", "btcusdt@depth5@100ms")
        assert diffs[0]["U"] <= snapshot["lastUpdateId"] + 1 <= diffs[0]["u"]  # step 5 of the documented recipe
        assert all(b["U"] == a["u"] + 1 for a, b in itertools.pairwise(diffs))  # step 6
        assert {d["e"] for d in diffs} == {"depthUpdate"}
        assert {d["s"] for d in diffs} == {"BTCUSDT"}
        assert all(isinstance(p, str) and isinstance(q, str) for d in diffs for p, q in d["b"] + d["a"])


async def test_a_partial_depth_stream_carries_the_top_levels_of_the_book() -> None:
    async with (
        binance_venue() as venue,
        ws_client(venue, "/ws/ethusdt@depth10@100ms") as ws,
    ):
        book = venue.book_for_symbol("ETH/USDT")
        async with asyncio.timeout(3):
            while True:
                msg = await receive(ws)
                if msg["lastUpdateId"] == book.update_id:  # nothing moved since this message was rendered
                    break

        bids, asks = book.levels(10)
        assert msg["bids"] == [[f"{p:.8f}", f"{s:.8f}"] for p, s in bids]
        assert msg["asks"] == [[f"{p:.8f}", f"{s:.8f}"] for p, s in asks]


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/api/v3/depth", {"symbol": "DOGEUSDT"}, 400, -1121),
        ("/api/v3/depth", {}, 400, -1102),
        ("/api/v3/depth", {"symbol": "BTCUSDT", "limit": "ten"}, 400, -1100),
        ("/api/v3/klines", {"symbol": "BTCUSDT", "interval": "7m"}, 400, -1120),
        ("/api/v3/ticker/bookTicker", {"symbols": '["BTCUSDT","NOPE"]'}, 400, -1121),
        ("/api/v3/exchangeInfo", {"symbol": "BTCUSDT", "symbols": '["BTCUSDT"]'}, 400, -1128),
    ],
)
async def test_bad_rest_requests_get_binance_error_bodies(
    path: str, params: dict[str, str], status: int, code: int
) -> None:
    async with binance_venue(run=False) as venue, aiohttp.ClientSession() as session:
        async with session.get(venue.http_url + path, params=params) as response:
            body = await response.json()

        assert response.status == status
        assert body["code"] == code
        assert isinstance(body["msg"], str)


async def test_rest_answers_carry_the_used_weight_header() -> None:
    async with binance_venue(run=False) as venue, aiohttp.ClientSession() as session:
        async with session.get(venue.http_url + "/api/v3/depth", params={"symbol": "BTCUSDT"}) as first:
            used_first = int(first.headers["X-MBX-USED-WEIGHT-1M"])
        async with session.get(venue.http_url + "/api/v3/depth", params={"symbol": "BTCUSDT"}) as second:
            used_second = int(second.headers["X-MBX-USED-WEIGHT-1M"])

        assert used_second == used_first + 5  # depth with limit <= 100 weighs 5


async def test_faults_and_dislocations_can_be_set_over_http_and_bad_bodies_name_the_field() -> None:
    async with binance_venue(run=False) as venue, aiohttp.ClientSession() as session:
        control = venue.http_url + "/_sim"
        book = venue.book_for_symbol("SOL/USDT")
        bid_before = book.top()[0]

        async with session.post(control + "/faults", json={"fault": "stall", "seconds": "soon"}) as bad:
            assert bad.status == 422
            assert "$.seconds" in (await bad.json())["error"]
        async with session.post(control + "/faults", json={"fault": "rate_limit", "retry_after_s": 3}) as ok:
            assert ok.status == 200
        async with session.get(venue.http_url + "/api/v3/ping") as limited:
            assert (limited.status, limited.headers["Retry-After"]) == (429, "3")
        async with session.post(
            control + "/dislocations", json={"symbol": "SOL/USDT", "bps": 100, "duration_ms": 5000}
        ) as d:
            dislocation = await d.json()
        async with session.get(control + "/faults") as state:
            assert (await state.json())["injected"] == {"http_429": 1}

        assert dislocation["venue"] == "binance"
        assert dislocation["bps"] == 100.0
        assert book.top()[0] / bid_before == pytest.approx(1.01, abs=2e-4)


async def test_closing_a_venue_with_clients_attached_leaves_no_task_behind() -> None:
    tasks_before = asyncio.all_tasks()
    market = Market(SPECS, LIVELY)
    async with aiohttp.ClientSession() as session:
        async with SimVenue("binance", BinanceProtocol(), market, SYMBOLS) as venue, market:
            ws = await session.ws_connect(venue.ws_url + "/ws/btcusdt@depth@100ms")
            await receive(ws)

        msg = await ws.receive(timeout=3)  # the venue said goodbye
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        await ws.close()
    assert asyncio.all_tasks() == tasks_before
    with pytest.raises(RuntimeError, match="already started"):
        await venue.start()
