"""What the ledger's queries return: plain msgspec Structs (cheap to build, encode straight to JSON for the API).

Money is `Decimal` (msgspec encodes it to JSON as a string, so no client reads it through float)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final, Literal

import msgspec

from arb.model import (
    FINAL_INTENT_STATUSES,
    FINAL_STATUSES,
    ExecutionIntent,
    IntentStatus,
    Opportunity,
    OpportunityEventType,
    Order,
    OrderStatus,
)


class OpportunityRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One opportunity lifecycle as stored: its latest state plus the lifecycle fields.

    `opportunity` is the latest `Opportunity` the ledger received (on a closed one: its last state while open), with
    every cost and priority factor. `peak_net_edge` is the best net edge seen over the lifecycle; `updates` the
    scanner's count of updates; `last_event_ns` the time of the latest event written. `closed_at_ns` and
    `close_reason` are None while it is open.
    """

    opportunity: Opportunity
    opened_at_ns: int
    closed_at_ns: int | None = None
    close_reason: str | None = None
    peak_net_edge: float
    updates: int
    last_event_ns: int

    @property
    def id(self) -> str:
        return self.opportunity.id

    @property
    def is_open(self) -> bool:
        return self.closed_at_ns is None

    @property
    def duration_ns(self) -> int:
        """Open -> close; for one still open, open -> its latest event (the ledger does not guess "now")."""
        end = self.last_event_ns if self.closed_at_ns is None else self.closed_at_ns
        return end - self.opened_at_ns

    @property
    def duration_ms(self) -> float:
        return self.duration_ns / 1e6


class OpportunityEventRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One stored lifecycle step (see `arb.ledger.writer` for which `updated` events get a row of their own)."""

    opportunity_id: str
    type: OpportunityEventType
    ts_ns: int
    net_edge: float
    priority: float


TradingStateName = Literal["active", "reducing", "halted"]
"""The values of `arb.risk.checks.TradingState` (ACTIVE / REDUCING / HALTED), as the ledger stores them."""
TRADING_STATES: Final[tuple[TradingStateName, ...]] = ("active", "reducing", "halted")


class IntentRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One execution as stored: the intent written ahead of its orders, and where it stands now.

    `realized_pnl` (quote currency, exact) is None until the executor or hedger books it, at `realized_ns`;
    `final_ns` is when it last reached a final status (None while it is planned, sending, hedging or escalated).
    """

    intent: ExecutionIntent
    status: IntentStatus
    updated_ns: int
    realized_pnl: Decimal | None = None
    realized_ns: int | None = None
    final_ns: int | None = None

    @property
    def id(self) -> str:
        return self.intent.id

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_INTENT_STATUSES


class OrderRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One order as stored: the `Order` (latest status, filled, average price, venue order id), its intent and its
    number among that intent's orders (`leg`: the planned legs' positions first, then hedge orders)."""

    order: Order
    intent_id: str
    leg: int

    @property
    def client_id(self) -> str:
        return self.order.client_id

    @property
    def is_open(self) -> bool:
        """Still working, or not known not to be (UNKNOWN): what restart reconciliation must query."""
        return self.order.status not in FINAL_STATUSES


class OrderEventRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One stored transition of an order; the creation row (status new) has `from_status` None. `filled` is the
    order's filled amount after the transition."""

    client_id: str
    from_status: OrderStatus | None
    to_status: OrderStatus
    ts_ns: int
    detail: str
    filled: Decimal


class TradingStateRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One change of the trading state (the latest one is the state in force): who set it, when and why."""

    state: TradingStateName
    reason: str
    actor: str
    ts_ns: int


class RiskEventRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One recorded risk decision: `kind` what happened (e.g. "denied", "kill_switch", "limit"), `reason` a stable
    code (e.g. "max_notional"), `detail` for a person; `execution_id` / `venue` when it concerns one."""

    id: int
    ts_ns: int
    kind: str
    reason: str
    detail: str = ""
    execution_id: str | None = None
    venue: str | None = None
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    """The rest of the decision's context (the order, the numbers), as the risk engine gave it."""
