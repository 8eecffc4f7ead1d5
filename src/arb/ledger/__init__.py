"""Ledger: SQLAlchemy models and repositories for opportunities (intents, orders, fills, positions and runs to come).

    async with open_ledger(url) as ledger:                      # schema brought to head by Alembic
        async with ledger.opportunity_writer() as w:            # batched, retried, idempotent writes
            w.put(event)                                        # OpportunityEvent: cheap, never waits
        records = await ledger.recent_opportunities(limit=20, open_only=True)

Schema and migrations: `arb.ledger.schema`, `arb.ledger.migrate`; write semantics: `arb.ledger.writer`; errors:
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
    from arb.ledger.records import OpportunityEventRecord, OpportunityRecord
    from arb.ledger.store import Ledger, open_ledger
    from arb.ledger.writer import OpportunityLedgerWriter

_EXPORTS = {
    "CorruptRecord": "arb.ledger.errors",
    "InvalidEvent": "arb.ledger.errors",
    "LedgerError": "arb.ledger.errors",
    "LedgerSchemaTooNew": "arb.ledger.errors",
    "LedgerUnavailable": "arb.ledger.errors",
    "UnsupportedDatabase": "arb.ledger.errors",
    "OpportunityEventRecord": "arb.ledger.records",
    "OpportunityRecord": "arb.ledger.records",
    "Ledger": "arb.ledger.store",
    "open_ledger": "arb.ledger.store",
    "OpportunityLedgerWriter": "arb.ledger.writer",
}

__all__ = [
    "CorruptRecord",
    "InvalidEvent",
    "Ledger",
    "LedgerError",
    "LedgerSchemaTooNew",
    "LedgerUnavailable",
    "OpportunityEventRecord",
    "OpportunityLedgerWriter",
    "OpportunityRecord",
    "UnsupportedDatabase",
    "open_ledger",
]

__getattr__ = lazy_getattr(__name__, _EXPORTS, globals())
