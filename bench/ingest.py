"""End-to-end ingest benchmark: local venues -> real ccxt.pro -> connectors -> Redis grid. Prints ONE JSON object.

`./run bench ingest`. What runs is what the demo runs (`arb.procs` children): the local venues in one process
(`python -m arb.sim`, Binance's wire format: depth diffs with `U`/`u` chains, the heaviest path in ccxt.pro), connector
worker processes (`python -m arb.connectors.worker`) and an embedded redis-server. The market refreshes every book
`--hz` times a second, so the offered load is books x hz (>= 10,000 updates/s by default: 4 venues x 200 books x 12.5).

Measured, over `--seconds` after every venue is connected and its books are flowing:

* offered: book updates the venues produced (the sim's own `book_updates` counter);
* achieved: quotes the connectors wrote into the grid (confirmed by Redis), per second;
* exchange -> grid latency p50/p99: from each quote's venue event time to Redis confirming its batch (the workers'
  histograms, `arb.model.VenueHealth.latency_hist`), over the window only;
* three runs at the same offered load: the ccxt.pro path with one worker, the ccxt.pro path with two workers (the
  baseline) and the msgspec fast path for Binance diff streams with two workers (`arb.connectors.binance_fast`, ccxt
  still doing markets and REST snapshots); `ratio` = fast path / baseline;
* where the time goes: with --profile, each worker's cProfile stats, top functions by own time and by library.

Target (issue): >= 20,000 updates/s sustained with p99 <= 20 ms on 2 cores; the JSON reports what this machine does.
Logs go to stderr; the only stdout line is the JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import json
import logging
import os
import platform
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from arb.config import load_settings
from arb.connectors.ccxt_pro import ConnectorOptions
from arb.connectors.worker import worker_args
from arb.demo import split_venues
from arb.grid import GridLayout, PriceGrid
from arb.grid.embedded import EmbeddedRedis
from arb.logs import configure_logging
from arb.model import VenueHealth, latency_percentile_ms, merge_histograms
from arb.procs import Child

log = logging.getLogger("bench.ingest")

VENUES = ("binance", "gate", "mexc", "htx")
"""Binance-format venues with ~200 books each (the sim serves all four in Binance's wire format)."""


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--venues", default=",".join(VENUES))
    p.add_argument("--hz", type=float, default=12.5, help="refreshes a second per book (offered = books x hz)")
    p.add_argument("--seconds", type=float, default=10.0, help="measurement window per run")
    p.add_argument("--warmup-timeout", type=float, default=60.0)
    p.add_argument("--profile", action="store_true", help="run the 2-worker pass under cProfile and summarise")
    return p.parse_args()


async def _stats(http: aiohttp.ClientSession, urls: dict[str, str]) -> int:
    total = 0
    for url in urls.values():
        async with http.get(url + "/_sim/stats") as r:
            total += int((await r.json())["stats"].get("book_updates", 0))
    return total


async def _run(
    n_workers: int,
    grid: PriceGrid,
    ready: dict[str, Any],
    venues: list[str],
    redis_url: str,
    args: argparse.Namespace,
    log_dir: Path,
    profile_prefix: str | None,
    *,
    fast: bool = False,
) -> dict[str, Any]:
    await grid.client.delete(grid.keys.venues)
    children = []
    for i, share in enumerate(split_venues({v: int(ready[v]["symbols"]) for v in venues}, n_workers)):
        options = ConnectorOptions(rate_limit_ms=5.0, fast_binance_depth=fast)
        env = {"ARB_WORKER_PROFILE": profile_prefix} if profile_prefix else None
        args_ = worker_args(redis_url, share, ready, options=options)
        tag = f"{'fast' if fast else 'ccxt'}{n_workers}.{i}"
        children.append(Child(tag, args_, log_dir / f"{tag}.log", env=env))
    urls = {v: ready[v]["http_url"] for v in venues}
    async with contextlib.AsyncExitStack() as stack, aiohttp.ClientSession() as http:
        for child in children:
            await stack.enter_async_context(child)
        # Warm-up: every venue connected and quoting for at least 2 s.
        deadline = time.monotonic() + args.warmup_timeout
        warm_since = None
        while True:
            health = await grid.read_health()
            up = len(health) == len(venues) and all(h.state == "connected" for h in health.values())
            warm_since = (warm_since or time.monotonic()) if up else None
            if warm_since is not None and time.monotonic() - warm_since >= 2.0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"venues not all connected after {args.warmup_timeout}s: {health}")
            await asyncio.sleep(0.25)
        h0, o0, t0 = await grid.read_health(), await _stats(http, urls), time.monotonic()
        await asyncio.sleep(args.seconds)
        h1, o1, t1 = await grid.read_health(), await _stats(http, urls), time.monotonic()
    return {"path": "fast" if fast else "ccxt", **_window(n_workers, h0, h1, o1 - o0, t1 - t0)}


