"""Execution benchmark: opportunity -> both legs sent latency, and risk checks per second. Prints ONE JSON object
(`./run bench execution [--quick]`).

Set-up, all real: two local venues in this process (Binance and OKX formats, books holding still), the real ccxt REST
classes through `arb.connectors.orders.CcxtGateway` with the sims' default accounts, a SQLite ledger on disk (the
write-ahead intent is committed before any order leaves), the risk engine on that ledger, and the `Executor`. The
opportunities are synthetic in their *edge* only (each states a net edge above the threshold, buy at one venue's best
ask, sell at the other's best bid), so every execution really sends two IOC orders that fill; the order-rate limits
(the risk engine's 5/s and the venues' order-count windows) are lifted for the run, since pacing is not what is
measured here.

Measured:

* `send_latency_ms` p50/p99: from `Executor.execute()` being called to both orders handed to their gateways
  (`Outcome.send_latency_us`): re-check, sizing, precision, two risk checks, the ledger write-ahead, dispatch. Venue
  time is excluded (the clock stops before the HTTP requests go out). Target (issue 5): p99 <= 5 ms. The write-ahead
  is most of it: one transaction, inline on a connection of its own (`Ledger.write_now`); `ledger_write_ms` gives
  its own p50/p99.
* baseline, in the same run: the same steps with the legs sent one after the other (the second leaves when the
  first answered), as a sequential script would: `baseline_send_latency_ms` and `speedup_vs_sequential` (p50 ratio).
* `risk_checks_per_s`: `RiskEngine.check` on the executor's own order requests, with the funds it reserves released
  again (the check as the executor calls it). Target: >= 50,000/s. `bench/risk_checks.py` measures the check alone
  over a broad mix of orders.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from arb.config import load_settings
from arb.connectors.ccxt_pro import LocalEndpoint
from arb.connectors.orders import CcxtGateway
from arb.executor.engine import Executor
from arb.executor.ids import client_id, execution_id
from arb.executor.venue import Top
from arb.hedging.hedger import Hedger
from arb.ledger import open_ledger
from arb.logs import configure_logging
from arb.model import ExecutionIntent, Leg, Opportunity, Order, OrderType, Side, TimeInForce
from arb.procs import freeze_heap
from arb.risk import RiskContext, RiskEngine
from arb.risk.ledger import LedgerEventSink, LedgerStateStore
from arb.sim.market import MarketConfig
from arb.sim.server import SimExchangeGroup
from arb.trading import local_credentials

VENUES = ("binance", "okx")
INSTRUMENTS = ("BTC/USD", "ETH/USD", "SOL/USD", "XRP/USD", "DOGE/USD", "ADA/USD")


def progress(msg: str) -> None:
    sys.stderr.write(f"bench.execution: {msg}\n")


class BookPrices:
    """PriceView on the venues' own books (the executor's view of them, without the grid)."""

    def __init__(self, group: SimExchangeGroup, settings: Any) -> None:
        self.group, self.settings = group, settings

    def top(self, instrument: str, venue: str) -> Top | None:
        symbol = self.settings.instruments[instrument].venues.get(venue)
        if symbol is None:
            return None
        bid, _bq, ask, _aq = self.group.venues[venue].book_for_symbol(symbol).top()
        return Top(bid, ask, 1.0)


class TimedStore:
    """The ExecutionStore, with the time each write-ahead (`write_intent`) took recorded."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.write_ms: list[float] = []

    async def write_intent(self, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await self.store.write_intent(*args, **kwargs)
        finally:
            self.write_ms.append((time.perf_counter() - t0) * 1e3)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def opportunity(settings: Any, prices: BookPrices, instrument: str, n: int) -> Opportunity:
    buy, sell = VENUES if n % 2 == 0 else VENUES[::-1]
    a, b = prices.top(instrument, buy), prices.top(instrument, sell)
    if a is None or b is None:
        raise RuntimeError(f"{instrument}: no book on {buy} or {sell}")
    size = 400.0 / a.ask  # ~400 USD: inside the order cap
    return Opportunity(
        id=f"bench:{instrument}:{buy}>{sell}:{n}", instrument=instrument, buy_venue=buy, sell_venue=sell,
        quote_currency="USD", size=size, notional=size * a.ask, best_ask_buy=a.ask, best_bid_sell=b.bid,
        vwap_buy=a.ask, vwap_sell=b.bid, gross_spread=0.003, fee_buy=0.001, fee_sell=0.001, gas=0.0, haircut=0.0,
        slippage=0.0, net_edge=0.002, expected_profit=1.0, liquidity_score=1.0, execution_time_s=0.05,
        risk_factor=1.0, priority=1.0, buy_quote_age_ms=1.0, sell_quote_age_ms=1.0,
    )  # fmt: skip


async def sequential(executor: Executor, opp: Opportunity) -> float:
    """Baseline: the same plan, legs sent one after the other; ms until the second order is handed over."""
    started = time.perf_counter()
    ex_id = execution_id(opp.id, attempt=1)
    settings = executor.settings
    orders = []
    for k, (venue, side, px) in enumerate(
        ((opp.buy_venue, Side.BUY, opp.best_ask_buy), (opp.sell_venue, Side.SELL, opp.best_bid_sell))
    ):
        gw = executor.gateways[venue]
        symbol = settings.instruments[opp.instrument].venues[venue]
        price = gw.price_to_precision(symbol, Decimal(repr(px)) * (Decimal("1.0005") if k == 0 else Decimal("0.9995")))
        amount = gw.amount_to_precision(symbol, Decimal(repr(opp.size)))
        now = time.time_ns()
        orders.append(Order(client_id=client_id(ex_id, k), venue=venue, symbol=symbol, side=side,
                            type=OrderType.LIMIT, amount=amount, price=price, time_in_force=TimeInForce.IOC,
                            ts_created=now, ts_updated=now))  # fmt: skip
    amount = min(o.amount for o in orders)
    for o in orders:
        o.amount = amount
    legs = tuple(
        Leg(venue=o.venue, instrument=opp.instrument, symbol=o.symbol, side=o.side, amount=amount,
            limit_price=o.price or Decimal(0))
        for o in orders
    )  # fmt: skip
    intent = ExecutionIntent(id=ex_id, opportunity_id=opp.id + "#seq", instrument=opp.instrument, legs=legs,
                             predicted_net_edge_bps=20.0, predicted_profit=0.0, ts=time.time_ns())  # fmt: skip
    await executor.store.write_intent(intent, orders)
    await executor.gateways[orders[0].venue].create_order(orders[0])
    second = asyncio.ensure_future(executor.gateways[orders[1].venue].create_order(orders[1]))
    elapsed = (time.perf_counter() - started) * 1e3
    await second
    return elapsed


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="arb-bench-exec-"))
    config = work / "bench.yaml"
    config.write_text(
        "risk:\n  max_orders_per_s: 100000\n  max_concurrent_executions: 100\n"
        + "venues:\n"
        + "".join(f"  {v}: {{order_rate_limits: []}}\n" for v in VENUES)
    )
    settings = load_settings(config)
    group = SimExchangeGroup.from_settings(settings, VENUES, config=MarketConfig(seed=7), run_market=False)
    async with group, open_ledger(f"sqlite+aiosqlite:///{work / 'ledger.db'}") as ledger:
        group.market.step()
        store = TimedStore(ledger.execution())
        prices = BookPrices(group, settings)
        gateways: dict[str, Any] = {}
        async with RiskEngine(settings.risk, LedgerStateStore(store), LedgerEventSink(store)) as risk:
            for vid in VENUES:
                v = group.venues[vid]
                gw = CcxtGateway(vid, settings.venues[vid], local_credentials(vid, v.protocol.name),
                                 endpoint=LocalEndpoint(v.http_url, v.ws_url), ccxt_id=v.protocol.name)  # fmt: skip
                gateways[vid] = await gw.__aenter__()
            try:
                context = RiskContext(
                    venue_state=dict.fromkeys(VENUES, "connected"), realized_pnl_today_usd=Decimal(0),
                    equity_usd=Decimal(10**7), peak_equity_usd=Decimal(10**7),
                )  # fmt: skip
                hedger = Hedger(settings, gateways=gateways, prices=prices, risk=risk, context=context)
                executor = Executor(settings, gateways=gateways, store=store, risk=risk, context=context,
                                    prices=prices, hedger=hedger)  # fmt: skip
                await executor.start()
                freeze_heap()  # as `arb run` does once its stack is up: long-lived objects out of full collections
                n = args.executions
                progress(f"{n} executions, concurrent legs")
                store.write_ms.clear()  # start-up writes are not part of it
                lat: list[float] = []
                statuses: dict[str, int] = {}
                for k in range(n):
                    opp = opportunity(settings, prices, INSTRUMENTS[k % len(INSTRUMENTS)], k)
                    await asyncio.sleep(args.gap_ms / 1e3)
                    out = await executor.execute(opp)
                    statuses[out.status] = statuses.get(out.status, 0) + 1
                    if out.send_latency_us is not None:
                        lat.append(out.send_latency_us / 1e3)
                writes = sorted(store.write_ms)
                progress(f"{n} executions, sequential legs (baseline)")
                base = [
                    await sequential(executor, opportunity(settings, prices, INSTRUMENTS[k % len(INSTRUMENTS)], k))
                    for k in range(n)
                ]
                progress("risk checks")
                checks_per_s = await risk_rate(executor, settings, prices, args.checks)
            finally:
                for gw in gateways.values():
                    await gw.__aexit__(None, None, None)
    lat.sort()
    base.sort()
    p50, p99 = pct(lat, 0.50), pct(lat, 0.99)
    return {
        "send_latency_ms": {"p50": round(p50, 3), "p99": round(p99, 3), "max": round(lat[-1], 3)},
        "ledger_write_ms": {"p50": round(pct(writes, 0.5), 3), "p99": round(pct(writes, 0.99), 3)},
        "baseline_send_latency_ms": {"p50": round(pct(base, 0.5), 3), "p99": round(pct(base, 0.99), 3)},
        "speedup_vs_sequential": round(pct(base, 0.5) / p50, 2),
        "risk_checks_per_s": round(checks_per_s),
        "executions": n,
        "statuses": statuses,
        "ok": {"send_p99_le_5ms": p99 <= 5.0, "risk_checks_ge_50k": checks_per_s >= 50_000},
        "quick": args.quick,
        "env": {"python": platform.python_version(), "ledger": "sqlite (file)"},
    }


