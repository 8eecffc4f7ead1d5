"""execution and risk: intents, orders, order events, fills, trading state, risk events

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02

Money columns are NUMERIC on PostgreSQL and text on SQLite (exact decimals; see `arb.ledger.schema.Money`). The
types are spelled out here rather than imported from the models, so this migration keeps building the same schema
whatever the models become later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
MONEY = sa.Numeric().with_variant(sa.String(), "sqlite")
ORDER_STATUSES = "'new', 'sent', 'acked', 'partially_filled', 'filled', 'cancelled', 'rejected', 'unknown'"
INTENT_STATUSES = "'planned', 'sending', 'done', 'failed', 'hedging', 'hedged', 'escalated'"


def upgrade() -> None:
    op.create_table(
        "execution_intents",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("opportunity_id", sa.String(), nullable=False),
        sa.Column("instrument", sa.String(), nullable=False),
        sa.Column("mode", sa.String(), nullable=False),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.Column("predicted_net_edge_bps", sa.Double(), nullable=False),
        sa.Column("predicted_profit", sa.Double(), nullable=False),
        sa.Column("legs", sa.Text(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("updated_ns", sa.BigInteger(), nullable=False),
        sa.Column("realized_pnl", MONEY, nullable=True),
        sa.Column("realized_ns", sa.BigInteger(), nullable=True),
        sa.Column("final_ns", sa.BigInteger(), nullable=True),
        sa.CheckConstraint("mode IN ('paper', 'live')", name=op.f("ck_execution_intents_mode")),
        sa.CheckConstraint(f"status IN ({INTENT_STATUSES})", name=op.f("ck_execution_intents_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_execution_intents")),
    )
    op.create_index("ix_execution_intents_status", "execution_intents", ["status"])
    op.create_index("ix_execution_intents_created_ns", "execution_intents", ["created_ns"])
    op.create_index("ix_execution_intents_realized_ns", "execution_intents", ["realized_ns"])
    op.create_table(
        "orders",
        sa.Column("client_id", sa.String(), nullable=False),
        sa.Column("intent_id", sa.String(), nullable=False),
        sa.Column("leg", sa.Integer(), nullable=False),
        sa.Column("venue", sa.String(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("side", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("time_in_force", sa.String(), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("price", MONEY, nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("venue_order_id", sa.String(), nullable=True),
        sa.Column("filled", MONEY, nullable=False),
        sa.Column("average_price", MONEY, nullable=True),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.Column("updated_ns", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("side IN ('buy', 'sell')", name=op.f("ck_orders_side")),
        sa.CheckConstraint("type IN ('limit', 'market')", name=op.f("ck_orders_type")),
        sa.CheckConstraint("time_in_force IN ('GTC', 'IOC', 'FOK', 'PO')", name=op.f("ck_orders_time_in_force")),
        sa.CheckConstraint(f"status IN ({ORDER_STATUSES})", name=op.f("ck_orders_status")),
        sa.ForeignKeyConstraint(
            ["intent_id"], ["execution_intents.id"], name=op.f("fk_orders_intent_id_execution_intents")
        ),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_orders")),
        sa.UniqueConstraint("intent_id", "leg", name="uq_orders_intent_leg"),
    )
    op.create_index("ix_orders_status", "orders", ["status"])
    op.create_index("ix_orders_venue_venue_order_id", "orders", ["venue", "venue_order_id"])
    op.create_table(
        "order_events",
        sa.Column("id", EVENT_ID, autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(), nullable=False),
        sa.Column("from_status", sa.String(), nullable=True),
        sa.Column("to_status", sa.String(), nullable=False),
        sa.Column("ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("filled", MONEY, nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["orders.client_id"], name=op.f("fk_order_events_client_id_orders"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_events")),
    )
    op.create_index("ix_order_events_client_id", "order_events", ["client_id", "id"])
    op.create_table(
        "fills",
        sa.Column("id", EVENT_ID, autoincrement=True, nullable=False),
        sa.Column("venue", sa.String(), nullable=False),
        sa.Column("trade_id", sa.String(), nullable=False),
        sa.Column("client_id", sa.String(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("side", sa.String(), nullable=False),
        sa.Column("price", MONEY, nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("fee", MONEY, nullable=False),
        sa.Column("fee_currency", sa.String(), nullable=False),
        sa.Column("ts_ns", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("side IN ('buy', 'sell')", name=op.f("ck_fills_side")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fills")),
        sa.UniqueConstraint("venue", "trade_id", name="uq_fills_venue_trade_id"),
    )
    op.create_index("ix_fills_client_id", "fills", ["client_id"])
    op.create_index("ix_fills_ts_ns", "fills", ["ts_ns"])
    op.create_table(
        "trading_state",
        sa.Column("id", EVENT_ID, autoincrement=True, nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("ts_ns", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("state IN ('active', 'reducing', 'halted')", name=op.f("ck_trading_state_state")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trading_state")),
    )
    op.create_table(
        "risk_events",
        sa.Column("id", EVENT_ID, autoincrement=True, nullable=False),
        sa.Column("ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("execution_id", sa.String(), nullable=True),
        sa.Column("venue", sa.String(), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_events")),
    )
    op.create_index("ix_risk_events_ts_ns", "risk_events", ["ts_ns"])


def downgrade() -> None:
    op.drop_index("ix_risk_events_ts_ns", table_name="risk_events")
    op.drop_table("risk_events")
    op.drop_table("trading_state")
    op.drop_index("ix_fills_ts_ns", table_name="fills")
    op.drop_index("ix_fills_client_id", table_name="fills")
    op.drop_table("fills")
    op.drop_index("ix_order_events_client_id", table_name="order_events")
    op.drop_table("order_events")
    op.drop_index("ix_orders_venue_venue_order_id", table_name="orders")
    op.drop_index("ix_orders_status", table_name="orders")
    op.drop_table("orders")
    op.drop_index("ix_execution_intents_realized_ns", table_name="execution_intents")
    op.drop_index("ix_execution_intents_created_ns", table_name="execution_intents")
    op.drop_index("ix_execution_intents_status", table_name="execution_intents")
    op.drop_table("execution_intents")
