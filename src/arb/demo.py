"""`arb demo`: the main job on embedded defaults, live: local venues -> ccxt.pro connectors -> the Redis grid.

What runs (each in its own process, so the two cores are both used and a crash of one shows as that one's failure):

    redis-server (embedded unless ARB_REDIS_URL)   <- grid, venue health, ground truth
    python -m arb.sim                               every enabled CEX venue on 127.0.0.1, each in its exchange's wire
                                                    format (or the nearest one's, keeping its own id and symbols)
    python -m arb.connectors.worker  x2             the real ccxt.pro classes pointed at those venues, half each
    (in this process: `arb.demo_extra`)             a local Capital.com and a local chain (anvil) with Uniswap v2/v3
                                                    pools at the CEX sims' prices, with their own connectors
                                                    (Capital.com streaming; DEX per block, with live gas)

This process runs the scanner (a depth-keeping grid mirror -> `arb.scanner.Scanner`, lifecycle events on the
`{arb}:opportunities` stream and in the ledger at `database_url`, SQLite `arb.db` by default) and watches: every
`refresh_s` it reads the venues' published health and the grid's top of book and shows venues up, instruments covered
(>= 2 fresh venues), updates/s, latency, the freshest/oldest quote and the best open opportunities (the sim injects
`dislocations_per_min` real ones). With
`--seconds N` it stops after N seconds; with `--json` the last stdout line is one JSON object (see `DemoReport`). With
`--fault-every S` it drops one venue's connections every S seconds (round robin, through the sim's fault API), the
acceptance run for "keeps >= 14 venues connected on average and reports the reconnects".

Child logs go to a directory printed at start (and kept); `errors` in the report counts their error-level lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import msgspec
import numpy as np
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from arb.config import Settings
from arb.config.coverage import ASSET_CLASSES, coverage, instruments_covered
from arb.grid.embedded import EmbeddedRedis
from arb.logs import mask_url
from arb.model import Opportunity, OpportunityEvent, VenueHealth, latency_percentile_ms, merge_histograms

if TYPE_CHECKING:
    from arb.executor.commands import Handler
    from arb.executor.engine import Outcome
    from arb.scanner.engine import Scanner
    from arb.scanner.truth import TruthReport
    from arb.trading import TradingReport, TradingSession

log = logging.getLogger(__name__)

WORKERS = 2


@contextlib.contextmanager
def grid_redis(settings: Settings) -> Iterator[tuple[str, bool]]:
    """The Redis URL to use and whether we started it; an embedded server is stopped on exit, also on Ctrl-C."""
    if settings.redis_url is not None:
        yield settings.redis_url.get_secret_value(), False
        return
    with EmbeddedRedis() as server:
        yield server.url, True


class DemoOptions(msgspec.Struct, frozen=True, kw_only=True):
    seconds: float | None = None
    as_json: bool = False
    fault_every_s: float | None = None
    book_update_hz: float = 1.0
    dislocations_per_min: float = 30.0
    refresh_s: float = 0.5
    config_path: str | None = None
    rate_limit_ms: float = 5.0
    """ccxt's request spacing against the local venues (their limits are not the exchanges'): with Binance's own,
    snapshotting 200 books takes ~20 s (weight 2 each), which is what a real deployment's warm-up costs."""
    dislocation_bps: tuple[float, float] = (20.0, 80.0)
    dislocation_ms: tuple[int, int] = (500, 3000)
    truth_path: str | None = None
    """Also write the sim's ground truth (every dislocation, with the books it left) to this JSON-lines file."""
    keep_events: bool = False
    """Keep every opportunity event of the run (for `arb.scanner.truth`); otherwise only counts are kept."""
    trade: bool = False
    manual: bool = False
    """With `trade`: execute only what `arb execute` asks for, nothing automatically (`arb run --manual`)."""
    """`arb run`: execute what the scanner opens (paper: against the local venues' private endpoints)."""
    live: bool = False
    """With `trade` and settings `mode: live`: real orders on real venues (`arb run --live`)."""
    market: Literal["local", "venues"] = "local"
    """Where market data comes from: the embedded local venues, or the configured venues (`arb run --market venues`:
    paper accounts on their real market data; always so with `live`)."""
    max_concurrent: int = 2
    record_dir: str | None = None
    """`arb record --demo`: record the grid's change feed to this tape directory while the stack runs."""

    @property
    def streams_configured_venues(self) -> bool:
        """The configured venues, not the local ones, are streamed (and traded: live, or paper accounts)."""
        return self.live or self.market == "venues"

    record_venues: tuple[str, ...] = ()
    record_instruments: tuple[str, ...] = ()
    """With `record_dir`: record only these (empty: all)."""
    order_fault_every_s: float | None = None
    """With `trade`: arm one order fault (reject, partial fill then cancel, slow ack, ghost, 429) on a venue every
    this many seconds, rotating through the kinds and venues."""
    external_connectors: bool = False
    """`arb run --connectors external`: `arb connect` processes elsewhere fill the grid (ARB_REDIS_URL); this process
    starts none and leaves the grid as it finds it."""
    metrics_port: int = 0
    """Serve Prometheus `/metrics` (this process's and its connector workers') on this port; 0: off. The CLI's
    `--metrics-port` defaults to settings `metrics.port`."""
    local_extras: bool = True
    """With local venues and not trading: also run the local Capital.com and DEX chain (`arb.demo_extra`), each if
    enabled in the settings. Off for `arb run` (its trading session has no gateway for them yet), recordings and
    truth measurement (CEX-only by design)."""

    @property
    def runs_extras(self) -> bool:
        return self.local_extras and not (self.trade or self.streams_configured_venues or self.external_connectors)


