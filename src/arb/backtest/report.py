"""What a replay found and did, as a user judges it: `ReplayReport` (JSON) and a self-contained HTML page.

Why every figure here is a pure function of the tape and the settings: two replays must give byte-identical
`report.json` (the determinism acceptance test), so wall-clock figures (quotes/s, seconds) live only in `perf`, which
`write_reports` puts in `perf.json` beside it, never in `report.json`.

Accounting, so nothing is silently dropped:
- every opened opportunity was executed (orders sent), aborted before sending (`missed`, by the executor's reason:
  cooldown, stale, edge, size, precision, risk:<code>, ledger, duplicate), or `not_taken`: it closed while the loop
  was busy with other executions (one per base asset at a time, `max_concurrent` in all);
- every dislocation in the tape's `truth.jsonl` is `detected`, or says why not (`below_threshold`, `borderline`,
  `no_sizeable_pair`, `outside_tape`, `missed`), using the ground-truth edges of `arb.scanner.truth`;
- with the live scanner's events beside the tape (`live_events.jsonl`), each live `opened` id is looked up in the
  replay (same id, net edge within 1e-9 relative).
"""

from __future__ import annotations

import html
import logging
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import msgspec

from arb.model import OpportunityEvent

if TYPE_CHECKING:
    from arb.backtest.tape import Manifest
    from arb.config import Settings
    from arb.executor.engine import Outcome
    from arb.sim.market import Dislocation

log = logging.getLogger(__name__)

LIVE_EVENTS: Final = "live_events.jsonl"
"""Same name as `arb.demo.LIVE_EVENTS` (not imported: the report must not pull in the demo stack)."""
EDGE_RTOL: Final = 1e-9
GRACE_MS: Final = 300.0
"""As `arb.scanner.truth.score`: an event up to this long after a dislocation ended still detects it."""


class Perf(msgspec.Struct, kw_only=True):
    """The replay's speed: wall time from the first chunk read to the last execution settled (tape decode, mirror,
    scanner, executor, risk, ledger). A process's one-off start-up is before it (`arb.backtest.replay`: imports, the
    scanner's compiled kernels, the empty ledger it copies), as is the report."""

    wall_s: float
    quotes_per_s: float
    entries_per_s: float


class Gap(msgspec.Struct, kw_only=True):
    after_c: int
    missed: int
    at_ns: int


class TapeInfo(msgspec.Struct, kw_only=True):
    dir: str
    entries: int
    quotes: int
    replayed_entries: int
    replayed_quotes: int
    first_ns: int | None
    last_ns: int | None
    config_hash: str
    config_matches: bool
    gaps: list[Gap]
    """Feed entries the recorder never saw: the replay cannot see them either."""
    late_chunks: int
    skipped_quotes: dict[str, int]


class Execution(msgspec.Struct, kw_only=True):
    opportunity_id: str
    execution_id: str
    instrument: str
    buy_venue: str
    sell_venue: str
    started_ns: int
    ended_ns: int
    status: str
    reason: str
    amount: float
    bought: float
    sold: float
    predicted_bps: float | None
    realized_bps: float | None
    predicted_pnl_usd: float
    realized_pnl_usd: float | None
    hedge: str
    notional_usd: float
    """Executed notional (the larger leg at the opportunity's buy VWAP), what `realized_edge_bps` is measured on."""
    realized_edge_bps: float | None
    """Realized PnL (hedges included) in bps of `notional_usd`: a hedged execution's loss counts here."""


class Breakdown(msgspec.Struct, kw_only=True):
    key: str
    opportunities: int
    executed: int
    done: int
    predicted_pnl_usd: float
    realized_pnl_usd: float


class DislocationFate(msgspec.Struct, kw_only=True):
    id: int
    instrument: str
    venue: str
    bps: float
    start_ns: int
    true_net_bps: float | None
    status: str
    """detected, below_threshold, borderline, no_sizeable_pair, outside_tape or missed."""


class TruthAccounting(msgspec.Struct, kw_only=True):
    injected: int
    by_status: dict[str, int]
    recall: float | None
    precision: float | None
    detection_latency_ms_p50: float | None
    dislocations: list[DislocationFate]


