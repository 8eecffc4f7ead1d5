"""The one generic CEX connector: a real ccxt.pro exchange per venue, its book updates as Quotes into a sink.

Why one connector and no per-venue code: ccxt.pro already speaks each venue's WebSocket dialect (subscriptions, book
snapshots + diffs, sequence and checksum checks); venue specifics here are configuration (ccxt id, symbols, URLs).

Lifecycle of one venue (`run()`, until cancelled; it never raises anything but CancelledError):

    create exchange -> load markets (REST, rate limited) -> watch books -> ... error -> close -> backoff -> again

* Subscriptions use the best method the venue has (`exchange.has`): `watchOrderBookForSymbols` (one stream, chunked
  to the venue's limit), else one `watchOrderBook` task per symbol, else `watchBidsAsks` / `watchTickers` (top of book
  only; the Quote then has no depth and the scanner uses its impact model).
* Symbols the venue's markets do not list are dropped with a warning (instruments.yaml is a curated snapshot).
* A sequence gap or checksum error (ccxt `InvalidNonce` / `ChecksumError`) invalidates that book: it is counted, no
  Quote is produced from it, and the next watch call makes ccxt rebuild it from a fresh snapshot (FAULTS M3).
* Where ccxt does not check a venue's sequence, a guard (`arb.connectors.guards`) sees every message first; a break,
  a book that ccxt hands over behind its own stream (a stale snapshot, M4) or a crossed / unusable book (M7) *trips*
  the session: nothing more from it reaches the grid and the venue's books are rebuilt from fresh snapshots on a new
  session. `max_resyncs` trips in a row without one good quote in between mark the venue unhealthy ("down", long
  backoff) instead of a resync storm.
* Watchdogs (FAULTS M1/M2, STYLE "a feed that looks alive but is dead"): no update for `stall_budget` (max of 2x the
  median gap between updates and 1 s, once measured), or updates whose venue timestamps stopped advancing, marks the
  venue stale and forces a reconnect.
* Network errors, maintenance and 429s tear the session down and retry with exponential backoff and full jitter,
  never sooner than a Retry-After the venue sent. ccxt's own rate limiter stays on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import statistics
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final, Literal

import msgspec

from arb import tasks
from arb.config.schema import VenueConfig
from arb.connectors.quotes import quote_from_order_book, quote_from_ticker
from arb.connectors.urls import point_at_local
from arb.metrics import (
    CONNECTOR_GAPS,
    CONNECTOR_LATENCY_SECONDS,
    CONNECTOR_MESSAGES,
    CONNECTOR_QUOTES,
    CONNECTOR_RECONNECTS,
    CONNECTOR_REJECTED,
    CONNECTOR_STALE_SECONDS,
    CONNECTOR_UP,
)
from arb.model import LATENCY_EDGES_MS, MAX_DEPTH, FeedCounters, Quote, latency_bucket
from arb.procs import freeze_heap

log = logging.getLogger(__name__)

State = Literal["starting", "connected", "stale", "down"]
Sink = Callable[[Quote], None]
ExchangeFactory = Callable[[str, dict[str, Any]], Any]

MIN_STALL_BUDGET_S: Final = 1.0
FIRST_UPDATE_TIMEOUT_S: Final = 15.0
"""Before any gap is measured: connect + markets + snapshot must produce a first update within this."""
GAP_SAMPLES: Final = 200
RETRY_AFTER_MARGIN: Final = 1.1
SWEEP_S: Final = 0.02
"""Pause between multi-symbol watch calls, after which every changed book is published (see
`_watch_books_for_symbols`)."""


class LocalEndpoint(msgspec.Struct, frozen=True):
    """Where a local (sim) venue listens; the real ccxt class is pointed at it by URL override."""

    http_url: str
    ws_url: str


class ConnectorOptions(msgspec.Struct, frozen=True):
    """Timing knobs; the defaults are for real venues, tests shrink them."""

    depth: int = MAX_DEPTH
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    min_stall_budget_s: float = MIN_STALL_BUDGET_S
    first_update_timeout_s: float = FIRST_UPDATE_TIMEOUT_S
    rate_limit_ms: float | None = None
    """Override ccxt's request spacing (its `rateLimit`): only for local venues, whose limits are not the
    exchange's (the demo and benchmark); None keeps the exchange's own."""
    fast_binance_depth: bool = False
    """Decode Binance-format diff depth streams with arb's msgspec fast path (`arb.connectors.binance_fast`) instead
    of ccxt.pro's handler, for venues spoken to with the `binance` class; ccxt still does markets and REST."""
    max_resyncs: int = 5
    """Book rebuilds in a row that fail before the first good quote: then the venue is unhealthy (M4)."""


