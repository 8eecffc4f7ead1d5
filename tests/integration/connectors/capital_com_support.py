"""Helpers of the Capital.com integration tests: the local venue, a client of it, the connector into a real grid."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

from pydantic import SecretStr

from arb.config import load_settings
from arb.connectors.capital_com import (
    CapitalComClient,
    CapitalComConnector,
    CapitalComCredentials,
    ClientOptions,
    Endpoint,
    StreamOptions,
)
from arb.grid import GridLayout, PriceGrid
from arb.model import Quote
from arb.sim.market import MarketConfig
from arb.sim.venues.capital_com import CapitalComProtocol, LocalCapitalCom, serve_capital_com, settings_epics
from arb.tasks import cancel_and_wait, spawn

SETTINGS = load_settings(None)
CALM = MarketConfig(seed=11, tick_hz=20.0, book_update_hz=4.0)
"""Every book refreshes ~4 times a second: 112 books give ~450 updates/s, light on a shared 2-core machine."""
FAST_CLIENT = ClientOptions(timeout_s=5.0, keepalive_s=None)
FAST_STREAM = StreamOptions(
    ping_interval_s=0.5,
    ping_timeout_s=2.0,
    subscribe_timeout_s=3.0,
    backoff_initial_s=0.05,
    backoff_max_s=0.5,
    min_stall_budget_s=0.5,
    first_update_timeout_s=5.0,
    status_refresh_s=1.0,
)
FEW = ["EUR/USD", "XAU/USD", "US500", "BTC/USD"]
"""A small universe: one instrument of each asset class Capital.com lists."""


@asynccontextmanager
async def local_capital_com(
    instruments: Iterable[str] | None = None,
    *,
    run: bool = True,
    config: MarketConfig = CALM,
    **protocol_options: Any,
) -> AsyncIterator[LocalCapitalCom]:
    """The local venue (every market open unless `hours="real"` is given) over a market of its own."""
    protocol = CapitalComProtocol(**({"hours": "always"} | protocol_options))
    async with serve_capital_com(
        SETTINGS, instruments=instruments, protocol=protocol, config=config, run_market=run
    ) as local:
        yield local


def credentials(local: LocalCapitalCom, *, api_key: str | None = None) -> CapitalComCredentials:
    return CapitalComCredentials(SecretStr(api_key or local.api_key), local.identifier, SecretStr(local.password))


def endpoint(local: LocalCapitalCom) -> Endpoint:
    return Endpoint(local.rest_url, local.ws_url)


@asynccontextmanager
async def client_of(
    local: LocalCapitalCom, options: ClientOptions = FAST_CLIENT, **kwargs: Any
) -> AsyncIterator[CapitalComClient]:
    async with CapitalComClient(endpoint(local), credentials(local, **kwargs), options=options) as client:
        yield client


def epics_of(local: LocalCapitalCom) -> dict[str, str]:
    """epic -> instrument, of everything the local venue lists."""
    listed = set(local.venue.market_ids)
    return {e: i for i, e in settings_epics(SETTINGS).items() if e in listed}


@asynccontextmanager
async def streaming(
    local: LocalCapitalCom,
    redis_url: str,
    *,
    options: StreamOptions = FAST_STREAM,
    client_options: ClientOptions = FAST_CLIENT,
    seen: list[Quote] | None = None,
    sink: Callable[[Quote], None] | None = None,
) -> AsyncIterator[tuple[CapitalComConnector, PriceGrid]]:
    """The connector streaming every epic of `local` into a real grid; each quote written is also put in `seen`."""
    epics = epics_of(local)
    layout = GridLayout.from_lists(list(epics.values()), ["capital_com"], {"capital_com": 5000})
    async with PriceGrid.from_url(redis_url, layout) as grid, grid.writer(max_delay_ms=2.0) as writer:

        def put(quote: Quote) -> None:
            if seen is not None:
                seen.append(quote)
            if sink is not None:
                sink(quote)
            writer.put(quote, checked=True)

        connector = CapitalComConnector(
            "capital_com",
            SETTINGS.venues["capital_com"],
            epics,
            put,
            credentials=credentials(local),
            endpoint=endpoint(local),
            options=options,
            client_options=client_options,
        )
        task = spawn(connector.run(), name="test-capital-com")
        try:
            yield connector, grid
        finally:
            await cancel_and_wait(task, timeout_s=10)
            gc.collect()


def requests_to(local: LocalCapitalCom, method: str, path_start: str) -> list[float]:
    """Arrival times (monotonic) of the venue's REST requests `method` on paths starting with `path_start`."""
    return [t for t, m, p in local.venue.requests if m == method and p.startswith(path_start)]


def max_in_window(times: list[float], window_s: float) -> int:
    """Most of `times` inside any half-open window of `window_s`."""
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while times[start] <= t - window_s:
            start += 1
        best = max(best, end - start + 1)
    return best