async def risk_rate(executor: Executor, settings: Any, prices: BookPrices, n: int) -> float:
    plans: list[Any] = []
    for k in range(len(INSTRUMENTS) * 2):
        plan = executor._plan(opportunity(settings, prices, INSTRUMENTS[k % len(INSTRUMENTS)], k), f"ex{k}")
        if isinstance(plan, str):
            raise RuntimeError(f"cannot plan the benchmark's orders: {plan}")
        plans.extend(plan.requests)
    risk, ctx = executor.risk, executor.context
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        for k in range(n):
            verdict = risk.check(plans[k % len(plans)], ctx)
            if verdict.asset:  # type: ignore[union-attr]
                ctx.reserve(plans[k % len(plans)].venue, verdict.asset, -verdict.amount)  # type: ignore[union-attr]
        runs.append(n / (time.perf_counter() - t0))
    return statistics.median(runs)


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="30 executions instead of 200")
    parser.add_argument("--executions", type=int, default=None)
    parser.add_argument("--gap-ms", type=float, default=0.0, help="pause before each execution (default 0)")
    parser.add_argument("--checks", type=int, default=None, help="risk checks per timed run (default 50000)")
    args = parser.parse_args()
    args.executions = args.executions or (30 if args.quick else 200)
    args.checks = args.checks or (10_000 if args.quick else 50_000)
    configure_logging("WARNING")
    print(json.dumps(asyncio.run(run(args))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
