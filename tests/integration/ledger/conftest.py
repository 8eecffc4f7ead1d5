"""Ledger databases for the integration tests, on each backend: SQLite in tmp_path, and PostgreSQL when one answers.

PostgreSQL: `ARB_TEST_PG_URL` (a SQLAlchemy URL, `postgresql+asyncpg://...`), else
`postgresql+asyncpg://postgres@127.0.0.1:5432/postgres`. Its role must be able to create databases: the run gets a
throw-away database (`arb_test_<pid>_<hex>`, dropped at the end). Without a server (or asyncpg), the PostgreSQL cases
are skipped with the reason.

`empty_db` has no tables at all (the migration tests); `db` is at head with no rows (everything else): a copy of a
SQLite file migrated once per run, or the run's PostgreSQL database truncated (migrating afresh for every test would
double the time of these tests).

Each database also knows how to cause an outage the ledger must ride through: SQLite, another connection holding the
write lock (the URL's busy timeout is short); PostgreSQL, the database refusing connections and its sessions killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import URL, make_url

from arb.ledger import open_ledger
from arb.ledger.migrate import VERSION_TABLE, head_revision, mask
from arb.ledger.schema import Base

PG_URL = os.environ.get("ARB_TEST_PG_URL") or "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
SQLITE_QUERY = "?timeout=0.05"
"""A short busy timeout, so a write during a test's outage (a held lock) fails fast instead of after 5 s."""


def asyncpg_dsn(url: URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _pg_unavailable() -> str | None:
    """Why PostgreSQL tests cannot run here, or None."""
    try:
        import asyncpg
    except ImportError:
        return "asyncpg is not installed"
    try:
        conn = await asyncpg.connect(asyncpg_dsn(make_url(PG_URL)), timeout=2)
    except Exception as e:
        return f"no PostgreSQL answering at {mask(PG_URL)} ({type(e).__name__}: {e}); set ARB_TEST_PG_URL"
    try:
        can = await conn.fetchval("SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user")
    finally:
        await conn.close()
    return None if can else f"the role of {mask(PG_URL)} cannot create databases (needed for a throw-away one)"


async def _pg_execute(url: URL, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _pg_reset(url: URL) -> bool:
    """Empty the ledger's tables if the database is at head (True); else drop everything (False)."""
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(url), timeout=5)
    try:
        try:
            revision = await conn.fetchval(f"SELECT version_num FROM {VERSION_TABLE}")  # noqa: S608 - a constant
        except asyncpg.UndefinedTableError:
            revision = None
        if revision == head_revision():
            await conn.execute(f"TRUNCATE {', '.join(Base.metadata.tables)} RESTART IDENTITY CASCADE")
            return True
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        return False
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def _pg_database() -> Iterator[URL | str]:
    """The run's throw-away PostgreSQL database (its URL), or why PostgreSQL tests are skipped."""
    reason = asyncio.run(_pg_unavailable())
    if reason is not None:
        yield reason
        return
    base = make_url(PG_URL)
    name = f"arb_test_{os.getpid()}_{secrets.token_hex(3)}"
    asyncio.run(_pg_execute(base, f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name)
    finally:
        asyncio.run(_pg_execute(base, f'DROP DATABASE "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def _sqlite_at_head(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite ledger file migrated to head once per run, copied by each test that needs one."""
    path = tmp_path_factory.mktemp("ledger-template") / "ledger.db"

    async def migrate() -> None:
        async with open_ledger(f"sqlite+aiosqlite:///{path}"):
            pass

    asyncio.run(migrate())
    return path


class Database:
    """A ledger database for one test: its URL, and how to make it unavailable for a while."""

    def __init__(self, backend: str, url: str) -> None:
        self.backend = backend
        self.url = url

    @contextlib.asynccontextmanager
    async def outage(self) -> AsyncIterator[None]:
        """The database cannot be written inside this block (and can again after it)."""
        url = make_url(self.url)
        if self.backend == "sqlite":
            blocker = sqlite3.connect(url.database or "", timeout=5, isolation_level=None)
            try:
                blocker.execute("BEGIN EXCLUSIVE")
                yield
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()
            return
        import asyncpg

        admin: Any = await asyncpg.connect(asyncpg_dsn(make_url(PG_URL)), timeout=5)
        try:
            await admin.execute(f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                url.database,
            )
            try:
                yield
            finally:
                await admin.execute(f'ALTER DATABASE "{url.database}" ALLOW_CONNECTIONS true')
        finally:
            await admin.close()


class Backend:
    """Where this test's database lives: `kind` sqlite (a file in tmp_path, `template` at head to copy) or postgresql
    (the run's database at `pg_url`)."""

    def __init__(self, kind: str, tmp_path: Path, template: Path | None = None, pg_url: URL | None = None) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.template = template
        self.pg_url = pg_url


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """Sync, so that it can start the session's databases (`asyncio.run`) the first time one is needed."""
    if request.param == "sqlite":
        return Backend("sqlite", tmp_path, template=request.getfixturevalue("_sqlite_at_head"))
    pg = request.getfixturevalue("_pg_database")
    if isinstance(pg, str):
        pytest.skip(pg)
    return Backend("postgresql", tmp_path, pg_url=pg)


@pytest.fixture
async def empty_db(backend: Backend) -> Database:
    """A database without any table: a new SQLite file, or the run's PostgreSQL database with its schema recreated."""
    if backend.pg_url is None:
        return Database("sqlite", f"sqlite+aiosqlite:///{backend.tmp_path / 'ledger.db'}{SQLITE_QUERY}")
    await _pg_execute(backend.pg_url, "DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    return Database("postgresql", backend.pg_url.render_as_string(hide_password=False))


@pytest.fixture
async def db(backend: Backend) -> Database:
    """A database at the newest schema revision, without rows."""
    if backend.pg_url is None:
        assert backend.template is not None
        path = backend.tmp_path / "ledger.db"
        shutil.copyfile(backend.template, path)
        return Database("sqlite", f"sqlite+aiosqlite:///{path}{SQLITE_QUERY}")
    database = Database("postgresql", backend.pg_url.render_as_string(hide_password=False))
    if not await _pg_reset(backend.pg_url):  # emptied or stamped by a migration test: migrate again
        async with open_ledger(database.url):
            pass
    return database


@pytest.fixture
def sqlite_url(tmp_path: Path, _sqlite_at_head: Path) -> str:
    """A SQLite database at head, for tests of what does not depend on the backend."""
    path = tmp_path / "ledger.db"
    shutil.copyfile(_sqlite_at_head, path)
    return f"sqlite+aiosqlite:///{path}"
