"""Capital.com quotes into the grid: sharded streaming connections, market status, reconnects, closed markets.

Follows https://open-api.capital.com/ ("WebSocket API") and https://capital.com/api-general-information: connect to
`wss://api-streaming-capital.backend-capital.com/connect`, send
`{"destination": "marketData.subscribe", "correlationId": .., "cst": .., "securityToken": .., "payload": {"epics":
[..]}}` (answered `{"status": "OK", "destination": "marketData.subscribe", "payload": {"subscriptions": {epic:
"PROCESSED"}}}`), then receive `{"destination": "quote", "payload": {"epic", "product", "bid", "bidQty", "ofr",
"ofrQty", "timestamp"}}` whenever an epic's top of book changes. A connection carries at most 40 epics and is dropped
after 10 minutes without a `{"destination": "ping", ...}` from the client.

How (the `CcxtConnector` conventions: `run()` until cancelled, never raising; `status`; quotes to a `Sink`):

* **Shards**: the epics are split into connections of at most `epics_per_connection` (40); each shard runs its own
  loop (connect, subscribe, stream, and on any failure back off with full jitter and start again, re-subscribing),
  so one dropped connection does not disturb the others. The venue is `connected` while every shard streams.
* **Session**: subscriptions and pings carry the REST session's tokens (`CapitalComClient`). A ping every
  `ping_interval_s` (60 s, well inside the 10-minute idle limit) keeps the connection and the session alive (it
  counts as session use, so the REST keep-alive stays quiet); no answer within `ping_timeout_s` reconnects. A
  message saying the tokens were refused logs in again (one login for every shard that saw the same tokens) and
  reconnects at once.
* **Markets**: at start every epic's details are read (`GET /api/v1/markets?epics=`, 50 a request); an epic the
  venue does not list is dropped with a warning (`status.dropped_symbols`). Market status (`snapshot.marketStatus`)
  is re-read every `status_refresh_s`, and for a shard's epics before each (re)subscribe.
* **Closed markets** (FAULTS M1 applies to *open* markets only): an epic whose status is not TRADEABLE is listed in
  `status.closed` (and the `arb_connector_markets_closed` gauge); its quotes stop and age out of the grid, which is
  what a closed market looks like, and it is no reason for a stall. A quote from a closed epic reopens it at once.
  The stall watchdog (no quote on a shard for max(2x its median gap, `min_stall_budget_s`)) only runs while the
  shard has an open epic, and before it calls a silence a stall it re-reads the shard's market status: a market that
  just closed is marked closed, not stale.
* **Bad messages** (undecodable, wrong types, crossed or non-positive prices) are counted by reason
  (`status.rejected`) and dropped; the connection stays (each quote is a full top of book, so nothing is lost that the
  next quote does not repair).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import statistics
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import aiohttp
import msgspec

from arb import tasks
from arb.config.schema import Settings, VenueConfig
from arb.connectors.capital_com.client import (
    CapitalComClient,
    CapitalComCredentials,
    ClientOptions,
    Endpoint,
    SessionExpired,
    SessionTokens,
    endpoint_from_config,
)
from arb.connectors.capital_com.wire import (
    ERROR_DECODER,
    QUOTE_DECODER,
    SESSION_ERRORS,
    STREAM_DECODER,
    SUBSCRIBE_DECODER,
    MarketDetails,
    StreamMessage,
    quote_from_payload,
)
from arb.connectors.ccxt_pro import Sink, State, VenueStatus
from arb.executor.venue import VenueAuthError, VenueRateLimited, VenueUnavailable
from arb.metrics import (
    CONNECTOR_LATENCY_SECONDS,
    CONNECTOR_MARKETS_CLOSED,
    CONNECTOR_MESSAGES,
    CONNECTOR_QUOTES,
    CONNECTOR_RECONNECTS,
    CONNECTOR_REJECTED,
    CONNECTOR_STALE_SECONDS,
    CONNECTOR_UP,
)
from arb.model import LATENCY_EDGES_MS, latency_bucket

log = logging.getLogger(__name__)

MAX_EPICS_PER_CONNECTION: Final = 40
GAP_SAMPLES: Final = 200


class StreamOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Timing knobs; the defaults are for the real venue, tests shrink them."""

    epics_per_connection: int = MAX_EPICS_PER_CONNECTION
    ping_interval_s: float = 60.0
    ping_timeout_s: float = 10.0
    subscribe_timeout_s: float = 10.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    min_stall_budget_s: float = 1.0
    first_update_timeout_s: float = 15.0
    status_refresh_s: float = 60.0

    def __post_init__(self) -> None:
        if not 1 <= self.epics_per_connection <= MAX_EPICS_PER_CONNECTION:
            raise ValueError(f"epics_per_connection must be 1..{MAX_EPICS_PER_CONNECTION}")
        positive = ("ping_interval_s", "ping_timeout_s", "subscribe_timeout_s", "backoff_initial_s", "status_refresh_s")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"StreamOptions.{name} must be > 0")
        if self.backoff_max_s < self.backoff_initial_s:
            raise ValueError("backoff_max_s must be >= backoff_initial_s")


