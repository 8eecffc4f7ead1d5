"""The pure pre-trade check: each limit at its boundary (the value at the limit passes, one cent/unit over it is
denied with its reason and a detail naming the limit and the value), and what each kind of order may do."""

from __future__ import annotations

import math
from collections import deque
from decimal import Decimal

import pytest

from arb.model import Side
from arb.risk import Approved, Denied, DenyReason, OrderIntent, OrderRequest, TradingState, check
from arb.risk.checks import ORDER_RATE_WINDOW_NS, RiskContext

from .support import LIMITS, NOW, context, order, sized


def judge(
    request: OrderRequest, ctx: RiskContext | None = None, state: TradingState = TradingState.ACTIVE
) -> Approved | Denied:
    return check(request, ctx or context(), LIMITS, state=state, now_ns=NOW)


def denied(result: Approved | Denied, reason: DenyReason) -> Denied:
    assert isinstance(result, Denied), f"expected a {reason} denial, got {result}"
    assert result.reason is reason, result.detail
    return result


def test_a_plain_order_inside_every_limit_is_approved_with_the_funds_to_reserve() -> None:
    result = judge(order())

    assert result == Approved("USDT", Decimal("600.00"))


# --- notional limits ---------------------------------------------------------------------------------------------


def test_order_notional_at_the_limit_passes_and_a_cent_over_is_denied() -> None:
    assert isinstance(judge(sized(1000.0)), Approved)

    result = denied(judge(sized(1000.01)), DenyReason.NOTIONAL_ORDER)
    assert "max_order_notional_usd" in result.detail
    assert "1,000.01" in result.detail
    assert result.escalate is None


def test_instrument_notional_counts_what_is_open_plus_this_order() -> None:
    at_limit = context(instrument_notional_usd={"BTC/USD": 1500.0})
    over = context(instrument_notional_usd={"BTC/USD": 1500.01})

    assert isinstance(judge(sized(1000.0), at_limit), Approved)
    result = denied(judge(sized(1000.0), over), DenyReason.NOTIONAL_INSTRUMENT)
    assert "max_instrument_notional_usd" in result.detail
    assert "2,500.01" in result.detail


def test_instrument_notional_of_another_instrument_does_not_count() -> None:
    ctx = context(instrument_notional_usd={"ETH/USD": 2500.0})

    assert isinstance(judge(sized(1000.0), ctx), Approved)


def test_venue_notional_counts_what_is_open_on_that_venue_plus_this_order() -> None:
    at_limit = context(venue_notional_usd={"binance": 4000.0})
    over = context(venue_notional_usd={"binance": 4000.01})

    assert isinstance(judge(sized(1000.0), at_limit), Approved)
    result = denied(judge(sized(1000.0), over), DenyReason.NOTIONAL_VENUE)
    assert "max_venue_notional_usd" in result.detail
    assert "5,000.01" in result.detail
    assert isinstance(judge(sized(1000.0, venue="okx"), over), Approved), "other venues' notional does not count"


def test_open_exposure_is_the_gross_net_exposure_over_assets_after_the_order() -> None:
    at_limit = context(exposure_usd={"ETH": -1500.0})
    over = context(exposure_usd={"ETH": -1500.01})

    assert isinstance(judge(sized(1000.0), at_limit), Approved)
    result = denied(judge(sized(1000.0), over), DenyReason.OPEN_EXPOSURE)
    assert "max_open_exposure_usd" in result.detail
    assert "2,500.01" in result.detail


def test_an_opening_order_that_shrinks_exposure_passes_even_above_the_exposure_limit() -> None:
    ctx = context(exposure_usd={"BTC": 3000.0})

    result = judge(order(side=Side.SELL), ctx)

    assert result == Approved("BTC", Decimal("0.01"))


