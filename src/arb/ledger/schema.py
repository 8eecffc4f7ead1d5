"""The ledger's tables, as typed SQLAlchemy 2 declarative models.

The schema itself is created and changed only by the Alembic migrations in `arb.ledger.migrations` (run on open,
see `arb.ledger.migrate`); these models are what the code reads and writes, and what `alembic revision
--autogenerate` compares the database with when a new migration is written.

Numbers: opportunities, and the predictions an execution intent keeps, are market-data estimates computed by the
scanner in float64 (see `arb.model.Opportunity`), so they are stored as DOUBLE PRECISION. Booked money (order amounts
and prices, fills, fees, realized PnL) is `Money`: exact decimals, never through float (see `Money` for why SQLite
needs more than `Numeric`). Times are UTC nanoseconds in BIGINT, like every timestamp in arb.

Tables: `opportunities` / `opportunity_events` (the scanner's lifecycles, rev 0001); `execution_intents`, `orders`,
`order_events`, `fills`, `trading_state`, `risk_events` (execution and risk, rev 0002, written through
`arb.ledger.execution`); `api_keys`, `api_requests` (the REST API's principals and their idempotent requests, rev 0003,
written through `arb.ledger.api`); `strategy_models`, `strategy_signals`, `strategy_positions` (the directional layer's
trained agents, hourly signals and paper positions, kept apart from arbitrage inventory, rev 0004, written through
`arb.ledger.strategy`).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Dialect,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator, TypeEngine

from arb.model import IntentStatus, OrderStatus, OrderType, Side, TimeInForce

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


class Money(TypeDecorator[Decimal]):
    """An exact decimal column: NUMERIC (arbitrary precision) on PostgreSQL, the decimal's text on SQLite.

    Why not plain `Numeric` on SQLite: SQLite has no decimal type. A NUMERIC column stores a number as REAL (a 64-bit
    float), and SQLAlchemy's Numeric reads it back through float: 0.3 comes back as 0.299999999999999989 from a
    `Numeric(38, 18)` column, a 22-digit value loses its tail. Stored as text (a VARCHAR column has TEXT affinity) the
    value round-trips exactly, trailing zeros included. The price: SQLite cannot do arithmetic on it (SUM would go
    through float), so the ledger sums money in Python (`arb.ledger.execution`), on both databases alike.

    Binding refuses anything but a finite Decimal (or int): a float here would already have lost the value.
    """

    impl = Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String())
        return dialect.type_descriptor(Numeric(asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, Decimal | int):
            raise TypeError(f"money must be a Decimal, got {type(value).__name__} {value!r}")
        amount = Decimal(value)
        if not amount.is_finite():
            raise ValueError(f"money must be a finite Decimal, got {value!r}")
        return str(amount) if dialect.name == "sqlite" else amount

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))


def _one_of(column: str, values: Iterable[str]) -> str:
    """A CHECK expression `column IN (...)` over strings (StrEnum members are their values)."""
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


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


class ExecutionIntentRow(Base):
    """One execution, written before any of its orders leaves (write-ahead); keyed by the deterministic execution id.

    `legs` is the planned legs (`arb.model.Leg`, without orders) as msgspec JSON. The predictions are the scanner's
    float estimates; `realized_pnl` (quote currency) is booked money, set by the executor / hedger when known, at
    `realized_ns`. `final_ns` is when it last reached a final status (NULL while it is not in one).
    """

    __tablename__ = "execution_intents"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    opportunity_id: Mapped[str] = mapped_column(String)
    instrument: Mapped[str] = mapped_column(String)
    mode: Mapped[str] = mapped_column(String)
    created_ns: Mapped[int] = mapped_column(BigInteger)
    predicted_net_edge_bps: Mapped[float] = mapped_column(Double)
    predicted_profit: Mapped[float] = mapped_column(Double)
    legs: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String)
    updated_ns: Mapped[int] = mapped_column(BigInteger)
    realized_pnl: Mapped[Decimal | None] = mapped_column(Money)
    realized_ns: Mapped[int | None] = mapped_column(BigInteger)
    final_ns: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        CheckConstraint(_one_of("mode", ("paper", "live")), name="mode"),
        CheckConstraint(_one_of("status", IntentStatus), name="status"),
        Index("ix_execution_intents_status", "status"),
        Index("ix_execution_intents_created_ns", "created_ns"),
        Index("ix_execution_intents_realized_ns", "realized_ns"),
    )


class OrderRow(Base):
    """One order of an execution (a paired leg, or a hedge / unwind order), keyed by its client order id.

    `leg` numbers the orders of one intent (unique within it): the planned legs' positions, then hedge orders.
    `status`, `filled`, `average_price`, `venue_order_id` are the latest state; every change is an `order_events`
    row written in the same transaction.
    """

    __tablename__ = "orders"

    client_id: Mapped[str] = mapped_column(String, primary_key=True)
    intent_id: Mapped[str] = mapped_column(String, ForeignKey("execution_intents.id"))
    leg: Mapped[int] = mapped_column(Integer)
    venue: Mapped[str] = mapped_column(String)
    symbol: Mapped[str] = mapped_column(String)
    side: Mapped[str] = mapped_column(String)
    type: Mapped[str] = mapped_column(String)
    time_in_force: Mapped[str] = mapped_column(String)
    amount: Mapped[Decimal] = mapped_column(Money)
    price: Mapped[Decimal | None] = mapped_column(Money)
    status: Mapped[str] = mapped_column(String)
    venue_order_id: Mapped[str | None] = mapped_column(String)
    filled: Mapped[Decimal] = mapped_column(Money)
    average_price: Mapped[Decimal | None] = mapped_column(Money)
    created_ns: Mapped[int] = mapped_column(BigInteger)
    updated_ns: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        UniqueConstraint("intent_id", "leg", name="uq_orders_intent_leg"),
        CheckConstraint(_one_of("side", Side), name="side"),
        CheckConstraint(_one_of("type", OrderType), name="type"),
        CheckConstraint(_one_of("time_in_force", TimeInForce), name="time_in_force"),
        CheckConstraint(_one_of("status", OrderStatus), name="status"),
        Index("ix_orders_status", "status"),
        Index("ix_orders_venue_venue_order_id", "venue", "venue_order_id"),
    )


class OrderEventRow(Base):
    """One transition of one order: `from_status` -> `to_status` at `ts_ns`, with `filled` after it.

    The first row of an order (its creation, status new) has no `from_status`. `detail` says why (the venue's
    answer, "timeout", "resolved by fetch_order", ...).
    """

    __tablename__ = "order_events"

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(String, ForeignKey("orders.client_id", ondelete="CASCADE"))
    from_status: Mapped[str | None] = mapped_column(String)
    to_status: Mapped[str] = mapped_column(String)
    ts_ns: Mapped[int] = mapped_column(BigInteger)
    detail: Mapped[str] = mapped_column(Text)
    filled: Mapped[Decimal] = mapped_column(Money)

    __table_args__ = (Index("ix_order_events_client_id", "client_id", "id"),)


class FillRow(Base):
    """One execution a venue reported, booked once: unique on (venue, trade_id).

    `client_id` is not a foreign key on purpose: a fill the venue reports for an order the ledger does not know (a
    manual trade, a bug) still moved the venue's balances, and the ledger's positions must say so.
    """

    __tablename__ = "fills"

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    venue: Mapped[str] = mapped_column(String)
    trade_id: Mapped[str] = mapped_column(String)
    client_id: Mapped[str] = mapped_column(String)
    symbol: Mapped[str] = mapped_column(String)
    side: Mapped[str] = mapped_column(String)
    price: Mapped[Decimal] = mapped_column(Money)
    amount: Mapped[Decimal] = mapped_column(Money)
    fee: Mapped[Decimal] = mapped_column(Money)
    fee_currency: Mapped[str] = mapped_column(String)
    ts_ns: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        UniqueConstraint("venue", "trade_id", name="uq_fills_venue_trade_id"),
        CheckConstraint(_one_of("side", Side), name="side"),
        Index("ix_fills_client_id", "client_id"),
        Index("ix_fills_ts_ns", "ts_ns"),
    )


class TradingStateRow(Base):
    """The trading state's history (active / reducing / halted): one row per change, the latest row (by id) wins."""

    __tablename__ = "trading_state"

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    state: Mapped[str] = mapped_column(String)
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String)
    ts_ns: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (CheckConstraint(_one_of("state", ("active", "reducing", "halted")), name="state"),)


