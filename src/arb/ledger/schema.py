"""The ledger's tables, as typed SQLAlchemy 2 declarative models.

The schema itself is created and changed only by the Alembic migrations in `arb.ledger.migrations` (run on open,
see `arb.ledger.migrate`); these models are what the code reads and writes, and what `alembic revision
--autogenerate` compares the database with when a new migration is written.

Numbers: opportunities are market-data estimates computed by the scanner in float64 (see `arb.model.Opportunity`),
so they are stored as DOUBLE PRECISION; booked money (orders, fills, PnL) will get `Numeric` columns. Times are UTC
nanoseconds in BIGINT, like every timestamp in arb.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION: Final = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint names, so later migrations can drop or alter them by name (SQLite batch mode needs it)."""

EventId = BigInteger().with_variant(Integer(), "sqlite")
"""BIGINT on PostgreSQL; INTEGER on SQLite, where only an INTEGER PRIMARY KEY is the autoincrementing rowid."""


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class OpportunityRow(Base):
    """One opportunity lifecycle (opened -> updated* -> closed), keyed by `Opportunity.id`.

    The `last` columns (net_edge .. priority, `opportunity`) hold the latest state written; `peak_net_edge` the best
    edge seen; `closed_at_ns`/`close_reason` are NULL while it is open. `opportunity` is the whole latest
    `arb.model.Opportunity` as msgspec JSON, so every cost and priority factor is kept; the typed columns repeat what
    queries filter and sort on. `last_event_ns` is the time of the event the row reflects: a write only moves the row
    forward in time, which makes replaying a batch (after a commit whose outcome was unknown) harmless.
    """

    __tablename__ = "opportunities"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    kind: Mapped[str] = mapped_column(String)
    instrument: Mapped[str] = mapped_column(String)
    buy_venue: Mapped[str] = mapped_column(String)
    sell_venue: Mapped[str] = mapped_column(String)
    quote_currency: Mapped[str] = mapped_column(String)
    opened_at_ns: Mapped[int] = mapped_column(BigInteger)
    closed_at_ns: Mapped[int | None] = mapped_column(BigInteger)
    close_reason: Mapped[str | None] = mapped_column(String)
    peak_net_edge: Mapped[float] = mapped_column(Double)
    net_edge: Mapped[float] = mapped_column(Double)
    size: Mapped[float] = mapped_column(Double)
    notional: Mapped[float] = mapped_column(Double)
    profit: Mapped[float] = mapped_column(Double)
    expected_profit: Mapped[float] = mapped_column(Double)
    priority: Mapped[float] = mapped_column(Double)
    updates: Mapped[int] = mapped_column(Integer)
    last_event_ns: Mapped[int] = mapped_column(BigInteger)
    opportunity: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        Index("ix_opportunities_instrument_opened_at_ns", "instrument", "opened_at_ns"),
        Index("ix_opportunities_opened_at_ns", "opened_at_ns"),
        Index("ix_opportunities_closed_at_ns", "closed_at_ns"),
    )


class OpportunityEventRow(Base):
    """One lifecycle step of an opportunity: `type` is opened / updated / closed, with the edge and priority then.

    Unique on (opportunity_id, ts_ns, type), so a batch written twice (a retried commit whose first outcome was
    unknown) does not record its events twice.
    """

    __tablename__ = "opportunity_events"

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    opportunity_id: Mapped[str] = mapped_column(String, ForeignKey("opportunities.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String)
    ts_ns: Mapped[int] = mapped_column(BigInteger)
    net_edge: Mapped[float] = mapped_column(Double)
    priority: Mapped[float] = mapped_column(Double)

    __table_args__ = (
        UniqueConstraint("opportunity_id", "ts_ns", "type", name="uq_opportunity_events_step"),
        CheckConstraint("type IN ('opened', 'updated', 'closed')", name="type"),
    )


OPPORTUNITIES: Final[Table] = Base.metadata.tables["opportunities"]
OPPORTUNITY_EVENTS: Final[Table] = Base.metadata.tables["opportunity_events"]
"""The tables as Core `Table`s, for the writer's bulk upserts and the queries (no ORM session on either path)."""
