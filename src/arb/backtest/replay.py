"""Replay a tape through the live code path: offline mirror -> `Scanner.step` -> `TradingLoop` -> `Executor` with
paper gateways, all on a simulated clock (`arb backtest arbitrage`).

Why the same objects and not a backtest engine of its own: the question is "what would *this* `arb` have done", so
the scanner, the trading loop, the executor, the risk engine and the hedger are the live classes, handed a clock
(`SimClock`) instead of the wall clock. Only the inputs differ: quotes come from the tape (`arb.backtest.tape`) into
`GridMirror.offline`, orders go to `PaperGateway`s that fill against that mirror, and the ledger is a throw-away
SQLite file whose statements run inline on the loop's thread (`arb.ledger.inline`: the same store and SQL, without
aiosqlite's thread hops, which were the largest cost of a replay with the executor).

Time: the replay clock is each entry's `recorded_ns` (when the recorder, and so roughly the live mirror, read it).
Between entries the clock jumps to the next event: a feed entry, a live step, a full scan (without live steps:
`scanner.full_scan_interval_s`, as the live loop's timer), a gas repricing (`scanner.health_refresh_s`), an
account refresh (0.5 s, as `arb run`), or a sleeper's deadline. A paper order sent at t waits `latency_ms[venue]`
on this clock, so it fills against the book as the tape left it at t + latency (entries stamped up to and including
that instant are applied first): latency decay is measured, not assumed. Before the clock moves, the replay lets
every execution run until it is parked on the clock (`settle`): ledger writes take no simulated time, so the outcome
does not depend on how fast the disk is, and two replays of one tape give byte-identical reports.

Scanner steps: a tape recorded with `arb record --demo` holds the live scanner's steps (`tape.LiveSteps`: after
which feed entry, at what time, full pass or changed rows, with which venues up); the scanner then steps exactly
there, with the venue health live had, instead of on its own timers, so the replay opens the live opportunities with
the same ids and edges. A tape without them (recorded from a running grid) is stepped after every entry, on the
replay's own full-scan timer, with every venue up (`require_health=False`): a venue's first quotes can reach the
grid before its health says connected, and such a replay may then see an opportunity a little earlier than live.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import inspect
import itertools
import logging
import tempfile
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, cast

import numpy as np

from arb.backtest.report import ReplayReport, ReplayRun, build_report
from arb.backtest.tape import (
    CHUNKS,
    Block,
    LiveSteps,
    Manifest,
    TapeError,
    config_hash,
    read_blocks,
    read_live_steps,
    read_manifest,
)
from arb.executor.engine import Executor, Outcome
from arb.model import OpportunityEvent

if TYPE_CHECKING:
    from arb.backtest.tape import Int64Array
    from arb.config import Settings
    from arb.executor.venue import Market
    from arb.grid import GridLayout
    from arb.grid.mirror import GridMirror
    from arb.ledger.execution import ExecutionStore
    from arb.model import Opportunity

log = logging.getLogger(__name__)

DEPTH: Final = 20
"""Book levels the mirror keeps, as `arb run`'s mirror."""
DEFAULT_FUNDING_USD: Final = Decimal(1_000_000)
"""Starting paper balance per venue and asset, in USD (as the local venues fund their default account)."""
FUNDING_WINDOW_S: Final = 5.0
"""Base assets are funded at the first mid seen in the tape's first seconds; one not quoted by then starts at 0."""
ACCOUNT_EVERY_S: Final = 0.5
"""Simulated seconds between refreshes of the risk context's PnL and equity (`arb run` refreshes every 0.5 s)."""
AMOUNT_STEP: Final = Decimal("1e-8")
"""Paper markets' amount step (the tape has no venue precision rules)."""
_TRADING_MODULES: Final = (
    "arb.executor.loop", "arb.executor.paper", "arb.executor.prices", "arb.hedging.hedger", "arb.ledger.store",
    "arb.ledger.inline", "arb.ledger.execution", "arb.risk", "arb.risk.ledger", "arb.trading",
)  # fmt: skip
"""What `_trading` imports: loaded before a replay's clock starts (`_prepare_trading`)."""
_FALLBACK_ROUNDS: Final = 64
_NEVER: Final = 2**63 - 1