class RiskEventRow(Base):
    """A risk decision worth keeping (a denial, a limit reached, the kill switch): `reason` is a stable code, `data`
    the rest of its context as a JSON object."""

    __tablename__ = "risk_events"

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    ts_ns: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String)
    reason: Mapped[str] = mapped_column(String)
    detail: Mapped[str] = mapped_column(Text)
    execution_id: Mapped[str | None] = mapped_column(String)
    venue: Mapped[str | None] = mapped_column(String)
    data: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_risk_events_ts_ns", "ts_ns"),)


class ApiKeyRow(Base):
    """An API key: `id` is its public part (shown in listings and logs), `secret_sha256` the SHA-256 of its secret part.
    A plain hash is enough because the secret is 256 random bits (nothing to brute-force, unlike a password); the
    secret itself is shown once, at creation, and never stored. `scopes` is a comma-separated subset of
    read,trade,admin; a key is unusable once `revoked_ns` is set."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str] = mapped_column(String)
    scopes: Mapped[str] = mapped_column(String)
    secret_sha256: Mapped[str] = mapped_column(String)
    created_ns: Mapped[int] = mapped_column(BigInteger)
    revoked_ns: Mapped[int | None] = mapped_column(BigInteger)


class ApiRequestRow(Base):
    """A request whose effect must happen once per `Idempotency-Key` (execute) or that starts a job (backtest), owned by
    the key that made it: the same key and idempotency key find the same row (and the same answer); another key never
    sees its `resource_id` (FAULTS S3). `status` and `result` (JSON) follow the resource as it runs."""

    __tablename__ = "api_requests"

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"))
    kind: Mapped[str] = mapped_column(String)
    idempotency_key: Mapped[str] = mapped_column(String)
    request_sha256: Mapped[str] = mapped_column(String)
    resource_id: Mapped[str] = mapped_column(String)
    status: Mapped[str] = mapped_column(String)
    result: Mapped[str] = mapped_column(Text)
    created_ns: Mapped[int] = mapped_column(BigInteger)
    updated_ns: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        UniqueConstraint("key_id", "kind", "idempotency_key", name="uq_api_requests_idempotency"),
        Index("ix_api_requests_resource_id", "resource_id"),
    )


class StrategyModelRow(Base):
    """A trained agent version (`arb strategy train`): where its files are, what it was trained on and how it did, so a
    signal can always be traced to the exact model, data range and settings that produced it."""

    __tablename__ = "strategy_models"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    algo: Mapped[str] = mapped_column(String)
    path: Mapped[str] = mapped_column(Text)
    assets: Mapped[str] = mapped_column(Text)
    data_from_ns: Mapped[int] = mapped_column(BigInteger)
    data_to_ns: Mapped[int] = mapped_column(BigInteger)
    config: Mapped[str] = mapped_column(Text)
    metrics: Mapped[str] = mapped_column(Text)
    created_ns: Mapped[int] = mapped_column(BigInteger)


class StrategySignalRow(Base):
    """One directional signal: an asset's direction, confidence and size at the close of bar `bar_ns`, with the
    inputs that made it (sentiment, the agent's raw target) and the model that spoke. Unique per (asset, bar, model):
    a rerun of the same hour does not duplicate it. Market-data estimates, hence DOUBLE PRECISION."""

    __tablename__ = "strategy_signals"

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    asset: Mapped[str] = mapped_column(String)
    bar_ns: Mapped[int] = mapped_column(BigInteger)
    model_id: Mapped[str] = mapped_column(String)
    direction: Mapped[int] = mapped_column(Integer)
    confidence: Mapped[float] = mapped_column(Double)
    sentiment: Mapped[float] = mapped_column(Double)
    agent_target: Mapped[float] = mapped_column(Double)
    price: Mapped[float] = mapped_column(Double)
    atr: Mapped[float] = mapped_column(Double)
    size: Mapped[float] = mapped_column(Double)
    notional_usd: Mapped[float] = mapped_column(Double)
    stop: Mapped[float | None] = mapped_column(Double)
    take_profit: Mapped[float | None] = mapped_column(Double)
    reason: Mapped[str] = mapped_column(String)
    created_ns: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        UniqueConstraint("asset", "bar_ns", "model_id", name="uq_strategy_signals_asset_bar_model"),
        CheckConstraint("direction IN (-1, 0, 1)", name="direction"),
        Index("ix_strategy_signals_bar_ns", "bar_ns"),
    )


class StrategyPositionRow(Base):
    """A directional paper position, separate from the arbitrage book: opened from a signal, closed by a later signal,
    its stop, take-profit or trailing stop. Booked money, hence `Money`."""

    __tablename__ = "strategy_positions"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    asset: Mapped[str] = mapped_column(String)
    venue: Mapped[str] = mapped_column(String)
    side: Mapped[str] = mapped_column(String)
    amount: Mapped[Decimal] = mapped_column(Money)
    entry_price: Mapped[Decimal] = mapped_column(Money)
    stop: Mapped[Decimal] = mapped_column(Money)
    take_profit: Mapped[Decimal] = mapped_column(Money)
    trail_distance: Mapped[Decimal] = mapped_column(Money)
    opened_ns: Mapped[int] = mapped_column(BigInteger)
    signal_id: Mapped[int] = mapped_column(ForeignKey("strategy_signals.id"))
    exit_price: Mapped[Decimal | None] = mapped_column(Money)
    closed_ns: Mapped[int | None] = mapped_column(BigInteger)
    close_reason: Mapped[str | None] = mapped_column(String)
    realized_pnl: Mapped[Decimal | None] = mapped_column(Money)
    fees: Mapped[Decimal] = mapped_column(Money)

    __table_args__ = (
        CheckConstraint(_one_of("side", ("buy", "sell")), name="side"),
        Index("ix_strategy_positions_asset", "asset"),
    )


OPPORTUNITIES: Final[Table] = Base.metadata.tables["opportunities"]
OPPORTUNITY_EVENTS: Final[Table] = Base.metadata.tables["opportunity_events"]
INTENTS: Final[Table] = Base.metadata.tables["execution_intents"]
ORDERS: Final[Table] = Base.metadata.tables["orders"]
ORDER_EVENTS: Final[Table] = Base.metadata.tables["order_events"]
FILLS: Final[Table] = Base.metadata.tables["fills"]
TRADING_STATE: Final[Table] = Base.metadata.tables["trading_state"]
RISK_EVENTS: Final[Table] = Base.metadata.tables["risk_events"]
API_KEYS: Final[Table] = Base.metadata.tables["api_keys"]
API_REQUESTS: Final[Table] = Base.metadata.tables["api_requests"]
STRATEGY_MODELS: Final[Table] = Base.metadata.tables["strategy_models"]
STRATEGY_SIGNALS: Final[Table] = Base.metadata.tables["strategy_signals"]
STRATEGY_POSITIONS: Final[Table] = Base.metadata.tables["strategy_positions"]
"""The tables as Core `Table`s, for the writers' bulk upserts and the queries (no ORM session on any path)."""
