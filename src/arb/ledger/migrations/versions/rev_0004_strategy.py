"""strategy: the directional layer's models, signals and paper positions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24

Money columns are spelled out (NUMERIC on PostgreSQL, text on SQLite) as in rev 0002, so this migration keeps building
the same schema whatever the models become.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVENT_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
MONEY = sa.Numeric().with_variant(sa.String(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "strategy_models",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("algo", sa.String(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("assets", sa.Text(), nullable=False),
        sa.Column("data_from_ns", sa.BigInteger(), nullable=False),
        sa.Column("data_to_ns", sa.BigInteger(), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("metrics", sa.Text(), nullable=False),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_strategy_models")),
    )
    op.create_table(
        "strategy_signals",
        sa.Column("id", EVENT_ID, autoincrement=True, nullable=False),
        sa.Column("asset", sa.String(), nullable=False),
        sa.Column("bar_ns", sa.BigInteger(), nullable=False),
        sa.Column("model_id", sa.String(), nullable=False),
        sa.Column("direction", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Double(), nullable=False),
        sa.Column("sentiment", sa.Double(), nullable=False),
        sa.Column("agent_target", sa.Double(), nullable=False),
        sa.Column("price", sa.Double(), nullable=False),
        sa.Column("atr", sa.Double(), nullable=False),
        sa.Column("size", sa.Double(), nullable=False),
        sa.Column("notional_usd", sa.Double(), nullable=False),
        sa.Column("stop", sa.Double(), nullable=True),
        sa.Column("take_profit", sa.Double(), nullable=True),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("created_ns", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("direction IN (-1, 0, 1)", name=op.f("ck_strategy_signals_direction")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_strategy_signals")),
        sa.UniqueConstraint("asset", "bar_ns", "model_id", name="uq_strategy_signals_asset_bar_model"),
    )
    with op.batch_alter_table("strategy_signals", schema=None) as batch_op:
        batch_op.create_index("ix_strategy_signals_bar_ns", ["bar_ns"], unique=False)

    op.create_table(
        "strategy_positions",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("asset", sa.String(), nullable=False),
        sa.Column("venue", sa.String(), nullable=False),
        sa.Column("side", sa.String(), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("entry_price", MONEY, nullable=False),
        sa.Column("stop", MONEY, nullable=False),
        sa.Column("take_profit", MONEY, nullable=False),
        sa.Column("trail_distance", MONEY, nullable=False),
        sa.Column("opened_ns", sa.BigInteger(), nullable=False),
        sa.Column("signal_id", EVENT_ID, nullable=False),
        sa.Column("exit_price", MONEY, nullable=True),
        sa.Column("closed_ns", sa.BigInteger(), nullable=True),
        sa.Column("close_reason", sa.String(), nullable=True),
        sa.Column("realized_pnl", MONEY, nullable=True),
        sa.Column("fees", MONEY, nullable=False),
        sa.CheckConstraint("side IN ('buy', 'sell')", name=op.f("ck_strategy_positions_side")),
        sa.ForeignKeyConstraint(
            ["signal_id"], ["strategy_signals.id"], name=op.f("fk_strategy_positions_signal_id_strategy_signals")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_strategy_positions")),
    )
    with op.batch_alter_table("strategy_positions", schema=None) as batch_op:
        batch_op.create_index("ix_strategy_positions_asset", ["asset"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("strategy_positions", schema=None) as batch_op:
        batch_op.drop_index("ix_strategy_positions_asset")

    op.drop_table("strategy_positions")
    with op.batch_alter_table("strategy_signals", schema=None) as batch_op:
        batch_op.drop_index("ix_strategy_signals_bar_ns")

    op.drop_table("strategy_signals")
    op.drop_table("strategy_models")
