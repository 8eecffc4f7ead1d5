"""DEX execution on anvil (FAULTS E18): swaps signed locally land with the router's output and respect amountOutMin;
a price move beyond the cap reverts cleanly and is recorded with the router's reason; a passed deadline reverts; a
transaction that is not included stays PENDING (not final, not hedgeable) until resolved; nonces stay consistent."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from arb.connectors.dex.execution import (
    DexGateway,
    ExecutionOptions,
    SwapOutcome,
    SwapRequest,
    SwapStatus,
    gateways,
)
from arb.sim.chain.local import LocalDex, local_dex
from tests.integration.connectors.dex.support import (
    local_settings,
    needs_anvil,
    token_balance,
    v2_router_amounts,
    venue_and_chain,
)

pytestmark = [needs_anvil, pytest.mark.asyncio(loop_scope="module")]
ONE_ETH = 10**18


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def dex() -> AsyncIterator[LocalDex]:
    async with local_dex() as chain:
        yield chain


def gateway(dex: LocalDex, venue_id: str = "uniswap_v2", **options: object) -> DexGateway:
    venue, chain = venue_and_chain(local_settings(dex), venue_id)
    opts = ExecutionOptions(receipt_timeout_s=5.0, poll_s=0.01, **options)  # type: ignore[arg-type]
    return DexGateway(venue_id, venue, chain, dex.accounts.executor_account(), source=dex.source(), options=opts)


async def sell_eth_request(dex: LocalDex, amount: int, max_slippage: float, venue: str = "uniswap_v2") -> SwapRequest:
    expected = (await v2_router_amounts(dex, venue, ["WETH", "USDC"], amount, out=True))[-1]
    return SwapRequest(path=("WETH", "USDC"), amount_in=amount, expected_out=expected, max_slippage=max_slippage)


async def pending_nonce(dex: LocalDex) -> int:
    return int(await dex.trader.w3.eth.get_transaction_count(dex.accounts.executor_account().address, "pending"))


async def test_a_swap_lands_with_the_quoted_output_and_is_hedgeable_once_final(dex: LocalDex) -> None:
    me = dex.accounts.executor_account().address
    request = await sell_eth_request(dex, 2 * ONE_ETH, 0.005)
    usdc_before = await token_balance(dex, "USDC", me)
    async with gateway(dex) as gw:
        outcome = await gw.swap(request)

    assert outcome.status == SwapStatus.FILLED
    assert outcome.final
    assert outcome.hedgeable
    assert outcome.amount_out == request.expected_out  # nobody traded in between: exactly the router's quote
    assert outcome.amount_out_min == request.expected_out * 995 // 1000
    assert await token_balance(dex, "USDC", me) - usdc_before == outcome.amount_out
    assert outcome.gas_used > 0
    assert outcome.fee_wei > 0


async def test_a_price_move_beyond_the_cap_before_inclusion_reverts_cleanly_and_is_recorded(dex: LocalDex) -> None:
    request = await sell_eth_request(dex, ONE_ETH, 0.01)
    nonce_before = await pending_nonce(dex)
    async with gateway(dex) as gw:
        await dex.node.set_automine(False)
        try:
            # the trader dumps WETH with a higher tip: mined first in the same block, the price falls ~4 %
            await dex.trader.swap("uniswap_v2", "WETH", "USDC", 20 * ONE_ETH, wait=False, tip_wei=50 * 10**9)
            sent = await gw.send_swap(request)  # simulated before the dump: passes
            await dex.node.mine()
        finally:
            await dex.node.set_automine(True)
        outcome = await gw.wait(sent, 5.0)

    assert sent.status == SwapStatus.PENDING
    assert outcome.status == SwapStatus.REVERTED
    assert outcome.final
    assert not outcome.hedgeable  # E18: nothing filled, nothing to hedge
    assert "UniswapV2Router: INSUFFICIENT_OUTPUT_AMOUNT" in outcome.reason
    assert outcome.amount_out == 0
    assert outcome.fee_wei > 0  # a revert on chain still pays gas
    assert await pending_nonce(dex) == nonce_before + 1  # it used its nonce


async def test_a_swap_that_would_already_exceed_the_cap_is_not_sent(dex: LocalDex) -> None:
    request = await sell_eth_request(dex, ONE_ETH, 0.01)
    await dex.trader.swap("uniswap_v2", "WETH", "USDC", 30 * ONE_ETH)  # the quote is stale by ~6 %
    nonce_before = await pending_nonce(dex)
    async with gateway(dex) as gw:
        outcome = await gw.swap(request)
        again = await gw.swap(await sell_eth_request(dex, ONE_ETH, 0.01))  # re-quoted: goes through

    assert outcome.status == SwapStatus.REJECTED
    assert outcome.final
    assert outcome.tx_hash is None
    assert "INSUFFICIENT_OUTPUT_AMOUNT" in outcome.reason
    assert again.status == SwapStatus.FILLED
    assert again.nonce == nonce_before  # the rejected one used no nonce: no gap


async def test_a_passed_deadline_reverts_on_chain_with_the_routers_reason(dex: LocalDex) -> None:
    request = await sell_eth_request(dex, ONE_ETH, 0.01)
    venue, chain = venue_and_chain(local_settings(dex), "uniswap_v2")
    past = DexGateway(
        "uniswap_v2",
        venue,
        chain,
        dex.accounts.executor_account(),
        source=dex.source(),
        options=ExecutionOptions(receipt_timeout_s=5.0, poll_s=0.01, simulate=False),
        now_s=lambda: time.time() - 3600,  # the deadline is an hour ago when the block is mined
    )
    async with past as gw:
        outcome = await gw.swap(request)

    assert outcome.status == SwapStatus.REVERTED
    assert outcome.final
    assert "UniswapV2Router: EXPIRED" in outcome.reason


async def test_a_swap_not_included_stays_pending_until_resolved_and_a_cancel_drops_it(dex: LocalDex) -> None:
    request = await sell_eth_request(dex, ONE_ETH, 0.01)
    nonce_before = await pending_nonce(dex)
    async with gateway(dex) as gw:
        await dex.node.set_automine(False)
        try:
            pending = await gw.wait(await gw.send_swap(request), 0.2)  # no block is mined: no receipt
            still = await gw.resolve(pending)
            cancel = await gw.cancel(pending)  # same nonce, higher fees: replaces it in the mempool
            await dex.node.mine()
        finally:
            await dex.node.set_automine(True)
        cancelled = await gw.wait(cancel, 5.0)
        dropped = await gw.resolve(pending)
        next_nonce = await gw.nonces.take(gw.w3)

    assert pending.status == SwapStatus.PENDING
    assert not pending.final
    assert not pending.hedgeable  # E18: no CEX hedge until the receipt is final
    assert still.status == SwapStatus.PENDING
    assert cancel.nonce == pending.nonce == nonce_before
    assert cancelled.status == SwapStatus.FILLED  # the 0-value self-transfer was mined
    assert dropped.status == SwapStatus.DROPPED
    assert dropped.final
    assert not dropped.hedgeable
    assert await pending_nonce(dex) == nonce_before + 1 == next_nonce  # one nonce used, no gap, none reused


async def test_a_pending_swap_mined_later_resolves_to_filled(dex: LocalDex) -> None:
    request = await sell_eth_request(dex, ONE_ETH, 0.01)
    async with gateway(dex) as gw:
        await dex.node.set_automine(False)
        try:
            pending = await gw.wait(await gw.send_swap(request), 0.1)
            await dex.node.mine()
        finally:
            await dex.node.set_automine(True)
        resolved = await gw.resolve(pending)

    assert pending.status == SwapStatus.PENDING
    assert resolved.status == SwapStatus.FILLED
    assert resolved.hedgeable
    assert resolved.amount_out == request.expected_out


async def test_two_venues_of_one_account_share_one_nonce_sequence(dex: LocalDex) -> None:
    settings = local_settings(dex)
    venues = [(v, settings.venues[v]) for v in ("uniswap_v2", "sushiswap")]
    requests = [await sell_eth_request(dex, ONE_ETH // 10, 0.01, v) for v, _ in venues]
    nonce_before = await pending_nonce(dex)
    opts = ExecutionOptions(receipt_timeout_s=5.0, poll_s=0.01)
    account = dex.accounts.executor_account()
    async with gateways(venues, settings.chains["ethereum"], account, source=dex.source(), options=opts) as gws:
        first = await gws["uniswap_v2"].swap(requests[0])
        second = await gws["sushiswap"].swap(requests[1])

    outcomes: list[SwapOutcome] = [first, second]
    assert [o.status for o in outcomes] == [SwapStatus.FILLED, SwapStatus.FILLED]
    assert [o.nonce for o in outcomes] == [nonce_before, nonce_before + 1]
