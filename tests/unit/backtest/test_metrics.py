"""Metrics on tiny equity curves whose figures are worked out by hand in each test."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from arb.backtest.metrics import compute, drawdown


def test_figures_of_a_three_bar_curve_match_the_hand_computation() -> None:
    # returns +10 %, -10 %, +10 %: mean 1/30, sample std sqrt(((1/15)^2 * 2 + (2/15)^2) / 2) = sqrt(1/75)
    equity = np.array([100.0, 110.0, 99.0, 108.9])
    positions = np.array([0.0, 1.0, 1.0, -1.0])
    pnls = np.array([5.0, -2.0, 3.0, -1.0, 0.0])

    m = compute(equity, positions, pnls, periods_per_year=4.0)

    assert m.sharpe == pytest.approx((1 / 30) / math.sqrt(1 / 75) * 2.0)  # = 1/sqrt(3)
    assert m.sharpe == pytest.approx(1 / math.sqrt(3))
    # downside deviation over all 3 returns: sqrt(0.01 / 3)
    assert m.sortino == pytest.approx((1 / 30) / math.sqrt(0.01 / 3) * 2.0)
    assert m.max_drawdown == pytest.approx(0.1)  # 110 -> 99
    assert m.total_return == pytest.approx(0.089)
    assert m.cagr == pytest.approx(1.089 ** (4 / 3) - 1)
    assert m.calmar == pytest.approx((1.089 ** (4 / 3) - 1) / 0.1)
    assert m.annual_vol == pytest.approx(math.sqrt(1 / 75) * 2.0)
    assert m.win_rate == pytest.approx(2 / 5)  # a zero-pnl trade is not a win
    assert m.profit_factor == pytest.approx(8 / 3)
    assert m.trades == 5
    assert m.exposure == pytest.approx(0.75)
    assert m.bars == 3


def test_flat_curve_without_trades_gives_zeros_not_errors() -> None:
    m = compute(np.array([100.0, 100.0, 100.0]), np.zeros(3), np.array([]))

    assert (m.sharpe, m.sortino, m.calmar, m.max_drawdown) == (0.0, 0.0, 0.0, 0.0)
    assert (m.win_rate, m.profit_factor, m.total_return, m.cagr, m.trades, m.exposure) == (0.0, 0.0, 0.0, 0.0, 0, 0.0)


def test_ratios_with_a_zero_denominator_and_a_positive_numerator_are_none() -> None:
    # +100 % twice: no variation, no losing bar, no drawdown; one winning trade and no losing one
    m = compute(np.array([100.0, 200.0, 400.0]), np.ones(3), np.array([300.0]))

    assert m.sharpe is None
    assert m.sortino is None
    assert m.calmar is None
    assert m.profit_factor is None
    assert m.win_rate == 1.0
    assert m.max_drawdown == 0.0
    json.dumps(m.to_dict(), allow_nan=False)  # None, never inf/NaN


def test_a_single_point_curve_has_no_returns() -> None:
    m = compute(np.array([100.0]), np.zeros(1), np.array([]))

    assert m.bars == 0
    assert (m.sharpe, m.sortino, m.total_return, m.cagr, m.annual_vol) == (0.0, 0.0, 0.0, 0.0, 0.0)


def test_ruin_is_a_full_drawdown_and_a_total_loss() -> None:
    m = compute(np.array([100.0, 50.0, 0.0, 0.0]), np.array([0.0, 1.0, 1.0, 0.0]), np.array([-100.0]))

    assert m.max_drawdown == 1.0
    assert m.total_return == -1.0
    assert m.cagr == -1.0
    assert m.calmar == -1.0
    # returns -0.5, -1, then 0 (nothing left): mean -0.5, std 0.5
    assert m.sharpe == pytest.approx(-0.5 / 0.5 * math.sqrt(8760.0))


def test_drawdown_series_is_relative_to_the_running_peak() -> None:
    np.testing.assert_allclose(drawdown(np.array([100.0, 120.0, 90.0, 130.0])), [0.0, 0.0, 0.25, 0.0])


@pytest.mark.parametrize(
    ("equity", "message"),
    [
        (np.array([100.0, -1.0]), "finite and >= 0"),
        (np.array([100.0, np.nan]), "finite and >= 0"),
        (np.array([0.0, 1.0]), "starting capital"),
        (np.array([]), "non-empty"),
    ],
)
def test_bad_equity_is_refused_naming_the_problem(equity: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute(equity, np.zeros(len(equity)), np.array([]))


def test_bad_periods_per_year_is_refused() -> None:
    with pytest.raises(ValueError, match="periods_per_year"):
        compute(np.array([1.0, 2.0]), np.zeros(2), np.array([]), periods_per_year=0.0)
