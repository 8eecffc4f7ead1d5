"""What the executor needs from a venue to trade on it: the `VenueGateway` protocol, its reports and its errors.

Why a protocol here and the implementations elsewhere: data flows `connectors -> ... -> executor`, so the executor
never imports a connector. The ccxt implementation (`arb.connectors.orders.CcxtGateway`, live venues and the local
ones) and the paper one (`arb.executor.paper`) both satisfy this, and the composition root (`arb run`, the API, the
demo) hands the executor one gateway per venue.

Errors say what is known about the order, because that decides what the executor may do next (FAULTS E2, E3, E10):

- `OrderRejected`: the venue answered and the order does not exist (bad price/amount, funds, a reject). Final.
- `RequestTimedOut`: no answer in time, or the connection dropped mid-request. The order may exist: it is UNKNOWN
  and is resolved by `fetch_order` (client id), never by sending again.
- `VenueRateLimited`: 429/418 before the order was accepted; `retry_after_s` is how long the venue must be left
  alone. The order does not exist (the venues answer 429 before matching).
- `VenueAuthError`: a wrong key/signature, or a timestamp outside the venue's window; never retried blindly.
- `VenueUnavailable`: maintenance, or the venue refused locally (backing off after maintenance) before anything was
  sent. A 5xx answer to an order request is NOT this: the venue's own docs (Binance: "the execution status is
  unknown") make it a `RequestTimedOut`, resolved by fetching the order.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

import msgspec

from arb.model import Fill, Order, OrderStatus


class OrderReport(msgspec.Struct, frozen=True, kw_only=True):
    """A venue's account of one order at one moment, in the ledger's terms (Decimal amounts)."""

    client_id: str
    venue_order_id: str | None
    status: OrderStatus
    """ACKED (open, nothing filled), PARTIALLY_FILLED (open), FILLED, CANCELLED (incl. an IOC remainder expired),
    REJECTED."""
    filled: Decimal
    average_price: Decimal | None = None
    fills: tuple[Fill, ...] = ()
    """The trades the venue reported with the order (may be empty when it reports only totals); booked by trade id."""


class Market(msgspec.Struct, frozen=True, kw_only=True):
    """A symbol's trading rules on one venue (from its ccxt market), used to size orders before anything is sent."""

    symbol: str
    base: str
    quote: str
    amount_step: Decimal | None
    price_tick: Decimal | None
    min_amount: Decimal | None
    min_notional: Decimal | None
    taker_fee: Decimal


class Top(msgspec.Struct, frozen=True):
    """A venue's best bid and ask for an instrument now, and how old that quote is."""

    bid: float
    ask: float
    age_ms: float


class PriceView(Protocol):
    """Current top of book by (instrument, venue), read from the grid by whoever builds the executor."""

    def top(self, instrument: str, venue: str) -> Top | None:
        """None when the venue has no usable quote for it."""
        ...


class GatewayError(Exception):
    """Base of what a gateway raises; the message names the venue and never holds a key or signature."""

    def __init__(self, venue: str, detail: str) -> None:
        super().__init__(f"{venue}: {detail}")
        self.venue = venue
        self.detail = detail


class OrderRejected(GatewayError):
    """The venue refused the order; it does not exist."""


class RequestTimedOut(GatewayError):
    """No answer in time (or the connection dropped): the order's fate is unknown until it is fetched."""


class VenueRateLimited(GatewayError):
    def __init__(self, venue: str, detail: str, retry_after_s: float) -> None:
        super().__init__(venue, detail)
        self.retry_after_s = retry_after_s


class VenueAuthError(GatewayError):
    """Keys, signature or timestamp refused."""


class VenueUnavailable(GatewayError):
    """Maintenance, 503, or the venue could not be reached: nothing was placed."""


class OrderNotFound(GatewayError):
    """The venue does not know this client id (within its lookup window)."""


class VenueGateway(Protocol):
    """One venue's trading access. Every call is bounded by the gateway's own timeout and rate limits."""

    @property
    def venue(self) -> str: ...

    def market(self, symbol: str) -> Market:
        """Trading rules; raises KeyError naming the symbol when the venue does not list it."""
        ...

    def amount_to_precision(self, symbol: str, amount: Decimal) -> Decimal:
        """`amount` rounded down to the venue's step (ccxt `amount_to_precision`, TRUNCATE)."""
        ...

    def price_to_precision(self, symbol: str, price: Decimal) -> Decimal:
        """`price` rounded to the venue's tick (ccxt `price_to_precision`)."""
        ...

    def check_order(self, order: Order) -> str | None:
        """What is wrong with `order` by the venue's rules (price off tick, amount off step, below min amount or
        notional, unknown symbol), or None; checked before anything is sent (FAULTS E14)."""
        ...

    async def create_order(self, order: Order) -> OrderReport:
        """Place `order` (its `client_id` sent as the venue's client order id). Raises the errors above."""
        ...

    async def fetch_order(self, symbol: str, client_id: str) -> OrderReport:
        """The venue's state of the order with this client id; raises OrderNotFound when it has none."""
        ...

    async def cancel_order(self, symbol: str, client_id: str) -> OrderReport:
        """Cancel; the report is the order's state after it (FILLED if it filled first: FAULTS E6)."""
        ...

    async def fetch_balances(self) -> dict[str, Decimal]:
        """Free balance per asset."""
        ...

    async def aclose(self) -> None: ...
