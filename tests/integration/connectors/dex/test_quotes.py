"""Pool quotes on anvil running the official Uniswap bytecode: v2 ladders equal the router's getAmountsOut /
getAmountsIn to the wei, v3 ladders equal QuoterV2 and what a real swap then delivers, and the Quote's depth
reproduces the exact amounts at every ladder size."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
import pytest_asyncio

from arb.config import load_settings
from arb.connectors.dex.abi import contract
from arb.connectors.dex.connector import DexConnector, DexOptions, Header
from arb.connectors.dex.pools import PoolRef, resolve_pools, v2_ladders, v3_ladders
from arb.connectors.dex.quoting import DEFAULT_FRACTIONS, ladder_quote
from arb.model import Quote
from arb.sim.chain.local import LocalDex, local_dex
from tests.integration.connectors.dex.support import (
    local_settings,
    needs_anvil,
    token_balance,
    v2_router_amounts,
    venue_and_chain,
    venue_symbols,
)

pytestmark = [needs_anvil, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def dex() -> AsyncIterator[LocalDex]:
    async with local_dex() as chain:
        yield chain


async def pools_of(dex: LocalDex, venue_id: str) -> list[PoolRef]:
    settings = local_settings(dex)
    venue, chain = venue_and_chain(settings, venue_id)
    pools, missing = await resolve_pools(dex.trader.w3, venue_id, venue, chain, venue_symbols(settings, venue_id))
    assert missing == []
    return pools


@pytest.mark.parametrize("venue", ["uniswap_v2", "sushiswap"])
async def test_v2_ladders_equal_the_routers_amounts_to_the_wei(dex: LocalDex, venue: str) -> None:
    w3 = dex.trader.w3
    await dex.trader.move_price(venue, "WETH/USDC", Decimal(3021))  # an arbitrary, uneven state
    pools = await pools_of(dex, venue)
    block = await w3.eth.block_number

    ladders = await v2_ladders(w3, pools, block, DEFAULT_FRACTIONS)

    for pool, ladder in zip(pools, ladders, strict=True):
        assert ladder is not None
        base, quote = pool.symbol.split("/")
        assert len(ladder.sells) == len(DEFAULT_FRACTIONS)
        for size, quote_out in ladder.sells:
            assert quote_out == (await v2_router_amounts(dex, venue, [base, quote], size, out=True))[-1]
        for size, quote_in in ladder.buys:
            assert quote_in == (await v2_router_amounts(dex, venue, [quote, base], size, out=False))[0]


async def test_a_quotes_depth_walks_to_the_pools_exact_amount_at_every_size(dex: LocalDex) -> None:
    w3 = dex.trader.w3
    (pool,) = [p for p in await pools_of(dex, "uniswap_v2") if p.symbol == "WETH/USDC"]
    block = await w3.eth.get_block("latest")
    (ladder,) = await v2_ladders(w3, [pool], block["number"], DEFAULT_FRACTIONS)
    assert ladder is not None

    quote = ladder_quote(
        "uniswap_v2",
        "ETH/USD",
        ladder,
        base_decimals=18,
        quote_decimals=18,
        block=block["number"],
        ts_exchange=block["timestamp"] * 10**9,
        ts_recv=block["timestamp"] * 10**9 + 1,
    )

    assert isinstance(quote, Quote)
    assert quote.sequence == block["number"]
    for k, (size, quote_out) in enumerate(ladder.sells):
        walked = sum(price * amount for price, amount in quote.bids[: k + 1])
        assert walked == pytest.approx(quote_out / 1e18, rel=1e-12)
        assert sum(a for _, a in quote.bids[: k + 1]) == pytest.approx(size / 1e18, rel=1e-12)
    for k, (_size, quote_in) in enumerate(ladder.buys):
        assert sum(price * amount for price, amount in quote.asks[: k + 1]) == pytest.approx(quote_in / 1e18, rel=1e-12)


async def test_v3_ladders_equal_quoterv2_and_a_real_swap_delivers_the_quoted_amount(dex: LocalDex) -> None:
    w3 = dex.trader.w3
    (pool,) = [p for p in await pools_of(dex, "uniswap_v3") if p.symbol == "WETH/USDC"]
    block = await w3.eth.block_number
    (ladder,) = await v3_ladders(w3, [pool], block, DEFAULT_FRACTIONS)
    assert ladder is not None
    assert len(ladder.sells) == len(ladder.buys) == len(DEFAULT_FRACTIONS)
    quoter = contract(w3, pool.quoter, "QuoterV2")
    weth, usdc = pool.base.address, pool.quote.address
    size, quoted_out = ladder.sells[4]
    direct = await quoter.functions.quoteExactInputSingle((weth, usdc, size, pool.fee_tier, 0)).call(
        block_identifier=block
    )
    assert direct[0] == quoted_out
    trader = dex.trader.tx.address
    before = await token_balance(dex, "USDC", trader)

    await dex.trader.swap("uniswap_v3", "WETH", "USDC", size)

    assert await token_balance(dex, "USDC", trader) - before == quoted_out  # the pool's own code, to the wei


async def test_the_connector_quotes_every_listed_pool_with_gas_in_the_quote_currency(dex: LocalDex) -> None:
    settings = local_settings(dex)
    venue, chain = venue_and_chain(settings, "uniswap_v3")
    quotes: list[Quote] = []
    connector = DexConnector(
        "uniswap_v3",
        venue,
        chain,
        venue_symbols(settings, "uniswap_v3"),
        quotes.append,
        source=dex.source(),
        options=DexOptions(updates="poll"),
    )
    w3 = dex.trader.w3
    connector.pools, _ = await resolve_pools(w3, "uniswap_v3", venue, chain, connector.symbols)
    block = await w3.eth.get_block("latest")
    published = await connector.refresh(w3, Header(block["number"], block["timestamp"], block["baseFeePerGas"]))

    assert published == 5
    assert {q.instrument for q in quotes} == {"ETH/USD", "BTC/USD", "LINK/USD", "UNI/USD", "AAVE/USD"}
    assert all(q.sequence == block["number"] and q.bid < q.ask for q in quotes)
    eth = connector.gas["ETH/USD"]
    tip = await w3.eth.max_priority_fee
    assert eth.native_cost == pytest.approx(180_000 * (block["baseFeePerGas"] + tip) / 1e18)
    eth_quote = next(q for q in quotes if q.instrument == "ETH/USD")
    assert eth.quote_cost == pytest.approx(eth.native_cost * (eth_quote.bid + eth_quote.ask) / 2)
    assert connector.gas["LINK/USD"].quote_cost == pytest.approx(eth.quote_cost)  # priced through WETH/USDC


async def test_the_local_deployment_overrides_config_through_an_ordinary_user_file(
    dex: LocalDex, tmp_path: Path
) -> None:
    settings = load_settings(dex.write_user_config(tmp_path / "local-dex.yaml"))

    v2, v3 = settings.venues["uniswap_v2"], settings.venues["uniswap_v3"]
    assert v2.factory == dex.deployment.v2["uniswap_v2"].factory
    assert v2.router == dex.deployment.v2["uniswap_v2"].router
    assert v3.quoter == dex.deployment.v3["uniswap_v3"].quoter
    assert dex.rpc is not None
    assert v2.urls == {"rpc": dex.rpc.http_url, "ws": dex.rpc.ws_url}
    assert settings.venues["pancakeswap"].enabled is False  # BSC is not simulated
    chain = settings.chains["ethereum"]
    assert chain.chain_id == 31337
    assert chain.tokens["USDC"].address == dex.deployment.tokens["USDC"]
    assert chain.tokens["USDC"].decimals == 18  # v2-core's test ERC20
    assert settings == local_settings(dex)  # the file and `apply()` give the same settings
