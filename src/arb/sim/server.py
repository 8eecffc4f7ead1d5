"""The venue server framework: one aiohttp app per venue on 127.0.0.1, REST + WebSocket, faults, pings.

Split of work, so a new exchange is one module (`arb.sim.venues.<name>`) and nothing else:

- the **framework** (here) owns the socket, the async lifecycle, the market feed (one listener per venue), the
  subscription index (market id x channel -> connections), the per-connection outbound queue, server pings and the
  pong deadline, the fault switchboard (`arb.sim.faults`) and the control endpoints under `/_sim/`;
- a **protocol** (`Protocol` subclass) owns the wire format: REST routes and bodies, the WebSocket handshake and
  subscribe messages, the rendering of a `BookUpdate` per channel, its error / rate-limit / maintenance bodies and
  what a malformed frame looks like in its format.

Control endpoints (exempt from every fault, JSON in and out):

    POST /_sim/faults         {"fault": "stall", "seconds": 5}  (see arb.sim.faults for every fault and field)
    GET  /_sim/faults         what is armed, what was injected
    POST /_sim/dislocations   {"symbol": "BTC/USDT", "bps": 50, "duration_ms": 2000}  (or "instrument": "BTC/USD")
    GET  /_sim/book?symbol=BTC/USDT&depth=20
    GET  /_sim/stats
    POST /_sim/accounts, GET /_sim/accounts/{key}, POST|GET /_sim/order-faults, GET /_sim/orders
                              (private trading: `SimVenue.trading`, see arb.sim.trading)

Lifecycle: `async with SimVenue(...)` (or `SimExchangeGroup`, which also runs the market). A venue refuses to start
twice or after close; closing sends every client a close frame, waits briefly for the handlers, then stops the server.
Every background task is started with `arb.tasks.spawn` and cancelled and awaited on close.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import itertools
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Final

import msgspec
import orjson
from aiohttp import WSMsgType, web

from arb.sim.faults import Faults, MalformedKind, decode_fault
from arb.sim.market import (
    Book,
    BookUpdate,
    DislocationSchedule,
    InstrumentSpec,
    Market,
    MarketConfig,
    VenueFeed,
    seeded_basis_bps,
)
from arb.sim.trading import Trading
from arb.tasks import cancel_and_wait, spawn

if TYPE_CHECKING:
    from arb.config.schema import Settings
    from arb.sim.truth import TruthLog

log = logging.getLogger(__name__)

_PING: Final = 1
_PONG: Final = 2
_CLOSE: Final = 3
_Outbound = str | tuple[int, bytes] | tuple[int, int]


class Protocol(abc.ABC):
    """A venue's wire format. Subclasses live in `arb.sim.venues` and cite the exchange docs they follow."""

    name: ClassVar[str]
    """The exchange whose format this is (the ccxt id of the client that speaks it)."""
    ws_paths: ClassVar[tuple[str, ...]]
    """aiohttp route patterns served as WebSocket endpoints."""
    maintenance_exempt: ClassVar[frozenset[str]] = frozenset()
    """REST paths that still answer during maintenance (a venue's own status endpoint)."""

    @abc.abstractmethod
    def market_id(self, symbol: str) -> str:
        """The venue's own id for a unified symbol (`BTC/USDT` -> `BTCUSDT`); ValueError if it cannot list it."""

    @abc.abstractmethod
    def install(self, venue: SimVenue, app: web.Application) -> None:
        """Add the REST routes to `app`."""

    def on_connect(self, conn: Connection) -> None:  # noqa: B027 - optional hook
        """A WebSocket was opened (e.g. subscribe streams named in its URL)."""

    @abc.abstractmethod
    def on_text(self, conn: Connection, text: str) -> None:
        """A text frame arrived from the client (subscribe, unsubscribe, application-level ping...)."""

    @abc.abstractmethod
    def render(self, channel: str, update: BookUpdate, venue: SimVenue) -> str | None:
        """The message for `update` on `channel`, or None when this update sends nothing there."""

    def sequenced(self, channel: str) -> bool:
        """Whether `channel` carries a sequence chain (a `skip_sequence` fault withholds its updates)."""
        return False

    def frame(self, conn: Connection, channel: str, market_id: str, payload: str) -> str:
        """Wrap a rendered payload for one connection (e.g. Binance combined streams)."""
        return payload

    def malformed(self, kind: MalformedKind, channel: str, update: BookUpdate, payload: str) -> str:
        """A bad frame of `kind` in place of `payload` (what `render` gave for `update`).

        Default, for every kind: the message cut in half (invalid JSON). Protocols override it to produce wrong
        types, a NaN price or a crossing level in their own format.
        """
        return payload[: max(1, len(payload) // 2)]

    def rate_limited(self, status: int, retry_after_s: int) -> web.Response:
        """The REST answer to a request refused by a rate-limit fault (429/418)."""
        return web.json_response({"error": "rate limited"}, status=status, headers={"Retry-After": str(retry_after_s)})

    def maintenance_response(self, retry_after_s: int | None) -> web.Response:
        """The REST (and refused WebSocket upgrade) answer while the venue is in maintenance."""
        headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else None
        return web.json_response({"error": "maintenance"}, status=503, headers=headers)

    def on_maintenance(self, conn: Connection) -> None:  # noqa: B027 - optional hook
        """Just before a connection is closed for maintenance (e.g. send the venue's shutdown notice)."""


def add_get_routes(
    app: web.Application,
    routes: Mapping[str, Callable[[web.Request], Any]],
    *,
    refused: type[Exception],
    error: Callable[[Any], web.Response],
    body: Callable[[Any], web.Response] | None = None,
) -> None:
    """Add synchronous REST handlers for a protocol: `refused` (the venue's own bad-request exception) is answered
    with `error(exc)`, a result with `body(result)` (None: the handler already built the response)."""
    for path, fn in routes.items():
        app.router.add_get(path, _get_handler(fn, refused, error, body))


def _get_handler(
    fn: Callable[[web.Request], Any],
    refused: type[Exception],
    error: Callable[[Any], web.Response],
    body: Callable[[Any], web.Response] | None,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        try:
            result = fn(request)
        except refused as exc:
            return error(exc)
        return result if body is None else body(result)

    return handler


def cut_connection(request: web.Request) -> None:
    """Drop a REST request's TCP connection without an answer (what a network cut looks like to the client)."""
    transport = request.transport
    if transport is not None:
        transport.abort()


class Connection:
    """One client WebSocket: its subscriptions, its outbound queue (drained by a writer task) and ping state."""

    def __init__(self, venue: SimVenue, ws: web.WebSocketResponse, request: web.Request, cid: int) -> None:
        self.venue = venue
        self.ws = ws
        self.request = request
        self.id = cid
        self.state: dict[str, Any] = {}
        """The protocol's per-connection state (e.g. Binance's `combined` property)."""
        self.topics: set[tuple[str, str]] = set()
        """(market id, channel) this connection receives."""
        self.sent = 0
        self.closed = False
        self._out: deque[_Outbound] = deque()
        self._wake = asyncio.Event()
        self._ping_seq = 0
        self._pings_out: set[bytes] = set()
        self.ping_outstanding_since: float | None = None
        self.next_ping_at = time.monotonic() + venue.ping_interval_s
        self._writer = spawn(self._write(), name=f"sim.{venue.venue_id}.ws{cid}.writer")

    def send(self, text: str) -> None:
        """Queue a text frame (dropped while the venue is stalled or the connection is closing)."""
        if self.closed or self.venue.faults.stalled():
            return
        if len(self._out) >= self.venue.max_outbound:
            log.warning("sim.slow_consumer venue=%s conn=%d queued=%d", self.venue.venue_id, self.id, len(self._out))
            self.venue.stats["slow_consumers"] += 1
            self.abort()
            return
        self._out.append(text)
        self.sent += 1
        self._wake.set()

    def subscribe(self, market_id: str, channel: str) -> None:
        self.topics.add((market_id, channel))
        self.venue._subs.setdefault(market_id, {}).setdefault(channel, set()).add(self)

    def unsubscribe(self, market_id: str, channel: str) -> None:
        self.topics.discard((market_id, channel))
        channels = self.venue._subs.get(market_id)
        if channels is None:
            return
        conns = channels.get(channel)
        if conns is not None:
            conns.discard(self)
            if not conns:
                del channels[channel]
        if not channels:
            del self.venue._subs[market_id]

    def ping(self, now: float) -> None:
        self._ping_seq += 1
        payload = str(self._ping_seq).encode()
        self._pings_out.add(payload)
        if self.ping_outstanding_since is None:
            self.ping_outstanding_since = now
        self.next_ping_at = now + self.venue.ping_interval_s
        self._control(_PING, payload)

    def on_pong(self, payload: bytes) -> None:
        """Only a pong echoing one of our pings counts (Binance: unsolicited pongs do not prevent disconnection)."""
        if bytes(payload) in self._pings_out:  # aiohttp hands frames over as bytearray
            self._pings_out.clear()
            self.ping_outstanding_since = None

    def pong(self, payload: bytes) -> None:
        if not self.venue.faults.stalled():
            self._control(_PONG, payload)

    def _control(self, kind: int, payload: bytes) -> None:
        if not self.closed:
            self._out.append((kind, payload))
            self._wake.set()

    def close_soon(self, code: int = 1000) -> None:
        """Send what is queued, then a close frame with `code` (even while stalled)."""
        if not self.closed:
            self._out.append((_CLOSE, code))
            self._wake.set()

    def abort(self) -> None:
        """Cut the TCP connection without a close frame (what a network drop looks like)."""
        self.closed = True
        self._out.clear()
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    def discard_outbound(self) -> None:
        self._out.clear()

    async def _write(self) -> None:
        ws = self.ws
        out = self._out
        try:
            while True:
                while out:
                    item = out.popleft()
                    if isinstance(item, str):
                        await ws.send_str(item)
                    elif item[0] == _PING:
                        await ws.ping(item[1])  # type: ignore[arg-type]
                    elif item[0] == _PONG:
                        await ws.pong(item[1])  # type: ignore[arg-type]
                    else:
                        self.closed = True
                        await ws.close(code=item[1])  # type: ignore[arg-type]
                        return
                self._wake.clear()
                await self._wake.wait()
        except ConnectionError:
            self.closed = True  # the client went away; the handler notices and cleans up

    async def _finish(self) -> None:
        self.closed = True
        for market_id, channel in list(self.topics):
            self.unsubscribe(market_id, channel)
        await cancel_and_wait(self._writer, timeout_s=1.0)


class SimVenue:
    """One local venue: a protocol served on its own port, fed by `market`, listing `symbols`.

    `symbols` maps instrument id -> the venue's unified symbol (`{"BTC/USD": "BTC/USDT"}`); the protocol turns each
    into its own market id. Any venue id can be served by any protocol module, keeping its own symbols.
    """

    def __init__(
        self,
        venue_id: str,
        protocol: Protocol,
        market: Market,
        symbols: Mapping[str, str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ping_interval_s: float = 20.0,
        pong_timeout_s: float = 60.0,
        max_outbound: int = 10_000,
    ) -> None:
        if ping_interval_s <= 0 or pong_timeout_s <= 0:
            raise ValueError("ping_interval_s and pong_timeout_s must be > 0")
        self.venue_id = venue_id
        self.protocol = protocol
        self.market = market
        self.host = host
        self.ping_interval_s = ping_interval_s
        self.pong_timeout_s = pong_timeout_s
        self.max_outbound = max_outbound
        self.feed: VenueFeed = market.add_venue(venue_id, symbols)
        self.market_ids: list[str] = [protocol.market_id(b.symbol) for b in self.feed.books]
        self.books_by_market_id: dict[str, Book] = dict(zip(self.market_ids, self.feed.books, strict=True))
        self.faults = Faults(self)
        self.trading = Trading(venue_id, self.feed.books)
        """Accounts, orders and order faults; protocols with private endpoints serve them (arb.sim.trading)."""
        self.stats: Counter[str] = Counter()
        self.requests: deque[tuple[float, str, str]] = deque(maxlen=10_000)
        """(monotonic time, method, path with query) of every REST request, newest last."""
        self._port = port
        self._subs: dict[str, dict[str, set[Connection]]] = {}
        self._conns: set[Connection] = set()
        self._done: dict[Connection, asyncio.Event] = {}
        self._conn_ids = itertools.count(1)
        self._state = "new"
        self._runner: web.AppRunner | None = None
        self._pinger: asyncio.Task[None] | None = None
        self._unlisten: Any = None

    # ------------------------------------------------------------------ addresses and lookups

    @property
    def port(self) -> int:
        if self._state != "running":
            raise RuntimeError(f"venue {self.venue_id} is not running")
        return self._port

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def connections(self) -> frozenset[Connection]:
        return frozenset(self._conns)

    def book(self, market_id: str) -> Book | None:
        return self.books_by_market_id.get(market_id)

    def book_for_symbol(self, symbol: str) -> Book:
        try:
            return self.feed.by_symbol[symbol]
        except KeyError:
            raise KeyError(f"venue {self.venue_id} does not list {symbol}") from None

    def event_time_ms(self, ts_ns: int) -> int:
        """Venue time for a message about an event at `ts_ns` (stops advancing under a `freeze_time` fault)."""
        return self.faults.event_time_ms(ts_ns // 1_000_000)

    def now_ms(self) -> int:
        return self.event_time_ms(time.time_ns())

    # ------------------------------------------------------------------ fault target

    def drop_connections(self, code: int | None) -> int:
        conns = list(self._conns)
        for conn in conns:
            if code is None:
                conn.abort()
            else:
                conn.close_soon(code)
        return len(conns)

    def close_for_maintenance(self) -> int:
        conns = list(self._conns)
        for conn in conns:
            self.protocol.on_maintenance(conn)
            conn.close_soon(1001)
        return len(conns)

    def discard_outbound(self) -> None:
        for conn in self._conns:
            conn.discard_outbound()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._state != "new":
            raise RuntimeError(f"venue {self.venue_id} was already started (state {self._state}); make a new one")
        self._state = "starting"
        app = web.Application(middlewares=[self._middleware()])
        self.protocol.install(self, app)
        for path in self.protocol.ws_paths:
            app.router.add_get(path, self._ws_handler)
        self._add_control_routes(app)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            self._state = "closed"
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        self._unlisten = self.feed.add_listener(self._on_updates)
        self._pinger = spawn(self._ping_loop(), name=f"sim.{self.venue_id}.pinger")
        self._state = "running"
        log.info(
            "sim.venue_started venue=%s protocol=%s url=%s symbols=%d",
            self.venue_id,
            self.protocol.name,
            self.http_url,
            len(self.market_ids),
        )

    async def close(self) -> None:
        if self._state in ("new", "closed"):
            self._state = "closed"
            return
        self._state = "closed"
        if self._unlisten is not None:
            self._unlisten()
        if self._pinger is not None:
            await cancel_and_wait(self._pinger)
        for conn in list(self._conns):
            conn.close_soon(1001)
        try:
            async with asyncio.timeout(2.0):
                for done in list(self._done.values()):
                    await done.wait()
        except TimeoutError:
            log.warning("sim.venue_close_slow venue=%s open=%d", self.venue_id, len(self._conns))
        for conn in list(self._conns):
            conn.abort()
        if self._runner is not None:
            await self._runner.cleanup()
        log.info("sim.venue_closed venue=%s", self.venue_id)

    async def __aenter__(self) -> SimVenue:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ market -> clients

    def _on_updates(self, updates: Sequence[BookUpdate]) -> None:
        self.stats["book_updates"] += len(updates)  # the offered load (benchmarks compare what arrived with it)
        self.trading.on_updates(updates)  # resting orders the book now crosses fill first
        subs = self._subs
        if not subs or self.faults.stalled():
            return
        protocol = self.protocol
        market_ids = self.market_ids
        check_faults = self.faults.message_faults_armed()
        for upd in updates:
            market_id = market_ids[upd.book.row]
            channels = subs.get(market_id)
            if not channels:
                continue
            # No copies: nothing below changes the index (a connection leaves it only in its own handler task).
            for channel, conns in channels.items():
                if check_faults:
                    payload = self._render_with_faults(channel, upd)
                else:
                    payload = protocol.render(channel, upd, self)
                if payload is None:
                    continue
                for conn in conns:
                    conn.send(protocol.frame(conn, channel, market_id, payload))

    def _render_with_faults(self, channel: str, upd: BookUpdate) -> str | None:
        symbol = upd.book.symbol
        if self.protocol.sequenced(channel) and self.faults.take("skip_sequence", symbol):
            return None
        payload = self.protocol.render(channel, upd, self)
        if payload is None:
            return None
        kind = self.faults.take_malformed(symbol)
        return payload if kind is None else self.protocol.malformed(kind, channel, upd, payload)

    async def _ping_loop(self) -> None:
        period = max(0.02, min(self.ping_interval_s, self.pong_timeout_s) / 4)
        while True:
            await asyncio.sleep(period)
            if self.faults.stalled():
                continue
            now = time.monotonic()
            for conn in list(self._conns):
                since = conn.ping_outstanding_since
                if since is not None and now - since > self.pong_timeout_s:
                    log.info("sim.pong_timeout venue=%s conn=%d waited_s=%.1f", self.venue_id, conn.id, now - since)
                    self.stats["pong_timeouts"] += 1
                    conn.abort()
                elif now >= conn.next_ping_at:
                    conn.ping(now)

    # ------------------------------------------------------------------ HTTP

    def _middleware(self) -> Any:
        @web.middleware
        async def gate(request: web.Request, handler: Any) -> web.StreamResponse:
            if request.path.startswith("/_sim/"):
                return await handler(request)  # type: ignore[no-any-return]
            if request.headers.get("Upgrade", "").lower() == "websocket":
                return await handler(request)  # type: ignore[no-any-return]
            self.requests.append((time.monotonic(), request.method, request.path_qs))
            self.stats[f"{request.method} {request.path}"] += 1
            if self.faults.in_maintenance() and request.path not in self.protocol.maintenance_exempt:
                self.faults.count("http_503")
                return self.protocol.maintenance_response(self.faults.maintenance_retry_after())
            refused = self.faults.rest_gate()
            if refused is not None:
                return self.protocol.rate_limited(*refused)
            return await handler(request)  # type: ignore[no-any-return]

        return gate

    async def _ws_handler(self, request: web.Request) -> web.StreamResponse:
        if self.faults.in_maintenance():
            self.faults.count("ws_refused")
            return self.protocol.maintenance_response(self.faults.maintenance_retry_after())
        ws = web.WebSocketResponse(autoping=False, compress=False, timeout=2.0, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = Connection(self, ws, request, next(self._conn_ids))
        done = asyncio.Event()
        self._conns.add(conn)
        self._done[conn] = done
        self.stats["ws_connections"] += 1
        log.info("sim.ws_open venue=%s conn=%d path=%s", self.venue_id, conn.id, request.path_qs)
        try:
            self.protocol.on_connect(conn)
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self.stats["ws_received"] += 1
                    self.protocol.on_text(conn, msg.data)
                elif msg.type == WSMsgType.PING:
                    conn.pong(msg.data)
                elif msg.type == WSMsgType.PONG:
                    conn.on_pong(msg.data)
        finally:
            self._conns.discard(conn)
            await conn._finish()
            self._done.pop(conn, None)
            done.set()
            log.info("sim.ws_closed venue=%s conn=%d sent=%d", self.venue_id, conn.id, conn.sent)
        return ws

    def _add_control_routes(self, app: web.Application) -> None:
        app.router.add_post("/_sim/faults", self._post_fault)
        app.router.add_get("/_sim/faults", self._get_faults)
        app.router.add_post("/_sim/dislocations", self._post_dislocation)
        app.router.add_get("/_sim/book", self._get_book)
        app.router.add_get("/_sim/stats", self._get_stats)
        trading = self.trading
        app.router.add_post("/_sim/accounts", _control(lambda r, body: trading.apply_account_change(body)))
        app.router.add_get(
            "/_sim/accounts/{key}", _control(lambda r, body: trading.account_json(r.match_info["key"]), missing=404)
        )
        app.router.add_post("/_sim/order-faults", _control(lambda r, body: trading.arm_fault(body)))
        app.router.add_get("/_sim/order-faults", _control(lambda r, body: trading.faults.state()))
        app.router.add_get(
            "/_sim/orders",
            _control(lambda r, body: trading.orders_json(r.query.get("api_key"), r.query.get("symbol"))),
        )

    async def _post_fault(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            spec = decode_fault(body)
            self.faults.apply(spec)
        except (msgspec.ValidationError, msgspec.DecodeError, ValueError) as e:
            return web.json_response({"error": str(e)}, status=422)
        return web.json_response({"ok": True, "fault": type(spec).__name__, "state": self.faults.state()})

    async def _get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.faults.state())

    async def _post_dislocation(self, request: web.Request) -> web.Response:
        try:
            req = msgspec.json.decode(await request.read(), type=_DislocationRequest)
            instrument = req.instrument
            if instrument is None:
                if req.symbol is None:
                    raise ValueError("give `symbol` or `instrument`")
                instrument = self.book_for_symbol(req.symbol).instrument
            d = self.market.inject(self.venue_id, instrument, req.bps, req.duration_ms)
        except (msgspec.ValidationError, msgspec.DecodeError, ValueError, KeyError) as e:
            return web.json_response({"error": str(e).strip('"')}, status=422)
        return web.Response(body=msgspec.json.encode(d), content_type="application/json")

    async def _get_book(self, request: web.Request) -> web.Response:
        symbol = request.query.get("symbol", "")
        try:
            book = self.book_for_symbol(symbol)
            depth = int(request.query.get("depth", "20"))
        except (KeyError, ValueError) as e:
            return web.json_response({"error": str(e).strip('"')}, status=422)
        bids, asks = book.levels(depth)
        return web.Response(
            body=orjson.dumps(
                {"symbol": symbol, "update_id": book.update_id, "ts_ns": book.ts_ns, "bids": bids, "asks": asks}
            ),
            content_type="application/json",
        )

    async def _get_stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"stats": dict(self.stats), "connections": len(self._conns), "injected": dict(self.faults.injected)}
        )


def _control(
    fn: Callable[[web.Request, bytes], Any], *, missing: int = 422
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A JSON control handler: `fn(request, body)`'s result as JSON; a bad body is 422 (a missing key `missing`)."""

    async def handler(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            result = fn(request, body)
        except KeyError as e:
            return web.json_response({"error": str(e).strip('"')}, status=missing)
        except (msgspec.ValidationError, msgspec.DecodeError, ValueError) as e:
            return web.json_response({"error": str(e)}, status=422)
        return web.Response(body=orjson.dumps(result), content_type="application/json")

    return handler


class _DislocationRequest(msgspec.Struct, forbid_unknown_fields=True):
    bps: float
    duration_ms: float
    symbol: str | None = None
    instrument: str | None = None


class SimExchangeGroup:
    """Many venues on one market: `async with` runs the market and every venue, and closes them all.

    async with SimExchangeGroup.from_settings(settings, ["binance", "okx"]) as group:
        http_url, ws_url = group.urls()["binance"]
    """

    def __init__(self, market: Market, venues: Iterable[SimVenue], *, run_market: bool = True) -> None:
        self.market = market
        self.venues: dict[str, SimVenue] = {}
        for venue in venues:
            if venue.venue_id in self.venues:
                raise ValueError(f"venue {venue.venue_id} given twice")
            self.venues[venue.venue_id] = venue
        self.run_market = run_market
        self.fees: dict[str, tuple[Decimal, Decimal]] = {}
        """venue id -> (taker, maker) fee rates applied once the venue has started (its protocol set its own)."""
        self._state = "new"

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        venue_ids: Iterable[str] | None = None,
        *,
        config: MarketConfig | None = None,
        truth: TruthLog | None = None,
        schedule: DislocationSchedule | None = None,
        run_market: bool = True,
        **venue_options: Any,
    ) -> SimExchangeGroup:
        """Every enabled CEX venue of `settings` (or those in `venue_ids`), each listing exactly the symbols the
        settings map to it, served by its exchange's protocol module or the nearest one (`arb.sim.venues`).

        `venue_options` go to each `SimVenue` (ping_interval_s, pong_timeout_s, host, max_outbound).
        """
        from arb.sim.venues import protocol_for

        cex = {vid: v for vid, v in settings.venues.items() if v.kind == "cex" and v.enabled}
        chosen = list(cex) if venue_ids is None else list(venue_ids)
        unknown = [v for v in chosen if v not in cex]
        if unknown:
            raise ValueError(f"not enabled CEX venues in the settings: {', '.join(unknown)}")
        symbols = {
            vid: {iid: inst.venues[vid] for iid, inst in settings.instruments.items() if vid in inst.venues}
            for vid in chosen
        }
        used = {iid for per_venue in symbols.values() for iid in per_venue}
        # A perp follows its underlying spot instrument (which the market then prices even if no venue lists it).
        used |= {inst.underlying for iid, inst in settings.instruments.items() if iid in used and inst.underlying}
        seed = (config or MarketConfig()).seed
        specs = [
            dataclasses.replace(
                InstrumentSpec.derive(iid, base=inst.base, quote=inst.quote, asset_class=inst.asset_class),
                underlying=inst.underlying,
                basis_bps=seeded_basis_bps(iid, seed) if inst.underlying else 0.0,
            )
            for iid, inst in settings.instruments.items()
            if iid in used
        ]
        market = Market(specs, config, truth=truth, schedule=schedule)
        venues = []
        for vid in chosen:
            ccxt_id = cex[vid].ccxt_id or vid
            venues.append(SimVenue(vid, protocol_for(ccxt_id)(), market, symbols[vid], **venue_options))
        group = cls(market, venues, run_market=run_market)
        # Each venue charges the fees its config states (the ones the scanner and executor cost with), not the
        # defaults of the exchange whose format it is served in; applied after the protocols install theirs.
        group.fees = {vid: (Decimal(repr(cex[vid].fees.taker)), Decimal(repr(cex[vid].fees.maker))) for vid in chosen}
        return group

    def urls(self) -> dict[str, tuple[str, str]]:
        """venue id -> (http_url, ws_url), for `arb.connectors.urls.point_at_local`."""
        return {vid: (v.http_url, v.ws_url) for vid, v in self.venues.items()}

    async def start(self) -> None:
        if self._state != "new":
            raise RuntimeError("group was already started; make a new one")
        self._state = "running"
        try:
            await asyncio.gather(*(v.start() for v in self.venues.values()))
            for vid, (taker, maker) in self.fees.items():
                self.venues[vid].trading.configure(taker_fee=taker, maker_fee=maker)
            if self.run_market:
                await self.market.start()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        self._state = "closed"
        await asyncio.gather(*(v.close() for v in self.venues.values()), return_exceptions=True)
        await self.market.close()

    async def __aenter__(self) -> SimExchangeGroup:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
