"""Schema management: engines set up for the ledger, and Alembic run programmatically on open.

The schema is created and changed only by the migrations shipped in `arb.ledger.migrations` (`upgrade head`), never
by `metadata.create_all`, so a database made by any arb version can be brought forward by a later one.

    head = await upgrade_to_head(engine)     # what `open_ledger` does

Alembic's command API is synchronous; it runs in a worker thread, where `migrations/env.py` follows Alembic's
documented asyncio recipe (an async engine of its own, the migrations through `connection.run_sync`). When the
database is already at head (every open but the first), Alembic's command is not run and no second engine is made.

A database whose revision this code does not know was migrated by a newer arb: it is refused (`LedgerSchemaTooNew`,
naming the revision) before any of its data is read or written, instead of being half-understood.

Writing a new migration (a developer, with a database at head):

    from alembic import command
    from arb.ledger.migrate import alembic_config
    command.revision(alembic_config("sqlite+aiosqlite:///dev.db"), message="add intents", autogenerate=True)

then review the generated `migrations/versions/rev_<id>_add_intents.py`, and `ruff check --fix` / `ruff format` it
(SQLite cannot alter most of a table in place: env.py makes autogenerate emit `op.batch_alter_table` for that).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
from typing import Any, Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import InvalidRequestError, NoSuchModuleError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from arb.ledger.errors import LedgerSchemaTooNew, UnsupportedDatabase

log = logging.getLogger(__name__)

SCRIPT_LOCATION: Final = "arb.ledger:migrations"
VERSION_TABLE: Final = "arb_ledger_version"
"""Not Alembic's default `alembic_version`: the ledger may share a PostgreSQL database (or schema) with another
Alembic-managed application, whose revisions must neither be read as ours nor overwritten."""
MIGRATION_LOCK_KEY: Final = 0x6172622E6C656467
"""PostgreSQL advisory lock ("arb.ledg") held while migrating, so two processes opening an empty database at once
migrate it once (the second waits, then finds it at head)."""

SUPPORTED: Final = ("sqlite+aiosqlite:///path/to/arb.db", "postgresql+asyncpg://user:password@host:5432/db")


def mask(url: str | URL) -> str:
    """The URL for logs and messages: the password, if any, as `***`."""
    return make_url(url).render_as_string(hide_password=True)


def check_url(url: str | URL) -> URL:
    """Parse a ledger URL; raises UnsupportedDatabase (naming the masked URL) for one the ledger cannot use (the driver
    is checked when the engine is made, see `create_engine`)."""
    try:
        parsed = make_url(url)
    except Exception:  # sqlalchemy raises ArgumentError; the message quotes the URL, password included
        raise UnsupportedDatabase(f"ledger database URL is not a SQLAlchemy URL (e.g. {SUPPORTED[0]})") from None
    shown = parsed.render_as_string(hide_password=True)
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise UnsupportedDatabase(f"ledger database {shown}: only SQLite and PostgreSQL are supported ({SUPPORTED})")
    if backend == "sqlite" and (parsed.database in (None, "", ":memory:") or parsed.query.get("mode") == "memory"):
        raise UnsupportedDatabase(
            f"ledger database {shown}: an in-memory SQLite database vanishes with its connection; use a file, "
            f"e.g. {SUPPORTED[0]}"
        )
    return parsed


def create_engine(url: str | URL, *, sqlite_begin: str = "BEGIN") -> AsyncEngine:
    """An async engine set up for the ledger.

    SQLite: SQLAlchemy emits BEGIN itself (the sqlite3 driver's legacy mode would run migration DDL outside the
    transaction; this is SQLAlchemy's documented fix), foreign keys are enforced, and the WAL journal lets readers
    (API, CLI) read while the writer writes. `sqlite_begin="BEGIN IMMEDIATE"` takes the write lock at once
    (migrations: two processes cannot both read "empty" and both create). The busy timeout is sqlite3's `timeout`
    (5 s; `?timeout=` in the URL changes it).
    PostgreSQL: pooled connections are pinged on checkout, so one killed by the server (restart, idle timeout) is
    replaced instead of failing a write.
    """
    parsed = check_url(url)
    sqlite = parsed.get_backend_name() == "sqlite"
    try:
        engine = create_async_engine(parsed) if sqlite else create_async_engine(parsed, pool_pre_ping=True)
    except InvalidRequestError:  # "The asyncio extension requires an async driver"
        raise UnsupportedDatabase(
            f"ledger database {mask(parsed)}: needs an asyncio driver, e.g. {' or '.join(SUPPORTED)}"
        ) from None
    except (ImportError, NoSuchModuleError) as e:
        raise UnsupportedDatabase(
            f"ledger database {mask(parsed)}: its driver {parsed.get_driver_name()!r} is not available ({e})"
        ) from None
    if not sqlite:
        return engine
    _set_up_sqlite(engine.sync_engine, sqlite_begin)
    return engine


def create_sync_sqlite_engine(
    url: str | URL, *, busy_timeout_s: float | None = None, checkpoint: bool = False
) -> Engine:
    """A synchronous engine (the stdlib sqlite3 driver) on the same SQLite file as `create_engine(url)`, set up the
    same way (BEGIN emitted by SQLAlchemy, foreign keys, WAL), whose commits never checkpoint the WAL unless
    `checkpoint`. It exists for `Ledger.write_now` (the execution write-ahead without aiosqlite's thread hops) and
    `arb.ledger.inline` (the replay's ledger, its only writer: it checkpoints). `busy_timeout_s` overrides the URL's
    (0: a locked database fails at once instead of waiting)."""
    parsed = check_url(url)
    if parsed.get_backend_name() != "sqlite":
        raise UnsupportedDatabase(f"ledger database {mask(parsed)}: a synchronous engine is for SQLite only")
    connect_args: dict[str, Any] = {"check_same_thread": False}  # made on the loop's thread, used on the writer's
    if busy_timeout_s is not None:
        connect_args["timeout"] = busy_timeout_s
    engine = sa_create_engine(
        parsed.set(drivername="sqlite+pysqlite"), pool_size=1, max_overflow=0, connect_args=connect_args
    )
    _set_up_sqlite(engine, "BEGIN", checkpoint=checkpoint)
    return engine


def _set_up_sqlite(engine: Engine, sqlite_begin: str, *, checkpoint: bool = True) -> None:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN; sqlite3 still emits COMMIT/ROLLBACK
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")  # durable across a crash of arb; WAL keeps it consistent
            if not checkpoint:
                cursor.execute("PRAGMA wal_autocheckpoint=0")
        finally:
            cursor.close()

    def on_begin(connection: Connection) -> None:
        connection.exec_driver_sql(sqlite_begin)

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic Config for the shipped migrations (no alembic.ini needed).

    The URL travels in `config.attributes`, not as `sqlalchemy.url`: ConfigParser interpolation would mangle a `%`
    in a password, and the config is never a place a password should sit in."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.set_main_option("path_separator", "os")
    config.set_main_option("file_template", "rev_%%(rev)s_%%(slug)s")
    if url is not None:
        config.attributes["url"] = make_url(url)
    return config


def database_url(config: Config) -> URL:
    """The URL env.py migrates: from `alembic_config(url)`, else `sqlalchemy.url`, else `ARB_DATABASE_URL`."""
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url") or os.environ.get("ARB_DATABASE_URL")
    if not url:
        raise UnsupportedDatabase("no ledger database URL: pass one to alembic_config(url) or set ARB_DATABASE_URL")
    return check_url(url)


@functools.cache
def _known_revisions() -> tuple[frozenset[str], str]:
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_current_head()
    if head is None:  # pragma: no cover - the package ships its migrations
        raise RuntimeError("arb.ledger.migrations has no revisions")
    return frozenset(rev.revision for rev in script.walk_revisions()), head


def head_revision() -> str:
    """The newest schema revision this code knows."""
    return _known_revisions()[1]


def _current_revisions(connection: Connection) -> tuple[str, ...]:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE, "transactional_ddl": True})
    return tuple(context.get_current_heads())


async def current_revisions(engine: AsyncEngine) -> tuple[str, ...]:
    """The revision(s) the database is at; empty for a database the ledger never touched."""
    async with engine.connect() as connection:
        return await connection.run_sync(_current_revisions)


async def upgrade_to_head(engine: AsyncEngine) -> str:
    """Bring the database to the newest revision this code knows, and return it.

    Raises LedgerSchemaTooNew for a database at a revision this code does not know (nothing is changed), and lets
    driver errors (database unreachable) propagate for the caller to wrap."""
    known, head = await asyncio.to_thread(_known_revisions)
    current = await current_revisions(engine)
    unknown = tuple(rev for rev in current if rev not in known)
    if unknown:
        raise LedgerSchemaTooNew(mask(engine.url), unknown, head)
    if current != (head,):
        log.info("ledger.migrating url=%s from=%s to=%s", mask(engine.url), ",".join(current) or "empty", head)
        await asyncio.to_thread(_upgrade, alembic_config(engine.url))
    return head


_ALEMBIC_LOCK: Final = threading.Lock()
"""Alembic keeps the running migration's context in module globals (`alembic.context`, `alembic.op`): two upgrades
in one process at once would run each other's operations on each other's connections. One at a time per process;
across processes, the database serialises them (PostgreSQL advisory lock, SQLite BEGIN IMMEDIATE: see env.py)."""


def _upgrade(config: Config) -> None:
    with _ALEMBIC_LOCK:
        command.upgrade(config, "head")
