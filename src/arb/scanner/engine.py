"""The scanner: follows the grid mirror, keeps the ranked set of open opportunities and their lifecycle.

Why incremental: a book update touches one instrument row, so the scanner recomputes only the rows the mirror marked
dirty since the last pass (a few µs each, see `arb.scanner.kernel`), and a full rescan runs on a timer as a safety net.
The timer also matters for correctness: a quote that stops updating produces no feed entry, yet it must stop backing an
opportunity the moment it is older than its venue's limit; the full pass (and each row pass) re-evaluates freshness.

Lifecycle: an opportunity is identified by (kind, instrument, buy venue, sell venue). It is `opened` the first pass it
clears every filter, `updated` when its net edge moved by at least `update_min_change_bps`, and `closed` when it no
longer clears them, with the reason (edge, stale, venue, paused, grid). Its id is derived from market data (the newer
receive time of its two quotes at opening), so replaying the same recording yields the same ids. Events go to sinks
(the Redis stream publisher, the ledger writer); sinks must be cheap and non-blocking (`put`).

What is usable (filters, DESIGN): a cell is used only if its venue lists the instrument, its quote is within the
venue's max age (and the mirror is in step with Redis), its venue's connector reports `connected` recently enough
(health older than the venue's quote-age limit counts as down), and the instrument is not paused by risk.

Kinds (`scanner.kinds`): cross-venue spot is the compiled kernel over every spot row (perp rows are left out: a
perp-vs-perp spread is none of the kinds); `basis` (`arb.scanner.basis`) and `triangular` (`arb.scanner.triangular`)
are evaluated after it over the same usable mask, for the items touching the rows being scanned. An opportunity of
any kind stands on grid cells (two legs, or three), which its freshness, pause, venue and close checks use.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt

from arb import tasks
from arb.grid.errors import GridError
from arb.metrics import (
    GRID_AGE_SECONDS,
    INSTRUMENTS_COVERED,
    INSTRUMENTS_REQUIRED,
    SCANNER_NET_EDGE_BPS,
    SCANNER_OPEN_OPPORTUNITIES,
    SCANNER_OPPORTUNITIES,
    SCANNER_SCAN_SECONDS,
    VENUES_CONNECTED,
    VENUES_REQUIRED,
)
from arb.model import OPPORTUNITY_KINDS, Opportunity, OpportunityEvent, VenueHealth, opportunity_id
from arb.scanner.basis import BasisScanner
from arb.scanner.costs import CostModel, ScannerConfigError
from arb.scanner.kernel import Books, Candidate, Limits, scan, usable_rows
from arb.scanner.score import Scoring
from arb.scanner.transfer import TransferBook
from arb.scanner.triangular import TriangularScanner

if TYPE_CHECKING:
    from collections.abc import Mapping

    from arb.config.schema import Settings
    from arb.grid.funding import FundingRate
    from arb.grid.mirror import GridMirror

log = logging.getLogger(__name__)

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
Sink = Callable[[OpportunityEvent], None]
Key = tuple[str, str, str, str]
Cells = tuple[tuple[int, int], ...]

HEALTHY_STATE: Final = "connected"

# Bound once (no label lookup per event). `transfer` is in the documented label set but no scanner emits it yet.
_METRIC_KINDS: Final = (*OPPORTUNITY_KINDS, "transfer")
_M_OPENED: Final = {k: SCANNER_OPPORTUNITIES.labels(k, "opened") for k in _METRIC_KINDS}
_M_CLOSED: Final = {k: SCANNER_OPPORTUNITIES.labels(k, "closed") for k in _METRIC_KINDS}
_M_OPEN_NOW: Final = {k: SCANNER_OPEN_OPPORTUNITIES.labels(k) for k in _METRIC_KINDS}
_M_EDGE_BPS: Final = {k: SCANNER_NET_EDGE_BPS.labels(k) for k in _METRIC_KINDS}


def limits_from(settings: Settings) -> Limits:
    t, s = settings.thresholds, settings.scanner
    return Limits(
        min_edge=t.min_net_spread,
        max_slippage=t.max_slippage,
        min_notional_usd=t.min_volume_usd,
        max_notional_usd=s.max_trade_notional_usd,
        impact=s.impact_bps_at_top_size / 1e4,
        depth_multiple=s.estimated_depth_multiple,
    )


@dataclass(slots=True)
class _Open:
    id: str
    opened_ns: int
    peak: float
    emitted_net: float
    updates: int
    last: Opportunity


class Scanner:
    """Spread matrix + filters + priority over a depth-keeping `GridMirror`. See the module docstring.

    `scan_once()` ranks what the mirror holds now (no lifecycle); `step()` also advances the lifecycle and returns
    its events; `run()` follows the mirror until cancelled (use `async with scanner.running():`).
    """

    def __init__(
        self,
        settings: Settings,
        mirror: GridMirror,
        *,
        limits: Limits | None = None,
        costs: CostModel | None = None,
        sinks: Iterable[Sink] = (),
        require_health: bool = True,
        now_ns: Callable[[], int] | None = None,
    ) -> None:
        if mirror.depth == 0:
            raise ValueError("the scanner sizes opportunities from depth: build the mirror with depth > 0")
        self.settings = settings
        self.mirror = mirror
        self.layout = layout = mirror.layout
        self.limits = limits or limits_from(settings)
        self.costs = costs or CostModel(settings, layout)
        self.sinks = list(sinks)
        self.require_health = require_health
        self._now_ns = now_ns or time.time_ns
        self.scoring = Scoring(
            settings.scanner, layout.venues, [settings.venues[v].latency_ms for v in layout.venues], layout.shape[0]
        )
        n_i, n_v = layout.shape
        self.venue_up: BoolArray = np.ones(n_v, np.bool_) if not require_health else np.zeros(n_v, np.bool_)
        self.venue_state: dict[str, str] = dict.fromkeys(layout.venues, "unknown")
        self.paused: BoolArray = np.zeros(n_i, np.bool_)
        self._market_fees: dict[tuple[str, str], float] = {}
        self.transfers = TransferBook(settings, layout)  # wallet status + transfer cost of spot pairs
        self.open: dict[Key, _Open] = {}
        self.books = Books(
            mirror.bid,
            mirror.ask,
            mirror.bid_size,
            mirror.ask_size,
            mirror.bid_px,
            mirror.bid_qty,
            mirror.ask_px,
            mirror.ask_qty,
        )  # views: they follow the mirror's in-place updates
        kinds = set(settings.scanner.kinds)
        self.spot = "spot" in kinds
        perp = np.array([settings.instruments[x].type == "perp" for x in layout.instruments], np.bool_)
        self._spot_rows: BoolArray | None = ~perp[:, None] if perp.any() else None
        self.extras: dict[str, BasisScanner | TriangularScanner] = {}
        """The other kinds in `scanner.kinds`, by kind."""
        for kind, cls in (("basis", BasisScanner), ("triangular", TriangularScanner)):
            if kind in kinds:
                self.extras[kind] = cls(settings, layout, self.costs, self.limits, self.scoring)
        self.on_step: Callable[[bool, int], None] | None = None
        """Called after each `step` with (full pass?, its now_ns): `arb record --demo` notes where in the feed the
        live scanner decided, so a replay can decide at the same points (`arb.backtest.tape`, live steps)."""
        self._cex: BoolArray = np.array([settings.venues[v].kind == "cex" for v in layout.venues], np.bool_)
        self._required: tuple[int, int] | None = None
        self.passes = 0
        self.full_passes = 0
        self.opened_total = 0
        self.closed_total = 0

    # --- inputs besides the books --------------------------------------------------------------------------------

    def set_venue_health(self, health: dict[str, VenueHealth], now_ns: int | None = None) -> None:
        """A venue is up while its connector says `connected` and said so within the venue's quote-age limit."""
        now = self._now_ns() if now_ns is None else now_ns
        for j, vid in enumerate(self.layout.venues):
            h = health.get(vid)
            if h is None:
                state = "no health published"
            elif now - h.published_ns > int(self.layout.max_age_ns[j]):
                state = f"health {(now - h.published_ns) / 1e6:.0f} ms old"
            else:
                state = h.state
            self.venue_state[vid] = state
            self.venue_up[j] = state == HEALTHY_STATE
        self.scoring.observe_health(health, now)
        if self.settings.scanner.fees_from_markets:
            self._fees_from_markets(health)

    def _fees_from_markets(self, health: dict[str, VenueHealth]) -> None:
        taker = {(iid, vid): fee for vid, h in health.items() for iid, fee in h.taker_fees.items()}
        if taker == self._market_fees:
            return
        try:
            applied = self.costs.override_fees(taker)
        except ScannerConfigError as exc:  # a bad value from Redis: keep the fees in use, say so
            log.error("scanner.market_fees_refused error=%r", str(exc))
            return
        self._market_fees = taker
        log.info("scanner.market_fees venues=%d cells=%d", len({v for _, v in taker}), applied)

    def set_paused(self, instruments: Iterable[str]) -> None:
        """Instruments the risk engine paused: they produce no opportunity until unpaused."""
        self.paused[:] = False
        for x in instruments:
            if self.layout.has_instrument(x):
                self.paused[self.layout.instrument_index(x)] = True

    def price_gas(self) -> None:
        """Price DEX gas from the grid's own native-token books (e.g. ETH/USD), fresh quotes only."""
        natives = self.costs.gas_natives
        if not natives:
            return
        fresh = self.mirror.fresh_mask()
        prices: dict[str, float] = {}
        for native in natives:
            iid = f"{native}/USD"
            if not self.layout.has_instrument(iid):
                continue
            i = self.layout.instrument_index(iid)
            mids = ((self.mirror.bid[i] + self.mirror.ask[i]) / 2)[fresh[i]]
            if mids.size:
                prices[native] = float(np.median(mids))
        self.costs.price_gas(prices)

    def set_funding(self, rates: Mapping[tuple[str, str], FundingRate]) -> None:
        """Perps' funding rates by (instrument, venue): a perp cell without a fresh one yields no basis opportunity."""
        basis = self.extras.get("basis")
        if isinstance(basis, BasisScanner):
            basis.set_funding(rates)

    # --- scanning ----------------------------------------------------------------------------------------------

    def usable(self, now_ns: int, rows: IntArray | None = None) -> BoolArray:
        """Cells a decision may use now. With `rows`, and only spot to scan, just those rows are computed (the rest
        read False): a row step of the spot kernel looks at nothing else, and the full-grid mask costs more than
        the scan of a few rows. Basis and triangular items span other rows, so with them it is always full."""
        if rows is None or self.extras:
            ok: BoolArray = self.mirror.fresh_mask(now_ns) & self.costs.listed & self.venue_up[None, :]
            ok &= ~self.paused[:, None]
            return ok
        if not self.mirror.valid:
            return np.zeros(self.layout.shape, np.bool_)
        ts, max_age = self.mirror.ts_recv, self.mirror.layout.max_age_ns
        return usable_rows(rows, ts, max_age, self.costs.listed, self.venue_up, self.paused, now_ns)

    def _opportunity(self, c: Candidate, now_ns: int, kind: str = "spot") -> Opportunity:
        layout, m = self.layout, self.mirror
        i, a, b = c.row, c.buy, c.sell
        age_buy = (now_ns - int(m.ts_recv[i, a])) / 1e6
        age_sell = (now_ns - int(m.ts_recv[i, b])) / 1e6
        f = self.scoring.factors(
            i, a, b, c.net, c.notional, c.size, c.best_ask, float(self.costs.usd_per_quote[i]), max(age_buy, age_sell)
        )
        instrument, buy_venue, sell_venue = layout.instruments[i], layout.venues[a], layout.venues[b]
        opp = Opportunity(
            id="",
            instrument=instrument,
            buy_venue=buy_venue,
            sell_venue=sell_venue,
            quote_currency=self.costs.quote_currency[i],
            size=c.size,
            notional=c.notional,
            best_ask_buy=c.best_ask,
            best_bid_sell=c.best_bid,
            vwap_buy=c.vwap_buy,
            vwap_sell=c.vwap_sell,
            gross_spread=c.gross,
            fee_buy=c.fee_buy,
            fee_sell=c.fee_sell,
            gas=c.gas,
            haircut=c.haircut,
            slippage=c.slippage,
            net_edge=c.net,
            profit=c.net * c.notional,
            expected_profit=f.expected_profit,
            decay=f.decay,
            liquidity_score=f.liquidity_score,
            execution_time_s=f.execution_time_s,
            risk_factor=f.risk_factor,
            priority=f.priority,
            buy_quote_age_ms=age_buy,
            sell_quote_age_ms=age_sell,
            depth_estimated=c.depth_estimated,
            ts=now_ns,
        )
        return self.transfers.apply(opp, i, a, b, now_ns)

    def _evaluate(self, rows: IntArray | None, now_ns: int) -> tuple[list[Opportunity], BoolArray]:
        usable = self.usable(now_ns, rows)
        self._observe_volatility(rows, usable, now_ns)
        found: list[Opportunity] = []
        if self.spot:
            spot_usable = usable if self._spot_rows is None else usable & self._spot_rows
            found = [self._opportunity(c, now_ns) for c in scan(self.books, self.costs, spot_usable, self.limits, rows)]
        for extra in self.extras.values():
            found += extra.evaluate(self.books, self.mirror.ts_recv, usable, rows, now_ns)
        return found, usable

    def _cells(self, opp: Opportunity) -> Cells:
        """The (instrument row, venue column) cells an opportunity's legs stand on."""
        extra = self.extras.get(opp.kind)
        if extra is not None:
            return extra.cells(opp)
        i = self.layout.instrument_index(opp.instrument)
        return (i, self.layout.venue_index(opp.buy_venue)), (i, self.layout.venue_index(opp.sell_venue))

    def _observe_volatility(self, rows: IntArray | None, usable: BoolArray, now_ns: int) -> None:
        idx = np.arange(self.layout.shape[0]) if rows is None else rows
        if idx.size:
            self.scoring.observe_rows(idx, self.mirror.bid, self.mirror.ask, usable, now_ns)

    def scan_once(self, now_ns: int | None = None) -> list[Opportunity]:
        """Every opportunity the mirror holds now, best priority first (no lifecycle, no events)."""
        now = self._now_ns() if now_ns is None else now_ns
        found, _ = self._evaluate(None, now)
        found.sort(key=lambda o: -o.priority)
        return found

    def step(self, rows: IntArray | None = None, now_ns: int | None = None) -> list[OpportunityEvent]:
        """Re-evaluate `rows` (all when None), advance the lifecycle of their opportunities, emit the events."""
        now = self._now_ns() if now_ns is None else now_ns
        found, usable = self._evaluate(rows, now)
        self.passes += 1
        if self.on_step is not None:
            self.on_step(rows is None, now)
        if rows is None:
            self.full_passes += 1
        scanned = None if rows is None else set(rows.tolist())
        events: list[OpportunityEvent] = []
        seen: set[Key] = set()
        min_change = self.settings.scanner.update_min_change_bps / 1e4
        for opp in found:
            key = opp.key
            seen.add(key)
            state = self.open.get(key)
            if state is None:
                data_ns = max(int(self.mirror.ts_recv[i, j]) for i, j in self._cells(opp))
                oid = opportunity_id(opp.kind, opp.instrument, opp.buy_venue, opp.sell_venue, data_ns)
                opp = _with_id(opp, oid)
                self.open[key] = _Open(oid, now, opp.net_edge, opp.net_edge, 0, opp)
                self.opened_total += 1
                events.append(
                    OpportunityEvent(type="opened", opportunity=opp, opened_ns=now, ts=now, peak_net_edge=opp.net_edge)
                )
                continue
            opp = _with_id(opp, state.id)
            state.last = opp
            state.peak = max(state.peak, opp.net_edge)
            if abs(opp.net_edge - state.emitted_net) >= min_change:
                state.emitted_net = opp.net_edge
                state.updates += 1
                events.append(
                    OpportunityEvent(
                        type="updated",
                        opportunity=opp,
                        opened_ns=state.opened_ns,
                        ts=now,
                        peak_net_edge=state.peak,
                        updates=state.updates,
                    )
                )
        for key in [k for k in self.open if k not in seen]:
            state = self.open[key]
            if scanned is not None and scanned.isdisjoint(i for i, _ in self._cells(state.last)):
                continue
            del self.open[key]
            self.closed_total += 1
            events.append(_closed(state, now, self._close_reason(state.last, usable)))
        for event in events:
            for sink in self.sinks:
                sink(event)
        return events

    def close_all(self, reason: str = "shutdown", now_ns: int | None = None) -> list[OpportunityEvent]:
        """Close every open opportunity (the scanner stops: nothing it showed stays open in the record)."""
        now = self._now_ns() if now_ns is None else now_ns
        events = [_closed(s, now, reason) for s in self.open.values()]
        self.open.clear()
        self.closed_total += len(events)
        for event in events:
            for sink in self.sinks:
                sink(event)
        return events

    def _close_reason(self, opp: Opportunity, usable: BoolArray) -> str:
        if not self.mirror.valid:
            return "grid"
        cells = self._cells(opp)
        if any(self.paused[i] for i, _ in cells):
            return "paused"
        for i, j in cells:
            if not self.venue_up[j]:
                return "venue"
            if not usable[i, j]:
                return "stale"
        extra = self.extras.get(opp.kind)
        return (extra.close_reason(opp) if extra is not None else None) or "edge"

    def ranked(self) -> list[Opportunity]:
        """The open opportunities, best priority first."""
        return sorted((s.last for s in self.open.values()), key=lambda o: -o.priority)

    # --- metrics (the live loop only: a replay's passes and events are not this process's market) ------------------

    def _timed_step(self, rows: IntArray | None) -> None:
        started = time.perf_counter()
        events = self.step(rows)
        SCANNER_SCAN_SECONDS.observe(time.perf_counter() - started)
        _count_events(events)

    def export_coverage(self, now_ns: int | None = None) -> None:
        """Set the coverage gauges from the mirror: the figures the coverage alerts judge (VenueCoverageLow counts
        centralized exchanges, as `coverage.min_exchanges` does; an instrument is covered with two fresh venues)."""
        from arb.config.coverage import coverage, instruments_covered

        if self._required is None:
            c = coverage(self.settings)
            self._required = (c.min_exchanges, c.instruments_total)
        VENUES_REQUIRED.set(self._required[0])
        INSTRUMENTS_REQUIRED.set(self._required[1])
        now = self._now_ns() if now_ns is None else now_ns
        fresh = self.mirror.fresh_mask(now)
        VENUES_CONNECTED.set(int((fresh.any(axis=0) & self._cex).sum()))
        INSTRUMENTS_COVERED.set(instruments_covered(fresh))
        newest = int(self.mirror.ts_recv.max()) if self.mirror.ts_recv.size else 0
        GRID_AGE_SECONDS.set((now - newest) / 1e9 if newest > 0 else float("inf"))

    # --- following the grid ------------------------------------------------------------------------------------

    async def refresh_inputs(self) -> None:
        """Venue health, paused instruments, (basis kind) funding rates and the DEX connectors' live gas from Redis,
        the configured gas estimate's native prices from the mirror."""
        grid = self.mirror.grid
        if self.require_health:
            self.set_venue_health(await grid.read_health())
        self.set_paused(await grid.read_paused())
        await self.transfers.refresh(grid)
        if "basis" in self.extras:
            self.set_funding(await grid.read_funding())
        if self.costs.gas_natives:
            self.costs.set_live_gas(await grid.read_gas(), self._now_ns())
        self.price_gas()

    async def run(self) -> None:
        """Scan dirty rows as the mirror changes, everything every `full_scan_interval_s`; never returns."""
        s = self.settings.scanner
        next_full = next_inputs = 0.0
        while True:
            tasks.raise_if_cancelling()
            now = time.monotonic()
            if now >= next_inputs:
                next_inputs = now + s.health_refresh_s
                try:
                    await self.refresh_inputs()
                except GridError as e:
                    log.warning("scanner.inputs_unavailable error=%r", str(e))
                    self.venue_up[:] = False  # fail closed: no health, no opportunity
                self.export_coverage()
            if now >= next_full:
                next_full = now + s.full_scan_interval_s
                self.mirror.take_dirty()
                self._timed_step(None)
            elif self.mirror.dirty.any():
                self._timed_step(self.mirror.take_dirty())
            if not self.mirror.dirty.any():
                await self.mirror.wait_changed(max(0.0, min(next_full, next_inputs) - time.monotonic()))

    async def __aenter__(self) -> Scanner:
        self._task = tasks.spawn(self.run(), name="scanner")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await tasks.cancel_and_wait(self._task)
        _count_events(self.close_all())


def _count_events(events: list[OpportunityEvent]) -> None:
    for e in events:
        kind = e.opportunity.kind
        if e.type == "opened":
            _M_OPENED[kind].inc()
            _M_OPEN_NOW[kind].inc()
            _M_EDGE_BPS[kind].observe(e.opportunity.net_edge * 1e4)
        elif e.type == "closed":
            _M_CLOSED[kind].inc()
            _M_OPEN_NOW[kind].dec()


def _closed(state: _Open, now: int, reason: str) -> OpportunityEvent:
    return OpportunityEvent(
        type="closed",
        opportunity=state.last,
        opened_ns=state.opened_ns,
        ts=now,
        peak_net_edge=state.peak,
        updates=state.updates,
        close_reason=reason,
    )


def _with_id(opp: Opportunity, oid: str) -> Opportunity:
    import msgspec

    return msgspec.structs.replace(opp, id=oid)
