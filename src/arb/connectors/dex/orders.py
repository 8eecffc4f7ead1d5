"""The executor's gateway to a DEX venue: `VenueGateway` on top of `arb.connectors.dex.execution.DexGateway`.

Why an adapter and not the connector itself: the executor speaks orders (base amount, limit price, client id), a
router speaks swaps (token units in, minimum out, deadline, nonce). This maps one onto the other and back:

* markets: one per symbol with a pool on the venue's factory (`resolve_pools`, which also checks each token's
  decimals on chain); amount step = one unit of the base token, price tick = one unit of the quote token, no taker
  fee (the pool's LP fee is inside the executable price, as the DEX quotes in the grid carry it);
* a SELL of `amount` base at limit `price` is an exact-input swap of `amount` base with
  `amountOutMin = floor(amount × price)` quote; a BUY is an exact-output swap of `amount` base with
  `amountInMax = ceil(amount × price)` quote (so both legs of a pair trade exactly the planned base amount);
  `deadline = now + deadline_s`; the router is approved for the input token first when its allowance is short;
* outcomes (FAULTS E18: no CEX hedge until the DEX receipt is final):

  - FILLED and final -> FILLED, with one fill (trade id = tx hash) for the amounts of the receipt's Transfer logs,
    its fee the gas paid, in the chain's native currency;
  - PENDING (no receipt yet, or a receipt short of its confirmations) -> `create_order` raises `RequestTimedOut`
    (the executor records UNKNOWN and looks it up), `fetch_order` reports ACKED (open, nothing filled): never
    FILLED, never failed, so neither the executor nor the hedger acts on a leg whose fate is open;
  - REVERTED -> `create_order` raises `OrderRejected` with the router's reason and the tx hash (the ledger's detail);
    a later lookup reports REJECTED (nothing filled);
  - REJECTED (simulation reverted, the node refused it: nothing was mined) -> `OrderRejected`;
  - DROPPED (its nonce went to our replacement) -> CANCELLED;
* `cancel_order` replaces a pending swap with a 0-value self-transfer on the same nonce and higher fees, then waits
  up to the receipt timeout for either to be mined: CANCELLED if the replacement won, FILLED if the swap was mined
  first, ACKED (still open: the executor escalates) if neither was.

The client id -> swap mapping lives in this object only: after a restart a swap that was pending is not found by
client id (the tx hash is in the ledger as the order's venue order id once a report carried it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal
from typing import Any, Final

from eth_account.signers.local import LocalAccount
from web3 import AsyncWeb3

from arb.config.schema import Chain, VenueConfig
from arb.connectors.dex.abi import contract
from arb.connectors.dex.execution import (
    DexGateway,
    ExecutionOptions,
    NonceManager,
    SwapOutcome,
    SwapRequest,
    SwapStatus,
    transferred,
)
from arb.connectors.dex.pools import PoolRef, RpcEndpoint, Web3Source, resolve_pools
from arb.executor.venue import (
    Market,
    OrderNotFound,
    OrderRejected,
    OrderReport,
    RequestTimedOut,
    VenueUnavailable,
)
from arb.model import Fill, Order, OrderStatus, OrderType, Side, TimeInForce

log = logging.getLogger(__name__)

_NATIVE_DECIMALS: Final = 18


class ExactOutRequest(SwapRequest, frozen=True):
    """Buy exactly `expected_out` of `path[-1]`, spending at most `amount_in` of `path[0]` (`max_slippage` 0: the
    limit is already in `amount_in`)."""


class _Router(DexGateway):
    """`DexGateway` that also sends exact-output swaps (`ExactOutRequest`): a BUY of a base amount."""

    def _swap_call(self, request: SwapRequest, amount_out_min: int, deadline: int) -> Any:
        if not isinstance(request, ExactOutRequest):
            return super()._swap_call(request, amount_out_min, deadline)
        path = [self._token(s) for s in request.path]
        router_address = AsyncWeb3.to_checksum_address(self.venue.router or "")
        me = self.account.address
        if self.venue.protocol == "uniswap_v2":
            router = contract(self.w3, router_address, "UniswapV2Router02")
            return router.functions.swapTokensForExactTokens(amount_out_min, request.amount_in, path, me, deadline)
        if len(path) != 2 or request.fee_tier is None:
            raise ValueError("a v3 swap here is single-hop: a path of two tokens and its pool's fee_tier")
        router = contract(self.w3, router_address, "SwapRouter")
        params = (path[0], path[1], request.fee_tier, me, deadline, amount_out_min, request.amount_in, 0)
        return router.functions.exactOutputSingle(params)


@dataclass
class _Tracked:
    order: Order
    pool: PoolRef
    outcome: SwapOutcome


class DexOrderGateway:
    """`async with DexOrderGateway(...) as gw`: a `VenueGateway` for one DEX venue and signing account.

    `symbols`: venue symbol -> instrument for the instruments the venue lists (those without a pool are left out and
    logged). `nonces`: share one `NonceManager` between the venues of one account. `receipt_timeout_s`: how long
    `create_order` / `cancel_order` wait for a final receipt (default: the options' `receipt_timeout_s`)."""

    def __init__(
        self,
        venue_id: str,
        venue: VenueConfig,
        chain: Chain,
        account: LocalAccount,
        symbols: Mapping[str, str],
        *,
        endpoint: RpcEndpoint | None = None,
        source: Web3Source | None = None,
        options: ExecutionOptions | None = None,
        nonces: NonceManager | None = None,
        deadline_s: float = 60.0,
        now_s: Callable[[], float] = time.time,
    ) -> None:
        if deadline_s <= 0:
            raise ValueError(f"deadline_s must be positive, got {deadline_s}")
        self.dex = _Router(
            venue_id, venue, chain, account, endpoint=endpoint, source=source, options=options, nonces=nonces,
            now_s=now_s,
        )  # fmt: skip
        self._venue = venue_id
        self.chain = chain
        self.symbols = dict(symbols)
        self.deadline_s = deadline_s
        self.receipt_timeout_s = self.dex.options.receipt_timeout_s
        self._pools: dict[str, PoolRef] = {}
        self._markets: dict[str, Market] = {}
        self._orders: dict[str, _Tracked] = {}

    @property
    def venue(self) -> str:
        return self._venue

    async def __aenter__(self) -> DexOrderGateway:
        try:
            await self.dex.__aenter__()
            pools, _missing = await resolve_pools(self.dex.w3, self._venue, self.dex.venue, self.chain, self.symbols)
        except (OSError, TimeoutError) as exc:
            await self.dex.__aexit__(None, None, None)
            raise VenueUnavailable(self._venue, f"node unreachable: {exc}") from exc
        except BaseException:
            await self.dex.__aexit__(None, None, None)
            raise
        for pool in pools:
            step = Decimal(1).scaleb(-pool.base.decimals)
            self._pools[pool.symbol] = pool
            self._markets[pool.symbol] = Market(
                symbol=pool.symbol, base=pool.base.symbol, quote=pool.quote.symbol, amount_step=step,
                price_tick=Decimal(1).scaleb(-pool.quote.decimals), min_amount=step, min_notional=None,
                taker_fee=Decimal(0),
            )  # fmt: skip
        log.info("dex_gateway.open venue=%s markets=%d account=%s", self._venue, len(pools), self.dex.account.address)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.dex.__aexit__(None, None, None)

    # -- rules -------------------------------------------------------------------------------------------------------

    def market(self, symbol: str) -> Market:
        market = self._markets.get(symbol)
        if market is None:
            raise KeyError(f"{self._venue} has no pool for {symbol!r}")
        return market

    def amount_to_precision(self, symbol: str, amount: Decimal) -> Decimal:
        step = self.market(symbol).amount_step or Decimal(1)
        return amount.quantize(step, rounding=ROUND_DOWN)

    def price_to_precision(self, symbol: str, price: Decimal) -> Decimal:
        tick = self.market(symbol).price_tick or Decimal(1)
        return price.quantize(tick)

    def check_order(self, order: Order) -> str | None:
        market = self._markets.get(order.symbol)
        if market is None:
            return f"no pool for {order.symbol!r} on {self._venue}"
        if order.type is not OrderType.LIMIT or order.price is None or order.price <= 0:
            return "a swap needs a limit order with a positive price (it sets amountOutMin / amountInMax)"
        if order.time_in_force not in (TimeInForce.IOC, TimeInForce.FOK):
            return f"a swap fills whole or not at all: time in force {order.time_in_force.value} cannot rest"
        if order.amount <= 0:
            return f"amount {order.amount} is not positive"
        if order.amount != self.amount_to_precision(order.symbol, order.amount):
            return f"amount {order.amount} is not a whole number of {market.base} units"
        return None

    # -- orders ------------------------------------------------------------------------------------------------------

    def _request(self, order: Order, pool: PoolRef) -> SwapRequest:
        price = order.price or Decimal(0)
        base_units = int(order.amount.scaleb(pool.base.decimals))
        quote_units = order.amount * price * Decimal(1).scaleb(pool.quote.decimals)
        tier = pool.fee_tier or None
        if order.side is Side.SELL:
            out_min = int(quote_units.to_integral_value(rounding=ROUND_FLOOR))
            if out_min <= 0:
                raise OrderRejected(self._venue, f"{order.amount} at {price} is below one {pool.quote.symbol} unit")
            return SwapRequest(
                path=(pool.base.symbol, pool.quote.symbol), amount_in=base_units, expected_out=out_min,
                max_slippage=0.0, deadline_s=self.deadline_s, fee_tier=tier,
            )  # fmt: skip
        in_max = int(quote_units.to_integral_value(rounding=ROUND_CEILING))
        return ExactOutRequest(
            path=(pool.quote.symbol, pool.base.symbol), amount_in=in_max, expected_out=base_units, max_slippage=0.0,
            deadline_s=self.deadline_s, fee_tier=tier,
        )  # fmt: skip

    async def create_order(self, order: Order) -> OrderReport:
        problem = self.check_order(order)
        if problem is not None:
            raise OrderRejected(self._venue, problem)
        if order.client_id in self._orders:  # never send a swap twice for one client id
            raise OrderRejected(self._venue, f"client id {order.client_id} was already sent")
        pool = self._pools[order.symbol]
        request = self._request(order, pool)
        try:
            approval = await self.dex.ensure_allowance(request.path[0], request.amount_in)
            if approval is not None and not approval.hedgeable:
                raise OrderRejected(self._venue, f"router approval for {request.path[0]} failed: {approval.reason}")
            sent = await self.dex.send_swap(request)
        except (OSError, TimeoutError) as exc:  # nothing signed reached the node (send_swap keeps its own errors)
            raise VenueUnavailable(self._venue, f"node unreachable before sending: {exc}") from exc
        if sent.status == SwapStatus.REJECTED:
            raise OrderRejected(self._venue, sent.reason)
        self._orders[order.client_id] = _Tracked(order, pool, sent)
        log.info("dex_gateway.sent venue=%s client_id=%s tx=%s nonce=%s", self._venue, order.client_id,
                 sent.tx_hash, sent.nonce)  # fmt: skip
        try:
            outcome = await self.dex.wait(sent, self.receipt_timeout_s)
        except (OSError, TimeoutError) as exc:
            raise RequestTimedOut(self._venue, f"swap {sent.tx_hash} sent, receipt unreadable: {exc}") from exc
        self._orders[order.client_id].outcome = outcome
        if outcome.status == SwapStatus.REVERTED and outcome.final:
            raise OrderRejected(
                self._venue, f"reverted on chain (tx {outcome.tx_hash}, block {outcome.block}): {outcome.reason}"
            )
        if not outcome.final:
            raise RequestTimedOut(
                self._venue,
                f"swap {outcome.tx_hash} (nonce {outcome.nonce}) not final after {self.receipt_timeout_s}s",
            )
        return await self._report(order.client_id)

    async def fetch_order(self, symbol: str, client_id: str) -> OrderReport:
        tracked = self._orders.get(client_id)
        if tracked is None or tracked.order.symbol != symbol:
            raise OrderNotFound(self._venue, f"no swap sent for client id {client_id} ({symbol})")
        await self._refresh(tracked)
        return await self._report(client_id)

    async def cancel_order(self, symbol: str, client_id: str) -> OrderReport:
        tracked = self._orders.get(client_id)
        if tracked is None or tracked.order.symbol != symbol:
            raise OrderNotFound(self._venue, f"no swap sent for client id {client_id} ({symbol})")
        await self._refresh(tracked)
        if tracked.outcome.status == SwapStatus.PENDING:
            try:
                replacement = await self.dex.cancel(tracked.outcome)
            except (OSError, TimeoutError) as exc:
                raise RequestTimedOut(self._venue, f"replacement of {tracked.outcome.tx_hash} unsent: {exc}") from exc
            log.warning("dex_gateway.cancel venue=%s client_id=%s tx=%s replacement=%s status=%s", self._venue,
                        client_id, tracked.outcome.tx_hash, replacement.tx_hash, replacement.status)  # fmt: skip
        deadline = time.monotonic() + self.receipt_timeout_s
        while not tracked.outcome.final and time.monotonic() < deadline:
            await self._refresh(tracked)
            if not tracked.outcome.final:
                await asyncio.sleep(self.dex.options.poll_s)
        return await self._report(client_id)

    async def _refresh(self, tracked: _Tracked) -> None:
        try:
            tracked.outcome = await self.dex.resolve(tracked.outcome)
        except (OSError, TimeoutError) as exc:
            raise RequestTimedOut(self._venue, f"swap {tracked.outcome.tx_hash}: receipt unreadable: {exc}") from exc

    def outcome(self, client_id: str) -> SwapOutcome | None:
        """The swap behind a client id as last seen (revert reason, gas, block), or None if none was sent."""
        tracked = self._orders.get(client_id)
        return None if tracked is None else tracked.outcome

    async def _report(self, client_id: str) -> OrderReport:
        tracked = self._orders[client_id]
        order, outcome, pool = tracked.order, tracked.outcome, tracked.pool
        report = {"client_id": client_id, "venue_order_id": outcome.tx_hash}
        if not outcome.final:  # pending, or mined but short of its confirmations: open, nothing filled (E18)
            return OrderReport(status=OrderStatus.ACKED, filled=Decimal(0), **report)  # type: ignore[arg-type]
        if outcome.status == SwapStatus.DROPPED:
            return OrderReport(status=OrderStatus.CANCELLED, filled=Decimal(0), **report)  # type: ignore[arg-type]
        if outcome.status != SwapStatus.FILLED:
            log.warning("dex_gateway.not_filled venue=%s client_id=%s status=%s reason=%r", self._venue, client_id,
                        outcome.status, outcome.reason)  # fmt: skip
            return OrderReport(status=OrderStatus.REJECTED, filled=Decimal(0), **report)  # type: ignore[arg-type]
        fill = await self._fill(order, pool, outcome)
        return OrderReport(
            status=OrderStatus.FILLED, filled=fill.amount, average_price=fill.price, fills=(fill,),
            **report,  # type: ignore[arg-type]
        )  # fmt: skip

    async def _fill(self, order: Order, pool: PoolRef, outcome: SwapOutcome) -> Fill:
        """The fill as the receipt says: base and quote amounts from its Transfer logs to and from us."""
        base_scale, quote_scale = Decimal(1).scaleb(-pool.base.decimals), Decimal(1).scaleb(-pool.quote.decimals)
        if order.side is Side.SELL:
            base = Decimal(outcome.amount_in) * base_scale
            quote = Decimal(outcome.amount_out) * quote_scale
        else:
            base = Decimal(outcome.amount_out) * base_scale
            quote = Decimal(await self._spent(outcome.tx_hash or "", pool.quote.address)) * quote_scale
        fee = Decimal(outcome.fee_wei).scaleb(-_NATIVE_DECIMALS)
        return Fill(
            trade_id=outcome.tx_hash or "", client_id=order.client_id, venue=self._venue, symbol=order.symbol,
            side=order.side, price=quote / base, amount=base, fee=fee, fee_currency=self.chain.native,
            ts=time.time_ns(),
        )  # fmt: skip

    async def _spent(self, tx_hash: str, token: str) -> int:
        """`token` units transferred from our account in the receipt of `tx_hash` (what an exact-output swap paid)."""
        receipt = await self.dex.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        return transferred(receipt, token, self.dex.account.address, incoming=False)

    # -- balances ----------------------------------------------------------------------------------------------------

    async def fetch_balances(self) -> dict[str, Decimal]:
        """The account's balance of every token of the venue's pools (ERC-20 `balanceOf`) and of the chain's native
        currency (it pays the gas, which the fills book as their fee)."""
        me = self.dex.account.address
        w3 = self.dex.w3
        tokens = {t.symbol: t for p in self._pools.values() for t in (p.base, p.quote)}
        try:
            out = {self.chain.native: Decimal(await w3.eth.get_balance(me)).scaleb(-_NATIVE_DECIMALS)}
            for symbol, token in sorted(tokens.items()):
                raw = await contract(w3, token.address, "ERC20").functions.balanceOf(me).call()
                out[symbol] = Decimal(int(raw)).scaleb(-token.decimals)
        except (OSError, TimeoutError) as exc:
            raise VenueUnavailable(self._venue, f"balances unreadable: {exc}") from exc
        return out
