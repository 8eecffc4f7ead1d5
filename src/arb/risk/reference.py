"""The pre-trade check written the obvious way: the oracle `arb.risk.checks.check` is tested against, and the
baseline of `bench/risk_checks.py`.

Same rules, same order, same reasons, but none of the hot-path choices: every USD figure goes through `Decimal`,
limits are read from `RiskSettings` and converted on every call, the rules are a list of small functions each given
the whole request, gross exposure is re-summed in Decimal, the order rate is counted over every remembered
timestamp. Details (the human text) are not compared, only the decision and the reason, so they are kept short here.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from arb.config.schema import RiskSettings
from arb.model import Side
from arb.risk.checks import (
    HEALTHY,
    ORDER_RATE_WINDOW_NS,
    DenyReason,
    OrderIntent,
    OrderRequest,
    RiskContext,
    TradingState,
)

Verdict = tuple[DenyReason, TradingState | None] | None
"""None: this rule passes; else the denial reason and the escalation it asks for."""
Rule = Callable[[OrderRequest, RiskContext, RiskSettings, TradingState, int], Verdict]


def _d(x: float | int) -> Decimal:
    return Decimal(str(x))


def _valid(r: OrderRequest, c: RiskContext, s: RiskSettings, state: TradingState, now: int) -> Verdict:
    ok = (
        r.amount.is_finite()
        and r.price.is_finite()
        and r.amount > 0
        and r.price > 0
        and Decimal(r.notional_usd).is_finite()
        and Decimal(r.notional_usd) > 0
    )
    return None if ok else (DenyReason.INVALID_REQUEST, None)


def _state(r: OrderRequest, c: RiskContext, s: RiskSettings, state: TradingState, now: int) -> Verdict:
    if r.intent is not OrderIntent.OPEN or state == TradingState.ACTIVE:
        return None
    return (DenyReason.HALTED if state == TradingState.HALTED else DenyReason.REDUCING_ONLY), None


def _account(r: OrderRequest, c: RiskContext, s: RiskSettings, state: TradingState, now: int) -> Verdict:
    if r.intent is not OrderIntent.OPEN:
        return None
    pnl, equity, peak = c.realized_pnl_today_usd, c.equity_usd, c.peak_equity_usd
    if pnl is None or equity is None or peak is None:
        return DenyReason.PNL_UNKNOWN, TradingState.HALTED
    if not (pnl.is_finite() and equity.is_finite() and peak.is_finite()) or peak <= 0:
        return DenyReason.PNL_UNKNOWN, TradingState.HALTED
    if -pnl >= _d(s.daily_loss_limit_usd):
        return DenyReason.DAILY_LOSS, TradingState.HALTED
    if (peak - equity) >= peak * _d(s.max_drawdown):
        return DenyReason.DRAWDOWN, TradingState.HALTED
    return None


def _order_notional(r: OrderRequest, c: RiskContext, s: RiskSettings, state: TradingState, now: int) -> Verdict:
    if r.intent is OrderIntent.OPEN and Decimal(r.notional_usd) > _d(s.max_order_notional_usd):
        return DenyReason.NOTIONAL_ORDER, None
    return None


def _reducing(r: OrderRequest, c: RiskContext, s: RiskSettings, state: TradingState, now: int) -> Verdict:
    if r.intent is OrderIntent.OPEN:
        return None
    held = Decimal(c.exposure_usd.get(r.base, 0.0))
    direction_ok = held < 0 if r.side == Side.BUY else held > 0
    size_ok = Decimal(r.notional_usd) <= abs(held) * Decimal(1.0 + s.reducing_tolerance)
    return None if direction_ok and size_ok else (DenyReason.NOT_REDUCING, None)


def _venue(r: OrderRequest, c: RiskContext, s: RiskSettings, state: TradingState, now: int) -> Verdict:
    return None if c.venue_state.get(r.venue) == HEALTHY else (DenyReason.VENUE_UNHEALTHY, None)


def _quote_age(r: OrderRequest, c: RiskContext, s: RiskSettings, state: TradingState, now: int) -> Verdict:
    if r.quote_age_ms is None:
        return (DenyReason.STALE_QUOTE, None) if r.intent is OrderIntent.OPEN else None
    age = Decimal(r.quote_age_ms)
    return None if age.is_finite() and age <= _d(s.max_quote_age_ms) else (DenyReason.STALE_QUOTE, None)


def _executions(r: OrderRequest, c: RiskContext, s: RiskSettings, state: TradingState, now: int) -> Verdict:
    if r.intent is not OrderIntent.OPEN or r.execution_id in c.executions:
        return None
    return None if len(c.executions) < s.max_concurrent_executions else (DenyReason.CONCURRENT_EXECUTIONS, None)


def _instrument(r: OrderRequest, c: RiskContext, s: RiskSettings, state: TradingState, now: int) -> Verdict:
    if r.intent is not OrderIntent.OPEN:
        return None
    after = Decimal(c.instrument_notional_usd.get(r.instrument, 0.0)) + Decimal(r.notional_usd)
    return None if after <= _d(s.max_instrument_notional_usd) else (DenyReason.NOTIONAL_INSTRUMENT, None)


def _venue_notional(r: OrderRequest, c: RiskContext, s: RiskSettings, state: TradingState, now: int) -> Verdict:
    if r.intent is not OrderIntent.OPEN:
        return None
    after = Decimal(c.venue_notional_usd.get(r.venue, 0.0)) + Decimal(r.notional_usd)
    return None if after <= _d(s.max_venue_notional_usd) else (DenyReason.NOTIONAL_VENUE, None)


def _exposure(r: OrderRequest, c: RiskContext, s: RiskSettings, state: TradingState, now: int) -> Verdict:
    if r.intent is not OrderIntent.OPEN:
        return None
    signed = Decimal(r.notional_usd) if r.side == Side.BUY else -Decimal(r.notional_usd)
    after_by_asset = {a: Decimal(v) for a, v in c.exposure_usd.items()}
    before = sum((abs(v) for v in after_by_asset.values()), Decimal(0))
    after_by_asset[r.base] = after_by_asset.get(r.base, Decimal(0)) + signed
    if r.quote not in s.cash_assets:
        after_by_asset[r.quote] = after_by_asset.get(r.quote, Decimal(0)) - signed
    after = sum((abs(v) for v in after_by_asset.values()), Decimal(0))
    if after > before and after > _d(s.max_open_exposure_usd):
        return DenyReason.OPEN_EXPOSURE, None
    return None


def _rate(r: OrderRequest, c: RiskContext, s: RiskSettings, state: TradingState, now: int) -> Verdict:
    recent = [t for t in c.order_times_ns.get(r.venue, ()) if t > now - ORDER_RATE_WINDOW_NS]
    return None if len(recent) < s.max_orders_per_s else (DenyReason.ORDER_RATE, None)


def _funds(r: OrderRequest, c: RiskContext, s: RiskSettings, state: TradingState, now: int) -> Verdict:
    if r.perp:
        asset, need = r.quote, r.amount * r.price * _d(s.perp_initial_margin)
    elif r.side == Side.SELL:
        asset, need = r.base, r.amount
    else:
        asset, need = r.quote, r.amount * r.price
    total = c.balances.get((r.venue, asset))
    if total is None or need > total:
        return DenyReason.BALANCE, None
    if need > total - c.reserved.get((r.venue, asset), Decimal(0)):
        return DenyReason.RESERVED_BALANCE, None
    return None


RULES: list[Rule] = [
    _valid,
    _state,
    _account,
    _order_notional,
    _reducing,
    _venue,
    _quote_age,
    _executions,
    _instrument,
    _venue_notional,
    _exposure,
    _rate,
    _funds,
]


def reference_check(
    request: OrderRequest,
    context: RiskContext,
    settings: RiskSettings,
    *,
    state: TradingState = TradingState.ACTIVE,
    now_ns: int,
) -> Verdict:
    """The first rule the request breaks, as (reason, escalation), or None when it may go."""
    if request.intent is OrderIntent.CANCEL:
        return None
    for rule in RULES:
        verdict = rule(request, context, settings, state, now_ns)
        if verdict is not None:
            return verdict
    return None
