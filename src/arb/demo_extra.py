"""The demo's non-ccxt venues: a local Capital.com and a local chain with the Uniswap pools, streamed into the grid.

What runs, in the demo process itself (not in a worker child):

    local Capital.com (`arb.sim.venues.capital_com`)  <- `CapitalComConnector` (REST session + sharded WS stream)
    anvil with Uniswap v2/v3 (`arb.sim.chain`)         <- one `DexConnector` per deployed DEX venue (newHeads over WS,
                                                          pool reads over HTTP), gas per block -> `{arb}:gas`

Why in process: together they are light next to the ccxt workers (Capital.com's ~130 epics at the demo's one
update a second per book; eight pools re-quoted once per one-second block, ~4 ms each), their venues live exactly
as long as the stack does, and they need no spec format of their own. The workers stay ccxt-only.

Prices agree with the CEX sims': the pools are created at the sim market's seed price of each token's instrument
(`InstrumentSpec.derive`, which the sim child uses too) and Capital.com's own market starts from the same seeds; each
then walks on its own (about 1 bp a second), far inside the DEX's 0.3 % fee and the CFD spreads, so no standing
false opportunity appears in a demo's minutes. A CEX–DEX opportunity is made by moving a pool (`LocalDex.trader`).

Without the chain (no anvil binary: `./run demo` installs it with npm; or web3 missing, the `dex` extra) the DEX is
skipped with a warning on stderr and the demo runs on; a venue disabled in the config is not started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, Protocol

from pydantic import SecretStr

from arb import tasks
from arb.config import Settings
from arb.connectors.supervisor import venue_symbols
from arb.connectors.worker import LatencyBook
from arb.grid.gas import GasPublisher, gas_cost
from arb.model import FeedCounters, VenueHealth

if TYPE_CHECKING:
    from rich.console import Console

    from arb.connectors.ccxt_pro import VenueStatus
    from arb.grid import PriceGrid
    from arb.sim.chain.local import LocalDex

log = logging.getLogger(__name__)

CAPITAL_COM: Final = "capital_com"
DEMO_POOL_USD: Final = Decimal(30_000_000)
"""Liquidity on each side of every demo pool: deep enough that a 1,000 USD trade (the scanner's minimum) moves the
price well inside the 5 bps slippage cap, as on a major mainnet pool, so moving a pool opens a CEX-DEX opportunity."""
BLOCK_S: Final = 1
"""The local chain mines a block every second (Ethereum: 12 s), so DEX quotes refresh at the CEX sims' pace."""
HEALTH_EVERY_S: Final = 0.5


class _Connector(Protocol):
    status: VenueStatus

    async def run(self) -> None: ...


@dataclass
class LocalExtras:
    """What runs: venue id -> instruments it streams (for the demo's venue table), and the chain for tests."""

    serving: dict[str, int] = field(default_factory=dict)
    connectors: dict[str, _Connector] = field(default_factory=dict)
    dex: LocalDex | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    """Venue (or "dex") -> why it was not started."""


def wanted(settings: Settings) -> tuple[bool, list[str]]:
    """Whether Capital.com is enabled with instruments, and the enabled Ethereum DEX venues with instruments."""
    cfd = settings.venues.get(CAPITAL_COM)
    capital = cfd is not None and cfd.kind == "cfd" and cfd.enabled and bool(venue_symbols(settings, CAPITAL_COM))
    dexes = [
        vid
        for vid, cfg in sorted(settings.venues.items())
        if cfg.kind == "dex" and cfg.enabled and cfg.chain == "ethereum" and venue_symbols(settings, vid)
    ]
    return capital, dexes


def pool_prices(settings: Settings, dex_venues: list[str]) -> dict[str, Decimal]:
    """Token -> USD(C) price the pools start at: the sim market's seed price of the instrument each token stands for
    (WETH/USDC on a DEX is ETH/USD), so DEX and CEX books start together."""
    from arb.sim.market import InstrumentSpec

    prices: dict[str, Decimal] = {}
    for vid in dex_venues:
        for symbol, iid in venue_symbols(settings, vid).items():
            token = symbol.split("/")[0]
            inst = settings.instruments[iid]
            spec = InstrumentSpec.derive(iid, base=inst.base, quote=inst.quote, asset_class=inst.asset_class)
            prices.setdefault(token, Decimal(repr(spec.price)))
    return prices


def _health(connectors: Mapping[str, _Connector], latency: LatencyBook, *, closing: bool = False) -> list[VenueHealth]:
    now = time.time_ns()
    out = []
    for vid, c in connectors.items():
        s = c.status
        counters: dict[str, Any] = {name: getattr(s, name) for name in FeedCounters.__struct_fields__}
        counters["rejected"] = dict(s.rejected)
        counters["closed"] = list(s.closed)
        if closing:
            counters["last_error"] = "demo stopped"
        state = "down" if closing else s.state
        out.append(VenueHealth(**counters, venue=vid, state=state, since_ns=now if closing else s.since_ns,
                               published_ns=now, latency_hist=list(latency.hists.get(vid, []))))  # fmt: skip
    return out


async def _publish_health(grid: PriceGrid, connectors: Mapping[str, _Connector], latency: LatencyBook) -> None:
    from arb.grid import GridError

    while True:
        try:
            await grid.publish_health(_health(connectors, latency))
        except GridError as exc:
            log.warning("demo.extra_health_unpublished error=%r", str(exc))
        await asyncio.sleep(HEALTH_EVERY_S)


def capital_com_alone(settings: Settings) -> list[str]:
    """The instruments the demo's local Capital.com lists: those no other enabled venue maps. Its market runs in this
    process, apart from the sim child's, so a crypto CFD beside the CEX sims would drift from them and show spreads
    that no venue really has; FX, commodities and indices are Capital.com's alone anyway."""
    from arb.sim.venues.capital_com import settings_epics

    others = {
        iid
        for iid, inst in settings.instruments.items()
        for vid in inst.venues
        if vid != CAPITAL_COM and settings.venues[vid].enabled
    }
    return [iid for iid in settings_epics(settings, CAPITAL_COM) if iid not in others]


@contextlib.asynccontextmanager
async def _capital_com(
    settings: Settings, sink: Callable[..., None], book_update_hz: float
) -> AsyncIterator[_Connector]:
    from arb.connectors.capital_com import CapitalComCredentials, Endpoint
    from arb.connectors.capital_com.stream import CapitalComConnector
    from arb.sim.market import MarketConfig
    from arb.sim.venues.capital_com import serve_capital_com

    config = MarketConfig(book_update_hz=book_update_hz, tick_hz=max(book_update_hz, 10.0), regular=True)
    alone = capital_com_alone(settings)
    async with serve_capital_com(settings, instruments=alone, config=config) as local:
        creds = CapitalComCredentials(SecretStr(local.api_key), local.identifier, SecretStr(local.password))
        epics = {settings.instruments[iid].venues[CAPITAL_COM]: iid for iid in alone}
        yield CapitalComConnector(
            CAPITAL_COM, settings.venues[CAPITAL_COM], epics, sink, credentials=creds,
            endpoint=Endpoint(local.rest_url, local.ws_url),
        )  # fmt: skip


@contextlib.asynccontextmanager
async def local_extras(
    settings: Settings, grid: PriceGrid, err: Console, *, book_update_hz: float = 1.0
) -> AsyncIterator[LocalExtras]:
    """Start the local Capital.com and chain the settings enable, their connectors writing into `grid` (quotes,
    health, DEX gas), until the block ends; everything is stopped (connectors first, published "down") on exit."""
    capital, dexes = wanted(settings)
    extras = LocalExtras()
    async with contextlib.AsyncExitStack() as stack:
        latency = LatencyBook(list(settings.venues))
        writer = await stack.enter_async_context(grid.writer(on_written=latency.on_written))
        if capital:
            extras.connectors[CAPITAL_COM] = await stack.enter_async_context(
                _capital_com(settings, writer.put, book_update_hz)
            )
        if dexes:
            await _start_dex(settings, dexes, grid, writer.put, stack, extras, err)
        for vid in extras.connectors:
            extras.serving[vid] = len(
                capital_com_alone(settings) if vid == CAPITAL_COM else venue_symbols(settings, vid)
            )
        running = [tasks.spawn(c.run(), name=f"connector-{vid}") for vid, c in extras.connectors.items()]
        running.append(tasks.spawn(_publish_health(grid, extras.connectors, latency), name="demo-extra-health"))
        try:
            yield extras
        finally:
            for task in reversed(running):
                await tasks.cancel_and_wait(task)
            with contextlib.suppress(Exception):  # best effort: Redis may be what failed
                await grid.publish_health(_health(extras.connectors, latency, closing=True))


async def _start_dex(
    settings: Settings,
    dexes: list[str],
    grid: PriceGrid,
    sink: Callable[..., None],
    stack: contextlib.AsyncExitStack,
    extras: LocalExtras,
    err: Console,
) -> None:
    """The chain and one DexConnector per DEX venue it deployed; a missing node or web3 skips the DEX, loudly."""
    try:
        from arb.connectors.dex.connector import DexConnector, DexOptions
        from arb.connectors.dex.gas import GasQuote
        from arb.sim.chain.local import DEFAULT_PRICES, default_pools, local_dex
        from arb.sim.chain.node import AnvilNode, NodeUnavailable, anvil_binary

        anvil_binary()
    except (ImportError, NodeUnavailable) as exc:  # NodeUnavailable names where it looked
        extras.skipped["dex"] = str(exc)
        err.print(f"[yellow]demo: DEX venues skipped ({', '.join(dexes)}):[/] {exc}")
        log.warning("demo.dex_skipped venues=%s reason=%r", ",".join(dexes), str(exc))
        return
    started = time.monotonic()
    prices = {**DEFAULT_PRICES, **pool_prices(settings, dexes)}
    dex = await stack.enter_async_context(
        local_dex(backend="anvil", pools=default_pools(prices, liquidity_usd=DEMO_POOL_USD))
    )
    node = dex.node
    assert isinstance(node, AnvilNode)  # noqa: S101 - backend="anvil" above
    await node.set_interval_mining(BLOCK_S)
    extras.dex = dex
    local = dex.apply(settings)
    publisher = await stack.enter_async_context(GasPublisher(grid.write_gas))

    def gas_sink(g: GasQuote) -> None:
        publisher.put(gas_cost(g.venue, g.instrument, g.block, g.quote_cost))

    options = DexOptions(updates="subscribe", stall_budget_s=10 * BLOCK_S, backoff_max_s=5.0)
    deployed = set(dex.deployment.v2) | set(dex.deployment.v3)
    for vid in dexes:
        if vid not in deployed:
            extras.skipped[vid] = "not deployed on the local chain"
            continue
        cfg, chain = local.venues[vid], local.chains["ethereum"]
        extras.connectors[vid] = DexConnector(
            vid, cfg, chain, venue_symbols(local, vid), sink, endpoint=dex.rpc, options=options, gas_sink=gas_sink
        )
    log.info("demo.dex_started venues=%s rpc=%s start_s=%.2f", ",".join(extras.connectors), dex.rpc,
             time.monotonic() - started)  # fmt: skip
