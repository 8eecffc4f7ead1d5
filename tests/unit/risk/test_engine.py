"""The risk engine: trading-state machine, kill switch, escalation on loss, persistence across restarts, denials as
events, and failing closed when its store fails."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from arb.model import Side
from arb.risk import (
    Approved,
    DenialRecord,
    Denied,
    DenyReason,
    MemoryEventSink,
    MemoryStateStore,
    OrderIntent,
    RiskContext,
    RiskEngine,
    TradingState,
    TradingStateRecord,
)

from .support import NOW, SETTINGS, context, order


class Clock:
    """UTC ns that moves 1 ms per reading."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> int:
        self.now += 1_000_000
        return self.now


class FlakyStore(MemoryStateStore):
    """An in-memory store whose next `fail` saves raise, as a database that went away would."""

    def __init__(self, records: list[TradingStateRecord] | None = None) -> None:
        super().__init__(records)
        self.fail = 0

    async def save(self, record: TradingStateRecord) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("database unreachable")
        await super().save(record)


class FlakySink(MemoryEventSink):
    def __init__(self) -> None:
        super().__init__()
        self.fail = 0

    async def record_denial(self, event: DenialRecord) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("database unreachable")
        await super().record_denial(event)


def engine(
    store: MemoryStateStore | None = None, sink: MemoryEventSink | None = None, max_pending_events: int = 10_000
) -> RiskEngine:
    return RiskEngine(
        SETTINGS,
        store or MemoryStateStore(),
        sink or MemoryEventSink(),
        clock=Clock(),
        max_pending_events=max_pending_events,
    )


HEDGE = order(intent=OrderIntent.HEDGE, side=Side.SELL)
"""Sells 0.01 BTC against a long BTC position: risk-reducing."""


def long_btc() -> RiskContext:
    return context(exposure_usd={"BTC": 600.0})


async def test_a_first_start_is_active_and_persists_that() -> None:
    store = MemoryStateStore()

    async with engine(store) as risk:
        assert risk.state is TradingState.ACTIVE
        assert isinstance(risk.check(order(), context()), Approved)

    assert [r.state for r in store.records] == [TradingState.ACTIVE]


async def test_kill_switch_on_denies_new_orders_and_lets_hedges_and_cancels_through() -> None:
    store, sink = MemoryStateStore(), MemoryEventSink()
    async with engine(store, sink) as risk:
        ctx = long_btc()

        record = await risk.set_state(TradingState.HALTED, reason="venue incident", actor="alice")
        new = risk.check(order(), ctx)
        hedge = risk.check(HEDGE, ctx)
        cancel = risk.check(order(intent=OrderIntent.CANCEL), ctx)

    assert record.state is TradingState.HALTED
    assert isinstance(new, Denied)
    assert new.reason is DenyReason.HALTED
    assert isinstance(hedge, Approved)
    assert isinstance(cancel, Approved)
    assert store.records[-1] == record
    assert (record.actor, record.reason) == ("alice", "venue incident")
    assert [d.reason for d in sink.denials] == [DenyReason.HALTED]


async def test_active_to_reducing_to_halted_each_admitting_less() -> None:
    async with engine() as risk:
        ctx = long_btc()

        assert isinstance(risk.check(order(), ctx), Approved)
        await risk.set_state(TradingState.REDUCING, reason="wind down before maintenance", actor="ops")
        in_reducing = risk.check(order(), ctx)
        unwind_in_reducing = risk.check(order(intent=OrderIntent.UNWIND, side=Side.SELL), ctx)
        await risk.set_state(TradingState.HALTED, reason="maintenance", actor="ops")
        in_halted = risk.check(order(), ctx)
        hedge_in_halted = risk.check(HEDGE, ctx)

    assert isinstance(in_reducing, Denied)
    assert in_reducing.reason is DenyReason.REDUCING_ONLY
    assert isinstance(unwind_in_reducing, Approved)
    assert isinstance(in_halted, Denied)
    assert in_halted.reason is DenyReason.HALTED
    assert isinstance(hedge_in_halted, Approved)


async def test_reducing_denies_an_increasing_order_and_allows_a_reducing_one() -> None:
    async with engine() as risk:
        await risk.set_state(TradingState.REDUCING, reason="wind down", actor="ops")
        ctx = context(exposure_usd={"BTC": -600.0})

        increasing = risk.check(order(side=Side.SELL), ctx)
        reducing = risk.check(order(intent=OrderIntent.HEDGE), ctx)

    assert isinstance(increasing, Denied)
    assert increasing.reason is DenyReason.REDUCING_ONLY
    assert isinstance(reducing, Approved)


