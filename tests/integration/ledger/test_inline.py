"""`open_ledger(url, inline=True)`: the replay's ledger runs the same store on a synchronous SQLite engine, so it
must write, refuse and read exactly what the async ledger does, in the same file format."""

from __future__ import annotations

import shutil
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from arb.ledger import ExecutionStore, IllegalFillUpdate, open_ledger
from arb.ledger.errors import UnsupportedDatabase
from arb.model import IntentStatus, OrderStatus, Side

from .test_execution import NS, fill, intent, pair

D = Decimal


async def lifecycle(store: ExecutionStore) -> dict[str, Any]:
    """One execution from write-ahead to realized PnL, a refused overfill and a risk event; what the store reads."""
    await store.write_intent(intent(), pair())
    for client_id in ("x1-0", "x1-1"):
        await store.transition(client_id, OrderStatus.SENT, NS + 1, detail="create_order")
    await store.transition("x1-0", OrderStatus.PARTIALLY_FILLED, NS + 2, detail="ws", filled=D("0.2"))
    with pytest.raises(IllegalFillUpdate):  # an overfill: refused, nothing written (the transaction rolls back)
        await store.transition("x1-0", OrderStatus.FILLED, NS + 3, detail="ws", filled=D("0.6"))
    await store.transition("x1-0", OrderStatus.FILLED, NS + 3, detail="ws", average_price=D("100.05"))
    await store.transition("x1-1", OrderStatus.FILLED, NS + 3, detail="ioc")
    assert await store.book_fill(fill("t1", "0.5", "100.05", fee="0.05"))
    assert await store.book_fill(fill("t2", "0.5", "100.9", venue="kraken", side=Side.SELL, client_id="x1-1"))
    assert not await store.book_fill(fill("t1", "0.5", "100.05", fee="0.05"))  # booked once
    await store.set_intent_status("x1", IntentStatus.DONE, ts=NS + 5, realized_pnl=D("0.35"))
    await store.record_risk_event("denied", "order_rate", NS + 6, detail="4 orders in 1 s", data={"n": 4})
    return {
        "intent": await store.intent("x1"),
        "orders": await store.orders_of("x1"),
        "history": [await store.order_history(c) for c in ("x1-0", "x1-1")],
        "fills": await store.fills(),
        "positions": await store.positions(),
        "pnl": await store.realized_pnl_since(NS),
        "risk": [(e.kind, e.reason, e.data) for e in await store.recent_risk_events()],
    }


async def test_the_inline_ledger_writes_refuses_and_reads_as_the_async_one(sqlite_url: str, tmp_path: Path) -> None:
    other = tmp_path / "inline.db"
    shutil.copyfile(sqlite_url.removeprefix("sqlite+aiosqlite:///"), other)

    async with open_ledger(sqlite_url) as ledger:
        expected = await lifecycle(ledger.execution())
    async with open_ledger(f"sqlite+aiosqlite:///{other}", inline=True) as ledger:
        got = await lifecycle(ledger.execution())
        assert ledger.dialect == "sqlite"

    assert got == expected
    assert got["positions"][("binance", "BTC")] == D("0.5")
    assert got["pnl"] == D("0.35")
    async with open_ledger(f"sqlite+aiosqlite:///{other}") as ledger:  # the file the async ledger reads
        assert await ledger.execution().intent("x1") == expected["intent"]


async def test_the_inline_ledger_runs_its_statements_on_the_callers_thread(sqlite_url: str) -> None:
    threads: set[int] = set()
    async with open_ledger(sqlite_url, inline=True) as ledger:
        engine = ledger.engine.sync_engine
        event.listen(engine, "before_cursor_execute", lambda *_: threads.add(threading.get_ident()))
        await ledger.execution().realized_pnl_since(NS)
        await ledger.execution().save_trading_state("active", "test", "test", NS)

    assert threads == {threading.get_ident()}


async def test_an_inline_ledger_is_sqlite_only_and_says_so_without_the_password() -> None:
    with pytest.raises(UnsupportedDatabase, match="inline ledger is SQLite only") as refused:
        async with open_ledger("postgresql+asyncpg://arb:s3cret@db/arb", inline=True):
            pass

    assert "s3cret" not in str(refused.value)
