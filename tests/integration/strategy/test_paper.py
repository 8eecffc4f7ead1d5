"""The directional paper book on a real SQLite ledger: open from a signal, stop / take-profit / trailing stop on later
bars, close on a contradicting signal; booked with the env's cost model and never in arbitrage inventory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from arb.config.schema import RLSettings
from arb.ledger import open_ledger
from arb.ledger.strategy import SignalRecord, StrategyStore
from arb.strategy.paper import Bar, PaperBook
from arb.strategy.rl.costs import trade_cost

HOUR = 3_600 * 10**9
RL = RLSettings(taker_fee=0.001, slippage_bps=0.0)  # 10 bps a side, no slippage: round numbers


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[StrategyStore]:
    async with open_ledger(f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}") as ledger:
        yield StrategyStore(ledger)


async def stored(store: StrategyStore, direction: int, bar: int, price: float = 100.0) -> SignalRecord:
    (s,) = await store.record_signals(
        [
            SignalRecord(
                asset="BTC/USD", bar_ns=bar * HOUR, model_id="m", direction=direction, confidence=0.7, sentiment=0.0,
                agent_target=float(direction), price=price, atr=2.0, size=10.0 if direction else 0.0,
                notional_usd=10.0 * price if direction else 0.0, stop=price - 4.0 * direction if direction else None,
                take_profit=price + 6.0 * direction if direction else None, reason="sized" if direction else "flat",
            )
        ]
    )  # fmt: skip
    return s


def bar(n: int, o: float, h: float, low: float, c: float) -> Bar:
    return Bar(ts_ns=n * HOUR, open=o, high=h, low=low, close=c)


async def test_a_long_trails_its_stop_then_is_stopped_out_at_the_stop(store: StrategyStore) -> None:
    book = PaperBook(store, rl=RL, venue="binance")
    opened = await book.apply(await stored(store, 1, 1))
    assert opened is not None
    assert opened.fees == Decimal(repr(trade_cost(1_000.0, RL)))  # 10 units at 100, 10 bps: 1.0

    assert await book.on_bar("BTC/USD", bar(2, 100, 103, 99, 102)) is None  # trail: 103 - 4 = 99 > 96
    assert (await book.open_positions())["BTC/USD"].stop == Decimal("99.0")
    closed = await book.on_bar("BTC/USD", bar(3, 101, 101.5, 98, 98.5))

    assert closed is not None
    assert (closed.close_reason, closed.exit_price) == ("stop", Decimal("99.0"))
    # (99 - 100) x 10 = -10, fees 1.0 in + 0.99 out
    assert closed.realized_pnl == Decimal(repr(-10.0 - 1.0 - 0.99))
    assert await book.open_positions() == {}


async def test_a_short_takes_profit_and_a_gap_fills_at_the_open(store: StrategyStore) -> None:
    book = PaperBook(store, rl=RL, venue="binance")
    await book.apply(await stored(store, -1, 1))
    closed = await book.on_bar("BTC/USD", bar(2, 93, 93.5, 92, 92.5))  # gapped below the 94 take-profit

    assert closed is not None
    assert (closed.close_reason, closed.exit_price) == ("take_profit", Decimal("93.0"))
    assert closed.realized_pnl == Decimal(repr(70.0 - 1.0 - 0.93))


async def test_a_contradicting_signal_closes_then_opens_the_other_side(store: StrategyStore) -> None:
    book = PaperBook(store, rl=RL, venue="binance")
    await book.apply(await stored(store, 1, 1))
    flipped = await book.apply(await stored(store, -1, 2, price=101.0))

    assert flipped is not None
    assert flipped.side == "sell"
    positions = await store.positions()
    assert [(p.side, p.close_reason) for p in positions] == [("buy", "signal"), ("sell", None)]
    assert positions[0].realized_pnl == Decimal(repr(10.0 - 1.0 - 1.01))


async def test_a_flat_signal_closes_and_opens_nothing(store: StrategyStore) -> None:
    book = PaperBook(store, rl=RL, venue="binance")
    await book.apply(await stored(store, 1, 1))
    assert await book.apply(await stored(store, 0, 2)) is None
    assert await book.open_positions() == {}


async def test_a_bar_before_the_entry_cannot_stop_a_position(store: StrategyStore) -> None:
    book = PaperBook(store, rl=RL, venue="binance")
    await book.apply(await stored(store, 1, 5))
    assert await book.on_bar("BTC/USD", bar(5, 100, 100, 50, 60)) is None
    assert "BTC/USD" in await book.open_positions()


async def test_an_unstored_signal_is_refused(store: StrategyStore) -> None:
    book = PaperBook(store, rl=RL, venue="binance")
    s = await stored(store, 1, 1)
    with pytest.raises(ValueError, match="ledger"):
        await book.apply(SignalRecord(**{**{f: getattr(s, f) for f in s.__struct_fields__}, "id": 0}))


async def test_with_the_kill_switch_on_a_signal_closes_but_opens_nothing(store: StrategyStore) -> None:
    book = PaperBook(store, rl=RL, venue="binance")
    await book.apply(await stored(store, 1, 1))
    assert await book.apply(await stored(store, -1, 2, price=101.0), trading_state="halted") is None

    (closed,) = await store.positions()
    assert closed.close_reason == "signal"
    assert await book.open_positions() == {}
