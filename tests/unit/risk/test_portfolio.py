"""Portfolio metrics against figures worked out by hand."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest

from arb.risk.portfolio import (
    Drawdown,
    exposure,
    historical_var,
    kelly_fraction,
    max_drawdown,
    parametric_var,
    value_at_risk,
)

Z95 = 1.6448536269514722
Z99 = 2.3263478740408408
TWENTY_DAYS = [float(x) for x in range(-10, 10)]
"""PnL -10, -9, ..., 9: one day in twenty (5 %) lost 10, two in twenty lost 9 or more."""


def test_historical_var_is_the_loss_at_the_tail_share_of_observed_days() -> None:
    assert historical_var(TWENTY_DAYS, 0.95) == 10.0  # 1 of 20 days at or below -10
    assert historical_var(TWENTY_DAYS, 0.90) == 9.0  # 2 of 20 days at or below -9
    assert historical_var(TWENTY_DAYS[::-1], 0.95) == 10.0, "order does not matter"


def test_historical_var_at_99_of_a_hundred_days_is_the_worst_day() -> None:
    pnl = np.arange(1.0, 101.0) - 50.0  # -49 .. 50

    assert historical_var(pnl, 0.99) == 49.0
    assert historical_var(pnl, 0.95) == 45.0  # the 5th worst day: -45


def test_historical_var_of_a_series_that_never_loses_is_negative() -> None:
    assert historical_var([1.0, 2.0, 3.0], 0.95) == -1.0


def test_parametric_var_is_z_sigma_minus_mean() -> None:
    pnl = [0.0, 2.0]  # mean 1, sample std sqrt(2)

    assert parametric_var(pnl, 0.95) == pytest.approx(Z95 * math.sqrt(2) - 1.0, abs=1e-12)
    assert parametric_var(pnl, 0.99) == pytest.approx(Z99 * math.sqrt(2) - 1.0, abs=1e-12)


def test_value_at_risk_reports_both_at_each_configured_level() -> None:
    [v95, v99] = value_at_risk(TWENTY_DAYS, (0.95, 0.99))

    sigma = float(np.std(TWENTY_DAYS, ddof=1))  # sqrt(35)
    assert sigma == pytest.approx(math.sqrt(35.0))
    assert (v95.confidence, v95.historical, v95.observations) == (0.95, 10.0, 20)
    assert v95.parametric == pytest.approx(Z95 * math.sqrt(35.0) + 0.5)  # mean -0.5
    assert v99.historical == 10.0
    assert v99.parametric == pytest.approx(Z99 * math.sqrt(35.0) + 0.5)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: historical_var([], 0.95), "pnl: needs at least 1"),
        (lambda: parametric_var([1.0], 0.95), "pnl: needs at least 2"),
        (lambda: historical_var([1.0, math.nan], 0.95), r"pnl\[1\] is nan"),
        (lambda: historical_var(np.ones((1, 2)), 0.95), "pnl: expected a 1-D series"),
        (lambda: historical_var([1.0], 95), r"confidence: must be in \(0.5, 1\)"),
    ],
)
def test_var_refuses_bad_input_naming_it(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


def test_max_drawdown_is_the_largest_fall_from_a_running_peak() -> None:
    curve = [100.0, 120.0, 90.0, 110.0, 80.0, 130.0]  # 120 -> 80: a third

    result = max_drawdown(curve)

    assert result.fraction == pytest.approx(1 / 3)
    assert (result.amount, result.peak_index, result.trough_index) == (40.0, 1, 4)


def test_a_rising_curve_has_no_drawdown() -> None:
    assert max_drawdown([1.0, 2.0, 2.0, 3.0]) == Drawdown(fraction=0.0, amount=0.0, peak_index=0, trough_index=0)


def test_drawdown_refuses_non_positive_equity() -> None:
    with pytest.raises(ValueError, match=r"equity\[1\] is 0.0"):
        max_drawdown([1.0, 0.0])


def test_kelly_is_p_minus_q_over_b_floored_at_zero_and_capped() -> None:
    assert kelly_fraction(0.6, 1.0, cap=0.25) == pytest.approx(0.2)  # 0.6 - 0.4 / 1
    assert kelly_fraction(0.6, 2.0, cap=0.25) == 0.25  # full Kelly 0.4, capped
    assert kelly_fraction(0.6, 2.0, cap=1.0) == pytest.approx(0.4)
    assert kelly_fraction(0.4, 1.0, cap=0.25) == 0.0  # negative edge: no bet
    assert kelly_fraction(0.5, 1.0, cap=0.25) == 0.0  # coin flip at even odds


@pytest.mark.parametrize(
    ("args", "message"),
    [((1.2, 1.0, 0.25), "win_rate"), ((0.5, 0.0, 0.25), "payoff_ratio"), ((0.5, 1.0, 0.0), "cap")],
)
def test_kelly_refuses_bad_input_naming_it(args: tuple[float, float, float], message: str) -> None:
    win_rate, payoff, cap = args

    with pytest.raises(ValueError, match=message):
        kelly_fraction(win_rate, payoff, cap=cap)


def test_exposure_nets_assets_across_venues_and_grosses_venues() -> None:
    positions = {
        ("binance", "BTC"): Decimal("0.5"),  # +30,000
        ("okx", "BTC"): Decimal("-0.2"),  # -12,000
        ("okx", "ETH"): Decimal("-2"),  # -6,000
    }

    result = exposure(positions, {"BTC": 60_000.0, "ETH": 3_000.0})

    assert result.by_asset == {"BTC": 18_000.0, "ETH": -6_000.0}
    assert result.by_venue == {"binance": 30_000.0, "okx": 18_000.0}
    assert (result.gross, result.net) == (24_000.0, 12_000.0)


def test_exposure_of_nothing_is_zero() -> None:
    result = exposure({}, {})

    assert (result.by_asset, result.by_venue, result.gross, result.net) == ({}, {}, 0.0, 0.0)


def test_a_position_without_a_price_is_an_error_naming_the_asset_not_zero() -> None:
    with pytest.raises(ValueError, match="no USD price for SOL"):
        exposure({("okx", "SOL"): Decimal(3), ("okx", "BTC"): Decimal(1)}, {"BTC": 60_000.0})
