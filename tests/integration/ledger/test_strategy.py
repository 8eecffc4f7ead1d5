"""The directional layer's ledger tables (SQLite and PostgreSQL): models, signals (idempotent per hour), positions."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest

from arb.ledger import LedgerUnavailable, open_ledger
from arb.ledger.strategy import ModelRecord, PositionRecord, SignalRecord, StrategyStore

from .conftest import Database

HOUR_NS = 3_600 * 10**9


def signal(asset: str, bar: int, *, direction: int = 1, confidence: float = 0.7) -> SignalRecord:
    return SignalRecord(
        asset=asset, bar_ns=bar * HOUR_NS, model_id="ppo-1", direction=direction, confidence=confidence,
        sentiment=0.25, agent_target=0.8, price=100.0, atr=2.0, size=1.25, notional_usd=125.0, stop=96.0,
        take_profit=106.0, reason="signal",
    )  # fmt: skip


async def test_models_come_back_newest_first_with_config_range_and_metrics(db: Database) -> None:
    async with open_ledger(db.url) as ledger:
        store = StrategyStore(ledger)
        old = ModelRecord(
            id="ppo-a", algo="ppo", path="models/ppo-a", assets=("BTC/USD",), data_from_ns=1, data_to_ns=2,
            config={"window": 24}, metrics={"sharpe": 0.5}, created_ns=10,
        )  # fmt: skip
        await store.record_model(old)
        await store.record_model(msgspec.structs.replace(old, id="sac-b", algo="sac", created_ns=20))

        assert [m.id for m in await store.models()] == ["sac-b", "ppo-a"]
        assert [m.id for m in await store.models(algo="ppo")] == ["ppo-a"]
        assert await store.model("ppo-a") == old
        assert await store.model("nope") is None


async def test_a_rerun_of_the_same_hour_keeps_the_first_signal(db: Database) -> None:
    async with open_ledger(db.url) as ledger:
        store = StrategyStore(ledger)
        (first,) = await store.record_signals([signal("BTC/USD", 1)])
        (again,) = await store.record_signals([signal("BTC/USD", 1, direction=-1, confidence=0.9)])
        await store.record_signals([signal("ETH/USD", 2, direction=0)])

        assert first.id > 0
        assert again == first  # the stored one, not the rerun's
        assert [(s.asset, s.direction) for s in await store.signals()] == [("ETH/USD", 0), ("BTC/USD", 1)]
        assert [s.asset for s in await store.signals(asset="BTC/USD")] == ["BTC/USD"]


async def test_a_position_opens_moves_its_stop_and_closes_once(db: Database) -> None:
    async with open_ledger(db.url) as ledger:
        store = StrategyStore(ledger)
        (sig,) = await store.record_signals([signal("BTC/USD", 1)])
        position = PositionRecord(
            id="d-1", asset="BTC/USD", venue="binance", side="buy", amount=Decimal("0.125"),
            entry_price=Decimal("100.1"), stop=Decimal("96"), take_profit=Decimal("106"),
            trail_distance=Decimal("4"), opened_ns=5, signal_id=sig.id, fees=Decimal("0.01"),
        )  # fmt: skip
        await store.open_position(position)
        await store.update_stop("d-1", Decimal("97.5"))

        assert await store.close_position(
            "d-1", exit_price=Decimal("97.5"), reason="trailing", realized_pnl=Decimal("-0.345"),
            fees=Decimal("0.02"), ts_ns=9,
        )  # fmt: skip
        assert not await store.close_position(
            "d-1", exit_price=Decimal("1"), reason="signal", realized_pnl=Decimal("0"), fees=Decimal("0"), ts_ns=10
        )
        (closed,) = await store.positions()
        assert closed.stop == Decimal("97.5")
        assert (closed.exit_price, closed.close_reason, closed.realized_pnl) == (
            Decimal("97.5"),
            "trailing",
            Decimal("-0.345"),
        )
        assert await store.positions(open_only=True) == []


async def test_a_write_during_an_outage_names_the_operation(db: Database) -> None:
    async with open_ledger(db.url) as ledger:
        store = StrategyStore(ledger)
        async with db.outage():
            with pytest.raises(LedgerUnavailable, match="record_signals"):
                await store.record_signals([signal("BTC/USD", 1)])