def _window(
    n_workers: int, h0: dict[str, VenueHealth], h1: dict[str, VenueHealth], offered: int, dt: float
) -> dict[str, Any]:
    quotes = sum(h1[v].quotes - h0[v].quotes for v in h1)
    hists = [[b - a for a, b in zip(h0[v].latency_hist, h1[v].latency_hist, strict=True)] for v in h1]
    hist = merge_histograms(hists)
    recv = merge_histograms([[b - a for a, b in zip(h0[v].recv_hist, h1[v].recv_hist, strict=True)] for v in h1])
    return {
        "workers": n_workers,
        "offered_per_s": round(offered / dt, 1),
        "updates_per_s": round(quotes / dt, 1),
        "delivered_fraction": round(quotes / offered, 3) if offered else None,
        "latency_ms": {"p50": latency_percentile_ms(hist, 0.5), "p99": latency_percentile_ms(hist, 0.99)},
        "exchange_to_recv_ms": {"p50": latency_percentile_ms(recv, 0.5), "p99": latency_percentile_ms(recv, 0.99)},
        "reconnects": sum(h1[v].reconnects - h0[v].reconnects for v in h1),
        "gaps": sum(h1[v].gaps - h0[v].gaps for v in h1),
    }


_LIBRARIES = (("/ccxt/", "ccxt"), ("/arb/", "arb"), ("/redis/", "redis"), ("/aiohttp/", "aiohttp"),
              ("json", "json (orjson/msgspec/json)"), ("asyncio", "asyncio"), ("uvloop", "uvloop"))  # fmt: skip


def _library(path: str, fn: str) -> str:
    where = path if path != "~" else fn  # C builtins: "~" and the function's repr
    return next((lib for needle, lib in _LIBRARIES if needle in where), "other")


def _profile_summary(prefix: str) -> dict[str, Any]:
    files = glob.glob(prefix + ".*")
    if not files:
        return {}
    stats = pstats.Stats(files[0])
    for f in files[1:]:
        stats.add(f)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values()) or 1.0
    by_lib: dict[str, float] = {}
    rows = []
    for (path, line, fn), (_cc, _nc, tt, _ct, _callers) in raw.items():
        lib = _library(path, fn)
        by_lib[lib] = by_lib.get(lib, 0.0) + tt
        rows.append((tt, f"{Path(path).name}:{line}({fn})"))
    rows.sort(reverse=True)
    return {
        "own_time_share_by_library": {k: round(v / total, 3) for k, v in sorted(by_lib.items(), key=lambda kv: -kv[1])},
        "top_functions": [{"fn": name, "share": round(tt / total, 3)} for tt, name in rows[:12]],
    }


async def main() -> None:
    args = _args()
    configure_logging("WARNING")
    venues = [v for v in args.venues.split(",") if v]
    settings = load_settings()
    log_dir = Path(tempfile.mkdtemp(prefix="arb-bench-ingest-"))
    with EmbeddedRedis() as redis:
        sim_args = ["-m", "arb.sim", "--venues", ",".join(venues), "--book-update-hz", str(args.hz),
                    "--tick-hz", str(max(2 * args.hz, 20.0)), "--depth", "20", "--log-level", "WARNING"]  # fmt: skip
        async with (
            Child("sim", sim_args, log_dir / "sim.log") as sim,
            PriceGrid.from_url(redis.url, GridLayout.from_settings(settings), settings.grid) as grid,
        ):
            ready = sim.ready["venues"]
            books = sum(int(ready[v]["symbols"]) for v in venues)
            one = await _run(1, grid, ready, venues, redis.url, args, log_dir, None)
            prefix = str(log_dir / "profile") if args.profile else None
            two = await _run(2, grid, ready, venues, redis.url, args, log_dir, prefix)
            fast_prefix = str(log_dir / "profile-fast") if args.profile else None
            fast = await _run(2, grid, ready, venues, redis.url, args, log_dir, fast_prefix, fast=True)
    out = {
        "benchmark": "ingest",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "venues": venues,
        "books": books,
        "book_update_hz": args.hz,
        "window_s": args.seconds,
        "ccxt_one_worker": one,
        "baseline": two,
        "fast_path": fast,
        "ratio": round(fast["updates_per_s"] / two["updates_per_s"], 2) if two["updates_per_s"] else None,
        "ratio_note": "fast path (2 workers) / ccxt.pro path (2 workers), same offered load",
        "scaling_ccxt_2_vs_1": round(two["updates_per_s"] / one["updates_per_s"], 2) if one["updates_per_s"] else None,
        "target": {"updates_per_s": 20_000, "p99_ms": 20},
        "log_dir": str(log_dir),
    }
    if prefix is not None and fast_prefix is not None:
        out["profile"] = {"ccxt": _profile_summary(prefix), "fast": _profile_summary(fast_prefix)}
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
