"""Alembic environment of the ledger: Alembic's documented asyncio recipe.

An async engine of its own (`arb.ledger.migrate.create_engine`, so SQLite gets transactional DDL and BEGIN
IMMEDIATE), the migrations run through `connection.run_sync`. `arb.ledger.migrate` calls Alembic's synchronous
command API in a worker thread, so `asyncio.run` here gets an event loop of its own. Offline mode (`--sql`) renders
the SQL instead.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from arb.ledger.migrate import MIGRATION_LOCK_KEY, VERSION_TABLE, create_engine, database_url
from arb.ledger.schema import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=database_url(config),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        version_table=VERSION_TABLE,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def do_run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode recreates the table
        transactional_ddl=True,  # also on SQLite, whose BEGIN arb emits itself (see create_engine)
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()


async def run_async_migrations() -> None:
    engine = create_engine(database_url(config), sqlite_begin="BEGIN IMMEDIATE")
    try:
        async with engine.connect() as connection:
            await connection.run_sync(do_run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_async_migrations())