class VenueStatus(FeedCounters, kw_only=True):
    """What the supervisor, the demo and the API show about one venue's feed."""

    venue: str
    state: State = "starting"
    since_ns: int = 0
    dropped_symbols: list[str] = msgspec.field(default_factory=list)


_RESYNC_CAUSES: Final = frozenset({"gap", "stale_snapshot", "bad_book"})
"""Trips that rebuild books (and count towards `max_resyncs`); `unhealthy` and `malformed` trips do not."""


class _Reconnect(Exception):
    """Tear the session down and start again; `cause` labels the reconnect metric, `wait_s` is a floor."""

    def __init__(self, cause: str, detail: str, wait_s: float = 0.0) -> None:
        super().__init__(detail)
        self.cause = cause
        self.wait_s = wait_s


def ccxt_pro_factory(ccxt_id: str, options: dict[str, Any]) -> Any:
    """The ccxt.pro class for `ccxt_id`, guarded where ccxt misses sequence breaks (`arb.connectors.guards`)."""
    import ccxt.pro

    from arb.connectors.guards import guard_class, guarded

    cls = getattr(ccxt.pro, ccxt_id)
    guard = guard_class(ccxt_id)
    return (guarded(cls, guard) if guard is not None else cls)(options)


async def close_exchange(exchange: Any, *, settle_s: float = 0.05, max_wait_s: float = 3.0) -> None:
    """Close a ccxt exchange for good (STYLE: ccxt leaks sessions unless closed, ccxt #18097).

    Why more than one `close()`: ccxt.pro fetches book snapshots in tasks it spawns and does not track, and those
    wait in ccxt's rate limiter (a Binance depth snapshot costs 50 weight: seconds of throttling). One that runs after
    `close()` re-opens an HTTP session, which then leaks. So the throttler's queued calls are cancelled (their tasks
    end with CancelledError, quietly), and close is repeated until the exchange stays closed.
    """
    deadline = time.monotonic() + max_wait_s
    while True:
        throttler = getattr(exchange, "throttler", None)
        queue = getattr(throttler, "queue", None) or ()
        for future, _cost in list(queue):
            if not future.done():
                future.cancel()
        with contextlib.suppress(Exception):
            await exchange.close()
        await asyncio.sleep(settle_s)
        if getattr(exchange, "session", None) is None and not getattr(exchange, "clients", None) and not queue:
            return
        if time.monotonic() > deadline:
            log.warning("connector.close_incomplete exchange=%s", getattr(exchange, "id", "?"))
            return


async def _close_even_if_cancelled(exchange: Any, venue_id: str, timeout_s: float = 15.0) -> None:
    """Closing must finish even when our task is being cancelled (shutdown often is a cancel): a close interrupted
    half-way leaks the exchange's HTTP session. A stalled venue can make the WebSocket close slow, hence the bound."""
    closer = tasks.spawn(close_exchange(exchange), name=f"connector-{venue_id}-close")
    try:
        await asyncio.shield(closer)
    except asyncio.CancelledError:
        await asyncio.wait({closer}, timeout=timeout_s)
        raise


def _retry_after_s(exchange: Any) -> float:
    headers = getattr(exchange, "last_response_headers", None) or {}
    for key, value in dict(headers).items():
        if str(key).lower() == "retry-after":
            with contextlib.suppress(ValueError):
                return max(0.0, float(value))
    return 0.0