class OpportunityLine(msgspec.Struct):
    instrument: str
    buy: str
    sell: str
    net_bps: float
    size: float
    profit: float
    priority: float


class OpportunitySummary(msgspec.Struct, kw_only=True):
    opened: int = 0
    updated: int = 0
    closed: int = 0
    open_now: int = 0
    top: list[OpportunityLine] = msgspec.field(default_factory=list)
    ledger: str = ""
    """Where the events were persisted (`database_url`, password masked)."""
    persisted: int = 0
    """Events the ledger confirmed written (updates of one opportunity within a batch are coalesced)."""
    persist_dropped: int = 0


class VenueLine(msgspec.Struct):
    connected: bool
    state: str
    symbols: int
    updates: int
    reconnects: int
    gaps: int
    p99_ms: float
    last_error: str


class DemoReport(msgspec.Struct, kw_only=True):
    """The `--json` line. `venues_connected`/`instruments_covered` are at the end of the run; `venues_connected_avg`/
    `_min` are over the samples after warm-up (`warmup_s`: until every venue was connected at once; null if that never
    happened); `instruments_covered_min` over the second half of the run (books are still being snapshotted first)."""

    seconds: float
    warmup_s: float | None
    venues_total: int
    venues_connected: int
    venues_connected_avg: float
    venues_connected_min: int
    instruments_covered: int
    instruments_covered_min: int
    updates: int
    updates_per_s: float
    latency_ms: dict[str, float]
    """venue event time -> Redis confirmed the write."""
    recv_latency_ms: dict[str, float]
    """venue event time -> the connector had the update (the rest of `latency_ms` is conversion and the write)."""
    reconnects: int
    gaps: int
    faults: int
    errors: int
    freshest_ms: float | None
    oldest_ms: float | None
    venues: dict[str, VenueLine]
    opportunities: OpportunitySummary
    """What the live scanner found during the run (opened/updated/closed events; the best ones open at the end)."""
    log_dir: str
    trading: TradingReport | None = None
    """`arb run`: what the executor did (None for the demo, which only scans)."""
    order_faults: int = 0
    recording: dict[str, Any] | None = None
    """`arb record --demo`: the tape's manifest (`arb.backtest.tape.Manifest`) without its chunk list."""


class StackGridError(RuntimeError):
    """The grid's Redis failed under the local stack; says which Redis (password masked)."""

    def __init__(self, url: str, cause: Exception) -> None:
        self.url, self.cause = mask_url(url), cause
        super().__init__(f"grid Redis at {self.url}: {cause}")


class DemoRun(msgspec.Struct):
    report: DemoReport
    events: list[OpportunityEvent]
    open: list[Opportunity]
    """What the live scanner had open at the end, best priority first."""


def local_wallet_credentials(venues: dict[str, Any]) -> dict[str, str]:
    """Placeholder API keys for the local venues that serve the wallet endpoint (Binance format), so the demo's
    workers poll deposit/withdraw status and fees like a configured account would (`arb.connectors.wallets`). The
    local venue accepts any key; real keys are never needed, nor read, for the demo."""
    from arb.connectors.wallets import env_name
    from arb.sim.trading import DEFAULT_API_KEY, DEFAULT_SECRET

    env: dict[str, str] = {}
    for vid, info in venues.items():
        if info.get("protocol") == "binance" and info.get("symbols"):
            env[env_name(vid, "API_KEY")] = DEFAULT_API_KEY
            env[env_name(vid, "SECRET")] = DEFAULT_SECRET
    return env


def configured_venues(settings: Settings) -> dict[str, dict[str, Any]]:
    """`arb run --live`'s venues: every enabled CEX venue some instrument lists, as the workers and the trading side
    take them (id -> http_url, ws_url, protocol, symbols), reached at the exchange's own hosts or, where the venue's
    config has `urls: {http, ws}`, at those (keeping ccxt's paths). Marked `configured` so the trading side never
    takes one for a local venue (whose account is the sim's public default)."""
    counts = {v.id: v.total for v in coverage(settings).venues}  # instruments listing each enabled venue
    out: dict[str, dict[str, Any]] = {}
    for vid, cfg in sorted(settings.venues.items()):
        if cfg.kind != "cex" or not cfg.enabled or not counts.get(vid):
            continue
        out[vid] = {
            "http_url": cfg.urls.get("http"),
            "ws_url": cfg.urls.get("ws"),
            "protocol": cfg.ccxt_id,
            "symbols": counts[vid],
            "configured": True,
        }
    return out


