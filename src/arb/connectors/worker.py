"""`python -m arb.connectors.worker SPEC_JSON`: connectors for a share of the venues, in a process of their own.

Why processes: ccxt.pro spends ~60 µs of Python per book diff, so one process tops out near 15k updates/s on one
core; the demo and the ingest benchmark split the venues over one worker per core. Workers share nothing but Redis:
quotes go to the grid (`GridWriter`), and every `publish_every_s` each venue's health (state, counters, an
exchange -> grid latency histogram, see `arb.model.VenueHealth`) goes to the grid's `{prefix}:venues` hash, where the
demo, the API and the scanner read it. Venues with API keys in the environment also get their deposit/withdraw status
and fees polled into `{prefix}:wallets` (`arb.connectors.wallets`); venues with perps get their funding rates polled
into `{prefix}:funding` (`arb.connectors.funding`, public data).

The spec (JSON, one argument): {"redis_url": ..., "venues": [...], "endpoints": {venue: {"http_url", "ws_url"}},
"ccxt_ids": {venue: ccxt id}, "config": path or null, "options": {ConnectorOptions fields}}. The worker prints
`{"worker": "ready", "venues": [...]}` on stdout once its connectors run, logs to stderr, stops on SIGTERM/SIGINT
(publishing every venue as "down" last), and dies with its parent. With ARB_WORKER_PROFILE=<prefix> it runs
under cProfile and writes the stats to <prefix>.<pid> on exit (the ingest benchmark's "where the time goes").
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import cProfile
import functools
import logging
import os
import signal
import sys
import time
from collections.abc import Mapping
from typing import Any

import msgspec
import orjson

from arb.config import load_settings
from arb.connectors.ccxt_pro import ConnectorOptions, LocalEndpoint
from arb.connectors.funding import polling_funding
from arb.connectors.supervisor import ConnectorSupervisor
from arb.connectors.wallets import polling_wallets
from arb.grid import GridError, GridLayout, PriceGrid
from arb.logs import configure_logging
from arb.metrics import CONNECTOR_LATENCY_SECONDS
from arb.model import LATENCY_EDGES_MS, FeedCounters, Quote, VenueHealth

log = logging.getLogger(__name__)


class WorkerSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    redis_url: str
    venues: list[str]
    endpoints: dict[str, LocalEndpoint] = msgspec.field(default_factory=dict)
    ccxt_ids: dict[str, str] = msgspec.field(default_factory=dict)
    config: str | None = None
    options: ConnectorOptions = msgspec.field(default_factory=ConnectorOptions)
    publish_every_s: float = 0.5


def worker_spec(
    redis_url: str,
    venues: list[str],
    served: Mapping[str, Mapping[str, Any]],
    *,
    options: ConnectorOptions | None = None,
    config: str | None = None,
) -> WorkerSpec:
    """What a worker streams: `venues` as `served` says (id -> http_url, ws_url, protocol: the sim's ready line for
    local venues, or `arb.demo.configured_venues` for configured ones), each spoken to with the ccxt class of
    `protocol`. A venue without `http_url` is reached at the exchange's own hosts."""
    return WorkerSpec(
        redis_url=redis_url,
        venues=venues,
        endpoints={
            v: LocalEndpoint(str(served[v]["http_url"]), str(served[v]["ws_url"]))
            for v in venues
            if served[v].get("http_url")
        },
        ccxt_ids={v: str(served[v]["protocol"]) for v in venues if served[v].get("protocol")},
        config=config,
        options=options or ConnectorOptions(),
    )


def worker_args(
    redis_url: str,
    venues: list[str],
    served: Mapping[str, Mapping[str, Any]],
    *,
    options: ConnectorOptions | None = None,
    config: str | None = None,
) -> list[str]:
    """The interpreter arguments of a worker child process running `worker_spec(...)`."""
    spec = worker_spec(redis_url, venues, served, options=options, config=config)
    return ["-m", "arb.connectors.worker", msgspec.json.encode(spec).decode()]


