"""`arb` command line: readable tables by default, `--json` for scripts (one JSON document on stdout).

Errors go to stderr with a non-zero exit: 2 for a bad configuration or usage, 1 for a runtime failure (e.g. Redis
unreachable). Logs are key=value lines on stderr, so stdout stays parseable.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, TypeVar

import msgspec
import orjson
import typer
from rich.console import Console
from rich.table import Table

from arb.config import ConfigError, Settings, load_settings
from arb.config.coverage import ASSET_CLASSES, coverage, instrument_counts
from arb.logs import configure_logging

if TYPE_CHECKING:
    from arb.grid import InstrumentSnapshot

app = typer.Typer(help="arb: multi-exchange arbitrage scanner and executor.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect and validate the configuration.", no_args_is_help=True)
grid_app = typer.Typer(help="Read the Redis price grid.", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(grid_app, name="grid")

# Piped output is read by people in logs and by grep: do not wrap or truncate tables to an 80-column default.
out = Console() if Console().is_terminal else Console(width=220)


def _fail(message: str, code: int = 2) -> typer.Exit:
    """Errors go to stderr unwrapped: a file:line: key: problem line must stay one greppable line."""
    sys.stderr.write(message.rstrip("\n") + "\n")
    return typer.Exit(code)


ConfigOpt = Annotated[
    str | None,
    typer.Option("--config", "-c", envvar="ARB_CONFIG", help="User YAML file layered over the shipped config."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
MetricsPortOpt = Annotated[
    int | None,
    typer.Option(
        "--metrics-port", min=0, max=65535, help="Serve Prometheus /metrics here (default metrics.port; 0 off)."
    ),
]

CEX_CAPABILITIES = ("watchOrderBook", "watchBidsAsks", "watchTicker", "fetchOrderBook", "createOrder", "fetchMyTrades")
OTHER_CAPABILITIES = {
    "cfd": ["streamQuotes", "positions", "workingOrders"],
    "dex": ["poolQuotes", "swap"],
}

T = TypeVar("T")


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode() + "\n")


def _load(config: str | None) -> Settings:
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        lines = "\n".join(f"  {p}" for p in exc.problems)
        raise _fail(f"configuration error ({len(exc.problems)} problem(s)):\n{lines}") from None
    configure_logging(settings.log_level)
    return settings


def _run(coro_fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    try:
        import uvloop

        return uvloop.run(coro_fn())
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        return asyncio.run(coro_fn())


@config_app.command("check")
def config_check(config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Validate the configuration; exit 2 and name file, key and problem for each error."""
    settings = _load(config)
    cov = coverage(settings)
    summary = {
        "ok": True,
        "venues": len(settings.venues),
        "exchanges": cov.exchanges,
        "instruments": cov.instruments_total,
        "coverage_ok": cov.ok,
        "min_exchanges": cov.min_exchanges,
        "min_instruments": cov.min_instruments,
    }
    if json:
        _print_json(summary)
        return
    out.print(
        f"configuration OK: {summary['venues']} venues ({cov.exchanges} exchanges), {cov.instruments_total} instruments"
    )
    if not cov.ok:
        out.print(
            f"[yellow]below the coverage floor[/]: need >= {cov.min_exchanges} exchanges and "
            f">= {cov.min_instruments} instruments"
        )


def _capabilities(settings: Settings) -> dict[str, list[str]]:
    caps: dict[str, list[str]] = {}
    cex = {vid: v.ccxt_id for vid, v in settings.venues.items() if v.kind == "cex" and v.ccxt_id}
    if cex:
        import ccxt.pro  # slow import (all exchange classes), so only here

        for vid, ccxt_id in cex.items():
            has = getattr(ccxt.pro, ccxt_id)().has
            caps[vid] = [c for c in CEX_CAPABILITIES if has.get(c)]
    for vid, v in settings.venues.items():
        caps.setdefault(vid, OTHER_CAPABILITIES.get(v.kind, []))
    return caps