@contextlib.asynccontextmanager
async def _venue_source(
    settings: Settings, opts: DemoOptions, url: str, log_dir: Path
) -> AsyncIterator[dict[str, Any]]:
    """The venues the stack streams: the configured ones for `arb run --live`, else the local venues (the sim child,
    whose ready line says where each listens and in which format)."""
    from arb.procs import Child

    if opts.streams_configured_venues:
        yield configured_venues(settings)
        return
    sim_args = ["-m", "arb.sim", "--book-update-hz", str(opts.book_update_hz),
                "--tick-hz", str(max(opts.book_update_hz, 20.0)), "--redis-url", url,
                "--dislocations-per-min", str(opts.dislocations_per_min), "--regular",
                "--dislocation-bps", *map(str, opts.dislocation_bps),
                "--dislocation-ms", *map(str, opts.dislocation_ms)]  # fmt: skip
    if opts.config_path:
        sim_args += ["--config", opts.config_path]
    if opts.truth_path:
        sim_args += ["--truth", opts.truth_path]
    async with Child("sim", sim_args, log_dir / "sim.log") as sim:
        yield sim.ready["venues"]


def split_venues(symbols: dict[str, int], n: int) -> list[list[str]]:
    """Venues over `n` workers, heaviest first onto the lightest worker (so both cores get similar load)."""
    shares: list[list[str]] = [[] for _ in range(n)]
    load = [0] * n
    for vid, count in sorted(symbols.items(), key=lambda kv: -kv[1]):
        i = load.index(min(load))
        shares[i].append(vid)
        load[i] += count
    return [s for s in shares if s]


class _Watch:
    """What the demo has seen so far (samples for the averages)."""

    def __init__(self) -> None:
        self.connected_samples: list[int] = []
        self.covered_samples: list[int] = []
        self.health: dict[str, VenueHealth] = {}
        self.covered = 0
        self.freshest_ms: float | None = None
        self.oldest_ms: float | None = None
        self.faults = 0
        self.started = time.monotonic()
        self.ended = self.started
        self.warm_at: float | None = None
        """When every serving venue was first connected at once (averages are taken from then on)."""
        self.warm_samples: list[int] = []
        self.opportunities = OpportunitySummary()
        self.events: list[OpportunityEvent] = []
        self.keep_events = False
        self.scanner: Scanner | None = None
        self.trading: TradingReport | None = None
        self.session: TradingSession | None = None
        """`arb run`'s trading session, shown live (executions, PnL, trading state) while it runs."""
        self.order_faults = 0
        self.recording: dict[str, Any] | None = None

    def on_event(self, event: OpportunityEvent) -> None:
        counts = self.opportunities
        if event.type == "opened":
            counts.opened += 1
        elif event.type == "updated":
            counts.updated += 1
        else:
            counts.closed += 1
        if self.keep_events:
            self.events.append(event)

    def top(self, n: int = 5) -> list[OpportunityLine]:
        ranked = self.scanner.ranked()[:n] if self.scanner is not None else []
        return [
            OpportunityLine(o.instrument, o.buy_venue, o.sell_venue, round(o.net_edge_bps, 2), o.size,
                            round(o.profit, 2), round(o.priority, 4))
            for o in ranked
        ]  # fmt: skip


async def _run_or_explain(settings: Settings, console: Console, opts: DemoOptions) -> DemoRun | None:
    """`run_stack`, with every failure a user can meet (a child that would not start, Redis, the ledger, a venue's
    trading gateway, restart reconciliation) printed as one clear line on stderr instead of a traceback."""
    from arb.executor.reconcile import ReconcileError
    from arb.executor.venue import GatewayError
    from arb.ledger import LedgerError
    from arb.procs import ChildError

    err = Console(stderr=True)
    try:
        return await run_stack(settings, console, opts)
    except ChildError as exc:
        err.print(f"[red]{'run' if opts.trade else 'demo'} failed:[/] {exc}")
    except StackGridError as exc:
        err.print(f"[red]grid Redis at {exc.url}:[/] {exc.cause}")
    except LedgerError as exc:
        err.print(f"[red]ledger ({mask_url(settings.database_url.get_secret_value())}):[/] {exc}")
    except ReconcileError as exc:
        err.print(f"[red]restart reconciliation failed, not trading:[/] {exc}")
    except GatewayError as exc:
        err.print(f"[red]venue trading gateway:[/] {exc}")
    return None


async def run_demo(settings: Settings, console: Console, options: DemoOptions | None = None) -> int:
    opts = options or DemoOptions()
    run = await _run_or_explain(settings, console, opts)
    if run is None:
        return 1
    if opts.as_json:
        sys.stdout.write(msgspec.json.encode(run.report).decode() + "\n")
    else:
        console.print(_summary(run.report))
    return 0


async def run_trading(settings: Settings, console: Console, options: DemoOptions) -> int:
    """`arb run`: the demo stack with the executor trading what the scanner opens; the last line of `--json` is the
    trading report (executions, success_rate, unaccounted_exposure, realized_vs_predicted, ...) with the stack's
    figures under `stack`."""
    opts = msgspec.structs.replace(options, trade=True)
    run = await _run_or_explain(settings, console, opts)
    if run is None:
        return 1
    report = run.report
    trading = msgspec.to_builtins(report.trading) if report.trading is not None else {}
    stack = _stack_line(report)
    if opts.as_json:
        sys.stdout.write(msgspec.json.encode({**trading, "stack": stack}).decode() + "\n")
    else:
        console.print(_summary(report))
        console.print(_trading_summary(trading))
    return 0


