"""The in-process fallback: the same official Uniswap bytecode on py-evm (eth-tester), no node binary, no URL.

Checks that quoting, the polling connector and execution do not depend on anvil."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import pytest_asyncio

from arb.connectors.dex.connector import DexConnector, DexOptions
from arb.connectors.dex.execution import DexGateway, ExecutionOptions, SwapRequest, SwapStatus
from arb.connectors.dex.pools import resolve_pools, v2_ladders, v3_ladders
from arb.connectors.dex.quoting import DEFAULT_FRACTIONS
from arb.model import Quote
from arb.sim.chain.deploy import PoolSpec
from arb.sim.chain.local import LocalDex, local_dex
from arb.tasks import cancel_and_wait, spawn
from tests.integration.connectors.dex.support import (
    local_settings,
    needs_artifacts,
    receipt_block,
    v2_router_amounts,
    venue_and_chain,
)
from tests.integration.sim.support import eventually

pytestmark = [needs_artifacts, pytest.mark.asyncio(loop_scope="module")]
POOLS = [
    PoolSpec("uniswap_v2", "WETH", "USDC", Decimal(3000), Decimal(100)),
    PoolSpec("uniswap_v3", "WETH", "USDC", Decimal(3000), Decimal(100), protocol="uniswap_v3"),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def dex() -> AsyncIterator[LocalDex]:
    async with local_dex(backend="eth-tester", pools=POOLS) as chain:
        yield chain


async def test_v2_quotes_equal_the_router_and_v3_quotes_come_from_the_quoter_on_py_evm(dex: LocalDex) -> None:
    settings = local_settings(dex)
    w3 = dex.trader.w3
    block = await w3.eth.block_number
    for venue_id in ("uniswap_v2", "uniswap_v3"):
        venue, chain = venue_and_chain(settings, venue_id)
        pools, _ = await resolve_pools(w3, venue_id, venue, chain, {"WETH/USDC": "ETH/USD"})
        if venue_id == "uniswap_v2":
            (ladder,) = await v2_ladders(w3, pools, block, DEFAULT_FRACTIONS[:4])
            assert ladder is not None
            for size, out in ladder.sells:
                assert out == (await v2_router_amounts(dex, venue_id, ["WETH", "USDC"], size, out=True))[-1]
        else:
            (ladder,) = await v3_ladders(w3, pools, block, DEFAULT_FRACTIONS[:4])
            assert ladder is not None
            assert len(ladder.sells) == len(ladder.buys) == 4
            assert all(out < size * 3000 for size, out in ladder.sells)  # the fee and impact, not a free lunch


async def test_the_polling_connector_follows_blocks_on_py_evm(dex: LocalDex) -> None:
    settings = local_settings(dex)
    venue, chain = venue_and_chain(settings, "uniswap_v2")
    quotes: list[Quote] = []
    connector = DexConnector(
        "uniswap_v2",
        venue,
        chain,
        {"WETH/USDC": "ETH/USD"},
        quotes.append,
        source=dex.source(),
        options=DexOptions(updates="poll", poll_interval_s=0.02, tip_wei=10**9),
    )
    task = spawn(connector.run(), name="test-dex-pyevm")
    try:
        await eventually(lambda: connector.status.state == "connected", 10)
        receipt = await dex.trader.swap("uniswap_v2", "USDC", "WETH", 30_000 * 10**18)
        await eventually(lambda: quotes[-1].sequence == receipt_block(receipt), 5)
    finally:
        await cancel_and_wait(task, timeout_s=10)
    assert quotes[-1].ask > quotes[0].ask


async def test_a_swap_lands_on_py_evm(dex: LocalDex) -> None:
    venue, chain = venue_and_chain(local_settings(dex), "uniswap_v2")
    expected = (await v2_router_amounts(dex, "uniswap_v2", ["WETH", "USDC"], 10**17, out=True))[-1]
    opts = ExecutionOptions(receipt_timeout_s=10.0, poll_s=0.01, tip_wei=10**9)
    request = SwapRequest(path=("WETH", "USDC"), amount_in=10**17, expected_out=expected, max_slippage=0.01)
    gateway = DexGateway("uniswap_v2", venue, chain, dex.accounts.executor_account(), source=dex.source(), options=opts)
    async with gateway as gw:
        outcome = await gw.swap(request)
    assert outcome.status == SwapStatus.FILLED
    assert outcome.amount_out == expected
