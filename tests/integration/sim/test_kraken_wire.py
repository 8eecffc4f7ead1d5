"""The local Kraken venue's wire format read directly (no ccxt): v2 handshake, book checksum, depth trimming, errors.

Book messages are decoded with `parse_float=str` so every price and qty is the token the venue wrote, and checksums
are recomputed here from the guide's algorithm (https://docs.kraken.com/api/docs/guides/spot-ws-book-v2), which this
file first checks against a book Kraken itself sent.
"""

from __future__ import annotations

import asyncio
import json
import re
import zlib
from typing import Any

import aiohttp
import orjson
import pytest

from arb.sim.market import Book, Market
from arb.sim.server import SimVenue
from arb.sim.venues.kraken import KrakenProtocol

from .support import LIVELY, ws_client
from .test_kraken_ccxt import SPECS, SYMBOLS, kraken_venue

Levels = list[tuple[str, str]]


def docs_checksum(asks: Levels, bids: Levels) -> int:
    """The guide: top 10 asks low->high, then top 10 bids high->low, `.` and leading zeros removed, CRC32."""

    def token(s: str) -> str:
        return s.replace(".", "").lstrip("0")

    return zlib.crc32("".join(token(p) + token(q) for p, q in [*asks[:10], *bids[:10]]).encode())


class LocalBook:
    """A client's book kept as the guide says: apply every level, then truncate to the subscribed depth."""

    def __init__(self, entry: dict[str, Any], depth: int) -> None:
        self.depth = depth
        self.bids = {level["price"]: level["qty"] for level in entry["bids"]}
        self.asks = {level["price"]: level["qty"] for level in entry["asks"]}

    def apply(self, entry: dict[str, Any], *, trim: bool = True) -> None:
        for side, levels in ((self.bids, entry["bids"]), (self.asks, entry["asks"])):
            for level in levels:
                if float(level["qty"]) == 0:
                    side.pop(level["price"], None)
                else:
                    side[level["price"]] = level["qty"]
        if trim:
            self.bids = dict(self.sorted_bids()[: self.depth])
            self.asks = dict(self.sorted_asks()[: self.depth])

    def sorted_bids(self) -> Levels:
        return sorted(self.bids.items(), key=lambda kv: -float(kv[0]))

    def sorted_asks(self) -> Levels:
        return sorted(self.asks.items(), key=lambda kv: float(kv[0]))

    def checksum(self) -> int:
        return docs_checksum(self.sorted_asks(), self.sorted_bids())


def wire_levels(book: Book, depth: int = 10) -> tuple[Levels, Levels]:
    bids, asks = book.levels(depth)
    pd = book.price_decimals
    return [(f"{p:.{pd}f}", f"{s:.8f}") for p, s in bids], [(f"{p:.{pd}f}", f"{s:.8f}") for p, s in asks]


async def receive(ws: aiohttp.ClientWebSocketResponse, timeout_s: float = 3.0) -> Any:
    """The next frame with every decimal kept as the token the venue wrote."""
    return json.loads(await ws.receive_str(timeout=timeout_s), parse_float=str)


async def receive_where(ws: aiohttp.ClientWebSocketResponse, **match: Any) -> Any:
    async with asyncio.timeout(3):
        while True:
            msg = await receive(ws)
            if all(msg.get(k) == v for k, v in match.items()):
                return msg


async def subscribe_book(ws: aiohttp.ClientWebSocketResponse, symbol: str, depth: int = 10) -> dict[str, Any]:
    params = {"channel": "book", "symbol": [symbol], "depth": depth}
    await ws.send_str(orjson.dumps({"method": "subscribe", "params": params}).decode())
    await receive_where(ws, method="subscribe")
    snapshot: dict[str, Any] = (await receive_where(ws, channel="book", type="snapshot"))["data"][0]
    return snapshot


async def drain(ws: aiohttp.ClientWebSocketResponse, local: LocalBook) -> None:
    """Apply whatever is still in flight until the venue has been quiet for 0.3 s."""
    while True:
        try:
            msg = await receive(ws, timeout_s=0.3)
        except TimeoutError:
            return
        if msg.get("type") == "update":
            local.apply(msg["data"][0])


