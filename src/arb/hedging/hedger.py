"""Closing what a pair leaves unequal: unwind on the leg's own venue or hedge on another, bounded in time and price.

A residual is the base amount one leg filled beyond the other (a rejected leg, unequal partial fills, a leg that timed
out and was never placed). Within `executor.hedge_ttl_s` and `executor.hedge_attempts`, each attempt:

1. picks a venue by `executor.single_leg_policy`: `reverse` (the excess leg's own venue, undoing it), `hedge` (the
   best other venue, completing the pair there) or `cheapest` (whichever gives the best price after its taker fee by
   the current grid), among venues with a fresh quote and the funds for it;
2. sends an IOC limit order at the venue's best price moved by the slippage cap, but never worse than
   `hedge_price_move_limit` from the filled leg's average price (a market that ran away is not chased);
3. passes it through the risk engine as a HEDGE / UNWIND (allowed also when trading is HALTED or REDUCING), writes it
   to the ledger under the same execution before it is sent, and follows it to a final state like any leg.

What is still open after that is escalated: the kill switch is engaged (HALTED, actor `hedger`) with the residual in
the reason, and the execution stays ESCALATED for a person and for restart reconciliation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Final, Protocol

import msgspec

from arb.executor.ids import client_id
from arb.executor.venue import PriceView, VenueGateway
from arb.model import Order, OrderStatus, OrderType, Side, TimeInForce
from arb.risk.checks import Denied, OrderIntent, OrderRequest, RiskContext, TradingState

if TYPE_CHECKING:
    from arb.config import Settings
    from arb.ledger.execution import ExecutionStore
    from arb.risk.engine import RiskEngine

log = logging.getLogger(__name__)

ZERO: Final = Decimal(0)
FIRST_HEDGE_LEG: Final = 2
"""Order numbers 0 and 1 are the planned legs; hedge orders follow."""


class Residual(msgspec.Struct, frozen=True, kw_only=True):
    """`amount` of base to trade on `side` to flatten execution `execution_id` (`origin_venue`: where the excess
    leg filled, at `reference_price` on average)."""

    execution_id: str
    instrument: str
    amount: Decimal
    side: Side
    origin_venue: str
    reference_price: Decimal


class HedgeResult(msgspec.Struct, frozen=True, kw_only=True):
    closed: bool
    remaining: Decimal
    client_ids: tuple[str, ...] = ()
    summary: str = ""


class OrderRunner(Protocol):
    """What the hedger needs of the executor: send one order and follow it to its end (ledger included)."""

    store: ExecutionStore

    def clock(self) -> int: ...

    def mark_exposure(self, instrument: str) -> None:
        """Re-value the risk context's exposure of the instrument's base at the current price."""

    async def run_order(self, order: Order, gateway: VenueGateway, ex_id: str) -> Order: ...


class Hedger:
    def __init__(
        self,
        settings: Settings,
        *,
        gateways: Mapping[str, VenueGateway],
        prices: PriceView,
        risk: RiskEngine,
        context: RiskContext,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """`sleep` / `monotonic`: the clock the attempts' deadline and retry pauses run on (the backtest replayer hands
        its simulated one; live uses the real)."""
        self.settings = settings
        self.gateways = dict(gateways)
        self.prices = prices
        self.risk = risk
        self.context = context
        cfg = settings.executor
        self.policy = cfg.single_leg_policy
        self.move_limit = Decimal(repr(cfg.hedge_price_move_limit))
        self.ttl_s = cfg.hedge_ttl_s
        self.attempts = cfg.hedge_attempts
        self.retry_s = cfg.resolve_interval_s
        self.slippage = Decimal(repr(settings.thresholds.max_slippage))
        self.escalations = 0
        self._sleep = sleep
        self._monotonic = monotonic

    async def close(self, residual: Residual, runner: OrderRunner, *, first_leg: int | None = None) -> HedgeResult:
        """Trade `residual` flat (see the module docstring); never raises for a venue's refusal, escalates instead."""
        deadline = self._monotonic() + self.ttl_s
        remaining = residual.amount
        sent: list[str] = []
        notes: list[str] = []
        leg = first_leg if first_leg is not None else await self._next_leg(runner, residual.execution_id)
        # Venues that refused a hedge order outright (a reject, a 429, an auth error: nothing filled): the next
        # attempts go elsewhere while another venue can take the order, instead of asking again one that said no.
        refused: set[str] = set()
        for attempt in range(self.attempts):
            if remaining <= 0 or self._monotonic() >= deadline:
                break
            choice = self._choose(residual, remaining, avoid=refused)
            if isinstance(choice, str):
                notes.append(choice)
                await self._sleep(self.retry_s)
                continue
            venue, symbol, order = choice
            if order.amount <= 0:
                notes.append(f"{remaining} is below one amount step on {venue}")
                remaining = ZERO  # dust: nothing any venue can trade; reported, not chased
                break
            now = runner.clock()
            order = msgspec.structs.replace(
                order, client_id=client_id(residual.execution_id, leg), ts_created=now, ts_updated=now
            )
            leg += 1
            runner.mark_exposure(residual.instrument)
            verdict = self.risk.check(self._request(residual, venue, symbol, order), self.context)
            if isinstance(verdict, Denied):
                notes.append(f"risk denied on {venue}: {verdict.reason.value}")
                await self._sleep(self.retry_s)
                continue
            await runner.store.add_orders(residual.execution_id, [order], legs=[leg - 1])
            sent.append(order.client_id)
            final = await runner.run_order(order, self.gateways[venue], residual.execution_id)
            remaining -= final.filled
            if final.status is OrderStatus.REJECTED and final.filled == 0:
                refused.add(venue)
            notes.append(f"attempt {attempt + 1} on {venue}: {final.status.value} {final.filled}/{order.amount}")
            log.info("hedger.attempt execution=%s venue=%s status=%s filled=%s remaining=%s",
                     residual.execution_id, venue, final.status.value, final.filled, remaining)  # fmt: skip
        if remaining <= 0:
            return HedgeResult(closed=True, remaining=ZERO, client_ids=tuple(sent), summary="; ".join(notes))
        self.escalations += 1
        reason = (
            f"execution {residual.execution_id}: residual {remaining} {residual.instrument} "
            f"({residual.side.value}) not closed after {len(sent)} hedge orders: {'; '.join(notes[-3:])}"
        )
        log.error("hedger.escalated %s", reason)
        await self.risk.set_state(TradingState.HALTED, reason=reason[:500], actor="hedger")
        return HedgeResult(closed=False, remaining=remaining, client_ids=tuple(sent), summary="; ".join(notes))

    async def _next_leg(self, runner: OrderRunner, ex_id: str) -> int:
        orders = await runner.store.orders_of(ex_id)
        return max([FIRST_HEDGE_LEG - 1, *(o.leg for o in orders)]) + 1

    def _choose(
        self, residual: Residual, remaining: Decimal, avoid: frozenset[str] | set[str] = frozenset()
    ) -> tuple[str, str, Order] | str:
        """The venue, symbol and order of the next attempt (or why there is none): venues in `avoid` only when no
        other venue qualifies."""
        if avoid:
            elsewhere = self._choose_among(residual, remaining, avoid)
            if not isinstance(elsewhere, str):
                return elsewhere
        return self._choose_among(residual, remaining, frozenset())

    def _choose_among(
        self, residual: Residual, remaining: Decimal, avoid: frozenset[str] | set[str]
    ) -> tuple[str, str, Order] | str:
        inst = self.settings.instruments.get(residual.instrument)
        if inst is None:
            return f"unknown instrument {residual.instrument}"
        best: tuple[Decimal, str, str, Decimal] | None = None
        selling = residual.side is Side.SELL
        for venue, symbol in inst.venues.items():
            gateway = self.gateways.get(venue)
            if gateway is None or venue in avoid:
                continue
            if self.policy == "reverse" and venue != residual.origin_venue:
                continue
            if self.policy == "hedge" and venue == residual.origin_venue:
                continue
            top = self.prices.top(residual.instrument, venue)
            if top is None or top.age_ms > self.settings.risk.max_quote_age_ms:
                continue
            try:
                market = gateway.market(symbol)
            except KeyError:
                continue
            funds = self.context.free(venue, market.base if selling else market.quote)
            need = remaining if selling else remaining * Decimal(repr(top.ask))
            if funds < need:
                continue
            px = Decimal(repr(top.bid if selling else top.ask))
            fee = market.taker_fee
            value = px * (1 - fee) if selling else -px * (1 + fee)  # higher is better either way
            if best is None or value > best[0]:
                best = (value, venue, symbol, px)
        if best is None:
            return f"no venue with a fresh quote and funds for {remaining} ({self.policy})"
        _, venue, symbol, px = best
        gateway = self.gateways[venue]
        ref = residual.reference_price or px
        if selling:
            limit = max(px * (1 - self.slippage), ref * (1 - self.move_limit))
        else:
            limit = min(px * (1 + self.slippage), ref * (1 + self.move_limit))
        limit = gateway.price_to_precision(symbol, limit)
        amount = gateway.amount_to_precision(symbol, remaining)
        order = Order(client_id="", venue=venue, symbol=symbol, side=residual.side, type=OrderType.LIMIT,
                      amount=amount, price=limit, time_in_force=TimeInForce.IOC)  # fmt: skip
        return venue, symbol, order

    def _request(self, residual: Residual, venue: str, symbol: str, order: Order) -> OrderRequest:
        market = self.gateways[venue].market(symbol)
        inst = self.settings.instruments[residual.instrument]
        usd = Decimal(repr(self.settings.scanner.usd_per_quote[inst.quote]))
        top = self.prices.top(residual.instrument, venue)
        return OrderRequest(
            venue=venue, instrument=residual.instrument, symbol=symbol, base=market.base, quote=market.quote,
            side=order.side, amount=order.amount, price=order.price or ZERO,
            notional_usd=float(order.amount * (order.price or ZERO) * usd),
            intent=OrderIntent.UNWIND if venue == residual.origin_venue else OrderIntent.HEDGE,
            quote_age_ms=None if top is None else top.age_ms, execution_id=residual.execution_id,
            client_id=order.client_id,
        )  # fmt: skip