class LiveComparison(msgspec.Struct, kw_only=True):
    live_opened: int
    found: int
    """Live opened ids the replay opened too."""
    same_edge: int
    """... with the net edge within `EDGE_RTOL` relative."""
    max_rel_edge_diff: float | None
    missing: list[str]
    """Live opened ids the replay did not open (first 50)."""
    edge_differs: list[str]
    replay_only: int
    """Opened by the replay, not live."""


class ReplayReport(msgspec.Struct, kw_only=True):
    latency_ms: float | dict[str, float]
    executed_orders: bool
    """False: a scan-only replay."""
    tape: TapeInfo
    opportunities: int
    updates: int
    closed: dict[str, int]
    offered: int
    executed: int
    """Executions that sent orders."""
    done: int
    hedged: int
    failed: int
    escalated: int
    missed: dict[str, int]
    """Opened but nothing sent, by reason (the executor's abort reasons, and `not_taken`)."""
    fill_rate: float | None
    """Filled / ordered amount over every leg of the executions that sent orders."""
    realized_pnl_usd: float
    predicted_pnl_usd: float
    realized_edge_bps_mean: float | None
    """Mean realized edge per execution that sent orders (hedged ones with their loss), bps of its notional."""
    predicted_edge_bps_mean: float | None
    """The scanner's edge at the executed size, mean over the same executions."""
    edge_capture: float | None
    """Realized / predicted PnL over the same executions (1.0: every predicted bps was earned)."""
    pnl_curve: list[tuple[int, float]]
    """(simulated ns when an execution ended, cumulative realized PnL USD)."""
    by_pair: list[Breakdown]
    by_instrument: list[Breakdown]
    executions: list[Execution]
    truth: TruthAccounting | None
    live: LiveComparison | None
    scanner_passes: int
    full_passes: int
    perf: Perf | None = None
    """Wall-clock figures: not part of the deterministic report (`write_reports` keeps them out of report.json)."""


@dataclass
class ReplayRun:
    """Everything a replay leaves, for `build_report`."""

    manifest: Manifest
    tape_dir: str
    settings: Settings
    latency_ms: Any
    config_matches: bool
    events: list[OpportunityEvent]
    execute: bool
    timeline: list[tuple[int, int, Outcome, float]] = field(default_factory=list)
    start_balances: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    end_balances: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    offered: int = 0
    quotes: int = 0
    entries: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    scanner_passes: int = 0
    full_passes: int = 0
    wall_s: float = 0.0


def _abort_key(reason: str) -> str:
    if reason.startswith("risk"):
        parts = [p.strip() for p in reason.split(":")]
        return f"risk:{parts[1]}" if len(parts) > 1 else "risk"
    return reason.split(":")[0].split(" ")[0] or "unknown"