class CcxtConnector:
    """Streams one CEX venue's books into `sink` (normally `GridWriter.put`)."""

    def __init__(
        self,
        venue_id: str,
        venue: VenueConfig,
        symbols: Mapping[str, str],
        sink: Sink,
        *,
        endpoint: LocalEndpoint | None = None,
        options: ConnectorOptions | None = None,
        exchange_factory: ExchangeFactory = ccxt_pro_factory,
        now_ns: Callable[[], int] = time.time_ns,
        rng: random.Random | None = None,
    ) -> None:
        if venue.kind != "cex" or not venue.ccxt_id:
            raise ValueError(f"venue {venue_id!r} is not a ccxt venue (kind={venue.kind})")
        self.venue_id = venue_id
        self.venue = venue
        self.symbols = dict(symbols)
        self.sink = sink
        self.endpoint = endpoint
        opts = options or ConnectorOptions()
        self.depth = max(1, min(opts.depth, MAX_DEPTH))
        self.backoff_initial_s = opts.backoff_initial_s
        self.backoff_max_s = opts.backoff_max_s
        self.min_stall_budget_s = opts.min_stall_budget_s
        self.first_update_timeout_s = opts.first_update_timeout_s
        self.max_resyncs = max(1, opts.max_resyncs)
        self.rate_limit_ms = opts.rate_limit_ms
        self.fast_binance_depth = opts.fast_binance_depth and venue.ccxt_id == "binance"
        self._factory = exchange_factory
        self._now_ns = now_ns
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not crypto
        self.status = VenueStatus(venue=venue_id, since_ns=now_ns())
        self._gaps_ns: deque[int] = deque(maxlen=GAP_SAMPLES)
        self.recv_hist = [0] * (len(LATENCY_EDGES_MS) + 1)
        """exchange -> receive latency counts over `LATENCY_EDGES_MS` (published with the venue's health)."""
        self._max_ts_exchange = 0
        self._ts_advanced_ns = 0
        self._exchange: Any = None
        self._market_ids: dict[str, str] = {}
        self._guard_keys: dict[str, str] = {}
        self.taker_fees: dict[str, float] = {}
        """Instrument -> the taker fee the venue's ccxt markets state (published with the venue's health)."""
        self._behind: Callable[[str, Any], str | None] | None = None
        self._last_guard: Any = None
        self._seen: dict[str, Any] = {}
        """symbol -> (nonce, timestamp) (or top of book) last published, so a sweep publishes only what changed."""
        self._trip: _Reconnect | None = None
        """Set when the session must end now (a guard tripped, a bad book, a frame ccxt choked on)."""
        self._wake = asyncio.Event()
        self._failed_resyncs = 0
        CONNECTOR_UP.labels(venue_id).set(0)
        # The per-update metrics, resolved once: `labels()` on every update costs as much as the update's conversion.
        self._m_messages = CONNECTOR_MESSAGES.labels(venue_id)
        self._m_quotes = CONNECTOR_QUOTES.labels(venue_id)
        self._m_latency = CONNECTOR_LATENCY_SECONDS.labels(venue_id, "exchange_to_recv")

    # --- state ----------------------------------------------------------------------------------------------------

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

    @property
    def stall_budget_s(self) -> float:
        """FAULTS M1: max(2 x median gap between updates, 1 s); generous until a session's first update (connect,
        markets and book snapshot take time) and until enough gaps are measured."""
        if self.status.last_update_ns == 0 or len(self._gaps_ns) < 20:
            return self.first_update_timeout_s
        return max(2 * statistics.median(self._gaps_ns) / 1e9, self.min_stall_budget_s)

    # --- the update path ------------------------------------------------------------------------------------------

    def reject(self, reason: str) -> None:
        self.status.rejected[reason] = self.status.rejected.get(reason, 0) + 1
        CONNECTOR_REJECTED.labels(self.venue_id, reason).inc()

    def note_update(self) -> int:
        """Count one update from the venue (for the stall watchdog and metrics); returns the receive time."""
        now = self._now_ns()
        status = self.status
        if status.last_update_ns:
            self._gaps_ns.append(now - status.last_update_ns)
        status.last_update_ns = now
        status.updates += 1
        self._m_messages.inc()
        return now

    @property
    def tripped(self) -> bool:
        return self._trip is not None

    def on_update(self, symbol: str, data: Mapping[str, Any], *, book: bool) -> None:
        """Convert one ccxt order book / ticker to a Quote and hand it to the sink."""
        now = self.note_update()
        if self._trip is not None:
            return  # this session's books are no longer trusted; a new session rebuilds them
        instrument = self.symbols.get(symbol)
        if instrument is None:
            self.reject("unknown_symbol")
            return
        if book:
            behind = self._behind
            problem = behind(self._guard_keys.get(symbol, symbol), data.get("nonce")) if behind else None
            if problem is not None:
                self.reject("stale_snapshot")
                self.trip("stale_snapshot", problem)
                return
            result = quote_from_order_book(self.venue_id, instrument, data, now, depth=self.depth)
        else:
            result = quote_from_ticker(self.venue_id, instrument, data, now)
        if isinstance(result, str):
            reason = "one_sided" if "one-sided" in result else "crossed" if "crossed" in result else "invalid"
            self.reject(reason)
            if book and reason != "one_sided":  # M7: ccxt merged a bad level; this book is wrong until rebuilt
                self.trip("bad_book", f"{symbol}: {result}")
            return
        self.publish(symbol, result, now)

    def publish(self, symbol: str, result: Quote, now: int) -> None:
        """Hand a Quote that passed `quote_is_sound` to the sink (latency, lag watchdog and counters on the way);
        sinks rely on that (the workers' grid writer does not walk the depth again)."""
        status = self.status
        if result.ts_exchange > self._max_ts_exchange:
            self._max_ts_exchange = result.ts_exchange
            self._ts_advanced_ns = now
        if result.ts_exchange != now:
            lat = now - result.ts_exchange
            self._m_latency.observe(max(lat, 0) / 1e9)
            self.recv_hist[latency_bucket(lat / 1e6)] += 1
        try:
            self.sink(result)  # a Quote only gets here through quote_is_sound
        except ValueError as exc:  # the grid refused it (InvalidQuote): a bug between conversion and grid rules
            self.reject("invalid")
            log.error("connector.quote_refused venue=%s symbol=%s error=%r", self.venue_id, symbol, str(exc))
            return
        status.quotes += 1
        self._failed_resyncs = 0
        self._m_quotes.inc()
        if status.state != "connected":
            self._set_state("connected")

    def owns_client(self, client: Any) -> bool:
        """Whether `client` (a ccxt WebSocket client) belongs to this connector's current exchange session."""
        clients = getattr(self._exchange, "clients", None) or {}
        return any(c is client for c in clients.values())

    def on_frame_error(self, exc: BaseException) -> None:
        """A frame ccxt could not decode or handle (see `catching_frame_errors`): count it, reconnect at once."""
        self.reject("malformed")
        log.warning("connector.frame_error venue=%s error=%r", self.venue_id, str(exc)[:200])
        self.trip("malformed", f"frame ccxt could not handle: {exc!r}")

    def trip(self, cause: str, detail: str) -> None:
        """End this session now: nothing more from it reaches the grid; the venue's books are rebuilt on a new one."""
        if self._trip is not None:
            return
        if cause in _RESYNC_CAUSES:
            self.status.gaps += 1
            CONNECTOR_GAPS.labels(self.venue_id).inc()
            self._count_resync()
        log.warning("connector.trip venue=%s cause=%s detail=%r", self.venue_id, cause, detail[:200])
        self._trip = _Reconnect(cause, detail)
        self._wake.set()

    def _count_resync(self) -> None:
        """One more book rebuild; `max_resyncs` in a row without a good quote in between make the venue unhealthy."""
        self.status.resyncs += 1
        self._failed_resyncs += 1

    def _on_guard_trip(self, detail: str) -> None:
        self.trip("gap", detail)

    # --- session ----------------------------------------------------------------------------------------------------

    def _create(self) -> Any:
        options: dict[str, Any] = {
            "enableRateLimit": True,
            "options": {"fetchCurrencies": False, "fetchMargins": False, "maxRetriesOnFailure": 0},
        }
        if self.rate_limit_ms is not None:
            options["rateLimit"] = self.rate_limit_ms
        exchange = self._factory(str(self.venue.ccxt_id), options)
        if hasattr(type(exchange), "arb_on_trip"):  # a guarded class (arb.connectors.guards)
            exchange.arb_on_trip = self._on_guard_trip
        # Looked up once per session, not per book update: the guard's "is this book behind the stream" check.
        guard = getattr(exchange, "arb_guard", None)
        self._behind = getattr(guard, "behind", None)
        if guard is not None and self._last_guard is not None and hasattr(guard, "continue_from"):
            guard.continue_from(self._last_guard)  # a sequence that is server-wide outlives the connection
        self._last_guard = guard
        if self.endpoint is not None:
            point_at_local(exchange, self.endpoint.http_url, self.endpoint.ws_url)
        return exchange

    async def _load_markets(self, exchange: Any) -> list[str]:
        await exchange.load_markets()
        listed = [s for s in self.symbols if s in exchange.markets]
        dropped = sorted(set(self.symbols) - set(listed))
        if dropped and dropped != self.status.dropped_symbols:
            log.warning(
                "connector.symbols_not_listed venue=%s count=%d first=%s", self.venue_id, len(dropped), dropped[:5]
            )
        self.status.dropped_symbols = dropped
        self.status.symbols = len(listed)
        self._market_ids = {s: str(exchange.markets[s]["id"]) for s in listed}
        # The guard's key per book: a market id, typed for contracts (Binance's spot and perp share BTCUSDT).
        self._guard_keys = {
            s: m if exchange.markets[s].get("spot", True) else f"{m}:{exchange.markets[s].get('type')}"
            for s, m in self._market_ids.items()
        }
        self.taker_fees = market_taker_fees(exchange.markets, {s: self.symbols[s] for s in listed})
        if not listed:
            raise _Reconnect("error", "the venue lists none of the configured symbols", self.backoff_max_s)
        freeze_heap()  # the markets just loaded live as long as the session: keep them out of full collections
        return listed

    async def _watch_books_for_symbols(self, exchange: Any, symbols: list[str]) -> None:
        """One multi-symbol watch per chunk: publish the book it returns at once, then, `SWEEP_S` later, every other
        book of the chunk that changed meanwhile, and watch again.

        Why not just watch again: a multi-symbol watch resolves one future per wake-up with *one* book while ccxt may
        have merged updates of many symbols from the same socket read (those would reach the grid only when their
        symbol happens to be returned), and each call costs ccxt O(symbols) (it re-validates every symbol and races a
        future per symbol): calling it per message costs ~1 ms per update on a 100-symbol chunk. Pausing `SWEEP_S`
        between calls bounds that to 1/SWEEP_S calls a second, whatever the message rate, for at most `SWEEP_S` of
        extra latency on the books that were not the one returned.

        Books that change through socket messages are published sooner, by `_sweep_after_messages`; what this sweep
        still adds is a book ccxt rebuilt from a REST snapshot on a socket that has gone quiet since."""
        seen = self._seen
        books = exchange.orderbooks
        limit = self.venue.book_limit
        name = f"connector-{self.venue_id}-watch"
        InvalidNonce = self._ccxt_errors().InvalidNonce
        # The next watch is always outstanding, also while we pause: a dropped connection then fails it (and the
        # session is rebuilt and counted) instead of ccxt quietly reconnecting on our next call.
        pending = tasks.spawn(exchange.watch_order_book_for_symbols(symbols, limit), name=name, report=False)
        try:
            while True:
                try:
                    returned = await pending
                except InvalidNonce as exc:  # includes ChecksumError
                    self.on_gap(str(exc))
                    returned = None
                # A cancel that ccxt's futures (or 3.11's wait_for) swallowed must not lead to one more watch: that
                # call would re-open the exchange's HTTP session after we closed it.
                tasks.raise_if_cancelling()
                pending = tasks.spawn(exchange.watch_order_book_for_symbols(symbols, limit), name=name, report=False)
                if returned is not None:
                    self._publish_if_changed(returned.get("symbol"), returned, seen)
                await asyncio.sleep(SWEEP_S)
                for symbol in symbols:
                    self._publish_if_changed(symbol, books.get(symbol), seen)
        finally:
            await tasks.cancel_and_wait(pending)

    def _sweep_after_messages(self, exchange: Any, symbols: list[str]) -> None:
        """Publish every changed book as soon as ccxt has merged a burst of messages, not only when a watch returns.

        ccxt.pro hands each socket message to `exchange.handle_message`, which updates `exchange.orderbooks`; we wrap
        it (before the first watch creates the socket client, which binds it) to schedule one sweep of `symbols`
        with `call_soon`, so the messages of one socket read are merged first and then swept once. A sweep compares
        a (nonce, timestamp) key per book: ~1 us a symbol, paid per burst rather than per message. Without this, a
        book that was not the one a multi-symbol watch returned waited up to `SWEEP_S` (measured: ~10 ms of the
        scanner's median detection latency)."""
        loop = asyncio.get_running_loop()
        seen = self._seen
        publish = self._publish_if_changed
        handle = exchange.handle_message
        scheduled = False

        def sweep() -> None:
            nonlocal scheduled
            scheduled = False
            if self._trip is None:
                books = exchange.orderbooks  # looked up each time: ccxt replaces it in clean_ws_data
                for symbol in symbols:
                    publish(symbol, books.get(symbol), seen)

        def handle_message(client: Any, message: Any) -> Any:
            nonlocal scheduled
            result = handle(client, message)
            if not scheduled:
                scheduled = True
                loop.call_soon(sweep)
            return result

        exchange.handle_message = handle_message

    def _publish_if_changed(self, symbol: Any, book: Any, seen: dict[str, Any]) -> None:
        if book is None or symbol is None:
            return
        bids, asks = book["bids"], book["asks"]
        if not bids or not asks:
            return  # being rebuilt (ccxt resets it empty until the snapshot lands)
        key: Any = (book.get("nonce"), book.get("timestamp"))
        if key == (None, None):  # a venue with neither: compare the top of book
            key = (bids[0][0], bids[0][1], asks[0][0], asks[0][1])
        if seen.get(symbol) != key:
            seen[symbol] = key
            self.on_update(symbol, book, book=True)

    async def _watch_book(self, exchange: Any, symbol: str) -> None:
        while True:
            tasks.raise_if_cancelling()
            try:
                book = await exchange.watch_order_book(symbol, self.venue.book_limit)
            except self._ccxt_errors().InvalidNonce as exc:
                self.on_gap(str(exc))
                continue
            self.on_update(symbol, book, book=True)

    async def _watch_tops(self, exchange: Any, symbols: list[str], method: str) -> None:
        """Top-of-book streams; as for books, every changed entry of ccxt's cache is published after a wake-up, and
        calls are spaced by `SWEEP_S`."""
        watch = getattr(exchange, method)
        cache = exchange.bidsasks if method == "watch_bids_asks" else exchange.tickers
        seen: dict[str, tuple[Any, ...]] = {}
        name = f"connector-{self.venue_id}-tops"
        pending = tasks.spawn(watch(symbols), name=name, report=False)  # always outstanding, as for books
        try:
            while True:
                tickers = await pending
                tasks.raise_if_cancelling()
                pending = tasks.spawn(watch(symbols), name=name, report=False)
                self._publish_changed_tops(symbols, cache, tickers, seen)
                await asyncio.sleep(SWEEP_S)  # as for books: a multi-symbol watch call costs O(symbols)
        finally:
            await tasks.cancel_and_wait(pending)

    def _publish_changed_tops(
        self, symbols: list[str], cache: Any, tickers: Any, seen: dict[str, tuple[Any, ...]]
    ) -> None:
        for symbol in symbols:
            ticker = cache.get(symbol) or tickers.get(symbol)
            if ticker is None:
                continue
            key = (ticker.get("timestamp"), ticker.get("bid"), ticker.get("ask"), ticker.get("bidVolume"),
                       ticker.get("askVolume"))  # fmt: skip
            if seen.get(symbol) != key:
                seen[symbol] = key
                self.on_update(symbol, ticker, book=False)

    def on_gap(self, detail: str) -> None:
        """ccxt found the gap itself and rebuilds that book on the next watch (unless rebuilds keep failing)."""
        self.status.gaps += 1
        CONNECTOR_GAPS.labels(self.venue_id).inc()
        log.warning("connector.book_resync venue=%s detail=%r", self.venue_id, detail[:200])
        self._count_resync()
        if self._failed_resyncs >= self.max_resyncs:
            self.trip("unhealthy", detail)

    @staticmethod
    def _ccxt_errors() -> Any:
        import ccxt

        return ccxt

    def _stream_tasks(self, exchange: Any, symbols: list[str]) -> list[asyncio.Task[None]]:
        has = exchange.has
        name = f"connector-{self.venue_id}"
        limit = self.venue.symbols_per_subscribe
        # One multi-symbol watch takes one market type only (ccxt: spot and linear perps stream on different sockets).
        chunks = [c[i : i + limit] for c in _by_market_type(exchange, symbols) for i in range(0, len(c), limit)]
        if self.fast_binance_depth:
            from arb.connectors.binance_fast import FastDepthStream

            spot = [c for c in chunks if exchange.markets[c[0]].get("spot", True)]
            # The fast path decodes spot streams only; other types go through ccxt, one watch per book.
            others = [s for c in chunks if c not in spot for s in c]
            other = [tasks.spawn(self._watch_book(exchange, s), name=f"{name}-book-{s}", report=False) for s in others]
            streams = [FastDepthStream(self, exchange, chunk, self._market_ids) for chunk in spot]
            return [tasks.spawn(f.run(), name=f"{name}-fast-{i}", report=False) for i, f in enumerate(streams)] + other
        if has.get("watchOrderBookForSymbols"):
            self._seen = {}
            self._sweep_after_messages(exchange, [s for c in chunks for s in c])
            return [
                tasks.spawn(self._watch_books_for_symbols(exchange, chunk), name=f"{name}-books-{i}", report=False)
                for i, chunk in enumerate(chunks)
            ]
        if has.get("watchOrderBook"):
            return [tasks.spawn(self._watch_book(exchange, s), name=f"{name}-book-{s}", report=False) for s in symbols]
        for method, cap in (("watch_bids_asks", "watchBidsAsks"), ("watch_tickers", "watchTickers")):
            if has.get(cap):
                return [tasks.spawn(self._watch_tops(exchange, symbols, method), name=f"{name}-tops", report=False)]
        raise _Reconnect("error", "the venue has no order book or ticker stream in ccxt.pro", self.backoff_max_s)

    def _classify(self, exc: BaseException, exchange: Any) -> _Reconnect:
        ccxt = self._ccxt_errors()
        if isinstance(exc, _Reconnect):
            return exc
        if isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
            return _Reconnect("rate_limit", str(exc), _retry_after_s(exchange))
        if isinstance(exc, ccxt.OnMaintenance | ccxt.ExchangeNotAvailable):
            return _Reconnect("maintenance", str(exc), _retry_after_s(exchange))
        if isinstance(exc, ccxt.NetworkError):
            return _Reconnect("network", str(exc))
        return _Reconnect("error", repr(exc))

    async def _supervise(self, exchange: Any, streams: list[asyncio.Task[None]]) -> None:
        """Wait on the stream tasks; raise _Reconnect when one fails or the feed stalls / freezes."""
        while True:
            budget = self.stall_budget_s
            waker = tasks.spawn(self._wake.wait(), name=f"connector-{self.venue_id}-wake", report=False)
            try:
                done, _ = await asyncio.wait(
                    [*streams, waker], timeout=min(budget / 2, 0.5), return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                await tasks.cancel_and_wait(waker)
            if self._trip is not None:
                raise self._trip
            for task in done:
                if task is waker:
                    continue
                exc = task.exception()
                raise self._classify(exc if exc is not None else _Reconnect("error", "stream ended"), exchange)
            now = self._now_ns()
            last = self.status.last_update_ns or self.status.since_ns
            if (now - last) / 1e9 > budget:
                self.status.stalls += 1
                self._set_state("stale", f"no update for {(now - last) / 1e9:.2f}s (budget {budget:.2f}s)")
                raise _Reconnect("stall", f"no update for {(now - last) / 1e9:.2f}s")
            if self._ts_advanced_ns and (now - self._ts_advanced_ns) / 1e9 > max(budget, self.min_stall_budget_s):
                self.status.stalls += 1
                self._set_state("stale", "venue timestamps stopped advancing")
                raise _Reconnect("stall", "venue timestamps stopped advancing")

    async def run(self) -> None:
        """Stream until cancelled. Every failure ends in a reconnect with backoff; none leaves this method."""
        backoff = self.backoff_initial_s
        while True:
            tasks.raise_if_cancelling()
            exchange = self._exchange = self._create()
            self._trip = None
            self._wake.clear()
            streams: list[asyncio.Task[None]] = []
            updates_before = self.status.updates
            wait = 0.0
            try:
                symbols = await self._load_markets(exchange)
                self._ts_advanced_ns = 0
                self._max_ts_exchange = 0
                self.status.last_update_ns = 0
                self.status.since_ns = self._now_ns()
                streams = self._stream_tasks(exchange, symbols)
                await self._supervise(exchange, streams)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # classified below: a connector never takes the process down
                reconnect = self._classify(exc, exchange)
                self.status.reconnects += 1
                self.status.last_error = f"{reconnect.cause}: {str(reconnect)[:200]}"
                CONNECTOR_RECONNECTS.labels(self.venue_id, reconnect.cause).inc()
                if self.status.state != "stale":
                    self._set_state("down", self.status.last_error)
                if self.status.updates > updates_before:  # the session worked for a while: start backing off anew
                    backoff = self.backoff_initial_s
                # Retry-After is whole seconds on the venue's clock: come back a little after it, never at the edge
                # (Binance bans an IP for calls inside the window: 418).
                floor = reconnect.wait_s * RETRY_AFTER_MARGIN + 0.1 if reconnect.wait_s > 0 else 0.0
                wait = max(self._rng.uniform(0, backoff), floor)
                if self._failed_resyncs >= self.max_resyncs:  # M4: not a storm; the venue is unhealthy
                    self.status.last_error = (
                        f"unhealthy: {self._failed_resyncs} book rebuilds in a row failed; last: {reconnect}"
                    )[:300]
                    wait = max(wait, self.backoff_max_s)
                    self._failed_resyncs = 0
                log.warning(
                    "connector.reconnect venue=%s cause=%s wait_s=%.2f detail=%r",
                    self.venue_id,
                    reconnect.cause,
                    wait,
                    str(reconnect)[:200],
                )
                backoff = min(backoff * 2, self.backoff_max_s)
            finally:
                for task in streams:
                    await tasks.cancel_and_wait(task)
                await _close_even_if_cancelled(exchange, self.venue_id)
            if self.status.state == "stale":
                self._set_state("down", "reconnecting after stall")
            await asyncio.sleep(wait)


def _by_market_type(exchange: Any, symbols: list[str]) -> list[list[str]]:
    """`symbols` grouped by ccxt market type (spot, swap, ...), each group in the given order."""
    groups: dict[Any, list[str]] = {}
    for s in symbols:
        market = exchange.markets.get(s) or {}
        groups.setdefault((market.get("type"), market.get("subType")), []).append(s)
    return list(groups.values())


def _ccxt_client_of(exc: BaseException) -> Any:
    from ccxt.async_support.base.ws.client import Client

    tb = exc.__traceback__
    while tb is not None:
        candidate = tb.tb_frame.f_locals.get("self")
        if isinstance(candidate, Client):
            return candidate
        tb = tb.tb_next
    return None


@contextlib.contextmanager
def catching_frame_errors(connectors: Iterable[CcxtConnector]) -> Iterator[None]:
    """Route exceptions raised while ccxt.pro handles a frame to the connector that owns the connection.

    Why: ccxt.pro decodes and dispatches each frame inside an asyncio done-callback. An exception there (malformed
    JSON; on some venues a checksum error raised from the handler) is only logged by asyncio, and that connection's
    receive loop silently stops: the socket stays open, nothing arrives (a feed that looks alive but is dead). This
    handler counts it against the venue (`rejected["malformed"]`) and makes its connector reconnect at once, instead
    of waiting for the stall watchdog. Anything else goes to the previous handler. Restored on exit.
    """
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    owners = list(connectors)

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        client = _ccxt_client_of(exc) if isinstance(exc, BaseException) else None
        if client is not None:
            for connector in owners:
                if connector.owns_client(client):
                    connector.on_frame_error(exc)  # type: ignore[arg-type]
                    return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
    try:
        yield
    finally:
        loop.set_exception_handler(previous)


def market_taker_fees(markets: Mapping[str, Any], instruments: Mapping[str, str]) -> dict[str, float]:
    """Instrument -> ccxt's `taker` fee of its market, for `instruments` (symbol -> instrument). A market without a
    usable fee (missing, not a number, negative, >= 100 %) is left out: the configured fee then stands."""
    out: dict[str, float] = {}
    for symbol, instrument in instruments.items():
        fee = (markets.get(symbol) or {}).get("taker")
        if isinstance(fee, int | float) and not isinstance(fee, bool) and math.isfinite(fee) and 0.0 <= fee < 1.0:
            out[instrument] = float(fee)
    return out
