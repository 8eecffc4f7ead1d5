"""The shared contract harness for per-venue wire-format tests: a scripted loopback venue and the real ccxt.pro client.

Every CEX venue supplies one payload file, `formats/<venue>.json` (the shape is `VenueScript` below): the unified
market(s) ccxt is given, the REST responses its order-book flow asks for, and the WebSocket frames the exchange sends,
written from the exchange's public docs (the file cites them). Nothing here knows any one exchange: the server replays
what the file says, the client is the real ccxt.pro class for the venue id with every host in `exchange.urls['api']`
pointed at the server, and the test reads the book through `arb.connectors.quotes.quote_from_order_book`
(hummingbot's `AbstractExchangeConnectorTests`, ccxt's `ts/src/test/static/`: one suite, payloads per venue).

How a script runs, step by step:
  * `steps[0]` (and any step with `on`) is the server's answer to a client message that contains `on` (a subset
    match, e.g. the subscribe request); the others are pushed by the test once its `watch_order_book` is waiting, so
    exactly the frames of one step are between two reads of the book.
  * `replies` answer other client messages (pings, a second subscribe ack); `on_connect` frames greet every new
    connection (Kraken's status, Bitfinex's info event); `rest` serves the HTTP calls (Binance's depth snapshot,
    KuCoin's bullet token), each checked against the query the exchange documents.
  * Frames are JSON as the exchange sends it; `{"$gzip": X}` is X gzip-compressed in a binary frame (HTX, BingX),
    `{"$protobuf": X}` a MEXC PushDataV3ApiWrapper in protobuf, `{"$text": "..."}` a raw text frame. A string
    `"$req:a.b"` is replaced by that field of the client message the frames answer (ids the exchange echoes), and
    `"$ws:/path"` by the loopback WebSocket URL with that path (KuCoin's bullet endpoint).

The client is pointed at the server by `arb.connectors.urls.point_at_local`, the rewrite the connector itself uses, so
hosts are dropped and paths kept: the scripts give the documented URLs, the server matches and checks their paths. A
script's `ws_prefix` is put in front of every WebSocket path, for ccxt code that sniffs the URL (see binance.json).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import time
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ccxt.pro
import msgspec
from aiohttp import WSMsgType, web

from arb.connectors.urls import point_at_local

FORMATS_DIR = Path(__file__).parent / "formats"
STEP_TIMEOUT_S = 5.0


# ------------------------------------------------------------------------------------ the payload file


class Book(msgspec.Struct, forbid_unknown_fields=True):
    """The venue's book after a step, as the exchange's own numbers (strings, as on the wire)."""

    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]
    timestamp: int | None = None
    """Venue time of the book in ms, or None where the venue sends none (the Quote then carries ts_recv)."""
    nonce: int | None = None
    """The venue's update id as ccxt keeps it (the Quote's `sequence`), None where the venue has none."""


class Rest(msgspec.Struct, forbid_unknown_fields=True):
    url: str
    """The documented endpoint, e.g. `https://api.binance.com/api/v3/depth` (matched on its path)."""
    body: Any
    method: str = "GET"
    query: dict[str, str] = {}
    """Query parameters the request must carry (a subset match)."""
    delay_ms: int = 0
    """Answer this much later, so frames the exchange sends meanwhile reach the client first (the docs' recipe)."""


class Reply(msgspec.Struct, forbid_unknown_fields=True):
    on: Any
    frames: list[Any]


class Step(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    frames: list[Any]
    expect: Book
    on: Any = None
    """A client message (subset) that makes the server send this step; None: the test pushes it."""
    checksum: int | None = None
    """The checksum the step's last frame carries, recomputed from `expect` by the documented algorithm."""


class BadUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """An update the venue's docs say must not be applied (a sequence gap, a wrong checksum)."""

    name: str
    frames: list[Any]
    raises: str | None
    """The ccxt exception class the waiting `watch_order_book` gets; None where ccxt does not check (see `applied`)."""
    escapes: bool = False
    """ccxt raises `raises` out of its message handler instead of rejecting the watch: asyncio logs it, the watch is
    never answered and the connection's receive loop stops (only a stall watchdog notices)."""
    book_dropped: bool = False
    """Whether ccxt discards its copy of the book (so the next watch starts from a fresh snapshot)."""
    applied: Book | None = None
    """Where ccxt does not check: the (wrong) book it serves, pinned so a ccxt that starts checking is noticed."""

    def __post_init__(self) -> None:
        if (self.raises is None) == (self.applied is None):
            raise ValueError("a bad update names either the error ccxt raises or the book it serves unchecked")


class VenueScript(msgspec.Struct, forbid_unknown_fields=True):
    venue: str
    instrument: str
    symbol: str
    docs: list[str]
    notes: str
    markets: list[dict[str, Any]]
    ws_url: str
    """The documented WebSocket endpoint; the client must open its connection on its path (plus `ws_prefix`)."""
    steps: list[Step]
    options: dict[str, Any] = {}
    on_connect: list[Any] = []
    replies: list[Reply] = []
    rest: list[Rest] = []
    bad_update: BadUpdate | None = None
    checksum: str | None = None
    """Name of the documented checksum algorithm the frames carry (see `CHECKSUMS`)."""
    ws_prefix: str = ""
    """Path put in front of every WebSocket URL: what `point_at_local`'s ws_url must carry for this venue."""
    expect_sent: list[Any] = []
    """Client messages (subsets) the venue requires besides the subscribe, e.g. the answer to its ping."""


_DECODER = msgspec.json.Decoder(VenueScript, float_hook=Decimal)
_ENCODER = msgspec.json.Encoder(decimal_format="number")
"""JSON numbers are read as Decimal and written back as the same literal, so a frame carries exactly the digits its
file has (Kraken v2 sends `"qty": 0.80000000`: full precision as a JSON number, which the checksum is computed on)."""


def load_script(venue: str) -> VenueScript:
    return _DECODER.decode((FORMATS_DIR / f"{venue}.json").read_bytes())


def frame_text(frame: Any) -> str:
    """A frame's JSON text as the venue sends it."""
    return _ENCODER.encode(frame).decode()


def plain(value: Any) -> Any:
    """A script value with Decimals as floats: for what ccxt is handed (markets, options), never for frames."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return float(value) if isinstance(value, Decimal) else value


def scripted_venues() -> list[str]:
    return sorted(p.stem for p in FORMATS_DIR.glob("*.json"))


# ------------------------------------------------------------------------------------ matching, frames


def contains(message: Any, pattern: Any) -> bool:
    """True when `pattern` is a subset of `message` (dict keys recursively, lists element-wise, scalars equal)."""
    if isinstance(pattern, dict):
        return isinstance(message, dict) and all(k in message and contains(message[k], v) for k, v in pattern.items())
    if isinstance(pattern, list):
        return (
            isinstance(message, list)
            and len(message) == len(pattern)
            and all(contains(m, p) for m, p in zip(message, pattern, strict=True))
        )
    return bool(message == pattern)


def _lookup(message: Any, dotted: str) -> Any:
    value = message
    for part in dotted.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value


def _mexc_protobuf(message: dict[str, Any]) -> bytes:
    """A MEXC PushDataV3ApiWrapper in protobuf wire format (the classes ccxt ships, from MEXC's published .proto)."""
    from ccxt.protobuf.mexc import PushDataV3ApiWrapper_pb2
    from google.protobuf import json_format  # type: ignore[import-untyped]

    wrapper = PushDataV3ApiWrapper_pb2.PushDataV3ApiWrapper()
    json_format.ParseDict(message, wrapper)
    return bytes(wrapper.SerializeToString())


# ---------------------------------------------------------------------------------- the loopback venue


@dataclass
class LoopbackVenue:
    """An aiohttp server on 127.0.0.1 that plays one `VenueScript`; records what the client sent."""

    script: VenueScript
    runner: web.AppRunner | None = None
    port: int = 0
    ws_paths: list[str] = field(default_factory=list)
    received: list[Any] = field(default_factory=list)
    unmatched_rest: list[str] = field(default_factory=list)
    _ws: web.WebSocketResponse | None = None
    _fired: set[int] = field(default_factory=set)
    _last_request: Any = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, handle_signals=False)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        if self.runner is not None:
            await self.runner.cleanup()

    def url(self, scheme: str, path: str = "") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    # ---- frames

    def _resolve(self, value: Any, request: Any) -> Any:
        if isinstance(value, dict):
            return {k: self._resolve(v, request) for k, v in value.items()}
        if isinstance(value, list):
            return [self._resolve(v, request) for v in value]
        if isinstance(value, str):
            if value.startswith("$req:"):
                return _lookup(request, value[5:])
            if value.startswith("$ws:"):
                return self.url("ws", value[4:])
        return value

    async def _send(self, frames: list[Any], request: Any) -> None:
        ws = self._ws
        assert ws is not None, "the client has no WebSocket open to push to"
        for raw in frames:
            frame = self._resolve(raw, request)
            if isinstance(frame, dict) and "$gzip" in frame:
                await ws.send_bytes(gzip.compress(_ENCODER.encode(frame["$gzip"])))
            elif isinstance(frame, dict) and "$protobuf" in frame:
                await ws.send_bytes(_mexc_protobuf(frame["$protobuf"]))
            elif isinstance(frame, dict) and "$text" in frame:
                await ws.send_str(frame["$text"])
            else:
                await ws.send_str(frame_text(frame))

    async def push(self, frames: list[Any]) -> None:
        await self._send(frames, self._last_request)

    # ---- HTTP and WebSocket

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        call = f"{request.method} {request.path}?{request.query_string}"
        for rest in self.script.rest:
            path = urlsplit(rest.url).path
            if rest.method == request.method and path == request.path and contains(dict(request.query), rest.query):
                if rest.delay_ms:
                    await asyncio.sleep(rest.delay_ms / 1000)
                body = self._resolve(rest.body, dict(request.query))
                return web.Response(body=_ENCODER.encode(body), content_type="application/json")
        self.unmatched_rest.append(call)
        return web.json_response({"error": f"loopback venue has no scripted answer for {call}"}, status=404)

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._ws = ws
        self.ws_paths.append(request.path)
        await self._send(self.script.on_connect, None)
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                message: Any = json.loads(msg.data)
            except ValueError:
                message = msg.data
            self.received.append(message)
            await self._answer(message)
        return ws

    async def _answer(self, message: Any) -> None:
        for i, step in enumerate(self.script.steps):
            if step.on is not None and i not in self._fired and contains(message, step.on):
                self._fired.add(i)
                self._last_request = message
                await self._send(step.frames, message)
                return
        for reply in self.script.replies:
            if contains(message, reply.on):
                await self._send(reply.frames, message)
                return


# --------------------------------------------------------------------------------------- the ccxt side


def pending_futures(exchange: Any) -> int:
    """Futures ccxt is waiting on: one more than before a watch means the watch is registered, so frames pushed now
    reach it (a frame that arrives earlier resolves nothing and its update is only seen by the next watch)."""
    return sum(1 for c in (exchange.clients or {}).values() for f in c.futures.values() if not f.done())


async def until(predicate: Callable[[], bool], what: str, timeout_s: float = STEP_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting until {what}")
        await asyncio.sleep(0.001)


@dataclass
class Session:
    """One venue script against one real ccxt.pro exchange instance."""

    script: VenueScript
    venue: LoopbackVenue
    exchange: Any

    async def step(self, step: Step | BadUpdate) -> Any:
        """Run one step: wait until ccxt listens for the book, let the venue send the frames, return the book."""
        async with self._watching(step) as watch:
            return await asyncio.wait_for(watch, STEP_TIMEOUT_S)

    async def step_unanswered(self, step: BadUpdate, handled: Callable[[], bool]) -> bool:
        """Run a step whose frames ccxt chokes on; wait until `handled()`; True if the watch is still unanswered."""
        async with self._watching(step) as watch:
            await until(handled, "ccxt has handled the frames")
            await asyncio.sleep(0.05)
            return not watch.done()

    @contextlib.asynccontextmanager
    async def _watching(self, step: Step | BadUpdate) -> AsyncIterator[asyncio.Future[Any]]:
        before = pending_futures(self.exchange)
        watch = asyncio.ensure_future(self.exchange.watch_order_book(self.script.symbol))
        try:
            if isinstance(step, BadUpdate) or step.on is None:
                await until(lambda: pending_futures(self.exchange) > before or watch.done(), "ccxt waits for the book")
                await self.venue.push(step.frames)
            yield watch
        finally:
            if not watch.done():
                watch.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await watch


@contextlib.asynccontextmanager
async def session(script: VenueScript) -> AsyncIterator[Session]:
    venue = LoopbackVenue(script)
    await venue.start()
    exchange = getattr(ccxt.pro, script.venue)({"enableRateLimit": False, "options": plain(script.options)})
    try:
        point_at_local(exchange, venue.url("http"), venue.url("ws", script.ws_prefix))
        # every key ccxt's own parse_market would give (a spot market has linear/inverse None, ...): handlers read
        # markets_by_id, which keeps the dicts as given
        exchange.set_markets([exchange.safe_market_structure(plain(m)) for m in script.markets])
        # load_markets over REST would have opened the session; with set_markets nothing has, and KuCoin's bullet
        # negotiation spawns a task on `exchange.asyncio_loop` before any watch opens it (None -> AttributeError).
        exchange.open()
        yield Session(script, venue, exchange)
    finally:
        await exchange.close()
        await venue.stop()


# --------------------------------------------------------------------------- documented book checksums


def _crc32_signed(text: str) -> int:
    value = zlib.crc32(text.encode())
    return value - (1 << 32) if value >= 1 << 31 else value


def _interleaved(book: Book, depth: int, ask_sign: str = "") -> str:
    """bid1:bsz1:ask1:asz1:bid2:... over the first `depth` levels, a side's missing levels left out."""
    parts: list[str] = []
    for i in range(depth):
        if i < len(book.bids):
            parts += list(book.bids[i])
        if i < len(book.asks):
            parts += [book.asks[i][0], ask_sign + book.asks[i][1]]
    return ":".join(parts)


def okx_checksum(book: Book) -> int:
    """OKX v5 `books`: CRC32 (signed) of the first 25 bid/ask levels interleaved as strings.

    https://www.okx.com/docs-v5/en/#order-book-trading-market-data-ws-order-book-channel (Checksum)
    """
    return _crc32_signed(_interleaved(book, 25))


def bitget_checksum(book: Book) -> int:
    """Bitget v2 `books`: the same construction as OKX over 25 levels, signed CRC32.

    https://www.bitget.com/api-doc/spot/websocket/public/Depth-Channel (Checksum)
    """
    return _crc32_signed(_interleaved(book, 25))


def bitfinex_checksum(book: Book) -> int:
    """Bitfinex v2 `book` P0: CRC32 (signed) of `bidPrice:bidAmount:askPrice:-askAmount` over 25 levels.

    https://docs.bitfinex.com/docs/ws-websocket-checksum
    """
    return _crc32_signed(_interleaved(book, 25, ask_sign="-"))


def _kraken_digits(value: str) -> str:
    return value.replace(".", "").lstrip("0")


def kraken_checksum(book: Book) -> int:
    """Kraken v2 `book`: CRC32 (unsigned) of the top 10 asks (low to high) then bids, `.` and leading zeros dropped.

    https://docs.kraken.com/api/docs/guides/spot-ws-book-v2
    """
    text = "".join(_kraken_digits(p) + _kraken_digits(q) for p, q in book.asks[:10])
    text += "".join(_kraken_digits(p) + _kraken_digits(q) for p, q in book.bids[:10])
    return zlib.crc32(text.encode())


CHECKSUMS: dict[str, Callable[[Book], int]] = {
    "okx": okx_checksum,
    "bitget": bitget_checksum,
    "bitfinex": bitfinex_checksum,
    "kraken": kraken_checksum,
}