class SimClock:
    """Simulated UTC ns; `sleep` parks the caller until the replay moves the clock past its deadline.

    Callable (`clock()` -> ns) so it can stand in for `time.time_ns` wherever the live classes take a clock."""

    def __init__(self, start_ns: int) -> None:
        self.now_ns = start_ns
        self._timers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = 0

    def __call__(self) -> int:
        return self.now_ns

    def monotonic(self) -> float:
        return self.now_ns / 1e9

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now_ns + round(seconds * 1e9), self._seq, future))
        self._seq += 1
        await future

    def next_deadline(self) -> int | None:
        while self._timers and self._timers[0][2].done():  # a cancelled sleeper
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def fire_next(self) -> None:
        """Move to the earliest deadline and wake its sleeper."""
        deadline, _, future = heapq.heappop(self._timers)
        self.now_ns = max(self.now_ns, deadline)
        if not future.done():
            future.set_result(None)


class _SerialStore:
    """The ledger store, its calls serialised and counted, so the replay can tell "an execution is writing the
    ledger" (wait) from "every execution is parked on the simulated clock" (time may move), and so concurrent
    executions' writes complete in the order they were made (no thread timing in the outcome)."""

    def __init__(self, store: ExecutionStore) -> None:
        self._store = store
        self._lock = asyncio.Lock()
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.in_flight += 1
            self.idle.clear()
            try:
                async with self._lock:
                    return await attr(*args, **kwargs)
            finally:
                self.in_flight -= 1
                if not self.in_flight:
                    self.idle.set()

        return call


async def settle(store: _SerialStore | None) -> None:
    """Run the event loop until nothing but sleepers on the simulated clock is left: no ledger call in flight and
    nothing ready to run. The ready check reads the standard asyncio loop's queue (`_ready`); on a loop without it
    (uvloop) a fixed number of rounds stands in, which is why `arb backtest` runs on the standard loop."""
    loop = asyncio.get_running_loop()
    ready = getattr(loop, "_ready", None)
    rounds = 0
    while True:
        if store is not None and store.in_flight:
            rounds = 0
            await store.idle.wait()
            continue
        if ready is not None:
            if not ready:  # most feed entries start nothing: no loop round for them
                return
            await asyncio.sleep(0)
        else:
            await asyncio.sleep(0)
            rounds += 1
            if rounds >= _FALLBACK_ROUNDS:
                return


class _TimedExecutor(Executor):
    """The live executor; it only notes when (simulated) each execution started and ended, for the PnL curve."""

    timeline: list[tuple[int, int, Outcome, float]]
    """(started ns, ended ns, outcome, executed notional USD: the larger leg at the opportunity's buy VWAP)."""

    async def execute(self, opportunity: Opportunity) -> Outcome:
        started = self.clock()
        outcome = await super().execute(opportunity)
        usd = self.settings.scanner.usd_per_quote.get(self.settings.instruments[opportunity.instrument].quote, 1.0)
        notional = float(max(outcome.bought, outcome.sold)) * opportunity.vwap_buy * usd
        self.timeline.append((started, self.clock(), outcome, notional))
        return outcome


@dataclass
class _Feed:
    """The tape's entries, a chunk of columns at a time (`arb.backtest.tape.Block`), with one entry of look-ahead
    (`head_ns`: the next event time; None at the end)."""

    blocks: Iterator[Block]
    layout: GridLayout
    block: Block | None = None
    cells: Int64Array | None = None
    k: int = -1
    head_ns: int | None = None
    done: int = 0
    quotes: int = 0

    def advance(self) -> None:
        self.k += 1
        while self.block is None or self.k >= self.block.entries:
            self.block = next(self.blocks, None)
            if self.block is None:
                self.head_ns = None
                return
            self.cells = self.block.cells(self.layout)
            self.k = 0
        self.head_ns = int(self.block.recorded_ns[self.k])

    @property
    def head_c(self) -> int:
        """The feed counter of the head entry."""
        return int(self.block.c[self.k]) if self.block is not None else 0

    def apply_head(self, mirror: GridMirror) -> int:
        """Put the head entry's quotes into the mirror; how many it held."""
        block, cells = self.block, self.cells
        if block is None or cells is None:
            return 0
        n = int(block.start[self.k + 1] - block.start[self.k])
        if n:
            mirror.apply_columns(block, self.k, cells)
        return n


