"""The executor: an Opportunity becomes two orders on two venues, with the ledger written first and risk in between.

Order of things for one execution (each step can end it before anything is sent; then it is `aborted`):

1. cool-down: a venue pair whose last execution ended unequal is left alone for `executor.pair_cooldown_s` (E1);
2. re-check against the current grid (`recheck`, built on the scanner): stale or no longer above the threshold
   aborts (E15);
3. size: the opportunity's size, capped by the risk engine's per-order notional and by the free balances (quote on
   the buy venue, base on the sell venue), rounded down to both venues' amount steps; marketable limit prices are the
   quoted best prices moved by the slippage cap, rounded to the tick; every order is checked against its venue's
   rules (E14);
4. risk: each order passes `RiskEngine.check`; the funds an approval names are reserved at once (no await between);
5. write-ahead: the intent and its orders (status NEW) are written to the ledger in one transaction; if that fails,
   nothing is sent (E9), and a second execution of the same opportunity is refused by the ledger (E4);
6. both legs are sent concurrently, each bounded by its gateway's timeout. A leg whose request timed out is UNKNOWN
   and is looked up by client id until found or `resolve_window_s` passes (E2, E3), never sent again; an order that
   is still open afterwards is cancelled (IOC orders should not be); every state change and fill goes to the ledger;
7. equal fills: DONE with the realized PnL; nothing filled: FAILED; unequal: HEDGING, and the hedger closes the
   residual (HEDGED) or escalates to the kill switch (ESCALATED).

Money is Decimal from sizing on; the only floats are the scanner's estimates it starts from and USD valuations for the
risk limits. Latency: `Outcome.send_latency_us` is from `execute()` being called to both orders handed to their
gateways (ledger write-ahead included, venue time excluded): what `bench/execution.py` measures.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Final

import msgspec

from arb.executor.ids import client_id, execution_id
from arb.executor.venue import (
    GatewayError,
    OrderNotFound,
    OrderReport,
    PriceView,
    RequestTimedOut,
    VenueGateway,
)
from arb.ledger.errors import LedgerError
from arb.metrics import (
    EXECUTOR_EXECUTIONS,
    EXECUTOR_LEG_LATENCY_SECONDS,
    EXECUTOR_REALIZED_PNL_USD,
    EXECUTOR_SLIPPAGE_BPS,
)
from arb.model import (
    FINAL_STATUSES,
    ExecutionIntent,
    Fill,
    IntentStatus,
    Leg,
    Opportunity,
    Order,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from arb.risk.checks import Denied, OrderIntent, OrderRequest, RiskContext

if TYPE_CHECKING:
    from arb.config import Settings
    from arb.hedging.hedger import Hedger, Residual
    from arb.ledger.execution import ExecutionStore
    from arb.risk.engine import RiskEngine

log = logging.getLogger(__name__)

ZERO: Final = Decimal(0)


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """What became of one execution. `status`: an IntentStatus value, or `aborted` (nothing was sent, `reason` says
    why: cooldown, stale, edge, size, precision, risk:<code>, ledger, duplicate). PnL in USD: realized from the booked
    fills (None unless the base amounts netted out), predicted = the scanner's net edge x the executed notional."""

    execution_id: str
    opportunity_id: str
    instrument: str
    buy_venue: str
    sell_venue: str
    status: str
    reason: str = ""
    amount: Decimal = ZERO
    bought: Decimal = ZERO
    sold: Decimal = ZERO
    realized_pnl_usd: Decimal | None = None
    predicted_pnl_usd: float = 0.0
    send_latency_us: float | None = None
    predicted_bps: float | None = None
    """The scanner's net edge at the executed size (`predicted_edge`), in bps of the executed notional."""
    realized_bps: float | None = None
    """Realized PnL in bps of the executed notional (USD)."""
    hedge: str = ""
    """What the hedger did, when it was needed (`Hedger` result summary)."""


class _Plan(msgspec.Struct, frozen=True):
    intent: ExecutionIntent
    orders: tuple[Order, Order]
    requests: tuple[OrderRequest, OrderRequest]


