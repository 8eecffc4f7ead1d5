"""What the REST pollers beside the connectors (`wallets`, `funding`) share: the poll loop and a shielded close.

Why shielded: ccxt spawns untracked tasks that can re-open an exchange's HTTP session after `close()` (see
`arb.connectors.ccxt_pro.close_exchange`); a close interrupted half-way by cancellation leaks the session, so it
finishes (bounded) even while the poller is being cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from arb import tasks
from arb.connectors.ccxt_pro import close_exchange


async def poll_forever(refresh: Callable[[], Awaitable[bool]], refresh_s: float, retry_s: float) -> None:
    """`refresh()` every `refresh_s`, or within `retry_s` after one that failed (returned False), until cancelled."""
    while True:
        tasks.raise_if_cancelling()
        ok = await refresh()
        await asyncio.sleep(refresh_s if ok else min(refresh_s, retry_s))


async def close_shielded(exchange: Any, name: str, timeout_s: float = 5.0) -> None:
    """Close a ccxt exchange; if cancelled meanwhile, let the close finish (up to `timeout_s`), then re-raise."""
    closer = tasks.spawn(close_exchange(exchange), name=name)
    try:
        await asyncio.shield(closer)
    except asyncio.CancelledError:
        await asyncio.wait({closer}, timeout=timeout_s)
        raise
