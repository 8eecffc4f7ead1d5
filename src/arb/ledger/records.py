"""What the ledger's queries return: plain msgspec Structs (cheap to build, encode straight to JSON for the API)."""

from __future__ import annotations

import msgspec

from arb.model import Opportunity, OpportunityEventType


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
