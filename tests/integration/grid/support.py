"""Shared helpers for the grid's integration tests (not fixtures: each test module states what it uses)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from prometheus_client import REGISTRY

from arb.config.schema import GridSettings
from arb.grid import GridLayout, PriceGrid
from tests.support import Clock

LAYOUT = GridLayout.from_lists(
    ["BTC/USD", "ETH/USD", "SOL/USD"], ["binance", "kraken", "dex"], {"binance": 1000, "kraken": 1000, "dex": 10_000}
)


def open_grid(
    url: str,
    layout: GridLayout = LAYOUT,
    *,
    clock: Callable[[], int] | None = None,
    socket_timeout_s: float = 1.0,
    feed_maxlen: int = 100_000,
    chunk_size: int = 1000,
) -> PriceGrid:
    settings = GridSettings(socket_timeout_s=socket_timeout_s, feed_maxlen=feed_maxlen)
    return PriceGrid.from_url(url, layout, settings, chunk_size=chunk_size, now_ns=clock or Clock())


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def metric_total(name: str) -> float:
    """Sum of a counter over all its label values."""
    return sum(sample.value for family in REGISTRY.collect() for sample in family.samples if sample.name == name)


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 2.0) -> bool:
    """Poll `check` until it holds (for state that lives in Redis, where there is no event to wait on)."""
    async with asyncio.timeout(timeout_s):
        while True:
            if await check():
                return True
            await asyncio.sleep(0.005)