def _f(x: Decimal | float | None) -> float | None:
    return None if x is None else float(x)


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def build_report(run: ReplayRun) -> ReplayReport:
    m = run.manifest
    opened = [e for e in run.events if e.type == "opened"]
    closed: dict[str, int] = {}
    for e in run.events:
        if e.type == "closed":
            closed[e.close_reason] = closed.get(e.close_reason, 0) + 1
    executions = [_execution(s, e, o, n) for s, e, o, n in run.timeline]
    sent = [x for x in executions if x.status != "aborted"]
    missed: dict[str, int] = {}
    for x in executions:
        if x.status == "aborted":
            key = _abort_key(x.reason)
            missed[key] = missed.get(key, 0) + 1
    attempted = {x.opportunity_id for x in executions}
    if run.execute:
        not_taken = sum(1 for e in opened if e.opportunity.id not in attempted)
        if not_taken:
            missed["not_taken"] = not_taken
    ordered = sum(2 * x.amount for x in sent)
    measured = [x for x in sent if x.realized_edge_bps is not None and x.predicted_bps is not None]
    realized_m = sum(x.realized_pnl_usd or 0.0 for x in measured)
    predicted_m = sum((x.predicted_bps or 0.0) / 1e4 * x.notional_usd for x in measured)
    done = [x for x in sent if x.status == "done"]
    realized = sum((x.realized_pnl_usd or 0.0) for x in sent)
    curve: list[tuple[int, float]] = []
    total = 0.0
    for x in sent:
        if x.realized_pnl_usd is not None:
            total += x.realized_pnl_usd
            curve.append((x.ended_ns, total))
    gaps = [Gap(after_c=g.after_c, missed=g.missed, at_ns=g.at_ns) for g in m.gaps]
    from arb.backtest.tape import config_hash

    tape = TapeInfo(
        dir=run.tape_dir, entries=m.entries, quotes=m.quotes, replayed_entries=run.entries,
        replayed_quotes=run.quotes, first_ns=m.chunks[0].first_ns if m.chunks else None,
        last_ns=m.chunks[-1].last_ns if m.chunks else None, config_hash=config_hash(run.settings),
        config_matches=run.config_matches, gaps=gaps, late_chunks=m.late_chunks, skipped_quotes=run.skipped,
    )  # fmt: skip
    perf = Perf(wall_s=run.wall_s, quotes_per_s=run.quotes / run.wall_s if run.wall_s > 0 else 0.0,
                entries_per_s=run.entries / run.wall_s if run.wall_s > 0 else 0.0)  # fmt: skip
    return ReplayReport(
        latency_ms=run.latency_ms if isinstance(run.latency_ms, int | float) else dict(sorted(run.latency_ms.items())),
        executed_orders=run.execute, tape=tape, opportunities=len(opened),
        updates=sum(1 for e in run.events if e.type == "updated"), closed=dict(sorted(closed.items())),
        offered=run.offered, executed=len(sent), done=len(done),
        hedged=sum(x.status == "hedged" for x in sent), failed=sum(x.status == "failed" for x in sent),
        escalated=sum(x.status == "escalated" for x in sent), missed=dict(sorted(missed.items())),
        fill_rate=sum(x.bought + x.sold for x in sent) / ordered if ordered > 0 else None,
        realized_pnl_usd=realized, predicted_pnl_usd=sum(x.predicted_pnl_usd for x in done),
        realized_edge_bps_mean=_mean([x.realized_edge_bps for x in measured if x.realized_edge_bps is not None]),
        predicted_edge_bps_mean=_mean([x.predicted_bps for x in measured if x.predicted_bps is not None]),
        edge_capture=realized_m / predicted_m if predicted_m > 0 else None,
        pnl_curve=curve, by_pair=_breakdown(opened, executions, lambda i, b, s: f"{b}>{s}"),
        by_instrument=_breakdown(opened, executions, lambda i, b, s: i), executions=executions,
        truth=_truth(run), live=_live(run), scanner_passes=run.scanner_passes, full_passes=run.full_passes,
        perf=perf,
    )  # fmt: skip


def _execution(started: int, ended: int, o: Outcome, notional: float) -> Execution:
    realized = _f(o.realized_pnl_usd)
    return Execution(
        notional_usd=notional, realized_edge_bps=realized / notional * 1e4 if realized is not None and notional > 0
        else None,
        opportunity_id=o.opportunity_id, execution_id=o.execution_id, instrument=o.instrument,
        buy_venue=o.buy_venue, sell_venue=o.sell_venue, started_ns=started, ended_ns=ended, status=o.status,
        reason=o.reason, amount=float(o.amount), bought=float(o.bought), sold=float(o.sold),
        predicted_bps=o.predicted_bps, realized_bps=o.realized_bps, predicted_pnl_usd=o.predicted_pnl_usd,
        realized_pnl_usd=_f(o.realized_pnl_usd), hedge=o.hedge,
    )  # fmt: skip


def _breakdown(opened: list[OpportunityEvent], executions: list[Execution], key: Any) -> list[Breakdown]:
    rows: dict[str, Breakdown] = {}

    def row(k: str) -> Breakdown:
        if k not in rows:
            rows[k] = Breakdown(key=k, opportunities=0, executed=0, done=0, predicted_pnl_usd=0.0,
                                realized_pnl_usd=0.0)  # fmt: skip
        return rows[k]

    for e in opened:
        o = e.opportunity
        row(key(o.instrument, o.buy_venue, o.sell_venue)).opportunities += 1
    for x in executions:
        if x.status == "aborted":
            continue
        r = row(key(x.instrument, x.buy_venue, x.sell_venue))
        r.executed += 1
        r.done += x.status == "done"
        r.predicted_pnl_usd += x.predicted_pnl_usd if x.status == "done" else 0.0
        r.realized_pnl_usd += x.realized_pnl_usd or 0.0
    return sorted(rows.values(), key=lambda r: (-r.realized_pnl_usd, -r.opportunities, r.key))


