"""The execution ledger on SQLite and PostgreSQL: write-ahead intents, the order state machine, fills booked once,
positions from fills, the trading state across restarts, risk events; money exact throughout."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import AsyncIterator
from decimal import Decimal
from enum import StrEnum
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import Table, func, select, text
from sqlalchemy.engine import make_url

from arb.ledger import (
    DuplicateIntent,
    DuplicateOrder,
    ExecutionStore,
    IllegalFillUpdate,
    InvalidRecord,
    LedgerUnavailable,
    OrderRecord,
    RecordNotFound,
    open_ledger,
)
from arb.ledger.schema import FILLS, INTENTS, ORDER_EVENTS, ORDERS
from arb.model import (
    ExecutionIntent,
    Fill,
    IllegalTransition,
    IntentStatus,
    Leg,
    Order,
    OrderStatus,
    OrderType,
    Side,
)

from .conftest import Database

NS = 1_700_000_000_000_000_000
MS = 1_000_000
D = Decimal


class TradingState(StrEnum):
    """As `arb.risk.checks.TradingState` defines it (its members are what the risk engine saves)."""

    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


EXECUTION_TABLES = "execution_intents, orders, order_events, fills, trading_state, risk_events"


@pytest.fixture
async def url(db: Database) -> str:
    """The test's database at head, with the execution tables empty (the shared PostgreSQL database keeps rows
    between tests otherwise)."""
    if db.backend == "postgresql":
        async with open_ledger(db.url) as ledger, ledger.engine.begin() as connection:
            await connection.execute(text(f"TRUNCATE {EXECUTION_TABLES} RESTART IDENTITY CASCADE"))
    return db.url


@pytest.fixture
async def store(url: str) -> AsyncIterator[ExecutionStore]:
    async with open_ledger(url) as ledger:
        yield ledger.execution()


def leg(venue: str, side: Side, amount: str = "0.5", price: str = "100.1") -> Leg:
    return Leg(venue=venue, instrument="BTC/USDT", symbol="BTC/USDT", side=side, amount=D(amount), limit_price=D(price))


def intent(id: str = "x1", ts: int = NS) -> ExecutionIntent:
    return ExecutionIntent(
        id=id,
        opportunity_id="o1",
        instrument="BTC/USDT",
        legs=(leg("binance", Side.BUY), leg("kraken", Side.SELL, price="100.9")),
        predicted_net_edge_bps=12.5,
        predicted_profit=0.4,
        ts=ts,
    )


def order(client_id: str, venue: str = "binance", side: Side = Side.BUY, amount: str = "0.5", ts: int = NS) -> Order:
    return Order(
        client_id=client_id,
        venue=venue,
        symbol="BTC/USDT",
        side=side,
        type=OrderType.LIMIT,
        amount=D(amount),
        price=D("100.1"),
        ts_created=ts,
    )


def pair(intent_id: str = "x1") -> list[Order]:
    return [order(f"{intent_id}-0"), order(f"{intent_id}-1", venue="kraken", side=Side.SELL)]


def fill(
    trade_id: str,
    amount: str,
    price: str,
    *,
    venue: str = "binance",
    side: Side = Side.BUY,
    fee: str = "0",
    fee_currency: str = "USDT",
    client_id: str = "x1-0",
) -> Fill:
    return Fill(
        trade_id=trade_id,
        client_id=client_id,
        venue=venue,
        symbol="BTC/USDT",
        side=side,
        price=D(price),
        amount=D(amount),
        fee=D(fee),
        fee_currency=fee_currency,
        ts=NS,
    )


async def count(store: ExecutionStore, table: Table) -> int:
    """Rows in `table`: that a refused write left nothing behind."""
    async with store._ledger.engine.connect() as connection:
        return int((await connection.execute(select(func.count()).select_from(table))).scalar_one())


async def test_an_intent_its_orders_and_their_transitions_read_back_as_written(store: ExecutionStore) -> None:
    written = await store.write_intent(intent(), pair())
    buy, sell = "x1-0", "x1-1"

    await store.set_intent_status("x1", IntentStatus.SENDING, ts=NS + 1)
    await asyncio.gather(
        store.transition(buy, OrderStatus.SENT, NS + 2, detail="create_order"),
        store.transition(sell, OrderStatus.SENT, NS + 2, detail="create_order"),
    )
    await store.transition(buy, OrderStatus.ACKED, NS + 3, detail="ack", venue_order_id="B-77")
    await store.transition(buy, OrderStatus.PARTIALLY_FILLED, NS + 4, detail="ws", filled=D("0.2"))
    await store.transition(buy, OrderStatus.FILLED, NS + 5, detail="ws", average_price=D("100.05"))
    await store.transition(sell, OrderStatus.UNKNOWN, NS + 6, detail="timeout after 5 s")
    await store.transition(sell, OrderStatus.FILLED, NS + 7, detail="resolved by fetch_order", venue_order_id="K-1")
    done = await store.set_intent_status("x1", IntentStatus.DONE, ts=NS + 8, realized_pnl=D("0.39"))

    stored = await store.intent("x1")
    assert stored is not None
    assert stored.intent == written.intent == intent()
    assert stored == done
    assert (stored.status, stored.realized_pnl, stored.realized_ns, stored.final_ns) == (
        IntentStatus.DONE,
        D("0.39"),
        NS + 8,
        NS + 8,
    )
    bought = await store.order(buy)
    assert bought is not None
    assert (bought.intent_id, bought.leg, bought.order.status) == ("x1", 0, OrderStatus.FILLED)
    assert (bought.order.filled, bought.order.average_price, bought.order.venue_order_id) == (
        D("0.5"),
        D("100.05"),
        "B-77",
    )
    assert bought.order.ts_updated == NS + 5
    assert [(e.from_status, e.to_status, e.filled) for e in await store.order_history(buy)] == [
        (None, OrderStatus.NEW, 0),
        (OrderStatus.NEW, OrderStatus.SENT, 0),
        (OrderStatus.SENT, OrderStatus.ACKED, 0),
        (OrderStatus.ACKED, OrderStatus.PARTIALLY_FILLED, D("0.2")),
        (OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED, D("0.5")),
    ]
    sold = await store.order_history(sell)
    assert [e.detail for e in sold] == ["created", "create_order", "timeout after 5 s", "resolved by fetch_order"]
    assert [r.client_id for r in await store.orders_of("x1")] == [buy, sell]
    assert await store.open_orders() == []
    assert await store.open_intents() == []


async def test_an_illegal_transition_is_refused_naming_both_states_and_writes_nothing(store: ExecutionStore) -> None:
    await store.write_intent(intent(), pair())
    await store.transition("x1-0", OrderStatus.SENT, NS + 1, detail="create_order")
    await store.transition("x1-0", OrderStatus.FILLED, NS + 2, detail="ioc")
    before = (await store.order("x1-0"), await store.order_history("x1-0"))

    with pytest.raises(IllegalTransition, match=r"order 'x1-0' transition: filled -> acked"):
        await store.transition("x1-0", OrderStatus.ACKED, NS + 3, detail="late ack", venue_order_id="B-1")
    with pytest.raises(IllegalTransition, match="new -> acked"):
        await store.transition("x1-1", OrderStatus.ACKED, NS + 3, detail="skipped sent")

    assert (await store.order("x1-0"), await store.order_history("x1-0")) == before
    assert len(await store.order_history("x1-1")) == 1


async def test_a_second_intent_of_the_same_id_is_refused_and_adds_nothing(store: ExecutionStore) -> None:
    await store.write_intent(intent(), pair())

    with pytest.raises(DuplicateIntent, match="'x1' is already in the ledger"):
        await store.write_intent(intent(ts=NS + 5), [order("x1-retry-0"), order("x1-retry-1", venue="kraken")])

    assert await store.order("x1-retry-0") is None
    assert await count(store, INTENTS) == 1
    assert await count(store, ORDERS) == 2


async def test_orders_need_a_known_intent_and_unique_client_ids_and_legs(store: ExecutionStore) -> None:
    await store.write_intent(intent(), pair())

    with pytest.raises(RecordNotFound, match="'nope' is not in the ledger"):
        await store.add_orders("nope", [order("n-0")])
    with pytest.raises(DuplicateOrder, match="'x1-0'"):
        await store.add_orders("x1", [order("h-2"), order("x1-0")], legs=[2, 3])
    with pytest.raises(DuplicateOrder, match="leg 1"):
        await store.add_orders("x1", [order("h-1")], legs=[1])
    hedge = await store.add_orders("x1", [order("x1-h2", venue="okx", side=Side.SELL)], legs=[2])

    assert [(r.client_id, r.leg, r.order.status) for r in hedge] == [("x1-h2", 2, OrderStatus.NEW)]
    assert await store.order("h-2") is None
    assert [r.client_id for r in await store.orders_of("x1")] == ["x1-0", "x1-1", "x1-h2"]
    with pytest.raises(RecordNotFound, match="order 'ghost' is not in the ledger"):
        await store.transition("ghost", OrderStatus.SENT, NS, detail="x")


async def test_the_same_trade_id_is_booked_once(store: ExecutionStore, caplog: pytest.LogCaptureFixture) -> None:
    first = fill("t1", "0.5", "100")

    assert await store.book_fill(first) is True
    assert await store.book_fill(first) is False
    assert await store.book_fill(fill("t1", "0.5", "100", venue="kraken", side=Side.SELL)) is True
    assert await store.book_fill(fill("t1", "0.7", "100")) is False  # same venue and id, other numbers: first stands

    assert await count(store, FILLS) == 2
    assert await store.fills("x1-0") == [first, fill("t1", "0.5", "100", venue="kraken", side=Side.SELL)]
    assert (await store.positions())[("binance", "BTC")] == D("0.5")
    assert "ledger.fill_conflict venue=binance trade_id=t1" in caplog.text


async def test_filled_never_decreases_and_never_exceeds_the_amount(store: ExecutionStore) -> None:
    await store.write_intent(intent(), pair())
    cid = "x1-0"
    await store.transition(cid, OrderStatus.SENT, NS + 1, detail="create_order")
    await store.transition(cid, OrderStatus.PARTIALLY_FILLED, NS + 2, detail="ws", filled=D("0.3"))

    with pytest.raises(IllegalFillUpdate, match=r"never decreases \(filled 0.3 -> 0.2"):
        await store.transition(cid, OrderStatus.PARTIALLY_FILLED, NS + 3, detail="stale report", filled=D("0.2"))
    with pytest.raises(IllegalFillUpdate, match=r"overfill.*0.3 -> 0.6, order amount 0.5"):
        await store.transition(cid, OrderStatus.FILLED, NS + 3, detail="ws", filled=D("0.6"))
    with pytest.raises(InvalidRecord, match=r"partially_filled needs 0 < filled < 0.5"):
        await store.transition(cid, OrderStatus.PARTIALLY_FILLED, NS + 3, detail="ws", filled=D("0.5"))
    repeat = await store.transition(cid, OrderStatus.PARTIALLY_FILLED, NS + 4, detail="repeat", filled=D("0.3"))

    assert repeat.order.filled == D("0.3")
    assert repeat.order.ts_updated == NS + 2  # a repeat of the known state writes nothing
    assert len(await store.order_history(cid)) == 3


async def test_concurrent_reports_of_one_order_are_serialised_into_one_consistent_history(url: str) -> None:
    url = make_url(url).difference_update_query(["timeout"]).render_as_string(hide_password=False)  # may wait
    reports = [D(k) / 10 for k in (3, 1, 4, 2, 5, 3, 4)]  # out of order, repeated; 0.5 is the whole order

    async with open_ledger(url) as ledger:
        store = ledger.execution()
        await store.write_intent(intent(), pair())
        await store.transition("x1-0", OrderStatus.SENT, NS, detail="create_order")
        outcomes = await asyncio.gather(
            *(
                store.transition(
                    "x1-0",
                    OrderStatus.FILLED if filled == D("0.5") else OrderStatus.PARTIALLY_FILLED,
                    NS + 1 + i,
                    detail=f"report {i}",
                    filled=filled,
                )
                for i, filled in enumerate(reports)
            ),
            return_exceptions=True,
        )
        history = await store.order_history("x1-0")
        final = await store.order("x1-0")

    assert all(isinstance(o, OrderRecord | IllegalFillUpdate | IllegalTransition) for o in outcomes), outcomes
    assert final is not None
    assert (final.order.status, final.order.filled) == (OrderStatus.FILLED, D("0.5"))
    assert [e.filled for e in history] == sorted(e.filled for e in history)
    for before, after in itertools.pairwise(history):  # each row starts where the one before it ended
        assert after.from_status == before.to_status


async def test_a_fill_after_cancel_corrects_the_cancelled_order(store: ExecutionStore) -> None:
    await store.write_intent(intent(), pair())
    for cid in ("x1-0", "x1-1"):
        await store.transition(cid, OrderStatus.SENT, NS + 1, detail="create_order")
        await store.transition(cid, OrderStatus.ACKED, NS + 2, detail="ack")
        await store.transition(cid, OrderStatus.CANCELLED, NS + 3, detail="cancelled", filled=D("0.1"))

    full = await store.transition("x1-0", OrderStatus.FILLED, NS + 4, detail="fetch_order after cancel: closed")
    partial = await store.transition("x1-1", OrderStatus.CANCELLED, NS + 4, detail="late trade", filled=D("0.4"))

    assert (full.order.status, full.order.filled) == (OrderStatus.FILLED, D("0.5"))
    assert (partial.order.status, partial.order.filled) == (OrderStatus.CANCELLED, D("0.4"))
    with pytest.raises(IllegalTransition, match="cancelled -> partially_filled"):
        await store.transition("x1-1", OrderStatus.PARTIALLY_FILLED, NS + 5, detail="x", filled=D("0.45"))


async def test_positions_are_net_base_and_quote_per_venue_from_fills(store: ExecutionStore) -> None:
    fills = [
        fill("b1", "0.5", "100", fee="0.05"),  # buy 0.5 @ 100, fee 0.05 USDT
        fill("b2", "0.25", "102", fee="0.0001", fee_currency="BTC"),  # buy 0.25 @ 102, fee in base
        fill("s1", "0.3", "103", side=Side.SELL, fee="0.01", fee_currency="BNB"),
        fill("k1", "0.75", "101.5", venue="kraken", side=Side.SELL, fee="0.19"),
    ]
    for f in fills:
        assert await store.book_fill(f)

    assert await store.positions() == {
        ("binance", "BTC"): D("0.5") + D("0.25") - D("0.0001") - D("0.3"),  # 0.4499
        ("binance", "USDT"): -D("50") - D("0.05") - D("25.5") + D("30.9"),  # -44.65
        ("binance", "BNB"): D("-0.01"),
        ("kraken", "BTC"): D("-0.75"),
        ("kraken", "USDT"): D("76.125") - D("0.19"),
    }
    assert (await store.positions())[("binance", "USDT")] == D("-44.65")


async def test_open_orders_and_intents_are_only_those_not_final(store: ExecutionStore) -> None:
    await store.write_intent(intent("x1"), pair("x1"))
    await store.write_intent(intent("x2", ts=NS + 10), [*pair("x2"), order("x2-h", ts=NS + 11)])
    moves = {
        "x1-0": [OrderStatus.SENT, OrderStatus.FILLED],
        "x1-1": [OrderStatus.SENT, OrderStatus.REJECTED],
        "x2-0": [OrderStatus.SENT, OrderStatus.UNKNOWN],
        "x2-1": [OrderStatus.SENT, OrderStatus.ACKED, OrderStatus.CANCELLED],
        "x2-h": [OrderStatus.SENT, OrderStatus.ACKED],
    }
    for cid, statuses in moves.items():
        for i, status in enumerate(statuses):
            await store.transition(cid, status, NS + 20 + i, detail="test")
    await store.set_intent_status("x1", IntentStatus.SENDING, ts=NS + 30)
    await store.set_intent_status("x1", IntentStatus.HEDGING, ts=NS + 31)
    await store.set_intent_status("x1", IntentStatus.HEDGED, ts=NS + 32, realized_pnl=D("-0.2"))

    assert [r.client_id for r in await store.open_orders()] == ["x2-0", "x2-h"]
    assert [r.id for r in await store.open_intents()] == ["x2"]
    with pytest.raises(IllegalTransition, match=r"intent 'x1' transition: hedged -> sending"):
        await store.set_intent_status("x1", IntentStatus.SENDING, ts=NS + 33)
    reopened = await store.set_intent_status("x1", IntentStatus.HEDGING, ts=NS + 34)  # a late fill
    assert (reopened.final_ns, reopened.realized_pnl) == (None, D("-0.2"))
    assert [r.id for r in await store.open_intents()] == ["x1", "x2"]


async def test_the_latest_trading_state_wins_across_a_reopen_of_the_ledger(url: str) -> None:
    async with open_ledger(url) as ledger:
        store = ledger.execution()
        assert await store.load_trading_state() is None
        await store.save_trading_state(TradingState.HALTED, "daily loss limit", "risk", NS)
        await store.save_trading_state("REDUCING", "operator review", "cli:alice", NS + 2)
        await store.save_trading_state("active", "resumed", "api:bob", NS + 1)  # an earlier clock still wins last

    async with open_ledger(url) as ledger:
        state = await ledger.execution().load_trading_state()

    assert state is not None
    assert (state.state, state.reason, state.actor, state.ts_ns) == ("active", "resumed", "api:bob", NS + 1)
    assert TradingState(state.state) is TradingState.ACTIVE  # what arb.risk reads back


async def test_money_round_trips_and_sums_exactly(store: ExecutionStore) -> None:
    long_price = "12345678901234567890.123456789012345678"  # 38 digits: more than a float (or SQLite REAL) holds
    await store.book_fill(fill("a", "0.1", "1"))
    await store.book_fill(fill("b", "0.2", "1"))
    await store.book_fill(fill("c", "0.000000000000000001", long_price, venue="okx"))
    await store.write_intent(intent(), pair())
    await store.set_intent_status("x1", IntentStatus.DONE, ts=NS, realized_pnl=D("0.1"))
    await store.write_intent(intent("x2"), pair("x2"))
    await store.set_intent_status("x2", IntentStatus.DONE, ts=NS + 1, realized_pnl=D("0.2"))

    positions = await store.positions()
    assert positions[("binance", "BTC")] == D("0.3")
    assert str(positions[("binance", "BTC")]) == "0.3"
    assert positions[("okx", "USDT")] == D("-12.345678901234567890123456789012345678")  # beyond Decimal's default 28
    assert [f.price for f in await store.fills() if f.venue == "okx"] == [D(long_price)]
    assert await store.realized_pnl_since(NS) == D("0.3")
    assert await store.realized_pnl_since(NS + 1) == D("0.2")
    assert await store.realized_pnl_since(NS + 2) == 0


async def test_risk_events_are_recorded_and_read_newest_first(store: ExecutionStore) -> None:
    denial = {"symbol": "BTC/USDT", "amount": "0.5", "notional_usd": 12000.0, "client_id": "x1-0"}
    await store.record_risk_event(
        "denied", "max_notional", NS, detail="notional 12000 > 10000", execution_id="x1", data=denial
    )
    last = await store.record_risk_event("kill_switch", "daily_loss", NS + 1, venue="binance")

    events = await store.recent_risk_events(limit=10)

    assert events[0] == last
    assert [(e.kind, e.reason, e.execution_id, e.venue) for e in events] == [
        ("kill_switch", "daily_loss", None, "binance"),
        ("denied", "max_notional", "x1", None),
    ]
    assert events[1].data == denial
    assert last.data == {}
    assert await store.recent_risk_events(limit=1) == [last]


async def test_a_failed_write_ahead_raises_and_leaves_no_intent(db: Database, url: str) -> None:
    async with open_ledger(url) as ledger:
        store = ledger.execution()
        async with db.outage():
            with pytest.raises(LedgerUnavailable, match="ledger write_intent failed"):
                await store.write_intent(intent(), pair())

        assert await store.intent("x1") is None
        assert await store.order("x1-0") is None
        await store.write_intent(intent(), pair())  # the database is back: the same intent goes through once
        assert await store.intent("x1") is not None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"amount": 0.5}, r"order 'x1-0': amount must be a Decimal, got float 0.5"),
        ({"amount": D("NaN")}, r"amount must be a finite Decimal"),
        ({"amount": D("-1")}, r"amount must be positive, got -1"),
        ({"price": None}, "a limit order needs a price"),
        ({"status": OrderStatus.SENT}, "a new order must have status new"),
        ({"ts_created": 0}, "ts_created must be set"),
        ({"side": "long"}, "side must be one of buy/sell, got 'long'"),
    ],
)
async def test_a_bad_order_is_refused_naming_the_field(
    store: ExecutionStore, change: dict[str, object], message: str
) -> None:
    bad = order("x1-0")
    for name, value in change.items():
        setattr(bad, name, value)

    with pytest.raises(InvalidRecord, match=message):
        await store.write_intent(intent(), [bad])

    assert await store.intent("x1") is None


async def test_a_bad_fill_or_transition_value_is_refused_naming_the_field(store: ExecutionStore) -> None:
    await store.write_intent(intent(), pair())

    with pytest.raises(InvalidRecord, match=r"fill binance/t1: fee must be a Decimal, got float"):
        await store.book_fill(msgspec.structs.replace(fill("t1", "1", "1"), fee=0.1))
    with pytest.raises(InvalidRecord, match="symbol must be BASE/QUOTE"):
        await store.book_fill(msgspec.structs.replace(fill("t2", "1", "1"), symbol="US500"))
    with pytest.raises(InvalidRecord, match="new_status must be one of new/sent"):
        await store.transition("x1-0", "done", NS, detail="x")  # type: ignore[arg-type]
    with pytest.raises(InvalidRecord, match=r"filled must be a Decimal, got float"):
        await store.transition("x1-0", OrderStatus.SENT, NS, detail="x", filled=0.1)  # type: ignore[arg-type]
    await store.transition("x1-1", OrderStatus.SENT, NS, detail="create_order", venue_order_id="K-1")
    with pytest.raises(InvalidRecord, match="venue_order_id 'K-2' differs from the recorded 'K-1'"):
        await store.transition("x1-1", OrderStatus.ACKED, NS + 1, detail="ack", venue_order_id="K-2")
    with pytest.raises(InvalidRecord, match="state must be one of ACTIVE/REDUCING/HALTED"):
        await store.save_trading_state("PAUSED", "x", "y", NS)  # type: ignore[arg-type]
    assert await count(store, FILLS) == 0
    assert await count(store, ORDER_EVENTS) == 3  # two creations and the one good transition


async def test_write_aheads_and_other_writes_interleave_without_losing_any(url: str) -> None:
    """The write-ahead runs on the ledger's writer thread (SQLite: its own connection) while order transitions go
    through the async engine: under concurrency every one of them must land, none refused as 'database is locked'."""
    if make_url(url).get_backend_name() == "sqlite":
        url = url.replace("timeout=0.05", "timeout=5")  # the default busy timeout, as a user runs it
    async with open_ledger(url) as ledger:
        store = ledger.execution()

        async def one(k: int) -> None:
            it = msgspec.structs.replace(intent(f"w{k}"), opportunity_id=f"o{k}")
            await store.write_intent(it, pair(f"w{k}"))
            await store.transition(f"w{k}-0", OrderStatus.SENT, NS + 1, detail="sent")

        await asyncio.gather(*(one(k) for k in range(40)))
        assert await count(store, INTENTS) == 40
        assert await count(store, ORDERS) == 80
        assert await count(store, ORDER_EVENTS) == 120  # created x2 and sent x1 per intent
        sent = await store.order("w39-0")
        assert sent is not None
        assert sent.order.status == OrderStatus.SENT


async def test_a_write_ahead_behind_another_writer_waits_for_it_without_blocking_the_loop(tmp_path: Path) -> None:
    """SQLite: the write-ahead's inline attempt never waits for a lock; behind a writer holding it, it waits on the
    writer thread (the event loop keeps running), then lands."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'l.db'}"
    async with open_ledger(url) as ledger:
        store = ledger.execution()
        blocker = sqlite3.connect(tmp_path / "l.db", isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        writing = asyncio.create_task(store.write_intent(intent(), pair()))
        await asyncio.sleep(0.3)
        assert not writing.done()  # still waiting for the lock...
        assert ticks >= 10  # ...and the loop ran meanwhile
        blocker.execute("COMMIT")
        blocker.close()
        await asyncio.wait_for(writing, 5)
        ticker.cancel()
        assert await store.intent("x1") is not None
