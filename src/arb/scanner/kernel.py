"""The spread matrix: every ordered venue pair of every instrument, fee-, haircut-, gas- and slippage-adjusted.

Why compiled (numba, as hftbacktest does): the work per pair is a few comparisons and a walk of <= 20 levels; in
Python each numpy call or list conversion costs more than that work, so a dislocated row (~20 pairs to size) took
~800 µs interpreted against ~µs compiled. The compiled function is cached on disk (first use in a fresh install
compiles it once, a few seconds).

Why two stages: 300 instruments × 20 venues is 120,000 ordered pairs, and the book walk that sizes a pair is the
expensive part. Costs are non-negative and walking a book only worsens the price, so the top-of-book edge after fees
and the pair's haircut is an *upper bound* of the sized net edge. Stage one computes, per instrument row, a bound that
holds for every pair of the row at once (best bid anywhere vs best ask anywhere, twice the cheapest taker fee; no
haircut, since a pair whose legs share a venue quote currency pays none) in one pass over the row's cells; stage two
takes only the rows that pass, computes each pair's top-of-book edge after its fees and haircut and walks the books of
the pairs above the threshold. In a calm market almost no row passes, so a full scan costs the screens; a dislocated
row costs one top-of-book check per pair and one walk per pair that can pay.

Haircut (see `arb.scanner.costs`): a pair pays `haircut[i, a] + haircut[i, b]` only when `quote_code[i, a] !=
quote_code[i, b]` (USDT bought, USD sold); same-currency legs pay none.

Sizing (DESIGN: slippage from depth): each leg may use only book levels within `max_slippage` of its best price; the
size is the smaller leg's depth within that cap, capped by the per-trade notional limit; the VWAP of each leg is its
walk to that size. A cell with no depth (a top-of-book-only venue) uses the impact model instead (price moves
`impact` per top size traded, at most `depth_multiple` top sizes) and the result says `depth_estimated`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, NamedTuple

import numba
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
    """One sized pair that clears the minimum net edge: buy on venue column `buy`, sell on `sell`. `haircut` is the
    pair's (0 when both legs share a venue quote currency)."""

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


def screen_rows(bid: FloatArray, ask: FloatArray, fee: FloatArray, usable: BoolArray, min_edge: float) -> IntArray:
    """Rows where some ordered pair of usable venues *may* clear `min_edge` (a superset: no row that can is left
    out, since bid_b > ask_a (1 + m + f_a + f_b + h_ab) with h_ab >= 0 implies max bid > min ask (1 + m + 2 min f)).
    Fees only: a pair whose legs share a venue quote currency pays no haircut, so the screen assumes none."""
    best_bid = np.where(usable, bid, -np.inf).max(axis=1)
    best_ask = np.where(usable, ask, np.inf).min(axis=1)
    cheapest = np.where(usable, fee, np.inf).min(axis=1)
    with np.errstate(invalid="ignore", over="ignore"):
        passing = best_bid > best_ask * (1.0 + min_edge + 2.0 * cheapest)
    rows: IntArray = np.flatnonzero(passing)
    return rows


_FIELDS: Final = 17
"""Columns of the kernel's output rows: row, buy, sell, then the floats of `Candidate` in order."""


@numba.njit(cache=True, nogil=True)
def _capacity(px: FloatArray, qty: FloatArray, limit: float, buying: bool) -> float:  # pragma: no cover - compiled
    total = 0.0
    for k in range(px.shape[0]):
        p = px[k]
        if p != p or (p > limit if buying else p < limit):  # NaN: past the book's last level
            break
        total += qty[k]
    return total


@numba.njit(cache=True, nogil=True)
def _vwap(px: FloatArray, qty: FloatArray, size: float) -> float:  # pragma: no cover - compiled
    remaining, cost = size, 0.0
    for k in range(px.shape[0]):
        p = px[k]
        if p != p:
            break
        take = qty[k] if qty[k] < remaining else remaining
        cost += take * p
        remaining -= take
        if remaining <= 0.0:
            break
    return cost / (size - remaining)