def _matches(event: OpportunityEvent, d: Dislocation, grace_ns: int) -> bool:
    o = event.opportunity
    if o.instrument != d.instrument or (o.sell_venue if d.bps > 0 else o.buy_venue) != d.venue:
        return False
    return d.start_ns <= event.ts <= d.end_ns + grace_ns


def _truth(run: ReplayRun) -> TruthAccounting | None:
    """Every injected dislocation's fate (module docstring), with `arb.scanner.truth.score`'s recall/precision."""
    name = run.manifest.truth
    path = Path(run.tape_dir) / (name or "truth.jsonl")
    if not path.is_file():
        return None
    from arb.grid import GridLayout
    from arb.scanner.costs import CostModel
    from arb.scanner.engine import limits_from
    from arb.scanner.truth import edge_path, score
    from arb.sim.truth import read_truth_file

    truth = read_truth_file(path)
    costs = CostModel(run.settings, GridLayout.from_settings(run.settings))
    limits = limits_from(run.settings)
    band = 1.0
    threshold = limits.min_edge * 1e4
    grace = int(GRACE_MS * 1e6)
    found = [e for e in run.events if e.type in ("opened", "updated")]
    first = run.manifest.first_recv_ns or 0
    last = run.manifest.last_recv_ns or 0
    fates: list[DislocationFate] = []
    for d in truth:
        path_ = edge_path(d, costs, limits)
        nets = [n for _, n in path_ if n is not None]
        best = max(nets) if nets else None
        if any(_matches(e, d, grace) for e in found):
            status = "detected"
        elif d.end_ns < first or d.start_ns > last:
            status = "outside_tape"
        elif best is None:
            status = "no_sizeable_pair"
        elif abs(best - threshold) < band:
            status = "borderline"
        elif best < threshold:
            status = "below_threshold"
        else:
            status = "missed"
        fates.append(DislocationFate(id=d.id, instrument=d.instrument, venue=d.venue, bps=d.bps,
                                     start_ns=d.start_ns, true_net_bps=best, status=status))  # fmt: skip
    scored = score(truth, run.events, costs, limits, band_bps=band, grace_ms=GRACE_MS)
    by_status: dict[str, int] = {}
    for f in fates:
        by_status[f.status] = by_status.get(f.status, 0) + 1
    return TruthAccounting(injected=len(truth), by_status=dict(sorted(by_status.items())), recall=scored.recall,
                           precision=scored.precision, detection_latency_ms_p50=scored.detection_latency_ms_p50,
                           dislocations=fates)  # fmt: skip


def load_live_events(tape_dir: Path | str) -> list[OpportunityEvent] | None:
    """The live scanner's events recorded beside a `--demo` tape (None when the tape has none)."""
    path = Path(tape_dir) / LIVE_EVENTS
    if not path.is_file():
        return None
    decoder = msgspec.json.Decoder(OpportunityEvent)
    return [decoder.decode(line) for line in path.read_bytes().splitlines() if line.strip()]


def _live(run: ReplayRun) -> LiveComparison | None:
    live = load_live_events(run.tape_dir)
    if live is None:
        return None
    replayed = {e.opportunity.id: e.opportunity.net_edge for e in run.events if e.type == "opened"}
    live_opened = {e.opportunity.id: e.opportunity.net_edge for e in live if e.type == "opened"}
    missing = sorted(i for i in live_opened if i not in replayed)
    diffs: dict[str, float] = {}
    for oid, net in live_opened.items():
        if oid in replayed:
            diffs[oid] = abs(replayed[oid] - net) / max(abs(net), 1e-300)
    differs = sorted(i for i, d in diffs.items() if d > EDGE_RTOL)
    return LiveComparison(
        live_opened=len(live_opened), found=len(diffs), same_edge=len(diffs) - len(differs),
        max_rel_edge_diff=max(diffs.values()) if diffs else None, missing=missing[:50], edge_differs=differs[:50],
        replay_only=sum(1 for i in replayed if i not in live_opened),
    )  # fmt: skip


