"""`arb demo`: the main job on embedded defaults.

At this stage it brings up the grid's Redis (its own redis-server unless `ARB_REDIS_URL` is set), checks it answers,
loads the configuration and prints what it covers. Later stages stream the local venues into the grid from here.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator

import redis.asyncio as aioredis
from rich.console import Console

from arb.config import Settings
from arb.grid.embedded import EmbeddedRedis
from arb.logs import mask_url

log = logging.getLogger(__name__)


@contextlib.contextmanager
def grid_redis(settings: Settings) -> Iterator[tuple[str, bool]]:
    """The Redis URL to use and whether we started it; an embedded server is stopped on exit, also on Ctrl-C."""
    if settings.redis_url is not None:
        yield settings.redis_url.get_secret_value(), False
        return
    with EmbeddedRedis() as server:
        yield server.url, True


async def run_demo(settings: Settings, console: Console) -> int:
    from arb.cli import coverage_table

    with grid_redis(settings) as (url, embedded):
        client = aioredis.Redis.from_url(url, socket_timeout=settings.grid.socket_timeout_s)
        try:
            t0 = time.perf_counter()
            await client.ping()
            ping_ms = (time.perf_counter() - t0) * 1e3
            info = await client.info("server")
        except (aioredis.ConnectionError, aioredis.TimeoutError) as exc:
            sys.stderr.write(f"grid Redis at {mask_url(url)} is unreachable: {exc}\n")
            return 1
        finally:
            await client.aclose()
        origin = "embedded redis-server" if embedded else "ARB_REDIS_URL"
        console.print(
            f"grid Redis: {mask_url(url)} ({origin}, redis {info.get('redis_version')}, ping {ping_ms:.2f} ms)"
        )
        console.print(f"mode: {settings.mode} (no real order is sent in paper mode)")
        console.print(coverage_table(settings))
    return 0
