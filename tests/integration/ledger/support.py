"""Helpers shared by the ledger's integration tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from prometheus_client import REGISTRY


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 3.0) -> bool:
    """Poll `check` until it holds (state that lives in the database, where there is no event to wait on)."""
    async with asyncio.timeout(timeout_s):
        while True:
            if await check():
                return True
            await asyncio.sleep(0.01)
