"""A plain-Python scanner: a dict of venues per instrument and a loop over every ordered pair.

Why keep it: it is the way most arbitrage scripts are written, so it is (1) the specification the vectorised kernel is
property-tested against (same inputs, same pairs, same numbers), (2) the baseline `bench/scanner.py` measures the kernel
against, and (3) what the ground-truth check uses to compute the true net edge of an injected dislocation straight
from the local venues' books. It shares no code with `arb.scanner.kernel` on purpose: two independent implementations
that agree are the evidence; one calling the other would prove nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from arb.model import Quote
from arb.scanner.kernel import Limits


@dataclass(frozen=True, slots=True)
class CellCost:
    """What one leg on one venue costs: taker fee and haircut (fractions), gas (quote currency per swap), and the
    venue quote currency of its symbol (`USDT` for BTC/USDT). Keyword-only and required: the haircut a pair pays
    depends on it (see `pair`), so it is never guessed."""

    fee: float
    haircut: float = 0.0
    gas: float = 0.0
    currency: str = field(kw_only=True)

    def __post_init__(self) -> None:
        if not self.currency:
            raise ValueError("currency must name the venue quote currency of the leg (e.g. 'USDT')")


def pair_haircut(buy: CellCost, sell: CellCost) -> float:
    """What converting between the legs' quote currencies costs, as a fraction of notional: nothing when both legs are
    quoted in the same currency (the profit stays in it, no notional changes currency), else both haircuts (buy for
    USDT, sell for USD: the whole notional moves from one to the other)."""
    return 0.0 if buy.currency == sell.currency else buy.haircut + sell.haircut


@dataclass(frozen=True, slots=True)
class Found:
    instrument: str
    buy_venue: str
    sell_venue: str
    size: float
    vwap_buy: float
    vwap_sell: float
    gross: float
    slippage: float
    gas: float
    haircut: float
    net: float
    depth_estimated: bool


def _book(q: Quote, buying: bool, limits: Limits) -> tuple[list[tuple[float, float]], float, bool]:
    """(levels to walk, size available within the slippage cap, estimated?)."""
    top = q.ask if buying else q.bid
    top_size = q.ask_size if buying else q.bid_size
    levels = list(q.asks if buying else q.bids)
    if not levels:
        available = top_size * limits.depth_multiple
        if limits.impact > 0:
            available = min(available, top_size * limits.max_slippage / limits.impact)
        return [], available, True
    limit = top * (1 + limits.max_slippage) if buying else top * (1 - limits.max_slippage)
    available = 0.0
    for price, size in levels:
        if (buying and price > limit) or (not buying and price < limit):
            break
        available += size
    return levels, available, False


def _average_price(q: Quote, levels: list[tuple[float, float]], size: float, buying: bool, impact: float) -> float:
    if not levels:
        top = q.ask if buying else q.bid
        top_size = q.ask_size if buying else q.bid_size
        move = impact * size / top_size if top_size > 0 else 0.0
        return top * (1 + move) if buying else top * (1 - move)
    left, paid = size, 0.0
    for price, avail in levels:
        take = min(avail, left)
        paid += take * price
        left -= take
        if left <= 0:
            break
    return paid / (size - left)


def pair(
    instrument: str,
    buy: Quote,
    sell: Quote,
    buy_cost: CellCost,
    sell_cost: CellCost,
    usd_per_quote: float,
    limits: Limits,
    *,
    any_edge: bool = False,
) -> Found | None:
    """Buy on `buy`'s venue, sell on `sell`'s: the sized, costed result, or None if it does not clear the limits
    (`any_edge`: whatever its net edge, as long as it can be sized; the ground-truth check wants every edge)."""
    buy_levels, buy_avail, buy_est = _book(buy, True, limits)
    sell_levels, sell_avail, sell_est = _book(sell, False, limits)
    size = min(buy_avail, sell_avail, limits.max_notional_usd / usd_per_quote / buy.ask)
    if size <= 0:
        return None
    vwap_buy = _average_price(buy, buy_levels, size, True, limits.impact)
    vwap_sell = _average_price(sell, sell_levels, size, False, limits.impact)
    notional = size * vwap_buy
    if notional * usd_per_quote < limits.min_notional_usd:
        return None
    gross = (sell.bid - buy.ask) / buy.ask
    realised = (vwap_sell - vwap_buy) / vwap_buy
    gas = (buy_cost.gas + sell_cost.gas) / notional
    haircut = pair_haircut(buy_cost, sell_cost)
    net = realised - buy_cost.fee - sell_cost.fee - gas - haircut
    if math.isnan(net) or (net < limits.min_edge and not any_edge):
        return None
    return Found(
        instrument, buy.venue, sell.venue, size, vwap_buy, vwap_sell, gross, gross - realised, gas, haircut, net,
        buy_est or sell_est,
    )  # fmt: skip


def scan(
    books: Mapping[str, Mapping[str, Quote]],
    costs: Mapping[tuple[str, str], CellCost],
    usd_per_quote: Mapping[str, float],
    limits: Limits,
) -> list[Found]:
    """Every (instrument, buy venue, sell venue) that clears the limits; `books[instrument][venue]` holds only usable
    quotes (fresh, healthy venue). Sorted by instrument, then best net edge first."""
    out: list[Found] = []
    for instrument, venues in books.items():
        found = []
        for buy_venue, buy in venues.items():
            for sell_venue, sell in venues.items():
                if buy_venue == sell_venue:
                    continue
                hit = pair(
                    instrument, buy, sell, costs[instrument, buy_venue], costs[instrument, sell_venue],
                    usd_per_quote[instrument], limits,
                )  # fmt: skip
                if hit is not None:
                    found.append(hit)
        found.sort(key=lambda f: -f.net)
        out.extend(found)
    return out