def test_a_cross_pair_is_exposure_on_its_quote_asset_too() -> None:
    cross = {"base": "ETH", "quote": "BTC", "symbol": "ETH/BTC", "instrument": "ETH/BTC"}
    balances = {("binance", "BTC"): Decimal("10000"), ("binance", "USDT"): Decimal("10000")}
    at_limit = context(balances=balances, exposure_usd={"SOL": 500.0})
    over = context(balances=balances, exposure_usd={"SOL": 500.01})

    assert isinstance(judge(sized(1000.0, **cross), at_limit), Approved)  # 500 + 1000 ETH + 1000 BTC short
    denied(judge(sized(1000.0, **cross), over), DenyReason.OPEN_EXPOSURE)
    assert isinstance(judge(sized(1000.0), over), Approved), "USDT is cash: BTC/USDT adds only BTC exposure"


# --- executions, market data, order rate -------------------------------------------------------------------------


def test_a_new_execution_beyond_the_concurrent_limit_is_denied_but_a_leg_of_a_running_one_passes() -> None:
    full = context(executions={"e1", "e2"})
    room = context(executions={"e2"})

    result = denied(judge(order(execution_id="e3"), full), DenyReason.CONCURRENT_EXECUTIONS)
    assert "max_concurrent_executions 2" in result.detail
    assert isinstance(judge(order(execution_id="e2"), full), Approved)
    assert isinstance(judge(order(execution_id="e3"), room), Approved)


def test_quote_age_at_the_limit_passes_and_older_is_denied() -> None:
    assert isinstance(judge(order(quote_age_ms=1000.0)), Approved)

    result = denied(judge(order(quote_age_ms=1000.1)), DenyReason.STALE_QUOTE)
    assert "max_quote_age_ms 1000" in result.detail
    assert "1000.1" in result.detail


def test_a_new_order_not_priced_off_a_quote_is_denied_but_a_hedge_may_be() -> None:
    ctx = context(exposure_usd={"BTC": -1000.0})

    denied(judge(order(quote_age_ms=None)), DenyReason.STALE_QUOTE)
    assert isinstance(judge(order(quote_age_ms=None, intent=OrderIntent.HEDGE), ctx), Approved)


@pytest.mark.parametrize("state", ["stale", "down", "starting", None])
def test_an_order_on_a_venue_that_is_not_connected_is_denied(state: str | None) -> None:
    venue_state = {"okx": "connected"} if state is None else {"binance": state}

    result = denied(judge(order(), context(venue_state=venue_state)), DenyReason.VENUE_UNHEALTHY)
    assert f"venue binance is {state or 'unknown'}" in result.detail


def test_order_rate_counts_orders_in_the_last_second_on_both_sides_of_the_window_edge() -> None:
    second = ORDER_RATE_WINDOW_NS
    five_inside = deque([NOW - second + 1, NOW - 400, NOW - 300, NOW - 200, NOW - 100])
    oldest_on_the_edge = deque([NOW - second, NOW - 400, NOW - 300, NOW - 200, NOW - 100])

    result = denied(judge(order(), context(order_times_ns={"binance": five_inside})), DenyReason.ORDER_RATE)
    assert "max_orders_per_s 5" in result.detail
    assert isinstance(judge(order(), context(order_times_ns={"binance": oldest_on_the_edge})), Approved)
    assert isinstance(judge(order(venue="okx"), context(order_times_ns={"binance": five_inside})), Approved)


def test_record_order_keeps_only_the_last_second_of_send_times() -> None:
    ctx = context()

    for ts in (NOW, NOW + 500, NOW + ORDER_RATE_WINDOW_NS, NOW + ORDER_RATE_WINDOW_NS + 1):
        ctx.record_order("binance", ts)

    assert list(ctx.order_times_ns["binance"]) == [
        NOW + 500,
        NOW + ORDER_RATE_WINDOW_NS,
        NOW + ORDER_RATE_WINDOW_NS + 1,
    ]


# --- funds -------------------------------------------------------------------------------------------------------


def test_a_buy_needs_amount_times_price_of_the_quote_asset() -> None:
    exact = context(balances={("binance", "USDT"): Decimal("600.00")})
    short = context(balances={("binance", "USDT"): Decimal("599.99")})

    assert judge(order(), exact) == Approved("USDT", Decimal("600.00"))
    result = denied(judge(order(), short), DenyReason.BALANCE)
    assert "needs 600.00 USDT on binance, balance is 599.99" in result.detail


