"""The pre-trade check: one order request + what the executor knows now -> `Approved` or `Denied(reason, detail)`.

Why a plain function over plain values: it sits between every decision and every order, so it must be fast (the
benchmark holds it to >= 50,000 checks/s, `bench/risk_checks.py`), pure (the same inputs always give the same answer;
a test or a replay can call it without an engine), and total (it never raises on a request; a bad request is a
denial with a reason). `arb.risk.engine.RiskEngine` wraps it with the trading state, the clock and the events.

Numbers: USD limits are compared as floats (they are thresholds over the executor's approximate USD valuation);
balances, amounts and PnL are `Decimal`, because they are booked money and a balance check must be exact at the
boundary. Every comparison is written so that NaN or a missing value denies (fail closed).

What each kind of order passes (`OrderIntent`):

* CANCEL: always approved; it can only take risk off.
* HEDGE / UNWIND (risk-reducing): allowed in every trading state and whatever the PnL, but it must really reduce the
  net exposure of its base asset (else `not_reducing`), and it still needs a healthy venue, a fresh quote when it was
  priced off one, room in the venue's order rate, and the funds.
* OPEN (adds exposure): only in ACTIVE, with known PnL inside the daily-loss and drawdown limits, then every limit.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Final

import msgspec

from arb.config.schema import RiskSettings
from arb.model import Side

ORDER_RATE_WINDOW_NS: Final = 1_000_000_000
"""`max_orders_per_s` counts orders sent in the last second: the window (now - 1 s, now]."""
HEALTHY: Final = "connected"
"""The connector state (`VenueHealth.state`) in which a venue takes orders; any other state, or none, denies."""
_ZERO: Final = Decimal(0)
_INF: Final = math.inf


class TradingState(StrEnum):
    """ACTIVE: everything the limits allow. REDUCING: only risk-reducing orders (an operator winding down).
    HALTED: the kill switch; new orders denied, hedges, unwinds and cancels still pass, so exposure can be closed.
    Ordered by severity: the engine escalates on its own but never de-escalates (`SEVERITY`)."""

    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


SEVERITY: Final = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


class OrderIntent(StrEnum):
    OPEN = "open"
    """Adds exposure: an arbitrage leg, a directional entry."""
    HEDGE = "hedge"
    """Closes a residual on another venue (or a perp)."""
    UNWIND = "unwind"
    """Reverses a filled leg on its own venue."""
    CANCEL = "cancel"


class DenyReason(StrEnum):
    """Machine-readable reason of a denial (the `risk_events` table and the API carry it as is)."""

    INVALID_REQUEST = "invalid_request"
    HALTED = "halted"
    REDUCING_ONLY = "reducing_only"
    NOT_REDUCING = "not_reducing"
    PNL_UNKNOWN = "pnl_unknown"
    DAILY_LOSS = "daily_loss"
    DRAWDOWN = "drawdown"
    NOTIONAL_ORDER = "notional_order"
    VENUE_UNHEALTHY = "venue_unhealthy"
    STALE_QUOTE = "stale_quote"
    CONCURRENT_EXECUTIONS = "concurrent_executions"
    NOTIONAL_INSTRUMENT = "notional_instrument"
    NOTIONAL_VENUE = "notional_venue"
    OPEN_EXPOSURE = "open_exposure"
    ORDER_RATE = "order_rate"
    BALANCE = "balance"
    RESERVED_BALANCE = "reserved_balance"


class OrderRequest(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One order the executor (or the hedger) wants to send, as the risk engine judges it.

    `instrument` is the economic instrument id (`BTC/USD`), `symbol` the venue's symbol (`BTC/USDT`); `base`/`quote`
    are the assets the order moves. `price` is the limit (or, for a market order, the reference price it was sized
    at); `notional_usd` is amount × price in USD by the executor's valuation. `quote_age_ms`: age of the quote the
    order was priced off (None: not priced off a quote, allowed only for risk-reducing orders). `execution_id` ties
    the legs (and hedges) of one execution together; `perp`: a linear perpetual, which needs margin, not the base.
    """

    venue: str
    instrument: str
    symbol: str
    base: str
    quote: str
    side: Side
    amount: Decimal
    price: Decimal
    notional_usd: float
    intent: OrderIntent = OrderIntent.OPEN
    quote_age_ms: float | None = None
    execution_id: str = ""
    client_id: str = ""
    perp: bool = False

    @property
    def reducing(self) -> bool:
        """A hedge, unwind or cancel: the orders HALTED and REDUCING still let through."""
        return self.intent is not OrderIntent.OPEN


