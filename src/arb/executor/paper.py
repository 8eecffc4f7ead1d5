"""Paper trading on real market data: a `VenueGateway` that fills against the grid's depth, never calling a venue.

Why: `mode: paper` (the default) must run the same code path as live up to the venue call, on live prices, without an
account. An order waits `latency_ms` (the venue's configured order latency: the time a real order would take to
arrive), then walks the mirror's current book on its side up to its limit price: IOC fills what is there and cancels
the rest, FOK fills all or nothing, GTC is not supported (the executor sends marketable IOC orders only). The taker fee
is charged in the quote currency, balances move, and every fill gets a trade id, so the ledger books paper trades
exactly as real ones. The books are not depleted by our fills (a paper order does not move the market), which is the
optimistic side of paper trading and why `arb run` on the local venues uses their private endpoints instead.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Final

from arb.executor.venue import Market, OrderNotFound, OrderRejected, OrderReport
from arb.model import Fill, Order, OrderStatus, Side, TimeInForce

if TYPE_CHECKING:
    from arb.config import Settings
    from arb.grid.mirror import GridMirror

ZERO: Final = Decimal(0)


class PaperGateway:
    def __init__(
        self,
        venue: str,
        *,
        mirror: GridMirror,
        markets: Mapping[str, Market],
        instruments: Mapping[str, str],
        balances: Mapping[str, Decimal],
        latency_ms: float = 0.0,
        clock: Callable[[], int] | None = None,
        wait: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        """`markets`: symbol -> trading rules; `instruments`: symbol -> the grid instrument whose book it fills on.
        `clock` stamps fills (default: the grid's); `wait(seconds)` spends the order latency (default
        `asyncio.sleep`; the backtest replayer hands its simulated clock's, so the book the order fills against is
        the recorded one at send time + latency)."""
        self._venue = venue
        self.mirror = mirror
        self.markets = dict(markets)
        self.instruments = dict(instruments)
        self.balances: dict[str, Decimal] = dict(balances)
        self.latency_s = latency_ms / 1000
        self._clock = clock or mirror.grid.now_ns
        self._wait = wait or asyncio.sleep
        self.orders: dict[str, OrderReport] = {}
        self._trades = 0

    @property
    def venue(self) -> str:
        return self._venue

    def market(self, symbol: str) -> Market:
        try:
            return self.markets[symbol]
        except KeyError:
            raise KeyError(f"{self._venue} does not list {symbol}") from None

    def amount_to_precision(self, symbol: str, amount: Decimal) -> Decimal:
        step = self.market(symbol).amount_step
        return amount if step is None else (amount / step).to_integral_value(ROUND_DOWN) * step

    def price_to_precision(self, symbol: str, price: Decimal) -> Decimal:
        tick = self.market(symbol).price_tick
        return price if tick is None else (price / tick).to_integral_value(ROUND_HALF_EVEN) * tick

    def check_order(self, order: Order) -> str | None:
        if order.symbol not in self.markets:
            return f"{order.symbol} is not listed"
        m = self.markets[order.symbol]
        if order.price is None or order.price <= 0:
            return "a paper order needs a positive limit price"
        if m.amount_step is not None and order.amount % m.amount_step != 0:
            return f"amount {order.amount} is not a multiple of the step {m.amount_step}"
        if m.price_tick is not None and order.price % m.price_tick != 0:
            return f"price {order.price} is not a multiple of the tick {m.price_tick}"
        if m.min_amount is not None and order.amount < m.min_amount:
            return f"amount {order.amount} is below the minimum {m.min_amount}"
        if m.min_notional is not None and order.amount * order.price < m.min_notional:
            return f"notional {order.amount * order.price} is below the minimum {m.min_notional}"
        if order.time_in_force not in (TimeInForce.IOC, TimeInForce.FOK):
            return f"paper trading fills IOC/FOK orders only, not {order.time_in_force.value}"
        return None

    async def create_order(self, order: Order) -> OrderReport:
        problem = self.check_order(order)
        if problem is not None:
            raise OrderRejected(self._venue, problem)
        if order.client_id in self.orders:
            raise OrderRejected(self._venue, f"duplicate client order id {order.client_id}")
        if self.latency_s:
            await self._wait(self.latency_s)
        m = self.markets[order.symbol]
        levels = self._levels(order)
        limit = order.price or ZERO
        left, fills = order.amount, []
        for px, qty in levels:
            if left <= 0 or (px > limit if order.side is Side.BUY else px < limit):
                break
            take = min(left, qty)
            if m.amount_step is not None:
                take = (take / m.amount_step).to_integral_value(ROUND_DOWN) * m.amount_step
            if take <= 0:
                break
            fills.append((px, take))
            left -= take
        filled = order.amount - left
        if order.time_in_force is TimeInForce.FOK and left > 0:
            fills, filled = [], ZERO
        cost = sum((px * q for px, q in fills), start=ZERO)
        fee = (cost * m.taker_fee).quantize(Decimal("1e-12"))
        need_quote = cost + fee if order.side is Side.BUY else ZERO
        if order.side is Side.BUY and self.balances.get(m.quote, ZERO) < need_quote:
            raise OrderRejected(
                self._venue, f"insufficient {m.quote}: {self.balances.get(m.quote, ZERO)} < {need_quote}"
            )
        if order.side is Side.SELL and self.balances.get(m.base, ZERO) < filled:
            raise OrderRejected(self._venue, f"insufficient {m.base}: {self.balances.get(m.base, ZERO)} < {filled}")
        sign = 1 if order.side is Side.BUY else -1
        self.balances[m.base] = self.balances.get(m.base, ZERO) + sign * filled
        self.balances[m.quote] = self.balances.get(m.quote, ZERO) - sign * cost - fee
        now = self._clock()
        trades = []
        for n, (px, q) in enumerate(fills):
            self._trades += 1
            trades.append(Fill(
                trade_id=f"paper-{self._venue}-{self._trades}", client_id=order.client_id, venue=self._venue,
                symbol=order.symbol, side=order.side, price=px, amount=q,
                fee=fee if n == 0 else ZERO, fee_currency=m.quote, ts=now,
            ))  # fmt: skip
        status = OrderStatus.FILLED if filled == order.amount else OrderStatus.CANCELLED
        report = OrderReport(
            client_id=order.client_id, venue_order_id=f"paper-{order.client_id}", status=status, filled=filled,
            average_price=cost / filled if filled else None, fills=tuple(trades),
        )  # fmt: skip
        self.orders[order.client_id] = report
        return report

    def _levels(self, order: Order) -> list[tuple[Decimal, Decimal]]:
        instrument = self.instruments.get(order.symbol)
        layout = self.mirror.layout
        if instrument is None or not layout.has_instrument(instrument) or not layout.has_venue(self._venue):
            raise OrderRejected(self._venue, f"no book for {order.symbol}")
        i, j = layout.instrument_index(instrument), layout.venue_index(self._venue)
        buy = order.side is Side.BUY
        px_row = (self.mirror.ask_px if buy else self.mirror.bid_px)[i, j]
        qty_row = (self.mirror.ask_qty if buy else self.mirror.bid_qty)[i, j]
        out = [(Decimal(repr(float(p))), Decimal(repr(float(q)))) for p, q in zip(px_row, qty_row, strict=True)
               if math.isfinite(p) and math.isfinite(q) and q > 0]  # fmt: skip
        if not out:  # a top-of-book-only venue: its top is all the depth paper trading trusts
            top_px = float((self.mirror.ask if buy else self.mirror.bid)[i, j])
            top_qty = float((self.mirror.ask_size if buy else self.mirror.bid_size)[i, j])
            if math.isfinite(top_px) and math.isfinite(top_qty) and top_qty > 0:
                out = [(Decimal(repr(top_px)), Decimal(repr(top_qty)))]
        if not out:
            raise OrderRejected(self._venue, f"no book for {order.symbol}")
        return out

    async def fetch_order(self, symbol: str, client_id: str) -> OrderReport:
        try:
            return self.orders[client_id]
        except KeyError:
            raise OrderNotFound(self._venue, f"no paper order {client_id}") from None

    async def cancel_order(self, symbol: str, client_id: str) -> OrderReport:
        return await self.fetch_order(symbol, client_id)  # IOC/FOK: already final

    async def fetch_balances(self) -> dict[str, Decimal]:
        return dict(self.balances)

    async def aclose(self) -> None:
        return None


def paper_balances(
    settings: Settings,
    markets: Mapping[str, Market],
    instruments: Mapping[str, str],
    mids: Mapping[str, float],
    funding_usd: Decimal,
) -> dict[str, Decimal]:
    """A paper account's starting balances: `funding_usd` worth of each quote currency of `markets` and of each base
    asset, valued at its instrument's mid in `mids` (instrument -> mid in the instrument's quote currency). A base
    with no price yet is left unfunded (its sells are refused for funds, never filled from nothing). `arb run
    --market venues` prices from the grid, the replay from the tape's first quotes."""
    from arb.executor.engine import usd_per_currency

    usd = usd_per_currency(settings)
    q8 = Decimal("1e-8")
    balances: dict[str, Decimal] = {}
    for symbol, market in markets.items():
        quote_usd = usd.get(market.quote)
        if quote_usd:
            balances.setdefault(market.quote, (funding_usd / Decimal(repr(quote_usd))).quantize(q8))
        mid = mids.get(instruments[symbol])
        inst_usd = usd.get(settings.instruments[instruments[symbol]].quote)
        if mid and inst_usd:
            balances.setdefault(market.base, (funding_usd / Decimal(repr(mid * inst_usd))).quantize(q8))
    return balances
