"""Basis opportunities: buy spot, sell its linear perpetual (cash-and-carry), on the same venue or two venues.

    net_edge = (vwap_sell_perp - vwap_buy_spot) / vwap_buy_spot - fee_buy - fee_sell - gas - haircut + funding
    funding  = rate x scanner.basis_holding_hours / interval_h     (what the short perp receives over the holding time)

The haircut follows the spot kernel's rule (`arb.scanner.costs`): none when the spot and perp symbols are quoted in
the same venue currency (BTC/USDT against BTC/USDT:USDT: the carry's profit stays in USDT), both legs' haircuts when
they differ (spot bought for USD, perp margined and settled in USDT: the notional changes currency).

A positive funding rate means longs pay shorts, so it adds to the edge of the short-perp leg; a negative rate is a
cost. A perp cell without a funding rate, or with one older than two funding intervals, produces nothing: an unknown
rate is never taken as zero (it can be several bps per interval either way). Why it became unusable is logged once
per change (`scanner.basis_funding_unusable`) and kept in `BasisScanner.blocked`, so a user can see it.

Only the cash-and-carry direction is scanned. The reverse (sell spot, buy perp) needs spot inventory or a margin
borrow on the spot venue, which the scanner does not know about; a perp *below* its spot shows up as nothing.

Legs are sized and priced by the spot kernel's own compiled book walks (`kernel.side`/`side_price`): each leg may use
only levels within `max_slippage` of its best price, the size is the smaller leg's capacity (base units; perp sizes
in the grid are base units too), at most the per-trade notional. There are a few dozen (perp x venue x venue)
combinations, so plain Python over a numpy top-of-book screen is fast enough.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt

from arb.grid.funding import NS_PER_HOUR
from arb.model import Opportunity
from arb.scanner.kernel import Books, Limits, side, side_price

if TYPE_CHECKING:
    from arb.config.schema import Settings
    from arb.grid.funding import FundingRate
    from arb.grid.layout import GridLayout
    from arb.scanner.costs import CostModel
    from arb.scanner.score import Scoring

log = logging.getLogger(__name__)

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
Cells = tuple[tuple[int, int], ...]


class Perp(NamedTuple):
    """A perp row of the layout and the spot row of its underlying."""

    row: int
    spot_row: int
    instrument: str


class BasisScanner:
    """Spot (buy) vs linear perpetual (sell) over every venue pair that lists them; see the module docstring."""

    kind = "basis"

    def __init__(
        self, settings: Settings, layout: GridLayout, costs: CostModel, limits: Limits, scoring: Scoring
    ) -> None:
        self.layout, self.costs, self.limits, self.scoring = layout, costs, limits, scoring
        self.holding_h = settings.scanner.basis_holding_hours
        perps: list[Perp] = []
        for i, iid in enumerate(layout.instruments):
            inst = settings.instruments[iid]
            if inst.type != "perp" or inst.underlying is None or not layout.has_instrument(inst.underlying):
                continue
            s = layout.instrument_index(inst.underlying)
            if costs.listed[i].any() and costs.listed[s].any():
                perps.append(Perp(i, s, iid))
        self.perps: tuple[Perp, ...] = tuple(perps)
        self._by_row: dict[int, list[int]] = {}
        for k, p in enumerate(self.perps):
            for row in {p.row, p.spot_row}:
                self._by_row.setdefault(row, []).append(k)
        self._spot_row = {p.row: p.spot_row for p in self.perps}
        self._symbols = {
            (iid, vid): sym
            for p in self.perps
            for iid in (p.instrument, layout.instruments[p.spot_row])
            for vid, sym in settings.instruments[iid].venues.items()
        }
        self._status: dict[tuple[str, str], str] = {}
        self.funding: dict[tuple[int, int], FundingRate] = {}
        self.blocked: dict[tuple[str, str], str] = {}
        """(perp, venue) -> why its funding is unusable now ("no funding rate", "funding rate N h old")."""
        if self.perps:
            cells = sum(int(costs.listed[p.row].sum()) for p in self.perps)
            log.info("scanner.kind_candidates kind=basis perps=%d perp_cells=%d", len(self.perps), cells)
        else:
            log.warning(
                "scanner.kind_without_candidates kind=basis reason=%r",
                "no instrument of type perp whose underlying spot instrument is listed on an enabled venue",
            )

    # --- inputs ------------------------------------------------------------------------------------------------

    def set_funding(self, rates: Mapping[tuple[str, str], FundingRate]) -> None:
        """The latest funding rate per (perp instrument, venue), as `PriceGrid.read_funding` returns them."""
        funding: dict[tuple[int, int], FundingRate] = {}
        for (iid, vid), rate in rates.items():
            if self.layout.has_instrument(iid) and self.layout.has_venue(vid):
                funding[(self.layout.instrument_index(iid), self.layout.venue_index(vid))] = rate
        self.funding = funding

    def funding_edge(self, row: int, venue: int, now_ns: int) -> float | None:
        """Funding the short perp receives over the holding time, as a fraction of notional; None when unusable
        (the reason is recorded in `blocked` and logged when it changes)."""
        rate = self.funding.get((row, venue))
        key = (self.layout.instruments[row], self.layout.venues[venue])
        if rate is None:
            status, reason = "missing", "no funding rate"
        elif rate.stale(now_ns):
            age_h = (now_ns - rate.ts_ns) / NS_PER_HOUR
            status, reason = "stale", f"funding rate {age_h:.1f} h old (interval {rate.interval_h:g} h)"
        else:
            status, reason = "ok", ""
        if self._status.get(key) != status:  # once per change, not on every pass
            self._status[key] = status
            if reason:
                log.warning("scanner.basis_funding_unusable perp=%s venue=%s reason=%r", key[0], key[1], reason)
            else:
                log.info("scanner.basis_funding_usable perp=%s venue=%s", key[0], key[1])
        if rate is None or reason:
            self.blocked[key] = reason
            return None
        self.blocked.pop(key, None)
        return rate.rate * self.holding_h / rate.interval_h

    # --- scanning ----------------------------------------------------------------------------------------------

    def evaluate(
        self, books: Books, ts_recv: IntArray, usable: BoolArray, rows: IntArray | None, now_ns: int
    ) -> list[Opportunity]:
        """Every cash-and-carry pair of the perps touching `rows` (all when None) that clears the limits."""
        if rows is None:
            ks: list[int] = list(range(len(self.perps)))
        else:
            ks = sorted({k for r in rows.tolist() for k in self._by_row.get(r, ())})
        out: list[Opportunity] = []
        for k in ks:
            out.extend(self._perp(self.perps[k], books, ts_recv, usable, now_ns))
        return out

    def _perp(self, perp: Perp, books: Books, ts_recv: IntArray, usable: BoolArray, now_ns: int) -> list[Opportunity]:
        p, s = perp.row, perp.spot_row
        c = self.costs
        found: list[Opportunity] = []
        spot_venues = np.flatnonzero(usable[s]).tolist()
        for b in np.flatnonzero(c.listed[p]).tolist():
            funding = self.funding_edge(p, b, now_ns)  # checked (and logged) for every listed perp cell
            if funding is None or not usable[p, b] or not spot_venues:
                continue
            for a in spot_venues:
                costs = c.fee[s, a] + c.fee[p, b] + c.pair_haircut(s, a, p, b)
                bound = books.bid[p, b] / books.ask[s, a] - 1.0 - costs + funding
                if not bound >= self.limits.min_edge:  # walking the books and gas only lower it
                    continue
                opp = self._pair(perp, a, b, funding, books, ts_recv, now_ns)
                if opp is not None:
                    found.append(opp)
        return found

    def _pair(
        self, perp: Perp, a: int, b: int, funding: float, books: Books, ts_recv: IntArray, now_ns: int
    ) -> Opportunity | None:
        p, s, lim, c = perp.row, perp.spot_row, self.limits, self.costs
        buy, sell = side(books, lim, s, a, True), side(books, lim, p, b, False)
        usd = float(c.usd_per_quote[s])
        size = min(buy.capacity, sell.capacity, lim.max_notional_usd / usd / buy.top)
        if not size > 0.0:
            return None
        vwap_buy = side_price(books, lim, s, a, True, size, buy.estimated)
        vwap_sell = side_price(books, lim, p, b, False, size, sell.estimated)
        notional = size * vwap_buy
        if notional * usd < lim.min_notional_usd:
            return None
        gross = (sell.top - buy.top) / buy.top
        realised = (vwap_sell - vwap_buy) / vwap_buy
        fee_buy, fee_sell = float(c.fee[s, a]), float(c.fee[p, b])
        gas = float(c.gas_quote[s, a] + c.gas_quote[p, b]) / notional
        haircut = c.pair_haircut(s, a, p, b)
        net = realised - fee_buy - fee_sell - gas - haircut + funding
        if math.isnan(net) or net < lim.min_edge:
            return None
        age_buy = (now_ns - int(ts_recv[s, a])) / 1e6
        age_sell = (now_ns - int(ts_recv[p, b])) / 1e6
        f = self.scoring.factors(p, a, b, net, notional, size, buy.top, usd, max(age_buy, age_sell))
        layout = self.layout
        inst_spot, inst_perp = layout.instruments[s], perp.instrument
        return Opportunity(
            id="",
            kind="basis",
            instrument=inst_perp,
            buy_venue=layout.venues[a],
            sell_venue=layout.venues[b],
            quote_currency=c.quote_currency[p],
            size=size,
            notional=notional,
            best_ask_buy=buy.top,
            best_bid_sell=sell.top,
            vwap_buy=vwap_buy,
            vwap_sell=vwap_sell,
            gross_spread=gross,
            fee_buy=fee_buy,
            fee_sell=fee_sell,
            gas=gas,
            haircut=haircut,
            slippage=gross - realised,
            funding=funding,
            net_edge=net,
            profit=net * notional,
            expected_profit=f.expected_profit,
            decay=f.decay,
            liquidity_score=f.liquidity_score,
            execution_time_s=f.execution_time_s,
            risk_factor=f.risk_factor,
            priority=f.priority,
            buy_quote_age_ms=age_buy,
            sell_quote_age_ms=age_sell,
            depth_estimated=buy.estimated or sell.estimated,
            legs=(self._symbol(inst_spot, a), self._symbol(inst_perp, b)),
            wallet="not_needed",  # spot held long, perp short, until they converge: nothing moves between venues
            ts=now_ns,
        )

    def _symbol(self, instrument: str, venue: int) -> str:
        return self._symbols.get((instrument, self.layout.venues[venue]), instrument)

    # --- lifecycle hooks (the engine's) ------------------------------------------------------------------------

    def cells(self, opp: Opportunity) -> Cells:
        """The grid cells an opportunity of this kind stands on: (spot, buy venue), (perp, sell venue)."""
        p = self.layout.instrument_index(opp.instrument)
        return (self._spot_row[p], self.layout.venue_index(opp.buy_venue)), (p, self.layout.venue_index(opp.sell_venue))

    def close_reason(self, opp: Opportunity) -> str | None:
        """Why it closed when its cells are fine: "funding" when the perp's funding rate became unusable."""
        return "funding" if (opp.instrument, opp.sell_venue) in self.blocked else None