async def test_daily_loss_reached_halts_trading_at_once_and_persists_it() -> None:
    store, sink = MemoryStateStore(), MemoryEventSink()
    async with engine(store, sink) as risk:
        result = risk.check(order(), context(realized_pnl_today_usd=Decimal("-100")))
        state_right_after = risk.state
        later = risk.check(order(), context())  # PnL fine again (say, a correction): still halted
        hedge = risk.check(HEDGE, long_btc())
        await risk.flush()

    assert isinstance(result, Denied)
    assert result.reason is DenyReason.DAILY_LOSS
    assert state_right_after is TradingState.HALTED
    assert isinstance(later, Denied)
    assert later.reason is DenyReason.HALTED
    assert isinstance(hedge, Approved)
    halted = store.records[-1]
    assert halted.state is TradingState.HALTED
    assert halted.actor == "risk"
    assert halted.reason.startswith("daily_loss: realized PnL today -100 USD")
    assert [d.reason for d in sink.denials] == [DenyReason.DAILY_LOSS, DenyReason.HALTED]


async def test_unknown_pnl_denies_and_halts() -> None:
    store = MemoryStateStore()
    async with engine(store) as risk:
        result = risk.check(order(), context(realized_pnl_today_usd=None))

    assert isinstance(result, Denied)
    assert result.reason is DenyReason.PNL_UNKNOWN
    assert store.records[-1].state is TradingState.HALTED
    assert store.records[-1].reason.startswith("pnl_unknown")


async def test_drawdown_reached_halts() -> None:
    async with engine() as risk:
        risk.check(order(), context(equity_usd=Decimal("9500"), peak_equity_usd=Decimal("10000")))

        assert risk.state is TradingState.HALTED


async def test_assess_halts_on_a_loss_even_with_no_order_in_sight() -> None:
    async with engine() as risk:
        fine = risk.assess(context())
        breached = risk.assess(context(realized_pnl_today_usd=Decimal("-150")))

        assert fine is None
        assert isinstance(breached, Denied)
        assert breached.reason is DenyReason.DAILY_LOSS
        assert risk.state is TradingState.HALTED


async def test_the_engine_never_loosens_on_its_own_and_keeps_the_operators_reason() -> None:
    async with engine() as risk:
        await risk.set_state(TradingState.HALTED, reason="manual", actor="alice")

        risk.check(order(), context(realized_pnl_today_usd=Decimal("-500")))

        assert (risk.record.reason, risk.record.actor) == ("manual", "alice")


async def test_a_halted_state_survives_a_restart() -> None:
    store = MemoryStateStore()
    async with engine(store) as first:
        first.check(order(), context(realized_pnl_today_usd=Decimal("-100")))
        assert first.state is TradingState.HALTED

    async with engine(store) as second:
        state = second.state
        result = second.check(order(), context())

    assert state is TradingState.HALTED
    assert isinstance(result, Denied)
    assert result.reason is DenyReason.HALTED


async def test_kill_switch_off_is_persisted_and_survives_a_restart() -> None:
    store = MemoryStateStore()
    async with engine(store) as first:
        await first.set_state(TradingState.HALTED, reason="incident", actor="alice")
        await first.set_state(TradingState.ACTIVE, reason="incident resolved", actor="bob")

    async with engine(store) as second:
        assert second.state is TradingState.ACTIVE
        assert second.record.actor == "bob"
        assert isinstance(second.check(order(), context()), Approved)


async def test_leaving_halted_fails_closed_when_the_store_cannot_save() -> None:
    store = FlakyStore()
    async with engine(store) as risk:
        await risk.set_state(TradingState.HALTED, reason="incident", actor="alice")
        store.fail = 1

        with pytest.raises(ConnectionError):
            await risk.set_state(TradingState.ACTIVE, reason="resolved", actor="bob")

        assert risk.state is TradingState.HALTED


async def test_kill_switch_on_holds_in_memory_when_the_store_fails_and_is_persisted_once_it_recovers() -> None:
    store = FlakyStore()
    async with engine(store) as risk:
        store.fail = 1

        with pytest.raises(ConnectionError):
            await risk.set_state(TradingState.HALTED, reason="incident", actor="alice")

        assert risk.state is TradingState.HALTED
        assert not risk.persisted
        await asyncio.wait_for(risk.flush(), 5)

    assert risk.persisted
    assert store.records[-1].state is TradingState.HALTED


