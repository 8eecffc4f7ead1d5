"""A CEX–DEX opportunity end to end: anvil (official Uniswap bytecode) -> DexConnector -> real Redis grid (quotes and
`{arb}:gas`) -> the real Scanner, with a CEX book written into the same grid.

Moving the pool with real swaps (`trader.move_price`) must open buy-CEX / sell-DEX, costed with the CEX taker fee, no
fee on the DEX leg (the pool's LP fee is already in its quote) and the connector's live per-block gas, not the
configured gas-price estimate."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
import pytest_asyncio

from arb.connectors.dex.connector import DexConnector, DexOptions
from arb.connectors.dex.gas import GasQuote
from arb.demo_extra import DEMO_POOL_USD
from arb.grid import GridLayout, PriceGrid
from arb.grid.gas import GasPublisher, gas_cost
from arb.model import OpportunityEvent, Quote, VenueHealth
from arb.scanner.engine import Scanner
from arb.sim.chain.local import LocalDex, default_pools, local_dex
from arb.tasks import cancel_and_wait, spawn
from tests.integration.connectors.dex.support import local_settings, needs_anvil, venue_and_chain, venue_symbols
from tests.integration.sim.support import eventually

pytestmark = [needs_anvil, pytest.mark.asyncio(loop_scope="module")]

CEX, DEX = "binance", "uniswap_v2"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def dex() -> AsyncIterator[LocalDex]:
    # WETH/USDC at 3000 with 30M USD a side (10,000 WETH), as the demo deploys it: 0.33 WETH moves it ~0.4 bps
    async with local_dex(pools=default_pools(liquidity_usd=DEMO_POOL_USD)) as chain:
        yield chain


def cex_book(mid: float) -> Quote:
    """Binance ETH/USDT, 0.5 USD half spread, 20 levels 0.5 USD apart, 5 ETH each (deep enough for the trade)."""
    now = time.time_ns()
    bids = tuple((mid - 0.5 * (k + 1), 5.0) for k in range(20))
    asks = tuple((mid + 0.5 * (k + 1), 5.0) for k in range(20))
    return Quote(CEX, "ETH/USD", bids[0][0], 5.0, asks[0][0], 5.0, now, now, 1, bids, asks)


async def test_moving_the_pool_opens_a_cex_dex_opportunity_net_of_fee_and_live_gas(
    dex: LocalDex, redis_url: str
) -> None:
    settings = local_settings(dex)  # the shipped thresholds: 5 bps slippage cap, 1000 USD minimum
    venue, chain = venue_and_chain(settings, DEX)
    layout = GridLayout.from_lists(["ETH/USD", "BTC/USD"], [CEX, DEX], {CEX: 60_000, DEX: 60_000})
    rpc = dex.rpc
    assert rpc is not None
    events: list[OpportunityEvent] = []
    async with (
        PriceGrid.from_url(redis_url, layout) as grid,
        grid.writer(max_delay_ms=1.0) as writer,
        GasPublisher(grid.write_gas) as gas,
    ):
        await grid.reset()

        def gas_sink(g: GasQuote) -> None:
            gas.put(gas_cost(g.venue, g.instrument, g.block, g.quote_cost))

        connector = DexConnector(DEX, venue, chain, venue_symbols(settings, DEX), writer.put, endpoint=rpc,
                                 options=DexOptions(), gas_sink=gas_sink)  # fmt: skip
        task = spawn(connector.run(), name="test-dex-connector")
        mirror = grid.mirror(depth=20)
        scanner = Scanner(settings, mirror, sinks=[events.append])
        try:
            async with mirror.following():
                await eventually(lambda: connector.status.state == "connected", 10)

                async def step() -> list[OpportunityEvent]:
                    now = time.time_ns()
                    await grid.write([cex_book(3000.0)])
                    await grid.publish_health(
                        [VenueHealth(venue=v, state="connected", since_ns=now, published_ns=now) for v in (CEX, DEX)]
                    )
                    target = (await grid.position()).c
                    assert await mirror.wait_until(lambda m: m.position.c >= target, timeout_s=2)
                    await scanner.refresh_inputs()
                    return scanner.step()

                assert await step() == []  # pool and CEX both at 3000: the 0.3 % pool fee and gas eat any edge

                receipt = await dex.trader.move_price(DEX, "WETH/USDC", Decimal(3150))  # the pool 5 % up
                block = int(receipt["blockNumber"])

                async def gas_at_block() -> bool:
                    g = (await grid.read_gas()).get(("ETH/USD", DEX))
                    return g is not None and g.block >= block

                await eventually(gas_at_block, 5, every_s=0.01)
                opened = await step()

                assert [(e.type, e.opportunity.buy_venue, e.opportunity.sell_venue) for e in opened] == [
                    ("opened", CEX, DEX)
                ]
                opp = opened[0].opportunity
                live = connector.gas["ETH/USD"]
                dex_quote = (await grid.read_instrument("ETH/USD")).venues[DEX].quote
                assert live.block == dex_quote.sequence >= block
                # gas of one swap = units x (base fee + tip) in ETH, priced at the pool's own WETH/USDC mid
                native = 150_000 * (live.base_fee_wei + live.tip_wei) / 1e18
                assert live.native_cost == pytest.approx(native)
                assert live.quote_cost == pytest.approx(native * (dex_quote.bid + dex_quote.ask) / 2)
                usdc_haircut = settings.quote_equivalence["USD"]["USDC"]
                i, j = layout.instrument_index("ETH/USD"), layout.venue_index(DEX)
                assert scanner.costs.gas_quote[i, j] == pytest.approx(live.quote_cost * (1 + usdc_haircut))
                configured = 150_000 * settings.chains["ethereum"].gas_price_gwei * 1e-9 * 3000.0
                assert scanner.costs.gas_quote[i, j] != pytest.approx(configured)  # the live figure, not config
                # costs: binance's taker fee on the buy, none on the DEX sell, the live gas over the notional
                assert opp.fee_buy == pytest.approx(0.001)
                assert opp.fee_sell == 0.0
                assert opp.gas == pytest.approx(live.quote_cost * (1 + usdc_haircut) / opp.notional)
                usdt_haircut = settings.quote_equivalence["USD"]["USDT"]
                assert opp.haircut == pytest.approx(usdt_haircut + usdc_haircut)  # USDT leg vs USDC leg
                realised = (opp.vwap_sell - opp.vwap_buy) / opp.vwap_buy
                assert opp.net_edge == pytest.approx(realised - 0.001 - opp.gas - opp.haircut)
                # the DEX bid is the pool's executable price after its 0.3 % fee: ~3150 x 0.997, minus impact
                assert 3000.0 < opp.vwap_sell < 3150 * 0.997
                assert opp.net_edge > 0.02  # ~5 % apart, ~0.3 % fee in the pool price, ~0.1 % fee, tiny gas
        finally:
            await cancel_and_wait(task, timeout_s=10)