def test_a_sell_needs_the_base_asset() -> None:
    exact = context(balances={("binance", "BTC"): Decimal("0.01")})
    short = context(balances={("binance", "BTC"): Decimal("0.0099")})

    assert judge(order(side=Side.SELL), exact) == Approved("BTC", Decimal("0.01"))
    denied(judge(order(side=Side.SELL), short), DenyReason.BALANCE)


def test_an_unknown_balance_is_denied_not_read_as_enough() -> None:
    result = denied(judge(order(), context(balances={})), DenyReason.BALANCE)

    assert "unknown" in result.detail


def test_funds_reserved_by_orders_in_flight_are_not_available() -> None:
    balances = {("binance", "USDT"): Decimal("1000")}
    fits = context(balances=balances, reserved={("binance", "USDT"): Decimal("400")})
    over = context(balances=balances, reserved={("binance", "USDT"): Decimal("400.01")})

    assert isinstance(judge(order(), fits), Approved)
    result = denied(judge(order(), over), DenyReason.RESERVED_BALANCE)
    assert "400.01 reserved" in result.detail


def test_reserving_what_an_approval_asks_for_stops_a_second_order_spending_the_same_funds() -> None:
    ctx = context(balances={("binance", "USDT"): Decimal("1000")})

    first = judge(order(), ctx)
    assert isinstance(first, Approved)
    ctx.reserve("binance", first.asset, first.amount)

    denied(judge(order(execution_id="e2"), ctx), DenyReason.RESERVED_BALANCE)


def test_a_perp_order_needs_margin_in_its_quote_whichever_side() -> None:
    ctx = context(balances={("binance", "USDT"): Decimal("600")})

    assert judge(order(perp=True, side=Side.SELL), ctx) == Approved("USDT", Decimal("600.00"))
    denied(judge(order(perp=True, side=Side.SELL), context(balances={})), DenyReason.BALANCE)


# --- account limits: PnL, daily loss, drawdown ---------------------------------------------------------------------


def test_daily_loss_just_short_of_the_limit_passes_and_at_the_limit_denies_and_asks_to_halt() -> None:
    assert isinstance(judge(order(), context(realized_pnl_today_usd=Decimal("-99.99"))), Approved)

    result = denied(judge(order(), context(realized_pnl_today_usd=Decimal("-100"))), DenyReason.DAILY_LOSS)
    assert result.escalate is TradingState.HALTED
    assert "daily_loss_limit_usd" in result.detail
    assert "-100" in result.detail


def test_drawdown_just_short_of_the_limit_passes_and_at_the_limit_denies_and_asks_to_halt() -> None:
    peak = Decimal("10000")

    assert isinstance(judge(order(), context(equity_usd=Decimal("9500.01"), peak_equity_usd=peak)), Approved)
    result = denied(judge(order(), context(equity_usd=Decimal("9500"), peak_equity_usd=peak)), DenyReason.DRAWDOWN)
    assert result.escalate is TradingState.HALTED
    assert "max_drawdown 0.05" in result.detail
    assert "5.0000%" in result.detail


@pytest.mark.parametrize("unknown", ["realized_pnl_today_usd", "equity_usd", "peak_equity_usd"])
def test_unknown_pnl_or_equity_fails_closed_and_asks_to_halt(unknown: str) -> None:
    result = denied(judge(order(), context(**{unknown: None})), DenyReason.PNL_UNKNOWN)

    assert result.escalate is TradingState.HALTED
    assert unknown in result.detail


def test_a_not_a_number_pnl_is_unknown_not_a_pass() -> None:
    result = denied(judge(order(), context(realized_pnl_today_usd=Decimal("NaN"))), DenyReason.PNL_UNKNOWN)

    assert result.escalate is TradingState.HALTED


def test_a_hedge_passes_whatever_the_pnl_so_exposure_can_always_be_closed() -> None:
    ctx = context(realized_pnl_today_usd=None, exposure_usd={"BTC": -600.0})

    assert isinstance(judge(order(intent=OrderIntent.HEDGE), ctx), Approved)


# --- trading states and risk-reducing orders -----------------------------------------------------------------------


