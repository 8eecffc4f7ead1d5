"""What the REST pollers beside the connectors (`wallets`, `funding`) share: the poll loop and a shielded close.

Why shielded: ccxt spawns untracked tasks that can re-open an exchange's HTTP session after `close()` (see
`arb.connectors.ccxt_pro.close_exchange`); a close interrupted half-way by cancellation leaks the session, so it
finishes (bounded) even while the poller is being cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

from arb import tasks
from arb.connectors.ccxt_pro import LocalEndpoint, close_exchange
from arb.connectors.urls import point_at_local

log = logging.getLogger(__name__)


class Poller(Protocol):
    @property
    def venue_id(self) -> str: ...
    @property
    def refresh_s(self) -> float: ...
    async def run(self) -> None: ...


P = TypeVar("P", bound=Poller)


def rest_exchange(
    factory: Callable[[str, dict[str, Any]], Any], ccxt_id: str, config: dict[str, Any], endpoint: LocalEndpoint | None
) -> Any:
    """A ccxt exchange for REST polling, pointed at the local venue when `endpoint` is given."""
    exchange = factory(ccxt_id, config)
    if endpoint is not None:
        point_at_local(exchange, endpoint.http_url, endpoint.ws_url)
    return exchange


@contextlib.asynccontextmanager
async def running(what: str, pollers: Sequence[P]) -> AsyncIterator[Sequence[P]]:
    """Run every poller as a task (logged as `<what>.polling`) while the block runs; cancel and await them after."""
    started = [tasks.spawn(p.run(), name=f"{what}-{p.venue_id}") for p in pollers]
    if pollers:
        log.info("%s.polling venues=%s refresh_s=%s", what, ",".join(p.venue_id for p in pollers), pollers[0].refresh_s)
    try:
        yield pollers
    finally:
        for task in started:
            await tasks.cancel_and_wait(task)


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
