"""`python -m arb.sim`: run local venues in a process of their own until SIGINT/SIGTERM (or `--seconds`).

Why a separate process: the market and the venues' rendering cost CPU that, in the demo and the ingest benchmark,
should not compete with the connectors on the same core. The process prints one JSON line on stdout when every venue
is listening: `{"venues": {"binance": {"http_url": ..., "ws_url": ..., "protocol": "binance", "symbols": 185}, ...}}`,
so a parent can read the ports and point its clients at them. Logs go to stderr.

    python -m arb.sim --venues binance,kraken --truth truth.jsonl --dislocations-per-min 30
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any

import orjson

from arb.config import load_settings
from arb.logs import configure_logging
from arb.procs import freeze_heap
from arb.sim.market import DislocationSchedule, MarketConfig
from arb.sim.server import SimExchangeGroup
from arb.sim.truth import TruthLog


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m arb.sim", description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--venues", default="", help="comma-separated venue ids (default: every enabled CEX venue)")
    p.add_argument("--config", default=None, help="user config file (as `arb --config`)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tick-hz", type=float, default=10.0, help="market steps a second")
    p.add_argument("--book-update-hz", type=float, default=5.0, help="refreshes a second per book (<= tick-hz)")
    p.add_argument("--depth", type=int, default=20, help="levels a side on every book")
    p.add_argument("--regular", action="store_true", help="refresh every book exactly --book-update-hz times a second")
    p.add_argument("--truth", default=None, help="JSON-lines file for the dislocation ground truth")
    p.add_argument("--redis-url", default=None, help="also write the ground truth to this Redis ({arb}:sim:truth)")
    p.add_argument("--dislocations-per-min", type=float, default=0.0, help="random dislocation rate (0: none)")
    p.add_argument(
        "--dislocation-bps",
        type=float,
        nargs=2,
        default=(20.0, 80.0),
        metavar=("LO", "HI"),
        help="size range of random dislocations, bps (sign random)",
    )
    p.add_argument(
        "--dislocation-ms",
        type=int,
        nargs=2,
        default=(500, 3000),
        metavar=("LO", "HI"),
        help="duration range of random dislocations, ms",
    )
    p.add_argument("--ping-interval-s", type=float, default=20.0)
    p.add_argument("--pong-timeout-s", type=float, default=60.0)
    p.add_argument("--seconds", type=float, default=None, help="stop after this long")
    p.add_argument("--log-level", default="INFO")
    return p


async def _run(args: argparse.Namespace) -> None:
    settings = load_settings(args.config)
    redis: Any = None
    if args.redis_url:
        import redis.asyncio as aioredis

        redis = aioredis.Redis.from_url(args.redis_url)
    truth = TruthLog(args.truth, redis=redis) if (args.truth or redis is not None) else None
    schedule = (
        DislocationSchedule(
            rate_per_min=args.dislocations_per_min,
            bps=tuple(args.dislocation_bps),
            duration_ms=tuple(args.dislocation_ms),
        )
        if args.dislocations_per_min > 0
        else None
    )
    config = MarketConfig(
        seed=args.seed,
        tick_hz=args.tick_hz,
        book_update_hz=args.book_update_hz,
        depth=args.depth,
        regular=args.regular,
    )
    venue_ids = [v for v in args.venues.split(",") if v] or None
    group = SimExchangeGroup.from_settings(
        settings,
        venue_ids,
        config=config,
        truth=truth,
        schedule=schedule,
        ping_interval_s=args.ping_interval_s,
        pong_timeout_s=args.pong_timeout_s,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on Windows
            loop.add_signal_handler(sig, stop.set)
    try:
        async with group:
            ready = {
                vid: {"http_url": v.http_url, "ws_url": v.ws_url, "protocol": v.protocol.name,
                      "symbols": len(v.market_ids)}
                for vid, v in group.venues.items()
            }  # fmt: skip
            freeze_heap()  # every venue's books and markets are built: keep them out of full collections
            sys.stdout.write(orjson.dumps({"venues": ready}).decode() + "\n")
            sys.stdout.flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.seconds)
    finally:
        if redis is not None:
            await redis.aclose()


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    configure_logging(args.log_level)
    asyncio.run(_run(args))


if __name__ == "__main__":
    main()