LIVE_EVENTS: Final = "live_events.jsonl"
"""In a tape recorded with `arb record --demo`: every opportunity event of the live scanner during the recording."""


async def run_recording(settings: Settings, console: Console, options: DemoOptions) -> int:
    """`arb record --demo`: the demo stack with its grid feed recorded to `options.record_dir` (and the local
    venues' ground truth beside it); the last line of `--json` is the recording's manifest summary."""
    out = Path(options.record_dir or "")
    opts = msgspec.structs.replace(options, truth_path=str(out / "truth.jsonl"), keep_events=True, local_extras=False)
    out.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before anything runs
    run = await _run_or_explain(settings, console, opts)
    if run is None or run.report.recording is None:
        return 1
    rec = run.report.recording
    # what the live scanner emitted while the tape was recording: a replay must find the same (arb backtest)
    live = run.events[: rec["live_events"]]
    (out / LIVE_EVENTS).write_bytes(b"".join(msgspec.json.encode(e) + b"\n" for e in live))
    if opts.as_json:
        sys.stdout.write(msgspec.json.encode(rec | {"stack": _stack_line(run.report)}).decode() + "\n")
    else:
        console.print(_summary(run.report))
        console.print(_recording_summary(rec))
    return 0 if not rec["gaps"] else 1


def _stack_line(report: DemoReport) -> dict[str, Any]:
    return {k: v for k, v in msgspec.to_builtins(report).items() if k not in ("trading", "venues", "recording")}


def _recording_summary(rec: dict[str, Any]) -> str:
    span = ((rec["last_recv_ns"] or 0) - (rec["first_recv_ns"] or 0)) / 1e9
    gaps = f"[red]{len(rec['gaps'])} gaps[/]" if rec["gaps"] else "no gaps"
    return (
        f"recorded {rec['quotes']} quotes in {rec['entries']} feed entries ({rec['chunks']} chunks, {span:.1f} s of "
        f"market data), {gaps}, live opportunities {rec['live_opportunities']} -> {rec['dir']}"
    )


def _trading_summary(t: dict[str, Any]) -> str:
    if not t:
        return "no trading report"
    rate = "n/a" if t["success_rate"] is None else f"{t['success_rate']:.0%}"
    rvp = "n/a" if t["realized_vs_predicted"] is None else f"{t['realized_vs_predicted']:.2f}"
    return (
        f"executions {t['executions']} (done {t['done']}, hedged {t['hedged']}, failed {t['failed']}, "
        f"escalated {t['escalated']}; aborted {sum(t['aborted'].values())}), success {rate}, "
        f"realized {t['realized_pnl_usd']:.2f} USD (x{rvp} of predicted), "
        f"unaccounted exposure {t['unaccounted_exposure']:.2f} USD, trading state {t['trading_state']}"
    )


async def run_stack(settings: Settings, console: Console, opts: DemoOptions) -> DemoRun:
    """Embedded (or configured) Redis, the local venues, two connector workers and the scanner, for `opts.seconds`
    (until Ctrl-C when None). Raises ChildError when a part cannot start, StackGridError when Redis fails."""
    from arb.grid import GridError

    err = Console(stderr=True)
    with grid_redis(settings) as (url, embedded):
        try:
            return await _run_stack(settings, console, opts, url, embedded, err)
        except GridError as exc:
            raise StackGridError(url, exc) from exc


class TruthRun(msgspec.Struct, kw_only=True):
    """A demo run scored against the sim's ground truth (`measure_truth`)."""

    report: TruthReport
    demo: DemoReport
    injected: int
    """Every dislocation the sim injected, warm-up and tail included (the report scores the steady part)."""
    work_dir: str
    """Config, truth log (`truth.jsonl`) and every opportunity event (`events.jsonl`) of the run."""


async def measure_truth(
    venues: Sequence[str],
    *,
    seconds: float,
    warmup_s: float = 10.0,
    rate_per_min: float = 100.0,
    bps: tuple[float, float] = (20.0, 140.0),
    duration_ms: tuple[int, int] = (500, 2000),
    console: Console | None = None,
) -> TruthRun:
    """Run the stack on `venues` (every other CEX venue disabled) with dislocations injected at `rate_per_min`, then
    score every opportunity event against the truth (`arb.scanner.truth.score`): the scanner's recall, precision and
    detection latency, end to end through the real venues' wire formats, ccxt.pro, Redis and the mirror.

    Dislocations in the warm-up (venues connecting, books being snapshotted) and in the last second are not scored."""
    from arb.config import load_settings
    from arb.grid import GridLayout
    from arb.scanner.costs import CostModel
    from arb.scanner.engine import limits_from
    from arb.scanner.truth import score
    from arb.sim.truth import read_truth_file

    work = Path(tempfile.mkdtemp(prefix="arb-truth-"))
    off = [v for v, c in load_settings().venues.items() if c.kind == "cex" and v not in venues]
    config = work / "truth.yaml"
    config.write_text(
        f"database_url: sqlite+aiosqlite:///{work / 'ledger.db'}\nvenues:\n"
        + "".join(f"  {v}: {{enabled: false}}\n" for v in off)
    )
    settings = load_settings(config)
    truth_path = work / "truth.jsonl"
    opts = DemoOptions(
        seconds=seconds + warmup_s,
        as_json=True,
        config_path=str(config),
        dislocations_per_min=rate_per_min,
        dislocation_bps=bps,
        dislocation_ms=duration_ms,
        truth_path=str(truth_path),
        keep_events=True,
        book_update_hz=1.0,
        local_extras=False,
    )
    started = time.time_ns()
    demo = await run_stack(settings, console or Console(stderr=True), opts)
    (work / "events.jsonl").write_bytes(b"".join(msgspec.json.encode(e) + b"\n" for e in demo.events))
    scored_from = started + int(max(warmup_s, (demo.report.warmup_s or 0.0) + 2.0) * 1e9)
    scored_to = started + int((seconds + warmup_s - 1.0) * 1e9)
    truth = read_truth_file(truth_path)
    costs = CostModel(settings, GridLayout.from_settings(settings))
    report = score(truth, demo.events, costs, limits_from(settings), window=(scored_from, scored_to))
    return TruthRun(report=report, demo=demo.report, injected=len(truth), work_dir=str(work))


