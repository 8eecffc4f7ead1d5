"""A batching writer for connectors: `put()` is cheap and synchronous, a background task flushes in batches.

Why batch: one pipelined script call per ~1000 quotes is >10x the throughput of one call per quote (see
`bench/grid_ingest.py`), and a connector's websocket loop must never wait on Redis. Pending quotes are
flushed as soon as `max_batch` of them are pending, and at the latest `max_delay_ms` after they were put.

Overload and failure: pending quotes are bounded (`max_pending`); past that the oldest are dropped (a newer quote of
the same cell supersedes them anyway) and counted. A flush that fails because Redis is unavailable drops its batch
(counted, logged once per outage) and is not resent: the outcome of a timed-out write is unknown, and by the time
Redis is back those quotes are stale while fresher ones are queued. Readers see the staleness; nothing is faked.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Final, Literal

from arb import tasks
from arb.grid import codec
from arb.grid.errors import GridError, InvalidQuote
from arb.metrics import GRID_WRITER_DROPPED
from arb.model import Quote, quote_is_sound

if TYPE_CHECKING:
    from arb.grid.store import FeedPosition, PriceGrid

log = logging.getLogger(__name__)

_RETRY_AFTER_FAILURE_S: Final = 0.1
"""Pause after a failed flush, so a dead Redis costs a few connection attempts a second, not hundreds."""


class GridWriter:
    """`async with grid.writer() as w: w.put(quote)`; leaving the block flushes what is pending and stops the task.

    One-shot lifecycle (STYLE: explicit state): it cannot be entered twice or reused after exit.
    """

    def __init__(
        self,
        grid: PriceGrid,
        *,
        max_batch: int = 1000,
        max_delay_ms: float = 5.0,
        max_pending: int = 100_000,
        on_written: Callable[[list[Quote]], None] | None = None,
    ) -> None:
        """`on_written(batch)` is called once Redis confirmed a batch (e.g. to measure exchange -> grid latency)."""
        if max_batch < 1 or max_pending < max_batch or max_delay_ms <= 0:
            raise ValueError("need max_batch >= 1, max_pending >= max_batch and max_delay_ms > 0")
        self._grid = grid
        self._max_batch = max_batch
        self._max_delay_s = max_delay_ms / 1000
        self._pending: collections.deque[Quote] = collections.deque(maxlen=max_pending)
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._state: Literal["new", "open", "closed"] = "new"
        self._failing = False
        self._on_written = on_written
        self.written = 0
        self.dropped = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def put(self, quote: Quote, *, checked: bool = False) -> None:
        """Queue one quote. Raises InvalidQuote at once for a quote the grid would refuse, so the bad one is
        reported to the connector that produced it instead of failing a whole batch later. `checked`: the caller
        just ran `arb.model.quote_is_sound` on it (the connectors do), so it is not walked again here."""
        if self._state != "open":
            raise RuntimeError(f"GridWriter is {self._state}; use it inside `async with`")
        if (quote.instrument, quote.venue) not in self._grid.layout.cells:
            raise InvalidQuote(
                f"quote (venue={quote.venue!r}, instrument={quote.instrument!r}) is not a cell of the grid layout"
            )
        try:
            sound = checked or quote_is_sound(quote)
        except TypeError:  # a field of the wrong type (construction does not check types)
            sound = False
        if not sound:
            raise InvalidQuote(
                f"quote (venue={quote.venue!r}, instrument={quote.instrument!r}, sequence={quote.sequence!r}): "
                + "; ".join(codec.typed_problems(quote))
            )
        if len(self._pending) == self._pending.maxlen:
            self._count_dropped(1, "overflow")
        self._pending.append(quote)
        if len(self._pending) >= self._max_batch:
            self._wake.set()

    async def flush(self) -> int:
        """Write everything pending now, in batches of `max_batch` (double-buffered, see `PriceGrid.write_many`);
        returns how many quotes were written. Raises GridUnavailable: what was taken for writing and not confirmed
        is dropped and counted (see the module docstring)."""
        async with self._lock:
            taken = confirmed = 0
            in_flight: collections.deque[list[Quote]] = collections.deque()

            def batches() -> Iterator[list[Quote]]:
                nonlocal taken
                while self._pending:
                    n = min(len(self._pending), self._max_batch)
                    taken += n
                    batch = [self._pending.popleft() for _ in range(n)]
                    in_flight.append(batch)
                    yield batch

            def written(n: int, _position: FeedPosition) -> None:
                nonlocal confirmed
                confirmed += n
                self.written += n
                batch = in_flight.popleft()
                if self._on_written is not None:
                    self._on_written(batch)

            try:
                await self._grid.write_many(batches(), on_written=written, validated=True)
            except InvalidQuote as e:  # put() validates, so only a bug gets here
                self._count_dropped(taken - confirmed, "refused")
                log.error("grid.writer_batch_refused dropped=%d error=%r", taken - confirmed, str(e))
                raise
            except BaseException as e:
                self._count_dropped(taken - confirmed, "unavailable")
                if isinstance(e, GridError) and not self._failing:
                    self._failing = True
                    log.warning("grid.writer_failing dropped=%d error=%r", taken - confirmed, str(e))
                raise
            if self._failing and confirmed:
                self._failing = False
                log.info("grid.writer_recovered dropped_total=%d", self.dropped)
            return confirmed

    def _count_dropped(self, n: int, reason: str) -> None:
        self.dropped += n
        GRID_WRITER_DROPPED.labels(reason).inc(n)

    async def _run(self) -> None:
        while True:
            tasks.raise_if_cancelling()
            try:
                async with asyncio.timeout(self._max_delay_s):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            if not self._pending:
                continue
            try:
                await self.flush()
            except GridError:  # logged by flush, once per outage
                await asyncio.sleep(_RETRY_AFTER_FAILURE_S)
            except Exception:  # a bug must not silently stop the feed: log it and keep flushing
                log.exception("grid.writer_flush_failed")
                await asyncio.sleep(_RETRY_AFTER_FAILURE_S)

    async def __aenter__(self) -> GridWriter:
        if self._state != "new":
            raise RuntimeError(f"GridWriter is {self._state}; it cannot be opened again")
        self._state = "open"
        self._task = tasks.spawn(self._run(), name=f"grid-writer-{id(self):x}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._state = "closed"
        if self._task is not None:
            async with self._lock:  # an in-flight flush completes first; its batch is not cut off mid-write
                await tasks.cancel_and_wait(self._task)
            self._task = None
        if self._pending:
            try:
                await self.flush()
            except GridError as e:
                log.warning("grid.writer_final_flush_failed error=%r", str(e))