class _Reconnect(Exception):
    """End this shard's session; `cause` labels the reconnect metric, `wait_s` is a floor for the pause."""

    def __init__(self, cause: str, detail: str, wait_s: float = 0.0) -> None:
        super().__init__(detail)
        self.cause = cause
        self.wait_s = wait_s


ShardState = Literal["starting", "live", "stale", "down"]


@dataclass(eq=False)
class _Shard:
    index: int
    epics: list[str]
    state: ShardState = "starting"
    since_ns: int = 0
    last_quote_ns: int = 0
    quotes: int = 0
    gaps_ns: deque[int] = field(default_factory=lambda: deque(maxlen=GAP_SAMPLES))
    pending: dict[str, asyncio.Future[StreamMessage]] = field(default_factory=dict)
    trip: _Reconnect | None = None
    tokens: SessionTokens | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)


def shard_epics(epics: Sequence[str], per_connection: int = MAX_EPICS_PER_CONNECTION) -> list[list[str]]:
    """`epics` in order, in chunks of at most `per_connection`."""
    if per_connection < 1:
        raise ValueError("per_connection must be >= 1")
    return [list(epics[i : i + per_connection]) for i in range(0, len(epics), per_connection)]


class CapitalComConnector:
    """Streams Capital.com quotes for `epics` (epic -> instrument) into `sink` (normally `GridWriter.put`).

    The same surface as `CcxtConnector` for a supervisor: `run()`, `status`, `recv_hist`, `taker_fees`,
    `owns_client()`. `client`: a `CapitalComClient` to share (e.g. with a trader of the same account); when None,
    one is made from `endpoint` and `credentials` and closed when `run()` ends."""

    def __init__(
        self,
        venue_id: str,
        venue: VenueConfig,
        epics: Mapping[str, str],
        sink: Sink,
        *,
        credentials: CapitalComCredentials | None = None,
        endpoint: Endpoint | None = None,
        live: bool = False,
        client: CapitalComClient | None = None,
        client_options: ClientOptions | None = None,
        options: StreamOptions | None = None,
        now_ns: Callable[[], int] = time.time_ns,
        rng: random.Random | None = None,
    ) -> None:
        if venue.kind != "cfd":
            raise ValueError(f"venue {venue_id!r} is not a Capital.com (cfd) venue (kind={venue.kind})")
        if client is None and credentials is None:
            raise ValueError(f"venue {venue_id!r}: give credentials (ARB_CAPITAL_COM_API_KEY, ...) or a client")
        if not epics:
            raise ValueError(f"venue {venue_id!r}: no epics to stream")
        self.venue_id = venue_id
        self.venue = venue
        self.epics = dict(epics)
        self.sink = sink
        self.endpoint = (
            (client.endpoint if client is not None else None) or endpoint or endpoint_from_config(venue, live=live)
        )
        self.options = options or StreamOptions()
        self._client = client
        self._credentials = credentials
        self._client_options = client_options
        self._now_ns = now_ns
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not crypto
        self.status = VenueStatus(venue=venue_id, since_ns=now_ns())
        self.recv_hist = [0] * (len(LATENCY_EDGES_MS) + 1)
        self.taker_fees: dict[str, float] = {}
        """CFD costs are in the spread; the venue states no taker fee, so the configured one (0) stands."""
        self.markets: dict[str, MarketDetails] = {}
        """Epic -> its details as last read (dealing rules, opening hours, status)."""
        self.shards: list[_Shard] = []
        self._closed: set[str] = set()
        self._correlation = itertools.count(1)
        CONNECTOR_UP.labels(venue_id).set(0)
        CONNECTOR_MARKETS_CLOSED.labels(venue_id).set(0)
        self._m_messages = CONNECTOR_MESSAGES.labels(venue_id)
        self._m_quotes = CONNECTOR_QUOTES.labels(venue_id)
        self._m_latency = CONNECTOR_LATENCY_SECONDS.labels(venue_id, "exchange_to_recv")

    def owns_client(self, client: Any) -> bool:
        """For `catching_frame_errors`: no ccxt client is ever ours."""
        return False

    @property
    def closed(self) -> frozenset[str]:
        """Epics whose market the venue reports closed now."""
        return frozenset(self._closed)

    # ------------------------------------------------------------------ state

    def _set_state(self, state: State, reason: str = "") -> None:
        if state == self.status.state:
            return
        now = self._now_ns()
        if self.status.state in ("down", "stale") and self.status.since_ns:
            CONNECTOR_STALE_SECONDS.labels(self.venue_id).inc((now - self.status.since_ns) / 1e9)
        log.info("connector.state venue=%s state=%s reason=%r", self.venue_id, state, reason)
        self.status.state = state
        self.status.since_ns = now
        CONNECTOR_UP.labels(self.venue_id).set(1 if state == "connected" else 0)

    def _update_state(self, reason: str = "") -> None:
        states = {s.state for s in self.shards}
        if states == {"live"}:
            self._set_state("connected", reason)
        elif "stale" in states:
            self._set_state("stale", reason)
        elif "down" in states:
            self._set_state("down", reason)

    def reject(self, reason: str) -> None:
        self.status.rejected[reason] = self.status.rejected.get(reason, 0) + 1
        CONNECTOR_REJECTED.labels(self.venue_id, reason).inc()

    # ------------------------------------------------------------------ market status

    def _apply_markets(self, details: Sequence[MarketDetails]) -> None:
        changed = False
        for d in details:
            if d.epic not in self.epics:
                continue
            self.markets[d.epic] = d
            if d.tradeable and d.epic in self._closed:
                self._closed.discard(d.epic)
                changed = True
            elif not d.tradeable and d.epic not in self._closed:
                self._closed.add(d.epic)
                changed = True
        if changed:
            self._publish_closed()

    def _publish_closed(self) -> None:
        self.status.closed = sorted(self.epics[e] for e in self._closed)
        CONNECTOR_MARKETS_CLOSED.labels(self.venue_id).set(len(self._closed))
        log.info("connector.markets_closed venue=%s count=%d", self.venue_id, len(self._closed))

    async def _refresh_statuses(self, client: CapitalComClient, epics: Sequence[str]) -> None:
        self._apply_markets(await client.markets(epics))

    async def _load_markets(self, client: CapitalComClient) -> list[str]:
        details = await client.markets(list(self.epics))
        listed_set = {d.epic for d in details}
        listed = [e for e in self.epics if e in listed_set]
        dropped = sorted(self.epics[e] for e in self.epics if e not in listed_set)
        if dropped:
            log.warning(
                "connector.symbols_not_listed venue=%s count=%d first=%s", self.venue_id, len(dropped), dropped[:5]
            )
        self.status.dropped_symbols = dropped
        self.status.symbols = len(listed)
        self._apply_markets(details)
        if not listed:
            raise _Reconnect("error", "the venue lists none of the configured epics", self.options.backoff_max_s)
        return listed

    async def _refresh_forever(self, client: CapitalComClient, epics: list[str]) -> None:
        while True:
            await asyncio.sleep(self.options.status_refresh_s)
            try:
                await self._refresh_statuses(client, epics)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the shards' own refreshes and watchdogs still run
                log.warning("connector.status_refresh_failed venue=%s error=%r", self.venue_id, str(exc)[:200])

    # ------------------------------------------------------------------ the update path

    def on_text(self, shard: _Shard, data: str | bytes) -> None:
        """One streamed message (the hot path: a quote)."""
        now = self._now_ns()
        try:
            msg = STREAM_DECODER.decode(data)
        except msgspec.MsgspecError:
            self.reject("malformed")
            return
        if msg.destination == "quote":
            try:
                payload = QUOTE_DECODER.decode(msg.payload)
            except msgspec.MsgspecError:
                self.reject("malformed")
                return
            self._on_quote(shard, payload, now)
            return
        waiter = shard.pending.get(msg.correlationId or "")
        if waiter is not None:  # the asker takes it out of `pending`
            if not waiter.done():
                waiter.set_result(msg)
            return
        if msg.status != "OK":
            code = _error_code(msg)
            log.warning("connector.stream_error venue=%s shard=%d code=%s", self.venue_id, shard.index, code)
            if code in SESSION_ERRORS:
                self._trip(shard, _Reconnect("session", f"stream refused the session ({code})"))

    def _on_quote(self, shard: _Shard, payload: Any, now: int) -> None:
        status = self.status
        status.updates += 1
        self._m_messages.inc()
        if shard.last_quote_ns:
            shard.gaps_ns.append(now - shard.last_quote_ns)
        shard.last_quote_ns = now
        status.last_update_ns = now
        if shard.trip is not None:
            return
        instrument = self.epics.get(payload.epic)
        if instrument is None:
            self.reject("unknown_symbol")
            return
        result = quote_from_payload(self.venue_id, instrument, payload, now)
        if isinstance(result, str):
            self.reject(result)
            return
        if payload.epic in self._closed:  # it quotes again: the market reopened
            self._closed.discard(payload.epic)
            self._publish_closed()
        lat = now - result.ts_exchange
        self._m_latency.observe(max(lat, 0) / 1e9)
        self.recv_hist[latency_bucket(lat / 1e6)] += 1
        try:
            self.sink(result)
        except ValueError as exc:  # the grid refused it: a bug between conversion and grid rules
            self.reject("invalid")
            log.error("connector.quote_refused venue=%s epic=%s error=%r", self.venue_id, payload.epic, str(exc))
            return
        shard.quotes += 1
        status.quotes += 1
        self._m_quotes.inc()

    def _trip(self, shard: _Shard, reconnect: _Reconnect) -> None:
        if shard.trip is None:
            shard.trip = reconnect
            shard.wake.set()

    def stall_budget_s(self, shard: _Shard) -> float:
        """FAULTS M1 per shard: max(2 x median gap between its quotes, min_stall_budget_s); generous until measured."""
        if shard.last_quote_ns == 0 or len(shard.gaps_ns) < 20:
            return self.options.first_update_timeout_s
        return max(2 * statistics.median(shard.gaps_ns) / 1e9, self.options.min_stall_budget_s)

    # ------------------------------------------------------------------ one shard

    async def _ask(self, ws: aiohttp.ClientWebSocketResponse, shard: _Shard, destination: str, **extra: Any) -> str:
        """Send a request message; returns its correlation id (the answer resolves `shard.pending[id]`)."""
        tokens = shard.tokens
        assert tokens is not None  # noqa: S101 - set before any message is sent
        cid = str(next(self._correlation))
        shard.pending[cid] = asyncio.get_running_loop().create_future()
        message = {
            "destination": destination,
            "correlationId": cid,
            "cst": tokens.cst,
            "securityToken": tokens.security_token,
            **extra,
        }
        await ws.send_str(msgspec.json.encode(message).decode())
        return cid

    async def _answer(self, shard: _Shard, cid: str, timeout_s: float, what: str) -> StreamMessage:
        waiter = shard.pending.get(cid)
        if waiter is None:
            raise _Reconnect("error", f"{what}: no waiter")
        try:
            async with asyncio.timeout(timeout_s):
                return await asyncio.shield(waiter)
        except TimeoutError:
            raise _Reconnect("stall", f"{what}: no answer within {timeout_s}s") from None
        finally:
            shard.pending.pop(cid, None)

    async def _subscribe(self, ws: aiohttp.ClientWebSocketResponse, shard: _Shard, reader: asyncio.Task[None]) -> None:
        cid = await self._ask(ws, shard, "marketData.subscribe", payload={"epics": shard.epics})
        answer_task = tasks.spawn(
            self._answer(shard, cid, self.options.subscribe_timeout_s, "subscribe"), name="capital-com-subscribe"
        )
        done, _ = await asyncio.wait({answer_task, reader}, return_when=asyncio.FIRST_COMPLETED)
        if answer_task not in done:
            await tasks.cancel_and_wait(answer_task)
            exc = reader.exception() if not reader.cancelled() else None
            raise exc if exc is not None else _Reconnect("network", "connection closed while subscribing")
        answer = answer_task.result()
        if answer.status != "OK":
            code = _error_code(answer)
            cause = "session" if code in SESSION_ERRORS else "error"
            raise _Reconnect(cause, f"subscribe refused ({code or answer.status})", 0.0 if cause == "session" else 1.0)
        try:
            result = SUBSCRIBE_DECODER.decode(answer.payload)
        except msgspec.MsgspecError as exc:
            raise _Reconnect("error", f"unreadable subscribe answer ({exc})", 1.0) from None
        refused = sorted(e for e in shard.epics if result.subscriptions.get(e) != "PROCESSED")
        if refused:
            log.warning(
                "connector.subscribe_refused venue=%s shard=%d epics=%s", self.venue_id, shard.index, refused[:5]
            )

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, shard: _Shard) -> None:
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.on_text(shard, msg.data)
            elif msg.type == aiohttp.WSMsgType.BINARY:
                self.on_text(shard, msg.data)
            elif msg.type == aiohttp.WSMsgType.ERROR:
                raise _Reconnect("network", f"stream error: {ws.exception()!r}")
        raise _Reconnect("network", f"connection closed by the venue (code {ws.close_code})")

    async def _session(self, client: CapitalComClient, shard: _Shard) -> None:
        """Connect, subscribe and stream one shard; returns only by raising."""
        opts = self.options
        shard.trip = None
        shard.wake.clear()
        shard.tokens = await client.tokens()
        await self._refresh_statuses(client, shard.epics)
        async with client.http.ws_connect(
            self.endpoint.ws_url, autoping=True, heartbeat=None, timeout=aiohttp.ClientWSTimeout(ws_close=2.0)
        ) as ws:
            reader = tasks.spawn(self._read(ws, shard), name=f"connector-{self.venue_id}-read-{shard.index}")
            try:
                await self._subscribe(ws, shard, reader)
                shard.state = "live"
                shard.since_ns = self._now_ns()
                shard.last_quote_ns = 0
                shard.gaps_ns.clear()
                self._update_state(f"shard {shard.index} subscribed")
                await self._watch(client, ws, shard, reader, opts)
            finally:
                await tasks.cancel_and_wait(reader)
                for waiter in shard.pending.values():
                    waiter.cancel()
                shard.pending.clear()

    async def _watch(
        self,
        client: CapitalComClient,
        ws: aiohttp.ClientWebSocketResponse,
        shard: _Shard,
        reader: asyncio.Task[None],
        opts: StreamOptions,
    ) -> None:
        """Pings, ping answers and the stall watchdog, until something ends the shard's session."""
        loop = asyncio.get_running_loop()
        next_ping = loop.time() + opts.ping_interval_s
        ping: tuple[str, float] | None = None
        while True:
            budget = self.stall_budget_s(shard)
            tick = max(0.01, min(budget / 2, 0.5, opts.ping_timeout_s / 2))
            waker = tasks.spawn(shard.wake.wait(), name=f"connector-{self.venue_id}-wake", report=False)
            try:
                done, _ = await asyncio.wait({reader, waker}, timeout=tick, return_when=asyncio.FIRST_COMPLETED)
            finally:
                await tasks.cancel_and_wait(waker)
            if shard.trip is not None:
                raise shard.trip
            if reader in done:
                exc = reader.exception() if not reader.cancelled() else None
                raise exc if exc is not None else _Reconnect("network", "stream ended")
            now = loop.time()
            if ping is not None:
                cid, sent = ping
                answer = shard.pending.get(cid)
                if answer is not None and answer.done():
                    ping = None
                    self._ping_answered(client, shard, answer.result())
                    shard.pending.pop(cid, None)
                elif now - sent > opts.ping_timeout_s:
                    raise _Reconnect("stall", f"ping unanswered for {opts.ping_timeout_s}s")
            if ping is None and now >= next_ping:
                shard.tokens = await client.tokens()
                ping = (await self._ask(ws, shard, "ping"), now)
                next_ping = now + opts.ping_interval_s
            await self._check_stall(client, shard, budget)

    def _ping_answered(self, client: CapitalComClient, shard: _Shard, answer: StreamMessage) -> None:
        if answer.status == "OK":
            client.touch()  # the session was used: no REST keep-alive needed
            return
        code = _error_code(answer)
        cause = "session" if code in SESSION_ERRORS else "error"
        raise _Reconnect(cause, f"ping refused ({code or answer.status})")

    async def _check_stall(self, client: CapitalComClient, shard: _Shard, budget: float) -> None:
        if all(e in self._closed for e in shard.epics):
            shard.since_ns = self._now_ns()  # nothing can quote: silence is expected
            return
        now = self._now_ns()
        last = shard.last_quote_ns or shard.since_ns
        silent_s = (now - last) / 1e9
        if silent_s <= budget:
            return
        with contextlib.suppress(Exception):  # the venue may say the markets just closed
            await self._refresh_statuses(client, shard.epics)
        if all(e in self._closed for e in shard.epics):
            shard.since_ns = self._now_ns()
            return
        self.status.stalls += 1
        shard.state = "stale"
        self._update_state(f"shard {shard.index}: no quote for {silent_s:.2f}s (budget {budget:.2f}s)")
        raise _Reconnect("stall", f"shard {shard.index}: no quote for {silent_s:.2f}s")

    def _classify(self, exc: BaseException) -> _Reconnect:
        opts = self.options
        if isinstance(exc, _Reconnect):
            return exc
        if isinstance(exc, SessionExpired):
            return _Reconnect("session", str(exc))
        if isinstance(exc, VenueAuthError):
            return _Reconnect("auth", str(exc), opts.backoff_max_s)
        if isinstance(exc, VenueRateLimited):
            return _Reconnect("rate_limit", str(exc), exc.retry_after_s)
        if isinstance(exc, VenueUnavailable):
            return _Reconnect("maintenance", str(exc))
        if isinstance(exc, aiohttp.WSServerHandshakeError):
            return _Reconnect("maintenance" if exc.status == 503 else "network", f"upgrade refused: {exc.status}")
        if isinstance(exc, aiohttp.ClientError | ConnectionError | TimeoutError):
            return _Reconnect("network", repr(exc))
        return _Reconnect("error", repr(exc))

    async def _run_shard(self, client: CapitalComClient, shard: _Shard) -> None:
        opts = self.options
        backoff = opts.backoff_initial_s
        refused_before = False
        while True:
            tasks.raise_if_cancelling()
            quotes_before = shard.quotes
            try:
                await self._session(client, shard)
                reconnect = _Reconnect("error", "shard session ended")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # classified: a shard never takes the connector down
                reconnect = self._classify(exc)
            if reconnect.cause == "session" and shard.tokens is not None:
                with contextlib.suppress(Exception):  # the next attempt logs in anyway if this fails
                    await client.relogin(shard.tokens)
            self.status.reconnects += 1
            self.status.last_error = f"{reconnect.cause}: {str(reconnect)[:200]}"
            CONNECTOR_RECONNECTS.labels(self.venue_id, reconnect.cause).inc()
            if shard.state != "stale":
                shard.state = "down"
            self._update_state(f"shard {shard.index}: {self.status.last_error}")
            if shard.quotes > quotes_before:  # the session worked for a while: back off anew
                backoff = opts.backoff_initial_s
            # A refused session was renewed above: reconnect at once, unless the last session was refused too without
            # a quote in between (then something else is wrong: back off). Anything else backs off with full jitter.
            refused = reconnect.cause == "session"
            wait = reconnect.wait_s
            if not refused or (refused_before and shard.quotes == quotes_before):
                wait = max(self._rng.uniform(0, backoff), reconnect.wait_s)
            refused_before = refused
            log.warning(
                "connector.reconnect venue=%s shard=%d cause=%s wait_s=%.2f detail=%r",
                self.venue_id,
                shard.index,
                reconnect.cause,
                wait,
                str(reconnect)[:200],
            )
            backoff = min(backoff * 2, opts.backoff_max_s)
            if shard.state == "stale":
                shard.state = "down"
                self._update_state("reconnecting after stall")
            await asyncio.sleep(wait)

    # ------------------------------------------------------------------ lifecycle

    async def _start(self, client: CapitalComClient) -> list[str]:
        """Markets of every epic, retried with backoff until the venue answers."""
        backoff = self.options.backoff_initial_s
        while True:
            try:
                return await self._load_markets(client)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reconnect = self._classify(exc)
                self.status.reconnects += 1
                self.status.last_error = f"{reconnect.cause}: {str(reconnect)[:200]}"
                CONNECTOR_RECONNECTS.labels(self.venue_id, reconnect.cause).inc()
                self._set_state("down", self.status.last_error)
                wait = max(self._rng.uniform(0, backoff), reconnect.wait_s)
                detail = str(exc)[:200]
                log.warning("connector.start_failed venue=%s wait_s=%.2f detail=%r", self.venue_id, wait, detail)
                backoff = min(backoff * 2, self.options.backoff_max_s)
                await asyncio.sleep(wait)

    async def run(self) -> None:
        """Stream until cancelled; every failure ends in a reconnect with backoff, none leaves this method."""
        async with contextlib.AsyncExitStack() as stack:
            client = self._client
            if client is None:
                assert self._credentials is not None  # noqa: S101 - checked in __init__
                client = await stack.enter_async_context(
                    CapitalComClient(
                        self.endpoint, self._credentials, venue=self.venue_id, options=self._client_options
                    )
                )
            listed = await self._start(client)
            chunks = shard_epics(listed, self.options.epics_per_connection)
            self.shards = [_Shard(i, chunk) for i, chunk in enumerate(chunks)]
            name = f"connector-{self.venue_id}"
            running = [tasks.spawn(self._run_shard(client, s), name=f"{name}-shard-{s.index}") for s in self.shards]
            running.append(tasks.spawn(self._refresh_forever(client, listed), name=f"{name}-status"))
            try:
                await asyncio.gather(*running)
            finally:
                for task in running:
                    await tasks.cancel_and_wait(task)
                self._set_state("down", "stopped")


