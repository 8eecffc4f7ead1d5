"""The API's request and response bodies: pydantic models, strict (unknown fields are refused, numbers bounded and
finite), so the OpenAPI schema says exactly what is accepted and what comes back."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

REF_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
"""An `Idempotency-Key` or an execution id: printable, no separators a log or a key name would trip on."""
OPPORTUNITY_ID_PATTERN = r"^[a-z]+:[A-Za-z0-9/._-]+:[A-Za-z0-9_.-]+>[A-Za-z0-9_.-]+:[0-9]+$"
OpportunityId = Annotated[str, StringConstraints(pattern=OPPORTUNITY_ID_PATTERN, max_length=200)]
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9/._-]+$", min_length=1, max_length=64)]
Kind = Literal["spot", "basis", "triangular"]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def request_digest(body: BaseModel) -> str:
    """What an idempotent request is remembered by: the SHA-256 of its body as validated (defaults left out)."""
    return hashlib.sha256(body.model_dump_json(exclude_none=True).encode()).hexdigest()


class Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpportunityOut(Out):
    """An opportunity with every cost and priority factor (see `arb.model.Opportunity` for the formulas)."""

    id: str
    kind: str
    instrument: str
    buy_venue: str
    sell_venue: str
    quote_currency: str
    size: float
    notional: float
    best_ask_buy: float
    best_bid_sell: float
    vwap_buy: float
    vwap_sell: float
    gross_spread: float
    fee_buy: float
    fee_sell: float
    gas: float
    haircut: float
    slippage: float
    funding: float
    net_edge: float
    net_edge_bps: float
    profit: float
    expected_profit: float
    decay: float
    liquidity_score: float
    execution_time_s: float
    risk_factor: float
    priority: float
    buy_quote_age_ms: float
    sell_quote_age_ms: float
    depth_estimated: bool
    transfer_cost: float
    wallet: str
    legs: list[str]
    ts: int
    opened_ns: int
    peak_net_edge: float
    updates: int


class ScanPage(Out):
    opportunities: list[OpportunityOut]
    total: int
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
    as_of_stream_id: str


class Legs(Body):
    instrument: Name
    buy_venue: Name
    sell_venue: Name
    kind: Kind = "spot"


class ExecuteIn(Body):
    """Either `opportunity_id` (from `GET /arbitrage/scan`) or `legs` (the open opportunity of that pair is taken)."""

    opportunity_id: OpportunityId | None = None
    legs: Legs | None = None
    max_amount: Decimal | None = Field(
        default=None,
        gt=0,
        max_digits=30,
        decimal_places=12,
        allow_inf_nan=False,
        description="Cap on the base amount to trade (the executor sizes below it, to risk limits and book depth).",
    )

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={"examples": [{"opportunity_id": "spot:BTC/USD:binance>okx:1732440000000000000"}]},
    )


class ExecutionOut(Out):
    execution_id: str | None
    opportunity_id: str
    status: str
    reason: str
    executed: bool
    outcome: dict[str, Any] | None = None
    orders: list[dict[str, Any]] = []


class KillSwitchIn(Body):
    engaged: bool
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500, strip_whitespace=True)]

    model_config = ConfigDict(
        extra="forbid", frozen=True, json_schema_extra={"examples": [{"engaged": True, "reason": "venue incident"}]}
    )


class BacktestIn(Body):
    type: Literal["arbitrage", "directional"]
    tape: Name = Field(description="A tape directory under the server's `api.tapes_dir` (from `arb record --out`).")
    latency_ms: list[Annotated[float, Field(ge=0, le=10_000, allow_inf_nan=False)]] = Field(
        default=[0.0], min_length=1, max_length=16
    )

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={"examples": [{"type": "arbitrage", "tape": "demo-60s", "latency_ms": [0, 200]}]},
    )


class JobOut(Out):
    job_id: str
    type: str
    status: Literal["queued", "running", "done", "failed"]
    progress: float
    result: dict[str, Any] | None = None
    error: str | None = None


class BalanceOut(Out):
    venue: str
    asset: str
    total: str
    reserved: str
    usd: float | None


class PositionOut(Out):
    venue: str
    asset: str
    amount: str


class PortfolioOut(Out):
    as_of_ns: int
    mode: str
    balances: list[BalanceOut]
    positions: list[PositionOut]
    exposure_usd: dict[str, float]
    gross_exposure_usd: float
    equity_usd: float | None
    realized_pnl_usd: str
    realized_pnl_today_usd: float | None
    unrealized_pnl_usd: float | None


class RiskEventOut(Out):
    ts_ns: int
    kind: str
    reason: str
    detail: str
    execution_id: str | None
    venue: str | None


class VarOut(Out):
    confidence: float
    historical: float
    parametric: float


class RiskOut(Out):
    state: str
    reason: str
    actor: str
    since_ns: int | None
    kill_switch: bool
    limits: dict[str, Any]
    equity_usd: float | None
    peak_equity_usd: float | None
    drawdown: float | None
    realized_pnl_today_usd: float | None
    var_usd: list[VarOut]
    var_sample: int
    recent_denials: list[RiskEventOut]


class CheckOut(Out):
    ok: bool
    detail: str


class HealthOut(Out):
    status: Literal["ok", "degraded", "down"]
    live: bool
    ready: bool
    checks: dict[str, CheckOut]
    venues_connected: int
    venues_required: int
    instruments_covered: int
    instruments_required: int
    grid_age_s: float | None


class VenueOut(Out):
    venue: str
    kind: str
    state: str
    connected: bool
    latency_ms_p50: float | None
    latency_ms_p99: float | None
    age_s: float | None
    reconnects: int | None
    detail: str


class SignalOut(Out):
    """A directional signal (`arb strategy signal` / `run`): direction at the close of bar `bar_ns`, the inputs that
    made it and its size by the directional risk rules (`reason` says why a size is 0)."""

    asset: str
    bar_ns: int
    model_id: str
    direction: int = Field(description="-1 short, 0 flat, 1 long")
    confidence: float
    sentiment: float = Field(description="S(t) of the asset at the bar, in [-1, 1] (0: no sentiment sources)")
    agent_target: float = Field(description="the agent's target position in [-1, 1]")
    price: float
    atr: float
    size: float
    notional_usd: float
    stop: float | None
    take_profit: float | None
    reason: str
    created_ns: int
    id: int


class SignalsOut(Out):
    signals: list[SignalOut]


class ProblemError(BaseModel):
    field: str
    message: str
    input: Any = None


class ProblemOut(BaseModel):
    """RFC 7807 problem document: every error the API answers (`application/problem+json`)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[ProblemError] | None = None
    opportunity_id: str | None = None


class KeyOut(Out):
    key_id: str
    name: str
    scopes: list[str]
