"""The opportunity ledger writer: `put()` is cheap and synchronous (the scanner's hot path calls it), a background
task writes batches, one transaction each.

    async with open_ledger(url) as ledger, ledger.opportunity_writer() as w:
        w.put(event)            # an OpportunityEvent from the scanner

Batches. Events are written in the order they were put, at most `max_batch` (500) per transaction, as soon as that
many are pending and at the latest `max_delay_ms` (100 ms) after the previous flush. Per opportunity, a batch writes:
- its row, once, from its latest event. Every event carries the lifecycle state so far (opened_ns, peak edge, update
  count, the latest Opportunity), so `opened` inserts the row, `updated` moves its last fields and peak, `closed`
  sets closed_at_ns/close_reason; a row first seen through a later event (the writer started while an opportunity
  was open) is complete all the same.
- its event rows: every `opened` and `closed`, and of its `updated` events only the latest in the batch (the others
  are counted as coalesced). Why: the scanner emits an update whenever an edge moves, up to once per scan for each
  of hundreds of opportunities. One row per opportunity per flush still traces the edge's path at ~100 ms
  resolution, bounds the table's growth to about 10 rows/s per open opportunity whatever the scan rate, and the
  opportunity's row always holds its latest state and the scanner's full update count. The price: how many
  `updated` rows a lifecycle gets depends on flush timing, not only on the market.

Idempotent writes. A commit can fail with its outcome unknown (the connection died after COMMIT was sent); the batch
is then written again, harmlessly: a row only moves forward in time (an upsert applies only an event at least as new
as the row's `last_event_ns`; peak and update count take the greater value; a close is never undone), and event rows
are unique on (opportunity, ts, type) and inserted with ON CONFLICT DO NOTHING.

Failures. A ledger is a record: unlike quotes (`arb.grid.writer`), events are not dropped when the database fails. A
failed batch goes back to the front of the queue and is retried with backoff (from max_delay_ms, doubling, up to
retry_max_s), logged once per outage (`ledger.writer_failing`, then `ledger.writer_recovered`). Pending events are
bounded by `max_pending`: past it, `updated` events are dropped and counted (`arb_ledger_events_dropped_total`,
reason `overflow`): first those superseded by a later event of the same opportunity (its row still ends at the
latest state, only the edge's path thins out), then the oldest. `opened` and `closed` events are never dropped, so in
a long outage with many lifecycles the queue can outgrow the bound (logged once). An opportunity whose data the
database refuses (a bug: `put` validates) is dropped alone, logged as an error with its id, and the rest of its
batch is written. Leaving the block flushes everything pending, retrying for up to `close_timeout_s`; what is still
unwritten then is counted (reason `shutdown`) and logged as an error.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import operator
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final, Literal

import msgspec
from sqlalchemy import ColumnElement, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.sql.dml import Insert

from arb import tasks
from arb.ledger.errors import OUTAGE_ERRORS, InvalidEvent, LedgerUnavailable, describe
from arb.ledger.metrics import (
    LEDGER_EVENTS_COALESCED,
    LEDGER_EVENTS_DROPPED,
    LEDGER_EVENTS_WRITTEN,
    LEDGER_WRITE_FAILURES,
    LEDGER_WRITE_SECONDS,
    LEDGER_WRITER_PENDING,
)
from arb.ledger.schema import OPPORTUNITIES, OPPORTUNITY_EVENTS
from arb.model import Opportunity, OpportunityEvent

if TYPE_CHECKING:
    from arb.ledger.store import Ledger

log = logging.getLogger(__name__)

_EVENT_TYPES: Final = frozenset(("opened", "updated", "closed"))
_STR_FIELDS: Final = ("id", "kind", "instrument", "buy_venue", "sell_venue", "quote_currency")
_FLOAT_FIELDS: Final = tuple(f.name for f in msgspec.structs.fields(Opportunity) if f.type is float)
_get_floats: Final = operator.attrgetter(*_FLOAT_FIELDS)
_INT64_MAX: Final = 2**63 - 1
_INT32_MAX: Final = 2**31 - 1
_ENCODER: Final = msgspec.json.Encoder()


def event_problem(event: object) -> str | None:
    """Why the ledger would refuse `event`, or None. The common case (a sound event) costs a few microseconds."""
    if not isinstance(event, OpportunityEvent):
        return f"expected an OpportunityEvent, got {type(event).__name__}"
    if event.type not in _EVENT_TYPES:
        return f"type must be one of opened/updated/closed, got {event.type!r}"
    problem = _opportunity_problem(event.opportunity)
    if problem is not None:
        return problem
    if not _finite(event.peak_net_edge):
        return f"peak_net_edge must be a finite number, got {event.peak_net_edge!r}"
    for name, value, top in (
        ("opened_ns", event.opened_ns, _INT64_MAX),
        ("ts", event.ts, _INT64_MAX),
        ("updates", event.updates, _INT32_MAX),
    ):
        if type(value) is not int or not 0 <= value <= top:
            return f"{name} must be an integer in [0, {top}], got {value!r}"
    if event.ts < event.opened_ns:
        return f"ts {event.ts} is before opened_ns {event.opened_ns}"
    if type(event.close_reason) is not str:
        return f"close_reason must be a str, got {event.close_reason!r}"
    return None


def _opportunity_problem(opp: object) -> str | None:
    if not isinstance(opp, Opportunity):
        return f"opportunity must be an Opportunity, got {type(opp).__name__}"
    for name in _STR_FIELDS:
        if type(getattr(opp, name)) is not str:
            return f"opportunity.{name} must be a str, got {getattr(opp, name)!r}"
    if not opp.id:
        return "opportunity.id is empty"
    try:
        if all(map(math.isfinite, _get_floats(opp))):
            return None
    except TypeError:
        pass
    for name in _FLOAT_FIELDS:  # the slow way, only to name the culprit
        if not _finite(getattr(opp, name)):
            return f"opportunity.{name} must be a finite number, got {getattr(opp, name)!r}"
    return None  # pragma: no cover - the fast check and this loop agree


def _finite(value: object) -> bool:
    return isinstance(value, float | int) and math.isfinite(value)


def coalesce(events: list[OpportunityEvent]) -> tuple[list[OpportunityEvent], int]:
    """The events of one batch that get a row of their own: every opened/closed one and, per opportunity, the latest
    updated one, in their original order; and how many updated events that leaves out."""
    last_update: dict[str, int] = {}
    updates = 0
    for i, e in enumerate(events):
        if e.type == "updated":
            last_update[e.opportunity.id] = i
            updates += 1
    if updates == len(last_update):
        return events, 0
    kept = [e for i, e in enumerate(events) if e.type != "updated" or last_update[e.opportunity.id] == i]
    return kept, len(events) - len(kept)


class _Group:
    """One opportunity's part of a batch: its row (from its latest event) and its event rows."""

    __slots__ = ("events", "id", "row", "sources")

    def __init__(self, events: list[OpportunityEvent]) -> None:
        self.sources = events
        latest = events[-1]
        opp = latest.opportunity
        self.id = opp.id
        closing = next((e for e in events if e.type == "closed"), None)
        self.row: dict[str, Any] = {
            "id": opp.id,
            "kind": opp.kind,
            "instrument": opp.instrument,
            "buy_venue": opp.buy_venue,
            "sell_venue": opp.sell_venue,
            "quote_currency": opp.quote_currency,
            "opened_at_ns": latest.opened_ns,
            "closed_at_ns": None if closing is None else closing.ts,
            "close_reason": None if closing is None else closing.close_reason,
            "peak_net_edge": max(max(e.peak_net_edge, e.opportunity.net_edge) for e in events),
            "net_edge": opp.net_edge,
            "size": opp.size,
            "notional": opp.notional,
            "profit": opp.profit,
            "expected_profit": opp.expected_profit,
            "priority": opp.priority,
            "updates": max(e.updates for e in events),
            "last_event_ns": latest.ts,
            "opportunity": _ENCODER.encode(opp).decode(),
        }
        self.events = [
            {
                "opportunity_id": opp.id,
                "type": e.type,
                "ts_ns": e.ts,
                "net_edge": e.opportunity.net_edge,
                "priority": e.opportunity.priority,
            }
            for e in events
        ]


