"""The ledger's exceptions, in one small tree, so callers can tell "retry later" from "fix your input or setup".

LedgerError
├── LedgerUnavailable      the database could not be reached, was locked, too slow, or failed a statement for a
│                          reason that may pass (connection lost, disk full, permissions): retrying later is safe,
│                          because every ledger write is idempotent (see `arb.ledger.writer`).
├── LedgerSchemaTooNew     the database was migrated by a newer arb (its Alembic revision is unknown to this code):
│                          nothing is read or written, because columns this code does not know may hold the truth.
├── UnsupportedDatabase    a URL the ledger cannot work on (a dialect other than SQLite/PostgreSQL, an in-memory
│                          SQLite database that would vanish with its connection). Also a `ValueError`.
├── InvalidEvent           an event refused by `OpportunityLedgerWriter.put` (wrong types, NaN/inf, out-of-range
│                          integers): reported to the producer at once instead of poisoning a batch. Also a
│                          `ValueError`.
└── CorruptRecord          a stored row whose opportunity JSON no longer decodes into `arb.model.Opportunity`.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

OUTAGE_ERRORS: Final = (DBAPIError, PoolTimeoutError, DisconnectionError, OSError)
"""What a driver or pool raises when the database cannot be reached or used now (connection refused or lost, locked,
timed out, disk full, permissions); IntegrityError and DataError are DBAPIErrors too, but are data refusals."""
_REASON_MAX: Final = 300


class LedgerError(Exception):
    """Base of every error the ledger raises."""


class LedgerUnavailable(LedgerError):
    """The database could not serve the operation; `reason` is the driver error's text (also chained as `__cause__`)."""

    def __init__(self, operation: str, reason: str) -> None:
        super().__init__(f"ledger {operation} failed: database unavailable ({reason})")
        self.operation = operation
        self.reason = reason


class LedgerSchemaTooNew(LedgerError):
    """The database's schema revision is not one this code knows (it was migrated by a newer arb)."""

    def __init__(self, database: str, revisions: tuple[str, ...], head: str) -> None:
        found = ", ".join(repr(r) for r in revisions)
        super().__init__(
            f"ledger database {database} is at schema revision {found}, which this version of arb does not know "
            f"(its newest is {head!r}): it was migrated by a newer arb. Upgrade arb, or point ARB_DATABASE_URL at "
            "another database; nothing was read or written"
        )
        self.database = database
        self.revisions = revisions
        self.head = head


class UnsupportedDatabase(LedgerError, ValueError):
    """The URL names a database the ledger cannot use; the message says why and what to use instead."""


class InvalidEvent(LedgerError, ValueError):
    """An opportunity event the ledger refuses to queue; the message names the opportunity and the field."""


class CorruptRecord(LedgerError):
    """A stored opportunity that cannot be decoded; the message names its id and the decoding problem."""


def describe(e: BaseException) -> str:
    """A short one-line reason for logs and LedgerUnavailable: the driver's own error where there is one (SQLAlchemy's
    text repeats the statement and its parameters), at most a few hundred characters."""
    orig = e.orig if isinstance(e, DBAPIError) else None
    text = f"{type(orig).__name__}: {orig}" if orig is not None else f"{type(e).__name__}: {e}"
    text = " ".join(text.split())
    return text if len(text) <= _REASON_MAX else text[:_REASON_MAX] + "..."
