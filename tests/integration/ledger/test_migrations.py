"""The schema is made by the shipped Alembic migrations on open; a database from a newer arb is refused."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, make_url

from arb.ledger import LedgerSchemaTooNew, LedgerUnavailable, open_ledger
from arb.ledger.migrate import VERSION_TABLE, alembic_config, head_revision
from arb.ledger.schema import Base

from .conftest import Database


def schema_of(connection: Connection) -> dict[str, Any]:
    inspector = inspect(connection)
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE, "compare_type": True})
    return {
        "tables": set(inspector.get_table_names()),
        "indexes": {ix["name"] for ix in inspector.get_indexes("opportunities")},
        "diff": compare_metadata(context, Base.metadata),
    }


async def test_opening_an_empty_database_migrates_it_to_the_models_schema(empty_db: Database) -> None:
    async with open_ledger(empty_db.url) as ledger:
        async with ledger.engine.connect() as connection:
            schema = await connection.run_sync(schema_of)
            read_version = text(f"SELECT version_num FROM {VERSION_TABLE}")  # noqa: S608 - a constant
            version = (await connection.execute(read_version)).scalar_one()

    assert ledger.revision == head_revision() == version
    assert schema["tables"] == {*Base.metadata.tables, VERSION_TABLE}
    assert {
        "ix_opportunities_instrument_opened_at_ns",
        "ix_opportunities_opened_at_ns",
        "ix_opportunities_closed_at_ns",
    } <= schema["indexes"]
    assert schema["diff"] == []  # the migrations build exactly what the models describe


async def test_two_ledgers_opening_an_empty_database_at_once_migrate_it_once(empty_db: Database) -> None:
    url = make_url(empty_db.url).difference_update_query(["timeout"])  # the default busy timeout: waiting is the point
    shown = url.render_as_string(hide_password=False)

    async def open_and_read() -> str:
        async with open_ledger(shown) as ledger:
            await ledger.recent_opportunities()
            return ledger.revision

    assert await asyncio.gather(open_and_read(), open_and_read()) == [head_revision()] * 2


async def test_the_first_migration_can_be_undone(db: Database) -> None:
    async with open_ledger(db.url) as ledger:
        await asyncio.to_thread(command.downgrade, alembic_config(ledger.engine.url), "base")
        async with ledger.engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))

    assert tables == {VERSION_TABLE}


async def test_reopening_a_database_at_head_migrates_nothing(db: Database, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        async with open_ledger(db.url) as ledger:
            assert ledger.revision == head_revision()

    assert "ledger.migrating" not in caplog.text
    assert "ledger.opened" in caplog.text


async def test_a_database_migrated_by_a_newer_arb_is_refused_naming_its_revision(db: Database) -> None:
    async with open_ledger(db.url) as ledger, ledger.engine.begin() as connection:
        await connection.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '0042'"))  # noqa: S608 - a constant

    newest = rf"does not know \(its newest is '{head_revision()}'\)"
    with pytest.raises(LedgerSchemaTooNew, match=rf"schema revision '0042'.*{newest}"):
        async with open_ledger(db.url):
            pass  # pragma: no cover - never entered


async def test_an_unreachable_database_is_reported_without_its_password(caplog: pytest.LogCaptureFixture) -> None:
    url = "postgresql+asyncpg://arb:s3cret@127.0.0.1:1/arb"  # nothing listens on port 1

    with caplog.at_level(logging.DEBUG), pytest.raises(LedgerUnavailable, match="ledger open failed") as failed:
        async with open_ledger(url):
            pass  # pragma: no cover - never entered

    assert "s3cret" not in str(failed.value)
    assert "s3cret" not in caplog.text


async def test_a_sqlite_file_that_cannot_be_created_is_unavailable(tmp_path: Any) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'missing-dir' / 'ledger.db'}"

    with pytest.raises(LedgerUnavailable, match="unable to open database file"):
        async with open_ledger(url):
            pass  # pragma: no cover - never entered


async def test_the_url_the_ledger_logs_has_its_password_masked(db: Database, caplog: pytest.LogCaptureFixture) -> None:
    if db.backend != "postgresql":
        pytest.skip("a SQLite URL has no password")
    url = make_url(db.url)
    if url.password is None:
        url = url.set(password="s3cret")  # test servers trust local connections, whatever the password
    secret = str(url.password)

    with caplog.at_level(logging.DEBUG):
        async with open_ledger(url.render_as_string(hide_password=False)) as ledger:
            assert secret not in ledger.url

    assert ":***@" in caplog.text
    assert secret not in caplog.text