@numba.njit(cache=True, nogil=True)
def _leg_capacity(
    px: FloatArray,
    qty: FloatArray,
    top: float,
    top_size: float,
    estimated: bool,
    buying: bool,
    max_slippage: float,
    impact: float,
    depth_multiple: float,
) -> float:  # pragma: no cover - compiled
    """Size one leg can trade within the slippage cap: its book's levels, or the impact model's bound."""
    if not estimated:
        return _capacity(px, qty, top * (1.0 + max_slippage) if buying else top * (1.0 - max_slippage), buying)
    cap = top_size * depth_multiple
    if impact > 0.0:
        cap = min(cap, top_size * max_slippage / impact)
    return cap


@numba.njit(cache=True, nogil=True)
def _leg_price(
    px: FloatArray,
    qty: FloatArray,
    top: float,
    top_size: float,
    estimated: bool,
    buying: bool,
    size: float,
    impact: float,
) -> float:  # pragma: no cover - compiled
    """Average price of one leg at `size`: its book's VWAP, or the impact model's."""
    if not estimated:
        return _vwap(px, qty, size)
    move = impact * size / top_size if top_size > 0 else 0.0
    return top * (1.0 + move) if buying else top * (1.0 - move)


@numba.njit(cache=True, nogil=True)
def _scan_rows(  # noqa: C901 - one compiled loop nest; the leg work is already in helpers
    rows: IntArray,
    bid: FloatArray,
    ask: FloatArray,
    bid_size: FloatArray,
    ask_size: FloatArray,
    bid_px: FloatArray,
    bid_qty: FloatArray,
    ask_px: FloatArray,
    ask_qty: FloatArray,
    fee: FloatArray,
    haircut: FloatArray,
    quote_code: IntArray,
    gas: FloatArray,
    usd_per_quote: FloatArray,
    usable: BoolArray,
    min_edge: float,
    max_slippage: float,
    min_notional_usd: float,
    max_notional_usd: float,
    impact: float,
    depth_multiple: float,
    out: FloatArray,
) -> int:  # pragma: no cover - compiled; `arb.scanner.reference` is its executable specification
    n_v = bid.shape[1]
    has_depth = bid_px.shape[2] > 0
    buy_cap = np.empty(n_v)
    sell_cap = np.empty(n_v)
    n = 0
    for i in rows:
        best_bid, best_ask, cheapest, count = -np.inf, np.inf, np.inf, 0
        for j in range(n_v):
            if usable[i, j]:
                count += 1
                best_bid = max(best_bid, bid[i, j])
                best_ask = min(best_ask, ask[i, j])
                cheapest = min(cheapest, fee[i, j])  # no haircut: a same-currency pair pays none
        if count < 2 or not best_bid > best_ask * (1.0 + min_edge + 2.0 * cheapest):
            continue  # no pair of this row can clear min_edge (see `screen_rows`)
        buy_cap[:] = -1.0
        sell_cap[:] = -1.0
        usd = usd_per_quote[i]
        for a in range(n_v):
            if not usable[i, a]:
                continue
            fee_a, code_a, hc_a = fee[i, a], quote_code[i, a], haircut[i, a]
            for b in range(n_v):
                if b == a or not usable[i, b]:
                    continue
                hc = 0.0 if quote_code[i, b] == code_a else hc_a + haircut[i, b]  # the pair's haircut (module doc)
                if not bid[i, b] / ask[i, a] - 1.0 - fee_a - fee[i, b] - hc > min_edge:
                    continue  # the top-of-book bound already fails
                top_a, top_b = ask[i, a], bid[i, b]
                est_a = not has_depth or ask_px[i, a, 0] != ask_px[i, a, 0]
                est_b = not has_depth or bid_px[i, b, 0] != bid_px[i, b, 0]
                if buy_cap[a] < 0.0:
                    buy_cap[a] = _leg_capacity(ask_px[i, a], ask_qty[i, a], top_a, ask_size[i, a], est_a, True,
                                               max_slippage, impact, depth_multiple)  # fmt: skip
                if sell_cap[b] < 0.0:
                    sell_cap[b] = _leg_capacity(bid_px[i, b], bid_qty[i, b], top_b, bid_size[i, b], est_b, False,
                                                max_slippage, impact, depth_multiple)  # fmt: skip
                size = min(buy_cap[a], sell_cap[b], max_notional_usd / usd / top_a)
                if not size > 0.0:
                    continue
                vwap_buy = _leg_price(ask_px[i, a], ask_qty[i, a], top_a, ask_size[i, a], est_a, True, size, impact)
                vwap_sell = _leg_price(bid_px[i, b], bid_qty[i, b], top_b, bid_size[i, b], est_b, False, size, impact)
                notional = size * vwap_buy
                if notional * usd < min_notional_usd:
                    continue
                gross = (top_b - top_a) / top_a
                after_slippage = (vwap_sell - vwap_buy) / vwap_buy
                gas_frac = (gas[i, a] + gas[i, b]) / notional
                net = after_slippage - fee_a - fee[i, b] - gas_frac - hc
                if not net >= min_edge:  # also False for NaN (an unpriced cost)
                    continue
                if n == out.shape[0]:
                    return -1  # the caller grows `out` and calls again
                row = out[n]
                row[0], row[1], row[2], row[3], row[4] = i, a, b, size, notional
                row[5], row[6], row[7], row[8] = top_a, top_b, vwap_buy, vwap_sell
                row[9], row[10], row[11], row[12] = gross, gross - after_slippage, fee[i, a], fee[i, b]
                row[13], row[14], row[15], row[16] = gas_frac, hc, net, 1.0 if (est_a or est_b) else 0.0
                n += 1
    return n