def open_tape(tape_dir: Path | str) -> Manifest:
    """The tape's manifest, after checking its chunk files are all there (TapeError naming what is missing)."""
    directory = Path(tape_dir)
    if not directory.is_dir():
        raise TapeError(f"{directory}: no such directory")
    manifest = read_manifest(directory)
    missing = [c.file for c in manifest.chunks if not (directory / CHUNKS / c.file).is_file()]
    if missing:
        raise TapeError(f"{directory}: incomplete tape, missing chunk files {', '.join(missing[:5])}")
    return manifest


def _latencies(latency_ms: Mapping[str, float] | float, venues: Collection[str]) -> dict[str, float]:
    if isinstance(latency_ms, int | float):
        if not latency_ms >= 0:
            raise ValueError(f"latency_ms must be >= 0, got {latency_ms}")
        return dict.fromkeys(venues, float(latency_ms))
    unknown = sorted(set(latency_ms) - set(venues))
    if unknown:
        raise ValueError(f"latency_ms: not traded venues: {', '.join(unknown)}")
    bad = {v: ms for v, ms in latency_ms.items() if not ms >= 0}
    if bad:
        raise ValueError(f"latency_ms must be >= 0: {bad}")
    return {v: float(latency_ms.get(v, 0.0)) for v in venues}


def _markets(settings: Settings, venues: Collection[str]) -> dict[str, tuple[dict[str, Market], dict[str, str]]]:
    """Per venue: paper markets (symbol -> rules) and symbol -> grid instrument, for every listed instrument."""
    from arb.executor.venue import Market

    out: dict[str, tuple[dict[str, Market], dict[str, str]]] = {v: ({}, {}) for v in venues}
    for iid, inst in settings.instruments.items():
        for venue, symbol in inst.venues.items():
            if venue not in out or "/" not in symbol:
                continue
            base, _, quote = symbol.partition("/")
            fee = Decimal(repr(settings.venues[venue].fees.taker))
            markets, instruments = out[venue]
            markets[symbol] = Market(symbol=symbol, base=base, quote=quote.split(":")[0], amount_step=AMOUNT_STEP,
                                     price_tick=None, min_amount=None, min_notional=None, taker_fee=fee)  # fmt: skip
            instruments[symbol] = iid
    return out


def _first_mids(blocks: Iterable[Block], wanted: set[str]) -> dict[str, float]:
    """Instrument -> mid of its first two-sided quote (bid > 0, ask > bid) in feed entries recorded in the tape's
    first `FUNDING_WINDOW_S`; stops reading once every `wanted` instrument has one. Read on the columns (one pass per
    chunk), not as quote objects: it is part of every replay's set-up."""
    mids: dict[str, float] = {}
    until: int | None = None
    for block in blocks:
        if not block.entries:
            continue
        until = until if until is not None else int(block.recorded_ns[0]) + int(FUNDING_WINDOW_S * 1e9)
        late = np.flatnonzero(block.recorded_ns > until)
        inside = int(late[0]) if late.size else block.entries  # the entries before the first recorded after `until`
        rows = int(block.start[inside])
        bid, ask = block.bid[:rows], block.ask[:rows]
        ok = np.flatnonzero((bid > 0) & (ask > bid))
        names, first = np.unique(block.instrument[ok], return_index=True)  # each instrument's first row, feed order
        for code, row in sorted(zip(names.tolist(), ok[first].tolist(), strict=True), key=lambda x: x[1]):
            mids.setdefault(block.instruments[code], float((bid[row] + ask[row]) / 2))
        if inside < block.entries or wanted <= mids.keys():
            break
    return mids


