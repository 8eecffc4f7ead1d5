"""Uniswap v2 integer math against hand-computed values (the router's formulas, floor division, +1 on amountIn)."""

from __future__ import annotations

import pytest

from arb.connectors.dex import v2


def test_amount_out_matches_the_constant_product_formula_with_the_fee() -> None:
    # 1000 in, reserves 100_000 / 200_000, 0.3 %: 1000*997*200000 / (100000*1000 + 1000*997) = 1974.32... -> 1974
    assert v2.get_amount_out(1000, 100_000, 200_000) == 1974
    # PancakeSwap's 0.25 %: 1000*9975*200000 / (100000*10000 + 1000*9975) = 1975.31... -> 1975
    assert v2.get_amount_out(1000, 100_000, 200_000, fee_num=9975) == 1975


def test_amount_in_rounds_up_like_the_router() -> None:
    # 100000*1974*10000 / ((200000-1974)*9970) = 999.94... -> 999, +1 = 1000
    assert v2.get_amount_in(1974, 100_000, 200_000) == 1000
    # and that input indeed buys at least the output
    assert v2.get_amount_out(v2.get_amount_in(1974, 100_000, 200_000), 100_000, 200_000) >= 1974


def test_997_per_1000_and_9970_per_10000_give_the_same_floor() -> None:
    # Uniswap's own form: amountIn*997*rOut / (rIn*1000 + amountIn*997)
    for amount in (1, 7, 12_345, 10**18, 37 * 10**18):
        r_in, r_out = 1_000 * 10**18, 3_000_000 * 10**18
        uniswap = (amount * 997 * r_out) // (r_in * 1000 + amount * 997)
        assert v2.get_amount_out(amount, r_in, r_out) == uniswap


@pytest.mark.parametrize(("fee", "num"), [(0.003, 9970), (0.0025, 9975), (0.0, 10_000), (0.01, 9900)])
def test_fee_numerator_from_config(fee: float, num: int) -> None:
    assert v2.fee_numerator(fee) == num


@pytest.mark.parametrize("fee", [0.00301, 1.0, -0.001])
def test_a_fee_that_no_pair_charges_is_refused(fee: float) -> None:
    with pytest.raises(ValueError, match="basis points"):
        v2.fee_numerator(fee)


def test_empty_pairs_and_impossible_sizes_are_refused_not_quoted() -> None:
    with pytest.raises(ValueError, match="no liquidity"):
        v2.get_amount_out(1, 0, 100)
    with pytest.raises(ValueError, match="positive"):
        v2.get_amount_out(0, 100, 100)
    with pytest.raises(ValueError, match="not below the output reserve"):
        v2.get_amount_in(100, 100, 100)
    # base reserve 150, quote reserve 1000: 200 base cannot be bought at any price, so it is left out
    # 1000*10*10000 / (140*9970) = 71.6 -> 72; 1000*100*10000 / (50*9970) = 2006.0 -> 2007
    assert v2.buy_ladder([10, 100, 200], 150, 1000, 9970) == [(10, 72), (100, 2007)]