def test_the_checksum_used_here_reproduces_one_kraken_sent() -> None:
    # ALGO/USD from a real v2 session: snapshot checksum 2375857985.
    bids = [("0.12291", "27039.62776299"), ("0.12290", "8136.33288180"), ("0.12287", "10984.20817349"),
            ("0.12283", "28027.05025639"), ("0.12280", "9705.60000000"), ("0.12279", "15215.53522714"),
            ("0.12275", "4067.00000000"), ("0.12274", "30639.39949109"), ("0.12268", "2531.96119986"),
            ("0.12267", "16299.00000000")]  # fmt: skip
    asks = [("0.12307", "600.00000000"), ("0.12308", "4042.11919517"), ("0.12312", "10284.53891000"),
            ("0.12314", "16155.08885299"), ("0.12315", "5186.05778473"), ("0.12316", "32828.24000000"),
            ("0.12317", "7751.65718582"), ("0.12318", "32298.82000000"), ("0.12319", "1864.66899600"),
            ("0.12322", "4718.99755630")]  # fmt: skip

    assert docs_checksum(asks, bids) == 2375857985


async def test_connect_says_status_then_each_symbol_gets_an_ack_then_a_padded_checksummed_snapshot() -> None:
    async with (
        kraken_venue(run=False) as venue,
        ws_client(venue, "/v2") as ws,
    ):
        status = await receive(ws)
        await ws.send_str(
            '{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD","DOGE/USD"]},"req_id":7}'
        )
        replies = [await receive(ws) for _ in range(4)]

        assert status["channel"] == "status"
        assert status["data"][0]["system"] == "online"
        assert status["data"][0]["api_version"] == "v2"
        acks, snapshots = replies[0::2], replies[1::2]
        assert [a["result"]["symbol"] for a in acks] == ["BTC/USD", "DOGE/USD"]
        for ack in acks:
            assert (ack["method"], ack["success"], ack["req_id"]) == ("subscribe", True, 7)
            assert (ack["result"]["channel"], ack["result"]["depth"], ack["result"]["snapshot"]) == ("book", 10, True)
        for snap in snapshots:
            entry = snap["data"][0]
            book = venue.book_for_symbol(entry["symbol"])
            bids = [(lv["price"], lv["qty"]) for lv in entry["bids"]]
            asks = [(lv["price"], lv["qty"]) for lv in entry["asks"]]
            assert (snap["channel"], snap["type"]) == ("book", "snapshot")
            assert (bids, asks) == wire_levels(book)  # padded: pair_decimals for prices, 8 for qty
            assert entry["checksum"] == docs_checksum(asks, bids)
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", entry["timestamp"])


async def test_updates_keep_a_client_book_trimmed_to_depth_on_the_venues_checksum() -> None:
    async with (
        kraken_venue() as venue,
        ws_client(venue, "/v2") as ws,
    ):
        local = LocalBook(await subscribe_book(ws, "ETH/USD"), 10)
        updates = 0
        async with asyncio.timeout(5):
            while updates < 20:
                msg = await receive(ws)
                if msg.get("type") != "update":
                    continue
                local.apply(msg["data"][0])
                assert msg["data"][0]["checksum"] == local.checksum()
                updates += 1
        await venue.market.close()
        await drain(ws, local)

        assert updates == 20
        assert (local.sorted_bids(), local.sorted_asks()) == wire_levels(venue.book_for_symbol("ETH/USD"))


async def test_a_level_pushed_out_of_the_depth_is_not_deleted_and_trimming_gives_the_venue_book() -> None:
    market = Market(SPECS, LIVELY)
    async with (
        kraken_venue(run=False, market=market) as venue,
        ws_client(venue, "/v2") as ws,
    ):
        snapshot = await subscribe_book(ws, "BTC/USD")
        trimmed, untrimmed = LocalBook(snapshot, 10), LocalBook(snapshot, 10)
        book = venue.book_for_symbol("BTC/USD")

        market.inject("kraken", "BTC/USD", bps=2, duration_ms=60_000)  # better bids arrive on top

        entry = (await receive_where(ws, channel="book", type="update"))["data"][0]
        trimmed.apply(entry)
        untrimmed.apply(entry, trim=False)
        bids, asks = wire_levels(book)
        deleted = {lv["price"] for lv in entry["bids"] if float(lv["qty"]) == 0}
        pushed_out = [p for p, _ in snapshot_bids(snapshot) if p not in dict(bids) and p not in deleted]
        still_on_book = {f"{book.price(t):.{book.price_decimals}f}" for t in book.bids}
        assert pushed_out  # left the top 10 without a delete...
        assert set(pushed_out) <= still_on_book  # ...while still on the venue's book
        assert len(untrimmed.bids) > 10
        assert (trimmed.sorted_bids(), trimmed.sorted_asks()) == (bids, asks)
        assert entry["checksum"] == trimmed.checksum()
        assert any(float(lv["qty"]) == 0 for lv in entry["asks"])  # asks that left the book are deleted


