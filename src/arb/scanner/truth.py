"""Measure the scanner against the local venues' ground truth: recall, precision and detection latency.

Why the true edge is recomputed here: the sim records each dislocation with every venue's book as it was right after
the shift (`Dislocation.books`), and again each later time one of those books was refreshed while it lasted
(`Dislocation.moments`). The *true* net edge at a moment is what the plain-Python reference scanner
(`arb.scanner.reference`, independent of the kernel) computes on those books with the same costs and limits: the best
pair that buys or sells on the dislocated venue in the direction of the shift. Why moments: the other venues keep
moving while a dislocation lasts (price walk, venue noise, each book refreshed on its own clock), so a shift that
offered 9 bps at injection can offer 11 bps half a second later, and a scanner that reports it then is right. What is
exact at a moment is only approximately what the scanner saw (its books crossed WebSockets, ccxt, the grid and the
mirror), so dislocations whose best true net edge lies within `band` of the threshold are counted as borderline and
left out of both recall and precision (and reported), instead of being scored on noise.

Scoring:
  recall    = dislocations whose best true net edge >= threshold + band that some opportunity event (opened/updated)
              on their instrument, with the dislocated venue on the side the shift favours, matched between start
              and end + `grace_ms`
  precision = opened opportunities explained by a dislocation whose true net edge was >= threshold - band at some
              moment up to the event (same matching) / all opened opportunities not explained only by borderline ones
  detection latency = first matching event time - the first moment the true net edge reached threshold + band (the
              start, unless the other venues moved it there later); both UTC ns on this host
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import msgspec
import numpy as np

from arb.model import OpportunityEvent, Quote
from arb.scanner import reference

if TYPE_CHECKING:
    from arb.scanner.costs import CostModel
    from arb.scanner.kernel import Limits
    from arb.sim.market import BookLevels, Dislocation


class TrueEdge(msgspec.Struct, frozen=True):
    dislocation: int
    instrument: str
    venue: str
    buy: str
    sell: str
    net_bps: float


class TruthReport(msgspec.Struct, kw_only=True):
    dislocations: int
    above: int
    """True net edge >= threshold + band: the scanner must report these."""
    below: int
    """True net edge < threshold - band (or no sizeable pair): the scanner must not report these."""
    borderline: int
    found: int
    missed: list[int]
    """Ids of dislocations above the threshold that no event matched."""
    opened: int
    true_positives: int
    false_positives: int
    false_positive_ids: list[str]
    recall: float | None
    precision: float | None
    detection_latency_ms_p50: float | None
    detection_latency_ms_p99: float | None
    detection_latency_ms_max: float | None
    true_net_bps_min: float | None
    """Smallest / largest true net edge among the dislocations above the threshold."""
    true_net_bps_max: float | None
    threshold_bps: float
    band_bps: float


def true_edge(
    d: Dislocation, costs: CostModel, limits: Limits, books: dict[str, BookLevels] | None = None
) -> TrueEdge | None:
    """The best sized pair through the dislocated venue, in the shift's direction, on `books` (default: as recorded
    at the start); None when no pair with another venue of the layout can trade the minimum notional."""
    layout = costs.layout
    if not layout.has_instrument(d.instrument) or not layout.has_venue(d.venue):
        return None
    i = layout.instrument_index(d.instrument)
    quotes: dict[str, Quote] = {}
    for venue, (bids, asks) in (d.books if books is None else books).items():
        if not layout.has_venue(venue) or not costs.listed[i, layout.venue_index(venue)] or not bids or not asks:
            continue
        quotes[venue] = Quote(
            venue, d.instrument, bids[0][0], bids[0][1], asks[0][0], asks[0][1], d.start_ns, d.start_ns, 0,
            tuple(map(tuple, bids)), tuple(map(tuple, asks)),  # type: ignore[arg-type]
        )  # fmt: skip
    if d.venue not in quotes:
        return None
    usd = float(costs.usd_per_quote[i])

    def cell(venue: str) -> reference.CellCost:
        j = layout.venue_index(venue)
        return reference.CellCost(
            float(costs.fee[i, j]), float(costs.haircut[i, j]), float(costs.gas_quote[i, j]),
            currency=costs.venue_quote(i, j),
        )  # fmt: skip

    best: TrueEdge | None = None
    for other in quotes:
        if other == d.venue:
            continue
        buy, sell = (other, d.venue) if d.bps > 0 else (d.venue, other)
        found = reference.pair(
            d.instrument, quotes[buy], quotes[sell], cell(buy), cell(sell), usd, limits, any_edge=True
        )
        if found is not None and (best is None or found.net * 1e4 > best.net_bps):
            best = TrueEdge(d.id, d.instrument, d.venue, buy, sell, found.net * 1e4)
    return best


def edge_path(d: Dislocation, costs: CostModel, limits: Limits) -> list[tuple[int, float | None]]:
    """(time, true net edge in bps or None) at the start and at each recorded later moment of `d`, in time order."""
    path: list[tuple[int, float | None]] = []
    for ts, books in [(d.start_ns, d.books), *((m.ts_ns, m.books) for m in d.moments)]:
        edge = true_edge(d, costs, limits, books)
        path.append((ts, None if edge is None else edge.net_bps))
    return path


def _best(path: list[tuple[int, float | None]], until_ns: int | None = None) -> float | None:
    nets = [net for ts, net in path if net is not None and (until_ns is None or ts <= until_ns)]
    return max(nets) if nets else None


def _matches(event: OpportunityEvent, d: Dislocation, grace_ns: int) -> bool:
    o = event.opportunity
    if o.instrument != d.instrument:
        return False
    if (o.sell_venue if d.bps > 0 else o.buy_venue) != d.venue:
        return False
    return d.start_ns <= event.ts <= d.end_ns + grace_ns


def score(
    truth: Iterable[Dislocation],
    events: Iterable[OpportunityEvent],
    costs: CostModel,
    limits: Limits,
    *,
    band_bps: float = 1.0,
    grace_ms: float = 300.0,
    window: tuple[int, int] | None = None,
) -> TruthReport:
    """Recall, precision and detection latency of `events` against `truth` (see the module docstring).

    `window` (UTC ns, start incl., end excl.) limits what is scored to a steady part of a run: only dislocations that
    start in it count for recall (detected by any event, also one just after the window) and only events in it for
    precision, while every dislocation in `truth` may still explain an event (one injected during warm-up is real even
    if it is not scored)."""
    everything = list(truth)
    lo, hi = window if window is not None else (-(2**63), 2**63)
    dislocations = [d for d in everything if lo <= d.start_ns < hi]
    found_by = [e for e in events if e.type in ("opened", "updated")]  # recall: a detection after the window counts
    evs = [e for e in found_by if lo <= e.ts < hi]
    threshold = limits.min_edge * 1e4
    grace = int(grace_ms * 1e6)
    paths = {d.id: edge_path(d, costs, limits) for d in everything}
    edges = {i: _best(path) for i, path in paths.items()}
    above = [d for d in dislocations if (t := edges[d.id]) is not None and t >= threshold + band_bps]
    borderline_ids = {d.id for d in dislocations if (t := edges[d.id]) is not None and abs(t - threshold) < band_bps}
    latencies: list[float] = []
    missed: list[int] = []
    for d in above:
        # from when the venues first offered it: at the start, or at a later moment (the others moved there)
        since = next(ts for ts, net in paths[d.id] if net is not None and net >= threshold + band_bps)
        hits = [ev.ts for ev in found_by if ev.ts >= since and _matches(ev, d, grace)]
        if hits:
            latencies.append((min(hits) - since) / 1e6)
        else:
            missed.append(d.id)
    opened = [ev for ev in evs if ev.type == "opened"]
    tp = fp = 0
    fp_ids: list[str] = []
    for ev in opened:
        explaining = {d.id for d in everything if _matches(ev, d, grace)}
        # true if the venues offered it at some moment up to the event (not one after: that would be luck)
        if any((t := _best(paths[i], ev.ts)) is not None and t >= threshold - band_bps for i in explaining):
            tp += 1
        elif explaining and explaining <= borderline_ids:
            continue
        else:
            fp += 1
            fp_ids.append(ev.opportunity.id)
    found = len(above) - len(missed)
    lat = np.asarray(latencies)
    nets = [t for d in above if (t := edges[d.id]) is not None]
    return TruthReport(
        dislocations=len(dislocations),
        above=len(above),
        below=len(dislocations) - len(above) - len(borderline_ids),
        borderline=len(borderline_ids),
        found=found,
        missed=missed,
        opened=len(opened),
        true_positives=tp,
        false_positives=fp,
        false_positive_ids=fp_ids[:20],
        recall=found / len(above) if above else None,
        precision=tp / (tp + fp) if tp + fp else None,
        detection_latency_ms_p50=float(np.percentile(lat, 50)) if lat.size else None,
        detection_latency_ms_p99=float(np.percentile(lat, 99)) if lat.size else None,
        detection_latency_ms_max=float(lat.max()) if lat.size else None,
        true_net_bps_min=min(nets) if nets else None,
        true_net_bps_max=max(nets) if nets else None,
        threshold_bps=threshold,
        band_bps=band_bps,
    )
