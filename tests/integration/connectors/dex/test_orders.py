"""A CEX + DEX pair through the real `Executor` (FAULTS E18, executor side): the CEX leg on a local Binance-format
venue (`SimVenue`, real ccxt REST gateway), the DEX leg on anvil with the official Uniswap v2 bytecode through
`DexOrderGateway`, a real SQLite ledger, the risk engine and the hedger.

The pool's price is moved ~2 % above the CEX so the pair is: buy ETH/USDT on binance, sell WETH/USDC on uniswap_v2.
The DEX leg's expected output is the router's own `getAmountsOut` read just before executing (tokens have 18
decimals on the local chain)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import pytest
import pytest_asyncio
from sqlalchemy import select

from arb.config import Settings
from arb.connectors.ccxt_pro import LocalEndpoint
from arb.connectors.dex.execution import KEY_ENV, ExecutionOptions
from arb.connectors.dex.orders import DexOrderGateway
from arb.connectors.orders import CcxtGateway
from arb.executor.engine import Executor, Outcome
from arb.executor.venue import Top
from arb.hedging.hedger import Hedger
from arb.ledger import Ledger, open_ledger
from arb.ledger.schema import INTENTS, ORDER_EVENTS, ORDERS
from arb.model import IntentStatus, Opportunity, OrderStatus
from arb.risk import RiskContext, RiskEngine
from arb.risk.ledger import LedgerEventSink, LedgerStateStore
from arb.sim.chain.local import LocalDex, local_dex
from arb.sim.market import InstrumentSpec, Market, MarketConfig
from arb.sim.server import SimVenue
from arb.sim.venues.binance import BinanceProtocol
from arb.trading import dex_gateway
from tests.integration.connectors.dex.support import needs_anvil, token_balance, v2_router_amounts, venue_symbols
from tests.integration.executor.support import VenueBooks, local_credentials, make_settings

pytestmark = [needs_anvil, pytest.mark.asyncio(loop_scope="module")]

CEX, DEX = "binance", "uniswap_v2"
INSTRUMENT: Final = "ETH/USD"
AMOUNT: Final = Decimal("0.05")
DEX_PRICE: Final = Decimal(3060)
"""The pool's mid is moved here: ~2 % above the CEX's 3000, well past both fees."""
ONE: Final = 10**18
_ids = itertools.count(1)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def dex() -> AsyncIterator[LocalDex]:
    async with local_dex() as chain:
        yield chain


class Prices:
    """`PriceView`: the CEX's own book, the DEX's executable price at `AMOUNT` as last read from the router."""

    def __init__(self, books: VenueBooks) -> None:
        self.books = books
        self.dex_top: Top | None = None

    def top(self, instrument: str, venue: str) -> Top | None:
        if venue == DEX:
            return self.dex_top if instrument == INSTRUMENT else None
        return self.books.top(instrument, venue)


@dataclass
class Pair:
    settings: Settings
    dex: LocalDex
    market: Market
    ledger: Ledger
    store: Any
    cex: CcxtGateway
    gw: DexOrderGateway
    prices: Prices
    executor: Executor

    async def dex_bid(self) -> tuple[float, int]:
        """The pool's executable sell price for `AMOUNT` (USDC per WETH) and the router's output in units."""
        out = (await v2_router_amounts(self.dex, DEX, ["WETH", "USDC"], int(AMOUNT * ONE), out=True))[-1]
        price = out / float(AMOUNT * ONE)
        self.prices.dex_top = Top(price, price * 1.001, 0.0)
        return price, out

    async def opportunity(self) -> Opportunity:
        bid, _ = await self.dex_bid()
        book = self.market.book(CEX, INSTRUMENT)
        _, _, ask, _ = book.top()
        gross = (bid - ask) / ask
        fee = self.settings.venues[CEX].fees.taker
        size = float(AMOUNT)
        return Opportunity(
            id=f"opp-dex-{next(_ids)}", instrument=INSTRUMENT, buy_venue=CEX, sell_venue=DEX, quote_currency="USD",
            size=size, notional=size * ask, best_ask_buy=ask, best_bid_sell=bid, vwap_buy=ask, vwap_sell=bid,
            gross_spread=gross, fee_buy=fee, fee_sell=0.0, gas=0.0, haircut=0.0, slippage=0.0,
            net_edge=gross - fee, profit=(gross - fee) * size * ask, expected_profit=(gross - fee) * size * ask,
            liquidity_score=1.0, execution_time_s=12.0, risk_factor=1.0, priority=1.0, buy_quote_age_ms=0.0,
            sell_quote_age_ms=0.0, ts=self.prices.books.now_ns(),
        )  # fmt: skip

    async def orders(self, execution_id: str) -> list[Any]:
        async with self.ledger.engine.connect() as conn:
            rows = await conn.execute(select(ORDERS).where(ORDERS.c.intent_id == execution_id))
            return list(rows.mappings().all())

    async def details(self, client_id: str) -> list[str]:
        async with self.ledger.engine.connect() as conn:
            rows = await conn.execute(select(ORDER_EVENTS.c.detail).where(ORDER_EVENTS.c.client_id == client_id))
            return [r.detail for r in rows]

    async def intent(self, execution_id: str) -> IntentStatus:
        async with self.ledger.engine.connect() as conn:
            row = (await conn.execute(select(INTENTS.c.status).where(INTENTS.c.id == execution_id))).one()
        return IntentStatus(row.status)

    async def node_pending_nonce(self) -> int:
        me = self.gw.dex.account.address
        return int(await self.dex.trader.w3.eth.get_transaction_count(me, "pending"))


@contextlib.asynccontextmanager
async def pair_stack(dex: LocalDex, tmp_path: Path, *, receipt_timeout_s: float = 5.0) -> AsyncIterator[Pair]:
    settings = dex.apply(make_settings(executor={"single_leg_policy": "reverse"}))
    market = Market([InstrumentSpec.derive(INSTRUMENT, base="ETH", asset_class="crypto_major", price=3000.0)],
                    MarketConfig(seed=7))  # fmt: skip
    await dex.trader.move_price(DEX, "WETH/USDC", DEX_PRICE)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(market.close)
        venue = await stack.enter_async_context(SimVenue(CEX, BinanceProtocol(), market, {INSTRUMENT: "ETH/USDT"}))
        ledger = await stack.enter_async_context(open_ledger(f"sqlite+aiosqlite:///{tmp_path}/ledger.db"))
        store = ledger.execution()
        cex = await stack.enter_async_context(
            CcxtGateway(CEX, settings.venues[CEX], local_credentials(CEX),
                        endpoint=LocalEndpoint(venue.http_url, venue.ws_url),
                        timeout_s=settings.thresholds.execution_timeout_s, ccxt_id=CEX)
        )  # fmt: skip
        options = ExecutionOptions(receipt_timeout_s=receipt_timeout_s, poll_s=0.02)
        gw = await stack.enter_async_context(
            DexOrderGateway(DEX, settings.venues[DEX], settings.chains["ethereum"], dex.accounts.executor_account(),
                            venue_symbols(settings, DEX), source=dex.source(), options=options)
        )  # fmt: skip
        risk = await stack.enter_async_context(
            RiskEngine(settings.risk, LedgerStateStore(store), LedgerEventSink(store))
        )
        context = RiskContext(
            venue_state={CEX: "connected", DEX: "connected"}, realized_pnl_today_usd=Decimal(0),
            equity_usd=Decimal(1_000_000), peak_equity_usd=Decimal(1_000_000),
        )  # fmt: skip
        prices = Prices(VenueBooks(market))
        gateways = {CEX: cex, DEX: gw}
        hedger = Hedger(settings, gateways=gateways, prices=prices, risk=risk, context=context)
        executor = Executor(
            settings, gateways=gateways, store=store, risk=risk, context=context, prices=prices, hedger=hedger
        )
        await executor.start()
        yield Pair(settings, dex, market, ledger, store, cex, gw, prices, executor)


async def until(predicate: Any, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not await predicate():  # noqa: ASYNC110 -- polling the node's mempool: there is no event to wait on
            await asyncio.sleep(0.02)


async def test_a_cex_dex_pair_lands_the_swap_and_books_the_on_chain_output(dex: LocalDex, tmp_path: Path) -> None:
    me = dex.accounts.executor_account().address
    async with pair_stack(dex, tmp_path) as p:
        weth0, usdc0 = await token_balance(dex, "WETH", me), await token_balance(dex, "USDC", me)
        opp = await p.opportunity()
        _, expected_out = await p.dex_bid()
        outcome: Outcome = await p.executor.execute(opp)
        orders = {row["venue"]: row for row in await p.orders(outcome.execution_id)}
        dex_fills = await p.store.fills(orders[DEX]["client_id"])
        weth1, usdc1 = await token_balance(dex, "WETH", me), await token_balance(dex, "USDC", me)
        nonce_ok = await p.node_pending_nonce() == p.gw.dex.nonces.next

    assert outcome.status == IntentStatus.DONE.value, outcome
    assert (outcome.bought, outcome.sold) == (AMOUNT, AMOUNT)
    assert OrderStatus(orders[DEX]["status"]) is OrderStatus.FILLED
    assert orders[DEX]["filled"] == AMOUNT
    assert [(f.amount, f.price * f.amount) for f in dex_fills] == [(AMOUNT, Decimal(expected_out) / ONE)]
    assert dex_fills[0].trade_id == orders[DEX]["venue_order_id"]  # the tx hash
    assert dex_fills[0].fee > 0
    assert dex_fills[0].fee_currency == "ETH"
    assert weth0 - weth1 == int(AMOUNT * ONE)
    assert usdc1 - usdc0 == expected_out  # exactly the router's quote: nobody traded in between
    assert nonce_ok


async def test_a_price_move_past_the_cap_reverts_and_only_the_filled_cex_leg_is_unwound(
    dex: LocalDex, tmp_path: Path
) -> None:
    async with pair_stack(dex, tmp_path) as p:
        opp = await p.opportunity()
        before = await p.node_pending_nonce()
        await dex.node.set_automine(False)
        try:
            task = asyncio.ensure_future(p.executor.execute(opp))
            await until(lambda: _nonce_above(p, before))  # our swap is in the mempool, simulated before the dump
            await dex.trader.swap(DEX, "WETH", "USDC", 40 * ONE, wait=False, tip_wei=50 * 10**9)  # mined first
            await dex.node.mine()
        finally:
            await dex.node.set_automine(True)
        outcome: Outcome = await task
        orders = await p.orders(outcome.execution_id)
        dex_orders = [o for o in orders if o["venue"] == DEX]
        details = await p.details(dex_orders[0]["client_id"])
        cex_orders = [o for o in orders if o["venue"] == CEX]
        nonce_after = await p.node_pending_nonce()
        nonce_ok = nonce_after == p.gw.dex.nonces.next

    assert outcome.status == IntentStatus.HEDGED.value, outcome
    assert (outcome.bought, outcome.sold) == (AMOUNT, Decimal(0))
    assert len(dex_orders) == 1  # the hedger sent nothing to the DEX: the leg that never filled is not hedged
    assert OrderStatus(dex_orders[0]["status"]) is OrderStatus.REJECTED
    assert dex_orders[0]["filled"] == 0
    assert any("UniswapV2Router: INSUFFICIENT_OUTPUT_AMOUNT" in d for d in details), details
    bought = sum(o["filled"] for o in cex_orders if o["side"] == "buy")
    sold = sum(o["filled"] for o in cex_orders if o["side"] == "sell")
    assert bought == sold == AMOUNT  # the CEX buy was unwound on its own venue, for exactly what filled
    assert nonce_after == before + 1  # the reverted swap used its nonce; nothing else was sent
    assert nonce_ok


async def test_a_swap_not_yet_mined_holds_the_pair_open_until_its_receipt_then_fills(
    dex: LocalDex, tmp_path: Path
) -> None:
    async with pair_stack(dex, tmp_path, receipt_timeout_s=20.0) as p:
        opp = await p.opportunity()
        _, expected_out = await p.dex_bid()
        before = await p.node_pending_nonce()
        await dex.node.set_automine(False)
        try:
            task = asyncio.ensure_future(p.executor.execute(opp))
            await until(lambda: _nonce_above(p, before))
            await asyncio.sleep(0.5)  # the CEX leg has long filled; the DEX one waits for a block
            orders = await p.orders(_execution_id(opp))
            while_pending = {o["venue"]: OrderStatus(o["status"]) for o in orders}
            intent_pending = await p.intent(_execution_id(opp))
            done_early = task.done()
            await dex.node.mine()
        finally:
            await dex.node.set_automine(True)
        outcome: Outcome = await task
        orders = {row["venue"]: row for row in await p.orders(outcome.execution_id)}
        fills = await p.store.fills(orders[DEX]["client_id"])
        nonce_ok = await p.node_pending_nonce() == p.gw.dex.nonces.next == before + 1

    assert while_pending == {CEX: OrderStatus.FILLED, DEX: OrderStatus.SENT}  # not filled, not failed
    assert intent_pending is IntentStatus.SENDING  # no hedge while the receipt is not final
    assert not done_early
    assert outcome.status == IntentStatus.DONE.value, outcome
    assert OrderStatus(orders[DEX]["status"]) is OrderStatus.FILLED
    assert [f.price * f.amount for f in fills] == [Decimal(expected_out) / ONE]
    assert len(orders) == 2  # no hedge order at any point
    assert nonce_ok


async def _nonce_above(p: Pair, before: int) -> bool:
    return await p.node_pending_nonce() > before


def _execution_id(opp: Opportunity) -> str:
    from arb.executor.ids import execution_id

    return execution_id(opp.id)


async def test_trading_gives_a_dex_venue_a_gateway_only_on_the_chain_and_key_it_may_sign_for(
    dex: LocalDex, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = dex.apply(make_settings())
    local = {"local": True, "dex_key": dex.accounts.executor}
    nonces: dict[str, Any] = {}
    monkeypatch.delenv(KEY_ENV, raising=False)

    uni = dex_gateway(DEX, settings, local, live=False, nonces=nonces)
    sushi = dex_gateway("sushiswap", settings, local, live=False, nonces=nonces)
    assert uni is not None
    assert sushi is not None
    async with uni as gw:
        markets = {s: gw.market(s) for s in ("WETH/USDC", "WBTC/USDC")}
        balances = await gw.fetch_balances()
    assert uni.dex.account.address == dex.accounts.executor_account().address
    assert uni.dex.nonces is sushi.dex.nonces  # one account, one nonce sequence
    assert markets["WETH/USDC"].amount_step == Decimal("1e-18")  # the token's 18 decimals
    assert (markets["WETH/USDC"].base, markets["WETH/USDC"].quote) == ("WETH", "USDC")
    assert balances["WETH"] > 0
    assert balances["ETH"] > 0
    assert dex_gateway(DEX, settings, {"local": True}, live=False, nonces={}) is None  # no key anywhere
    assert dex_gateway(DEX, settings, {}, live=False, nonces={}) is None  # a real chain is never paper-traded
    assert dex_gateway(DEX, settings, {}, live=True, nonces={}) is None  # live, but no ARB_DEX_PRIVATE_KEY
    with pytest.raises(ValueError, match="never traded live"):
        dex_gateway(DEX, settings, local, live=True, nonces={})
    monkeypatch.setenv(KEY_ENV, dex.accounts.trader)
    from_env = dex_gateway(DEX, settings, {"local": True}, live=False, nonces={})
    assert from_env is not None
    assert from_env.dex.account.address == dex.trader.tx.address