def starting_balances(
    settings: Settings,
    markets: Mapping[str, tuple[Mapping[str, Market], Mapping[str, str]]],
    mids: Mapping[str, float],
    funding_usd: Decimal,
) -> dict[str, dict[str, Decimal]]:
    """Per venue: its paper account's starting balances (`arb.executor.paper.paper_balances`) at the instruments'
    first mids in the tape."""
    from arb.executor.paper import paper_balances

    return {
        venue: paper_balances(settings, venue_markets, instruments, mids, funding_usd)
        for venue, (venue_markets, instruments) in markets.items()
    }


async def replay(
    tape_dir: Path | str,
    settings: Settings,
    *,
    latency_ms: Mapping[str, float] | float = 0,
    speed: float | None = None,
    execute: bool = True,
    funding_usd: Decimal = DEFAULT_FUNDING_USD,
    traded_venues: Collection[str] | None = None,
    max_concurrent: int = 2,
    progress: Callable[[int, int, int], None] | None = None,
) -> ReplayReport:
    """Replay the tape in `tape_dir` under `settings` (see the module docstring) and report what the scanner found
    and the executor did.

    `latency_ms`: order latency, one figure for every venue or per venue (missing venues: 0). `speed`: None = as fast
    as possible, N = N x the recorded pace. `execute`: False scans only. `funding_usd`: starting paper balance per
    venue and asset (`starting_balances`). `traded_venues`: venues with a paper gateway (default: every cex venue of
    the layout). `progress(entries_done, entries_total, quotes_done)`: called every 500 entries."""
    from arb.grid import GridLayout
    from arb.grid.mirror import GridMirror
    from arb.scanner.engine import Scanner

    if speed is not None and not speed > 0:
        raise ValueError(f"speed must be > 0, got {speed}")
    directory = Path(tape_dir)
    manifest = open_tape(directory)
    layout = GridLayout.from_settings(settings)
    venues = sorted(traded_venues if traded_venues is not None else
                    (v for v in layout.venues if settings.venues[v].kind == "cex"))  # fmt: skip
    unknown = [v for v in venues if v not in settings.venues]
    if unknown:
        raise ValueError(f"traded_venues: not in the settings: {', '.join(unknown)}")
    latencies = _latencies(latency_ms, venues)
    matches = manifest.config_hash == config_hash(settings)
    if not matches:
        log.warning("replay.config_mismatch tape=%s recorded=%s now=%s", directory, manifest.config_hash[:12],
                    config_hash(settings)[:12])  # fmt: skip
    _load_kernels(settings, layout)
    if execute:
        await _prepare_trading()
    started_wall = time.perf_counter()
    blocks = read_blocks(directory, manifest)
    funding: tuple[dict[str, tuple[dict[str, Market], dict[str, str]]], dict[str, float]] | None = None
    if execute:  # the paper accounts' first prices, from the chunks the feed reads next (decoded once, `tee`)
        blocks, ahead = itertools.tee(blocks)
        markets = _markets(settings, venues)
        funding = markets, _first_mids(ahead, {iid for _, ids in markets.values() for iid in ids.values()})
        del ahead  # no reader left behind the feed: `tee` keeps no chunk for it
    feed = _Feed(blocks, layout)
    feed.advance()
    clock = SimClock(feed.head_ns if feed.head_ns is not None else manifest.started_ns)
    mirror = GridMirror.offline(layout, depth=DEPTH, now_ns=clock)
    events: list[OpportunityEvent] = []
    scanner = Scanner(settings, mirror, sinks=[events.append], require_health=False, now_ns=clock)
    run = ReplayRun(manifest=manifest, tape_dir=str(directory), settings=settings, latency_ms=latency_ms,
                    config_matches=matches, events=events, execute=execute)  # fmt: skip
    async with contextlib.AsyncExitStack() as stack:
        trading = None
        if funding is not None:
            markets, mids = funding
            trading = await stack.enter_async_context(
                _trading(settings, mirror, scanner, clock, venues, latencies, markets, mids, funding_usd,
                         max_concurrent)
            )  # fmt: skip
            scanner.sinks.append(trading.loop.offer)
        steps = read_live_steps(directory, manifest)
        await _drive(feed, clock, mirror, scanner, settings, manifest, trading, speed, progress,
                     None if steps is None else steps.for_venues(layout.venues))  # fmt: skip
        if trading is not None:
            await trading.finish(clock)
            run.timeline = sorted(trading.executor.timeline, key=lambda r: (r[1], r[0], r[2].execution_id))
            run.start_balances, run.end_balances = trading.start_balances, dict(trading.executor.context.balances)
            run.offered = trading.loop.offered
    run.quotes = feed.quotes
    run.entries = feed.done
    run.skipped = {f"mirror:{k}": n for k, n in mirror.skipped.items()}
    run.scanner_passes, run.full_passes = scanner.passes, scanner.full_passes
    run.wall_s = time.perf_counter() - started_wall
    report = build_report(run)
    log.info("replay.done tape=%s entries=%d quotes=%d opportunities=%d executed=%d realized_pnl=%.2f "
             "quotes_per_s=%.0f", directory, feed.done, feed.quotes, report.opportunities, report.executed,
             report.realized_pnl_usd, report.perf.quotes_per_s if report.perf else 0.0)  # fmt: skip
    return report


