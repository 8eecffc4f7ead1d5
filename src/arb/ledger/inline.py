"""A SQLite ledger whose statements run at once on the caller's thread: `open_ledger(url, inline=True)`.

Why: the backtest replay drives the live executor, risk engine and hedger against a throw-away ledger, and through
aiosqlite every statement is several cross-thread hops (cursor, execute, fetch, close): an order transition took
~3.4 ms, mostly hops and wake-ups, the largest cost of a replay with the executor; inline it takes ~0.45 ms. The same
SQLAlchemy statements of the same `ExecutionStore` run on a synchronous engine (the stdlib sqlite3 driver, set up as
`arb.ledger.migrate.create_sync_sqlite_engine`: BEGIN emitted by SQLAlchemy, foreign keys, WAL) behind the few async
methods the ledger calls (`begin`, `connect`, `execute`, `exec_driver_sql`, `run_sync`), so what is written, checked
and read is what the live ledger writes, checks and reads.

The price: a statement blocks the event loop for its duration, and a transaction held open across a real await
(something other than the ledger's own calls) would make a second one wait for the engine's single connection with
the loop blocked, then fail (the pool's 30 s timeout). Both are fine for one replay task whose ledger calls are
serialised (the replay's `_SerialStore`), and no reason to use it in a live process, where `open_ledger(url)` keeps
the async engine.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from sqlalchemy.engine import URL, Connection, CursorResult, Dialect, Engine

_T = TypeVar("_T")


class InlineConnection:
    """The `AsyncConnection` methods the ledger uses, each run at once on a synchronous connection."""

    __slots__ = ("dialect", "sync_connection")

    def __init__(self, connection: Connection) -> None:
        self.sync_connection = connection
        self.dialect: Dialect = connection.dialect

    async def execute(self, statement: Any, parameters: Any = None) -> CursorResult[Any]:
        return self.sync_connection.execute(statement, parameters)

    async def exec_driver_sql(self, statement: str, parameters: Any = None) -> CursorResult[Any]:
        return self.sync_connection.exec_driver_sql(statement, parameters)

    async def run_sync(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        return fn(self.sync_connection, *args, **kwargs)


class InlineEngine:
    """The `AsyncEngine` methods the ledger uses (`begin`, `connect`, `dispose`, `dialect`, `url`) over a synchronous
    SQLite engine. `url` stays the async URL it was made from: Alembic's migrations (`upgrade_to_head`) and
    `Ledger.write_now` make their own engines from it."""

    def __init__(self, engine: Engine, url: URL) -> None:
        self.sync_engine = engine
        self.url = url
        self.dialect: Dialect = engine.dialect

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[InlineConnection]:
        """One transaction: committed when the block ends, rolled back when it raises."""
        with self.sync_engine.begin() as connection:
            yield InlineConnection(connection)

    @contextlib.asynccontextmanager
    async def connect(self) -> AsyncIterator[InlineConnection]:
        with self.sync_engine.connect() as connection:
            yield InlineConnection(connection)

    async def dispose(self) -> None:
        self.sync_engine.dispose()


def create_inline_engine(url: str | URL) -> InlineEngine:
    """An `InlineEngine` on the SQLite file of `url` (a `sqlite+aiosqlite:///` URL, checked as `create_engine` checks
    it); UnsupportedDatabase for any other database."""
    from arb.ledger.errors import UnsupportedDatabase
    from arb.ledger.migrate import check_url, create_sync_sqlite_engine, mask

    parsed = check_url(url)
    if parsed.get_backend_name() != "sqlite":
        raise UnsupportedDatabase(f"ledger database {mask(parsed)}: an inline ledger is SQLite only")
    return InlineEngine(create_sync_sqlite_engine(parsed, checkpoint=True), parsed)
