"""A pool's exact amounts at several sizes -> a Quote whose depth reproduces them (price *at size* on both sides).

Why depth levels and not one price: the scanner computes slippage by walking a quote's depth, so the DEX quote's
levels are built such that walking them reproduces the pool's own execution: for sizes s1 < s2 < ... with exact
amounts a(s_k) (quote received for selling s_k base, or quote paid for buying s_k base), level k has size
s_k - s_(k-1) and price (a(s_k) - a(s_(k-1))) / (s_k - s_(k-1)) (the marginal price over that slice). Walking the book
to exactly s_k then costs a(s_k): the VWAP at every ladder size *is* the pool's executable price, to float precision.
Between ladder sizes the walk interpolates linearly, which is conservative (a pool's cost is convex in size: buying
costs at most, selling yields at least, what the walk says).

The top of book is the first slice (the smallest ladder size), so `bid`/`ask` already include the pool fee and the
price impact of that size; it is not the pool's fee-free mid. Whoever costs a DEX leg must therefore not charge the
venue's `fees.taker` on top of these prices (it is in them already); only gas is extra (`arb.connectors.dex.gas`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec

from arb.model import MAX_DEPTH, Quote, quote_problems

DEFAULT_FRACTIONS: Final = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.02, 0.05, 0.1)
"""Ladder sizes as fractions of the pool's base-token reserve: from dust to 10 % of the pool (which moves a v2 price
by ~21 %); beyond that no arbitrage is executable anyway."""


class Ladder(msgspec.Struct, frozen=True):
    """Exact integer token amounts of one pool at one block (what the contracts would do), base first.

    `sells`: (base in, quote out) for selling base; `buys`: (base out, quote in) for buying base. Both by size."""

    sells: tuple[tuple[int, int], ...]
    buys: tuple[tuple[int, int], ...]


def ladder_sizes(reserve_base: int, fractions: Sequence[float] = DEFAULT_FRACTIONS) -> list[int]:
    """Base-token sizes (integer units) for a pool holding `reserve_base`; strictly increasing, at most MAX_DEPTH."""
    if not 0 < len(fractions) <= MAX_DEPTH:
        raise ValueError(f"need 1..{MAX_DEPTH} ladder fractions, got {len(fractions)}")
    if any(not 0 < f < 1 for f in fractions) or list(fractions) != sorted(set(fractions)):
        raise ValueError(f"ladder fractions must be increasing and in (0, 1), got {list(fractions)}")
    sizes = sorted({int(reserve_base * f) for f in fractions} - {0})
    return sizes


def _levels(
    points: Sequence[tuple[int, int]], base_scale: float, quote_scale: float, *, descending: bool
) -> tuple[tuple[float, float], ...]:
    """Marginal (price, size) slices of cumulative (base, quote) points. A slice whose price does not move strictly
    in the book's direction (integer rounding at dust sizes) is merged with the one before it, by dropping the
    breakpoint between them, so the cumulative amounts at every remaining breakpoint stay exact."""
    kept: list[tuple[int, int]] = [(0, 0)]
    prices: list[float] = []
    for base, quote in points:
        if base <= kept[-1][0] or quote <= 0:
            continue
        while True:
            b0, q0 = kept[-1]
            price = ((quote - q0) / quote_scale) / ((base - b0) / base_scale)
            if prices and not (price < prices[-1] if descending else price > prices[-1]):
                kept.pop()
                prices.pop()
                continue
            break
        if price <= 0:
            continue
        kept.append((base, quote))
        prices.append(price)
    return tuple((p, (kept[i + 1][0] - kept[i][0]) / base_scale) for i, p in enumerate(prices))


def ladder_quote(
    venue: str,
    instrument: str,
    ladder: Ladder,
    *,
    base_decimals: int,
    quote_decimals: int,
    block: int,
    ts_exchange: int,
    ts_recv: int,
) -> Quote | str:
    """The Quote for one pool at one block (sequence = block number), or why there is none."""
    base_scale, quote_scale = 10.0**base_decimals, 10.0**quote_decimals
    bids = _levels(ladder.sells, base_scale, quote_scale, descending=True)
    asks = _levels(ladder.buys, base_scale, quote_scale, descending=False)
    if not bids or not asks:
        return "one-sided: the pool cannot price both sides (no liquidity)"
    quote = Quote(
        venue=venue,
        instrument=instrument,
        bid=bids[0][0],
        bid_size=bids[0][1],
        ask=asks[0][0],
        ask_size=asks[0][1],
        ts_exchange=ts_exchange,
        ts_recv=ts_recv,
        sequence=block,
        bids=bids,
        asks=asks,
    )
    problems = quote_problems(quote)
    return "; ".join(problems) if problems else quote