def _statements(dialect: str) -> tuple[Insert, Insert]:
    """(upsert of opportunity rows, insert of event rows that skips those already there) in `dialect`'s SQL."""
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    greatest: Any = func.greatest if dialect == "postgresql" else func.max  # SQLite's two-argument max() is scalar
    rows = OPPORTUNITIES
    upsert = insert(rows)
    new = upsert.excluded
    last = (
        *("kind", "instrument", "buy_venue", "sell_venue", "quote_currency", "net_edge", "size", "notional"),
        *("profit", "expected_profit", "priority", "last_event_ns", "opportunity"),
    )
    set_: dict[str, ColumnElement[Any]] = {name: new[name] for name in last}
    set_["peak_net_edge"] = greatest(rows.c.peak_net_edge, new.peak_net_edge)
    set_["updates"] = greatest(rows.c.updates, new.updates)
    set_["closed_at_ns"] = func.coalesce(rows.c.closed_at_ns, new.closed_at_ns)
    set_["close_reason"] = func.coalesce(rows.c.close_reason, new.close_reason)
    upsert = upsert.on_conflict_do_update(
        index_elements=[rows.c.id], set_=set_, where=new.last_event_ns >= rows.c.last_event_ns
    )
    return upsert, insert(OPPORTUNITY_EVENTS).on_conflict_do_nothing()


