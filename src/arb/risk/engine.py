"""The risk engine: the pre-trade check plus the trading state it runs under, its persistence and its denial events.

Lifecycle (`async with RiskEngine(...) as risk:`): entering loads the persisted trading state, so a HALTED engine
comes back HALTED after a restart, and starts a writer task and a poller (which adopts a newer state another process,
the CLI's kill switch, persisted); leaving flushes what is pending (bounded by a timeout) and stops both. An engine is
entered once.

Why `check` is synchronous and persistence is not in it: the executor calls it on the hot path and a database write
per denial would make a denial storm slow everything. So `check` decides and applies in memory at once (an
escalation to HALTED holds from the very next check), then queues the work; the writer persists the latest state and
the denial events in order, retrying with backoff when the store fails. Failing closed throughout:

* an escalation is applied in memory before it is persisted (a failed save cannot leave trading on);
* leaving HALTED or REDUCING (an operator's `set_state`) is persisted first and applied only if the save worked and
  nothing escalated meanwhile;
* a failed `load` on entry propagates: no engine, no orders.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from types import TracebackType
from typing import Final, Literal

from arb.config.schema import RiskSettings
from arb.metrics import RISK_DENIALS, RISK_KILL_SWITCH, RISK_TRADING_STATE
from arb.risk.checks import (
    SEVERITY,
    Approved,
    Denied,
    DenyReason,
    OrderRequest,
    RiskContext,
    RiskLimits,
    TradingState,
    account_check,
    check,
)
from arb.risk.store import DenialRecord, RiskEventSink, TradingStateRecord, TradingStateStore
from arb.tasks import cancel_and_wait, spawn

log = logging.getLogger(__name__)

ENGINE_ACTOR: Final = "risk"
"""`actor` of the transitions the engine makes on its own."""
RETRY_MIN_S: Final = 0.05
RETRY_MAX_S: Final = 5.0

Phase = Literal["new", "open", "closed"]

_M_STATE: Final = {s: RISK_TRADING_STATE.labels(s.value) for s in TradingState}
_M_DENIALS: Final = {r: RISK_DENIALS.labels(r.value) for r in DenyReason}


def _export_state(state: TradingState) -> None:
    for s, gauge in _M_STATE.items():
        gauge.set(1 if s is state else 0)
    RISK_KILL_SWITCH.set(1 if state is TradingState.HALTED else 0)


class RiskEngine:
    """`check(request, context) -> Approved | Denied` under a persisted trading state; denials are events."""

    def __init__(
        self,
        settings: RiskSettings,
        store: TradingStateStore,
        sink: RiskEventSink,
        *,
        clock: Callable[[], int] = time.time_ns,
        max_pending_events: int = 10_000,
        close_timeout_s: float = 5.0,
        poll_interval_s: float | None = 1.0,
    ) -> None:
        self.settings = settings
        self.limits = RiskLimits.from_settings(settings)
        self._store = store
        self._sink = sink
        self._clock = clock
        self._max_pending = max_pending_events
        self._close_timeout_s = close_timeout_s
        if poll_interval_s is not None and not poll_interval_s > 0:
            raise ValueError(f"poll_interval_s: must be positive or None, got {poll_interval_s}")
        self._poll_interval_s = poll_interval_s
        self._poller: asyncio.Task[None] | None = None
        self._phase: Phase = "new"
        self._record = TradingStateRecord(state=TradingState.HALTED, reason="not started", ts_ns=0, actor=ENGINE_ACTOR)
        self._version = 0
        self._persisted = 0
        self._denials: deque[DenialRecord] = deque()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._writer: asyncio.Task[None] | None = None
        self.denials_by_reason: Counter[DenyReason] = Counter()
        self.dropped_events = 0
        """Denial events lost because `max_pending_events` were already waiting for a failing sink."""

    # --- lifecycle -----------------------------------------------------------------------------------------------

    async def __aenter__(self) -> RiskEngine:
        if self._phase != "new":
            raise RuntimeError(f"RiskEngine is {self._phase}: an engine is entered once")
        record = await self._store.load()
        if record is None:
            record = TradingStateRecord(
                state=TradingState.ACTIVE, reason="no persisted state: first start", ts_ns=self._clock(), actor="risk"
            )
            await self._store.save(record)
        self._record = record
        _export_state(record.state)
        self._writer = spawn(self._write_loop(), name="risk.writer")
        if self._poll_interval_s is not None:
            self._poller = spawn(self._poll_loop(self._poll_interval_s), name="risk.state_poll")
        self._phase = "open"
        log.info("risk.start state=%s reason=%r actor=%s", record.state, record.reason, record.actor)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._phase != "open":
            return
        self._phase = "closed"
        try:
            await asyncio.wait_for(self.flush(), self._close_timeout_s)
        except TimeoutError:
            log.warning(
                "risk.close_unflushed state_persisted=%s pending_events=%d",
                self._persisted >= self._version,
                len(self._denials),
            )
        finally:
            if self._poller is not None:
                await cancel_and_wait(self._poller)
            if self._writer is not None:
                await cancel_and_wait(self._writer)

    # --- the state -----------------------------------------------------------------------------------------------

    @property
    def record(self) -> TradingStateRecord:
        """The trading state now (in memory; `persisted` says whether the store has it yet)."""
        return self._record

    @property
    def state(self) -> TradingState:
        return self._record.state

    @property
    def persisted(self) -> bool:
        return self._persisted >= self._version

    @property
    def pending_events(self) -> int:
        return len(self._denials)

    async def set_state(self, state: TradingState, *, reason: str, actor: str) -> TradingStateRecord:
        """An operator's transition (CLI/API kill switch on/off, wind-down). Returns the state in force afterwards.

        Tightening (or restating) is applied at once, then persisted; if the save fails the tighter state stays in
        force, the writer keeps retrying, and the error propagates. Loosening is persisted first and applied only if
        nothing escalated while it was being saved (then the escalation wins and is what this returns)."""
        self._require_open()
        if not reason.strip():
            raise ValueError("reason: say why the trading state changes")
        if not actor.strip():
            raise ValueError("actor: say who changes the trading state")
        new = TradingStateRecord(state=state, reason=reason, ts_ns=self._clock(), actor=actor)
        if SEVERITY[state] >= SEVERITY[self._record.state]:
            self._apply(new)
            version = self._version
            async with self._lock:
                if self._persisted < version:
                    await self._store.save(new)
                    self._persisted = version
            return self._record
        start = self._version
        async with self._lock:
            await self._store.save(new)
            if self._version != start:
                log.warning("risk.state_change_superseded wanted=%s now=%s", state, self._record.state)
                self._wake.set()
                return self._record
            self._record = new
            self._version += 1
            self._persisted = self._version
            _export_state(new.state)
        log.warning("risk.state state=%s reason=%r actor=%s", new.state, new.reason, new.actor)
        return new

    async def refresh(self) -> TradingStateRecord:
        """Adopt a newer state that another process persisted (the CLI's or API's kill switch writes the store; the
        running engine polls it every `poll_interval_s`). A looser stored state never replaces an escalation of ours
        that is not persisted yet. Returns the state in force."""
        self._require_open()
        async with self._lock:
            stored = await self._store.load()
            current = self._record
            if stored is None or stored.ts_ns <= current.ts_ns or stored == current:
                return current
            if SEVERITY[stored.state] < SEVERITY[current.state] and self._persisted < self._version:
                return current
            self._record = stored
            self._version += 1
            self._persisted = self._version
            _export_state(stored.state)
        log.warning("risk.state_from_store state=%s reason=%r actor=%s", stored.state, stored.reason, stored.actor)
        return stored

    async def _poll_loop(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("risk.state_poll_failed error=%r", exc)

    def _apply(self, record: TradingStateRecord) -> None:
        self._record = record
        _export_state(record.state)
        self._version += 1
        self._idle.clear()
        self._wake.set()
        log.warning("risk.state state=%s reason=%r actor=%s", record.state, record.reason, record.actor)

    def _escalate(self, to: TradingState, denied: Denied, ts_ns: int) -> None:
        if SEVERITY[to] > SEVERITY[self._record.state]:
            self._apply(
                TradingStateRecord(
                    state=to, reason=f"{denied.reason.value}: {denied.detail}", ts_ns=ts_ns, actor=ENGINE_ACTOR
                )
            )

    # --- checks --------------------------------------------------------------------------------------------------

    def check(self, request: OrderRequest, context: RiskContext) -> Approved | Denied:
        """Judge one order under the current trading state (see `arb.risk.checks.check`). A denial is recorded as an
        event and, when it calls for one (daily loss, drawdown, unknown PnL), escalates the state at once."""
        if self._phase != "open":
            self._require_open()
        now = self._clock()
        record = self._record
        result = check(request, context, self.limits, state=record.state, now_ns=now)
        if type(result) is Denied:
            self._denied(request, result, now, record.state)
        return result

    def assess(self, context: RiskContext) -> Denied | None:
        """The account-level limits alone (PnL known, daily loss, drawdown), for the executor to call on every PnL
        update: a breach halts trading even while no order is being attempted. Not a denial event (no order)."""
        self._require_open()
        denied = account_check(context, self.limits)
        if denied is not None and denied.escalate is not None:
            self._escalate(denied.escalate, denied, self._clock())
        return denied

    def _denied(self, request: OrderRequest, denied: Denied, ts_ns: int, state: TradingState) -> None:
        self.denials_by_reason[denied.reason] += 1
        _M_DENIALS[denied.reason].inc()
        if denied.escalate is not None:
            self._escalate(denied.escalate, denied, ts_ns)
        log.debug(
            "risk.denied reason=%s venue=%s symbol=%s side=%s execution=%s detail=%r",
            denied.reason,
            request.venue,
            request.symbol,
            request.side,
            request.execution_id,
            denied.detail,
        )
        if len(self._denials) >= self._max_pending:
            self.dropped_events += 1
            if self.dropped_events == 1 or self.dropped_events % 1000 == 0:
                log.error("risk.events_dropped dropped=%d pending=%d", self.dropped_events, len(self._denials))
            return
        self._denials.append(
            DenialRecord(
                ts_ns=ts_ns,
                reason=denied.reason,
                detail=denied.detail,
                venue=request.venue,
                instrument=request.instrument,
                symbol=request.symbol,
                side=request.side.value,
                intent=request.intent.value,
                amount=str(request.amount),
                notional_usd=request.notional_usd,
                execution_id=request.execution_id,
                client_id=request.client_id,
                state=state,
            )
        )
        self._idle.clear()
        self._wake.set()

    # --- persistence ---------------------------------------------------------------------------------------------

    async def flush(self) -> None:
        """Wait until the state and every queued denial are persisted (retries included: may wait long)."""
        if self._writer is None:
            return
        self._wake.set()
        await self._idle.wait()

    def _has_work(self) -> bool:
        return self._persisted < self._version or bool(self._denials)

    async def _write_loop(self) -> None:
        backoff = RETRY_MIN_S
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._has_work():
                try:
                    await self._write_one()
                    backoff = RETRY_MIN_S
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.error("risk.persist_failed error=%r retry_in_s=%.2f", exc, backoff, exc_info=exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, RETRY_MAX_S)
            self._idle.set()

    async def _write_one(self) -> None:
        if self._persisted < self._version:  # the state first: it matters more than any event
            async with self._lock:
                record, version = self._record, self._version
                if self._persisted < version:
                    await self._store.save(record)
                    self._persisted = version
            return
        await self._sink.record_denial(self._denials[0])
        self._denials.popleft()

    def _require_open(self) -> None:
        if self._phase != "open":
            raise RuntimeError(f"RiskEngine is {self._phase}: use it inside `async with`")