async def _run_stack(
    settings: Settings, console: Console, opts: DemoOptions, url: str, embedded: bool, err: Console
) -> DemoRun:
    from arb.executor.commands import CommandServer
    from arb.grid import GridLayout, PriceGrid
    from arb.ledger import open_ledger
    from arb.metrics_http import MetricsServer
    from arb.procs import freeze_heap
    from arb.scanner.engine import Scanner
    from arb.scanner.stream import OpportunityStream
    from arb.trading import report as trading_report
    from arb.trading import trading

    layout = GridLayout.from_settings(settings)
    metrics = MetricsServer(opts.metrics_port, settings.metrics.host)
    log_dir = Path(tempfile.mkdtemp(prefix="arb-demo-"))
    origin = "embedded redis-server" if embedded else "ARB_REDIS_URL"
    err.print(f"grid Redis: {mask_url(url)} ({origin}); child logs in {log_dir}")
    if opts.live:
        err.print("[bold red]mode: live[/]: REAL orders on the configured venues that have keys")
    elif opts.market == "venues":
        err.print("mode: paper on the configured venues' market data (paper accounts; no order reaches a venue)")
    else:
        err.print(f"mode: {settings.mode} (no real order is sent in paper mode)")
    if not opts.as_json:
        console.print(coverage_table(settings))
    async with PriceGrid.from_url(url, layout, settings.grid) as grid:
        await grid.ping()
        if not opts.external_connectors:  # a grid others fill is theirs; a demo starts from an empty one
            await grid.reset()
        watch = _Watch()
        watch.keep_events = opts.keep_events
        async with _venue_source(settings, opts, url, log_dir) as venues:
            serving = {v: int(info["symbols"]) for v, info in venues.items() if info["symbols"]}
            workers = _workers(opts, url, venues, serving, log_dir, metrics.child_env)
            async with contextlib.AsyncExitStack() as stack:
                err.print(stack.enter_context(metrics).summary)  # entered first: stops after the workers
                recorder = None
                if opts.record_dir:  # before any worker writes: the tape starts with the feed's first entry
                    from arb.backtest.record import Recorder, manifest_summary

                    recorder = Recorder(grid, Path(opts.record_dir), settings, venues=opts.record_venues or None,
                                        instruments=opts.record_instruments or None)  # fmt: skip
                    await stack.enter_async_context(recorder)
                for w in workers:
                    await stack.enter_async_context(w)
                serving = serving | await _extras(stack, settings, opts, grid, err)
                mirror = grid.mirror(depth=20)
                stream = await stack.enter_async_context(OpportunityStream(grid))
                db_url = settings.database_url.get_secret_value()
                ledger = await stack.enter_async_context(open_ledger(db_url))
                persist = await stack.enter_async_context(ledger.opportunity_writer())
                await stack.enter_async_context(mirror.following())
                scanner = Scanner(settings, mirror, sinks=[stream.put, persist.put, watch.on_event])
                if recorder is not None:
                    scanner.on_step = recorder.step_marker(mirror, scanner)
                async with scanner:  # closes every open opportunity (into the sinks) before they close
                    watch.scanner = scanner
                    traded = {v: venues[v] for v in serving if v in venues}  # not the in-process extras
                    session_cm = (
                        trading(settings, grid=grid, mirror=mirror, scanner=scanner, ledger=ledger, venues=traded,
                                max_concurrent=opts.max_concurrent, live=opts.live)
                        if opts.trade
                        else contextlib.nullcontext()
                    )  # fmt: skip
                    async with session_cm as session:
                        if session is not None:
                            if not opts.manual:
                                scanner.sinks.append(session.offer)
                            watch.session = session
                            handler = execute_by_id(session, scanner, ledger)
                            await stack.enter_async_context(CommandServer(grid, handler))
                        freeze_heap()  # markets, ledger metadata, mirror: long-lived; keep full collections short
                        await _watch(watch, grid, venues, serving, opts, console)
                        if recorder is not None:
                            truth = Path(opts.truth_path).name if opts.truth_path else None
                            manifest = await recorder.close(live_opportunities=watch.opportunities.opened, truth=truth)
                            summary = manifest_summary(manifest, recorder.dir)
                            watch.recording = summary | {"live_events": len(watch.events)}
                        if session is not None:
                            watch.trading = await trading_report(session)
                    watch.opportunities.top = watch.top()
                    watch.opportunities.open_now = len(scanner.open)
                    still_open = scanner.ranked()
            # the writer flushed what was pending when the stack closed it
            watch.opportunities.ledger = mask_url(db_url)
            watch.opportunities.persisted = persist.written
            watch.opportunities.persist_dropped = persist.dropped
        return DemoRun(_report(watch, serving, log_dir), watch.events, still_open)


