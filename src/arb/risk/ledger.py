"""The risk engine's persistence on the SQL ledger: `LedgerStateStore` and `LedgerEventSink`.

Why adapters and not the ledger implementing the protocols itself: the ledger knows only `arb.model` (it stores what
every room books), while the trading-state and denial records are the risk room's types. The two `TradingStateRecord`
types differ on purpose (the ledger's keeps the state as its stored name); this is the one place that maps them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from arb.risk.checks import TradingState
from arb.risk.store import DenialRecord, TradingStateRecord

if TYPE_CHECKING:
    from arb.ledger.execution import ExecutionStore


class LedgerStateStore:
    """`TradingStateStore` on the ledger's `trading_state` history (the latest row is the state in force)."""

    def __init__(self, store: ExecutionStore) -> None:
        self._store = store

    async def load(self) -> TradingStateRecord | None:
        row = await self._store.load_trading_state()
        if row is None:
            return None
        return TradingStateRecord(state=TradingState(row.state), reason=row.reason, ts_ns=row.ts_ns, actor=row.actor)

    async def save(self, record: TradingStateRecord) -> None:
        await self._store.save_trading_state(record.state.value, record.reason, record.actor, record.ts_ns)


class LedgerEventSink:
    """`RiskEventSink` on the ledger's `risk_events` (kind `denied`, the whole record kept as its data)."""

    def __init__(self, store: ExecutionStore) -> None:
        self._store = store

    async def record_denial(self, event: DenialRecord) -> None:
        await self._store.record_risk_event(
            "denied",
            event.reason.value,
            event.ts_ns,
            detail=event.detail,
            execution_id=event.execution_id or None,
            venue=event.venue or None,
            data=msgspec.to_builtins(event),
        )
