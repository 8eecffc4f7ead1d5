"""Revision 0002 (execution and risk tables): it upgrades a 0001 database keeping its rows, builds what the models
describe, can be undone, and a database past it is still refused."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import msgspec
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from arb.ledger import open_ledger
from arb.ledger.migrate import VERSION_TABLE, alembic_config, create_engine, current_revisions, head_revision
from arb.ledger.schema import Base
from arb.model import Fill, Side
from tests.unit.ledger.support import opportunity

from .conftest import Database

EXECUTION = {"execution_intents", "orders", "order_events", "fills", "trading_state", "risk_events"}
OPPORTUNITY = {"opportunities", "opportunity_events"}
API = {"api_keys", "api_requests"}
STRATEGY = {"strategy_models", "strategy_signals", "strategy_positions"}


async def migrate(url: str, revision: str, *, down: bool = False) -> None:
    config = alembic_config(url)
    await asyncio.to_thread(command.downgrade if down else command.upgrade, config, revision)


async def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await engine.dispose()


def diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE, "compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def write_0001_opportunity(url: str) -> None:
    """One opportunity row, written through the 0001 schema with plain SQL (as a 0001-era arb left it)."""
    opp = opportunity("o1")
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            assert await connection.run_sync(_revisions) == ("0001",)
            await connection.execute(
                text(
                    "INSERT INTO opportunities (id, kind, instrument, buy_venue, sell_venue, quote_currency, "
                    "opened_at_ns, peak_net_edge, net_edge, size, notional, profit, expected_profit, priority, "
                    "updates, last_event_ns, opportunity) VALUES (:id, 'spot', 'BTC/USDT', 'binance', 'kraken', "
                    "'USDT', 1, 0.002, 0.002, 0.5, 50000, 100, 90, 1, 0, 1, :opportunity)"
                ),
                {"id": opp.id, "opportunity": msgspec.json.encode(opp).decode()},
            )
    finally:
        await engine.dispose()


def _revisions(connection: Connection) -> tuple[str, ...]:
    return tuple(MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_heads())


async def test_0002_upgrades_a_0001_ledger_keeping_its_opportunities(empty_db: Database) -> None:
    await migrate(empty_db.url, "0001")
    await write_0001_opportunity(empty_db.url)

    async with open_ledger(empty_db.url) as ledger:  # opening brings it to head
        kept = await ledger.opportunity("o1")
        async with ledger.engine.connect() as connection:
            remaining = await connection.run_sync(diff)

    assert ledger.revision == head_revision()
    assert kept is not None
    assert kept.opportunity == opportunity("o1")
    assert await tables(empty_db.url) == EXECUTION | OPPORTUNITY | API | STRATEGY | {VERSION_TABLE}
    assert remaining == []  # the migrations build exactly what the models describe


async def test_0002_can_be_undone_leaving_the_opportunity_tables(db: Database) -> None:
    async with open_ledger(db.url) as ledger:
        store = ledger.execution()
        fill = Fill(
            trade_id="t1", client_id="c", venue="binance", symbol="BTC/USDT", side=Side.BUY,
            price=Decimal("100"), amount=Decimal("1"), fee=Decimal("0"), fee_currency="USDT", ts=1,
        )  # fmt: skip
        assert await store.book_fill(fill)

    await migrate(db.url, "0001", down=True)
    engine = create_engine(db.url)
    try:
        assert await current_revisions(engine) == ("0001",)
    finally:
        await engine.dispose()
    assert await tables(db.url) == OPPORTUNITY | {VERSION_TABLE}

    async with open_ledger(db.url) as ledger:  # and up again, empty
        assert ledger.revision == head_revision()
        assert await ledger.execution().fills() == []