def _error_code(msg: StreamMessage) -> str:
    with contextlib.suppress(msgspec.MsgspecError):
        return ERROR_DECODER.decode(msg.payload).errorCode
    return ""


def capital_com_connector(
    settings: Settings,
    sink: Sink,
    *,
    venue_id: str = "capital_com",
    credentials: CapitalComCredentials | None = None,
    endpoint: Endpoint | None = None,
    options: StreamOptions | None = None,
    client_options: ClientOptions | None = None,
) -> CapitalComConnector:
    """The connector for `venue_id` as the settings configure it: every instrument mapped to it, the demo URLs in
    paper mode and the live ones in live mode (or `endpoint`), credentials from `ARB_<VENUE>_API_KEY` /
    `_IDENTIFIER` / `_PASSWORD` unless given. ValueError naming what is missing."""
    cfg = settings.venues.get(venue_id)
    if cfg is None or cfg.kind != "cfd":
        raise ValueError(f"venue {venue_id!r} is not a configured cfd venue")
    creds = credentials or CapitalComCredentials.from_env(venue_id)
    if creds is None:
        raise ValueError(
            f"venue {venue_id!r} needs credentials: set ARB_{venue_id.upper()}_API_KEY, _IDENTIFIER and _PASSWORD"
        )
    epics = {inst.venues[venue_id]: iid for iid, inst in settings.instruments.items() if venue_id in inst.venues}
    return CapitalComConnector(
        venue_id,
        cfg,
        epics,
        sink,
        credentials=creds,
        endpoint=endpoint or endpoint_from_config(cfg, live=settings.mode == "live"),
        options=options,
        client_options=client_options,
    )