@app.command()
def venues(config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """List configured venues with kind, region, fees and capabilities (CEX capabilities from ccxt.pro)."""
    settings = _load(config)
    caps = _capabilities(settings)
    mapped = {vid: 0 for vid in settings.venues}
    for inst in settings.instruments.values():
        for vid in inst.venues:
            mapped[vid] += 1
    rows = [
        {
            "id": vid,
            "kind": v.kind,
            "name": v.name,
            "region": v.region,
            "enabled": v.enabled,
            "ccxt_id": v.ccxt_id,
            "protocol": v.protocol,
            "chain": v.chain,
            "taker_fee": v.fees.taker,
            "maker_fee": v.fees.maker,
            "quote_currencies": list(v.quote_currencies),
            "max_quote_age_ms": v.max_quote_age_ms,
            "instruments": mapped[vid],
            "capabilities": caps[vid],
        }
        for vid, v in settings.venues.items()
    ]
    if json:
        _print_json(rows)
        return
    table = Table(title=f"{len(rows)} venues")
    for col in ("id", "kind", "region", "via", "taker", "maker", "quotes", "instruments", "capabilities"):
        table.add_column(col, justify="right" if col in ("taker", "maker", "instruments") else "left")
    for vid, v in settings.venues.items():
        via = v.ccxt_id or (f"{v.protocol}@{v.chain}" if v.protocol else "own connector")
        table.add_row(
            vid,
            v.kind,
            v.region,
            via,
            f"{v.fees.taker:.4%}",
            f"{v.fees.maker:.4%}",
            ",".join(v.quote_currencies),
            str(mapped[vid]),
            ", ".join(caps[vid]),
        )
    out.print(table)


@app.command()
def instruments(
    config: ConfigOpt = None,
    asset_class: Annotated[
        str | None, typer.Option("--asset-class", help=f"Only this class: {', '.join(ASSET_CLASSES)}.")
    ] = None,
    count: Annotated[bool, typer.Option("--count", help="Print counts per asset class instead of the list.")] = False,
    json: JsonOpt = False,
) -> None:
    """List instruments (canonical id, class, per-venue symbols), or count them."""
    if asset_class is not None and asset_class not in ASSET_CLASSES:
        raise _fail(f"unknown --asset-class {asset_class!r}; choose one of: {', '.join(ASSET_CLASSES)}")
    settings = _load(config)
    if count:
        counts = instrument_counts(settings, asset_class)
        if json:
            _print_json(msgspec.to_builtins(counts))
            return
        table = Table(title="instruments")
        table.add_column("asset class")
        table.add_column("count", justify="right")
        for cls, n in counts.by_class.items():
            table.add_row(cls, str(n))
        if counts.perps:
            table.add_row("perpetuals", str(counts.perps))
        table.add_row("[bold]total[/]", f"[bold]{counts.total}[/]")
        out.print(table)
        return
    rows = [
        {"id": iid, "asset_class": i.asset_class, "base": i.base, "quote": i.quote, "venues": dict(i.venues)}
        for iid, i in settings.instruments.items()
        if asset_class in (None, i.asset_class)
    ]
    if json:
        _print_json(rows)
        return
    table = Table(title=f"{len(rows)} instruments")
    for col in ("id", "class", "venues", "symbols"):
        table.add_column(col)
    for iid, inst in settings.instruments.items():
        if asset_class in (None, inst.asset_class):
            symbols = ", ".join(f"{v}:{s}" for v, s in inst.venues.items())
            table.add_row(iid, inst.asset_class, str(len(inst.venues)), symbols)
    out.print(table)


@app.command()
def demo(
    config: ConfigOpt = None,
    seconds: Annotated[
        float | None, typer.Option("--seconds", min=1.0, help="Stop after this many seconds (default: Ctrl-C).")
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print the run's figures as one JSON line at the end.")] = False,
    fault_every: Annotated[
        float | None,
        typer.Option("--fault-every", min=0.5, help="Drop one venue's connections every this many seconds."),
    ] = None,
    book_update_hz: Annotated[
        float, typer.Option("--book-update-hz", min=0.1, max=50.0, help="Refreshes a second per local book.")
    ] = 1.0,
    metrics_port: MetricsPortOpt = None,
) -> None:
    """Run the main job on embedded defaults: local venues -> ccxt.pro connectors -> Redis grid, shown live."""
    from arb.demo import DemoOptions, run_demo

    settings = _load(config)
    options = DemoOptions(
        seconds=seconds, as_json=json, fault_every_s=fault_every, book_update_hz=book_update_hz, config_path=config,
        metrics_port=settings.metrics.port if metrics_port is None else metrics_port,
    )  # fmt: skip
    raise typer.Exit(_run(lambda: run_demo(settings, out, options)))


@app.command("run")
def run_cmd(
    config: ConfigOpt = None,
    seconds: Annotated[
        float | None, typer.Option("--seconds", min=1.0, help="Stop after this many seconds (default: Ctrl-C).")
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print the trading report as one JSON line at the end.")] = False,
    live: Annotated[
        bool, typer.Option("--live", help="Send real orders (needs `mode: live` in the settings and venue keys).")
    ] = False,
    max_concurrent: Annotated[int, typer.Option("--max-concurrent", min=1, max=32, help="Executions at once.")] = 2,
    order_fault_every: Annotated[
        float | None,
        typer.Option("--order-fault-every", min=0.5, help="Local venues: arm one order fault every this many seconds."),
    ] = None,
    manual: Annotated[
        bool, typer.Option("--manual", help="Execute only what `arb execute OPPORTUNITY_ID` asks for.")
    ] = False,
    dislocation_ms: Annotated[
        tuple[int, int],
        typer.Option(
            "--dislocation-ms", min=50, max=600_000, help="Local venues: an injected dislocation lasts MIN MAX ms."
        ),
    ] = (500, 3000),
    market: Annotated[
        str,
        typer.Option(
            "--market",
            help="local: the embedded local venues (paper against their private endpoints); venues: the configured "
            "venues' market data (paper accounts filling on the grid's depth; implied by --live).",
        ),
    ] = "local",
    metrics_port: MetricsPortOpt = None,
    connectors: Annotated[
        str,
        typer.Option(
            "--connectors",
            help="own: start connector workers for the venues; external: `arb connect` processes elsewhere fill the "
            "grid at ARB_REDIS_URL (with --market venues or --live).",
        ),
    ] = "own",
) -> None:
    """Scan -> risk -> execute, paper by default: on the local venues, orders go to their private endpoints."""
    from arb.demo import DemoOptions, run_trading

    settings = _load(config)
    if market not in ("local", "venues"):
        raise _fail(f"--market must be local or venues, got {market!r}")
    if live:
        _check_live(settings, order_fault_every)
        market = "venues"
    elif settings.mode == "live":
        raise _fail("the settings say `mode: live`: pass --live to trade real venues (nothing was sent)")
    elif market == "venues" and order_fault_every is not None:
        raise _fail("--order-fault-every arms faults on the local venues; it cannot be used with --market venues")
    if connectors not in ("own", "external"):
        raise _fail(f"--connectors must be own or external, got {connectors!r}")
    if connectors == "external" and (market != "venues" or settings.redis_url is None):
        raise _fail("--connectors external reads a grid that `arb connect` fills: it needs --market venues (or --live) "
                    "and ARB_REDIS_URL set to that grid's Redis")  # fmt: skip
    options = DemoOptions(
        seconds=seconds, as_json=json, config_path=config, live=live, max_concurrent=max_concurrent,
        order_fault_every_s=order_fault_every, manual=manual, dislocation_ms=dislocation_ms,
        market="venues" if market == "venues" else "local",
        metrics_port=settings.metrics.port if metrics_port is None else metrics_port,
        external_connectors=connectors == "external",
    )  # fmt: skip
    if dislocation_ms[0] > dislocation_ms[1]:
        raise _fail(f"--dislocation-ms: MIN {dislocation_ms[0]} is above MAX {dislocation_ms[1]}")
    raise typer.Exit(_run(lambda: run_trading(settings, out, options)))


@app.command("connect")
def connect_cmd(
    venues: Annotated[str, typer.Option("--venues", help="Configured venue ids to stream, comma-separated.")],
    config: ConfigOpt = None,
    metrics_port: MetricsPortOpt = None,
) -> None:
    """Stream these configured venues (ccxt.pro) into the grid at ARB_REDIS_URL, for a trader run elsewhere with
    `arb run --connectors external`; stops on Ctrl-C / SIGTERM."""
    import signal

    from arb.connectors.worker import run_worker, worker_spec
    from arb.demo import configured_venues
    from arb.metrics_http import MetricsServer

    settings = _load(config)
    known = configured_venues(settings)
    ids = _id_list(venues, known, "venues")
    if not ids:
        raise _fail(f"--venues: name at least one of {', '.join(known)}")
    if settings.redis_url is None:
        raise _fail("arb connect fills the grid a trader reads: set ARB_REDIS_URL to that Redis")
    spec = worker_spec(settings.redis_url.get_secret_value(), list(ids), known, config=config)
    port = settings.metrics.port if metrics_port is None else metrics_port

    async def stream() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        with MetricsServer(port, settings.metrics.host) as metrics:
            sys.stderr.write(f"arb connect: {', '.join(ids)}; {metrics.summary}\n")
            await run_worker(spec, stop, announce=False)

    _run(stream)


def _check_live(settings: Settings, order_fault_every: float | None) -> None:
    """Refuse `arb run --live` before anything starts unless the settings ask for live and some venue that would be
    traded has its keys (named by variable, never shown)."""
    from arb.connectors.wallets import credentials_from_env, env_name
    from arb.demo import configured_venues
    from arb.trading import TRADED_PROTOCOLS

    if settings.mode != "live":
        raise _fail("--live needs `mode: live` in the settings (ARB_MODE=live); nothing was sent")
    if order_fault_every is not None:
        raise _fail("--order-fault-every arms faults on the local venues; it cannot be used with --live")
    tradable = [v for v, info in configured_venues(settings).items() if info["protocol"] in TRADED_PROTOCOLS]
    if not tradable:
        raise _fail(
            "--live: no enabled venue that instruments list is one arb trades "
            f"({', '.join(sorted(TRADED_PROTOCOLS))}); nothing was sent"
        )
    if not any(credentials_from_env(v) is not None for v in tradable):
        wanted = ", ".join(f"{env_name(v, 'API_KEY')}/{env_name(v, 'SECRET')}" for v in tradable)
        raise _fail(
            f"--live: no venue has keys; set {wanted} (and _PASSWORD where the venue uses one); nothing was sent"
        )


def _id_list(raw: str | None, known: Any, what: str) -> tuple[str, ...]:
    items = tuple(x.strip() for x in (raw or "").split(",") if x.strip())
    unknown = [x for x in items if x not in known]
    if unknown:
        raise _fail(f"--{what}: not in the settings: {', '.join(unknown)}")
    return items


@app.command("record")
def record_cmd(
    out_dir: Annotated[str, typer.Option("--out", help="Tape directory to create (never overwritten).")],
    config: ConfigOpt = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Record the embedded local-venue demo (starts it, as `arb demo`).")
    ] = False,
    venues: Annotated[str | None, typer.Option("--venues", help="Comma-separated venue ids (default: all).")] = None,
    instruments: Annotated[
        str | None, typer.Option("--instruments", help="Comma-separated instrument ids (default: all).")
    ] = None,
    seconds: Annotated[
        float | None, typer.Option("--seconds", min=1.0, help="Stop after this many seconds (default: Ctrl-C).")
    ] = None,
    json: Annotated[bool, typer.Option("--json", help="Print the tape's manifest summary as one JSON line.")] = False,
    book_update_hz: Annotated[
        float, typer.Option("--book-update-hz", min=0.1, max=50.0, help="With --demo: refreshes a second per book.")
    ] = 1.0,
) -> None:
    """Record every quote of the grid's change feed (both timestamps, depth) to a tape for `arb backtest`."""
    from arb.backtest.record import check_out_dir

    settings = _load(config)
    out_path = Path(out_dir)
    try:
        check_out_dir(out_path)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    picked_venues = _id_list(venues, settings.venues, "venues")
    picked_instruments = _id_list(instruments, settings.instruments, "instruments")
    if demo:
        from arb.demo import DemoOptions, run_recording

        options = DemoOptions(
            seconds=seconds, as_json=json, config_path=config, record_dir=str(out_path),
            record_venues=picked_venues, record_instruments=picked_instruments, book_update_hz=book_update_hz,
        )  # fmt: skip
        raise typer.Exit(_run(lambda: run_recording(settings, out, options)))
    if settings.redis_url is None:
        raise _fail("arb record reads the grid of a running stack: set ARB_REDIS_URL to its Redis, or use --demo")
    from arb.backtest.record import record_grid

    url = settings.redis_url.get_secret_value()
    raise typer.Exit(
        _run(lambda: record_grid(settings, url, out_path, picked_venues, picked_instruments, seconds, json, out))
    )


@app.command("execute")
def execute_cmd(
    opportunity_id: Annotated[
        str, typer.Argument(help="An id from `arb scan` / `arb run` (kind:instrument:buy>sell:ns).")
    ],
    config: ConfigOpt = None,
    wait: Annotated[
        float, typer.Option("--wait", min=0.5, max=600.0, help="Seconds for a running `arb run` to take the request.")
    ] = 10.0,
    json: JsonOpt = False,
) -> None:
    """Execute one opportunity now, through the running `arb run` (same Redis: ARB_REDIS_URL); exit 0 if it traded."""
    import msgspec

    from arb.executor.commands import AnswerOverdue, NoTradingProcess, opportunity_id_problem, request_execution
    from arb.grid import GridError, GridLayout, PriceGrid

    settings = _load(config)
    problem = opportunity_id_problem(settings, opportunity_id)
    if problem is not None:
        raise _fail(problem)
    if settings.redis_url is None:
        raise _fail(
            "arb execute hands the opportunity to the running `arb run`, which holds the venues and the executor: "
            "set ARB_REDIS_URL to the Redis it uses (it prints it at start: 'grid Redis: ...'); nothing was sent"
        )
    url = settings.redis_url.get_secret_value()

    async def ask() -> Any:
        async with PriceGrid.from_url(url, GridLayout.from_settings(settings), settings.grid) as grid:
            return await request_execution(grid, opportunity_id, timeout_s=wait)

    try:
        answer = _run(ask)
    except (NoTradingProcess, AnswerOverdue) as exc:
        raise _fail(str(exc), 1) from None
    except GridError as exc:
        raise _fail(f"arb execute: Redis failed: {exc}; nothing was sent", 1) from None
    if json:
        _print_json(msgspec.to_builtins(answer))
    elif not answer.executed:
        out.print(f"not executed: {answer.reason}")
    else:
        o = answer.outcome or {}
        out.print(
            f"execution {o.get('execution_id')}: {o.get('status')} {o.get('reason') or ''} amount {o.get('amount')} "
            f"realized {o.get('realized_pnl_usd')} USD (predicted {o.get('predicted_pnl_usd', 0.0):.4f})"
        )
    ok = answer.executed and (answer.outcome or {}).get("status") in ("done", "hedged")
    raise typer.Exit(0 if ok else 1)


async def _with_store(settings: Settings, fn: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
    from arb.ledger import open_ledger

    async with open_ledger(settings.database_url.get_secret_value()) as ledger:
        return await fn(ledger.execution())


def _ledger_failed(settings: Settings, exc: Exception) -> typer.Exit:
    from arb.logs import mask_url

    return _fail(f"ledger ({mask_url(settings.database_url.get_secret_value())}): {exc}", 1)


@app.command()
def positions(config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Net holdings change per venue and asset, from the ledger's booked fills."""
    from arb.ledger import LedgerError

    settings = _load(config)
    try:
        held = _run(lambda: _with_store(settings, lambda store: store.positions()))
    except LedgerError as exc:
        raise _ledger_failed(settings, exc) from None
    rows = sorted(((v, a, amount) for (v, a), amount in held.items() if amount != 0))
    if json:
        _print_json([{"venue": v, "asset": a, "amount": str(x)} for v, a, x in rows])
        return
    table = Table(title=f"positions ({len(rows)})")
    for col in ("venue", "asset", "amount"):
        table.add_column(col, justify="right" if col == "amount" else "left")
    for v, a, x in rows:
        table.add_row(v, a, str(x))
    out.print(table)


@app.command()
def orders(
    config: ConfigOpt = None,
    json: JsonOpt = False,
    open_only: Annotated[bool, typer.Option("--open", help="Only orders not in a final state.")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="Newest N (without --open).")] = 50,
) -> None:
    """Orders from the ledger: status, filled, venue order id."""
    from arb.ledger import LedgerError

    settings = _load(config)

    async def read(store: Any) -> list[Any]:
        return list(await (store.open_orders() if open_only else store.recent_orders(limit)))

    try:
        records = _run(lambda: _with_store(settings, read))
    except LedgerError as exc:
        raise _ledger_failed(settings, exc) from None
    if json:
        _print_json([{**msgspec.to_builtins(r.order), "intent_id": r.intent_id, "leg": r.leg} for r in records])
        return
    table = Table(title=f"orders ({len(records)}{', open' if open_only else ''})")
    for col in ("client id", "venue", "symbol", "side", "amount", "price", "status", "filled"):
        table.add_column(col)
    for r in records:
        o = r.order
        table.add_row(o.client_id, o.venue, o.symbol, o.side.value, str(o.amount), str(o.price), o.status.value,
                      str(o.filled))  # fmt: skip
    out.print(table)


risk_app = typer.Typer(help="The risk engine's state.", no_args_is_help=True)
app.add_typer(risk_app, name="risk")


@risk_app.command("status")
def risk_status(config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Trading state (ACTIVE / REDUCING / HALTED: who set it, why, when), limits and recent denials."""
    from arb.ledger import LedgerError

    settings = _load(config)

    async def read(store: Any) -> tuple[Any, Any]:
        return await store.load_trading_state(), await store.recent_risk_events(10)

    try:
        state, events = _run(lambda: _with_store(settings, read))
    except LedgerError as exc:
        raise _ledger_failed(settings, exc) from None
    body = {
        "state": state.state if state else "active",
        "reason": state.reason if state else "",
        "actor": state.actor if state else "",
        "since_ns": state.ts_ns if state else None,
        "limits": settings.risk.model_dump(mode="json"),
        "recent_events": [msgspec.to_builtins(e) for e in events],
    }
    if json:
        _print_json(body)
        return
    out.print(f"trading state: [bold]{body['state']}[/] {body['reason']} ({body['actor'] or 'default'})")
    for e in events:
        out.print(f"  {e.kind} {e.reason}: {e.detail}")


@app.command("kill-switch")
def kill_switch(
    state: Annotated[str, typer.Argument(help="on (HALTED: only hedges, unwinds, cancels) or off (ACTIVE)")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the ledger with who and when).")],
    config: ConfigOpt = None,
) -> None:
    """Engage or release the kill switch; persisted, so a running `arb run` picks it up within a second."""
    import getpass
    import time as _time

    from arb.ledger import LedgerError

    if state not in ("on", "off"):
        raise _fail(f"kill-switch: state must be on or off, got {state!r}")
    if not reason.strip():
        raise _fail("kill-switch: --reason must say why")
    settings = _load(config)
    target = "halted" if state == "on" else "active"
    actor = f"cli:{getpass.getuser()}"

    async def write(store: Any) -> Any:
        return await store.save_trading_state(target, reason.strip(), actor, _time.time_ns())

    try:
        _run(lambda: _with_store(settings, write))
    except LedgerError as exc:
        raise _ledger_failed(settings, exc) from None
    out.print(f"trading state is now {target.upper()} ({actor}: {reason.strip()})")


@app.command()
def scan(
    config: ConfigOpt = None,
    once: Annotated[bool, typer.Option("--once", help="Scan once and exit (the default).")] = False,
    follow: Annotated[bool, typer.Option("--follow", help="Keep the table updating until Ctrl-C.")] = False,
    json: Annotated[bool, typer.Option("--json", help="Print one JSON object (last line) instead of a table.")] = False,
    top: Annotated[int, typer.Option("--top", min=1, max=1000, help="Show the best N by priority.")] = 20,
    instrument: Annotated[str | None, typer.Option("--instrument", help="Only this instrument id.")] = None,
    min_edge: Annotated[
        float | None,
        typer.Option("--min-edge", min=0.0, max=10_000.0, help="Minimum net edge in bps (default: config, 10)."),
    ] = None,
    warmup: Annotated[
        float, typer.Option("--warmup", min=1.0, help="Without ARB_REDIS_URL: seconds to run the local stack first.")
    ] = 15.0,
    seconds: Annotated[
        float | None, typer.Option("--seconds", min=1.0, help="With --follow: stop after this many seconds.")
    ] = None,
) -> None:
    """Ranked opportunities with their cost breakdown, from the running grid (ARB_REDIS_URL) or the local stack."""
    import msgspec

    from arb.demo import StackGridError
    from arb.grid import GridError
    from arb.procs import ChildError
    from arb.scanner.view import ScanFilter, live, opportunity_table, scan_grid, scan_local

    if once and follow:
        raise _fail("--once and --follow exclude each other")
    settings = _load(config)
    if instrument is not None and instrument not in settings.instruments:
        raise _fail(f"unknown instrument {instrument!r}; `arb instruments` lists the {len(settings.instruments)} ids")
    flt = ScanFilter(instrument=instrument, top=top, min_edge_bps=min_edge)
    err = Console(stderr=True)

    def show(opps: list[Any], title: str) -> None:
        if json:
            _print_json({"count": len(opps), "opportunities": msgspec.to_builtins(opps)})
        else:
            out.print(opportunity_table(opps, title))

    try:
        if settings.redis_url is None:
            seconds_local = warmup if not follow else (seconds or 1e9)
            err.print(f"no ARB_REDIS_URL: running the local stack for {seconds_local:.0f} s, then scanning")
            opps = _run(lambda: scan_local(settings, flt, seconds=seconds_local, config_path=config, console=err))
            show(opps, f"opportunities open after {seconds_local:.0f} s of the local stack")
            return
        url = settings.redis_url.get_secret_value()
        if not follow:
            _run(lambda: scan_grid(settings, url, flt, on_result=lambda o: show(o, "opportunities now")))
            return
        view, update = live(out)
        with view:
            _run(
                lambda: scan_grid(
                    settings,
                    url,
                    flt,
                    follow_s=seconds or float("inf"),
                    on_result=lambda o: update(opportunity_table(o, "opportunities (following)")),
                )
            )
    except (GridError, StackGridError, ChildError) as exc:
        raise _fail(f"scan failed: {exc}", 1) from None


@grid_app.command("show")
def grid_show(instrument: str, config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Every venue's quote for INSTRUMENT in the running grid (ARB_REDIS_URL), with its age and staleness."""
    settings = _load(config)
    inst = settings.instruments.get(instrument)
    if inst is None:
        raise _fail(f"unknown instrument {instrument!r}; `arb instruments` lists the {len(settings.instruments)} ids")
    if settings.redis_url is None:
        raise _fail(
            "arb grid show reads a running grid: set ARB_REDIS_URL to its Redis "
            "(an embedded Redis lives only as long as the arb process that started it)"
        )
    url = settings.redis_url.get_secret_value()

    async def read() -> InstrumentSnapshot:
        from arb.grid import GridLayout, PriceGrid

        async with PriceGrid.from_url(url, GridLayout.from_settings(settings), settings.grid) as grid:
            return await grid.read_instrument(instrument)

    from arb.grid import GridError

    try:
        snap = _run(read)
    except GridError as exc:
        raise _fail(str(exc), 1) from None
    rows = [
        {
            "venue": venue,
            "symbol": inst.venues.get(venue),
            "bid": view.quote.bid,
            "bid_size": view.quote.bid_size,
            "ask": view.quote.ask,
            "ask_size": view.quote.ask_size,
            "spread_bps": (view.quote.ask - view.quote.bid) / view.quote.ask * 1e4,
            "depth_levels": [len(view.quote.bids), len(view.quote.asks)],
            "ts_exchange": view.quote.ts_exchange,
            "ts_recv": view.quote.ts_recv,
            "sequence": view.quote.sequence,
            "age_ms": view.age_ns / 1e6,
            "stale": view.stale,
        }
        for venue, view in sorted(snap.venues.items())
    ]
    if json:
        _print_json({"instrument": instrument, "quotes": rows, "skipped": snap.skipped})
        return
    table = Table(title=f"{instrument}: {len(rows)} of {len(inst.venues)} venues quoting")
    for col in ("venue", "symbol", "bid", "bid size", "ask", "ask size", "spread bps", "age ms", "status"):
        table.add_column(col, justify="left" if col in ("venue", "symbol", "status") else "right")
    for r in rows:
        table.add_row(
            str(r["venue"]),
            str(r["symbol"] or ""),
            f"{r['bid']:.8g}",
            f"{r['bid_size']:.6g}",
            f"{r['ask']:.8g}",
            f"{r['ask_size']:.6g}",
            f"{r['spread_bps']:.2f}",
            f"{r['age_ms']:.0f}",
            "[red]STALE[/]" if r["stale"] else "[green]fresh[/]",
        )
    if snap.skipped:
        table.caption = f"skipped malformed entries: {snap.skipped}"
    out.print(table)


@app.command()
def serve(
    config: ConfigOpt = None,
    host: Annotated[str, typer.Option(help="Bind address (every /api/v1 route needs an API key).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    auto_trade: Annotated[
        bool,
        typer.Option(
            "--auto-trade",
            help="Embedded stack: also execute what the scanner opens (default: only "
            "what POST /arbitrage/execute asks for).",
        ),
    ] = False,
) -> None:
    """Serve the REST API. Without ARB_REDIS_URL it also runs the embedded stack (Redis, local venues, connectors,
    scanner, paper trader), like `arb run`; with it, it serves the trading process that uses that Redis."""
    import ipaddress

    settings = _load(config)
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        raise _fail(f"--host: {host!r} is not an IP address (or localhost)") from None
    if not loopback:
        problem = _public_bind_problem(settings)
        if problem is not None:
            raise _fail(f"refusing to bind {host}: {problem}")
    raise typer.Exit(_run(lambda: _serve(settings, host, port, config, auto_trade)))


DEFAULT_PASSWORDS: Final = frozenset({"postgres", "password", "changeme", "admin", "arb", "guest", "secret", "redis"})
"""Passwords of quick-start examples: a service reachable from the network must not run on one (FAULTS S10)."""


def _public_bind_problem(settings: Settings) -> str | None:
    """Why the API must not listen beyond loopback with these settings (FAULTS S10), or None."""
    from urllib.parse import urlsplit

    from arb.ledger import LedgerError, open_ledger
    from arb.ledger.api import ApiStore

    for what, secret in (("ARB_DATABASE_URL", settings.database_url), ("ARB_REDIS_URL", settings.redis_url)):
        if secret is not None and urlsplit(secret.get_secret_value()).password in DEFAULT_PASSWORDS:
            return f"{what} uses a default password; set a real one before exposing the API"

    async def usable_keys() -> int:
        async with open_ledger(settings.database_url.get_secret_value()) as ledger:
            return sum(k.revoked_ns is None for k in await ApiStore(ledger).keys())

    try:
        if _run(usable_keys) == 0:
            return "no API key exists yet: create one with `arb api-key create --scope read --name ...` first"
    except LedgerError as exc:
        return f"the ledger cannot be read ({exc})"
    return None


async def _serve(settings: Settings, host: str, port: int, config: str | None, auto_trade: bool) -> int:
    import contextlib
    import signal

    import uvicorn
    from pydantic import SecretStr

    from arb import tasks
    from arb.api.app import create_app
    from arb.demo import DemoOptions, grid_redis, run_trading

    with grid_redis(settings) as (url, embedded):
        stack = None
        if embedded:  # nothing configured: the API serves its own stack, as `arb run --manual` would run it
            local = settings.model_copy(update={"redis_url": SecretStr(url)})
            opts = DemoOptions(as_json=True, config_path=config, manual=not auto_trade, refresh_s=1.0)
            stack = tasks.spawn(run_trading(local, Console(stderr=True), opts), name="serve-stack")
        app = create_app(settings, url, config_path=config)
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))
        # Our own Ctrl-C / SIGTERM: uvicorn's would re-raise the signal once it stops, killing the stack mid-close.
        server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
        sys.stderr.write(
            f"arb serve: http://{host}:{port}/api/v1 (docs at /docs){' with the embedded stack' if embedded else ''}\n"
        )
        try:
            await server.serve()
        finally:
            if stack is not None:
                await tasks.cancel_and_wait(stack, timeout_s=30.0)
        return 0 if server.started else 1


api_key_app = typer.Typer(help="API keys of the REST API (stored hashed in the ledger).", no_args_is_help=True)
app.add_typer(api_key_app, name="api-key")


def _with_api_keys(settings: Settings, fn: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
    """`fn` on the ledger's API keys (`arb.ledger.api.ApiStore`); a ledger failure exits naming the masked URL."""
    from arb.ledger import LedgerError, open_ledger
    from arb.ledger.api import ApiStore

    async def run() -> T:
        async with open_ledger(settings.database_url.get_secret_value()) as ledger:
            return await fn(ApiStore(ledger))

    try:
        return _run(run)
    except LedgerError as exc:
        raise _ledger_failed(settings, exc) from None


@api_key_app.command("create")
def api_key_create(
    scope: Annotated[list[str], typer.Option("--scope", help="read, trade or admin; repeat for several.")],
    name: Annotated[str, typer.Option("--name", help="Who or what uses the key (shown in listings and logs).")],
    config: ConfigOpt = None,
    json: JsonOpt = False,
) -> None:
    """Create a key; its token is printed once and never stored (only its hash is)."""
    from arb.ledger.api import check_scopes

    try:
        scopes = check_scopes(x.strip() for s in scope for x in s.split(","))
    except ValueError as exc:
        raise _fail(f"--scope: {exc}") from None
    if not name.strip():
        raise _fail("--name: say who or what uses the key")
    settings = _load(config)
    record, token = _with_api_keys(settings, lambda store: store.create_key(name, scopes))
    if json:
        _print_json({"key_id": record.id, "name": record.name, "scopes": sorted(record.scopes), "token": token})
        return
    out.print(f"key {record.id} ({record.name}; scopes {', '.join(sorted(record.scopes))})")
    out.print("token (shown once; store it in your secret manager):")
    sys.stdout.write(token + "\n")


@api_key_app.command("list")
def api_key_list(config: ConfigOpt = None, json: JsonOpt = False) -> None:
    """Every key with its scopes and whether it is revoked (never a secret)."""
    settings = _load(config)
    keys = _with_api_keys(settings, lambda store: store.keys())
    rows = [{"key_id": k.id, "name": k.name, "scopes": sorted(k.scopes), "created_ns": k.created_ns,
             "revoked": k.revoked_ns is not None} for k in keys]  # fmt: skip
    if json:
        _print_json(rows)
        return
    for r in rows:
        out.print(f"{r['key_id']}  {r['name']}  {','.join(r['scopes'])}{'  REVOKED' if r['revoked'] else ''}")


@api_key_app.command("revoke")
def api_key_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (from `arb api-key list`).")],
                   config: ConfigOpt = None) -> None:  # fmt: skip
    """Revoke a key: every API process refuses it within 2 s."""
    settings = _load(config)
    done = _with_api_keys(settings, lambda store: store.revoke_key(key_id))
    if not done:
        raise _fail(f"no usable key {key_id!r} (unknown or already revoked)", 1)
    out.print(f"key {key_id} revoked")


backtest_app = typer.Typer(help="Backtest on recorded market data (tapes from `arb record`).", no_args_is_help=True)
app.add_typer(backtest_app, name="backtest")


@backtest_app.command("arbitrage")
def backtest_arbitrage(
    data: Annotated[str, typer.Option("--data", help="Tape directory written by `arb record`.")],
    latency_ms: Annotated[
        list[float] | None,
        typer.Option("--latency-ms", min=0.0, help="Order latency of every venue, ms; repeat to compare several."),
    ] = None,
    speed: Annotated[
        float | None, typer.Option("--speed", min=0.001, help="Replay at N x the recorded pace (default: flat out).")
    ] = None,
    out_dir: Annotated[
        str | None, typer.Option("--out", help="Directory for report.json / report.html (default: DATA/report).")
    ] = None,
    json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Replay a tape through the scanner and the paper executor: what `arb` would have found, executed and earned."""
    from arb.backtest.replay import open_tape, replay
    from arb.backtest.report import write_reports
    from arb.backtest.tape import TapeError, config_hash

    settings = _load(config)
    try:
        manifest = open_tape(Path(data))
    except TapeError as exc:
        raise _fail(f"--data: {exc}") from None
    if manifest.config_hash != config_hash(settings):
        sys.stderr.write("warning: the tape was recorded under other settings (config hash differs); replaying under "
                         "the current ones\n")  # fmt: skip
    if manifest.gaps:
        missed = sum(g.missed for g in manifest.gaps)
        sys.stderr.write(f"warning: the tape has {len(manifest.gaps)} gaps ({missed} feed entries never recorded)\n")
    latencies = latency_ms or [0.0]

    def progress(done: int, total: int, quotes: int) -> None:
        sys.stderr.write(f"replay: {done}/{total} entries, {quotes} quotes\n")

    show = progress if manifest.entries > 20_000 or speed else None

    async def run_all() -> list[Any]:
        return [await replay(Path(data), settings, latency_ms=ms, speed=speed, progress=show) for ms in latencies]

    # the standard loop, not uvloop: the replay's settle step reads its ready queue (`arb.backtest.replay.settle`)
    reports = asyncio.run(run_all())
    target = Path(out_dir) if out_dir else Path(data) / "report"
    paths = write_reports(target, reports)
    summary = _backtest_summary(reports, paths)
    if json:
        _print_json(summary)
        return
    _backtest_table(data, reports, paths)


def _floats(raw: str, what: str) -> list[float]:
    try:
        values = [float(x) for x in raw.split(",") if x.strip()]
    except ValueError:
        raise _fail(f"--{what}: comma-separated numbers, got {raw!r}") from None
    if not values:
        raise _fail(f"--{what}: give at least one value")
    return values


@backtest_app.command("sweep")
def backtest_sweep(
    data: Annotated[str, typer.Option("--data", help="Tape directory written by `arb record`.")],
    min_edge: Annotated[
        str, typer.Option("--min-edge", help="thresholds.min_net_spread values, comma-separated (fractions).")
    ] = "0.001",
    max_slippage: Annotated[
        str, typer.Option("--max-slippage", help="thresholds.max_slippage values, comma-separated (fractions).")
    ] = "0.0005",
    size: Annotated[
        str, typer.Option("--size", help="risk.max_order_notional_usd values, comma-separated (USD).")
    ] = "1000",
    latency_ms: Annotated[float, typer.Option("--latency-ms", min=0.0, help="Order latency of every venue.")] = 0.0,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, max=64, help="Replays at once (default: one per core).")
    ] = None,
    json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Replay a tape over every combination of thresholds, in parallel processes, ranked by realized PnL."""
    from arb.backtest.sweep import as_rows, points, run_sweep
    from arb.backtest.tape import TapeError

    _load(config)
    grid = points(_floats(min_edge, "min-edge"), _floats(max_slippage, "max-slippage"), _floats(size, "size"))

    def progress(done: int, total: int, result: Any) -> None:
        p = result.point
        sys.stderr.write(f"sweep: {done}/{total} min_edge={p.min_edge} max_slippage={p.max_slippage} size={p.size} "
                         f"realized {result.realized_pnl_usd:.2f} USD\n")  # fmt: skip

    try:
        results = run_sweep(Path(data), config, grid, latency_ms=latency_ms, workers=workers, progress=progress)
    except TapeError as exc:
        raise _fail(f"--data: {exc}") from None
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if json:
        _print_json(as_rows(results))
        return
    table = Table(title=f"sweep over {len(results)} settings, best first")
    for col in ("rank", "min edge", "max slippage", "size", "executed", "hedged", "realized USD", "capture", "max dd"):
        table.add_column(col, justify="right")
    for r in results:
        capture = "n/a" if r.edge_capture is None else f"{r.edge_capture:.3f}"
        table.add_row(str(r.rank), str(r.point.min_edge), str(r.point.max_slippage), str(r.point.size),
                      str(r.executed), str(r.hedged), f"{r.realized_pnl_usd:.2f}", capture,
                      f"{r.max_drawdown_usd:.2f}")  # fmt: skip
    out.print(table)


def _backtest_summary(reports: list[Any], paths: dict[str, Path]) -> dict[str, Any]:
    """`arb backtest arbitrage --json`'s line: the first replay's figures, and every latency's when several."""
    from arb.backtest.report import latency_rows

    first = reports[0]
    perf = first.perf
    summary: dict[str, Any] = {
        "opportunities": first.opportunities, "executed": first.executed, "done": first.done,
        "realized_pnl": first.realized_pnl_usd, "predicted_pnl": first.predicted_pnl_usd,
        "realized_edge_bps": first.realized_edge_bps_mean, "missed": first.missed, "fill_rate": first.fill_rate,
        "quotes": first.tape.replayed_quotes, "quotes_per_s": perf.quotes_per_s if perf else None,
        "gaps": len(first.tape.gaps), "config_matches": first.tape.config_matches,
        "report": str(paths["json"]), "html": str(paths["html"]),
    }  # fmt: skip
    if first.truth is not None:
        summary["truth"] = first.truth.by_status
    if first.live is not None:
        summary["live"] = {"opened": first.live.live_opened, "found": first.live.found,
                           "same_edge": first.live.same_edge}  # fmt: skip
    if len(reports) > 1:
        rows = latency_rows(reports)
        for row, r in zip(rows, reports, strict=True):
            row["quotes_per_s"] = r.perf.quotes_per_s if r.perf else None
        summary["latencies"] = rows
    return summary


def _backtest_table(data: str, reports: list[Any], paths: dict[str, Path]) -> None:
    table = Table(title=f"backtest {data}")
    for col in (
        "latency ms",
        "opportunities",
        "executed",
        "done",
        "missed",
        "realized USD",
        "predicted USD",
        "realized bps",
        "fill rate",
        "quotes/s",
    ):
        table.add_column(col, justify="right")
    for r in reports:
        table.add_row(str(r.latency_ms), str(r.opportunities), str(r.executed), str(r.done),
                      str(sum(r.missed.values())), f"{r.realized_pnl_usd:.2f}", f"{r.predicted_pnl_usd:.2f}",
                      "-" if r.realized_edge_bps_mean is None else f"{r.realized_edge_bps_mean:.1f}",
                      "-" if r.fill_rate is None else f"{r.fill_rate:.2f}",
                      f"{r.perf.quotes_per_s:,.0f}" if r.perf else "-")  # fmt: skip
    out.print(table)
    if reports[0].tape.gaps:
        out.print(f"[red]tape gaps: {len(reports[0].tape.gaps)}[/] (the replay cannot see the missing entries)")
    out.print(f"report: {paths['json']} and {paths['html']}")


# --- the directional layer --------------------------------------------------------------------------------------------
strategy_app = typer.Typer(
    help="The directional layer: 1H candles, news sentiment, RL agent, backtests and signals.", no_args_is_help=True
)
app.add_typer(strategy_app, name="strategy")
DataOpt = Annotated[
    str | None,
    typer.Option("--data", help="A CSV or Parquet file of OHLCV bars (any asset class) instead of stored candles."),
]
AssetOpt = Annotated[
    str | None, typer.Option("--asset", help="An instrument whose candles `arb strategy fetch` stored (e.g. BTC/USD).")
]
NewsOpt = Annotated[
    str | None,
    typer.Option("--news", help="A JSONL file of news items for S(t) (one object a line: ts, title, ...); none: S=0."),
]
AlgoOpt = Annotated[str | None, typer.Option("--algo", help="ppo, dqn or sac (default strategy.rl.algo).")]
ReportOpt = Annotated[str | None, typer.Option("--out", help="Report directory (report.json/html, equity.png).")]
StepsOpt = Annotated[
    int | None, typer.Option("--timesteps", min=1, help="Training steps (default strategy.rl.total_timesteps).")
]


def _strategy_run(fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    from arb.strategy.jobs import StrategyError

    try:
        return asyncio.run(fn())
    except StrategyError as exc:
        raise _fail(str(exc), 1) from None


def _algo(algo: str | None) -> str | None:
    if algo is not None and algo not in ("ppo", "dqn", "sac"):
        raise _fail(f"--algo: {algo!r} is not one of ppo, dqn, sac")
    return algo


def _steps_progress(label: str) -> Callable[[int, int], None]:
    last = [-1]

    def progress(done: int, total: int) -> None:
        pct = int(100 * done / max(total, 1))
        if pct // 10 != last[0]:
            last[0] = pct // 10
            sys.stderr.write(f"{label}: {done}/{total} steps ({pct} %)\n")

    return progress


def _strategy_summary(doc: dict[str, Any], title: str) -> None:
    table = Table(title=title)
    cols = ("sharpe", "sortino", "calmar", "max_drawdown", "win_rate", "profit_factor", "total_return", "trades",
            "exposure")  # fmt: skip
    table.add_column("")
    for c in cols:
        table.add_column(c, justify="right")
    rows = [("strategy", doc["strategy"]), *sorted(doc["baselines"].items())]
    for name, m in rows:
        table.add_row(name, *("-" if m.get(c) is None else f"{m[c]:.4g}" for c in cols))
    out.print(table)


@strategy_app.command("fetch")
def strategy_fetch(
    assets: Annotated[
        str | None, typer.Option("--assets", help="Comma-separated instruments (default strategy.candles.assets).")
    ] = None,
    json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Fetch 1H candles (paginated, rate-limited, resumable) into the Parquet store under strategy.candles.data_dir."""
    from arb.strategy import jobs

    settings = _load(config)
    wanted = _id_list(assets, settings.instruments, "assets") if assets else None

    def progress(asset: str, done: int, total: int) -> None:
        sys.stderr.write(f"fetch {asset}: {done}/{total} candles\n")

    try:
        added = _strategy_run(lambda: jobs.fetch(settings, list(wanted) if wanted else None, progress))
    except ValueError as exc:
        raise _fail(f"fetch: {exc}") from None
    if json:
        _print_json({"venue": settings.strategy.candles.venue, "added": added})
        return
    for asset, n in added.items():
        out.print(f"{asset}: {n} new candles")


@strategy_app.command("train")
def strategy_train(
    data: DataOpt = None,
    asset: AssetOpt = None,
    algo: AlgoOpt = None,
    timesteps: StepsOpt = None,
    news: NewsOpt = None,
    json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Train an agent on all the bars given, save it as a new version under strategy.rl.models_dir, record it."""
    from arb.strategy import jobs

    settings = _load(config)
    chosen = _algo(algo)

    async def go() -> Any:
        name, bars = await jobs.bars_for(settings, asset=asset, data=data)
        sentiment = await jobs.news_sentiment(settings, bars, asset or name, news)
        return await jobs.train_model(settings, bars, name=name, algo=chosen, timesteps=timesteps,
                                      sentiment=sentiment, on_progress=_steps_progress("train"))  # fmt: skip

    record = _strategy_run(go)
    if json:
        _print_json(msgspec.to_builtins(record))
        return
    out.print(f"model {record.id} ({record.algo}) saved at {record.path}")


@strategy_app.command("backtest")
def strategy_backtest(
    data: DataOpt = None,
    asset: AssetOpt = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="A saved model directory; none: train on the first walk_forward.train_bars."),
    ] = None,
    algo: AlgoOpt = None,
    timesteps: StepsOpt = None,
    news: NewsOpt = None,
    out_dir: ReportOpt = None,
    json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Backtest the agent against buy-and-hold and an SMA crossover with the env's costs and the ATR stops."""
    from arb.strategy import jobs

    settings = _load(config)
    chosen = _algo(algo)

    async def go() -> tuple[dict[str, Any], dict[str, Path]]:
        return await jobs.backtest(settings, data=data, asset=asset, model_path=model, algo=chosen,
                                   timesteps=timesteps, news=news, out_dir=out_dir,
                                   on_progress=_steps_progress("train"))  # fmt: skip

    doc, paths = _strategy_run(go)
    _strategy_report(doc, paths, json, "backtest (out of sample)" if model is None else f"backtest of {model}")


def jobs_json(doc: dict[str, Any]) -> dict[str, Any]:
    from arb.strategy.jobs import jsonable

    return dict(jsonable(doc))


def _strategy_report(doc: dict[str, Any], paths: dict[str, Path], json: bool, title: str) -> None:
    """`--json`: the whole document as one line (the last); else the metrics table and where the report is."""
    if json:
        _print_json(jobs_json(doc))
        return
    _strategy_summary(doc, title)
    out.print(f"report: {paths['html']} and {paths['png']}")


@strategy_app.command("walk-forward")
def strategy_walk_forward(
    data: DataOpt = None,
    asset: AssetOpt = None,
    algo: AlgoOpt = None,
    timesteps: StepsOpt = None,
    news: NewsOpt = None,
    out_dir: ReportOpt = None,
    json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Rolling train/test windows; reports out-of-sample results only, beside both baselines."""
    from arb.strategy import jobs

    settings = _load(config)
    chosen = _algo(algo)

    def progress(p: Any) -> None:
        if p.phase != "train" or p.done in (0, p.total):
            sys.stderr.write(f"walk-forward: window {p.window + 1}/{p.windows} {p.phase} {p.done}/{p.total}\n")

    async def go() -> tuple[dict[str, Any], dict[str, Path]]:
        return await jobs.walk_forward(settings, data=data, asset=asset, algo=chosen, timesteps=timesteps,
                                       news=news, out_dir=out_dir, on_progress=progress)  # fmt: skip

    doc, paths = _strategy_run(go)
    _strategy_report(doc, paths, json, f"walk-forward, {len(doc['windows'])} windows, out of sample")


@strategy_app.command("signal")
def strategy_signal(
    asset: Annotated[
        list[str] | None, typer.Option("--asset", help="Instrument(s); default every asset with stored candles.")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model directory (default: newest trained).")] = None,
    paper: Annotated[bool, typer.Option("--paper/--no-paper", help="Act on the signals in the paper book.")] = True,
    json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Signals now: direction, confidence, sentiment and size per asset; stored, published, acted on in paper."""
    from arb.strategy import jobs

    settings = _load(config)
    wanted = list(_id_list(",".join(asset), settings.instruments, "asset")) if asset else None
    signals = _strategy_run(lambda: jobs.signal_with_redis(settings, assets=wanted, model_path=model, paper=paper))
    if json:
        _print_json([jobs_json(msgspec.to_builtins(s)) for s in signals])
        return
    table = Table(title="directional signals")
    for col in ("asset", "direction", "confidence", "sentiment", "price", "size", "notional USD", "stop", "reason"):
        table.add_column(col)
    for s in signals:
        table.add_row(s.asset, {1: "long", -1: "short", 0: "flat"}[s.direction], f"{s.confidence:.2f}",
                      f"{s.sentiment:+.2f}", f"{s.price:.6g}", f"{s.size:.6g}", f"{s.notional_usd:.2f}",
                      "-" if s.stop is None else f"{s.stop:.6g}", s.reason)  # fmt: skip
    out.print(table)


@strategy_app.command("run")
def strategy_run(
    asset: Annotated[
        list[str] | None, typer.Option("--asset", help="Instrument(s) (default: the candle assets).")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="Model directory (default: newest trained).")] = None,
    once: Annotated[bool, typer.Option("--once", help="One cycle (fetch, signal, paper) and exit.")] = False,
    config: ConfigOpt = None,
) -> None:
    """The hourly loop: fetch new candles, manage stops, signal, publish, act in paper; Ctrl-C stops it."""
    from arb.strategy import jobs

    settings = _load(config)
    wanted = list(_id_list(",".join(asset), settings.instruments, "asset")) if asset else None

    def report(signals: list[Any]) -> None:
        for s in signals:
            sys.stderr.write(f"signal {s.asset} direction={s.direction} confidence={s.confidence:.2f} "
                             f"size={s.size:.6g} reason={s.reason}\n")  # fmt: skip

    try:
        _strategy_run(lambda: jobs.run_loop(settings, assets=wanted, model_path=model, once=once, on_cycle=report))
    except KeyboardInterrupt:
        sys.stderr.write("strategy run: stopped\n")


@strategy_app.command("tune")
def strategy_tune(
    data: DataOpt = None,
    asset: AssetOpt = None,
    trials: Annotated[int, typer.Option("--trials", min=1, help="Optuna trials.")] = 20,
    timesteps: StepsOpt = None,
    json: JsonOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Tune PPO's hyperparameters with Optuna (median pruner) on a held-out tail of the bars."""
    from arb.strategy import jobs

    settings = _load(config)

    async def go() -> dict[str, Any]:
        return await jobs.tune(settings, data=data, asset=asset, trials=trials, timesteps=timesteps)

    best = _strategy_run(go)
    if json:
        _print_json(jobs_json(best))
        return
    for k, v in best.items():
        out.print(f"{k}: {v}")


def main() -> None:
    if os.environ.get("ARB_LOG_LEVEL") is None:
        configure_logging("WARNING")  # until settings are loaded, only problems
    app()