def snapshot_bids(snapshot: dict[str, Any]) -> Levels:
    return [(lv["price"], lv["qty"]) for lv in snapshot["bids"]]


async def test_a_bad_checksum_fault_corrupts_exactly_one_update() -> None:
    async with (
        kraken_venue() as venue,
        ws_client(venue, "/v2") as ws,
    ):
        local = LocalBook(await subscribe_book(ws, "SOL/USD"), 10)
        venue.faults.bad_checksum(symbol="SOL/USD")
        wrong = 0
        for _ in range(10):
            msg = await receive_where(ws, channel="book", type="update")
            local.apply(msg["data"][0])
            wrong += msg["data"][0]["checksum"] != local.checksum()

        assert wrong == 1
        assert venue.faults.injected["bad_checksum"] == 1


async def test_ping_is_answered_with_pong_and_a_quiet_subscription_gets_heartbeats() -> None:
    async with (
        kraken_venue(run=False) as venue,
        ws_client(venue, "/v2") as ws,
    ):
        await receive(ws)  # status
        await ws.send_str('{"method":"ping","req_id":42}')
        pong = await receive(ws)
        await subscribe_book(ws, "BTC/USD")
        heartbeat = await receive(ws, timeout_s=2)  # the market is still: nothing else to send

        assert (pong["method"], pong["req_id"]) == ("pong", 42)
        assert {"time_in", "time_out"} <= set(pong)
        assert heartbeat == {"channel": "heartbeat"}


@pytest.mark.parametrize(
    ("request_text", "error", "symbol"),
    [
        ('{"method":"subscribe","params":{"channel":"book","symbol":["FOO/USD"]},"req_id":1}',
         "Currency pair not supported FOO/USD", "FOO/USD"),
        ('{"method":"subscribe","params":{"channel":"book","symbol":["XBT/USD"]},"req_id":1}',
         "Currency pair not supported XBT/USD", "XBT/USD"),  # v1's name; v2 says BTC/USD
        ('{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":15},"req_id":1}',
         "Subscription depth not supported", None),
        ('{"method":"subscribe","params":{"channel":"book","symbol":"BTC/USD"},"req_id":1}', "Malformed request", None),
        ('{"method":"unsubscribe","params":{"channel":"book","symbol":["BTC/USD"]},"req_id":1}',
         "Subscription Not Found", "BTC/USD"),
        ('{"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USD"]},"req_id":1}',
         "Channel trade not supported", None),
        ('{"method":"subscrib","params":{},"req_id":1}', "Malformed request", None),
        ('{"method":"subscribe", "params": {', "Malformed request", None),
    ],
)  # fmt: skip
async def test_bad_requests_get_kraken_error_replies_and_subscribe_nothing(
    request_text: str, error: str, symbol: str | None
) -> None:
    async with (
        kraken_venue(run=False) as venue,
        ws_client(venue, "/v2") as ws,
    ):
        await receive(ws)  # status
        await ws.send_str(request_text)

        answer = await receive(ws)
        assert answer["error"] == error
        assert answer["success"] is False
        assert answer.get("symbol") == symbol
        assert not any(conn.topics for conn in venue.connections)


