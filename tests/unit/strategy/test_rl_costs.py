"""The RL cost model by hand: fee, square-root slippage, taker/maker trade cost, liquidation price, reward."""

from __future__ import annotations

import math

import pytest

from arb.config.schema import RewardWeights, RLSettings
from arb.strategy.rl import costs

RL = RLSettings(taker_fee=0.0005, maker_fee=0.0002, slippage_bps=1.0, slippage_ref_notional=10_000.0)


def test_fee_is_rate_times_absolute_notional_for_either_side() -> None:
    assert costs.fee(10_000.0, 0.0005) == pytest.approx(5.0)
    assert costs.fee(-10_000.0, 0.0005) == pytest.approx(5.0)
    assert costs.fee(0.0, 0.0005) == 0.0


def test_slippage_is_bps_at_the_reference_size_and_grows_with_the_square_root() -> None:
    # 10,000 at ref 10,000: 1 bp of 10,000 = 1.00
    assert costs.slippage(10_000.0, 1.0, 10_000.0) == pytest.approx(1.0)
    # 4x the size slips 2 bp: 40,000 * 2e-4 = 8.00
    assert costs.slippage(-40_000.0, 1.0, 10_000.0) == pytest.approx(8.0)
    # a quarter of the size at 2 bp: 2,500 * 2e-4 * 0.5 = 0.25
    assert costs.slippage(2_500.0, 2.0, 10_000.0) == pytest.approx(0.25)


def test_trade_cost_charges_the_taker_fee_unless_maker_plus_slippage_either_way() -> None:
    # taker: 40,000 * 0.0005 = 20 + slippage 8 = 28; maker: 40,000 * 0.0002 = 8 + 8 = 16
    assert costs.trade_cost(40_000.0, RL) == pytest.approx(28.0)
    assert costs.trade_cost(-40_000.0, RL, maker=True) == pytest.approx(16.0)


def test_liquidation_price_of_a_long_and_a_short() -> None:
    # long 3x, mm 0.5 %: 100 * (1 - 1/3 + 0.005) = 67.1666...
    assert costs.liquidation_price(100.0, 1, 3.0, 0.005) == pytest.approx(67.16666667)
    # short 3x: 100 * (1 + 1/3 - 0.005) = 132.8333...
    assert costs.liquidation_price(100.0, -1, 3.0, 0.005) == pytest.approx(132.83333333)
    # long 1x: 100 * (0 + 0.005) = 0.5; short 2x: 100 * 1.495 = 149.5
    assert costs.liquidation_price(100.0, 1, 1.0, 0.005) == pytest.approx(0.5)
    assert costs.liquidation_price(100.0, -1, 2.0, 0.005) == pytest.approx(149.5)


def test_liquidation_price_at_the_formula_edges() -> None:
    # under 1x a long can never be liquidated: the price is negative
    assert costs.liquidation_price(100.0, 1, 0.5, 0.005) == pytest.approx(-99.5)
    # an account with no margin left (infinite leverage) is liquidated at the maintenance margin beside the entry
    assert costs.liquidation_price(100.0, 1, math.inf, 0.005) == pytest.approx(100.5)


@pytest.mark.parametrize(
    ("entry", "side", "leverage", "mm"),
    [(100.0, 0, 2.0, 0.005), (0.0, 1, 2.0, 0.005), (100.0, 1, 0.0, 0.005), (100.0, 1, math.nan, 0.005),
     (100.0, 1, 2.0, 1.0), (math.inf, -1, 2.0, 0.005)],
)  # fmt: skip
def test_liquidation_price_refuses_nonsense(entry: float, side: int, leverage: float, mm: float) -> None:
    with pytest.raises(ValueError, match=r"side|entry|leverage|maintenance"):
        costs.liquidation_price(entry, side, leverage, mm)


def test_fee_and_slippage_refuse_bad_numbers() -> None:
    with pytest.raises(ValueError, match="rate"):
        costs.fee(100.0, -0.001)
    with pytest.raises(ValueError, match="traded_notional"):
        costs.fee(math.nan, 0.001)
    with pytest.raises(ValueError, match="ref_notional"):
        costs.slippage(100.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="bps"):
        costs.slippage(100.0, -1.0, 10_000.0)


W = RewardWeights(alpha=1.0, beta=0.05, gamma=0.5, delta=0.01, early_drawdown=1.0, early_steps=48)


def test_reward_weighs_pnl_sharpe_drawdown_and_risk() -> None:
    # after the early steps: 0.002 + 0.05*0.4 - 0.5*0.001 - 0.01*0.01 = 0.002 + 0.02 - 0.0005 - 0.0001 = 0.0214
    assert costs.reward(0.002, 0.4, 0.001, 0.01, 48, W) == pytest.approx(0.0214)


def test_reward_punishes_a_drawdown_harder_in_the_early_steps_on_both_sides_of_the_boundary() -> None:
    # step 47 is still early: drawdown weight 0.5 + 1.0 -> 0.002 + 0.02 - 0.0015 - 0.0001 = 0.0204
    assert costs.reward(0.002, 0.4, 0.001, 0.01, 47, W) == pytest.approx(0.0204)
    assert costs.reward(0.002, 0.4, 0.001, 0.01, 0, W) == pytest.approx(0.0204)
    assert costs.reward(0.002, 0.4, 0.001, 0.01, 48, W) == pytest.approx(0.0214)


def test_reward_follows_custom_weights() -> None:
    w = RewardWeights(alpha=2.0, beta=0.0, gamma=1.0, delta=0.5, early_drawdown=0.0, early_steps=0)
    # 2*(-0.01) + 0 - 1*0.02 - 0.5*0.03 = -0.02 - 0.02 - 0.015 = -0.055
    assert costs.reward(-0.01, 0.9, 0.02, 0.03, 0, w) == pytest.approx(-0.055)


def test_reward_refuses_negative_drawdown_risk_or_non_finite_inputs() -> None:
    with pytest.raises(ValueError, match="drawdown"):
        costs.reward(0.0, 0.0, -0.1, 0.0, 0, W)
    with pytest.raises(ValueError, match="risk"):
        costs.reward(0.0, 0.0, 0.0, -0.1, 0, W)
    with pytest.raises(ValueError, match="pnl"):
        costs.reward(math.nan, 0.0, 0.0, 0.0, 0, W)
    with pytest.raises(ValueError, match="step"):
        costs.reward(0.0, 0.0, 0.0, 0.0, -1, W)