async def test_an_escalation_whose_save_fails_is_retried_until_stored() -> None:
    store = FlakyStore()
    async with engine(store) as risk:
        store.fail = 2
        risk.check(order(), context(realized_pnl_today_usd=None))
        await asyncio.wait_for(risk.flush(), 5)

    assert store.records[-1].state is TradingState.HALTED


async def test_a_store_that_cannot_load_stops_the_engine_from_starting() -> None:
    class Broken(MemoryStateStore):
        async def load(self) -> TradingStateRecord | None:
            raise ConnectionError("database unreachable")

    risk = engine(Broken())

    with pytest.raises(ConnectionError):
        async with risk:
            pass  # pragma: no cover - never reached
    with pytest.raises(RuntimeError, match="inside `async with`"):
        risk.check(order(), context())


async def test_denials_are_recorded_as_events_with_the_order_and_the_state() -> None:
    sink = MemoryEventSink()
    async with engine(sink=sink) as risk:
        risk.check(order(notional_usd=1500.0, client_id="abc"), context())
        await risk.flush()

    [event] = sink.denials
    assert event.reason is DenyReason.NOTIONAL_ORDER
    assert "max_order_notional_usd" in event.detail
    assert (event.venue, event.symbol, event.side, event.intent) == ("binance", "BTC/USDT", "buy", "open")
    assert (event.amount, event.notional_usd, event.execution_id, event.client_id) == ("0.01", 1500.0, "e1", "abc")
    assert event.state is TradingState.ACTIVE
    assert event.ts_ns > NOW
    assert risk.denials_by_reason == {DenyReason.NOTIONAL_ORDER: 1}


async def test_denial_events_survive_a_failing_sink_in_order() -> None:
    sink = FlakySink()
    async with engine(sink=sink) as risk:
        sink.fail = 2
        for notional in (1001.0, 1002.0, 1003.0):
            risk.check(order(notional_usd=notional), context())
        await asyncio.wait_for(risk.flush(), 5)

    assert [d.notional_usd for d in sink.denials] == [1001.0, 1002.0, 1003.0]


async def test_events_beyond_the_pending_bound_are_counted_as_dropped() -> None:
    sink = MemoryEventSink()
    async with engine(sink=sink, max_pending_events=2) as risk:
        for _ in range(5):  # no await between: the writer cannot run
            risk.check(order(notional_usd=2000.0), context())
        dropped = risk.dropped_events

    assert dropped == 3
    assert len(sink.denials) == 2


async def test_an_engine_is_entered_once() -> None:
    risk = engine()
    async with risk:
        with pytest.raises(RuntimeError, match="entered once"):
            await risk.__aenter__()

    with pytest.raises(RuntimeError, match="closed"):
        risk.check(order(), context())


async def test_a_state_change_needs_a_reason_and_an_actor() -> None:
    async with engine() as risk:
        with pytest.raises(ValueError, match="reason"):
            await risk.set_state(TradingState.HALTED, reason=" ", actor="alice")
        with pytest.raises(ValueError, match="actor"):
            await risk.set_state(TradingState.HALTED, reason="x", actor="")

        assert risk.state is TradingState.ACTIVE


async def test_a_kill_switch_persisted_by_another_process_is_adopted_by_the_running_engine() -> None:
    store = MemoryStateStore()
    async with RiskEngine(SETTINGS, store, MemoryEventSink(), clock=Clock(), poll_interval_s=0.01) as risk:
        cli = TradingStateRecord(state=TradingState.HALTED, reason="from the CLI", ts_ns=NOW + 10**9, actor="alice")
        await store.save(cli)  # what `arb kill-switch on` in another process does

        for _ in range(200):
            if risk.state is TradingState.HALTED:
                break
            await asyncio.sleep(0.01)
        result = risk.check(order(), context())

    assert risk.record == cli
    assert isinstance(result, Denied)
    assert result.reason is DenyReason.HALTED


async def test_an_older_or_looser_stored_state_does_not_override_an_unpersisted_halt() -> None:
    store = FlakyStore()
    async with engine(store) as risk:
        store.fail = 1000  # the database is down: the halt below stays in memory only
        risk.check(order(), context(realized_pnl_today_usd=None))
        store.records.append(
            TradingStateRecord(state=TradingState.ACTIVE, reason="off", ts_ns=NOW + 10**12, actor="bob")
        )

        after = await risk.refresh()
        store.fail = 0

    assert after.state is TradingState.HALTED
