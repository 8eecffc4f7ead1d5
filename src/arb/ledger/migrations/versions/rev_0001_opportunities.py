"""opportunities and their lifecycle events

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "opportunities",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("instrument", sa.String(), nullable=False),
        sa.Column("buy_venue", sa.String(), nullable=False),
        sa.Column("sell_venue", sa.String(), nullable=False),
        sa.Column("quote_currency", sa.String(), nullable=False),
        sa.Column("opened_at_ns", sa.BigInteger(), nullable=False),
        sa.Column("closed_at_ns", sa.BigInteger(), nullable=True),
        sa.Column("close_reason", sa.String(), nullable=True),
        sa.Column("peak_net_edge", sa.Double(), nullable=False),
        sa.Column("net_edge", sa.Double(), nullable=False),
        sa.Column("size", sa.Double(), nullable=False),
        sa.Column("notional", sa.Double(), nullable=False),
        sa.Column("profit", sa.Double(), nullable=False),
        sa.Column("expected_profit", sa.Double(), nullable=False),
        sa.Column("priority", sa.Double(), nullable=False),
        sa.Column("updates", sa.Integer(), nullable=False),
        sa.Column("last_event_ns", sa.BigInteger(), nullable=False),
        sa.Column("opportunity", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opportunities")),
    )
    op.create_index("ix_opportunities_instrument_opened_at_ns", "opportunities", ["instrument", "opened_at_ns"])
    op.create_index("ix_opportunities_opened_at_ns", "opportunities", ["opened_at_ns"])
    op.create_index("ix_opportunities_closed_at_ns", "opportunities", ["closed_at_ns"])
    op.create_table(
        "opportunity_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("opportunity_id", sa.String(), nullable=False),
        sa.Column("type", sa.String(), nullable=False),
        sa.Column("ts_ns", sa.BigInteger(), nullable=False),
        sa.Column("net_edge", sa.Double(), nullable=False),
        sa.Column("priority", sa.Double(), nullable=False),
        sa.CheckConstraint("type IN ('opened', 'updated', 'closed')", name=op.f("ck_opportunity_events_type")),
        sa.ForeignKeyConstraint(
            ["opportunity_id"],
            ["opportunities.id"],
            name=op.f("fk_opportunity_events_opportunity_id_opportunities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_opportunity_events")),
        sa.UniqueConstraint("opportunity_id", "ts_ns", "type", name="uq_opportunity_events_step"),
    )


def downgrade() -> None:
    op.drop_table("opportunity_events")
    op.drop_index("ix_opportunities_closed_at_ns", table_name="opportunities")
    op.drop_index("ix_opportunities_opened_at_ns", table_name="opportunities")
    op.drop_index("ix_opportunities_instrument_opened_at_ns", table_name="opportunities")
    op.drop_table("opportunities")
