"""The ledger: one database (SQLite by default, PostgreSQL for production), opened with its schema at head.

    async with open_ledger(settings.database_url.get_secret_value()) as ledger:
        async with ledger.opportunity_writer() as w:       # the scanner: cheap put(), batched writes
            w.put(event)
        rows = await ledger.recent_opportunities(limit=20, instrument="BTC/USDT", open_only=True)
        one = await ledger.opportunity(rows[0].id)
        store = ledger.execution()                          # intents, orders, fills, positions, trading state

Opening runs the shipped Alembic migrations (`arb.ledger.migrate`); a database migrated by a newer arb is refused.
The URL may carry a password: it is only ever logged or shown masked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import msgspec
from sqlalchemy import Row, Select, select
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from arb.ledger.errors import OUTAGE_ERRORS, CorruptRecord, LedgerUnavailable, describe
from arb.ledger.migrate import create_engine, create_sync_sqlite_engine, mask, upgrade_to_head
from arb.ledger.records import OpportunityEventRecord, OpportunityRecord
from arb.ledger.schema import OPPORTUNITIES, OPPORTUNITY_EVENTS
from arb.ledger.writer import OpportunityLedgerWriter
from arb.model import Opportunity

if TYPE_CHECKING:
    from arb.ledger.execution import ExecutionStore

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_SQLITE_BUSY: Final = (5, 6)
"""SQLITE_BUSY, SQLITE_LOCKED (sqlite3 error codes): another writer holds the lock."""

MAX_LIMIT: Final = 10_000
"""Most rows one query returns (the API pages through more)."""

_OPPORTUNITY: Final = msgspec.json.Decoder(Opportunity)
_RECORD_COLUMNS: Final = (
    OPPORTUNITIES.c.id,
    OPPORTUNITIES.c.opportunity,
    OPPORTUNITIES.c.opened_at_ns,
    OPPORTUNITIES.c.closed_at_ns,
    OPPORTUNITIES.c.close_reason,
    OPPORTUNITIES.c.peak_net_edge,
    OPPORTUNITIES.c.updates,
    OPPORTUNITIES.c.last_event_ns,
)


def _record(row: Row[Any]) -> OpportunityRecord:
    try:
        opportunity = _OPPORTUNITY.decode(row.opportunity)
    except msgspec.MsgspecError as e:
        raise CorruptRecord(f"opportunity {row.id!r} in the ledger does not decode as an Opportunity: {e}") from e
    return OpportunityRecord(
        opportunity=opportunity,
        opened_at_ns=row.opened_at_ns,
        closed_at_ns=row.closed_at_ns,
        close_reason=row.close_reason,
        peak_net_edge=row.peak_net_edge,
        updates=row.updates,
        last_event_ns=row.last_event_ns,
    )


class Ledger:
    """An open ledger database. Made by `open_ledger`, usable until its block exits."""

    def __init__(self, engine: AsyncEngine, *, revision: str) -> None:
        self._engine = engine
        self._revision = revision
        self._closed = False
        self._execution: ExecutionStore | None = None
        self._sqlite_writers: tuple[Engine, Engine, ThreadPoolExecutor] | None = None

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @property
    def url(self) -> str:
        """The database URL with its password masked (safe to log and show)."""
        return mask(self._engine.url)

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self._engine.dialect.name

    @property
    def revision(self) -> str:
        """The schema revision the database is at (the newest this code knows)."""
        return self._revision

    def opportunity_writer(
        self,
        *,
        max_batch: int = 500,
        max_delay_ms: float = 100.0,
        max_pending: int = 100_000,
        retry_max_s: float = 2.0,
        close_timeout_s: float = 5.0,
    ) -> OpportunityLedgerWriter:
        """A batching writer of OpportunityEvents, to use as `async with` inside this ledger's block (see
        `arb.ledger.writer` for batching, coalescing and failure semantics)."""
        self._check_open()
        return OpportunityLedgerWriter(
            self,
            max_batch=max_batch,
            max_delay_ms=max_delay_ms,
            max_pending=max_pending,
            retry_max_s=retry_max_s,
            close_timeout_s=close_timeout_s,
        )

    def execution(self) -> ExecutionStore:
        """The execution and risk tables (intents, orders, fills, positions, trading state, risk events): see
        `arb.ledger.execution`. One store per ledger, usable while the ledger is open."""
        self._check_open()
        if self._execution is None:
            from arb.ledger.execution import ExecutionStore

            self._execution = ExecutionStore(self)
        return self._execution

    async def recent_opportunities(
        self, limit: int = 50, *, instrument: str | None = None, open_only: bool = False
    ) -> list[OpportunityRecord]:
        """The most recently opened opportunities first (ties by id), at most `limit`; only those of `instrument`
        when given; only those still open when `open_only`."""
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be in [1, {MAX_LIMIT}], got {limit}")
        query = select(*_RECORD_COLUMNS)
        if instrument is not None:
            query = query.where(OPPORTUNITIES.c.instrument == instrument)
        if open_only:
            query = query.where(OPPORTUNITIES.c.closed_at_ns.is_(None))
        query = query.order_by(OPPORTUNITIES.c.opened_at_ns.desc(), OPPORTUNITIES.c.id.desc()).limit(limit)
        return [_record(row) for row in await self._read("recent_opportunities", query)]

    async def opportunity(self, id: str) -> OpportunityRecord | None:
        """One opportunity by its id, or None if the ledger has none of that id."""
        rows = await self._read("opportunity", select(*_RECORD_COLUMNS).where(OPPORTUNITIES.c.id == id))
        return _record(rows[0]) if rows else None

    async def opportunity_events(self, id: str) -> list[OpportunityEventRecord]:
        """The stored lifecycle steps of one opportunity, oldest first (empty if there are none)."""
        e = OPPORTUNITY_EVENTS.c
        query = (
            select(e.opportunity_id, e.type, e.ts_ns, e.net_edge, e.priority)
            .where(e.opportunity_id == id)
            .order_by(e.ts_ns, e.id)
        )
        return [
            OpportunityEventRecord(
                opportunity_id=row.opportunity_id,
                type=row.type,
                ts_ns=row.ts_ns,
                net_edge=row.net_edge,
                priority=row.priority,
            )
            for row in await self._read("opportunity_events", query)
        ]

    async def _read(self, operation: str, query: Select[Any]) -> Sequence[Row[Any]]:
        self._check_open()
        try:
            async with self._engine.connect() as connection:
                result = await connection.execute(query)
                rows: Sequence[Row[Any]] = result.all()
                return rows
        except OUTAGE_ERRORS as e:
            raise LedgerUnavailable(operation, describe(e)) from e

    @contextlib.asynccontextmanager
    async def transaction(self, operation: str) -> AsyncIterator[AsyncConnection]:
        """One transaction on the async engine (committed when the block exits, rolled back if it raises), with an
        outage mapped to LedgerUnavailable naming `operation`; an IntegrityError (a unique key raced) propagates as
        is, for the caller to treat as "already there"."""
        self._check_open()
        try:
            async with self._engine.begin() as connection:
                yield connection
        except IntegrityError:
            raise
        except OUTAGE_ERRORS as e:
            raise LedgerUnavailable(operation, describe(e)) from e

    async def write_now(self, work: Callable[[Connection], _T]) -> _T:
        """Run `work` in one transaction (committed when it returns, rolled back when it raises) and return its result,
        as fast as the database allows: for the execution write-ahead, which is on every execution's critical path.

        Why not the async engine: on SQLite each statement through aiosqlite is several thread hops (cursor, execute,
        close...), ~28 for the write-ahead, ~4 ms, and every hop is a cross-thread wake-up whose latency on a busy or
        virtualised host has a long tail. So on SQLite the transaction first runs right here, on the event loop's
        thread, on a synchronous connection of its own to the same file that never waits for a lock (busy timeout 0):
        ~1 ms of CPU, no hop. If another writer holds the lock at that instant, it runs instead as one call on a
        dedicated writer thread whose connection waits under the URL's busy timeout, so the loop never blocks on a
        lock. Both connections never checkpoint the WAL on their commits (the async engine's writers do), so no
        checkpoint's fsync lands on this path. On PostgreSQL `work` runs on the async engine through `run_sync`
        (asyncpg round trips are the cost there, not hops). Database errors propagate as SQLAlchemy raises them;
        callers map them as for any write."""
        self._check_open()
        if self.dialect != "sqlite":
            async with self._engine.begin() as connection:
                return await connection.run_sync(work)
        if self._sqlite_writers is None:
            self._sqlite_writers = (
                create_sync_sqlite_engine(self._engine.url, busy_timeout_s=0.0),
                create_sync_sqlite_engine(self._engine.url),
                ThreadPoolExecutor(1, thread_name_prefix="arb-ledger-writer"),
            )
        inline, threaded, thread = self._sqlite_writers
        try:
            with inline.begin() as now:
                return work(now)
        except OperationalError as exc:
            if getattr(exc.orig, "sqlite_errorcode", None) not in _SQLITE_BUSY:
                raise
            log.debug("ledger.write_now_busy waiting_on=writer_thread")  # another writer holds the lock

        def transaction() -> _T:
            with threaded.begin() as waiting:
                return work(waiting)

        return await asyncio.get_running_loop().run_in_executor(thread, transaction)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("Ledger is closed; use it inside its `async with open_ledger(...)` block")

    def _close(self) -> None:
        self._closed = True
        if self._sqlite_writers is not None:
            inline, threaded, thread = self._sqlite_writers
            self._sqlite_writers = None
            thread.shutdown(wait=True)  # a write in flight finishes (committed or rolled back) before the file closes
            inline.dispose()
            threaded.dispose()


@contextlib.asynccontextmanager
async def open_ledger(url: str | URL, *, inline: bool = False) -> AsyncIterator[Ledger]:
    """Open the ledger database at `url` (a SQLAlchemy URL with an asyncio driver: `sqlite+aiosqlite:///arb.db`,
    `postgresql+asyncpg://user:password@host/db`), bringing its schema to head first.

    `inline` (SQLite only): every statement runs at once on the event loop's thread instead of through aiosqlite's
    thread, for the backtest replay's throw-away ledger (`arb.ledger.inline` says why, and why not for live use).

    Raises UnsupportedDatabase for a URL the ledger cannot use, LedgerSchemaTooNew for a database migrated by a newer
    arb, LedgerUnavailable when the database cannot be reached. The engine is disposed when the block exits."""
    if inline:
        from arb.ledger.inline import create_inline_engine

        engine = cast("AsyncEngine", create_inline_engine(url))  # the AsyncEngine methods the ledger calls
    else:
        engine = create_engine(url)
    try:
        try:
            revision = await upgrade_to_head(engine)
        except OUTAGE_ERRORS as e:
            raise LedgerUnavailable("open", describe(e)) from e
        ledger = Ledger(engine, revision=revision)
        log.info("ledger.opened url=%s dialect=%s revision=%s", ledger.url, ledger.dialect, revision)
        try:
            yield ledger
        finally:
            ledger._close()
    finally:
        await engine.dispose()
