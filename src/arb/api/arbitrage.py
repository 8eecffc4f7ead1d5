"""`/api/v1/arbitrage/*`: the ranked scan, execute by id (idempotent), an execution's status, and the WebSocket of
opportunity lifecycle events.

Execute goes through the trading process (`arb run`), never around it: the request is put on the execute command
stream (`arb.executor.commands`), where the process that holds the scanner, the venues' sessions, the risk engine
and the ledger runs it through the same path as every execution. The API adds the door: the key's scope, the
`Idempotency-Key` (the same key and body answer the same execution; a different body with a reused key is refused),
the kill switch (refused here too, before any request is made), and ownership (a key sees only the executions it asked
for, unless it is an admin key: FAULTS S3).
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Final

import msgspec
from fastapi import APIRouter, Depends, Header, Path, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse

from arb.api.auth import Principal, owned, requires, token_of
from arb.api.problems import Problem, invalid, problem_body
from arb.api.schemas import REF_PATTERN, ExecuteIn, ExecutionOut, Kind, Name, OpportunityOut, ScanPage, request_digest
from arb.api.state import ApiState, state
from arb.executor.commands import AnswerOverdue, NoTradingProcess, opportunity_id_problem, request_execution
from arb.grid.errors import GridError
from arb.model import OpportunityEvent

log = logging.getLogger(__name__)
router = APIRouter(prefix="/arbitrage", tags=["arbitrage"])

_UNSENT: Final = 409


def opportunity_out(event: OpportunityEvent) -> OpportunityOut:
    data: dict[str, Any] = msgspec.to_builtins(event.opportunity)
    data["legs"] = list(data.get("legs") or [])
    data["net_edge_bps"] = event.opportunity.net_edge * 1e4
    return OpportunityOut(**data, opened_ns=event.opened_ns, peak_net_edge=event.peak_net_edge, updates=event.updates)


def _known(s: ApiState, field: str, instrument: str | None = None, venues: tuple[str, ...] = ()) -> None:
    if instrument is not None and instrument not in s.settings.instruments:
        raise invalid(field, f"unknown instrument {instrument!r}", "unknown instrument")
    for v in venues:
        if v not in s.settings.venues:
            raise invalid(field, f"unknown venue {v!r}", "unknown venue")


@router.get("/scan", response_model=ScanPage, summary="Ranked open opportunities with their cost breakdown")
async def scan(
    request: Request,
    _: Annotated[Principal, Depends(requires("read"))],
    instrument: Annotated[
        Name | None, Query(description="Only this instrument (an id from `arb instruments`).")
    ] = None,
    venue: Annotated[Name | None, Query(description="Only opportunities buying or selling on this venue.")] = None,
    min_edge_bps: Annotated[float | None, Query(ge=-10_000, le=10_000, allow_inf_nan=False)] = None,
    type: Annotated[Kind | None, Query(description="spot, basis or triangular.")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,7}$", description="From the previous page.")] = None,
) -> ScanPage:
    s = state(request)
    if limit > s.settings.api.max_scan_limit:
        limit_max = s.settings.api.max_scan_limit
        raise invalid("query.limit", f"{limit} is above this server's api.max_scan_limit ({limit_max})",
                      "above api.max_scan_limit")  # fmt: skip
    _known(s, "query.instrument", instrument)
    _known(s, "query.venue", None, (venue,) if venue else ())
    if s.book.failing is not None and not s.book.caught_up.is_set():
        raise Problem(503, "the opportunity stream cannot be read (grid Redis); try again")
    events = [
        e
        for e in s.book.ranked()
        if (instrument is None or e.opportunity.instrument == instrument)
        and (venue is None or venue in (e.opportunity.buy_venue, e.opportunity.sell_venue))
        and (type is None or e.opportunity.kind == type)
        and (min_edge_bps is None or e.opportunity.net_edge * 1e4 >= min_edge_bps)
    ]
    start = int(cursor or 0)
    page = events[start : start + limit]
    nxt = str(start + limit) if start + limit < len(events) else None
    return ScanPage(
        opportunities=[opportunity_out(e) for e in page],
        total=len(events),
        next_cursor=nxt,
        as_of_stream_id=s.book.last_id,
    )


def _target(s: ApiState, body: ExecuteIn) -> tuple[str, OpportunityEvent | None]:
    if (body.opportunity_id is None) == (body.legs is None):
        raise invalid("body.opportunity_id", "give exactly one of opportunity_id and legs",
                      "exactly one of opportunity_id, legs")  # fmt: skip
    if body.legs is not None:
        legs = body.legs
        _known(s, "body.legs.instrument", legs.instrument)
        _known(s, "body.legs", None, (legs.buy_venue, legs.sell_venue))
        key = (legs.kind, legs.instrument, legs.buy_venue, legs.sell_venue)
        for event in s.book.ranked():
            if event.opportunity.key == key:
                return event.opportunity.id, event
        raise Problem(
            _UNSENT,
            f"no open {legs.kind} opportunity on {legs.instrument} buying on {legs.buy_venue} and "
            f"selling on {legs.sell_venue}; nothing was sent",
        )
    oid = body.opportunity_id or ""
    problem = opportunity_id_problem(s.settings, oid)
    if problem is not None:
        raise invalid("body.opportunity_id", problem, problem)
    return oid, s.book.open.get(oid)


def _check_amount(s: ApiState, body: ExecuteIn, event: OpportunityEvent | None) -> None:
    if body.max_amount is None or event is None:
        return
    opp = event.opportunity
    usd = s.settings.scanner.usd_per_quote.get(opp.quote_currency, 1.0)
    notional = float(body.max_amount) * opp.vwap_buy * usd
    cap = s.settings.risk.max_order_notional_usd
    if notional > cap * 1.000001 and float(body.max_amount) <= opp.size:
        raise invalid("body.max_amount", f"{body.max_amount} is {notional:.2f} USD, above "
                      f"risk.max_order_notional_usd ({cap:g})", "above the max order notional")  # fmt: skip


@router.post(
    "/execute",
    response_model=ExecutionOut,
    summary="Execute an open opportunity (paper unless the server trades live)",
    responses={
        409: {"description": "Nothing was sent (closed, kill switch, in progress)"},
        503: {"description": "No trading process took the request"},
    },
)
async def execute(
    request: Request,
    body: ExecuteIn,
    principal: Annotated[Principal, Depends(requires("trade"))],
    idempotency_key: Annotated[str, Header(alias="Idempotency-Key", pattern=REF_PATTERN)],
) -> JSONResponse:
    s = state(request)
    oid, event = _target(s, body)
    _check_amount(s, body, event)
    trading = await s.ledger.execution().load_trading_state()
    if trading is not None and trading.state == "halted":
        raise Problem(_UNSENT, f"the kill switch is engaged ({trading.reason}; by {trading.actor}); nothing was sent")
    digest = request_digest(body)
    record, created = await s.store.begin_request(
        principal.key_id, "execute", idempotency_key, digest, resource_id=f"pending:{oid}", status="pending"
    )
    if not created:
        if record.request_sha256 != digest:
            raise invalid("header.Idempotency-Key", "already used with a different request body; use a new key",
                          "reused with a different body")  # fmt: skip
        if record.status == "pending":
            raise Problem(409, "a request with this Idempotency-Key is still in progress", headers={"Retry-After": "1"})
        return JSONResponse(
            record.result["body"],
            status_code=int(record.result["status"]),
            headers={"Idempotent-Replayed": "true"},
            media_type=record.result.get("media_type", "application/json"),
        )
    status, out, media = 200, {}, "application/json"
    try:
        answer = await request_execution(
            s.grid, oid, timeout_s=s.settings.api.execute_wait_s, max_amount=body.max_amount
        )
    except NoTradingProcess as exc:
        status, out = 503, _problem(503, str(exc), request)
    except AnswerOverdue as exc:
        status, out = 504, _problem(504, str(exc), request)
    except GridError as exc:
        status, out = 503, _problem(503, f"grid Redis failed ({exc}); the request may not have been sent", request)
    else:
        outcome = answer.outcome or {}
        if not answer.executed:
            status, out = _UNSENT, _problem(_UNSENT, answer.reason or "nothing was sent", request, opportunity_id=oid)
        else:
            out = ExecutionOut(
                execution_id=outcome.get("execution_id"),
                opportunity_id=oid,
                status=str(outcome.get("status", "")),
                reason=answer.reason,
                executed=True,
                outcome=outcome,
            ).model_dump(mode="json")
    if status != 200:
        media = "application/problem+json"
    resource = str(out.get("execution_id") or f"none:{record.id}")
    await s.store.finish_request(
        record.id,
        status="done" if status == 200 else "failed",
        result={"status": status, "body": out, "media_type": media},
        resource_id=resource,
    )
    log.info("api.execute key=%s opportunity=%s status=%d execution=%s", principal.key_id, oid, status, resource)
    return JSONResponse(out, status_code=status, media_type=media)


def _problem(status: int, detail: str, request: Request, **extra: Any) -> dict[str, Any]:
    return problem_body(status, detail, instance=request.url.path, **extra)


@router.get("/executions/{execution_id}", response_model=ExecutionOut, summary="An execution's status and orders")
async def execution(
    request: Request,
    execution_id: Annotated[str, Path(pattern=REF_PATTERN)],
    principal: Annotated[Principal, Depends(requires("read"))],
) -> ExecutionOut:
    s = state(request)
    owner = await owned(request, principal, "execute", execution_id, "execution")
    store = s.ledger.execution()
    intent = await store.intent(execution_id)
    if intent is None:
        raise Problem(404, f"no execution {execution_id!r} for this key")
    orders = [msgspec.to_builtins(o.order) | {"leg": o.leg} for o in await store.orders_of(execution_id)]
    outcome = owner.result.get("body", {}).get("outcome") if owner is not None else None
    return ExecutionOut(
        execution_id=execution_id,
        opportunity_id=intent.intent.opportunity_id,
        status=str(intent.status),
        reason="",
        executed=True,
        outcome=outcome,
        orders=orders,
    )


async def stream(websocket: WebSocket) -> None:
    """Opportunity lifecycle events (opened / updated / closed) as JSON text frames, from now on. Authenticate with
    the `X-API-Key` or `Authorization` header, or an `api_key` query parameter for browsers (which cannot set headers
    on a WebSocket)."""
    s: ApiState = websocket.app.state.arb
    token = token_of(websocket) or websocket.query_params.get("api_key")
    principal = await websocket.app.state.keys.principal(token) if token else None
    if principal is None or not principal.may("read"):
        await websocket.close(code=1008, reason="a valid API key with the read scope is required")
        return
    await websocket.accept()
    try:
        async with s.book.subscribe() as sub:
            while True:
                event = await sub.queue.get()
                frame = {
                    "type": event.type,
                    "ts": event.ts,
                    "close_reason": event.close_reason,
                    "dropped": sub.dropped,
                    "opportunity": opportunity_out(event).model_dump(mode="json"),
                }
                await websocket.send_json(frame)
    except WebSocketDisconnect:
        return
