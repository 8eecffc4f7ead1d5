"""The spread matrix: every ordered venue pair of every instrument, fee-, haircut-, gas- and slippage-adjusted.

Why two stages: 300 instruments × 20 venues is 120,000 ordered pairs, and the book walk that sizes a pair is the
expensive part. Costs are non-negative and walking a book only worsens the price, so the top-of-book edge after fees
and haircuts is an *upper bound* of the sized net edge. Stage one computes, per instrument row, a bound that holds for
every pair of the row at once (best bid anywhere vs best ask anywhere, cheapest leg costs) in a few numpy reductions
over the whole grid; stage two takes only the rows that pass, builds their (venue × venue) top-of-book edge matrix and
walks the books of the pairs above the threshold. In a calm market almost no row passes, so a full scan costs the
reductions; a dislocated row costs one small matrix and one walk per pair that can pay.

Sizing (DESIGN: slippage from depth): each leg may use only book levels within `max_slippage` of its best price; the
size is the smaller leg's depth within that cap, capped by the per-trade notional limit; the VWAP of each leg is its
walk to that size. A cell with no depth (a top-of-book-only venue) uses the impact model instead (price moves
`impact` per top size traded, at most `depth_multiple` top sizes) and the result says `depth_estimated`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from arb.scanner.costs import CostModel

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Limits:
    """The thresholds one scan applies (fractions; notionals in USD)."""

    min_edge: float
    max_slippage: float
    min_notional_usd: float
    max_notional_usd: float
    impact: float = 0.0002
    depth_multiple: float = 1.0

    def __post_init__(self) -> None:
        for name in ("min_edge", "max_slippage", "min_notional_usd", "max_notional_usd", "impact", "depth_multiple"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.max_notional_usd < self.min_notional_usd:
            raise ValueError("max_notional_usd must be >= min_notional_usd")


class Books(NamedTuple):
    """What the kernel reads: top of book (instruments × venues) and depth (instruments × venues × levels, NaN past
    a book's end). A `GridMirror` built with `depth=N` is one."""

    bid: FloatArray
    ask: FloatArray
    bid_size: FloatArray
    ask_size: FloatArray
    bid_px: FloatArray
    bid_qty: FloatArray
    ask_px: FloatArray
    ask_qty: FloatArray


class Candidate(NamedTuple):
    """One sized pair that clears the minimum net edge: buy on venue column `buy`, sell on `sell`."""

    row: int
    buy: int
    sell: int
    size: float
    notional: float
    best_ask: float
    best_bid: float
    vwap_buy: float
    vwap_sell: float
    gross: float
    slippage: float
    fee_buy: float
    fee_sell: float
    gas: float
    haircut: float
    net: float
    depth_estimated: bool


def screen_rows(bid: FloatArray, ask: FloatArray, cost: FloatArray, usable: BoolArray, min_edge: float) -> IntArray:
    """Rows where some ordered pair of usable venues *may* clear `min_edge` (a superset: no row that can is left
    out, since bid_b > ask_a (1 + m + c_a + c_b) implies max bid > min ask (1 + m + 2 min c))."""
    best_bid = np.where(usable, bid, -np.inf).max(axis=1)
    best_ask = np.where(usable, ask, np.inf).min(axis=1)
    cheapest = np.where(usable, cost, np.inf).min(axis=1)
    with np.errstate(invalid="ignore", over="ignore"):
        passing = best_bid > best_ask * (1.0 + min_edge + 2.0 * cheapest)
    rows: IntArray = np.flatnonzero(passing)
    return rows


def _levels(px: FloatArray, qty: FloatArray, i: int, j: int) -> tuple[list[float], list[float]]:
    if px.shape[2] == 0:
        return [], []
    p = px[i, j]
    n = int(np.count_nonzero(p == p))  # levels are packed from the front; NaN pads the rest
    return p[:n].tolist(), qty[i, j, :n].tolist()


def _capacity(prices: list[float], sizes: list[float], limit: float, buying: bool) -> float:
    total = 0.0
    for p, q in zip(prices, sizes, strict=True):
        if (p > limit) if buying else (p < limit):
            break
        total += q
    return total


def _vwap(prices: list[float], sizes: list[float], size: float) -> float:
    remaining, cost = size, 0.0
    for p, q in zip(prices, sizes, strict=True):
        take = q if q < remaining else remaining
        cost += take * p
        remaining -= take
        if remaining <= 0.0:
            break
    return cost / (size - remaining)


class _Leg(NamedTuple):
    prices: list[float]
    sizes: list[float]
    top: float
    top_size: float
    capacity: float
    estimated: bool


def _leg(books: Books, i: int, j: int, buying: bool, limits: Limits) -> _Leg:
    if buying:
        top, top_size = float(books.ask[i, j]), float(books.ask_size[i, j])
        prices, sizes = _levels(books.ask_px, books.ask_qty, i, j)
        limit = top * (1.0 + limits.max_slippage)
    else:
        top, top_size = float(books.bid[i, j]), float(books.bid_size[i, j])
        prices, sizes = _levels(books.bid_px, books.bid_qty, i, j)
        limit = top * (1.0 - limits.max_slippage)
    if prices:
        return _Leg(prices, sizes, top, top_size, _capacity(prices, sizes, limit, buying), False)
    # top of book only: the impact model (price moves `impact` per top size traded)
    cap = top_size * limits.depth_multiple
    if limits.impact > 0:
        cap = min(cap, top_size * limits.max_slippage / limits.impact)
    return _Leg([], [], top, top_size, cap, True)


def _leg_vwap(leg: _Leg, size: float, buying: bool, impact: float) -> float:
    if not leg.estimated:
        return _vwap(leg.prices, leg.sizes, size)
    move = impact * size / leg.top_size if leg.top_size > 0 else 0.0
    return leg.top * (1.0 + move) if buying else leg.top * (1.0 - move)


def size_pair(books: Books, costs: CostModel, i: int, a: int, b: int, limits: Limits) -> Candidate | None:
    """Size and cost buying instrument row `i` on venue column `a` and selling on `b`; None when the pair cannot
    trade the minimum notional within the slippage cap, or does not clear the minimum net edge."""
    buy = _leg(books, i, a, True, limits)
    sell = _leg(books, i, b, False, limits)
    usd = float(costs.usd_per_quote[i])
    size = min(buy.capacity, sell.capacity, limits.max_notional_usd / usd / buy.top)
    if not size > 0.0:
        return None
    vwap_buy = _leg_vwap(buy, size, True, limits.impact)
    vwap_sell = _leg_vwap(sell, size, False, limits.impact)
    notional = size * vwap_buy
    if notional * usd < limits.min_notional_usd:
        return None
    fee_buy, fee_sell = float(costs.fee[i, a]), float(costs.fee[i, b])
    haircut = float(costs.haircut[i, a] + costs.haircut[i, b])
    gas = float(costs.gas_quote[i, a] + costs.gas_quote[i, b]) / notional
    gross = (sell.top - buy.top) / buy.top
    after_slippage = (vwap_sell - vwap_buy) / vwap_buy
    net = after_slippage - fee_buy - fee_sell - gas - haircut
    if not net >= limits.min_edge:  # also False for NaN (an unpriced cost)
        return None
    return Candidate(
        i, a, b, size, notional, buy.top, sell.top, vwap_buy, vwap_sell, gross, gross - after_slippage,
        fee_buy, fee_sell, gas, haircut, net, buy.estimated or sell.estimated,
    )  # fmt: skip


def scan_row(books: Books, costs: CostModel, usable: BoolArray, i: int, limits: Limits) -> list[Candidate]:
    """Every ordered pair of row `i` that clears the limits, best net edge first."""
    cols = np.flatnonzero(usable[i])
    if cols.size < 2:
        return []
    bid, ask, cost = books.bid[i, cols], books.ask[i, cols], costs.cost[i, cols]
    edge = bid[None, :] / ask[:, None] - 1.0 - cost[:, None] - cost[None, :]  # [buy, sell], an upper bound
    pairs = np.argwhere(edge > limits.min_edge)
    out = []
    for ka, kb in pairs.tolist():
        found = size_pair(books, costs, i, int(cols[ka]), int(cols[kb]), limits)
        if found is not None:
            out.append(found)
    out.sort(key=lambda c: -c.net)
    return out


def scan(
    books: Books, costs: CostModel, usable: BoolArray, limits: Limits, rows: IntArray | None = None
) -> list[Candidate]:
    """Every qualifying pair in `rows` (all rows when None), screened first (see the module docstring)."""
    if rows is None:
        candidates = screen_rows(books.bid, books.ask, costs.cost, usable, limits.min_edge)
    elif rows.size == 0:
        return []
    else:
        bid, ask, cost = books.bid[rows], books.ask[rows], costs.cost[rows]
        candidates = rows[screen_rows(bid, ask, cost, usable[rows], limits.min_edge)]
    out: list[Candidate] = []
    for i in candidates.tolist():
        out.extend(scan_row(books, costs, usable, i, limits))
    return out