async def _extras(
    stack: contextlib.AsyncExitStack, settings: Settings, opts: DemoOptions, grid: Any, err: Console
) -> dict[str, int]:
    """Start the in-process local venues (Capital.com, the DEX chain) on `stack` when `opts` runs them; returns
    venue -> instruments streamed, for the venue table."""
    if not opts.runs_extras:
        return {}
    from arb.demo_extra import local_extras

    extras = await stack.enter_async_context(local_extras(settings, grid, err, book_update_hz=opts.book_update_hz))
    return extras.serving


def _workers(
    opts: DemoOptions, url: str, venues: dict[str, Any], serving: dict[str, int], log_dir: Path, env: dict[str, str]
) -> list[Any]:
    """The connector worker children of the stack (none with `external_connectors`): configured venues with their
    own rate limits and the keys already in this process's environment; local ones with the sim's accounts. `env`:
    where the workers write their metrics, for this process's /metrics."""
    from arb.connectors.ccxt_pro import ConnectorOptions
    from arb.connectors.worker import worker_args
    from arb.procs import Child

    if opts.external_connectors:
        return []
    configured = opts.streams_configured_venues
    env = ({} if configured else local_wallet_credentials(venues)) | env
    connect = ConnectorOptions() if configured else ConnectorOptions(rate_limit_ms=opts.rate_limit_ms)
    return [
        Child(f"worker{i}", worker_args(url, share, venues, options=connect, config=opts.config_path),
              log_dir / f"worker{i}.log", env=env)
        for i, share in enumerate(split_venues(serving, WORKERS))
    ]  # fmt: skip


def execute_by_id(session: TradingSession, scanner: Scanner, ledger: Any) -> Handler:
    """`arb execute`'s handler in `arb run`: the scanner's current version of the opportunity if it is open, executed
    through the trading loop; otherwise why not, from the ledger's record of it."""

    async def handle(opportunity_id: str, max_amount: Decimal | None = None) -> Outcome | str:
        for state in scanner.open.values():
            if state.id == opportunity_id:
                opp = state.last
                if max_amount is not None and max_amount < Decimal(repr(opp.size)):
                    opp = msgspec.structs.replace(opp, size=float(max_amount))
                return await session.loop.execute_now(opp)
        record = await ledger.opportunity(opportunity_id)
        if record is None:
            return f"unknown opportunity {opportunity_id!r}: not open in this arb run and not in the ledger"
        if record.closed_at_ns is not None:
            closed = dt.datetime.fromtimestamp(record.closed_at_ns / 1e9, dt.UTC).isoformat(timespec="milliseconds")
            return f"opportunity {opportunity_id!r} closed at {closed} ({record.close_reason}); nothing was sent"
        return f"opportunity {opportunity_id!r} is not open in this arb run's scanner (another process opened it)"

    return handle


async def _watch(
    watch: _Watch, grid: Any, venues: dict[str, Any], serving: dict[str, int], opts: DemoOptions, console: Console
) -> None:
    import aiohttp

    watch.started = time.monotonic()
    deadline = None if opts.seconds is None else watch.started + opts.seconds
    next_fault = None if opts.fault_every_s is None else watch.started + opts.fault_every_s
    every = opts.order_fault_every_s if opts.trade else None
    next_order_fault = None if every is None else watch.started + every
    fault_order = sorted(v for v in serving if v in venues)  # the sim child's venues (not the in-process extras)
    live = Live(console=console, auto_refresh=False) if console.is_terminal and not opts.as_json else None
    last_progress = watch.started
    async with aiohttp.ClientSession() as http:
        with live if live is not None else contextlib.nullcontext():
            try:
                while deadline is None or time.monotonic() < deadline:
                    await _sample(grid, watch, len(serving))
                    now = time.monotonic()
                    if next_order_fault is not None and now >= next_order_fault:
                        await _order_fault(http, venues, fault_order, watch)
                        next_order_fault += opts.order_fault_every_s or 0.0
                    if next_fault is not None and now >= next_fault:
                        vid = fault_order[watch.faults % len(fault_order)]
                        async with http.post(venues[vid]["http_url"] + "/_sim/faults", json={"fault": "drop"}) as r:
                            r.raise_for_status()
                        watch.faults += 1
                        log.info("demo.fault venue=%s fault=drop n=%d", vid, watch.faults)
                        next_fault += opts.fault_every_s or 0.0
                    if live is not None:
                        live.update(_live_view(watch, serving), refresh=True)
                    elif now - last_progress >= 5.0:
                        last_progress = now
                        _progress(watch, serving)
                    await asyncio.sleep(opts.refresh_s)
            except (KeyboardInterrupt, asyncio.CancelledError):
                log.info("demo.stopping reason=interrupted")
    await _sample(grid, watch, len(serving))
    watch.ended = time.monotonic()


