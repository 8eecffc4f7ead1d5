"""A numpy mirror of the grid that follows the change feed: the scanner's in-process view of every quote.

Why a mirror: the scanner evaluates 300 instruments × 20 venues many times a second; reading Redis each time would
cost a round trip and a decode per pass. The mirror holds (instruments × venues) float64/int64 arrays, updated from
the feed in vectorised batches, so a scanner pass is pure numpy.

Why it can be trusted (fail closed, FAULTS M8): it is `valid` only while it is provably in step with Redis. It goes
invalid when Redis is unreachable or too slow (socket timeout), and when it detects a gap in the feed counter
(entries trimmed because it lagged, or Redis restarted empty). While invalid, `fresh_mask` is all False, so no
decision is made on it. It then retries with capped exponential backoff, rebuilds from a consistent snapshot (which
says exactly where in the feed to continue), and records the gap in `gaps` (also logged and counted).

Staleness needs no connection at all: ages come from each quote's receive time, so a quiet or dead feed makes quotes
stale on their own.

Depth (`depth=N`): the scanner sizes opportunities by walking books, so it asks for (instruments × venues × N) level
arrays too. They are filled from the feed's quotes (which carry depth); a rebuild then reads every full quote
(`read_quotes`, one MULTI/EXEC with the feed position) instead of the top-of-book blob. `dirty` marks the instrument
rows that changed since the consumer last cleared them, so the scanner recomputes only those.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Final, Literal

import msgspec
import numba
import numpy as np
import numpy.typing as npt

from arb import tasks
from arb.grid import codec
from arb.grid.errors import GridLayoutMismatch, GridUnavailable
from arb.grid.store import FeedPosition, GridSnapshot, QuotesSnapshot
from arb.metrics import (
    GRID_MIRROR_GAPS,
    GRID_MIRROR_LAG_SECONDS,
    GRID_MIRROR_REBUILD_SECONDS,
    GRID_MIRROR_VALID,
)
from arb.model import Quote

if TYPE_CHECKING:
    from arb.backtest.tape import Block
    from arb.grid.layout import GridLayout
    from arb.grid.store import PriceGrid

log = logging.getLogger(__name__)

GapReason = Literal["trimmed", "restart", "unavailable", "error"]
FloatArray = npt.NDArray[np.float64]
Int64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_INT64_MAX: Final = np.iinfo(np.int64).max
_IDLE_MISMATCHES_BEFORE_REBUILD: Final = 2


class MirrorGap(msgspec.Struct, frozen=True):
    """One loss of continuity with the feed, recorded when the mirror had rebuilt past it.

    `since_ns`/`until_ns`: when it was detected (or Redis became unreachable) and when the rebuild finished.
    `missed`: feed entries the mirror never saw (None when unknown: Redis lost its data).
    """

    reason: GapReason
    since_ns: int
    until_ns: int
    last_c: int
    resumed_c: int
    missed: int | None

    @property
    def duration_ns(self) -> int:
        return self.until_ns - self.since_ns


class _Lost(msgspec.Struct):
    reason: GapReason
    since_ns: int
    missed: int | None = None


class GridMirror:
    """(instruments × venues) arrays of the grid's top of book, kept in step with Redis by `follow()`.

    Arrays are updated in place (a reference taken once stays current); empty cells are NaN (prices, sizes) and 0
    (times, sequence). Use from one event loop: `apply`/`rebuild` never yield mid-update, so a reader on the same loop
    never sees a half-applied batch.
    """

    def __init__(
        self,
        grid: PriceGrid,
        *,
        block_ms: int = 500,
        count: int = 1000,
        backoff_initial_s: float = 0.05,
        backoff_max_s: float = 2.0,
        now_ns: Callable[[], int] | None = None,
        depth: int = 0,
    ) -> None:
        if depth < 0:
            raise ValueError("depth must be >= 0")
        self.grid = grid
        timeout = grid.client.connection_pool.connection_kwargs.get("socket_timeout")
        # XREAD BLOCK must return before the socket timeout, or a quiet feed would read as a dead Redis.
        self._block_ms = block_ms if not timeout else max(1, min(block_ms, int(float(timeout) * 1000 / 2)))
        self._count = count
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._init_arrays(grid.layout, depth, now_ns or grid.now_ns)

    @classmethod
    def offline(cls, layout: GridLayout, *, depth: int, now_ns: Callable[[], int]) -> GridMirror:
        """A mirror with no Redis behind it, fed only by `apply` (the backtest replayer feeds it a recorded tape).

        Why valid from the start: it is in step with its feed by construction (every entry it is given is applied,
        in order), which is what `valid` means for a following mirror. It has no `grid`: `rebuild`/`follow` refuse,
        and whoever reads the time must be handed the replay clock (`now_ns`)."""
        if depth < 0:
            raise ValueError("depth must be >= 0")
        mirror = cls.__new__(cls)
        mirror._init_arrays(layout, depth, now_ns)
        mirror._valid = mirror._offline = True
        return mirror

    def _init_arrays(self, layout: GridLayout, depth: int, now_ns: Callable[[], int]) -> None:
        self.layout = layout
        self._now_ns = now_ns
        shape = self.layout.shape
        self.bid: FloatArray = np.full(shape, np.nan)
        self.ask: FloatArray = np.full(shape, np.nan)
        self.bid_size: FloatArray = np.full(shape, np.nan)
        self.ask_size: FloatArray = np.full(shape, np.nan)
        self.ts_exchange: Int64Array = np.zeros(shape, np.int64)
        self.ts_recv: Int64Array = np.zeros(shape, np.int64)
        self.sequence: Int64Array = np.zeros(shape, np.int64)
        self.depth = depth
        dshape = (*shape, depth)
        self.bid_px: FloatArray = np.full(dshape, np.nan)
        """Depth levels per cell, best first; NaN past a book's last level (and everywhere for a top-only quote)."""
        self.bid_qty: FloatArray = np.full(dshape, np.nan)
        self.ask_px: FloatArray = np.full(dshape, np.nan)
        self.ask_qty: FloatArray = np.full(dshape, np.nan)
        self.dirty: BoolArray = np.zeros(shape[0], np.bool_)
        """Rows (instruments) changed since the consumer last cleared them (`take_dirty`)."""
        self._flat = {
            name: getattr(self, name).reshape(-1) for name in (*codec.FLOAT_FIELDS, *codec.INT_FIELDS)
        }  # views: writing them writes the 2-D arrays
        self._max_age_ns = self.layout.max_age_ns[None, :]
        self._valid = False
        self._offline = False
        self._last_c = 0
        self._last_id = "0-0"
        self._run_id: str | None = None
        self._lost: _Lost | None = None
        self._idle_mismatches = 0
        self._waiting_logged = False
        self._changed = asyncio.Event()
        self.gaps: list[MirrorGap] = []
        self.skipped: dict[str, int] = {}

    # --- state ------------------------------------------------------------------------------------------------

    @property
    def valid(self) -> bool:
        """True only while in step with Redis; False before the first rebuild, while Redis is unreachable, and
        between detecting a gap and rebuilding past it."""
        return self._valid

    @property
    def position(self) -> FeedPosition:
        """The last feed entry applied (c, stream id)."""
        return FeedPosition(self._last_c, self._last_id)

    def _set_valid(self, valid: bool) -> None:
        self._valid = valid
        GRID_MIRROR_VALID.set(1 if valid else 0)
        self._notify()

    def _notify(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    def _merge_skips(self, skips: codec.Skips) -> None:
        for reason, n in skips.counts.items():
            self.skipped[reason] = self.skipped.get(reason, 0) + n

    # --- the hot path -----------------------------------------------------------------------------------------

    @property
    def present(self) -> BoolArray:
        present: BoolArray = self.ts_recv > 0
        return present

    def ages_ns(self, now_ns: int | None = None) -> Int64Array:
        """Receive-time age of every cell; int64 max for empty cells."""
        now = self._now_ns() if now_ns is None else now_ns
        ages: Int64Array = np.where(self.ts_recv > 0, now - self.ts_recv, _INT64_MAX)
        return ages

    def fresh_mask(self, now_ns: int | None = None) -> BoolArray:
        """True where a quote exists and is within its venue's age limit, and only while the mirror is valid."""
        if not self._valid:
            return np.zeros(self.layout.shape, np.bool_)
        fresh: BoolArray = (self.ts_recv > 0) & codec.fresh_mask(self.ages_ns(now_ns), self._max_age_ns)
        return fresh

    def fresh_rows(self, rows: Int64Array, now_ns: int | None = None) -> BoolArray:
        """`fresh_mask` of these instrument rows only (len(rows) x venues)."""
        if not self._valid:
            return np.zeros((len(rows), self.layout.shape[1]), np.bool_)
        now = self._now_ns() if now_ns is None else now_ns
        ts = self.ts_recv[rows]
        ages = np.where(ts > 0, now - ts, _INT64_MAX)
        fresh: BoolArray = (ts > 0) & codec.fresh_mask(ages, self._max_age_ns)
        return fresh

    def take_dirty(self) -> Int64Array:
        """The changed rows, in order; clears them."""
        rows: Int64Array = np.flatnonzero(self.dirty)
        self.dirty[rows] = False
        return rows

    def _set_depth(self, cell: int, q: Quote) -> None:
        i, j = divmod(cell, self.bid.shape[1])
        write_levels(self.bid_px, self.bid_qty, i, j, q.bids)
        write_levels(self.ask_px, self.ask_qty, i, j, q.asks)

    def apply(self, quotes: Sequence[Quote]) -> int:
        """Apply quotes in order (the last per cell wins, as in Redis); unknown or unsound ones are skipped and
        counted. Returns how many were applied. Validity is untouched: that is the follower's business."""
        if not quotes:
            return 0
        packed = codec.pack(self.layout, quotes)
        if packed.rejected:
            skips = codec.Skips("mirror_apply")
            for r in packed.rejected:
                skips.record(r.reason, f"{r.quote.instrument}|{r.quote.venue}", r.problem)
            self._merge_skips(skips)
        if not packed.cells:
            return 0
        latest = dict(zip(packed.cells, range(len(packed.cells)), strict=True))
        cells = np.fromiter(latest.keys(), np.int64, len(latest))
        rows = np.fromiter(latest.values(), np.int64, len(latest))
        rec = packed.records[rows]
        for name, flat in self._flat.items():
            flat[cells] = rec[name]
        if self.depth:
            for cell, row in latest.items():
                self._set_depth(cell, packed.quotes[row])
        self.dirty[cells // self.bid.shape[1]] = True
        self._notify()
        return len(packed.quotes)

    def apply_columns(self, block: Block, k: int, cells: Int64Array) -> int:
        """Apply feed entry `k` of a tape chunk (`arb.backtest.tape.Block`) straight from its columns: the replay's
        fast path (compiled; a feed entry costs a few microseconds instead of ~10 per quote through `apply`).

        `cells`: the chunk's quote rows resolved to this layout's flat cells (-1: not in the layout; skipped and
        counted as `unknown_cell`). The quotes are not validated again: the grid writer refused unsound ones before
        they reached the feed the tape was recorded from. As `apply`: in order, so the last quote per cell wins, and
        the rows changed are marked dirty. Returns how many quotes were applied."""
        lo, hi = int(block.start[k]), int(block.start[k + 1])
        if lo == hi:
            return 0
        f = self._flat
        d = max(self.depth, 1)
        applied, unknown = _apply_rows(
            lo, hi, cells, self.bid.shape[1], self.depth,
            block.bid, block.ask, block.bid_size, block.ask_size, block.ts_exchange, block.ts_recv, block.sequence,
            f["bid"], f["ask"], f["bid_size"], f["ask_size"], f["ts_exchange"], f["ts_recv"], f["sequence"],
            block.bid_px, block.bid_qty, block.ask_px, block.ask_qty,
            self.bid_px.reshape(-1, d), self.bid_qty.reshape(-1, d), self.ask_px.reshape(-1, d),
            self.ask_qty.reshape(-1, d), self.dirty,
        )  # fmt: skip
        if unknown:
            self.skipped["unknown_cell"] = self.skipped.get("unknown_cell", 0) + unknown
        if applied:
            self._notify()
        return int(applied)

    def load(self, snapshot: GridSnapshot) -> None:
        """Replace every cell with the snapshot's and continue from its feed position."""
        if snapshot.layout != self.layout:
            raise ValueError(f"snapshot of {snapshot.layout!r} does not fit mirror of {self.layout!r}")
        for name in (*codec.FLOAT_FIELDS, *codec.INT_FIELDS):
            getattr(self, name)[...] = getattr(snapshot, name)
        self._last_c, self._last_id = snapshot.position.c, snapshot.position.id
        self.dirty[:] = True
        self._notify()

    def load_quotes(self, snapshot: QuotesSnapshot) -> None:
        """Replace every cell (depth included) with the snapshot's full quotes; continue from its feed position."""
        for name in (*codec.FLOAT_FIELDS, "bid_px", "bid_qty", "ask_px", "ask_qty"):
            getattr(self, name)[...] = np.nan
        for name in codec.INT_FIELDS:
            getattr(self, name)[...] = 0
        quotes = [view.quote for view in snapshot.quotes.values()]
        if quotes:
            self.apply(quotes)
        self._last_c, self._last_id = snapshot.position.c, snapshot.position.id
        self.dirty[:] = True
        self._notify()

    # --- following Redis --------------------------------------------------------------------------------------

    async def rebuild(self) -> GridSnapshot | QuotesSnapshot:
        """Reload every cell from a consistent snapshot (full quotes when the mirror keeps depth); the mirror is
        valid afterwards. Raises GridUnavailable (and leaves the mirror invalid) when Redis cannot be read."""
        if self._offline:
            raise RuntimeError("an offline mirror has no grid to rebuild from")
        started = time.perf_counter()
        snapshot: GridSnapshot | QuotesSnapshot
        try:
            run_id = await self.grid.server_run_id()
            snapshot = await (self.grid.read_quotes() if self.depth else self.grid.read_grid())
        except BaseException:
            self._set_valid(False)
            raise
        if isinstance(snapshot, QuotesSnapshot):
            self.load_quotes(snapshot)
        else:
            self.load(snapshot)
        self._run_id = run_id
        if snapshot.skipped:
            for reason, n in snapshot.skipped.items():
                self.skipped[reason] = self.skipped.get(reason, 0) + n
        self._set_valid(True)
        GRID_MIRROR_REBUILD_SECONDS.observe(time.perf_counter() - started)
        return snapshot

    def _mark_lost(self, reason: GapReason, missed: int | None = None, detail: str = "") -> None:
        if self._run_id is None:  # never in step yet: nothing was lost, there is just nothing to trust so far
            if self._valid or not self._waiting_logged:
                self._waiting_logged = True
                log.warning("grid.mirror_waiting reason=%s detail=%r", reason, detail)
            self._set_valid(False)
            return
        if self._lost is None:
            self._lost = _Lost(reason, self._now_ns(), missed)
            log.warning(
                "grid.mirror_invalid reason=%s last_c=%d missed=%s detail=%r", reason, self._last_c, missed, detail
            )
        self._set_valid(False)

    async def _recover(self) -> None:
        lost = self._lost
        last_c, old_run_id = self._last_c, self._run_id
        snapshot = await self.rebuild()
        if lost is None:
            return
        reason, missed = lost.reason, lost.missed
        restarted = old_run_id is not None and self._run_id != old_run_id
        if restarted or snapshot.position.c < last_c:
            reason, missed = "restart", None
        elif reason in ("unavailable", "error"):
            missed = snapshot.position.c - last_c
        gap = MirrorGap(reason, lost.since_ns, self._now_ns(), last_c, snapshot.position.c, missed)
        self.gaps.append(gap)
        self._lost = None
        GRID_MIRROR_GAPS.labels(reason).inc()
        log.warning(
            "grid.mirror_gap reason=%s duration_ms=%.1f last_c=%d resumed_c=%d missed=%s",
            reason,
            gap.duration_ns / 1e6,
            last_c,
            gap.resumed_c,
            missed,
        )

    def _apply_entries(self, entries: Iterable[tuple[bytes, dict[bytes, bytes]]]) -> None:
        skips = codec.Skips("follow")
        batch: list[Quote] = []
        for raw_id, fields in entries:
            entry_id = raw_id.decode()
            c = codec.parse_counter(fields.get(b"c"))
            if c is None:
                skips.record("feed_bad_counter", entry_id, f"c={fields.get(b'c')!r}")
                self._last_id = entry_id  # read past it; the counter of the next entry still detects a real gap
                continue
            if c <= self._last_c:
                self._mark_lost("restart", None, f"feed counter went back from {self._last_c} to {c}")
                break
            if c != self._last_c + 1:
                self._mark_lost("trimmed", c - self._last_c - 1, f"feed counter jumped from {self._last_c} to {c}")
                break
            payload = fields.get(b"q")
            if payload is None:
                skips.record("feed_undecodable", entry_id, "entry has no q field")
            else:
                batch.extend(codec.decode_feed_quotes(payload, entry_id, skips))
            self._last_c, self._last_id = c, entry_id
        if skips:
            self._merge_skips(skips)
        if batch:
            self.apply(batch)
            lag_ns = self._now_ns() - max(q.ts_recv for q in batch)
            GRID_MIRROR_LAG_SECONDS.observe(max(lag_ns, 0) / 1e9)
        self._notify()  # the position moved even if no quote did

    async def _check_idle(self) -> None:
        """After a quiet XREAD: a feed counter below ours means Redis restarted empty; one above ours twice in a row
        means entries exist that XREAD does not return (their ids sort before ours: restarted with a clock behind)."""
        current = await self.grid.position()
        if current.c < self._last_c:
            self._mark_lost("restart", None, f"feed counter is {current.c}, mirror has applied {self._last_c}")
        elif current.c > self._last_c:
            self._idle_mismatches += 1
            if self._idle_mismatches >= _IDLE_MISMATCHES_BEFORE_REBUILD:
                self._mark_lost("restart", None, f"feed at {current.c} but no entries after {self._last_id}")
        else:
            self._idle_mismatches = 0

    async def _step(self) -> None:
        if not self._valid:
            await self._recover()
        entries = await self.grid.read_feed(self._last_id, count=self._count, block_ms=self._block_ms)
        if entries:
            self._idle_mismatches = 0
            self._apply_entries(entries)
        else:
            await self._check_idle()

    async def follow(self) -> None:
        """Follow the feed until cancelled: rebuild first, then apply entries as they come; on Redis trouble go
        invalid, retry with capped backoff, rebuild and record the gap. Never returns normally."""
        backoff = self._backoff_initial_s
        while True:
            tasks.raise_if_cancelling()
            try:
                await self._step()
                backoff = self._backoff_initial_s
            except GridUnavailable as e:
                self._mark_lost("unavailable", None, e.reason)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._backoff_max_s)
            except GridLayoutMismatch as e:
                self._set_valid(False)
                log.error("grid.mirror_layout_mismatch error=%r", str(e))
                await asyncio.sleep(self._backoff_max_s)
            except Exception as e:  # a bug must not leave a mirror that says valid but no longer follows
                log.exception("grid.mirror_follow_failed")
                self._mark_lost("error", None, repr(e))
                await asyncio.sleep(self._backoff_max_s)

    @contextlib.asynccontextmanager
    async def following(self) -> AsyncIterator[GridMirror]:
        """`async with mirror.following():` runs `follow()` in a named background task, cancelled on exit."""
        task = tasks.spawn(self.follow(), name=f"grid-mirror-{self.grid.keys.feed}")
        try:
            yield self
        finally:
            await tasks.cancel_and_wait(task)
            self._set_valid(False)

    async def wait_changed(self, timeout_s: float) -> bool:
        """Wait until the mirror changes (quotes applied, validity or position moved); False after `timeout_s`."""
        event = self._changed
        try:
            async with asyncio.timeout(timeout_s):
                await event.wait()
        except TimeoutError:
            return False
        return True

    async def wait_until(self, predicate: Callable[[GridMirror], bool], timeout_s: float) -> bool:
        """Wait (up to `timeout_s`) until `predicate(mirror)` holds, re-checking after every change; False on
        timeout. For start-up ("wait until valid") and tests."""
        try:
            async with asyncio.timeout(timeout_s):
                while not predicate(self):
                    await self._changed.wait()
        except TimeoutError:
            return predicate(self)
        return True


def write_levels(px: FloatArray, qty: FloatArray, i: int, j: int, levels: tuple[tuple[float, float], ...]) -> None:
    """One side of cell (i, j)'s book into depth arrays (instruments x venues x levels), NaN past its last level.

    The per-update cost of a depth-keeping mirror; `zip` into two tuples is ~3x cheaper than building an array first."""
    d = px.shape[2]
    n = min(len(levels), d)
    if n:
        prices, sizes = zip(*levels[:n], strict=True)
        px[i, j, :n] = prices
        qty[i, j, :n] = sizes
    if n < d:
        px[i, j, n:] = np.nan
        qty[i, j, n:] = np.nan


@numba.njit(cache=True, nogil=True)
def _apply_rows(
    lo: int, hi: int, cells: Int64Array, n_venues: int, depth: int,
    bid: FloatArray, ask: FloatArray, bid_size: FloatArray, ask_size: FloatArray, ts_exchange: Int64Array,
    ts_recv: Int64Array, sequence: Int64Array,
    m_bid: FloatArray, m_ask: FloatArray, m_bid_size: FloatArray, m_ask_size: FloatArray, m_ts_exchange: Int64Array,
    m_ts_recv: Int64Array, m_sequence: Int64Array,
    bid_px: FloatArray, bid_qty: FloatArray, ask_px: FloatArray, ask_qty: FloatArray,
    m_bid_px: FloatArray, m_bid_qty: FloatArray, m_ask_px: FloatArray, m_ask_qty: FloatArray, dirty: BoolArray,
) -> tuple[int, int]:  # fmt: skip
    """Rows lo..hi of tape columns into the mirror's flat arrays (in order: the last per cell wins); depth rows
    copied up to the mirror's depth, NaN past the tape's. Returns (applied, unknown)."""
    applied = unknown = 0
    width = min(depth, bid_px.shape[1])
    for r in range(lo, hi):
        c = cells[r]
        if c < 0:
            unknown += 1
            continue
        m_bid[c], m_ask[c], m_bid_size[c], m_ask_size[c] = bid[r], ask[r], bid_size[r], ask_size[r]
        m_ts_exchange[c], m_ts_recv[c], m_sequence[c] = ts_exchange[r], ts_recv[r], sequence[r]
        if depth:
            for lvl in range(width):
                m_bid_px[c, lvl], m_bid_qty[c, lvl] = bid_px[r, lvl], bid_qty[r, lvl]
                m_ask_px[c, lvl], m_ask_qty[c, lvl] = ask_px[r, lvl], ask_qty[r, lvl]
            for lvl in range(width, depth):
                m_bid_px[c, lvl] = m_bid_qty[c, lvl] = m_ask_px[c, lvl] = m_ask_qty[c, lvl] = np.nan
        dirty[c // n_venues] = True
        applied += 1
    return applied, unknown