@dataclass(slots=True)
class RiskContext:
    """What the executor knows now, kept up to date by it (mutated in place; the check only reads it).

    * `balances` / `reserved`: (venue, asset) -> total balance, and the part of it held by our in-flight orders.
      A missing balance is unknown and denies (never read as zero-but-fine, never as plenty).
    * `exposure_usd`: asset -> signed net USD position over all venues (long > 0), fills plus in-flight worst case.
    * `instrument_notional_usd` / `venue_notional_usd`: open notional per instrument id / per venue.
    * `executions`: ids of the executions in flight (a request carrying one of them is not a new execution).
    * `venue_state`: venue -> connector state (`VenueHealth.state`); only "connected" takes orders.
    * `order_times_ns`: venue -> send times of its recent orders, ascending (`record_order` keeps it short).
    * `realized_pnl_today_usd`, `equity_usd`, `peak_equity_usd`: from the ledger; None = unknown, which halts.
    """

    balances: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    reserved: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    exposure_usd: dict[str, float] = field(default_factory=dict)
    instrument_notional_usd: dict[str, float] = field(default_factory=dict)
    venue_notional_usd: dict[str, float] = field(default_factory=dict)
    executions: set[str] = field(default_factory=set)
    venue_state: dict[str, str] = field(default_factory=dict)
    order_times_ns: dict[str, deque[int]] = field(default_factory=dict)
    realized_pnl_today_usd: Decimal | None = None
    equity_usd: Decimal | None = None
    peak_equity_usd: Decimal | None = None

    def record_order(self, venue: str, ts_ns: int) -> None:
        """Note an order sent on `venue` at `ts_ns` (call in send order), dropping times out of the rate window."""
        times = self.order_times_ns.get(venue)
        if times is None:
            times = self.order_times_ns[venue] = deque()
        times.append(ts_ns)
        horizon = ts_ns - ORDER_RATE_WINDOW_NS
        while times and times[0] <= horizon:
            times.popleft()

    def free(self, venue: str, asset: str) -> Decimal:
        """Balance not held by in-flight orders, for sizing (a balance never read counts as none here; the check
        itself denies on an unknown balance instead)."""
        key = (venue, asset)
        return self.balances.get(key, _ZERO) - self.reserved.get(key, _ZERO)

    def reserve(self, venue: str, asset: str, amount: Decimal) -> None:
        """Hold `amount` of `asset` on `venue` for an approved order (release it with a negative amount)."""
        key = (venue, asset)
        self.reserved[key] = self.reserved.get(key, _ZERO) + amount


class Approved(msgspec.Struct, frozen=True, gc=False):
    """The order may go. `asset`/`amount`: the funds it needs on its venue, which the executor reserves (with no
    await between the check and the reservation, so two orders cannot both count the same funds)."""

    asset: str = ""
    amount: Decimal = _ZERO


class Denied(msgspec.Struct, frozen=True, gc=False):
    """The order may not go. `detail` names the limit and the value for a person; `escalate` is the trading state
    the engine must move to because of it (daily loss, drawdown, unknown PnL -> HALTED), None if none."""

    reason: DenyReason
    detail: str
    escalate: TradingState | None = None


class RiskLimits(msgspec.Struct, frozen=True, kw_only=True):
    """`RiskSettings` turned into the types the check compares with (built once, `from_settings`)."""

    max_order_notional_usd: float
    max_instrument_notional_usd: float
    max_venue_notional_usd: float
    max_open_exposure_usd: float
    max_concurrent_executions: int
    max_quote_age_ms: float
    max_orders_per_s: int
    daily_loss_limit_usd: Decimal
    max_drawdown: Decimal
    equity_floor_factor: Decimal
    """1 - max_drawdown: equity at or below peak × this has drawn down too far."""
    reducing_factor: float
    """1 + reducing_tolerance."""
    perp_initial_margin: Decimal
    cash_assets: frozenset[str]

    @classmethod
    def from_settings(cls, s: RiskSettings) -> RiskLimits:
        # Decimal(str(x)): the decimal the user wrote (0.05), not the binary float nearest to it.
        max_dd = Decimal(str(s.max_drawdown))
        return cls(
            max_order_notional_usd=s.max_order_notional_usd,
            max_instrument_notional_usd=s.max_instrument_notional_usd,
            max_venue_notional_usd=s.max_venue_notional_usd,
            max_open_exposure_usd=s.max_open_exposure_usd,
            max_concurrent_executions=s.max_concurrent_executions,
            max_quote_age_ms=s.max_quote_age_ms,
            max_orders_per_s=s.max_orders_per_s,
            daily_loss_limit_usd=Decimal(str(s.daily_loss_limit_usd)),
            max_drawdown=max_dd,
            equity_floor_factor=1 - max_dd,
            reducing_factor=1.0 + s.reducing_tolerance,
            perp_initial_margin=Decimal(str(s.perp_initial_margin)),
            cash_assets=frozenset(s.cash_assets),
        )