_kernels_loaded: list[bool] = []


def _load_kernels(settings: Settings, layout: GridLayout) -> None:
    """Load the scanner's compiled kernels (numba's on-disk cache, ~0.2 s once per process) before the replay's clock
    starts: a throw-away scanner on an empty mirror makes a full and a row step, with the same argument types as the
    replay's, so the replay's first steps find them loaded. Start-up, not replay work, as `_prepare_trading`."""
    from arb.grid.mirror import GridMirror
    from arb.scanner.engine import Scanner

    if _kernels_loaded:
        return
    scanner = Scanner(settings, GridMirror.offline(layout, depth=DEPTH, now_ns=lambda: 0), require_health=False)
    scanner.step(None, now_ns=0)
    scanner.step(np.zeros(1, np.int64), now_ns=0)
    _kernels_loaded.append(True)


async def _prepare_trading() -> None:
    """Before the replay's clock starts, what a process does once: import the trading stack and make the empty
    ledger the replays copy (`_ledger_template`). Loading code and migrating a schema are start-up (~0.3 s, then
    nothing), not replay work, and `perf` measures the replay."""
    import importlib

    for module in _TRADING_MODULES:
        importlib.import_module(module)
    await _ledger_template()


_template: list[bytes] = []


async def _ledger_template() -> bytes:
    """A SQLite ledger file at the schema's head and without rows, made by `open_ledger` (the shipped migrations)
    once per process; each replay starts from a copy instead of migrating afresh (~25 ms each)."""
    from arb.ledger import open_ledger

    if not _template:
        with tempfile.TemporaryDirectory(prefix="arb-replay-") as tmp:
            path = Path(tmp) / "ledger.db"
            async with open_ledger(f"sqlite+aiosqlite:///{path}", inline=True):
                pass
            _template.append(path.read_bytes())  # closed: the WAL is checkpointed into the file
    return _template[0]


async def replay_latencies(
    tape_dir: Path | str, settings: Settings, latencies_ms: Collection[float], **kwargs: Any
) -> list[ReplayReport]:
    """The same replay at each latency (ms, every venue), in the order given: the latency sensitivity."""
    if not latencies_ms:
        raise ValueError("latencies_ms: give at least one latency")
    return [await replay(tape_dir, settings, latency_ms=ms, **kwargs) for ms in latencies_ms]