class Executor:
    """Runs executions (see the module docstring). One per process; `execute` may run concurrently for different
    opportunities (the risk engine bounds how many)."""

    def __init__(
        self,
        settings: Settings,
        *,
        gateways: Mapping[str, VenueGateway],
        store: ExecutionStore,
        risk: RiskEngine,
        context: RiskContext,
        prices: PriceView,
        hedger: Hedger,
        recheck: Callable[[Opportunity], Opportunity | None] | None = None,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.settings = settings
        self.gateways = dict(gateways)
        self.store = store
        self.risk = risk
        self.context = context
        self.prices = prices
        self.hedger = hedger
        self.recheck = recheck
        self.clock = clock
        self.mode = settings.mode
        cfg = settings.executor
        self.resolve_window_s = cfg.resolve_window_s
        self.resolve_interval_s = cfg.resolve_interval_s
        self.cooldown_ns = int(cfg.pair_cooldown_s * 1e9)
        self.min_edge = settings.thresholds.min_net_spread
        self.slippage = Decimal(repr(settings.thresholds.max_slippage))
        self._cooling: dict[tuple[str, str, str], int] = {}
        missing = sorted({i.quote for i in settings.instruments.values()} - set(settings.scanner.usd_per_quote))
        if missing:
            raise ValueError(f"scanner.usd_per_quote has no value for quote currencies {missing}")
        self.usd_per_currency = usd_per_currency(settings)
        self.base_positions: dict[str, Decimal] = {}
        """Net base bought minus sold over this process's fills, per asset (fees excluded: see `_expose`)."""

    # -- one execution -----------------------------------------------------------------------------------------------

    async def execute(self, opportunity: Opportunity) -> Outcome:
        outcome = await self._execute(opportunity)
        _export_outcome(outcome)
        return outcome

    async def _execute(self, opportunity: Opportunity) -> Outcome:
        started = time.perf_counter()
        ex_id = execution_id(opportunity.id)
        abort = self._aborter(opportunity, ex_id)
        pair = (opportunity.instrument, opportunity.buy_venue, opportunity.sell_venue)
        if self._cooling.get(pair, 0) > self.clock():
            return abort("cooldown")
        fresh = self.recheck(opportunity) if self.recheck is not None else opportunity
        if fresh is None:
            return abort("stale")
        if fresh.net_edge < self.min_edge:
            return abort(f"edge: {fresh.net_edge * 1e4:.1f} bps now, below {self.min_edge * 1e4:.1f}")
        planned = self._plan(fresh, ex_id)
        if isinstance(planned, str):
            return abort(planned)
        reserved = self._approve(planned)
        if isinstance(reserved, str):
            return abort(reserved)
        try:
            await self.store.write_intent(planned.intent, planned.orders)
        except LedgerError as exc:
            self._release(reserved)
            duplicate = type(exc).__name__ == "DuplicateIntent"
            return abort("duplicate" if duplicate else f"ledger: {exc}")
        self.context.executions.add(ex_id)
        try:
            return await self._send_and_settle(planned, fresh, reserved, started)
        finally:
            self.context.executions.discard(ex_id)
            self._release(reserved)

    def _aborter(self, opp: Opportunity, ex_id: str) -> Callable[[str], Outcome]:
        def abort(reason: str) -> Outcome:
            log.info("executor.aborted execution=%s opportunity=%s reason=%r", ex_id, opp.id, reason)
            return Outcome(
                execution_id=ex_id, opportunity_id=opp.id, instrument=opp.instrument, buy_venue=opp.buy_venue,
                sell_venue=opp.sell_venue, status="aborted", reason=reason,
            )  # fmt: skip

        return abort

    def _plan(self, opp: Opportunity, ex_id: str) -> _Plan | str:
        inst = self.settings.instruments.get(opp.instrument)
        if inst is None:
            return f"size: unknown instrument {opp.instrument!r}"
        gw_buy, gw_sell = self.gateways.get(opp.buy_venue), self.gateways.get(opp.sell_venue)
        if gw_buy is None or gw_sell is None:
            return f"size: no gateway for {opp.buy_venue if gw_buy is None else opp.sell_venue}"
        sym_buy, sym_sell = inst.venues.get(opp.buy_venue), inst.venues.get(opp.sell_venue)
        if sym_buy is None or sym_sell is None:
            return f"size: {opp.instrument} is not listed on both venues"
        try:
            m_buy, m_sell = gw_buy.market(sym_buy), gw_sell.market(sym_sell)
        except KeyError as exc:
            return f"size: {exc}"
        usd = Decimal(repr(self.settings.scanner.usd_per_quote[inst.quote]))
        ask, bid = Decimal(repr(opp.best_ask_buy or opp.vwap_buy)), Decimal(repr(opp.best_bid_sell or opp.vwap_sell))
        buy_px = gw_buy.price_to_precision(sym_buy, ask * (1 + self.slippage))
        sell_px = gw_sell.price_to_precision(sym_sell, bid * (1 - self.slippage))
        cap_usd = Decimal(repr(self.settings.risk.max_order_notional_usd))
        amount = min(Decimal(repr(opp.size)), cap_usd / (max(buy_px, sell_px) * usd))  # both legs within the cap
        quote_free = self.context.free(opp.buy_venue, m_buy.quote)
        base_free = self.context.free(opp.sell_venue, m_sell.base)
        amount = min(amount, quote_free / (buy_px * (1 + m_buy.taker_fee)), base_free)
        if amount <= 0:
            return (
                f"size: no funds (free {m_buy.quote} on {opp.buy_venue}: {quote_free}, "
                f"{m_sell.base} on {opp.sell_venue}: {base_free})"
            )
        for _ in range(2):  # the coarser of the two steps wins; twice settles it
            amount = min(gw_buy.amount_to_precision(sym_buy, amount), gw_sell.amount_to_precision(sym_sell, amount))
        if amount <= 0:
            return "size: below one amount step"
        now = self.clock()
        legs = (
            Leg(venue=opp.buy_venue, instrument=opp.instrument, symbol=sym_buy, side=Side.BUY, amount=amount,
                limit_price=buy_px),
            Leg(venue=opp.sell_venue, instrument=opp.instrument, symbol=sym_sell, side=Side.SELL, amount=amount,
                limit_price=sell_px),
        )  # fmt: skip
        orders = tuple(
            Order(client_id=client_id(ex_id, k), venue=leg.venue, symbol=leg.symbol, side=leg.side,
                  type=OrderType.LIMIT, amount=amount, price=leg.limit_price, time_in_force=TimeInForce.IOC,
                  ts_created=now, ts_updated=now)
            for k, leg in enumerate(legs)
        )  # fmt: skip
        for order, gw in zip(orders, (gw_buy, gw_sell), strict=True):
            problem = gw.check_order(order)
            if problem is not None:
                return f"precision: {order.venue} {problem}"
        quote_age = {opp.buy_venue: opp.buy_quote_age_ms, opp.sell_venue: opp.sell_quote_age_ms}
        requests = tuple(
            OrderRequest(venue=o.venue, instrument=opp.instrument, symbol=o.symbol, base=m.base, quote=m.quote,
                         side=o.side, amount=o.amount, price=o.price or ZERO,
                         notional_usd=float(o.amount * (o.price or ZERO) * usd), intent=OrderIntent.OPEN,
                         quote_age_ms=quote_age[o.venue], execution_id=ex_id, client_id=o.client_id)
            for o, m in zip(orders, (m_buy, m_sell), strict=True)
        )  # fmt: skip
        intent = ExecutionIntent(
            id=ex_id, opportunity_id=opp.id, instrument=opp.instrument, mode=self.mode, legs=legs,
            predicted_net_edge_bps=opp.net_edge * 1e4, predicted_profit=float(amount) * opp.vwap_buy * opp.net_edge,
            ts=now,
        )  # fmt: skip
        return _Plan(intent, (orders[0], orders[1]), (requests[0], requests[1]))

    def _approve(self, plan: _Plan) -> list[tuple[str, str, Decimal]] | str:
        reserved: list[tuple[str, str, Decimal]] = []
        for req in plan.requests:
            verdict = self.risk.check(req, self.context)
            if isinstance(verdict, Denied):
                self._release(reserved)
                return f"risk: {verdict.reason.value}: {verdict.detail}"
            if verdict.asset:
                self.context.reserve(req.venue, verdict.asset, verdict.amount)
                reserved.append((req.venue, verdict.asset, verdict.amount))
        now = self.clock()
        for req in plan.requests:
            self.context.record_order(req.venue, now)
        return reserved

    def _release(self, reserved: Sequence[tuple[str, str, Decimal]]) -> None:
        for venue, asset, amount in reserved:
            self.context.reserve(venue, asset, -amount)

    async def _send_and_settle(
        self, plan: _Plan, opp: Opportunity, reserved: list[tuple[str, str, Decimal]], started: float
    ) -> Outcome:
        ex_id = plan.intent.id
        legs = [
            asyncio.ensure_future(self.run_order(order, self.gateways[order.venue], ex_id)) for order in plan.orders
        ]
        send_latency_us = (time.perf_counter() - started) * 1e6
        # Recorded while the legs are in flight: restart reconciliation treats PLANNED and SENDING alike (every order
        # of the intent is looked up by client id), so the write-ahead intent is all that must precede the send.
        try:
            await self.store.set_intent_status(ex_id, IntentStatus.SENDING, ts=self.clock())
        except LedgerError as exc:  # the orders are out: follow them to their end whatever this row says
            log.error("executor.intent_status_unwritten execution=%s error=%r", ex_id, str(exc))
        finals = await asyncio.gather(*legs)
        buy, sell = finals
        bought, sold = buy.filled, sell.filled
        unsettled = [o for o in finals if o.status not in FINAL_STATUSES]
        if unsettled:  # a leg whose state the venue would not tell: hedging blind could double the exposure
            return await self._escalate(plan, opp, unsettled, send_latency_us)
        usd = Decimal(repr(self.settings.scanner.usd_per_quote[self.settings.instruments[opp.instrument].quote]))
        executed = float(bought.min(sold))
        edge = predicted_edge(opp, executed)
        predicted = executed * opp.vwap_buy * edge * float(usd)
        outcome = dict(
            execution_id=ex_id, opportunity_id=opp.id, instrument=opp.instrument, buy_venue=opp.buy_venue,
            sell_venue=opp.sell_venue, amount=plan.orders[0].amount, bought=bought, sold=sold,
            predicted_pnl_usd=predicted, send_latency_us=send_latency_us, predicted_bps=edge * 1e4,
        )  # fmt: skip
        await self._refresh_balances({opp.buy_venue, opp.sell_venue})
        if bought == 0 and sold == 0:
            await self.store.set_intent_status(ex_id, IntentStatus.FAILED, ts=self.clock(), realized_pnl=ZERO)
            return Outcome(status=IntentStatus.FAILED.value, reason=f"{buy.status.value}/{sell.status.value}",
                           realized_pnl_usd=ZERO, **outcome)  # type: ignore[arg-type]  # fmt: skip
        if bought == sold:
            pnl = await self.realized_pnl_usd(ex_id, opp.instrument)
            await self.store.set_intent_status(ex_id, IntentStatus.DONE, ts=self.clock(), realized_pnl=pnl)
            notional_usd = float(bought) * opp.vwap_buy * float(usd)
            realized_bps = float(pnl) / notional_usd * 1e4 if notional_usd > 0 else None
            log.info("executor.done execution=%s amount=%s pnl_usd=%s predicted_bps=%.1f realized_bps=%s", ex_id,
                     bought, pnl, edge * 1e4, realized_bps)  # fmt: skip
            return Outcome(status=IntentStatus.DONE.value, realized_pnl_usd=pnl, realized_bps=realized_bps,
                           **outcome)  # type: ignore[arg-type]  # fmt: skip
        # legs ended unequal: the hedger closes the residual (or escalates)
        self._cooling[(opp.instrument, opp.buy_venue, opp.sell_venue)] = self.clock() + self.cooldown_ns
        await self.store.set_intent_status(ex_id, IntentStatus.HEDGING, ts=self.clock())
        net = bought - sold
        residual = self.residual(ex_id, opp.instrument, net, buy if net > 0 else sell)
        result = await self.hedger.close(residual, self)
        status = IntentStatus.HEDGED if result.closed else IntentStatus.ESCALATED
        closed_pnl = await self.realized_pnl_usd(ex_id, opp.instrument) if result.closed else None
        await self.store.set_intent_status(ex_id, status, ts=self.clock(), realized_pnl=closed_pnl)
        await self._refresh_balances(set(self.gateways))
        return Outcome(
            status=status.value,
            realized_pnl_usd=closed_pnl,
            hedge=result.summary,
            **outcome,  # type: ignore[arg-type]
        )

    async def _escalate(self, plan: _Plan, opp: Opportunity, unsettled: list[Order], send_latency_us: float) -> Outcome:
        from arb.risk.checks import TradingState

        ex_id = plan.intent.id
        names = ", ".join(f"{o.client_id} on {o.venue} ({o.status.value})" for o in unsettled)
        reason = f"execution {ex_id}: order state unknown after resolution: {names}"
        log.error("executor.escalated %s", reason)
        await self.store.set_intent_status(ex_id, IntentStatus.ESCALATED, ts=self.clock())
        await self.risk.set_state(TradingState.HALTED, reason=reason[:500], actor="executor")
        buy, sell = plan.orders
        return Outcome(
            execution_id=ex_id, opportunity_id=opp.id, instrument=opp.instrument, buy_venue=opp.buy_venue,
            sell_venue=opp.sell_venue, status=IntentStatus.ESCALATED.value, reason=reason,
            amount=buy.amount, bought=buy.filled, sold=sell.filled, send_latency_us=send_latency_us,
        )  # fmt: skip

    def residual(self, ex_id: str, instrument: str, net: Decimal, origin: Order) -> Residual:
        """What flattens an execution whose orders netted `net` base (> 0: long, sell it back; < 0: short, buy it),
        `origin` being the order that filled in excess (its venue and price bound the hedge)."""
        from arb.hedging.hedger import Residual

        return Residual(
            execution_id=ex_id, instrument=instrument, amount=abs(net), side=Side.SELL if net > 0 else Side.BUY,
            origin_venue=origin.venue, reference_price=origin.average_price or origin.price or ZERO,
        )  # fmt: skip

    # -- one order ---------------------------------------------------------------------------------------------------

    async def run_order(self, order: Order, gateway: VenueGateway, ex_id: str) -> Order:
        """Send one order and follow it to a final state, with every transition and fill in the ledger; returns the
        order as it ended (its status FILLED / CANCELLED / REJECTED, `filled` what the venue executed)."""
        sent = time.perf_counter()
        send = asyncio.ensure_future(gateway.create_order(order))
        try:
            await self.transition(order, OrderStatus.SENT, "sent")
        except LedgerError as exc:  # the order is out (its intent row is written): follow it whatever this row says
            log.error("executor.sent_unrecorded client_id=%s error=%r", order.client_id, str(exc))
            order.status = OrderStatus.SENT
        try:
            report = await send
        except RequestTimedOut as exc:
            await self.transition(order, OrderStatus.UNKNOWN, f"request timed out: {exc.detail}")
            found = await self.resolve(order, gateway)
            if found is None:
                await self.transition(order, OrderStatus.REJECTED, "never placed: not found by client id")
                return order
            report = found
        except GatewayError as exc:
            await self.transition(order, OrderStatus.REJECTED, f"{type(exc).__name__}: {exc.detail}")
            return order
        else:  # the venue answered the request (a lookup after a timeout is no ack latency)
            EXECUTOR_LEG_LATENCY_SECONDS.labels(order.venue).observe(time.perf_counter() - sent)
        await self.apply(order, report)
        if order.status not in FINAL_STATUSES:  # still working (an IOC should not be): cancel what is left
            try:
                report = await gateway.cancel_order(order.symbol, order.client_id)
            except GatewayError as exc:
                log.warning("executor.cancel_failed client_id=%s error=%r", order.client_id, str(exc))
                report = await self.resolve(order, gateway) or report
            await self.apply(order, report)
        return order

    async def resolve(self, order: Order, gateway: VenueGateway) -> OrderReport | None:
        """Look the order up by client id until the venue knows it or `resolve_window_s` passes (None: never placed).
        Never sends it again (FAULTS E2/E3)."""
        deadline = time.monotonic() + self.resolve_window_s
        while True:
            try:
                return await gateway.fetch_order(order.symbol, order.client_id)
            except OrderNotFound:
                pass
            except GatewayError as exc:
                log.warning("executor.resolve_retry client_id=%s error=%r", order.client_id, str(exc))
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(self.resolve_interval_s)

    async def apply(self, order: Order, report: OrderReport) -> None:
        """Book the report's fills (idempotent by trade id) and move the order to the venue's state; a fill booked
        for the first time moves the risk context's exposure of its base asset."""
        for fill in report.fills:
            if await self.store.book_fill(fill):
                self._expose(fill)
        status = report.status
        if status is OrderStatus.ACKED and order.status is OrderStatus.UNKNOWN and report.filled > 0:
            status = OrderStatus.PARTIALLY_FILLED
        if report.filled < order.filled:
            log.error("executor.fill_went_back client_id=%s had=%s venue=%s", order.client_id, order.filled,
                      report.filled)  # fmt: skip
            return
        if status is order.status and report.filled == order.filled:
            return
        order.venue_order_id = report.venue_order_id or order.venue_order_id
        order.filled = report.filled
        order.average_price = report.average_price
        await self.transition(order, status, f"venue: {status.value} filled={report.filled}")

    async def transition(self, order: Order, status: OrderStatus, detail: str) -> None:
        now = self.clock()
        order.status = status
        order.ts_updated = now
        await self.store.transition(
            order.client_id, status, now, detail=detail, venue_order_id=order.venue_order_id,
            filled=order.filled if status is not OrderStatus.SENT else None, average_price=order.average_price,
        )  # fmt: skip

    def _expose(self, fill: Fill) -> None:
        """A fill moves the net base position; the risk context's USD exposure is that position at this fill's
        price (re-valued at the current price by `mark_exposure` before a hedge is judged).

        The position counts traded amounts, not fees paid in the base: legs and hedges are sized in traded amounts,
        so a fee counted here would pile up over completed pairs (0.1 % of every buy on a venue that charges in the
        base) until a full residual's hedge looked bigger than the exposure and was denied as not reducing (after
        ~50 pairs at 0.1 %). That drift is inventory, booked in the ledger's positions and rebalanced, not an open
        leg."""
        base, _, quote = fill.symbol.partition("/")
        signed = fill.amount if fill.side is Side.BUY else -fill.amount
        position = self.base_positions[base] = self.base_positions.get(base, ZERO) + signed
        usd = self.usd_per_currency.get(quote.split(":")[0])
        if usd is not None:
            self.context.exposure_usd[base] = float(position * fill.price) * usd

    def mark_exposure(self, instrument: str) -> None:
        inst = self.settings.instruments.get(instrument)
        if inst is None or inst.base not in self.base_positions:
            return
        for venue in inst.venues:
            top = self.prices.top(instrument, venue)
            usd = self.usd_per_currency.get(inst.quote)
            if top is not None and usd is not None:
                mid = (top.bid + top.ask) / 2
                self.context.exposure_usd[inst.base] = float(self.base_positions[inst.base]) * mid * usd
                return

    # -- accounting --------------------------------------------------------------------------------------------------

    async def realized_pnl_usd(self, ex_id: str, instrument: str) -> Decimal:
        """Cash flow of every fill of the execution's orders (legs and hedges), fees included, in USD: each fill
        valued in its own quote currency (a USDT leg at USDT's USD value, `usd_per_currency`), so a pair that buys
        for USD and sells for USDT carries the haircut the scanner charged it."""
        records = await self.store.orders_of(ex_id)
        total = ZERO
        for rec in records:
            for fill in await self.store.fills(rec.client_id):
                quote = fill.symbol.partition("/")[2].split(":")[0]
                usd = self.usd_per_currency.get(quote)
                if usd is None:
                    raise ValueError(f"no USD value for {quote} (fill {fill.trade_id} of {ex_id}, {instrument})")
                total += _cash(fill) * Decimal(repr(usd))
        return total.quantize(Decimal("1e-8"))

    async def _refresh_balances(self, venues: set[str]) -> None:
        await asyncio.gather(*(self.refresh_balance(v) for v in sorted(venues) if v in self.gateways))

    async def refresh_balance(self, venue: str) -> None:
        try:
            balances = await self.gateways[venue].fetch_balances()
        except GatewayError as exc:
            log.warning("executor.balances_unavailable venue=%s error=%r", venue, str(exc))
            return
        ctx = self.context
        for key in [k for k in ctx.balances if k[0] == venue]:
            del ctx.balances[key]
        for asset, amount in balances.items():
            ctx.balances[(venue, asset)] = amount

    async def start(self) -> None:
        """Load every venue's balances into the risk context (an unknown balance denies orders on that venue)."""
        await self._refresh_balances(set(self.gateways))


_M_OUTCOMES: Final = {
    s: EXECUTOR_EXECUTIONS.labels(s)
    for s in (IntentStatus.DONE, IntentStatus.HEDGED, IntentStatus.FAILED, IntentStatus.ESCALATED, "aborted")
}


def _export_outcome(outcome: Outcome) -> None:
    counter = _M_OUTCOMES.get(outcome.status)
    if counter is not None:
        counter.inc()
    if outcome.predicted_bps is not None and outcome.realized_bps is not None:
        EXECUTOR_SLIPPAGE_BPS.observe(outcome.predicted_bps - outcome.realized_bps)
    if outcome.realized_pnl_usd:
        EXECUTOR_REALIZED_PNL_USD.inc(float(outcome.realized_pnl_usd))


def _cash(fill: Fill) -> Decimal:
    """Quote-currency cash flow of one fill; a fee charged in the base is valued at the fill's price."""
    flow = fill.price * fill.amount * (1 if fill.side is Side.SELL else -1)
    base, _, quote = fill.symbol.partition("/")
    quote = quote.split(":")[0]
    if fill.fee_currency == quote:
        flow -= fill.fee
    elif fill.fee_currency == base:
        flow -= fill.fee * fill.price
    return flow


def usd_per_currency(settings: Settings) -> dict[str, float]:
    """USD value of every currency a venue quotes in: the canonical ones from `scanner.usd_per_quote`, and each
    venue currency `quote_equivalence` maps to one of them at that value less its haircut (USDT = 1 - 0.0005)."""
    out = dict(settings.scanner.usd_per_quote)
    for canonical, members in settings.quote_equivalence.items():
        if canonical not in out:
            continue
        for currency, haircut in members.items():
            out.setdefault(currency, out[canonical] * (1 - haircut))
    return out


def predicted_edge(opp: Opportunity, amount: float) -> float:
    """The scanner's net edge for trading `amount` instead of its own size: its gross spread less its fees and
    haircut, its gas spread over the smaller notional, and its slippage scaled to the executed share of its size
    (slippage grows with size, so this is the scanner's own estimate, not a fresh one)."""
    if amount <= 0 or opp.size <= 0:
        return opp.net_edge
    share = min(1.0, amount / opp.size)
    return opp.gross_spread - opp.slippage * share - opp.fee_buy - opp.fee_sell - opp.haircut - opp.gas / share