def _is_refusal(e: BaseException) -> bool:
    """The database (or the driver) refused the data itself: writing it again cannot succeed."""
    if isinstance(e, IntegrityError | DataError):
        return True
    if isinstance(e, DBAPIError):
        return False
    return isinstance(e, StatementError | TypeError | ValueError | OverflowError | msgspec.MsgspecError)


def _is_outage(e: BaseException) -> bool:
    """The database could not be reached or used now; retrying later may succeed."""
    return isinstance(e, OUTAGE_ERRORS)


def _count_dropped(n: int, reason: str) -> None:
    if n:
        LEDGER_EVENTS_DROPPED.labels(reason).inc(n)


class _Pending:
    """Events not yet written, in order; bounded as the module docstring says (only `updated` ones are dropped)."""

    def __init__(self, max_pending: int) -> None:
        self._events: collections.deque[OpportunityEvent] = collections.deque()
        self._max = max_pending
        self._shed_at = max_pending
        self._over_bound = False
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._events)

    def append(self, event: OpportunityEvent) -> None:
        self._events.append(event)
        if len(self._events) > self._shed_at:
            self._shed()

    def take(self, n: int) -> list[OpportunityEvent]:
        events = self._events
        batch = [events.popleft() for _ in range(min(n, len(events)))]
        if len(events) <= self._max:
            self._shed_at = self._max
            self._over_bound = False
        return batch

    def put_back(self, batch: Iterable[OpportunityEvent]) -> None:
        self._events.extendleft(reversed(list(batch)))

    def clear(self) -> int:
        n = len(self._events)
        self._events.clear()
        return n

    def _shed(self) -> None:
        """Drop `updated` events down to 90 % of the bound: superseded ones first (oldest first), then the oldest.

        Amortised O(1) per put: after a shed the next one is at least max_pending/10 puts away, or, when what is left
        cannot be dropped, twice the current length away."""
        events = list(self._events)
        excess = len(events) - (self._max - self._max // 10)
        seen: set[str] = set()
        superseded: list[int] = []
        for i in range(len(events) - 1, -1, -1):
            e = events[i]
            oid = e.opportunity.id
            if e.type == "updated" and oid in seen:
                superseded.append(i)
            seen.add(oid)
        drop = set(reversed(superseded[-excess:])) if excess > 0 else set()
        if len(drop) < excess:
            for i, e in enumerate(events):
                if e.type == "updated" and i not in drop:
                    drop.add(i)
                    if len(drop) == excess:
                        break
        if drop:
            self._events = collections.deque(e for i, e in enumerate(events) if i not in drop)
            self.dropped += len(drop)
            _count_dropped(len(drop), "overflow")
        self._shed_at = self._max if len(self._events) <= self._max else 2 * len(self._events)
        if len(self._events) > self._max and not self._over_bound:
            self._over_bound = True
            log.warning(
                "ledger.writer_over_bound pending=%d max_pending=%d reason=only opened/closed events left, which are "
                "never dropped",
                len(self._events),
                self._max,
            )


class OpportunityLedgerWriter:
    """`async with ledger.opportunity_writer() as w: w.put(event)`; leaving the block flushes what is pending.

    One-shot lifecycle (STYLE: explicit state): it cannot be entered twice or reused after exit. Counters: every
    event put is eventually `written` (got its own row), `coalesced` (an update superseded within its batch),
    `dropped` (see the module docstring) or still `pending`.
    """

    def __init__(
        self,
        ledger: Ledger,
        *,
        max_batch: int = 500,
        max_delay_ms: float = 100.0,
        max_pending: int = 100_000,
        retry_max_s: float = 2.0,
        close_timeout_s: float = 5.0,
    ) -> None:
        if max_batch < 1 or max_pending < max_batch or max_delay_ms <= 0 or retry_max_s <= 0 or close_timeout_s < 0:
            raise ValueError(
                "need max_batch >= 1, max_pending >= max_batch, max_delay_ms > 0, retry_max_s > 0, close_timeout_s >= 0"
            )
        self._ledger = ledger
        self._upsert, self._insert_events = _statements(ledger.dialect)
        self._max_batch = max_batch
        self._max_delay_s = max_delay_ms / 1000
        self._retry_max_s = max(retry_max_s, self._max_delay_s)
        self._close_timeout_s = close_timeout_s
        self._pending = _Pending(max_pending)
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._state: Literal["new", "open", "closed"] = "new"
        self._failing_since: float | None = None
        self.written = 0
        self.coalesced = 0
        self._lost = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def dropped(self) -> int:
        return self._pending.dropped + self._lost

    def put(self, event: OpportunityEvent) -> None:
        """Queue one event (never blocks, never waits on the database). Raises InvalidEvent at once for an event the
        ledger would refuse (wrong types, NaN/inf, out-of-range integers), naming the opportunity and the field."""
        if self._state != "open":
            raise RuntimeError(f"OpportunityLedgerWriter is {self._state}; use it inside `async with`")
        problem = event_problem(event)
        if problem is not None:
            opp = getattr(event, "opportunity", None)
            raise InvalidEvent(f"opportunity event (id={getattr(opp, 'id', None)!r}): {problem}")
        self._pending.append(event)
        if len(self._pending) >= self._max_batch:
            self._wake.set()

    async def flush(self) -> int:
        """Write everything pending now, one transaction per `max_batch` events; returns how many events got a row.

        Raises LedgerUnavailable when the database failed: the unwritten events stay pending, in order, for the
        next flush (logged once per outage)."""
        async with self._lock:
            written = 0
            try:
                while self._pending:
                    written += await self._write_batch(self._pending.take(self._max_batch))
            except Exception as e:
                LEDGER_WRITE_FAILURES.inc()
                self._note_failure(e)
                if _is_outage(e):
                    raise LedgerUnavailable("write", describe(e)) from e
                raise
            finally:
                LEDGER_WRITER_PENDING.set(len(self._pending))
            if self._failing_since is not None:
                log.info(
                    "ledger.writer_recovered outage_s=%.1f dropped_total=%d",
                    time.monotonic() - self._failing_since,
                    self.dropped,
                )
                self._failing_since = None
            return written

    def _note_failure(self, e: Exception) -> None:
        if self._failing_since is not None:
            return
        self._failing_since = time.monotonic()
        if _is_outage(e):
            log.warning("ledger.writer_failing pending=%d error=%r", len(self._pending), describe(e))
        else:  # not a database outage: a bug; the events are kept and retried all the same
            log.error("ledger.writer_failing pending=%d error=%r", len(self._pending), describe(e), exc_info=e)

    async def _write_batch(self, batch: list[OpportunityEvent]) -> int:
        """Write one batch; on failure its unwritten events go back to the front of the queue and the error is raised
        (except for refused opportunities, which are dropped, see the module docstring)."""
        kept, coalesced = coalesce(batch)
        if coalesced:
            self.coalesced += coalesced
            LEDGER_EVENTS_COALESCED.inc(coalesced)
        by_id: dict[str, list[OpportunityEvent]] = {}
        for e in kept:
            by_id.setdefault(e.opportunity.id, []).append(e)
        groups: list[_Group] = []
        for events in by_id.values():
            try:
                groups.append(_Group(events))
            except Exception as e:  # an opportunity that cannot be encoded
                self._refuse(events, e)
                kept = [k for k in kept if k.opportunity.id != events[0].opportunity.id]
        try:
            await self._transaction(groups)
        except BaseException as e:
            if not _is_refusal(e):
                self._pending.put_back(kept)
                raise
            return await self._write_one_by_one(groups)
        return self._committed(groups)

    async def _write_one_by_one(self, groups: list[_Group]) -> int:
        """A batch was refused: find the opportunities at fault, one transaction each, and write the others."""
        written = 0
        for i, group in enumerate(groups):
            try:
                await self._transaction([group])
            except BaseException as e:
                if _is_refusal(e):
                    self._refuse(group.sources, e)
                    continue
                self._pending.put_back(ev for g in groups[i:] for ev in g.sources)
                raise
            written += self._committed([group])
        return written

    async def _transaction(self, groups: list[_Group]) -> None:
        if not groups:
            return
        started = time.perf_counter()
        try:
            async with self._ledger.engine.begin() as connection:
                await connection.execute(self._upsert, [g.row for g in groups])
                await connection.execute(self._insert_events, [row for g in groups for row in g.events])
        finally:
            LEDGER_WRITE_SECONDS.observe(time.perf_counter() - started)

    def _committed(self, groups: list[_Group]) -> int:
        counts = collections.Counter(row["type"] for g in groups for row in g.events)
        for kind, n in counts.items():
            LEDGER_EVENTS_WRITTEN.labels(kind).inc(n)
        n = sum(counts.values())
        self.written += n
        return n

    def _refuse(self, events: list[OpportunityEvent], e: BaseException) -> None:
        self._lost += len(events)
        _count_dropped(len(events), "refused")
        log.error(
            "ledger.writer_refused opportunity=%s events=%d error=%r",
            events[0].opportunity.id,
            len(events),
            describe(e),
            exc_info=e,
        )

    async def _run(self) -> None:
        retry_s = self._max_delay_s
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
                retry_s = self._max_delay_s
            except Exception:  # logged by flush, once per outage; the events are kept
                await asyncio.sleep(retry_s)
                retry_s = min(2 * retry_s, self._retry_max_s)

    async def _drain(self) -> None:
        retry_s = self._max_delay_s
        while self._pending:
            try:
                await self.flush()
            except Exception:
                await asyncio.sleep(retry_s)
                retry_s = min(2 * retry_s, self._retry_max_s)

    async def __aenter__(self) -> OpportunityLedgerWriter:
        if self._state != "new":
            raise RuntimeError(f"OpportunityLedgerWriter is {self._state}; it cannot be opened again")
        self._state = "open"
        self._task = tasks.spawn(self._run(), name=f"ledger-writer-{id(self):x}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._state = "closed"
        try:
            async with asyncio.timeout(self._close_timeout_s):
                if self._task is not None:
                    async with self._lock:  # an in-flight batch completes first
                        await tasks.cancel_and_wait(self._task)
                await self._drain()
        except TimeoutError:
            pass
        finally:
            if self._task is not None:
                await tasks.cancel_and_wait(self._task)
                self._task = None
            lost = self._pending.clear()
            LEDGER_WRITER_PENDING.set(0)
            if lost:
                self._lost += lost
                _count_dropped(lost, "shutdown")
                log.error(
                    "ledger.writer_lost events=%d close_timeout_s=%s reason=database still unavailable at close",
                    lost,
                    self._close_timeout_s,
                )
