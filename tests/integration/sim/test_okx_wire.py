"""The local OKX venue's wire format read directly (no ccxt): handshake, books chain and checksum, M5, REST errors.

The checksum is recomputed here from the documented recipe (best 25 bids and asks of the book built from the
snapshot and every update, `bid_px:bid_sz:ask_px:ask_sz:...`, CRC32 as a signed 32-bit integer), independently of
both the venue and the connector guard.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson
import pytest

from arb.connectors.guards.okx import OkxGuard
from arb.sim.market import MarketConfig
from arb.sim.server import SimVenue
from arb.sim.venues.okx import OkxProtocol

from .support import LIVELY, receive, sim_venue, step_every_book, ws_client
from .test_okx_ccxt import okx

WS_PATH = "/ws/v5/public"


@asynccontextmanager
async def okx_venue(
    *, config: MarketConfig = LIVELY, run: bool = True, protocol: OkxProtocol | None = None
) -> AsyncIterator[SimVenue]:
    async with sim_venue("okx", protocol or OkxProtocol(), config=config, run=run) as venue:
        yield venue


async def subscribe(ws: aiohttp.ClientWebSocketResponse, *args: tuple[str, str], op: str = "subscribe") -> None:
    await ws.send_str(orjson.dumps({"op": op, "args": [{"channel": c, "instId": i} for c, i in args]}).decode())


class Book:
    """A client-side book kept by the documented rules, with the documented checksum."""

    def __init__(self) -> None:
        self.sides: dict[str, dict[str, str]] = {"bids": {}, "asks": {}}

    def apply(self, data: dict[str, Any]) -> None:
        for side in ("bids", "asks"):
            for price, size, *_ in data[side]:
                if size == "0":
                    self.sides[side].pop(price, None)
                else:
                    self.sides[side][price] = size

    def best(self, side: str, n: int = 25) -> list[tuple[str, str]]:
        prices = sorted(self.sides[side], key=float, reverse=side == "bids")[:n]
        return [(p, self.sides[side][p]) for p in prices]

    def checksum(self) -> int:
        bids, asks = self.best("bids"), self.best("asks")
        fields: list[str] = []
        for i in range(max(len(bids), len(asks))):
            for side in (bids, asks):
                if i < len(side):
                    fields.extend(side[i])
        crc = zlib.crc32(":".join(fields).encode())
        return crc - 2**32 if crc >= 2**31 else crc


async def test_subscribe_acks_each_arg_with_the_conn_id_then_pushes_and_unsubscribe_stops_it() -> None:
    async with (
        okx_venue(run=False) as venue,
        ws_client(venue, WS_PATH) as ws,
    ):
        await ws.send_str(
            '{"id":"req7","op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"},'
            '{"channel":"bbo-tbt","instId":"ETH-USDT"}]}'
        )
        acks = [await receive(ws), await receive(ws)]
        snapshot, bbo = await receive(ws), await receive(ws)
        await subscribe(ws, ("books", "BTC-USDT"), op="unsubscribe")
        unsubscribed = await receive(ws)

        conn_id = acks[0]["connId"]
        assert acks == [
            {"id": "req7", "event": "subscribe", "arg": {"channel": "books", "instId": "BTC-USDT"}, "connId": conn_id},
            {
                "id": "req7",
                "event": "subscribe",
                "arg": {"channel": "bbo-tbt", "instId": "ETH-USDT"},
                "connId": conn_id,
            },
        ]
        assert len(conn_id) == 8
        assert (snapshot["arg"], snapshot["action"]) == ({"channel": "books", "instId": "BTC-USDT"}, "snapshot")
        data = snapshot["data"][0]
        assert (data["prevSeqId"], data["seqId"]) == (-1, okx(venue).seq_id(venue, "BTC/USDT"))
        book = venue.book_for_symbol("BTC/USDT")
        bids, asks = book.levels(400)
        assert [(float(p), float(s)) for p, s, _, _ in data["bids"]] == bids
        assert [(float(p), float(s)) for p, s, _, _ in data["asks"]] == asks
        assert data["ts"] == str(book.ts_ns // 1_000_000)
        assert bbo["arg"] == {"channel": "bbo-tbt", "instId": "ETH-USDT"}
        top = bbo["data"][0]["bids"][0][:2] + bbo["data"][0]["asks"][0][:2]
        assert tuple(float(x) for x in top) == venue.book_for_symbol("ETH/USDT").top()
        assert unsubscribed == {
            "event": "unsubscribe",
            "arg": {"channel": "books", "instId": "BTC-USDT"},
            "connId": conn_id,
        }
        (conn,) = venue.connections
        assert conn.topics == {("ETH-USDT", "bbo-tbt")}


@pytest.mark.parametrize(
    ("request_text", "code", "msg_starts"),
    [
        ('{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"}', "60012", "Invalid request: {"),
        ('{"op":"subscribe","argss":[{"channel":"books","instId":"BTC-USDT"}]}', "60012", "Invalid request: {"),
        ('{"op":"subscrib","args":[{"channel":"books","instId":"BTC-USDT"}]}', "60019", "Invalid op: op=subscrib"),
        ('{"op":"subscribe","args":[{"channel":"book","instId":"BTC-USDT"}]}', "60018", "Wrong URL or channel:book"),
        (
            '{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"},{"channel":"books","instId":"BTCUSDT"}]}',
            "60018",
            "Wrong URL or channel:books,instId:BTCUSDT doesn't exist",
        ),
        ('{"op":"subscribe","args":[{"channel":"books-l2-tbt","instId":"BTC-USDT"}]}', "60011", "Please log in"),
        ("hello", "60012", "Invalid request: hello"),
    ],
)
async def test_bad_requests_get_okx_error_events_and_subscribe_nothing(
    request_text: str, code: str, msg_starts: str
) -> None:
    async with (
        okx_venue(run=False) as venue,
        ws_client(venue, WS_PATH) as ws,
    ):
        await ws.send_str(request_text)
        answer = await receive(ws)
        await ws.send_str("ping")
        pong = await ws.receive_str(timeout=3)

        assert (answer["event"], answer["code"]) == ("error", code)
        assert answer["msg"].startswith(msg_starts)
        assert set(answer) == {"event", "code", "msg", "connId"}
        assert pong == "pong"  # nothing else was queued before it: no ack, no snapshot
        (conn,) = venue.connections
        assert conn.topics == set()


async def test_books_updates_chain_by_prev_seq_id_and_carry_the_documented_checksum() -> None:
    async with (
        okx_venue() as venue,
        ws_client(venue, WS_PATH) as ws,
    ):
        await subscribe(ws, ("books", "SOL-USDT"))
        assert (await receive(ws))["event"] == "subscribe"
        snapshot = (await receive(ws))["data"][0]
        client = Book()
        client.apply(snapshot)
        assert snapshot["checksum"] == client.checksum()
        seqs = [(snapshot["prevSeqId"], snapshot["seqId"])]
        for _ in range(15):
            msg = await receive(ws)
            data = msg["data"][0]
            client.apply(data)
            seqs.append((data["prevSeqId"], data["seqId"]))

            assert (msg["arg"]["channel"], msg["action"]) == ("books", "update")
            assert data["checksum"] == client.checksum()
            assert all(isinstance(p, str) and isinstance(s, str) for p, s, _, _ in data["bids"] + data["asks"])
        await venue.market.close()
        while seqs[-1][1] != okx(venue).seq_id(venue, "SOL/USDT"):
            data = (await receive(ws))["data"][0]
            client.apply(data)
            seqs.append((data["prevSeqId"], data["seqId"]))

        assert all(b[0] == a[1] for a, b in itertools.pairwise(seqs))  # prevSeqId = previous seqId
        assert all(b[1] > b[0] for b in seqs[1:])
        bids, asks = venue.book_for_symbol("SOL/USDT").levels(400)
        assert [(float(p), float(s)) for p, s in client.best("bids", 400)] == bids
        assert [(float(p), float(s)) for p, s in client.best("asks", 400)] == asks


async def test_a_keepalive_repeats_the_last_seq_id_and_a_restart_goes_down_then_chains_on() -> None:
    async with (
        okx_venue(run=False) as venue,
        ws_client(venue, WS_PATH) as ws,
    ):
        protocol = okx(venue)
        await subscribe(ws, ("books", "ETH-USDT"))
        await receive(ws)
        snapshot = (await receive(ws))["data"][0]

        assert protocol.send_keepalives(venue) == 1
        keepalive = (await receive(ws))["data"][0]
        protocol.reset_sequences(venue, "ETH/USDT")
        step_every_book(venue)
        restart = (await receive(ws))["data"][0]
        step_every_book(venue)
        after = (await receive(ws))["data"][0]

        assert (keepalive["bids"], keepalive["asks"]) == ([], [])
        assert keepalive["prevSeqId"] == keepalive["seqId"] == snapshot["seqId"]
        assert keepalive["checksum"] == snapshot["checksum"]  # the book did not change
        assert restart["prevSeqId"] == snapshot["seqId"]
        assert restart["seqId"] < restart["prevSeqId"]
        assert restart["seqId"] <= 2  # the numbering starts again at 0 with this update
        assert after["prevSeqId"] == restart["seqId"] < after["seqId"]


async def test_an_idle_book_gets_keepalives_by_itself_while_another_book_moves() -> None:
    protocol = OkxProtocol(keepalive_after_s=0.2)
    async with (
        okx_venue(run=False, protocol=protocol) as venue,
        ws_client(venue, WS_PATH) as ws,
    ):
        await subscribe(ws, ("books", "BTC-USDT"), ("books", "ETH-USDT"))
        first = [await receive(ws) for _ in range(4)]  # 2 acks, 2 snapshots
        (btc_snapshot,) = [m for m in first if m.get("action") == "snapshot" and m["arg"]["instId"] == "BTC-USDT"]
        await asyncio.sleep(0.3)

        venue.market.inject("okx", "ETH/USD", bps=30, duration_ms=60_000)  # only ETH's book moves
        pushed = [await receive(ws), await receive(ws)]

        by_inst = {m["arg"]["instId"]: m["data"][0] for m in pushed}
        btc = by_inst["BTC-USDT"]
        assert (btc["bids"], btc["asks"]) == ([], [])
        assert btc["prevSeqId"] == btc["seqId"] == btc_snapshot["data"][0]["seqId"]
        assert by_inst["ETH-USDT"]["bids"]  # the update that carried it
        assert by_inst["ETH-USDT"]["seqId"] > by_inst["ETH-USDT"]["prevSeqId"]


async def test_the_connector_guard_passes_the_venue_stream_and_refuses_its_bad_checksums_and_levels() -> None:
    async with (
        okx_venue() as venue,
        ws_client(venue, WS_PATH) as ws,
    ):
        guard = OkxGuard()

        async def first_refusal() -> str:
            """Feed the guard until it refuses a message (everything before must pass); then one more must pass."""
            async with asyncio.timeout(3):
                while (problem := guard.check(await receive(ws))) is None:
                    pass
            assert guard.check(await receive(ws)) is None  # unverified until the next snapshot: ccxt's chain decides
            return problem

        async def resubscribe() -> None:
            await subscribe(ws, ("books", "BTC-USDT"), op="unsubscribe")
            await subscribe(ws, ("books", "BTC-USDT"))
            async with asyncio.timeout(3):
                while (msg := await receive(ws)).get("action") != "snapshot":
                    assert guard.check(msg) is None
            assert guard.check(msg) is None

        await resubscribe()
        assert [guard.check(await receive(ws)) for _ in range(10)] == [None] * 10
        okx(venue).send_keepalives(venue)
        assert [guard.check(await receive(ws)) for _ in range(3)] == [None] * 3
        assert guard.keepalives == 1

        venue.faults.bad_checksum(symbol="BTC/USDT")
        bad_checksum = await first_refusal()
        await resubscribe()
        venue.faults.malformed("nan_price", symbol="BTC/USDT")
        nan = await first_refusal()
        await resubscribe()
        venue.faults.malformed("crossed", symbol="BTC/USDT")
        crossed = await first_refusal()
        await resubscribe()
        venue.faults.skip_sequence(symbol="BTC/USDT")
        async with asyncio.timeout(3):
            while guard.unchained == 0:
                assert guard.check(await receive(ws)) is None  # a gap is ccxt's to raise (InvalidNonce)

        assert bad_checksum.startswith("checksum mismatch (sent ")
        assert bad_checksum.endswith(" books BTC-USDT")
        assert nan.startswith("malformed books BTC-USDT: level ['NaN'")
        assert crossed.startswith("checksum mismatch")  # a level that is not in the book the checksum was made of
        assert dict(venue.faults.injected) == {
            "bad_checksum": 1,
            "malformed": 2,
            "malformed_nan_price": 1,
            "malformed_crossed": 1,
            "skip_sequence": 1,
        }


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/api/v5/market/books", {"instId": "DOGE-USDT"}, 200, "51001"),
        ("/api/v5/market/books", {}, 400, "50014"),
        ("/api/v5/market/books", {"instId": "BTC-USDT", "sz": "ten"}, 400, "51000"),
        ("/api/v5/market/candles", {"instId": "BTC-USDT", "bar": "7m"}, 400, "51000"),
        ("/api/v5/market/candles", {"instId": "BTC-USDT", "bar": "1Hutc"}, 400, "51000"),
        ("/api/v5/market/ticker", {"instId": "BTC/USDT"}, 200, "51001"),
        ("/api/v5/market/tickers", {}, 400, "50014"),
        ("/api/v5/public/instruments", {"instType": "PERP"}, 400, "51000"),
        ("/api/v5/public/instruments", {"instType": "OPTION"}, 400, "50015"),
    ],
)
async def test_bad_rest_requests_get_okx_error_bodies(
    path: str, params: dict[str, str], status: int, code: str
) -> None:
    async with okx_venue(run=False) as venue, aiohttp.ClientSession() as session:
        async with session.get(venue.http_url + path, params=params) as response:
            body = await response.json()

        assert response.status == status
        assert (body["code"], body["data"]) == (code, [])
        assert body["msg"]


async def test_candles_come_newest_first_page_back_with_after_and_open_on_utc_or_utc8_boundaries() -> None:
    async with okx_venue(run=False) as venue, aiohttp.ClientSession() as session:

        async def candles(**params: str) -> list[list[str]]:
            params = {"instId": "BTC-USDT", **params}
            async with session.get(venue.http_url + "/api/v5/market/candles", params=params) as r:
                rows: list[list[str]] = (await r.json())["data"]
                return rows

        latest = await candles(bar="1m", limit="5")
        older = await candles(bar="1m", limit="3", after=latest[-1][0])
        between = await candles(bar="1m", before=latest[-1][0], after=latest[0][0])
        utc_day, utc8_day = (await candles(bar="1Dutc", limit="2"))[0], (await candles(bar="1D", limit="2"))[0]
        week = (await candles(bar="1Wutc", limit="1"))[0]

        ts = [int(row[0]) for row in latest]
        assert ts == sorted(ts, reverse=True)
        assert [t - u for t, u in itertools.pairwise(ts)] == [60_000] * 4
        assert [row[8] for row in latest] == ["0", "1", "1", "1", "1"]  # only the current bar is unfinished
        assert [int(row[0]) for row in older] == [ts[-1] - 60_000, ts[-1] - 120_000, ts[-1] - 180_000]
        assert [row[0] for row in between] == [row[0] for row in latest[1:4]]
        assert int(utc_day[0]) % 86_400_000 == 0
        assert int(utc8_day[0]) % 86_400_000 == 16 * 3_600_000  # 00:00 in UTC+8
        assert time.gmtime(int(week[0]) / 1000).tm_wday == 0  # Monday
        book = venue.book_for_symbol("BTC/USDT")
        assert float(latest[0][4]) == book.price((book.bid_top + book.ask_top) // 2)


async def test_limits_and_maintenance_answer_in_okx_format_and_the_socket_gets_the_64008_notice() -> None:
    async with (
        okx_venue(run=False) as venue,
        aiohttp.ClientSession() as session,
        session.ws_connect(venue.ws_url + WS_PATH) as ws,
    ):
        venue.faults.rate_limit(retry_after_s=2, escalate=False)
        async with session.get(venue.http_url + "/api/v5/public/time") as limited:
            limited_body = await limited.json()
        venue.faults.maintenance(30)
        notice = await receive(ws)
        closing = await ws.receive(timeout=3)
        async with session.get(venue.http_url + "/api/v5/market/tickers", params={"instType": "SPOT"}) as down:
            down_body = await down.json()
        async with session.get(venue.http_url + "/api/v5/system/status") as status:
            status_body = await status.json()
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(venue.ws_url + WS_PATH)

        assert (limited.status, limited.headers["Retry-After"]) == (429, "2")
        assert (limited_body["code"], limited_body["msg"]) == ("50011", "Too Many Requests")
        assert (notice["event"], notice["code"]) == ("notice", "64008")
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert (down.status, down_body["code"]) == (503, "50001")
        assert 29 <= int(down.headers["Retry-After"]) <= 30
        assert status.status == 200
        assert [(e["state"], e["serviceType"]) for e in status_body["data"]] == [("ongoing", "1")]
        assert refused.value.status == 503
