"""The DEX connector end to end: anvil (official Uniswap bytecode) -> newHeads subscription -> real Redis grid.

Another account's swap must move the grid quote at the swap's own block (within one block), and the quote's sequence
is the block number."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import pytest_asyncio

from arb.connectors.dex.connector import DexConnector, DexOptions
from arb.grid import GridLayout, PriceGrid
from arb.model import Quote
from arb.sim.chain.local import LocalDex, local_dex
from arb.tasks import cancel_and_wait, spawn
from tests.integration.connectors.dex.support import (
    local_settings,
    needs_anvil,
    receipt_block,
    venue_and_chain,
    venue_symbols,
)
from tests.integration.sim.support import eventually

pytestmark = [needs_anvil, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def dex() -> AsyncIterator[LocalDex]:
    async with local_dex() as chain:
        yield chain


@pytest.mark.parametrize("venue_id", ["uniswap_v2", "uniswap_v3"])
async def test_another_accounts_swap_moves_the_grid_quote_within_one_block(
    dex: LocalDex, redis_url: str, venue_id: str
) -> None:
    settings = local_settings(dex)
    venue, chain = venue_and_chain(settings, venue_id)
    symbols = venue_symbols(settings, venue_id)
    layout = GridLayout.from_lists(sorted(set(symbols.values())), [venue_id], {venue_id: 15_000})
    rpc = dex.rpc
    assert rpc is not None
    assert rpc.ws_url is not None
    async with PriceGrid.from_url(redis_url, layout) as grid, grid.writer(max_delay_ms=1.0) as writer:
        connector = DexConnector(venue_id, venue, chain, symbols, writer.put, endpoint=rpc, options=DexOptions())
        task = spawn(connector.run(), name="test-dex-connector")
        try:
            await eventually(lambda: connector.status.state == "connected", 10)
            await eventually(lambda: writer.written >= len(symbols), 5)
            before = (await grid.read_instrument("ETH/USD")).venues[venue_id].quote

            receipt = await dex.trader.swap(venue_id, "USDC", "WETH", 600_000 * 10**18)  # buys ~200 WETH
            block = receipt_block(receipt)

            async def moved() -> bool:
                view = (await grid.read_instrument("ETH/USD")).venues.get(venue_id)
                return view is not None and view.quote.sequence >= block

            await eventually(moved, 5, every_s=0.005)
            after = (await grid.read_instrument("ETH/USD")).venues[venue_id].quote
            assert after.sequence == block  # the swap's own block: not one later
            assert after.ask > before.ask * 1.3
            assert after.bid > before.bid * 1.3
            assert connector.status.state == "connected"
            assert connector.status.reconnects == 0
        finally:
            await cancel_and_wait(task, timeout_s=10)


async def test_a_pool_price_move_is_how_a_cex_dex_opportunity_is_injected(dex: LocalDex) -> None:
    target = Decimal(3150)

    await dex.trader.move_price("uniswap_v2", "WETH/USDC", target)
    await dex.trader.move_price("uniswap_v3", "WETH/USDC", target)

    assert await dex.trader.mid_price("uniswap_v3", "WETH/USDC") == pytest.approx(target, rel=Decimal("1e-9"))
    assert await dex.trader.mid_price("uniswap_v2", "WETH/USDC") == pytest.approx(target, rel=Decimal("0.002"))


async def test_no_new_block_marks_the_venue_stale_until_the_next_block(dex: LocalDex) -> None:
    settings = local_settings(dex)
    venue, chain = venue_and_chain(settings, "sushiswap")
    rpc = dex.rpc
    assert rpc is not None
    assert rpc.ws_url is not None
    quotes: list[Quote] = []
    connector = DexConnector(
        "sushiswap",
        venue,
        chain,
        venue_symbols(settings, "sushiswap"),
        quotes.append,
        endpoint=rpc,
        options=DexOptions(stall_budget_s=0.3, backoff_initial_s=0.05),
    )
    task = spawn(connector.run(), name="test-dex-stall")
    try:
        await eventually(lambda: connector.status.state == "connected", 10)
        await eventually(lambda: connector.status.reconnects >= 1, 3)  # automine: no transaction, no block

        assert connector.status.stalls >= 1
        assert connector.status.state == "stale"
        published = len(quotes)
        await asyncio.sleep(0.5)
        assert len(quotes) == published  # a reconnect does not republish the old block as fresh
        receipt = await dex.trader.swap("sushiswap", "USDC", "WETH", 10**18)
        await eventually(lambda: connector.status.state == "connected", 3)
        assert quotes[-1].sequence == receipt_block(receipt)
    finally:
        await cancel_and_wait(task, timeout_s=10)