ORDER_FAULTS: Final = (
    {"fault": "reject"},
    {"fault": "partial_then_cancel", "fraction": 0.6},
    {"fault": "ack_delay", "seconds": 0.5},
    {"fault": "ghost", "hold_s": 30.0},
    {"fault": "rate_limit", "retry_after_s": 1},
)
"""`arb run`'s light fault schedule: one of these per `order_fault_every_s`, on the next order of one venue."""


async def _order_fault(http: Any, venues: dict[str, Any], order: list[str], watch: _Watch) -> None:
    n = watch.order_faults
    vid = order[n % len(order)]
    fault = ORDER_FAULTS[n % len(ORDER_FAULTS)]
    async with http.post(venues[vid]["http_url"] + "/_sim/order-faults", json=fault) as r:
        r.raise_for_status()
    watch.order_faults += 1
    log.info("demo.order_fault venue=%s fault=%s n=%d", vid, fault["fault"], watch.order_faults)


async def _sample(grid: Any, watch: _Watch, n_serving: int) -> None:
    watch.health = await grid.read_health()
    snap = await grid.read_grid()
    fresh = snap.fresh_mask()
    watch.covered = instruments_covered(fresh)
    present = snap.present
    if present.any():
        ages = (snap.taken_ns - snap.ts_recv[present]) / 1e6
        watch.freshest_ms, watch.oldest_ms = float(np.min(ages)), float(np.max(ages))
    connected = sum(h.state == "connected" for h in watch.health.values())
    watch.connected_samples.append(connected)
    watch.covered_samples.append(watch.covered)
    if watch.warm_at is None and connected >= n_serving:
        watch.warm_at = time.monotonic()
    if watch.warm_at is not None:
        watch.warm_samples.append(connected)


def _progress(watch: _Watch, serving: dict[str, int]) -> None:
    updates = sum(h.updates for h in watch.health.values())
    elapsed = time.monotonic() - watch.started
    sys.stderr.write(
        f"demo: {elapsed:5.1f}s venues {watch.connected_samples[-1]}/{len(serving)} "
        f"instruments covered {watch.covered} updates {updates} ({updates / max(elapsed, 1e-9):.0f}/s)\n"
    )


