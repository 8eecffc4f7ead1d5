"""`/api/v1/portfolio/status`, `/api/v1/risk/metrics`, `/api/v1/risk/kill-switch`.

Money comes from two places and each figure says which: balances, exposure and equity from the trading process's
last snapshot (`arb.trading.TraderSnapshot`, at most `SNAPSHOT_TTL_S` old: without one the API answers 503, never
an old or invented figure); positions, realized PnL, the trading state and risk events from the ledger. The kill
switch is written to the ledger, which the trading process reads within a second (as `arb kill-switch` does).
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from arb.api.auth import Principal, requires
from arb.api.problems import Problem
from arb.api.schemas import (
    BalanceOut,
    KillSwitchIn,
    PortfolioOut,
    PositionOut,
    RiskEventOut,
    RiskOut,
    VarOut,
)
from arb.api.state import state
from arb.grid.errors import GridError
from arb.trading import TraderSnapshot, read_snapshot

router = APIRouter(tags=["portfolio and risk"])
VAR_SAMPLE = 500


async def _snapshot(request: Request) -> TraderSnapshot:
    try:
        snap = await read_snapshot(state(request).grid)
    except GridError as exc:
        raise Problem(503, f"grid Redis cannot be read ({exc})") from None
    if snap is None:
        raise Problem(503, "no trading process has published its portfolio in the last 10 s (is `arb run` running?)")
    return snap


@router.get("/portfolio/status", response_model=PortfolioOut, summary="Balances, positions, exposure and PnL")
async def portfolio(request: Request, _: Annotated[Principal, Depends(requires("read"))]) -> PortfolioOut:
    s = state(request)
    snap = await _snapshot(request)
    store = s.ledger.execution()
    positions = await store.positions()
    realized = await store.realized_pnl_since(0)
    since_start = await store.realized_pnl_since(snap.started_ns)
    unrealized = None
    if snap.equity_usd is not None and snap.start_equity_usd is not None:
        unrealized = snap.equity_usd - snap.start_equity_usd - float(since_start)
    return PortfolioOut(
        as_of_ns=snap.ts_ns,
        mode=snap.mode,
        balances=[
            BalanceOut(venue=b.venue, asset=b.asset, total=b.total, reserved=b.reserved, usd=b.usd)
            for b in snap.balances
        ],
        positions=[PositionOut(venue=v, asset=a, amount=str(x)) for (v, a), x in sorted(positions.items()) if x != 0],
        exposure_usd=snap.exposure_usd,
        gross_exposure_usd=sum(abs(x) for x in snap.exposure_usd.values()),
        equity_usd=snap.equity_usd,
        realized_pnl_usd=str(realized),
        realized_pnl_today_usd=snap.realized_pnl_today_usd,
        unrealized_pnl_usd=unrealized,
    )


@router.get("/risk/metrics", response_model=RiskOut, summary="Trading state, limits, VaR, drawdown, recent denials")
async def risk(request: Request, _: Annotated[Principal, Depends(requires("read"))]) -> RiskOut:
    from arb.risk.portfolio import value_at_risk

    s = state(request)
    store = s.ledger.execution()
    trading = await store.load_trading_state()
    events = await store.recent_risk_events(50)
    pnls = [float(x) for x in await store.realized_pnls(VAR_SAMPLE)]
    var = value_at_risk(pnls, s.settings.risk.var_confidence) if len(pnls) >= 2 else []
    try:
        snap = await read_snapshot(s.grid)
    except GridError:
        snap = None
    name = trading.state if trading is not None else "active"
    return RiskOut(
        state=str(name),
        reason=trading.reason if trading else "",
        actor=trading.actor if trading else "",
        since_ns=trading.ts_ns if trading else None,
        kill_switch=str(name) == "halted",
        limits=s.settings.risk.model_dump(mode="json"),
        equity_usd=snap.equity_usd if snap else None,
        peak_equity_usd=snap.peak_equity_usd if snap else None,
        drawdown=snap.drawdown if snap else None,
        realized_pnl_today_usd=snap.realized_pnl_today_usd if snap else None,
        var_usd=[VarOut(confidence=v.confidence, historical=v.historical, parametric=v.parametric) for v in var],
        var_sample=len(pnls),
        recent_denials=[
            RiskEventOut(
                ts_ns=e.ts_ns, kind=e.kind, reason=e.reason, detail=e.detail, execution_id=e.execution_id, venue=e.venue
            )
            for e in events
            if e.kind == "denied"
        ],
    )


@router.post("/risk/kill-switch", response_model=RiskOut, summary="Engage or release the kill switch (admin)")
async def kill_switch(
    request: Request, body: KillSwitchIn, principal: Annotated[Principal, Depends(requires("admin"))]
) -> RiskOut:
    s = state(request)
    target = "halted" if body.engaged else "active"
    actor = f"api:{principal.key_id}:{principal.name}"
    await s.ledger.execution().save_trading_state(target, body.reason, actor, time.time_ns())
    return await risk(request, principal)
