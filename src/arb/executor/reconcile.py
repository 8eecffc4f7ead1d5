"""Restart reconciliation: what the ledger left open is settled against the venues before any new trading (FAULTS E8).

A process can die anywhere: after the write-ahead but before sending, between the two legs, mid-hedge. On start,
before the trading loop takes its first opportunity:

1. every order not in a final state (NEW, SENT, ACKED, PARTIALLY_FILLED, UNKNOWN) is looked up on its venue by client
   id (for the resolve window, as a timed-out request is): found -> its fills are booked and its state recorded (an
   order still working is cancelled); not found -> it never reached the venue (REJECTED, "never placed");
2. every execution not in a final state is settled from its orders' fills: base bought and sold netting out -> DONE
   (or FAILED when nothing filled; HEDGED when it was being hedged: killed mid-hedge); a residual -> the hedger
   closes it (HEDGED) or escalates (ESCALATED, kill switch), judged against the exposure of the open executions'
   fills, which is rebuilt first (the executor's memory of it died with the process).

A venue that cannot be asked (no gateway, unreachable) makes reconciliation fail and the start is refused: trading
on top of orders whose state is unknown is how exposure goes unaccounted.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import TYPE_CHECKING, Final

import msgspec

from arb.executor.venue import GatewayError
from arb.model import FINAL_STATUSES, IntentStatus, OrderStatus, Side

if TYPE_CHECKING:
    from arb.executor.engine import Executor
    from arb.model import Order

log = logging.getLogger(__name__)
ZERO: Final = Decimal(0)


class ReconcileError(RuntimeError):
    """Reconciliation could not finish; the process must not start trading."""


class ReconcileReport(msgspec.Struct, kw_only=True):
    orders_checked: int = 0
    orders_found: int = 0
    orders_never_placed: int = 0
    fills_booked: int = 0
    intents_settled: dict[str, str] = msgspec.field(default_factory=dict)
    """execution id -> the status it was settled at."""


async def reconcile(executor: Executor) -> ReconcileReport:
    """Settle every open order and execution (see the module docstring); raises ReconcileError if it cannot."""
    store = executor.store
    report = ReconcileReport()
    await _restore_exposure(executor)
    for rec in await store.open_orders():
        order = rec.order
        report.orders_checked += 1
        gateway = executor.gateways.get(order.venue)
        if gateway is None:
            raise ReconcileError(f"order {order.client_id} is open on {order.venue}, which has no gateway configured")
        before = len(await store.fills(order.client_id))
        try:
            found = await executor.resolve(order, gateway)
        except GatewayError as exc:
            raise ReconcileError(f"order {order.client_id} on {order.venue}: {exc}") from exc
        if found is None:
            await _never_placed(executor, order)
            report.orders_never_placed += 1
        else:
            report.orders_found += 1
            if order.status is OrderStatus.NEW:
                await executor.transition(order, OrderStatus.SENT, "reconcile: found on the venue")
            await executor.apply(order, found)
            if order.status not in FINAL_STATUSES:
                try:
                    await executor.apply(order, await gateway.cancel_order(order.symbol, order.client_id))
                except GatewayError as exc:
                    raise ReconcileError(
                        f"order {order.client_id} on {order.venue} could not be cancelled: {exc}"
                    ) from exc
        report.fills_booked += len(await store.fills(order.client_id)) - before
    for intent in await store.open_intents():
        ex_id = intent.intent.id
        records = await store.orders_of(ex_id)
        net = sum(((r.order.filled if r.order.side is Side.BUY else -r.order.filled) for r in records), start=ZERO)
        anything = any(r.order.filled > 0 for r in records)
        now = executor.clock()
        if net == 0:
            status = _netted_status(intent.status, anything=anything)
            pnl = await executor.realized_pnl_usd(ex_id, intent.intent.instrument) if anything else ZERO
            await store.set_intent_status(ex_id, status, ts=now, realized_pnl=pnl)
        else:
            if intent.status is not IntentStatus.HEDGING:
                await store.set_intent_status(ex_id, IntentStatus.HEDGING, ts=now)
            excess = max(records, key=lambda r: r.order.filled if (r.order.side is Side.BUY) == (net > 0) else ZERO)
            residual = executor.residual(ex_id, intent.intent.instrument, net, excess.order)
            result = await executor.hedger.close(residual, executor)
            status = IntentStatus.HEDGED if result.closed else IntentStatus.ESCALATED
            closed_pnl = await executor.realized_pnl_usd(ex_id, intent.intent.instrument) if result.closed else None
            await store.set_intent_status(ex_id, status, ts=executor.clock(), realized_pnl=closed_pnl)
        report.intents_settled[ex_id] = status.value
        log.info("executor.reconciled execution=%s status=%s net=%s", ex_id, status.value, net)
    return report


async def _restore_exposure(executor: Executor) -> None:
    """The exposure a hedge is judged against (risk: it must reduce it) is the executor's memory of its fills, empty
    after a restart: rebuild it from the fills of every execution still open, before any fill is booked here (those
    `apply` adds itself). Without it a residual's hedge is denied as not reducing, and escalated. An executor that
    has booked fills already remembers them (reconciling in the same process): nothing to rebuild."""
    if executor.base_positions:
        return
    store = executor.store
    for intent in await store.open_intents():
        for rec in await store.orders_of(intent.intent.id):
            for fill in await store.fills(rec.client_id):
                executor._expose(fill)


def _netted_status(status: IntentStatus, *, anything: bool) -> IntentStatus:
    """Where an open execution whose orders net out ends: HEDGED if it was being hedged (killed mid-hedge, and the
    hedge filled), else DONE, or FAILED when nothing filled."""
    if status in (IntentStatus.HEDGING, IntentStatus.ESCALATED):
        return IntentStatus.HEDGED
    return IntentStatus.DONE if anything else IntentStatus.FAILED


async def _never_placed(executor: Executor, order: Order) -> None:
    """The venue does not know the order: it never got there. Only an order we never heard back about can be so."""
    detail = "reconcile: never placed (not found by client id)"
    if order.status is OrderStatus.SENT:
        await executor.transition(order, OrderStatus.UNKNOWN, "reconcile: the venue does not know it")
    elif order.status not in (OrderStatus.NEW, OrderStatus.UNKNOWN):
        raise ReconcileError(
            f"order {order.client_id} on {order.venue} was {order.status.value} but the venue no longer knows it"
        )
    await executor.transition(order, OrderStatus.REJECTED, detail)
