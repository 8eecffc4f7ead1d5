"""Ledger: SQLAlchemy models and repositories for opportunities, execution intents, orders, fills, positions, the
trading state and risk events.

    async with open_ledger(url) as ledger:                      # schema brought to head by Alembic
        async with ledger.opportunity_writer() as w:            # batched, retried, idempotent writes
            w.put(event)                                        # OpportunityEvent: cheap, never waits
        records = await ledger.recent_opportunities(limit=20, open_only=True)
        store = ledger.execution()                               # write-ahead intents, order transitions, fills

Schema and migrations: `arb.ledger.schema`, `arb.ledger.migrate`; write semantics: `arb.ledger.writer` and
`arb.ledger.execution`; errors:
`arb.ledger.errors`; metrics: `arb.ledger.metrics`.

Names are imported lazily (PEP 562): `arb.ledger.records` (msgspec only) is usable without loading SQLAlchemy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from arb.lazy import lazy_getattr

if TYPE_CHECKING:
    from arb.ledger.errors import (
        CorruptRecord,
        InvalidEvent,
        LedgerError,
        LedgerSchemaTooNew,
        LedgerUnavailable,
        UnsupportedDatabase,
    )
    from arb.ledger.execution import (
        DuplicateIntent,
        DuplicateOrder,
        ExecutionStore,
        IllegalFillUpdate,
        InvalidRecord,
        RecordNotFound,
    )
    from arb.ledger.records import (
        IntentRecord,
        OpportunityEventRecord,
        OpportunityRecord,
        OrderEventRecord,
        OrderRecord,
        RiskEventRecord,
        TradingStateRecord,
    )
    from arb.ledger.store import Ledger, open_ledger
    from arb.ledger.writer import OpportunityLedgerWriter

_EXPORTS = {
    "CorruptRecord": "arb.ledger.errors",
    "InvalidEvent": "arb.ledger.errors",
    "LedgerError": "arb.ledger.errors",
    "LedgerSchemaTooNew": "arb.ledger.errors",
    "LedgerUnavailable": "arb.ledger.errors",
    "UnsupportedDatabase": "arb.ledger.errors",
    "DuplicateIntent": "arb.ledger.execution",
    "DuplicateOrder": "arb.ledger.execution",
    "ExecutionStore": "arb.ledger.execution",
    "IllegalFillUpdate": "arb.ledger.execution",
    "InvalidRecord": "arb.ledger.execution",
    "RecordNotFound": "arb.ledger.execution",
    "IntentRecord": "arb.ledger.records",
    "OpportunityEventRecord": "arb.ledger.records",
    "OpportunityRecord": "arb.ledger.records",
    "OrderEventRecord": "arb.ledger.records",
    "OrderRecord": "arb.ledger.records",
    "RiskEventRecord": "arb.ledger.records",
    "TradingStateRecord": "arb.ledger.records",
    "Ledger": "arb.ledger.store",
    "open_ledger": "arb.ledger.store",
    "OpportunityLedgerWriter": "arb.ledger.writer",
}

__all__ = [
    "CorruptRecord",
    "DuplicateIntent",
    "DuplicateOrder",
    "ExecutionStore",
    "IllegalFillUpdate",
    "IntentRecord",
    "InvalidEvent",
    "InvalidRecord",
    "Ledger",
    "LedgerError",
    "LedgerSchemaTooNew",
    "LedgerUnavailable",
    "OpportunityEventRecord",
    "OpportunityLedgerWriter",
    "OpportunityRecord",
    "OrderEventRecord",
    "OrderRecord",
    "RecordNotFound",
    "RiskEventRecord",
    "TradingStateRecord",
    "UnsupportedDatabase",
    "open_ledger",
]

__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
