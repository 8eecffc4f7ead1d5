"""`/api/v1/monitoring/health`, `/api/v1/venues`, `/api/v1/strategy/signals`.

Health is both probes in one answer: `live` (this process answers) and `ready` (its grid Redis and its ledger answer;
503 when not), plus what a trader needs before trusting the scan: venues connected against the coverage floor,
instruments with two or more fresh venues against theirs, and the age of the newest quote in the grid.
"""

from __future__ import annotations

import time
from typing import Annotated

import msgspec
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from arb.api.auth import Principal, requires
from arb.api.problems import Problem, invalid
from arb.api.schemas import CheckOut, HealthOut, Name, SignalOut, SignalsOut, VenueOut
from arb.api.state import state
from arb.config.coverage import instruments_covered
from arb.grid.errors import GridError
from arb.ledger import LedgerError
from arb.ledger.strategy import StrategyStore
from arb.model import latency_percentile_ms

router = APIRouter(tags=["monitoring"])
FRESH_HEALTH_S = 10.0
"""A venue whose connector has not published health for this long counts as not connected."""


@router.get("/monitoring/health", response_model=HealthOut, responses={503: {"model": HealthOut}})
async def health(request: Request, _: Annotated[Principal, Depends(requires("read"))]) -> JSONResponse:
    s = state(request)
    checks: dict[str, CheckOut] = {}
    connected = covered = 0
    grid_age: float | None = None
    try:
        healths = await s.grid.read_health()
        snap = await s.grid.read_grid()
        now = time.time_ns()
        connected = sum(
            h.state == "connected" and (now - h.published_ns) / 1e9 < FRESH_HEALTH_S for h in healths.values()
        )
        covered = instruments_covered(snap.fresh_mask())
        if snap.present.any():
            grid_age = max(0.0, float(snap.taken_ns - snap.ts_recv[snap.present].max()) / 1e9)
        checks["redis"] = CheckOut(ok=True, detail="grid Redis answers")
    except GridError as exc:
        checks["redis"] = CheckOut(ok=False, detail=f"grid Redis: {exc}")
    try:
        await s.ledger.execution().load_trading_state()
        checks["database"] = CheckOut(ok=True, detail=f"ledger at schema {s.ledger.revision}")
    except LedgerError as exc:
        checks["database"] = CheckOut(ok=False, detail=f"ledger: {exc}")
    checks["opportunity_stream"] = CheckOut(ok=s.book.failing is None, detail=s.book.failing or "following")
    cov = s.settings.coverage
    checks["venues"] = CheckOut(
        ok=connected >= cov.min_exchanges, detail=f"{connected} connected, {cov.min_exchanges} required"
    )
    checks["instruments"] = CheckOut(
        ok=covered >= cov.min_instruments,
        detail=f"{covered} covered by >= 2 fresh venues, {cov.min_instruments} required",
    )
    ready = checks["redis"].ok and checks["database"].ok
    status = "down" if not ready else ("ok" if all(c.ok for c in checks.values()) else "degraded")
    body = HealthOut(
        status=status,
        live=True,
        ready=ready,
        checks=checks,
        venues_connected=connected,
        venues_required=cov.min_exchanges,
        instruments_covered=covered,
        instruments_required=cov.min_instruments,
        grid_age_s=grid_age,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ready else 503)


@router.get("/venues", response_model=list[VenueOut], summary="Per-venue feed status and latency")
async def venues(request: Request, _: Annotated[Principal, Depends(requires("read"))]) -> list[VenueOut]:
    s = state(request)
    try:
        healths = await s.grid.read_health()
    except GridError as exc:
        raise Problem(503, f"grid Redis cannot be read ({exc})") from None
    now = time.time_ns()
    out = []
    for vid, cfg in sorted(s.settings.venues.items()):
        h = healths.get(vid)
        if h is None:
            out.append(
                VenueOut(
                    venue=vid,
                    kind=cfg.kind,
                    state="absent",
                    connected=False,
                    latency_ms_p50=None,
                    latency_ms_p99=None,
                    age_s=None,
                    reconnects=None,
                    detail="no connector has published this venue's health",
                )
            )
            continue
        age = (now - h.published_ns) / 1e9
        has_lat = sum(h.latency_hist) > 0
        out.append(
            VenueOut(
                venue=vid,
                kind=cfg.kind,
                state=h.state,
                connected=h.state == "connected" and age < FRESH_HEALTH_S,
                latency_ms_p50=latency_percentile_ms(h.latency_hist, 0.5) if has_lat else None,
                latency_ms_p99=latency_percentile_ms(h.latency_hist, 0.99) if has_lat else None,
                age_s=age,
                reconnects=h.reconnects,
                detail=h.last_error,
            )
        )
    return out


@router.get("/strategy/signals", response_model=SignalsOut, summary="Latest directional signals, newest bar first")
async def signals(
    request: Request,
    _: Annotated[Principal, Depends(requires("read"))],
    asset: Annotated[Name | None, Query(description="Only this instrument (an id from `arb instruments`).")] = None,
    limit: Annotated[int, Query(ge=1, le=1_000)] = 100,
) -> SignalsOut:
    s = state(request)
    if asset is not None and asset not in s.settings.instruments:
        raise invalid("query.asset", f"unknown instrument {asset!r}", "unknown instrument")
    try:
        rows = await StrategyStore(s.ledger).signals(asset=asset, limit=limit)
    except LedgerError as exc:
        raise Problem(503, f"ledger: {exc}") from None
    return SignalsOut(signals=[SignalOut(**msgspec.structs.asdict(r)) for r in rows])
