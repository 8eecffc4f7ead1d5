"""Triangular opportunities: three conversions on one venue that end in more of the start currency than they began.

Example on one venue listing BTC/USDT, ETH/BTC and ETH/USDT: USDT -> BTC (buy BTC/USDT at the ask), BTC -> ETH (buy
ETH/BTC at the ask), ETH -> USDT (sell ETH/USDT at the bid). Per unit of start currency a leg returns 1/price when it
buys the symbol's base and price when it sells it; the cycle returns

    R = r1 x r2 x r3 x (1 - fee1)(1 - fee2)(1 - fee3)        net_edge = R - 1 - gas

Fees compound (each leg pays its taker fee on what the previous leg delivered), so the net edge is slightly better
than "gross - 3 fees"; the opportunity reports `fee_buy` = the sum of the three fees for display, `fee_sell` = 0 and
no haircut (nothing crosses a quote-currency equivalence: the cycle starts and ends in the same venue currency).

Cycles are found once, per venue, from the venue symbols of the spot instruments it lists (perps and epics are left
out): every three currencies pairwise connected by a listed symbol make one triangle, scanned in both directions.
The start currency is the one that quotes the most of the three symbols (USDT in the example; ties: alphabetical),
i.e. the money you would hold. Identity: `instrument` is the cycle id `USDT>BTC>ETH>USDT` (currencies in trade
order), `buy_venue == sell_venue` the venue, `legs` the three trades as "buy BTC/USDT", "buy ETH/BTC", "sell ETH/USDT".
`quote_currency` is the start currency; `size` and `notional` are start-currency amounts; prices are in start
currency per start currency: `vwap_buy`/`best_ask_buy` = 1 and `vwap_sell`/`best_bid_sell` = what one unit returns
before fees (walked books / top of book), so `gross_spread`, `slippage` and `profit` read as for the other kinds.

Sizing: each leg may use only levels within `max_slippage` of its best price (the spot kernel's own walk, see
`kernel.side`); a leg's capacity is converted to start currency at top-of-book rates and the size is the smallest,
at most the per-trade notional (USD, via the first leg's `usd_per_quote`). A buy leg is walked for amount / best ask
of base, at least what the amount buys, so its VWAP errs on the pessimistic side.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt

from arb.model import Opportunity
from arb.scanner.kernel import Books, Limits, side, side_price

if TYPE_CHECKING:
    from arb.config.schema import Settings
    from arb.grid.layout import GridLayout
    from arb.scanner.costs import CostModel
    from arb.scanner.score import Scoring

log = logging.getLogger(__name__)

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
Cells = tuple[tuple[int, int], ...]
Pair = tuple[int, str, str, str]


class Cycle(NamedTuple):
    """One directed cycle on one venue: leg k converts `currencies[k]` into `currencies[k + 1]` through `rows[k]`."""

    id: str
    venue: int
    rows: tuple[int, int, int]
    buying: tuple[bool, bool, bool]
    legs: tuple[str, str, str]
    currencies: tuple[str, str, str]


def _pairs_of_venue(settings: Settings, layout: GridLayout, costs: CostModel, j: int) -> dict[frozenset[str], Pair]:
    """{base, quote} -> (row, base, quote, symbol) of the spot symbols venue column j lists (first one wins)."""
    vid = layout.venues[j]
    out: dict[frozenset[str], Pair] = {}
    for i in np.flatnonzero(costs.listed[:, j]).tolist():
        inst = settings.instruments[layout.instruments[i]]
        symbol = inst.venues.get(vid, "")
        if inst.type != "spot" or "/" not in symbol or ":" in symbol:
            continue
        base, quote = symbol.split("/", 1)
        if base != quote:
            out.setdefault(frozenset((base, quote)), (i, base, quote, symbol))
    return out


def find_cycles(settings: Settings, layout: GridLayout, costs: CostModel) -> list[Cycle]:
    """Every directed triangle on every venue (two per triangle, one per direction). See the module docstring."""
    cycles: list[Cycle] = []
    for j in range(len(layout.venues)):
        pairs = _pairs_of_venue(settings, layout, costs, j)
        adjacent: dict[str, set[str]] = {}
        for pair in pairs:
            x, y = sorted(pair)
            adjacent.setdefault(x, set()).add(y)
            adjacent.setdefault(y, set()).add(x)
        for x in sorted(adjacent):
            for y in sorted(c for c in adjacent[x] if c > x):
                for z in sorted(c for c in adjacent[x] & adjacent[y] if c > y):
                    edges = [pairs[frozenset(e)] for e in ((x, y), (y, z), (x, z))]
                    quoting = {c: sum(e[2] == c for e in edges) for c in (x, y, z)}
                    start = min((x, y, z), key=lambda c: (-quoting[c], c))
                    m, n = sorted({x, y, z} - {start})
                    cycles.extend(_cycle(j, path, pairs) for path in ((start, m, n), (start, n, m)))
    return cycles


def _cycle(j: int, path: tuple[str, str, str], pairs: dict[frozenset[str], Pair]) -> Cycle:
    rows, buying, legs = [], [], []
    for k in range(3):
        src, dst = path[k], path[(k + 1) % 3]
        row, base, _quote, symbol = pairs[frozenset((src, dst))]
        buy = base == dst  # spend the quote (src) on the base (dst)
        rows.append(row)
        buying.append(buy)
        legs.append(f"{'buy' if buy else 'sell'} {symbol}")
    return Cycle(
        ">".join((*path, path[0])),
        j,
        (rows[0], rows[1], rows[2]),
        (buying[0], buying[1], buying[2]),
        (legs[0], legs[1], legs[2]),
        path,
    )


class TriangularScanner:
    """Three-leg cycles within each venue; see the module docstring."""

    kind = "triangular"

    def __init__(
        self, settings: Settings, layout: GridLayout, costs: CostModel, limits: Limits, scoring: Scoring
    ) -> None:
        self.layout, self.costs, self.limits, self.scoring = layout, costs, limits, scoring
        self.cycles: tuple[Cycle, ...] = tuple(find_cycles(settings, layout, costs))
        n = len(self.cycles)
        self._rows: IntArray = np.array([c.rows for c in self.cycles], np.int64).reshape(n, 3)
        self._venue: IntArray = np.array([c.venue for c in self.cycles], np.int64).reshape(n, 1)
        self._buying: BoolArray = np.array([c.buying for c in self.cycles], np.bool_).reshape(n, 3)
        self._index = {(c.id, c.venue): k for k, c in enumerate(self.cycles)}
        self._by_row: dict[int, list[int]] = {}
        for k, c in enumerate(self.cycles):
            for row in set(c.rows):
                self._by_row.setdefault(row, []).append(k)
        if self.cycles:
            venues = sorted({layout.venues[c.venue] for c in self.cycles})
            log.info("scanner.kind_candidates kind=triangular cycles=%d venues=%s", n, ",".join(venues))
        else:
            log.warning(
                "scanner.kind_without_candidates kind=triangular reason=%r",
                "no venue lists three spot symbols that connect three currencies (e.g. BTC/USDT, ETH/BTC, ETH/USDT)",
            )

    def evaluate(
        self, books: Books, ts_recv: IntArray, usable: BoolArray, rows: IntArray | None, now_ns: int
    ) -> list[Opportunity]:
        """Every cycle touching `rows` (all when None) that clears the limits, after a top-of-book screen."""
        if rows is None:
            ks: IntArray = np.arange(len(self.cycles), dtype=np.int64)
        else:
            ks = np.array(sorted({k for r in rows.tolist() for k in self._by_row.get(r, ())}), np.int64)
        if ks.size == 0:
            return []
        r, v, buying = self._rows[ks], self._venue[ks], self._buying[ks]
        ok = usable[r, v].all(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            rate = np.where(buying, 1.0 / books.ask[r, v], books.bid[r, v])
            bound = rate.prod(axis=1) * (1.0 - self.costs.fee[r, v]).prod(axis=1) - 1.0
        passing = ks[ok & (bound >= self.limits.min_edge)]  # walking the books and gas only lower it
        out: list[Opportunity] = []
        for k in passing.tolist():
            opp = self._cycle(self.cycles[k], books, ts_recv, now_ns)
            if opp is not None:
                out.append(opp)
        return out

    def _cycle(self, cycle: Cycle, books: Books, ts_recv: IntArray, now_ns: int) -> Opportunity | None:
        lim, c, j = self.limits, self.costs, cycle.venue
        legs = [side(books, lim, i, j, buy) for i, buy in zip(cycle.rows, cycle.buying, strict=True)]
        top_rates = [1.0 / s.top if buy else s.top for s, buy in zip(legs, cycle.buying, strict=True)]
        i0 = cycle.rows[0]
        usd = float(c.usd_per_quote[i0]) * (1.0 if cycle.buying[0] else legs[0].top)  # USD per start currency
        size, reach = lim.max_notional_usd / usd, 1.0  # reach: units of leg k's input per unit of start currency
        for s, buy, r in zip(legs, cycle.buying, top_rates, strict=True):
            size = min(size, (s.capacity * s.top if buy else s.capacity) / reach)
            reach *= r
        if not size > 0.0 or size * usd < lim.min_notional_usd:
            return None
        amount, walked, gas, fees = size, 1.0, 0.0, 0.0
        for s, buy, i in zip(legs, cycle.buying, cycle.rows, strict=True):
            if buy:
                price = side_price(books, lim, i, j, True, amount / s.top, s.estimated)
                quote_notional, rate = amount, 1.0 / price
            else:
                price = side_price(books, lim, i, j, False, amount, s.estimated)
                quote_notional, rate = amount * price, price
            fee = float(c.fee[i, j])
            gas += float(c.gas_quote[i, j]) / quote_notional
            fees += fee
            walked *= rate
            amount *= rate * (1.0 - fee)
        gross = math.prod(top_rates) - 1.0
        net = amount / size - 1.0 - gas
        if math.isnan(net) or net < lim.min_edge:
            return None
        age = max((now_ns - int(ts_recv[i, j])) / 1e6 for i in cycle.rows)
        f = self.scoring.factors(i0, j, j, net, size, size, 1.0, usd, age)
        venue = self.layout.venues[j]
        return Opportunity(
            id="",
            kind="triangular",
            instrument=cycle.id,
            buy_venue=venue,
            sell_venue=venue,
            quote_currency=cycle.currencies[0],
            size=size,
            notional=size,
            best_ask_buy=1.0,
            best_bid_sell=gross + 1.0,
            vwap_buy=1.0,
            vwap_sell=walked,
            gross_spread=gross,
            fee_buy=fees,
            fee_sell=0.0,
            gas=gas,
            haircut=0.0,
            slippage=gross - (walked - 1.0),
            net_edge=net,
            profit=net * size,
            expected_profit=f.expected_profit,
            decay=f.decay,
            liquidity_score=f.liquidity_score,
            execution_time_s=f.execution_time_s,
            risk_factor=f.risk_factor,
            priority=f.priority,
            buy_quote_age_ms=age,
            sell_quote_age_ms=age,
            depth_estimated=any(s.estimated for s in legs),
            legs=cycle.legs,
            wallet="not_needed",  # three legs on one venue
            ts=now_ns,
        )

    # --- lifecycle hooks (the engine's) ------------------------------------------------------------------------

    def cells(self, opp: Opportunity) -> Cells:
        """The three grid cells a cycle stands on."""
        cycle = self.cycles[self._index[(opp.instrument, self.layout.venue_index(opp.buy_venue))]]
        return tuple((i, cycle.venue) for i in cycle.rows)

    def close_reason(self, opp: Opportunity) -> str | None:
        return None