def scan_raw(
    books: Books, costs: CostModel, usable: BoolArray, limits: Limits, rows: IntArray | None = None
) -> FloatArray:
    """Every qualifying pair in `rows` (all rows when None) as one float row each, columns as `Candidate` (row, buy,
    sell, size, ..., depth_estimated as 0/1), in scan order. The hot path: no Python object per pair (see `scan`).

    One compiled pass (numba): per row the screen, then the top-of-book bound per pair, then the book walk of the
    pairs that pass (each leg's capacity walked once per row). See the module docstring."""
    idx = np.arange(books.bid.shape[0], dtype=np.int64) if rows is None else rows.astype(np.int64, copy=False)
    out = np.empty((64, _FIELDS))
    while True:
        n = _scan_rows(
            idx, books.bid, books.ask, books.bid_size, books.ask_size,
            books.bid_px, books.bid_qty, books.ask_px, books.ask_qty,
            costs.fee, costs.haircut, costs.quote_code, costs.gas_quote, costs.usd_per_quote, usable,
            limits.min_edge, limits.max_slippage, limits.min_notional_usd, limits.max_notional_usd,
            limits.impact, limits.depth_multiple, out,
        )  # fmt: skip
        if n >= 0:
            return out[:n]
        out = np.empty((out.shape[0] * 8, _FIELDS))


@numba.njit(cache=True, nogil=True)
def _usable_rows(
    rows: IntArray,
    ts_recv: IntArray,
    max_age_ns: IntArray,
    listed: BoolArray,
    venue_up: BoolArray,
    paused: BoolArray,
    now_ns: int,
    out: BoolArray,
) -> None:  # pragma: no cover - compiled
    for k in range(rows.shape[0]):
        i = rows[k]
        if paused[i]:
            continue
        for j in range(ts_recv.shape[1]):
            ts = ts_recv[i, j]
            age = now_ns - ts
            limit = max_age_ns[j]
            out[i, j] = ts > 0 and -limit <= age and age <= limit and listed[i, j] and venue_up[j]