def test_halted_denies_new_orders_and_lets_hedges_unwinds_and_cancels_through() -> None:
    ctx = context(exposure_usd={"BTC": 600.0})
    sell = {"side": Side.SELL}

    result = denied(judge(order(**sell), ctx, TradingState.HALTED), DenyReason.HALTED)
    assert "kill switch" in result.detail
    assert isinstance(judge(order(intent=OrderIntent.HEDGE, **sell), ctx, TradingState.HALTED), Approved)
    assert isinstance(judge(order(intent=OrderIntent.UNWIND, **sell), ctx, TradingState.HALTED), Approved)
    assert judge(order(intent=OrderIntent.CANCEL), ctx, TradingState.HALTED) == Approved()


def test_reducing_denies_orders_that_add_exposure_and_allows_those_that_reduce_it() -> None:
    ctx = context(exposure_usd={"BTC": -600.0})

    denied(judge(order(), ctx, TradingState.REDUCING), DenyReason.REDUCING_ONLY)
    assert isinstance(judge(order(intent=OrderIntent.UNWIND), ctx, TradingState.REDUCING), Approved)


def test_a_risk_reducing_order_must_face_the_exposure_it_claims_to_reduce() -> None:
    long_btc = context(exposure_usd={"BTC": 1000.0})

    result = denied(judge(order(intent=OrderIntent.HEDGE), long_btc), DenyReason.NOT_REDUCING)  # a buy: adds
    assert "does not reduce" in result.detail
    denied(judge(order(intent=OrderIntent.HEDGE, side=Side.SELL), context()), DenyReason.NOT_REDUCING)


def test_a_risk_reducing_order_may_exceed_the_exposure_only_by_the_tolerance() -> None:
    long_btc = context(exposure_usd={"BTC": 1000.0}, balances={("okx", "BTC"): Decimal(2000)})
    hedge = {"intent": OrderIntent.HEDGE, "side": Side.SELL, "venue": "okx"}  # `sized`: 1 BTC per USD

    assert isinstance(judge(sized(1050.0, **hedge), long_btc), Approved)
    denied(judge(sized(1050.01, **hedge), long_btc), DenyReason.NOT_REDUCING)


def test_a_hedge_is_not_held_to_the_opening_limits() -> None:
    ctx = context(
        exposure_usd={"BTC": -3000.0},
        venue_notional_usd={"binance": 5000.0},
        instrument_notional_usd={"BTC/USD": 2500.0},
        executions={"e7", "e8"},
    )

    assert isinstance(judge(sized(1500.0, intent=OrderIntent.HEDGE), ctx), Approved)


def test_a_hedge_still_needs_a_live_venue_and_the_funds() -> None:
    ctx = context(exposure_usd={"BTC": -600.0}, venue_state={"binance": "down"})

    denied(judge(order(intent=OrderIntent.HEDGE), ctx), DenyReason.VENUE_UNHEALTHY)
    poor = context(exposure_usd={"BTC": -600.0}, balances={("binance", "USDT"): Decimal(1)})
    denied(judge(order(intent=OrderIntent.HEDGE), poor), DenyReason.BALANCE)


def test_a_cancel_is_always_approved_and_needs_no_funds() -> None:
    ctx = context(venue_state={}, balances={}, realized_pnl_today_usd=None)

    assert judge(order(intent=OrderIntent.CANCEL, amount=Decimal(0)), ctx, TradingState.HALTED) == Approved(
        "", Decimal(0)
    )


# --- bad requests ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"amount": Decimal(0)},
        {"amount": Decimal("-0.01")},
        {"amount": Decimal("NaN")},
        {"price": Decimal(0)},
        {"price": Decimal("Infinity")},
        {"notional_usd": math.nan},
        {"notional_usd": math.inf},
        {"notional_usd": 0.0},
    ],
)
def test_a_malformed_request_is_denied_naming_its_values_not_raised(bad: dict[str, object]) -> None:
    result = denied(judge(order(**bad)), DenyReason.INVALID_REQUEST)

    assert "amount=" in result.detail
    assert "notional_usd=" in result.detail


def test_a_not_a_number_quote_age_is_stale_not_fresh() -> None:
    denied(judge(order(quote_age_ms=math.nan)), DenyReason.STALE_QUOTE)
