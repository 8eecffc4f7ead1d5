"""Grid ingest and snapshot benchmark: prints ONE JSON object on stdout (`./run bench grid`).

Measures, against a real redis-server (its own embedded one unless --redis-url is given):

* pipelined ingest (the headline): quote updates/s through `PriceGrid.write_many` in batches of --batch, each batch
  one script call, the next batch encoded while the previous is in flight; top of book, 300 instruments × 20 venues,
  every batch mixing venues and instruments at random (the worst case for the top-of-book blob);
* the same quotes through `PriceGrid.write` awaited batch by batch (no overlap), through a `GridWriter` (the
  connectors' path), and regrouped into single-venue batches (one connector per writer);
* the one-command-per-quote baseline: `PriceGrid.write` with batches of 1, awaited one by one (fewer quotes: slow);
* the same pipelined ingest with 5-level depth on both sides (bigger payloads);
* whole-grid snapshot read (`read_grid`, 300 × 20 arrays + feed position, one MULTI/EXEC): median and p99;
* for reference: `read_quotes` (every cell as a full Quote via HGETALL), `read_instrument` (one HMGET), a mirror
  rebuild, and how fast a mirror applies the feed when catching up.

Targets (issue): pipelined >= 100,000 quotes/s and >= 10x the baseline; full-grid snapshot read <= 10 ms (median).
Logs go to stderr; the only stdout line is the JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import platform
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from arb.grid import GridLayout, PriceGrid
from arb.grid.embedded import EmbeddedRedis
from arb.model import Quote

N_INSTRUMENTS = 300
N_VENUES = 20
TARGET_INGEST_QPS = 100_000
TARGET_RATIO = 10.0
TARGET_SNAPSHOT_MS = 10.0


def make_layout() -> GridLayout:
    instruments = [f"C{i:03d}/USDT" for i in range(N_INSTRUMENTS)]
    venues = [f"venue{j:02d}" for j in range(N_VENUES)]
    return GridLayout.from_lists(instruments, venues, 2000)


def make_quotes(layout: GridLayout, n: int, *, depth: int = 0, seed: int = 7) -> list[Quote]:
    """A random walk per instrument, each update on a random venue with its own small offset: top-of-book updates as
    a connector would produce them (increasing sequence per venue, receive time after exchange time)."""
    rng = random.Random(seed)
    mids = [10 ** rng.uniform(-2, 4.5) for _ in layout.instruments]
    offsets = [[rng.uniform(-2e-4, 2e-4) for _ in layout.venues] for _ in layout.instruments]
    seq = [0] * len(layout.venues)
    now = time.time_ns()
    out: list[Quote] = []
    n_i, n_v = layout.shape
    for k in range(n):
        i = rng.randrange(n_i)
        j = rng.randrange(n_v)
        mids[i] *= 1 + rng.gauss(0, 1e-4)
        mid = mids[i] * (1 + offsets[i][j])
        half = mid * rng.uniform(1e-5, 5e-4)
        bid, ask = mid - half, mid + half
        seq[j] += 1
        bids: tuple[tuple[float, float], ...] = ()
        asks: tuple[tuple[float, float], ...] = ()
        if depth:
            bids = tuple((bid - level * half, rng.uniform(0.1, 5)) for level in range(depth))
            asks = tuple((ask + level * half, rng.uniform(0.1, 5)) for level in range(depth))
        ts = now + k * 1000
        out.append(
            Quote(
                venue=layout.venues[j],
                instrument=layout.instruments[i],
                bid=bid,
                bid_size=rng.uniform(0.01, 10),
                ask=ask,
                ask_size=rng.uniform(0.01, 10),
                ts_exchange=ts - 2_000_000,
                ts_recv=ts,
                sequence=seq[j],
                bids=bids,
                asks=asks,
            )
        )
    return out


def full_grid(layout: GridLayout) -> list[Quote]:
    """One quote in every cell, so snapshots read a full 300 × 20 grid."""
    now = time.time_ns()
    return [
        Quote(venue=v, instrument=x, bid=100.0, bid_size=1.0, ask=100.1, ask_size=2.0, ts_exchange=now, ts_recv=now)
        for x in layout.instruments
        for v in layout.venues
    ]


def batches(quotes: list[Quote], size: int) -> list[list[Quote]]:
    return [quotes[lo : lo + size] for lo in range(0, len(quotes), size)]


async def ingest_pipelined(grid: PriceGrid, quotes: list[Quote], batch: int) -> float:
    """Quotes/s through `write_many`: batches in order, the next prepared while the previous is in flight."""
    todo = batches(quotes, batch)
    started = time.perf_counter()
    written = await grid.write_many(todo)
    assert written == len(quotes)  # noqa: S101 - bench sanity check
    return len(quotes) / (time.perf_counter() - started)


async def ingest_sequential(grid: PriceGrid, quotes: list[Quote], batch: int) -> float:
    """Quotes/s through `write`, each batch awaited before the next is even prepared (batch 1 = the baseline)."""
    todo = batches(quotes, batch)
    started = time.perf_counter()
    for b in todo:
        await grid.write(b)
    return len(quotes) / (time.perf_counter() - started)


async def ingest_writer(grid: PriceGrid, quotes: list[Quote], batch: int) -> float:
    """Quotes/s through a GridWriter (what connectors use): put() in bursts of `batch`, yielding in between."""
    started = time.perf_counter()
    async with grid.writer(max_batch=batch, max_pending=len(quotes)) as writer:
        for lo in range(0, len(quotes), batch):
            for q in quotes[lo : lo + batch]:
                writer.put(q)
            await asyncio.sleep(0)
    assert writer.written == len(quotes), (writer.written, writer.dropped)  # noqa: S101 - bench sanity check
    return len(quotes) / (time.perf_counter() - started)


async def mirror_catch_up(grid: PriceGrid, quotes: list[Quote], batch: int) -> float:
    """Quotes/s a GridMirror applies from the feed: written while it was not following, then caught up."""
    mirror = grid.mirror()
    await mirror.rebuild()
    await grid.write_many(batches(quotes, batch))
    target = (await grid.position()).c
    started = time.perf_counter()
    async with mirror.following():
        caught_up = await mirror.wait_until(lambda m: m.position.c >= target, 60)
        elapsed = time.perf_counter() - started
    assert caught_up, "mirror did not catch up"  # noqa: S101 - bench sanity check
    assert mirror.gaps == [], mirror.gaps  # noqa: S101
    return len(quotes) / elapsed


def by_venue(quotes: list[Quote], batch: int) -> list[Quote]:
    """The same quotes regrouped so that each run of `batch` comes from one venue, as when each connector flushes
    its own writer (the blob's venue-major order then turns a batch into a few contiguous runs)."""
    per_venue: dict[str, list[Quote]] = {}
    for q in quotes:
        per_venue.setdefault(q.venue, []).append(q)
    grouped = [b for qs in per_venue.values() for b in batches(qs, batch)]
    grouped.sort(key=lambda b: b[0].ts_recv)
    return [q for b in grouped for q in b]


async def timed_ms(fn: Callable[[], Awaitable[object]], n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - started) * 1000)
    return out