async def _drive(
    feed: _Feed,
    clock: SimClock,
    mirror: Any,
    scanner: Any,
    settings: Settings,
    manifest: Manifest,
    trading: _Trading | None,
    speed: float | None,
    progress: Callable[[int, int, int], None] | None,
    steps: LiveSteps | None = None,
) -> None:
    """Feed every entry, with the timed events between them (module docstring), settling after each. With the
    live scanner's `steps` the scanner steps where and when it did live (full passes included), not per entry."""
    s = settings.scanner
    every = {"full": int(s.full_scan_interval_s * 1e9), "gas": int(s.health_refresh_s * 1e9),
             "account": int(ACCOUNT_EVERY_S * 1e9)}  # fmt: skip
    start = clock.now_ns
    periodic = {"full": start + every["full"], "gas": start, "account": start + every["account"]}
    if steps is not None:
        periodic["full"] = _NEVER  # the live full passes are among the steps
    store = trading.store if trading is not None else None
    wall0 = time.perf_counter()
    next_step = 0
    step_c: list[int] = [] if steps is None else steps.c.tolist()  # plain ints: compared once per feed entry

    async def due(until: int) -> None:
        await _until(until, periodic, every, clock, scanner, trading)

    async def live_steps(last_c: int) -> None:
        """The live steps made while feed entry `last_c` was the newest in the live mirror."""
        nonlocal next_step
        while steps is not None and next_step < len(step_c) and step_c[next_step] <= last_c:
            await _live_step(steps, next_step, due, clock, mirror, scanner, store)
            next_step += 1

    while feed.head_ns is not None:
        t = feed.head_ns
        await _until(t, periodic, every, clock, scanner, trading)
        clock.now_ns = max(clock.now_ns, t)
        if speed is not None:
            await _pace(wall0 + (t - start) / 1e9 / speed)
        c = feed.head_c
        await live_steps(c - 1)  # steps live made before this entry reached its mirror (after one the tape lacks)
        n = feed.apply_head(mirror)
        if steps is not None:
            await live_steps(c)
        elif n:
            _step_dirty(mirror, scanner, clock.now_ns)
        feed.done += 1
        feed.quotes += n
        if store is not None:
            await settle(store)
        if progress is not None and feed.done % 500 == 0:
            progress(feed.done, manifest.entries, feed.quotes)
        feed.advance()
    scanner.close_all("end_of_tape", now_ns=clock.now_ns)
    if progress is not None:
        progress(feed.done, manifest.entries, feed.quotes)


def _step_dirty(mirror: Any, scanner: Any, now_ns: int) -> None:
    """A scanner step over the rows changed since the last one, if any (as the live scanner's run loop)."""
    rows = mirror.take_dirty()
    if rows.size:
        scanner.step(rows, now_ns=now_ns)


async def _pace(wall_at: float) -> None:
    """`--speed N`: wait until the wall clock reaches the entry's scaled time."""
    delay = wall_at - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


async def _live_step(
    steps: LiveSteps,
    k: int,
    due: Callable[[int], Awaitable[None]],
    clock: SimClock,
    mirror: Any,
    scanner: Any,
    store: _SerialStore | None,
) -> None:
    """Step k of the live scanner: what fell due before it first, then the step at its time (full or dirty rows)."""
    at = int(steps.now_ns[k])
    await due(at)
    clock.now_ns = max(clock.now_ns, at)
    scanner.venue_up[:] = steps.venue_up[k]  # aligned to the layout by `LiveSteps.for_venues`
    if steps.full[k]:
        mirror.take_dirty()
        scanner.step(None, now_ns=clock.now_ns)
    else:
        _step_dirty(mirror, scanner, clock.now_ns)
    if store is not None:
        await settle(store)


async def _until(
    t: int,
    periodic: dict[str, int],
    every: Mapping[str, int],
    clock: SimClock,
    scanner: Any,
    trading: _Trading | None,
) -> None:
    """Run everything due before `t` in time order: sleepers' deadlines and the periodic events (one due at `t`
    itself runs after the entry at `t`: the book as it stood at t includes that entry)."""
    if min(periodic.values()) >= t:
        timer = clock.next_deadline()
        if timer is None or timer >= t:
            return  # most feed entries: nothing falls due before them
    store = trading.store if trading is not None else None
    while True:
        name, due = min(periodic.items(), key=lambda kv: kv[1])
        timer = clock.next_deadline()
        if timer is not None and timer < due:
            name, due = "timer", timer
        if due >= t:
            return
        if name == "timer":
            clock.fire_next()
        else:
            clock.now_ns = max(clock.now_ns, due)
            await _periodic(name, scanner, trading, clock)
            periodic[name] = due + every[name]
        await settle(store)


