"""The trading loop's scheduling: best priority first, at most `max_concurrent`, one execution per base asset."""

from __future__ import annotations

import asyncio

from arb.executor.engine import Outcome
from arb.executor.loop import TradingLoop
from arb.model import Opportunity, OpportunityEvent


def opp(oid: str, instrument: str, priority: float) -> Opportunity:
    return Opportunity(
        id=oid, instrument=instrument, buy_venue="binance", sell_venue="okx", quote_currency="USDT", size=1.0,
        best_ask_buy=1.0, best_bid_sell=1.01, vwap_buy=1.0, vwap_sell=1.01, gross_spread=0.01, fee_buy=0.001,
        fee_sell=0.001, gas=0.0, haircut=0.0, slippage=0.0, net_edge=0.008, expected_profit=0.008,
        liquidity_score=1.0, execution_time_s=0.1, risk_factor=1.0, priority=priority, buy_quote_age_ms=1.0,
        sell_quote_age_ms=1.0,
    )  # fmt: skip


class RecordingExecutor:
    """Stands in for the executor (the loop is what is tested): records which executions overlap."""

    def __init__(self) -> None:
        self.running: set[str] = set()
        self.overlaps: list[tuple[str, ...]] = []
        self.order: list[str] = []

    async def execute(self, o: Opportunity) -> Outcome:
        self.order.append(o.id)
        self.running.add(o.instrument)
        self.overlaps.append(tuple(sorted(self.running)))
        await asyncio.sleep(0.05)
        self.running.discard(o.instrument)
        return Outcome(execution_id=o.id, opportunity_id=o.id, instrument=o.instrument, buy_venue=o.buy_venue,
                       sell_venue=o.sell_venue, status="done")  # fmt: skip


def opened(o: Opportunity) -> OpportunityEvent:
    return OpportunityEvent(type="opened", opportunity=o, opened_ns=1, ts=1, peak_net_edge=o.net_edge)


async def test_two_opportunities_of_one_asset_never_run_at_once_but_other_assets_do() -> None:
    ex = RecordingExecutor()
    async with TradingLoop(ex, max_concurrent=3) as loop:  # type: ignore[arg-type]
        for o in (opp("a", "BTC/USD", 3.0), opp("b", "BTC/EUR", 2.0), opp("c", "ETH/USD", 1.0)):
            loop.offer(opened(o))
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(loop.outcomes) == 3:
                break
    assert ex.order == ["a", "c", "b"], (ex.order, ex.overlaps)  # "b" waited for "a", the other BTC one
    assert ex.order[:2] == ["a", "c"]  # best first; "c" went beside "a" (another asset)
    assert not any("BTC/EUR" in run and "BTC/USD" in run for run in ex.overlaps)
    assert any(len(run) == 2 for run in ex.overlaps)  # different assets did overlap