# --- output ----------------------------------------------------------------------------------------------------------


def latency_rows(reports: Iterable[ReplayReport]) -> list[dict[str, Any]]:
    """The latency sensitivity: one row per replay, side by side."""
    return [
        {
            "latency_ms": r.latency_ms, "opportunities": r.opportunities, "executed": r.executed, "done": r.done,
            "realized_pnl": r.realized_pnl_usd, "predicted_pnl": r.predicted_pnl_usd,
            "realized_edge_bps": r.realized_edge_bps_mean, "predicted_edge_bps": r.predicted_edge_bps_mean,
            "edge_lost_bps": _lost(r), "edge_capture": r.edge_capture, "fill_rate": r.fill_rate,
            "missed": sum(r.missed.values()),
        }
        for r in reports
    ]  # fmt: skip


def _lost(r: ReplayReport) -> float | None:
    """Predicted minus realized edge per execution, bps: what latency costs each trade. Unlike the realized edge
    itself it does not depend on which opportunities a latency setting ends up executing (more latency can mean
    fewer order-rate denials, so a different mix of trades)."""
    if r.predicted_edge_bps_mean is None or r.realized_edge_bps_mean is None:
        return None
    return r.predicted_edge_bps_mean - r.realized_edge_bps_mean


def report_document(reports: Sequence[ReplayReport]) -> dict[str, Any]:
    """report.json's content: the report itself (one replay) or the latency comparison and every run; no `perf`."""
    runs = [{k: v for k, v in msgspec.to_builtins(r).items() if k != "perf"} for r in reports]
    if len(runs) == 1:
        return runs[0]
    return {"latency_sensitivity": latency_rows(reports), "runs": runs}