def summary(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"median": round(statistics.median(ordered), 3), "p99": round(p99, 3), "n": len(ordered)}


async def run(url: str, args: argparse.Namespace) -> dict[str, Any]:
    layout = make_layout()
    quotes = make_quotes(layout, args.quotes)
    depth_quotes = make_quotes(layout, args.depth_quotes, depth=5, seed=11)
    baseline_quotes = quotes[: args.baseline_quotes]
    async with PriceGrid.from_url(url, layout) as grid:
        await grid.reset()
        await grid.write(quotes[:2000])  # warm up: script load, connections
        gc.collect()
        pipelined = await ingest_pipelined(grid, quotes, args.batch)
        sequential = await ingest_sequential(grid, quotes, args.batch)
        writer = await ingest_writer(grid, quotes, args.batch)
        per_venue = await ingest_pipelined(grid, by_venue(quotes, args.batch), args.batch)
        baseline = await ingest_sequential(grid, baseline_quotes, 1)
        depth5 = await ingest_pipelined(grid, depth_quotes, args.batch)
        follow = await mirror_catch_up(grid, quotes[:100_000], args.batch)
        await grid.reset()
        await grid.write(full_grid(layout))
        await grid.read_grid()
        snap = await grid.read_grid()
        assert int(snap.present.sum()) == layout.n_cells, "snapshot is not full"  # noqa: S101 - bench sanity check
        grid_ms = await timed_ms(grid.read_grid, args.reads)
        quotes_ms = await timed_ms(grid.read_quotes, max(3, args.reads // 10))
        instrument_ms = await timed_ms(lambda: grid.read_instrument(layout.instruments[0]), args.reads)
        mirror = grid.mirror()
        rebuild_ms = await timed_ms(mirror.rebuild, max(5, args.reads // 5))
        info = await grid.client.info("server")
        await grid.reset()
    ratio = pipelined / baseline
    return {
        "bench": "grid_ingest",
        "grid": f"{N_INSTRUMENTS}x{N_VENUES}",
        "quotes": args.quotes,
        "batch": args.batch,
        "ingest_pipelined_quotes_per_s": round(pipelined),
        "ingest_sequential_quotes_per_s": round(sequential),
        "ingest_writer_quotes_per_s": round(writer),
        "ingest_per_venue_batches_quotes_per_s": round(per_venue),
        "ingest_baseline_quotes_per_s": round(baseline),
        "baseline_quotes": len(baseline_quotes),
        "ratio_pipelined_to_baseline": round(ratio, 1),
        "ingest_depth5_quotes_per_s": round(depth5),
        "depth5_quotes": len(depth_quotes),
        "snapshot_grid_ms": summary(grid_ms),
        "snapshot_quotes_ms": summary(quotes_ms),
        "snapshot_instrument_ms": summary(instrument_ms),
        "mirror_rebuild_ms": summary(rebuild_ms),
        "mirror_catch_up_quotes_per_s": round(follow),
        "targets": {
            "ingest_pipelined_quotes_per_s": TARGET_INGEST_QPS,
            "ratio_pipelined_to_baseline": TARGET_RATIO,
            "snapshot_grid_ms_median": TARGET_SNAPSHOT_MS,
        },
        "ok": {
            "ingest_pipelined_quotes_per_s": pipelined >= TARGET_INGEST_QPS,
            "ratio_pipelined_to_baseline": ratio >= TARGET_RATIO,
            "snapshot_grid_ms_median": statistics.median(grid_ms) <= TARGET_SNAPSHOT_MS,
        },
        "env": {
            "python": platform.python_version(),
            "redis_server": info.get("redis_version"),
            "cpus": __import__("os").cpu_count(),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis-url", help="an existing Redis (its grid keys are reset); default: start one")
    parser.add_argument("--quotes", type=int, default=300_000, help="quotes for the pipelined run")
    parser.add_argument("--baseline-quotes", type=int, default=5_000, help="quotes for the one-per-command run")
    parser.add_argument("--depth-quotes", type=int, default=100_000, help="quotes for the 5-level depth run")
    parser.add_argument("--batch", type=int, default=1000, help="quotes per pipelined write")
    parser.add_argument("--reads", type=int, default=50, help="snapshot reads to time")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    if args.redis_url:
        result = asyncio.run(run(args.redis_url, args))
    else:
        with EmbeddedRedis() as server:
            result = asyncio.run(run(server.url, args))
    result["ok"]["all"] = all(result["ok"].values())
    print(json.dumps(result))
    return 0 if result["ok"]["all"] else 1


if __name__ == "__main__":
    sys.exit(main())
