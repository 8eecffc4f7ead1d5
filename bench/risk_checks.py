"""Risk-check benchmark: pre-trade checks per second over a realistic mix of approved and denied orders. Prints ONE
JSON object on stdout (`python bench/risk_checks.py [--quick]`).

The account, seeded: 15 venues (one of them `stale`), 40 base assets quoted in USDT, balances of every asset on every
venue with a part reserved by orders in flight, open notional on some instruments and venues, a net exposure on a
few assets, one execution in flight, 0..4 orders sent in the last second on each venue (5, its limit, on one), PnL
known and inside its limits (so no check halts the run). The orders: 85 % opening legs (log-normal notional around
400 USD, so some exceed the 1,000 USD order limit; exponential quote ages around 200 ms, so some are stale), 12 %
hedges against the held exposure (some on the wrong side), 3 % cancels; the mix is reported (`mix`), about two thirds
approved. The limits are the shipped defaults (`RiskSettings()`).

Measured, each as the median of several runs over all the orders (after a warm-up run; `time.perf_counter_ns`):

* risk_checks_per_s: `arb.risk.check` (the pure check: what the figure of the issue is about);
* engine_checks_per_s: `RiskEngine.check`, what the executor calls: the clock, the trading state, and for each denial
  a queued event (the writer task persists them between runs, outside the timing);
* baseline_checks_per_s: `arb.risk.reference.reference_check`: the same rules written the obvious way (Decimal for
  every USD figure, limits read from the settings and converted on every call, a list of rule functions, gross
  exposure re-summed, the order rate counted over every remembered send time). It is also the oracle the unit tests
  compare the fast check with, so `speedup_vs_baseline` is what the hot-path choices buy over a correct,
  straightforward version, not over a strawman;
* check_us: per-order latency of `arb.risk.check` (p50 / p99 / max over one pass, each call timed alone: includes
  ~0.1 µs of timer overhead);
* agree: the fast check and the reference decided every order alike (approval, first reason, escalation).

Target (issue): >= 50,000 checks/s; `ok` is true when both the pure check and the engine reach it. Exit status 0
when the benchmark ran and the two implementations agree, 1 when they disagree. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections import Counter, deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np

from arb.config.schema import RiskSettings
from arb.model import Side
from arb.risk import (
    Approved,
    Denied,
    MemoryEventSink,
    MemoryStateStore,
    OrderIntent,
    OrderRequest,
    RiskContext,
    RiskEngine,
    RiskLimits,
    check,
)
from arb.risk.checks import ORDER_RATE_WINDOW_NS
from arb.risk.reference import reference_check

TARGET_CHECKS_PER_S = 50_000
N_VENUES = 15
N_ASSETS = 40
NOW = 1_700_000_000_000_000_000


def progress(msg: str) -> None:
    print(f"bench.risk_checks: {msg}", file=sys.stderr, flush=True)


def make_account(rng: np.random.Generator) -> tuple[RiskContext, list[str], list[str], dict[str, Decimal]]:
    venues = [f"v{j:02d}" for j in range(N_VENUES)]
    assets = [f"A{i:02d}" for i in range(N_ASSETS)]
    prices = {a: Decimal(str(round(float(10 ** rng.uniform(-1, 4)), 4))) for a in assets}
    ctx = RiskContext(
        realized_pnl_today_usd=Decimal("-12.5"),
        equity_usd=Decimal("24000"),
        peak_equity_usd=Decimal("24500"),
        executions={"x-running"},
    )
    for v in venues:
        ctx.venue_state[v] = "connected"
        ctx.balances[(v, "USDT")] = Decimal(int(rng.integers(800, 4000)))
        ctx.reserved[(v, "USDT")] = Decimal(int(rng.integers(0, 400)))
        for a in assets:
            ctx.balances[(v, a)] = (Decimal(str(float(rng.uniform(200, 2000)))) / prices[a]).quantize(Decimal("1e-8"))
        sent = int(rng.integers(0, 5))
        ctx.order_times_ns[v] = deque(sorted(int(NOW - rng.integers(1, ORDER_RATE_WINDOW_NS)) for _ in range(sent)))
        ctx.venue_notional_usd[v] = float(rng.uniform(0, 4800))
    ctx.venue_state[venues[-1]] = "stale"
    ctx.order_times_ns[venues[0]] = deque(NOW - 100_000_000 * k for k in range(5, 0, -1))  # at its rate limit
    for a in rng.choice(assets, size=12, replace=False).tolist():
        ctx.instrument_notional_usd[f"{a}/USD"] = float(rng.uniform(0, 2400))
    for a in rng.choice(assets, size=5, replace=False).tolist():
        ctx.exposure_usd[a] = float(rng.uniform(-400, 400))
    return ctx, venues, assets, prices


def make_orders(
    rng: np.random.Generator, n: int, ctx: RiskContext, venues: list[str], assets: list[str], prices: dict[str, Decimal]
) -> list[OrderRequest]:
    held = list(ctx.exposure_usd)
    orders = []
    for k in range(n):
        kind = rng.random()
        if kind < 0.85:
            intent, asset = OrderIntent.OPEN, assets[int(rng.integers(N_ASSETS))]
            notional = float(rng.lognormal(np.log(400.0), 0.6))
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
        elif kind < 0.97:
            intent, asset = OrderIntent.HEDGE, held[int(rng.integers(len(held)))]
            exposure = ctx.exposure_usd[asset]
            notional = abs(exposure) * float(rng.uniform(0.3, 1.0))
            right = Side.SELL if exposure > 0 else Side.BUY
            side = right if rng.random() < 0.9 else (Side.BUY if right is Side.SELL else Side.SELL)
        else:
            intent, asset, notional, side = OrderIntent.CANCEL, assets[0], 100.0, Side.BUY
        price = prices[asset]
        amount = (Decimal(str(notional)) / price).quantize(Decimal("1e-6"))
        orders.append(
            OrderRequest(
                venue=venues[int(rng.integers(N_VENUES))],
                instrument=f"{asset}/USD",
                symbol=f"{asset}/USDT",
                base=asset,
                quote="USDT",
                side=side,
                amount=amount if amount > 0 else Decimal("0.000001"),
                price=price,
                notional_usd=round(notional, 2),
                intent=intent,
                quote_age_ms=float(rng.exponential(200.0)),
                execution_id="x-running" if rng.random() < 0.3 else f"x{k}",
                client_id=f"c{k}",
            )
        )
    return orders


def rate(fn: Callable[[], object], n: int, runs: int) -> tuple[float, list[float]]:
    """Median checks/s of `runs` timed passes over `n` orders (one untimed warm-up pass first)."""
    fn()
    per_s = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(runs):
            t0 = time.perf_counter_ns()
            fn()
            per_s.append(n / ((time.perf_counter_ns() - t0) / 1e9))
    finally:
        gc.enable()
    return statistics.median(per_s), per_s


def decision(result: Approved | Denied) -> tuple[str, str] | None:
    return None if isinstance(result, Approved) else (result.reason.value, str(result.escalate))


async def engine_rate(
    settings: RiskSettings, orders: list[OrderRequest], ctx: RiskContext, runs: int
) -> tuple[float, list[float]]:

    def clock() -> int:  # the benchmark's "now", so the engine sees the same order-rate window as the pure check
        return NOW

    sink = MemoryEventSink()
    per_s = []
    async with RiskEngine(settings, MemoryStateStore(), sink, clock=clock, max_pending_events=len(orders) + 1) as risk:
        check_ = risk.check
        for i in range(runs + 1):
            gc.collect()
            t0 = time.perf_counter_ns()
            for r in orders:
                check_(r, ctx)
            elapsed = time.perf_counter_ns() - t0
            await risk.flush()
            sink.denials.clear()
            if i:  # the first pass is the warm-up
                per_s.append(len(orders) / (elapsed / 1e9))
    return statistics.median(per_s), per_s


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    settings = RiskSettings()
    limits = RiskLimits.from_settings(settings)
    ctx, venues, assets, prices = make_account(rng)
    orders = make_orders(rng, args.orders, ctx, venues, assets, prices)
    n = len(orders)
    progress(f"{n} orders over {N_VENUES} venues / {N_ASSETS} assets; {args.runs} runs")

    fast = [check(r, ctx, limits, now_ns=NOW) for r in orders]
    naive = [reference_check(r, ctx, settings, now_ns=NOW) for r in orders]
    mismatches = [
        i
        for i, (f, b) in enumerate(zip(fast, naive, strict=True))
        if decision(f) != (None if b is None else (b[0].value, str(b[1])))
    ]
    if mismatches:
        progress(f"DISAGREE on {len(mismatches)} orders, first: {orders[mismatches[0]]}")
    reasons = Counter(f.reason.value for f in fast if isinstance(f, Denied))
    approved = sum(isinstance(f, Approved) for f in fast)

    def fast_pass() -> None:
        for r in orders:
            check(r, ctx, limits, now_ns=NOW)

    def naive_pass() -> None:
        for r in orders:
            reference_check(r, ctx, settings, now_ns=NOW)

    progress("pure check")
    fast_rate, fast_runs = rate(fast_pass, n, args.runs)
    progress("engine check")
    eng_rate, eng_runs = asyncio.run(engine_rate(settings, orders, ctx, args.runs))
    progress("baseline (reference) check")
    base_rate, base_runs = rate(naive_pass, n, max(1, args.runs // 2))

    lat = np.empty(n)
    perf = time.perf_counter_ns
    for i, r in enumerate(orders):
        t0 = perf()
        check(r, ctx, limits, now_ns=NOW)
        lat[i] = perf() - t0
    ok = fast_rate >= TARGET_CHECKS_PER_S and eng_rate >= TARGET_CHECKS_PER_S
    return {
        "bench": "risk_checks",
        "risk_checks_per_s": round(fast_rate),
        "engine_checks_per_s": round(eng_rate),
        "baseline_checks_per_s": round(base_rate),
        "speedup_vs_baseline": round(fast_rate / base_rate, 2),
        "target_checks_per_s": TARGET_CHECKS_PER_S,
        "ok": ok,
        "agree": not mismatches,
        "check_us": {
            "p50": round(float(np.percentile(lat, 50)) / 1e3, 2),
            "p99": round(float(np.percentile(lat, 99)) / 1e3, 2),
            "max": round(float(lat.max()) / 1e3, 2),
        },
        "runs_per_s": {
            "check": [round(x) for x in fast_runs],
            "engine": [round(x) for x in eng_runs],
            "baseline": [round(x) for x in base_runs],
        },
        "mix": {
            "orders": n,
            "approved": round(approved / n, 3),
            "denied_by_reason": dict(reasons.most_common()),
            "intents": dict(Counter(r.intent.value for r in orders)),
        },
        "quick": args.quick,
        "env": {"python": platform.python_version(), "numpy": np.__version__, "cpus": os.cpu_count()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer orders and runs (about a second)")
    parser.add_argument("--seed", type=int, default=20240607)
    parser.add_argument("--orders", type=int, default=None, help="orders per pass (default 20000, quick 5000)")
    parser.add_argument("--runs", type=int, default=None, help="timed passes (default 7, quick 3)")
    args = parser.parse_args()
    if args.orders is None:
        args.orders = 5000 if args.quick else 20_000
    if args.runs is None:
        args.runs = 3 if args.quick else 7
    result = run(args)
    print(json.dumps(result))
    return 0 if result["agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