def _report(watch: _Watch, serving: dict[str, int], log_dir: Path) -> DemoReport:
    elapsed = watch.ended - watch.started
    health = {v: watch.health[v] for v in serving if v in watch.health}
    hist = merge_histograms([h.latency_hist for h in health.values()])
    recv = merge_histograms([h.recv_hist for h in health.values()])
    updates = sum(h.updates for h in health.values())
    errors = 0
    for path in log_dir.glob("*.log"):
        errors += sum(1 for line in path.read_text(errors="replace").splitlines() if " level=error " in line)
    samples = watch.warm_samples or [0]
    return DemoReport(
        seconds=round(elapsed, 2),
        warmup_s=None if watch.warm_at is None else round(watch.warm_at - watch.started, 2),
        venues_total=len(serving),
        venues_connected=watch.connected_samples[-1] if watch.connected_samples else 0,
        venues_connected_avg=round(sum(samples) / len(samples), 2),
        venues_connected_min=min(samples),
        instruments_covered=watch.covered,
        instruments_covered_min=min(watch.covered_samples[len(watch.covered_samples) // 2 :] or [0]),
        updates=updates,
        updates_per_s=round(updates / max(elapsed, 1e-9), 1),
        latency_ms={"p50": latency_percentile_ms(hist, 0.5), "p99": latency_percentile_ms(hist, 0.99)},
        recv_latency_ms={"p50": latency_percentile_ms(recv, 0.5), "p99": latency_percentile_ms(recv, 0.99)},
        reconnects=sum(h.reconnects for h in health.values()),
        gaps=sum(h.gaps for h in health.values()),
        faults=watch.faults,
        errors=errors,
        freshest_ms=None if watch.freshest_ms is None else round(watch.freshest_ms, 1),
        oldest_ms=None if watch.oldest_ms is None else round(watch.oldest_ms, 1),
        opportunities=watch.opportunities,
        venues={
            v: VenueLine(
                connected=h.state == "connected",
                state=h.state,
                symbols=h.symbols,
                updates=h.updates,
                reconnects=h.reconnects,
                gaps=h.gaps,
                p99_ms=latency_percentile_ms(h.latency_hist, 0.99),
                last_error=h.last_error,
            )
            for v, h in sorted(health.items())
        },
        log_dir=str(log_dir),
        trading=watch.trading,
        order_faults=watch.order_faults,
        recording=watch.recording,
    )


def _live_view(watch: _Watch, serving: dict[str, int]) -> Group:
    elapsed = time.monotonic() - watch.started
    updates = sum(h.updates for h in watch.health.values())
    table = Table(title="arb demo: local venues -> ccxt.pro -> grid")
    for col in ("venue", "state", "symbols", "updates", "reconnects", "gaps", "p99 ms", "last error"):
        table.add_column(col, justify="right" if col not in ("venue", "state", "last error") else "left")
    for vid in sorted(serving):
        h = watch.health.get(vid)
        if h is None:
            table.add_row(vid, "[yellow]starting[/]", str(serving[vid]), "", "", "", "", "")
            continue
        color = "green" if h.state == "connected" else "yellow" if h.state == "starting" else "red"
        table.add_row(
            vid,
            f"[{color}]{h.state}[/]",
            str(h.symbols),
            str(h.updates),
            str(h.reconnects),
            str(h.gaps),
            f"{latency_percentile_ms(h.latency_hist, 0.99):.1f}",
            h.last_error[:40],
        )
    fresh = "-" if watch.freshest_ms is None else f"{watch.freshest_ms:.0f} ms / {watch.oldest_ms:.0f} ms"
    table.caption = (
        f"{elapsed:.0f}s  venues up {watch.connected_samples[-1] if watch.connected_samples else 0}/{len(serving)}  "
        f"instruments covered {watch.covered}  updates/s {updates / max(elapsed, 1e-9):.0f}  "
        f"freshest/oldest quote {fresh}  faults {watch.faults}"
    )
    opps = Table(title="opportunities (net of fees, haircuts, gas and slippage; best priority first)")
    for col in ("instrument", "buy", "sell", "net bps", "size", "profit", "priority"):
        opps.add_column(col, justify="left" if col in ("instrument", "buy", "sell") else "right")
    for o in watch.top(8):
        opps.add_row(o.instrument, o.buy, o.sell, f"{o.net_bps:.1f}", f"{o.size:.4g}", f"{o.profit:.2f}",
                     f"{o.priority:.3g}")  # fmt: skip
    c = watch.opportunities
    opps.caption = f"opened {c.opened}  closed {c.closed}  open now {len(watch.scanner.open) if watch.scanner else 0}"
    if watch.session is None:
        return Group(table, opps)
    return Group(table, opps, _executions_view(watch.session, watch.order_faults))


def _executions_view(session: TradingSession, order_faults: int) -> Table:
    """`arb run`'s live trading panel: the latest executions and the running totals a trader watches."""
    outcomes = session.loop.outcomes
    table = Table(title=f"executions ({session.executor.mode}; newest first)")
    for col in ("instrument", "buy", "sell", "status", "amount", "pred bps", "real bps", "PnL USD", "note"):
        table.add_column(col, justify="left" if col in ("instrument", "buy", "sell", "status", "note") else "right")
    colors = {"done": "green", "hedged": "yellow", "aborted": "dim", "failed": "red", "escalated": "bold red"}
    for o in reversed(outcomes[-8:]):
        pnl = "" if o.realized_pnl_usd is None else f"{float(o.realized_pnl_usd):.2f}"
        table.add_row(
            o.instrument, o.buy_venue, o.sell_venue, f"[{colors.get(o.status, 'white')}]{o.status}[/]",
            f"{o.amount:f}" if o.amount else "", "" if o.predicted_bps is None else f"{o.predicted_bps:.1f}",
            "" if o.realized_bps is None else f"{o.realized_bps:.1f}", pnl, (o.reason or o.hedge)[:40],
        )  # fmt: skip
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    realized = sum(float(o.realized_pnl_usd) for o in outcomes if o.realized_pnl_usd is not None)
    state = session.risk.state.value
    shown = "  ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none yet"
    table.caption = (
        f"offered {session.loop.offered}  {shown}  in flight {session.loop.in_flight}  "
        f"realized {realized:.2f} USD  trading state {state.upper()}  order faults armed {order_faults}"
    )
    return table


def _summary(report: DemoReport) -> str:
    return (
        f"demo: {report.seconds:.0f}s, venues connected {report.venues_connected}/{report.venues_total} "
        f"(avg {report.venues_connected_avg}), instruments covered {report.instruments_covered}, "
        f"{report.updates} updates ({report.updates_per_s}/s), latency p50 {report.latency_ms['p50']} ms "
        f"p99 {report.latency_ms['p99']} ms, reconnects {report.reconnects}, faults {report.faults}, "
        f"errors {report.errors}, opportunities opened {report.opportunities.opened}; logs in {report.log_dir}"
    )


def coverage_table(settings: Settings) -> Table:
    cov = coverage(settings)
    table = Table(title="coverage: instruments per venue and asset class")
    table.add_column("venue")
    table.add_column("kind")
    table.add_column("region")
    for cls in ASSET_CLASSES:
        table.add_column(cls, justify="right")
    table.add_column("total", justify="right")
    for v in cov.venues:
        table.add_row(v.id, v.kind, v.region, *(str(v.by_class[c]) for c in ASSET_CLASSES), str(v.total))
    table.add_section()
    table.add_row(
        "[bold]instruments[/]",
        "",
        "",
        *(f"[bold]{cov.instruments_by_class[c]}[/]" for c in ASSET_CLASSES),
        f"[bold]{cov.instruments_total}[/]",
    )
    status = "[green]OK[/]" if cov.ok else "[red]BELOW FLOOR[/]"
    table.caption = (
        f"{cov.exchanges} exchanges (floor {cov.min_exchanges}), {cov.instruments_total} instruments "
        f"(floor {cov.min_instruments}), {cov.instruments_multi_venue} on 2+ venues: {status}"
    )
    return table