async def test_one_depth_per_symbol_per_connection_and_a_resubscribe_after_unsubscribe_gets_a_fresh_snapshot() -> None:
    async with (
        kraken_venue(run=False) as venue,
        ws_client(venue, "/v2") as ws,
    ):
        await subscribe_book(ws, "BTC/USD", depth=10)
        await ws.send_str(
            '{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"],"depth":25},"req_id":2}'
        )
        already = await receive_where(ws, method="subscribe")
        await ws.send_str('{"method":"unsubscribe","params":{"channel":"book","symbol":["BTC/USD"]},"req_id":3}')
        unsubscribed = await receive_where(ws, method="unsubscribe")
        snapshot = await subscribe_book(ws, "BTC/USD", depth=25)

        assert (already["error"], already["symbol"], already["req_id"]) == ("Already subscribed", "BTC/USD", 2)
        assert unsubscribed["success"] is True
        assert unsubscribed["result"] == {"channel": "book", "depth": 10, "symbol": "BTC/USD"}
        assert len(snapshot["bids"]) == 20  # the sim's whole book
        assert {t for _, t in next(iter(venue.connections)).topics} == {"book-25"}


@pytest.mark.parametrize("kind", ["wrong_types", "nan_price", "crossed"])
async def test_malformed_frames_are_in_krakens_format(kind: str) -> None:
    async with (
        kraken_venue() as venue,
        ws_client(venue, "/v2") as ws,
    ):
        local = LocalBook(await subscribe_book(ws, "BTC/USD"), 10)
        venue.faults.malformed(kind, symbol="BTC/USD")  # type: ignore[arg-type]

        entry = (await receive_where(ws, channel="book", type="update"))["data"][0]

        if kind == "wrong_types":
            assert entry["bids"] == "not a list of levels"
            assert isinstance(entry["checksum"], str)
        elif kind == "nan_price":
            assert entry["bids"][0]["price"] == "NaN"
        else:
            local.apply(entry)
            assert float(local.sorted_bids()[0][0]) > float(local.sorted_asks()[0][0])
            assert entry["checksum"] != local.checksum()  # the venue's checksum is of its own, uncrossed book
        assert venue.faults.injected[f"malformed_{kind}"] == 1


@pytest.mark.parametrize(
    ("path", "params", "error"),
    [
        ("Depth", {"pair": "DOGEEUR"}, "EQuery:Unknown asset pair"),
        ("Depth", {}, "EGeneral:Invalid arguments"),
        ("Depth", {"pair": "XBTUSD", "count": "0"}, "EGeneral:Invalid arguments:count"),
        ("OHLC", {"pair": "XBTUSD", "interval": "7"}, "EGeneral:Invalid arguments:interval"),
        ("Ticker", {"pair": "XBTUSD,NOPE"}, "EQuery:Unknown asset pair"),
        ("Assets", {"asset": "NOPE"}, "EQuery:Unknown asset"),
    ],
)
async def test_bad_rest_requests_get_kraken_error_envelopes(path: str, params: dict[str, str], error: str) -> None:
    async with kraken_venue(run=False) as venue, aiohttp.ClientSession() as session:
        async with session.get(f"{venue.http_url}/0/public/{path}", params=params) as response:
            body = await response.json()

        assert response.status == 200
        assert body == {"error": [error]}


async def test_rest_takes_a_pair_by_id_altname_or_ws_name_and_answers_under_its_id() -> None:
    async with kraken_venue(run=False) as venue, aiohttp.ClientSession() as session:
        results = []
        for name in ("XXBTZUSD", "XBTUSD", "XBT/USD", "BTC/USD"):
            async with session.get(f"{venue.http_url}/0/public/Depth", params={"pair": name, "count": "2"}) as r:
                results.append(await r.json())
        async with session.get(f"{venue.http_url}/0/public/OHLC", params={"pair": "XDGUSD"}) as r:
            ohlc = (await r.json())["result"]

        assert all(r == results[0] for r in results)
        assert list(results[0]["result"]) == ["XXBTZUSD"]
        assert len(results[0]["result"]["XXBTZUSD"]["bids"]) == 2
        rows = ohlc["XDGUSD"]
        assert len(rows) == 720
        assert ohlc["last"] == rows[-2][0]  # the newest row is the unfinished candle


async def test_closing_a_venue_with_clients_attached_leaves_no_task_behind() -> None:
    tasks_before = asyncio.all_tasks()
    market = Market(SPECS, LIVELY)
    async with aiohttp.ClientSession() as session:
        async with SimVenue("kraken", KrakenProtocol(), market, SYMBOLS) as venue, market:
            ws = await session.ws_connect(venue.ws_url + "/v2")
            await subscribe_book(ws, "BTC/USD")

        msg = await ws.receive(timeout=3)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        await ws.close()
    assert asyncio.all_tasks() == tasks_before