APPROVED_CANCEL: Final = Approved()


def _usd(x: float) -> str:
    return f"{x:,.2f}"


def account_check(context: RiskContext, limits: RiskLimits) -> Denied | None:
    """The account-level limits (PnL known, daily loss, drawdown): a denial here halts trading.

    Run for every new order, and by the engine on its own (`RiskEngine.assess`) so a breach halts even when no order
    is being attempted."""
    pnl = context.realized_pnl_today_usd
    equity = context.equity_usd
    peak = context.peak_equity_usd
    halted = TradingState.HALTED
    if pnl is None or equity is None or peak is None:
        missing = [
            name
            for name, value in (("realized_pnl_today_usd", pnl), ("equity_usd", equity), ("peak_equity_usd", peak))
            if value is None
        ]
        return Denied(DenyReason.PNL_UNKNOWN, f"{', '.join(missing)} unknown: fail closed", halted)
    if not (pnl.is_finite() and equity.is_finite() and peak.is_finite() and peak > 0):
        return Denied(
            DenyReason.PNL_UNKNOWN,
            f"PnL not usable: realized_pnl_today_usd={pnl} equity_usd={equity} peak_equity_usd={peak}",
            halted,
        )
    if pnl <= -limits.daily_loss_limit_usd:
        return Denied(
            DenyReason.DAILY_LOSS,
            f"realized PnL today {pnl} USD reached daily_loss_limit_usd -{limits.daily_loss_limit_usd}",
            halted,
        )
    if equity <= peak * limits.equity_floor_factor:
        drawdown = (peak - equity) / peak
        return Denied(
            DenyReason.DRAWDOWN,
            f"drawdown {drawdown:.4%} (equity {equity} from peak {peak} USD) reached max_drawdown "
            f"{limits.max_drawdown}",
            halted,
        )
    return None


def _exposure_after(request: OrderRequest, exposure: dict[str, float], cash: frozenset[str]) -> tuple[float, float]:
    """Gross exposure (sum of |net USD| over assets) now and after this order fills."""
    before = sum(map(abs, exposure.values()))
    n = request.notional_usd
    signed = n if request.side is Side.BUY else -n
    base_now = exposure.get(request.base, 0.0)
    after = before - abs(base_now) + abs(base_now + signed)
    if request.quote not in cash:
        quote_now = exposure.get(request.quote, 0.0)
        after += abs(quote_now - signed) - abs(quote_now)
    return before, after


def _deny_request(request: OrderRequest) -> Denied | None:
    amount, price, notional = request.amount, request.price, request.notional_usd
    if amount.is_finite() and price.is_finite() and amount > 0 and price > 0 and 0.0 < notional < _INF:
        return None
    return Denied(
        DenyReason.INVALID_REQUEST,
        f"amount={amount} price={price} notional_usd={notional}: each must be a positive finite number",
    )