async def _periodic(name: str, scanner: Any, trading: _Trading | None, clock: SimClock) -> None:
    if name == "full":
        scanner.mirror.take_dirty()
        scanner.step(None, now_ns=clock.now_ns)
    elif name == "gas":
        scanner.price_gas()
    elif trading is not None:
        await trading.refresh_account()


@dataclass
class _Trading:
    executor: _TimedExecutor
    loop: Any
    store: _SerialStore
    start_ns: int
    start_balances: dict[tuple[str, str], Decimal]

    async def refresh_account(self) -> None:
        """As `arb run`'s health follower: realized PnL (since the replay started) and equity into the risk
        context, on the simulated clock."""
        from arb.trading import refresh_pnl_since

        await refresh_pnl_since(self.executor.context, self.executor.store, self.executor, self.start_ns)

    async def finish(self, clock: SimClock) -> None:
        """Let the executions in flight end on the clock (the tape is over: their orders fill on its last books)."""
        await settle(self.store)
        while self.loop.in_flight:
            if clock.next_deadline() is None:
                log.error("replay.stuck in_flight=%d (no sleeper left to wake)", self.loop.in_flight)
                break
            clock.fire_next()
            await settle(self.store)
        await self.loop.close()


@contextlib.asynccontextmanager
async def _trading(
    settings: Settings,
    mirror: Any,
    scanner: Any,
    clock: SimClock,
    venues: list[str],
    latencies: dict[str, float],
    markets: Mapping[str, tuple[Mapping[str, Market], Mapping[str, str]]],
    mids: Mapping[str, float],
    funding_usd: Decimal,
    max_concurrent: int,
) -> Any:
    """`arb.trading.trading` for a replay: paper gateways on the offline mirror, a temporary SQLite ledger, the risk
    engine and hedger on the simulated clock, then the trading loop."""
    from arb.executor.loop import TradingLoop
    from arb.executor.paper import PaperGateway
    from arb.executor.prices import GridPrices
    from arb.hedging.hedger import Hedger
    from arb.ledger import open_ledger
    from arb.risk import RiskContext, RiskEngine
    from arb.risk.ledger import LedgerEventSink, LedgerStateStore
    from arb.trading import current

    funds = starting_balances(settings, markets, mids, funding_usd)
    gateways = {
        v: PaperGateway(v, mirror=mirror, markets=markets[v][0], instruments=markets[v][1], balances=funds[v],
                        latency_ms=latencies[v], clock=clock, wait=clock.sleep)
        for v in venues
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="arb-replay-") as tmp:
        async with contextlib.AsyncExitStack() as stack:
            path = Path(tmp) / "ledger.db"
            path.write_bytes(await _ledger_template())
            ledger = await stack.enter_async_context(open_ledger(f"sqlite+aiosqlite:///{path}", inline=True))
            store = _SerialStore(ledger.execution())
            typed = cast("ExecutionStore", store)
            risk = await stack.enter_async_context(
                RiskEngine(settings.risk, LedgerStateStore(typed), LedgerEventSink(typed), clock=clock,
                           poll_interval_s=None)
            )  # fmt: skip
            context = RiskContext()
            context.venue_state.update(dict.fromkeys(venues, "connected"))
            prices = GridPrices(mirror, now_ns=clock)
            hedger = Hedger(settings, gateways=gateways, prices=prices, risk=risk, context=context,
                            sleep=clock.sleep, monotonic=clock.monotonic)  # fmt: skip
            executor = _TimedExecutor(
                settings, gateways=gateways, store=typed, risk=risk, context=context, prices=prices, hedger=hedger,
                recheck=lambda opp: current(scanner, opp), clock=clock,
            )  # fmt: skip
            executor.timeline = []
            await executor.start()
            session = _Trading(executor, None, store, clock.now_ns, dict(context.balances))
            await session.refresh_account()
            session.loop = await stack.enter_async_context(TradingLoop(executor, max_concurrent=max_concurrent))
            yield session
