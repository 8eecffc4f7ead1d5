"""What the risk engine persists, and the two small interfaces it persists through.

Why Protocols and not the ledger's classes: the ledger (SQL tables `trading_state` and `risk_events`) implements
them, and `arb.risk` stays importable without SQLAlchemy; tests and paper runs use the in-memory versions below.
The records are plain (str, int, float; the enums are `StrEnum`s, i.e. strings) so a table maps them column for column.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from arb.risk.checks import DenyReason, TradingState


class TradingStateRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One trading-state transition: what the state became, why, when (UTC ns) and who did it (`risk` for the
    engine's own escalations, an operator name for the CLI/API kill switch)."""

    state: TradingState
    reason: str
    ts_ns: int
    actor: str


class DenialRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One denied order (a risk event): the coded reason, the human detail, the order it was about, and the trading
    state at the time."""

    ts_ns: int
    reason: DenyReason
    detail: str
    venue: str
    instrument: str
    symbol: str
    side: str
    intent: str
    amount: str
    """Decimal as its exact string (booked-money rule: never through float)."""
    notional_usd: float
    execution_id: str
    client_id: str
    state: TradingState


class TradingStateStore(Protocol):
    """Where the trading state lives across restarts. `save` records a transition (a store may keep the history);
    `load` returns the latest one, None when there never was one. Either may raise: the engine then fails closed
    (it does not start on a failed load; it keeps retrying a failed save while holding the state in memory)."""

    async def load(self) -> TradingStateRecord | None: ...

    async def save(self, record: TradingStateRecord) -> None: ...


class RiskEventSink(Protocol):
    """Where denials are recorded (the ledger's `risk_events`). Called from the engine's writer task, never from the
    check itself, so a slow database does not slow the hot path."""

    async def record_denial(self, event: DenialRecord) -> None: ...


class MemoryStateStore:
    """A `TradingStateStore` in a list (tests, paper runs without a ledger). Share one between two engines to model
    a restart."""

    def __init__(self, records: list[TradingStateRecord] | None = None) -> None:
        self.records: list[TradingStateRecord] = list(records or [])

    async def load(self) -> TradingStateRecord | None:
        return self.records[-1] if self.records else None

    async def save(self, record: TradingStateRecord) -> None:
        self.records.append(record)


class MemoryEventSink:
    """A `RiskEventSink` in a list."""

    def __init__(self) -> None:
        self.denials: list[DenialRecord] = []

    async def record_denial(self, event: DenialRecord) -> None:
        self.denials.append(event)
