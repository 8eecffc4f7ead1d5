"""Uniswap v2 constant-product math, exactly as the pair and router contracts do it (integers, floor division).

Why local math and not one `getAmountsOut` call per size: a pair's whole curve follows from its two reserves, so one
`getReserves` per block prices every size on both sides; the integer formulas below are the router's
(`UniswapV2Library.getAmountOut` / `getAmountIn`), so the result equals the router's to the wei (tested against the
deployed router). Forks differ only in the fee: Uniswap v2 and SushiSwap keep 997/1000, PancakeSwap v2 9975/10000;
both are written here as `fee_num / FEE_DEN` with `FEE_DEN = 10_000` (997/1000 == 9970/10000 gives the same floor).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

FEE_DEN: Final = 10_000


def fee_numerator(fee: float) -> int:
    """The pair's `fee_num` (out of 10 000) for a fee fraction from config (0.003 -> 9970, 0.0025 -> 9975).

    Raises ValueError for a fee that is not a whole number of basis points: such a pair does not exist, and rounding
    it would quote a price the contract does not give."""
    bps = Decimal(str(fee)) * FEE_DEN
    if bps != bps.to_integral_value() or not 0 <= bps < FEE_DEN:
        raise ValueError(f"v2 fee {fee!r} is not a whole number of basis points in [0, 1)")
    return FEE_DEN - int(bps)


def get_amount_out(amount_in: int, reserve_in: int, reserve_out: int, fee_num: int = 9970) -> int:
    """Output of swapping `amount_in` into the pair (UniswapV2Library.getAmountOut)."""
    if amount_in <= 0:
        raise ValueError(f"amount_in must be positive, got {amount_in}")
    if reserve_in <= 0 or reserve_out <= 0:
        raise ValueError("the pair has no liquidity (a reserve is 0)")
    with_fee = amount_in * fee_num
    return (with_fee * reserve_out) // (reserve_in * FEE_DEN + with_fee)


def get_amount_in(amount_out: int, reserve_in: int, reserve_out: int, fee_num: int = 9970) -> int:
    """Input needed to receive exactly `amount_out` (UniswapV2Library.getAmountIn, which rounds up by adding 1)."""
    if amount_out <= 0:
        raise ValueError(f"amount_out must be positive, got {amount_out}")
    if reserve_in <= 0 or reserve_out <= 0:
        raise ValueError("the pair has no liquidity (a reserve is 0)")
    if amount_out >= reserve_out:
        raise ValueError(f"amount_out {amount_out} is not below the output reserve {reserve_out}")
    return (reserve_in * amount_out * FEE_DEN) // ((reserve_out - amount_out) * fee_num) + 1


def sell_ladder(sizes: list[int], reserve_base: int, reserve_quote: int, fee_num: int) -> list[tuple[int, int]]:
    """(base in, quote out) for selling each size of base into the pair."""
    return [(s, get_amount_out(s, reserve_base, reserve_quote, fee_num)) for s in sizes]


def buy_ladder(sizes: list[int], reserve_base: int, reserve_quote: int, fee_num: int) -> list[tuple[int, int]]:
    """(base out, quote in) for buying each size of base from the pair (sizes at or above the base reserve are
    left out: the pair cannot give them at any price)."""
    return [(s, get_amount_in(s, reserve_quote, reserve_base, fee_num)) for s in sizes if s < reserve_base]