def usable_rows(
    rows: IntArray,
    ts_recv: IntArray,
    max_age_ns: IntArray,
    listed: BoolArray,
    venue_up: BoolArray,
    paused: BoolArray,
    now_ns: int,
) -> BoolArray:
    """Cells of `rows` a decision may use at `now_ns` (False elsewhere), for a valid mirror: a quote is there
    (`ts_recv > 0`) and fresh by `arb.grid.codec.fresh_mask`'s rule (`-max_age <= age <= max_age`, the venue's
    limit), the venue lists the instrument, the venue is up and the instrument is not paused.

    Why compiled: a scanner step over a few changed rows computed this with a dozen numpy operations on small arrays
    (~10 µs of call overhead, more than the scan of those rows); one pass here costs ~1 µs. Same booleans as the
    numpy form (`tests/unit/scanner/test_kernel.py` checks them against each other)."""
    out: BoolArray = np.zeros(ts_recv.shape, np.bool_)
    _usable_rows(rows.astype(np.int64, copy=False), ts_recv, max_age_ns, listed, venue_up, paused, now_ns, out)
    return out


def candidates(raw: FloatArray) -> list[Candidate]:
    """`scan_raw`'s rows as `Candidate`s, best net edge first within each row (the edge of the hot path)."""
    found = [
        Candidate(int(r[0]), int(r[1]), int(r[2]), *r[3:16], bool(r[16]))  # type: ignore[call-arg]
        for r in raw.tolist()
    ]
    found.sort(key=lambda c: (c.row, -c.net))
    return found


def scan(
    books: Books, costs: CostModel, usable: BoolArray, limits: Limits, rows: IntArray | None = None
) -> list[Candidate]:
    """Every qualifying pair in `rows` (all rows when None), best net edge first within each row."""
    return candidates(scan_raw(books, costs, usable, limits, rows))


def scan_row(books: Books, costs: CostModel, usable: BoolArray, i: int, limits: Limits) -> list[Candidate]:
    """Every ordered pair of row `i` that clears the limits, best net edge first."""
    return scan(books, costs, usable, limits, np.array([i], dtype=np.int64))


class Side(NamedTuple):
    """One side of one cell, as a leg of a multi-cell trade (basis, triangular) sees it."""

    top: float
    """Best price (ask when buying, bid when selling); NaN when the cell is empty."""
    capacity: float
    """Base quantity tradable within the slippage cap (the impact model's bound when `estimated`)."""
    estimated: bool


def side(books: Books, limits: Limits, i: int, j: int, buying: bool) -> Side:
    """The buy (ask) or sell (bid) side of cell (i, j), with the same slippage cap `scan` applies to its legs.

    Why here: basis and triangular legs must be sized and priced exactly like the spot kernel's, so they call the
    same compiled walks instead of a second implementation."""
    px, qty = (books.ask_px[i, j], books.ask_qty[i, j]) if buying else (books.bid_px[i, j], books.bid_qty[i, j])
    top = float(books.ask[i, j] if buying else books.bid[i, j])
    top_size = float(books.ask_size[i, j] if buying else books.bid_size[i, j])
    estimated = px.shape[0] == 0 or bool(np.isnan(px[0]))
    cap = _leg_capacity(
        px, qty, top, top_size, estimated, buying, limits.max_slippage, limits.impact, limits.depth_multiple
    )
    return Side(top, float(cap), estimated)


def side_price(books: Books, limits: Limits, i: int, j: int, buying: bool, size: float, estimated: bool) -> float:
    """Average price of trading `size` (base, at most the side's capacity) on that side of cell (i, j)."""
    px, qty = (books.ask_px[i, j], books.ask_qty[i, j]) if buying else (books.bid_px[i, j], books.bid_qty[i, j])
    top = float(books.ask[i, j] if buying else books.bid[i, j])
    top_size = float(books.ask_size[i, j] if buying else books.bid_size[i, j])
    return float(_leg_price(px, qty, top, top_size, estimated, buying, size, limits.impact))
