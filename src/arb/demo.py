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

from rich.console import Console
from rich.table import Table

from arb.config import Settings
from arb.config.coverage import ASSET_CLASSES, coverage
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
    from arb.grid import GridError, GridLayout, PriceGrid

    with grid_redis(settings) as (url, embedded):
        layout = GridLayout.from_settings(settings)
        try:
            async with PriceGrid.from_url(url, layout, settings.grid) as grid:
                t0 = time.perf_counter()
                await grid.ping()
                ping_ms = (time.perf_counter() - t0) * 1e3
                info = await grid.client.info("server")
                mirror = grid.mirror()
                t0 = time.perf_counter()
                snapshot = await mirror.rebuild()
                rebuild_ms = (time.perf_counter() - t0) * 1e3
        except GridError as exc:
            sys.stderr.write(f"grid Redis at {mask_url(url)}: {exc}\n")
            return 1
        origin = "embedded redis-server" if embedded else "ARB_REDIS_URL"
        console.print(
            f"grid Redis: {mask_url(url)} ({origin}, redis {info.get('redis_version')}, ping {ping_ms:.2f} ms)"
        )
        n_inst, n_venues = layout.shape
        console.print(
            f"grid: {n_inst} instruments x {n_venues} venues, {int(snapshot.present.sum())} cells quoted, "
            f"feed at c={snapshot.position.c}; mirror rebuilt in {rebuild_ms:.1f} ms"
        )
        console.print(f"mode: {settings.mode} (no real order is sent in paper mode)")
        console.print(coverage_table(settings))
    return 0


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
