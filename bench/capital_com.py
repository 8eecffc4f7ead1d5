"""Capital.com quote ingest benchmark: local Capital.com venue -> CapitalComConnector -> Redis grid. Prints ONE JSON
object.

`python bench/capital_com.py [--hz 5,100,300] [--seconds 8]`. What runs: the local venue (`arb.sim.venues.capital_com`,
every instrument the settings map to `capital_com`, markets always open, every book refreshed exactly `hz` times a
second) in a child process of its own (this file with `--serve`), the connector in this process (its shards over
real WebSockets, the client's documented REST limits on) and an embedded redis-server; quotes go through the same
`GridWriter` path as every connector's.

Measured per load level, over `--seconds` after every shard is subscribed and quoting:

* offered: quote messages the venue sent (one per top-of-book change of an open market: its `quotes` counter);
* ingested: quotes the connector handed over that Redis confirmed, per second, and their fraction of offered;
* exchange -> grid latency p50 / p99 (venue millisecond timestamp to the Redis confirmation of the batch);
* the connector process's CPU time over the window, as a fraction of one core.

Logs go to stderr; the only stdout line is the JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import SecretStr

from arb.config import load_settings
from arb.connectors.capital_com import CapitalComConnector, CapitalComCredentials, Endpoint, StreamOptions
from arb.grid import GridLayout, PriceGrid
from arb.grid.embedded import EmbeddedRedis
from arb.logs import configure_logging
from arb.model import LATENCY_EDGES_MS, Quote, latency_bucket, latency_percentile_ms
from arb.procs import Child
from arb.tasks import cancel_and_wait, spawn

log = logging.getLogger("bench.capital_com")
SCRIPT = str(Path(__file__).resolve())


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--hz", default="5,100,300", help="comma-separated refreshes a second per book, one run each")
    p.add_argument("--seconds", type=float, default=8.0, help="measurement window per run")
    p.add_argument("--warmup-timeout", type=float, default=30.0)
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--serve-hz", type=float, default=5.0, help=argparse.SUPPRESS)
    return p.parse_args()


async def serve(hz: float) -> None:
    """The child: the local venue until SIGTERM; one JSON line on stdout when it listens."""
    from arb.sim.market import MarketConfig
    from arb.sim.venues.capital_com import CapitalComProtocol, serve_capital_com

    configure_logging("WARNING")
    settings = load_settings()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    config = MarketConfig(seed=3, tick_hz=max(2 * hz, 20.0), book_update_hz=hz, regular=True)
    protocol = CapitalComProtocol(hours="always")
    async with serve_capital_com(settings, protocol=protocol, config=config) as local:
        ready = {
            "rest_url": local.rest_url,
            "ws_url": local.ws_url,
            "http_url": local.venue.http_url,
            "epics": len(local.venue.market_ids),
            "api_key": local.api_key,
            "identifier": local.identifier,
            "password": local.password,
        }
        sys.stdout.write(json.dumps(ready) + "\n")
        sys.stdout.flush()
        await stop.wait()


async def _offered(http: aiohttp.ClientSession, url: str) -> int:
    async with http.get(url + "/_sim/stats") as r:
        return int((await r.json())["stats"].get("quotes", 0))


async def run_level(hz: float, redis_url: str, args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    settings = load_settings()
    epics = {
        inst.venues["capital_com"]: iid for iid, inst in settings.instruments.items() if "capital_com" in inst.venues
    }
    layout = GridLayout.from_lists(list(epics.values()), ["capital_com"], {"capital_com": 5000})
    hist = [0] * (len(LATENCY_EDGES_MS) + 1)
    written = 0

    def on_written(batch: list[Quote]) -> None:
        nonlocal written
        now = time.time_ns()
        written += len(batch)
        for q in batch:
            hist[latency_bucket((now - q.ts_exchange) / 1e6)] += 1

    child_args = [SCRIPT, "--serve", "--serve-hz", str(hz)]
    async with (
        Child(f"capital_com_{hz:g}hz", child_args, log_dir / f"venue_{hz:g}.log") as venue,
        PriceGrid.from_url(redis_url, layout, settings.grid) as grid,
        grid.writer(on_written=on_written) as writer,
        aiohttp.ClientSession() as http,
    ):
        ready = venue.ready
        creds = CapitalComCredentials(SecretStr(ready["api_key"]), ready["identifier"], SecretStr(ready["password"]))
        connector = CapitalComConnector(
            "capital_com",
            settings.venues["capital_com"],
            epics,
            lambda q: writer.put(q, checked=True),
            credentials=creds,
            endpoint=Endpoint(ready["rest_url"], ready["ws_url"]),
            options=StreamOptions(ping_interval_s=30.0),
        )
        task = spawn(connector.run(), name="bench-capital-com")
        try:
            deadline = time.monotonic() + args.warmup_timeout
            while connector.status.state != "connected" or connector.status.quotes < len(epics):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"not streaming after {args.warmup_timeout}s: {connector.status}")
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)
            o0, w0, h0, c0, t0 = (
                await _offered(http, ready["http_url"]),
                written,
                list(hist),
                time.process_time(),
                time.monotonic(),
            )
            await asyncio.sleep(args.seconds)
            o1, w1, c1, t1 = await _offered(http, ready["http_url"]), written, time.process_time(), time.monotonic()
            window = [b - a for a, b in zip(h0, hist, strict=True)]
        finally:
            await cancel_and_wait(task, timeout_s=10)
    dt = t1 - t0
    offered, ingested = (o1 - o0) / dt, (w1 - w0) / dt
    return {
        "book_update_hz": hz,
        "epics": len(epics),
        "shards": len(connector.shards),
        "offered_quotes_per_s": round(offered, 1),
        "ingested_quotes_per_s": round(ingested, 1),
        "ingested_fraction": round(ingested / offered, 3) if offered else None,
        "latency_ms": {"p50": latency_percentile_ms(window, 0.5), "p99": latency_percentile_ms(window, 0.99)},
        "connector_cpu_fraction": round((c1 - c0) / dt, 3),
        "rejected": dict(connector.status.rejected),
        "reconnects": connector.status.reconnects,
    }


async def main() -> None:
    args = _args()
    if args.serve:
        await serve(args.serve_hz)
        return
    configure_logging("WARNING")
    levels = [float(h) for h in args.hz.split(",") if h]
    log_dir = Path(tempfile.mkdtemp(prefix="arb-bench-capital-com-"))
    with EmbeddedRedis() as redis:
        runs = [await run_level(hz, redis.url, args, log_dir) for hz in levels]
    out = {
        "benchmark": "capital_com_ingest",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "window_s": args.seconds,
        "runs": runs,
        "max_ingested_quotes_per_s": max(r["ingested_quotes_per_s"] for r in runs),
        "note": "offered = quote messages the local venue sent (top-of-book changes); ingested = quotes Redis "
        "confirmed; one connector process, venue in another, 2 shared cores",
        "log_dir": str(log_dir),
    }
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