def check(  # noqa: C901 - one flat sequence of limits reads better than a chain of helpers on the hot path
    request: OrderRequest,
    context: RiskContext,
    limits: RiskLimits,
    *,
    state: TradingState = TradingState.ACTIVE,
    now_ns: int,
) -> Approved | Denied:
    """Judge one order against every limit; the first limit it breaks is the denial. Never raises on a request."""
    intent = request.intent
    if intent is OrderIntent.CANCEL:
        return APPROVED_CANCEL
    invalid = _deny_request(request)
    if invalid is not None:
        return invalid
    venue = request.venue
    notional = request.notional_usd
    opening = intent is OrderIntent.OPEN

    if opening:
        if state is not TradingState.ACTIVE:
            if state is TradingState.HALTED:
                return Denied(DenyReason.HALTED, "trading is HALTED (kill switch): only hedges, unwinds, cancels")
            return Denied(DenyReason.REDUCING_ONLY, f"trading is {state.name}: only risk-reducing orders")
        account = account_check(context, limits)
        if account is not None:
            return account
        if not notional <= limits.max_order_notional_usd:
            return Denied(
                DenyReason.NOTIONAL_ORDER,
                f"order notional {_usd(notional)} USD > max_order_notional_usd {_usd(limits.max_order_notional_usd)}",
            )
    else:
        held = context.exposure_usd.get(request.base, 0.0)
        buying = request.side is Side.BUY
        if not ((held < 0.0 if buying else held > 0.0) and notional <= abs(held) * limits.reducing_factor):
            return Denied(
                DenyReason.NOT_REDUCING,
                f"{intent.value} {request.side.value} {_usd(notional)} USD of {request.base} does not reduce its net "
                f"exposure {_usd(held)} USD (tolerance reducing_factor {limits.reducing_factor})",
            )

    venue_state = context.venue_state.get(venue)
    if venue_state != HEALTHY:
        return Denied(DenyReason.VENUE_UNHEALTHY, f"venue {venue} is {venue_state or 'unknown'}, not {HEALTHY}")
    age = request.quote_age_ms
    if age is None:
        if opening:
            return Denied(DenyReason.STALE_QUOTE, "quote_age_ms unknown: a new order must be priced off a quote")
    elif not age <= limits.max_quote_age_ms:
        return Denied(DenyReason.STALE_QUOTE, f"quote age {age:.1f} ms > max_quote_age_ms {limits.max_quote_age_ms:g}")

    if opening:
        executions = context.executions
        if request.execution_id not in executions and len(executions) >= limits.max_concurrent_executions:
            return Denied(
                DenyReason.CONCURRENT_EXECUTIONS,
                f"{len(executions)} executions in flight: max_concurrent_executions "
                f"{limits.max_concurrent_executions} reached",
            )
        after = context.instrument_notional_usd.get(request.instrument, 0.0) + notional
        if not after <= limits.max_instrument_notional_usd:
            return Denied(
                DenyReason.NOTIONAL_INSTRUMENT,
                f"{request.instrument} notional would be {_usd(after)} USD > max_instrument_notional_usd "
                f"{_usd(limits.max_instrument_notional_usd)}",
            )
        after = context.venue_notional_usd.get(venue, 0.0) + notional
        if not after <= limits.max_venue_notional_usd:
            return Denied(
                DenyReason.NOTIONAL_VENUE,
                f"{venue} notional would be {_usd(after)} USD > max_venue_notional_usd "
                f"{_usd(limits.max_venue_notional_usd)}",
            )
        before, after = _exposure_after(request, context.exposure_usd, limits.cash_assets)
        if after > before and not after <= limits.max_open_exposure_usd:
            return Denied(
                DenyReason.OPEN_EXPOSURE,
                f"open exposure would be {_usd(after)} USD > max_open_exposure_usd "
                f"{_usd(limits.max_open_exposure_usd)}",
            )

    times = context.order_times_ns.get(venue)
    rate = limits.max_orders_per_s
    if times is not None and len(times) >= rate and times[-rate] > now_ns - ORDER_RATE_WINDOW_NS:
        return Denied(
            DenyReason.ORDER_RATE, f"{rate} orders on {venue} in the last second: max_orders_per_s {rate} reached"
        )

    return _funds(request, context, limits)


def required_funds(request: OrderRequest, limits: RiskLimits) -> tuple[str, Decimal]:
    """The asset and amount the order needs on its venue: the base to sell, the quote to buy with, or a perp's
    margin (in its quote) either way. Cancels need nothing."""
    if request.intent is OrderIntent.CANCEL:
        return "", _ZERO
    if request.perp:
        return request.quote, request.amount * request.price * limits.perp_initial_margin
    if request.side is Side.SELL:
        return request.base, request.amount
    return request.quote, request.amount * request.price


def _funds(request: OrderRequest, context: RiskContext, limits: RiskLimits) -> Approved | Denied:
    asset, need = required_funds(request, limits)
    key = (request.venue, asset)
    total = context.balances.get(key)
    if total is None:
        return Denied(DenyReason.BALANCE, f"{asset} balance on {request.venue} unknown: needs {need}")
    if not need <= total:
        return Denied(DenyReason.BALANCE, f"needs {need} {asset} on {request.venue}, balance is {total}")
    free = total - context.reserved.get(key, _ZERO)
    if not need <= free:
        return Denied(
            DenyReason.RESERVED_BALANCE,
            f"needs {need} {asset} on {request.venue}: balance {total}, {total - free} reserved by orders in flight",
        )
    return Approved(asset, need)
