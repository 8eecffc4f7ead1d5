"""The scan -> risk -> execute loop: opportunities the scanner opens are executed, best priority first.

Why a queue and not "execute in the scanner's sink": the sink is called synchronously inside a scan, and an
execution takes tens of milliseconds to seconds (venue round trips, hedging); the scanner must not wait on it. The
loop keeps the latest version of each opened opportunity, runs at most `max_concurrent` executions at once (the risk
engine has its own limit too), re-checks each against the scanner's current view just before executing (through the
executor's `recheck`), and never executes one opportunity twice (the ledger would refuse it anyway, FAULTS E4).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from arb import tasks

if TYPE_CHECKING:
    from arb.executor.engine import Executor, Outcome
    from arb.model import Opportunity, OpportunityEvent

log = logging.getLogger(__name__)


class TradingLoop:
    """`async with TradingLoop(executor) as loop:` then `loop.offer` as a scanner sink; leaving the block stops taking
    new opportunities and waits (up to `drain_s`) for the executions in flight, so none is cut off half-way."""

    def __init__(self, executor: Executor, *, max_concurrent: int = 2, drain_s: float = 30.0) -> None:
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be >= 1, got {max_concurrent}")
        self.executor = executor
        self.max_concurrent = max_concurrent
        self.drain_s = drain_s
        self.outcomes: list[Outcome] = []
        self.offered = 0
        self._pending: dict[str, Opportunity] = {}
        self._seen: set[str] = set()
        self._wake = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._busy: dict[str, int] = {}
        """Base asset -> executions of it in flight. One at a time per asset: the risk engine judges a hedge by the
        asset's net exposure, which another execution's half-done legs would misstate (a residual hedge refused as
        not reducing while the other's second leg is still on its way)."""
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def in_flight(self) -> int:
        """Executions running now."""
        return len(self._running)

    def offer(self, event: OpportunityEvent) -> None:
        """Scanner sink: an opened (or updated, still pending) opportunity becomes a candidate; a closed one is
        dropped if it has not started."""
        opp = event.opportunity
        if event.type == "closed":
            self._pending.pop(opp.id, None)
            return
        if opp.id in self._seen or self._closing:
            return
        if event.type == "opened":
            self.offered += 1
        self._pending[opp.id] = opp
        self._wake.set()

    async def execute_now(self, opp: Opportunity) -> Outcome:
        """Execute `opp` at once (`arb execute`): the same path as the loop's, counted with its outcomes, and taken
        out of the queue so the loop does not try it again (if the loop already did, the ledger refuses a second
        intent of it: the outcome is `aborted`, reason `duplicate`)."""
        self._pending.pop(opp.id, None)
        self._seen.add(opp.id)
        self._claim(opp)
        outcome = await self._one(opp)
        self.outcomes.append(outcome)
        return outcome

    async def __aenter__(self) -> TradingLoop:
        """Start taking opportunities; the executor must be started (balances loaded) and reconciled already."""
        self._task = tasks.spawn(self._run(), name="executor-loop")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop taking opportunities and wait for the executions in flight (idempotent)."""
        if self._closing and self._task is None and not self._running:
            return
        self._closing = True
        self._pending.clear()
        if self._task is not None:
            await tasks.cancel_and_wait(self._task)
            self._task = None
        if self._running:
            _done, still = await asyncio.wait(set(self._running), timeout=self.drain_s)
            for task in still:
                log.error("executor.loop_drain_timeout task=%s", task.get_name())
                await tasks.cancel_and_wait(task)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending and len(self._running) < self.max_concurrent:
                ready = [o for o in self._pending.values() if _asset(o) not in self._busy]
                if not ready:
                    break
                best = max(ready, key=lambda o: o.priority)
                del self._pending[best.id]
                self._seen.add(best.id)
                self._claim(best)  # now, not when the task first runs: the next pick must see this asset busy
                task = tasks.spawn(self._execute(best), name=f"execute-{best.id}")
                self._running.add(task)
                task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._wake.set()

    async def _execute(self, opp: Opportunity) -> None:
        try:
            self.outcomes.append(await self._one(opp))
        except Exception:  # an execution must never take the loop down; its orders are in the ledger
            log.exception("executor.execution_crashed opportunity=%s", opp.id)

    def _claim(self, opp: Opportunity) -> None:
        asset = _asset(opp)
        self._busy[asset] = self._busy.get(asset, 0) + 1

    async def _one(self, opp: Opportunity) -> Outcome:
        """Execute a claimed opportunity, then release its asset."""
        asset = _asset(opp)
        try:
            return await self.executor.execute(opp)
        finally:
            left = self._busy.pop(asset) - 1
            if left > 0:
                self._busy[asset] = left
            self._wake.set()  # an asset is free again: a pending opportunity of it may go now


def _asset(opp: Opportunity) -> str:
    return opp.instrument.split("/", 1)[0]