class LatencyBook:
    """Exchange -> grid latency per venue, counted into `LATENCY_EDGES_MS` buckets when Redis confirms a batch."""

    def __init__(self, venues: list[str]) -> None:
        self.hists: dict[str, list[int]] = {v: [0] * (len(LATENCY_EDGES_MS) + 1) for v in venues}
        self._recv_to_grid = {v: CONNECTOR_LATENCY_SECONDS.labels(v, "recv_to_grid") for v in venues}

    def on_written(self, batch: list[Quote]) -> None:
        now = time.time_ns()
        edges = LATENCY_EDGES_MS
        hists = self.hists
        for q in batch:
            hist = hists.get(q.venue)
            if hist is not None:
                hist[bisect.bisect_left(edges, (now - q.ts_exchange) / 1e6)] += 1
                self._recv_to_grid[q.venue].observe((now - q.ts_recv) / 1e9)


def health_of(supervisor: ConnectorSupervisor, latency: LatencyBook, *, closing: bool = False) -> list[VenueHealth]:
    now = time.time_ns()
    out = []
    for vid, connector in supervisor.connectors.items():
        s = connector.status
        counters = {name: getattr(s, name) for name in FeedCounters.__struct_fields__}
        counters["rejected"] = dict(s.rejected)
        if closing:
            counters["last_error"] = "worker stopped"
        out.append(
            VenueHealth(
                **counters,
                venue=vid,
                state="down" if closing else s.state,
                since_ns=now if closing else s.since_ns,
                published_ns=now,
                latency_hist=list(latency.hists.get(vid, [])),
                recv_hist=list(connector.recv_hist),
                taker_fees=dict(connector.taker_fees),
            )
        )
    return out


async def run_worker(spec: WorkerSpec, stop: asyncio.Event, *, announce: bool = True) -> None:
    settings = load_settings(spec.config)
    layout = GridLayout.from_settings(settings)
    latency = LatencyBook(spec.venues)
    async with (
        PriceGrid.from_url(spec.redis_url, layout, settings.grid) as grid,
        grid.writer(on_written=latency.on_written) as writer,
    ):
        supervisor = ConnectorSupervisor(
            settings,
            functools.partial(writer.put, checked=True),  # connectors hand over only quote_is_sound quotes
            venues=spec.venues,
            endpoints=spec.endpoints,
            ccxt_ids=spec.ccxt_ids,
            options=spec.options,
        )
        wallets = polling_wallets(settings, grid, spec.venues, endpoints=spec.endpoints, ccxt_ids=spec.ccxt_ids)
        funding = polling_funding(settings, grid, spec.venues, endpoints=spec.endpoints, ccxt_ids=spec.ccxt_ids)
        async with supervisor.running(), wallets, funding:  # wallets: only venues with ARB_<VENUE>_API_KEY/_SECRET
            if announce:
                sys.stdout.write(orjson.dumps({"worker": "ready", "venues": list(supervisor.connectors)}).decode())
                sys.stdout.write("\n")
                sys.stdout.flush()
            while not stop.is_set():
                try:
                    await grid.publish_health(health_of(supervisor, latency))
                except GridError as exc:
                    log.warning("worker.health_unpublished error=%r", str(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), spec.publish_every_s)
        with contextlib.suppress(GridError):
            await grid.publish_health(health_of(supervisor, latency, closing=True))


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m arb.connectors.worker SPEC_JSON\n")
        raise SystemExit(2)
    try:
        spec = msgspec.json.decode(args[0], type=WorkerSpec)
    except msgspec.MsgspecError as exc:
        sys.stderr.write(f"worker spec: {exc}\n")
        raise SystemExit(2) from None
    configure_logging("INFO")

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(spec, stop)

    profile_to = os.environ.get("ARB_WORKER_PROFILE")  # a path prefix: cProfile stats go to <prefix>.<pid>
    profiler = cProfile.Profile() if profile_to else None
    if profiler is not None:
        profiler.enable()
    try:
        import uvloop

        uvloop.run(run())
    except ImportError:  # pragma: no cover - uvloop is a dependency; kept for platforms without it
        asyncio.run(run())
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(f"{profile_to}.{os.getpid()}")


if __name__ == "__main__":
    main()