def write_reports(out_dir: Path, reports: Sequence[ReplayReport]) -> dict[str, Path]:
    """report.json (deterministic), perf.json (wall-clock figures) and report.html into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "perf": out_dir / "perf.json", "html": out_dir / "report.html"}
    paths["json"].write_bytes(msgspec.json.format(msgspec.json.encode(report_document(reports)), indent=1) + b"\n")
    perf = [msgspec.to_builtins(r.perf) | {"latency_ms": r.latency_ms} for r in reports]
    paths["perf"].write_bytes(msgspec.json.encode(perf) + b"\n")
    paths["html"].write_text(render_html(reports), encoding="utf-8")
    return paths


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.4f}" if abs(v) < 100 else f"{v:,.2f}"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items()) or "–"
    return str(v)


def _ms(latency: float | dict[str, float]) -> str:
    if isinstance(latency, dict):
        return ", ".join(f"{v} {ms:g}" for v, ms in latency.items())
    return f"{latency:g}"


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_COLORS: Final = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def _svg(reports: Sequence[ReplayReport], width: int = 760, height: int = 260) -> str:
    """Cumulative realized PnL over simulated time, one line per replay (step curves, inline SVG)."""
    points = [(t, v) for r in reports for t, v in r.pnl_curve]
    starts = [r.tape.first_ns for r in reports if r.tape.first_ns is not None]
    ends = [r.tape.last_ns for r in reports if r.tape.last_ns is not None]
    if not starts or not ends:
        return "<p>no data</p>"
    t0, t1 = min(starts), max([*ends, *(t for t, _ in points)])
    lo, hi = min([0.0, *(v for _, v in points)]), max([0.0, *(v for _, v in points)])
    hi = hi if hi > lo else lo + 1.0
    pad = 40

    def xy(t: int, v: float) -> str:
        x = pad + (t - t0) / max(t1 - t0, 1) * (width - 2 * pad)
        y = height - pad - (v - lo) / (hi - lo) * (height - 2 * pad)
        return f"{x:.1f},{y:.1f}"

    lines = []
    for n, r in enumerate(reports):
        pts, level = [xy(t0, 0.0)], 0.0
        for t, v in r.pnl_curve:
            pts += [xy(t, level), xy(t, v)]
            level = v
        pts.append(xy(t1, level))
        color = _COLORS[n % len(_COLORS)]
        lines.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(pts)}"/>'
                     f'<text x="{width - pad - 150}" y="{pad + 14 * n}" fill="{color}">latency '
                     f"{html.escape(_ms(r.latency_ms))} ms: {level:,.2f} USD</text>")  # fmt: skip
    zero = xy(t0, 0.0).split(",")[1]
    axes = (f'<line x1="{pad}" y1="{zero}" x2="{width - pad}" y2="{zero}" stroke="#999"/>'
            f'<text x="4" y="{pad}">{hi:,.2f}</text><text x="4" y="{height - pad}">{lo:,.2f}</text>'
            f'<text x="{pad}" y="{height - 8}">0 s</text>'
            f'<text x="{width - pad - 40}" y="{height - 8}">{(t1 - t0) / 1e9:.1f} s</text>')  # fmt: skip
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">'
            f'{axes}{"".join(lines)}</svg>')  # fmt: skip


def render_html(reports: Sequence[ReplayReport]) -> str:
    """One self-contained page: summary, latency sensitivity, PnL curve, misses, breakdowns, truth, live match."""
    first = reports[0]
    parts = [f"<h1>arb backtest: {html.escape(first.tape.dir)}</h1>"]
    t = first.tape
    parts.append(_table(["entries", "quotes", "span s", "gaps", "config matches", "skipped quotes"], [[
        t.entries, t.quotes, ((t.last_ns or 0) - (t.first_ns or 0)) / 1e9, len(t.gaps), t.config_matches,
        t.skipped_quotes]]))  # fmt: skip
    if t.gaps:
        parts.append("<p class=warn>The tape has gaps (feed entries never recorded): "
                     + html.escape(", ".join(f"{g.missed} after c={g.after_c}" for g in t.gaps)) + "</p>")  # fmt: skip
    rows = latency_rows(reports)
    parts.append("<h2>Latency sensitivity</h2>" + _table(list(rows[0]), [list(r.values()) for r in rows]))
    parts.append("<h2>Realized PnL (cumulative, USD)</h2>" + _svg(reports))
    for r in reports:
        parts.append(f"<h2>Latency {html.escape(_ms(r.latency_ms))} ms</h2>")
        parts.append(_table(["opportunities", "executed", "done", "hedged", "failed", "escalated", "fill rate",
                             "realized USD", "predicted USD", "missed"], [[
            r.opportunities, r.executed, r.done, r.hedged, r.failed, r.escalated, r.fill_rate, r.realized_pnl_usd,
            r.predicted_pnl_usd, r.missed]]))  # fmt: skip
        heads = ["key", "opportunities", "executed", "done", "predicted USD", "realized USD"]
        for title, rows_ in (("per venue pair", r.by_pair), ("per instrument", r.by_instrument)):
            parts.append(f"<h3>{title}</h3>" + _table(heads, [[b.key, b.opportunities, b.executed, b.done,
                         b.predicted_pnl_usd, b.realized_pnl_usd] for b in rows_[:40]]))  # fmt: skip
    if first.truth is not None:
        tr = first.truth
        parts.append(f"<h2>Injected dislocations ({tr.injected})</h2><p>{html.escape(_fmt(tr.by_status))}; recall "
                     f"{html.escape(_fmt(tr.recall))}, precision {html.escape(_fmt(tr.precision))}</p>")  # fmt: skip
        parts.append(
            _table(
                ["id", "instrument", "venue", "bps", "true net bps", "status"],
                [[d.id, d.instrument, d.venue, d.bps, d.true_net_bps, d.status] for d in tr.dislocations],
            )
        )
    if first.live is not None:
        lv = first.live
        parts.append(
            _table(
                ["live opened", "found by replay", "same edge", "max rel diff", "replay only"],
                [[lv.live_opened, lv.found, lv.same_edge, lv.max_rel_edge_diff, lv.replay_only]],
            )
        )
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:.5em 0}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px;text-align:right}.warn{color:#b00}"
    )
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>arb backtest</title><style>{style}</style>"
            f"</head><body>{''.join(parts)}</body></html>\n")  # fmt: skip


def finite(x: float | None) -> float | None:
    """JSON has no NaN/inf: such a figure is reported as null."""
    return x if x is not None and math.isfinite(x) else None
