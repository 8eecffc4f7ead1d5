"""Private trading on a local venue, venue-agnostic: accounts, orders matched against the simulated book, trades,
balances, precision checks and order faults. No HTTP here; each protocol module (`arb.sim.venues.<x>_trading`)
authenticates requests in its exchange's way and renders these objects in its exchange's format.

Why one core: the executor's fault matrix (FAULTS E1-E14) must hold across venues, so what an order *does* (how it
fills, what it costs, when it is refused) is decided once, and only the wire format differs per exchange.

What an order does, in the venue's terms:

- Accounts: an API key, its secret (and passphrase where the venue has one), balances per asset (`free`, `locked`)
  and taker / maker fee rates (the venue's defaults unless the account has its own). Every venue has the default
  account (`DEFAULT_API_KEY` / `DEFAULT_SECRET` / `DEFAULT_PASSPHRASE`), funded with `DEFAULT_FUNDING_USD` worth of
  every asset it lists; tests make their own with `Trading.create_account`.
- Orders: limit or market, GTC / IOC / FOK, post-only, a client order id unique among the account's OPEN orders (a
  closed order's id may be reused, as on Binance and OKX), a venue order id. A taker walks the venue's current book
  level by level up to its limit price: a partial fill when depth runs out; IOC and market remainders expire; FOK
  fills whole or not at all (expired, nothing traded); post-only is refused if it would cross (or, where the venue
  does so, accepted and cancelled at once); a GTC remainder rests (its funds locked) and fills at its own price, as
  maker, when a later book update crosses it. An order that ends short of filled says why (`Order.end_reason`).
- Money: balances move by price x amount and the fee, which is charged in the asset received (Binance, OKX and
  Bybit spot without fee-token discounts) or, on venues configured `fee_in_quote` (Kraken, Coinbase), always in the
  quote asset: a buy then pays price x amount plus the fee, and needs that much free to be placed (a resting buy
  locks price x amount; its maker fee is paid from free funds when it fills). Fees are rounded half-up to 8
  decimals. Everything booked is `Decimal`.
- Checks, in order: symbol, price on the tick and within the venue's price range, amount at least the minimum, on
  the step and within its range, notional within its range (a market order is valued at the mid), client id free,
  post-only would not cross, funds free (a buy needs price x amount of quote free, a market buy the cost of its
  walk; a sell its amount of base).
- Trades carry unique ids (per venue, increasing); orders keep their trades.

Deviations, on purpose: our fills do not deplete the public book (the market is an exogenous process whose levels
are refreshed by others), so two identical orders against the same book state fill the same; resting orders are
private (they never appear in the public book, so accounts cannot trade with each other); self-trade prevention,
stop orders and icebergs are not modelled.

Order faults (FAULTS E1-E3, E5, E10), armed per venue from Python (`Trading.faults`) or `POST /_sim/order-faults`,
each for the next `count` create-order requests (authenticated and well formed) matching an optional `symbol`
(unified) and `side`:

| fault                 | what the client sees                                                                   |
|-----------------------|----------------------------------------------------------------------------------------|
| `reject`              | the venue's order-rejected error; nothing placed (`code` / `message` override the      |
|                       | protocol's default)                                                                    |
| `ack_delay`           | the order is placed at once; the answer comes `seconds` later                          |
| `ghost`               | the order is placed (and fills as the book allows), but no answer comes: the request  |
|                       | is held `hold_s`, then the connection is cut, so the client times out first            |
| `partial_then_cancel` | `fraction` of the amount (down to the step, as far as the book allows) fills, the rest |
|                       | is cancelled by the venue, whatever the time in force                                  |
| `rate_limit`          | 429 (or 418) with Retry-After; nothing placed                                          |
| `disconnect`          | the connection is cut mid-request, with the order placed first if `placed` is true     |

`injected` counts each fault that took effect; every order a fault touched carries its name (`Order.fault`).

Control (JSON, wired into every venue's `/_sim/` routes by `arb.sim.server`): `POST /_sim/accounts` creates an
account or changes one (`balances` sets free amounts, `deposit` adds to them), `GET /_sim/accounts/{key}`,
`POST /_sim/order-faults` (`{"fault": "ghost", "hold_s": 5, "symbol": "BTC/USDT", "side": "buy", "count": 1}`, or
`{"fault": "clear"}`), `GET /_sim/order-faults`, `GET /_sim/orders[?api_key=&symbol=]` (every order the venue
knows, for test invariants). Secrets are never returned or logged.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

import msgspec

from arb.sim.market import USD_PER_UNIT, stable_unit

if TYPE_CHECKING:
    from arb.sim.market import Book, BookUpdate

log = logging.getLogger(__name__)

DEFAULT_API_KEY: Final = "local-sim-key"
"""API key of the account every local venue has (the demo's placeholder keys are these)."""
DEFAULT_SECRET: Final = "localsimsecret00"  # noqa: S105 - a public sim credential, not a secret
"""Valid base64 without padding, so every client takes it as it is: Kraken's decodes its secret from base64, and
ccxt's coinbase signs with the legacy HMAC scheme unless a secret is PEM, 88 characters long or ends with `=`."""
DEFAULT_PASSPHRASE: Final = "local-sim-passphrase"  # noqa: S105 - ditto (OKX-style venues)
DEFAULT_FUNDING_USD: Final = Decimal(1_000_000)
"""What the default account holds of every asset a venue lists, in USD worth at the books' mids when it is made."""
FEE_QUANTUM: Final = Decimal("0.00000001")
"""Fees are rounded half-up to 8 decimals (Binance's commission precision; OKX shows fewer)."""
MAX_PRICE: Final = Decimal(1_000_000_000)
MAX_QTY: Final = Decimal(900_000_000)
MAX_NOTIONAL: Final = Decimal(9_000_000)

Side = Literal["buy", "sell"]
OrderType = Literal["limit", "market"]
TimeInForce = Literal["GTC", "IOC", "FOK"]
OrderStatus = Literal["new", "partially_filled", "filled", "canceled", "expired"]
RejectReason = Literal[
    "unknown_symbol",
    "price_filter",
    "min_qty",
    "lot_size",
    "min_notional",
    "max_notional",
    "duplicate_client_id",
    "post_only_would_take",
    "insufficient_balance",
]
EndReason = Literal["ioc_remainder", "fok_unfilled", "post_only_would_take", "by_user", "by_venue"]
"""Why an order ended without filling whole: an IOC / market remainder, a FOK miss, a post-only that would have
crossed (on venues that cancel it rather than refuse it), a cancel request, the venue (a fault)."""
OPEN_STATUSES: Final = frozenset({"new", "partially_filled"})


class Rejection(Exception):
    """The venue refuses an order: `reason` is what the protocol maps to its own error code and message."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: RejectReason = reason
        self.detail = detail


class NoSuchOrder(LookupError):
    """No order of this account matches the id / client id (on this symbol)."""


class OrderClosed(Exception):
    """A cancel of an order that is already filled, cancelled or expired."""

    def __init__(self, order: Order) -> None:
        super().__init__(f"order {order.id} is {order.status}")
        self.order = order


# ---------------------------------------------------------------------------------------------------- accounts


@dataclass
class Balance:
    free: Decimal = Decimal(0)
    locked: Decimal = Decimal(0)

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


@dataclass
class Account:
    """One API key's account on one venue. `taker_fee` / `maker_fee` None: the venue's rates."""

    api_key: str
    secret: str = field(repr=False)
    passphrase: str | None = field(default=None, repr=False)
    balances: dict[str, Balance] = field(default_factory=dict)
    taker_fee: Decimal | None = None
    maker_fee: Decimal | None = None
    uid: int = 0
    updated_ms: int = 0

    def balance(self, asset: str) -> Balance:
        """The asset's balance (created empty on first use)."""
        bal = self.balances.get(asset)
        if bal is None:
            bal = self.balances[asset] = Balance()
        return bal


# ---------------------------------------------------------------------------------------------------- rules


@dataclass(frozen=True, slots=True)
class VenueLimits:
    """A venue's ranges for every symbol (the protocol sets the ones its instrument list shows)."""

    min_notional: Decimal = Decimal(0)
    max_notional: Decimal = MAX_NOTIONAL
    max_qty: Decimal = MAX_QTY
    max_price: Decimal = MAX_PRICE
    min_qty: Decimal | None = None
    """The least amount an order may have (None: one step)."""
    step: Decimal | None = None
    """The amount increment where the venue's is finer than the book's lot (Kraken's `lot_decimals`); None: the
    book's."""


@dataclass(frozen=True, slots=True)
class SymbolRules:
    """The filters a venue advertises for a symbol (Binance PRICE_FILTER / LOT_SIZE / NOTIONAL, OKX tickSz /
    lotSz / minSz); the protocol renders its public instrument list from these, so what is checked is what is shown."""

    symbol: str
    base: str
    quote: str
    tick: Decimal
    step: Decimal
    min_price: Decimal
    max_price: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    max_notional: Decimal

    @classmethod
    def from_book(cls, book: Book, limits: VenueLimits | None = None) -> SymbolRules:
        """The book's tick and step (or the venue's finer step; the minimum amount one step unless `limits` says
        more) within the venue's `limits`."""
        limits = limits or VenueLimits()
        base, _, quote = book.symbol.partition("/")
        tick, step = Decimal(repr(book.tick)), limits.step or Decimal(repr(book.step))
        return cls(
            symbol=book.symbol,
            base=base,
            quote=quote.partition(":")[0],
            tick=tick,
            step=step,
            min_price=tick,
            max_price=limits.max_price,
            min_qty=step if limits.min_qty is None else max(step, limits.min_qty),
            max_qty=limits.max_qty,
            min_notional=limits.min_notional,
            max_notional=limits.max_notional,
        )

    def check_price(self, price: Decimal) -> None:
        if not (self.min_price <= price <= self.max_price) or price % self.tick:
            raise Rejection("price_filter", f"price {price} is off the tick {self.tick} or out of range")

    def check_qty(self, qty: Decimal) -> None:
        if qty < self.min_qty:
            raise Rejection("min_qty", f"amount {qty} is below the minimum {self.min_qty}")
        if qty > self.max_qty or qty % self.step:
            raise Rejection("lot_size", f"amount {qty} is off the step {self.step} or above {self.max_qty}")

    def check_notional(self, notional: Decimal, *, market: bool) -> None:
        if notional < self.min_notional:
            raise Rejection("min_notional", f"notional {notional} is below {self.min_notional}")
        if not market and notional > self.max_notional:
            raise Rejection("max_notional", f"notional {notional} is above {self.max_notional}")

    def floor_qty(self, qty: Decimal) -> Decimal:
        return (qty / self.step).to_integral_value(ROUND_DOWN) * self.step


# ---------------------------------------------------------------------------------------------------- orders


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A new order as the protocol parsed it (unified symbol; Decimal amounts).

    A market order gives `amount` (base) or `quote_amount` (quote to spend when buying, to receive when selling).
    """

    symbol: str
    side: Side
    type: OrderType
    amount: Decimal | None = None
    price: Decimal | None = None
    quote_amount: Decimal | None = None
    time_in_force: TimeInForce = "GTC"
    post_only: bool = False
    client_id: str = ""


@dataclass(slots=True)
class Trade:
    id: int
    order_id: int
    api_key: str
    symbol: str
    side: Side
    price: Decimal
    amount: Decimal
    cost: Decimal
    fee: Decimal
    fee_asset: str
    maker: bool
    ts_ms: int


@dataclass(slots=True)
class Order:
    id: int
    client_id: str
    api_key: str
    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    post_only: bool
    price: Decimal | None
    amount: Decimal
    """Base amount ordered (for a market order by quote amount: what it filled)."""
    quote_amount: Decimal | None
    created_ms: int
    status: OrderStatus = "new"
    filled: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    fee: Decimal = Decimal(0)
    fee_asset: str = ""
    updated_ms: int = 0
    trades: list[Trade] = field(default_factory=list)
    fault: str | None = None
    """The order fault that touched this order, if any."""
    end_reason: EndReason | None = None
    """Why it ended short of filled (None while open or once filled)."""

    @property
    def remaining(self) -> Decimal:
        return self.amount - self.filled

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def average(self) -> Decimal | None:
        return self.cost / self.filled if self.filled else None


# ---------------------------------------------------------------------------------------------------- faults

PosInt = Annotated[int, msgspec.Meta(ge=1)]
PosFloat = Annotated[float, msgspec.Meta(gt=0.0)]
Fraction = Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)]


class OrderFault(msgspec.Struct, forbid_unknown_fields=True, tag_field="fault", kw_only=True):
    """An armed order fault: applies to the next `count` create-order requests on `symbol` / `side` (None: any)."""

    count: PosInt = 1
    symbol: str | None = None
    side: Side | None = None

    @property
    def kind(self) -> str:
        return str(type(self).__struct_config__.tag)


class RejectFault(OrderFault, tag="reject"):
    code: str | None = None
    message: str | None = None


class AckDelayFault(OrderFault, tag="ack_delay"):
    seconds: PosFloat


class GhostFault(OrderFault, tag="ghost"):
    hold_s: PosFloat = 30.0


class PartialThenCancelFault(OrderFault, tag="partial_then_cancel"):
    fraction: Fraction = 0.5


class RateLimitFault(OrderFault, tag="rate_limit"):
    status: Literal[429, 418] = 429
    retry_after_s: Annotated[int, msgspec.Meta(ge=0, le=3600)] = 1


class DisconnectFault(OrderFault, tag="disconnect"):
    placed: bool = False
    """Whether the order is placed before the connection is cut."""


class ClearFaults(OrderFault, tag="clear"):
    pass


AnyOrderFault = (
    RejectFault | AckDelayFault | GhostFault | PartialThenCancelFault | RateLimitFault | DisconnectFault | ClearFaults
)
_FAULT_DECODER: Final = msgspec.json.Decoder(AnyOrderFault)


class OrderFaults:
    """One venue's armed order faults, consumed in the order they were armed."""

    def __init__(self, venue_id: str) -> None:
        self.venue_id = venue_id
        self._armed: list[list[Any]] = []  # [fault, remaining]
        self.injected: Counter[str] = Counter()

    def arm(self, fault: OrderFault) -> None:
        if isinstance(fault, ClearFaults):
            self.clear()
            return
        self._armed.append([fault, fault.count])
        log.info(
            "sim.order_fault_armed venue=%s fault=%s count=%d symbol=%s side=%s",
            self.venue_id,
            fault.kind,
            fault.count,
            fault.symbol,
            fault.side,
        )

    def add(self, kind: str, **fields: Any) -> OrderFault:
        """Arm a fault by name: `faults.add("ghost", hold_s=3, symbol="BTC/USDT")`. ValueError names a bad field."""
        try:
            fault: OrderFault = msgspec.convert({"fault": kind, **fields}, AnyOrderFault)
        except msgspec.ValidationError as e:
            raise ValueError(str(e)) from None
        self.arm(fault)
        return fault

    def clear(self) -> None:
        self._armed.clear()
        log.info("sim.order_fault_cleared venue=%s", self.venue_id)

    def take(self, symbol: str, side: str) -> OrderFault | None:
        """Consume the first armed fault that matches a create-order request on `symbol` / `side`."""
        for entry in self._armed:
            fault, left = entry
            if (fault.symbol is None or fault.symbol == symbol) and (fault.side is None or fault.side == side):
                if left <= 1:
                    self._armed.remove(entry)
                else:
                    entry[1] = left - 1
                self.injected[fault.kind] += 1
                log.info(
                    "sim.order_fault_injected venue=%s fault=%s symbol=%s side=%s",
                    self.venue_id,
                    fault.kind,
                    symbol,
                    side,
                )
                return fault  # type: ignore[no-any-return]
        return None

    def state(self) -> dict[str, Any]:
        return {
            "armed": [msgspec.to_builtins(f) | {"remaining": left} for f, left in self._armed],
            "injected": dict(self.injected),
        }


async def deliver(fault: OrderFault | None, cut: Callable[[], None]) -> bool:
    """Carry out the transport part of a fault once the order was handled: wait (`ack_delay`), or hold the request
    and then cut the connection (`ghost`: `hold_s`; `disconnect`: at once). True when the answer may be sent."""
    if isinstance(fault, AckDelayFault):
        await asyncio.sleep(fault.seconds)
        return True
    if isinstance(fault, GhostFault):
        await asyncio.sleep(fault.hold_s)
        cut()
        return False
    if isinstance(fault, DisconnectFault):
        cut()
        return False
    return True


# ---------------------------------------------------------------------------------------------------- control bodies


class AccountChange(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """`POST /_sim/accounts`: create the account (`secret` needed) or change it."""

    api_key: str
    secret: str | None = None
    passphrase: str | None = None
    balances: dict[str, str | int | float] | None = None
    deposit: dict[str, str | int | float] | None = None
    taker_fee: str | float | None = None
    maker_fee: str | float | None = None


def to_decimal(value: object, name: str) -> Decimal:
    """A finite Decimal from a string or number (floats via their shortest repr); ValueError naming `name`."""
    try:
        d = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValueError(f"{name} must be a decimal number, got {value!r}") from None
    if not d.is_finite():
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return d


def _amounts(values: Mapping[str, object], name: str) -> dict[str, Decimal]:
    out = {}
    for asset, raw in values.items():
        amount = to_decimal(raw, f"{name}.{asset}")
        if amount < 0:
            raise ValueError(f"{name}.{asset} must be >= 0, got {raw!r}")
        out[asset] = amount
    return out


# ---------------------------------------------------------------------------------------------------- the venue


class Trading:
    """One venue's private trading state: accounts, orders, trades, rules and order faults (module docstring)."""

    def __init__(
        self,
        venue_id: str,
        books: Iterable[Book],
        *,
        taker_fee: Decimal = Decimal("0.001"),
        maker_fee: Decimal = Decimal("0.001"),
        limits: VenueLimits | None = None,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        default_account: bool = True,
    ) -> None:
        self.venue_id = venue_id
        self.books: dict[str, Book] = {b.symbol: b for b in books if ":" not in b.symbol}  # spot only
        self.taker_fee = taker_fee
        self.maker_fee = maker_fee
        self.limits = limits or VenueLimits()
        self.clock_ms = clock_ms
        self.faults = OrderFaults(venue_id)
        self.accounts: dict[str, Account] = {}
        self.orders: dict[int, Order] = {}
        """Every order the venue knows, by venue order id, oldest first."""
        self.trades: list[Trade] = []
        self._rules: dict[str, SymbolRules] = {}
        self._limits_for: Callable[[Book], VenueLimits] | None = None
        self.fee_in_quote = False
        """Every fee in the quote asset (buys included) rather than in the asset received."""
        self._resting: dict[str, list[Order]] = {}
        self._by_client: dict[tuple[str, str, str], list[Order]] = {}
        self._order_ids = itertools.count(_id_base(venue_id, 10**9))
        self._trade_ids = itertools.count(_id_base(venue_id, 10**8))
        self._uids = itertools.count(_id_base(venue_id, 10**8))
        if default_account:
            self.create_account(
                DEFAULT_API_KEY, DEFAULT_SECRET, passphrase=DEFAULT_PASSPHRASE, balances=self.default_funding()
            )

    def configure(
        self,
        *,
        taker_fee: Decimal | None = None,
        maker_fee: Decimal | None = None,
        limits: VenueLimits | None = None,
        limits_for: Callable[[Book], VenueLimits] | None = None,
        fee_in_quote: bool | None = None,
    ) -> None:
        """Set the venue's default fee rates or its limits (the protocol's, at install): `limits` for every symbol,
        or `limits_for(book)` where a venue's ranges differ per symbol (Bybit's, Kraken's, Coinbase's minimums);
        `fee_in_quote` where the venue charges every fee in the quote asset (module docstring)."""
        if taker_fee is not None:
            self.taker_fee = taker_fee
        if maker_fee is not None:
            self.maker_fee = maker_fee
        if limits is not None:
            self.limits = limits
            self._rules.clear()
        if limits_for is not None:
            self._limits_for = limits_for
            self._rules.clear()
        if fee_in_quote is not None:
            self.fee_in_quote = fee_in_quote

    # ------------------------------------------------------------------ accounts

    def default_funding(self) -> dict[str, Decimal]:
        """`DEFAULT_FUNDING_USD` worth of every listed asset, valued at the books' mids now (an asset quoted only in
        an asset with no USD value is valued as if its quote were worth 1 USD)."""
        usd = {asset: Decimal(repr(rate)) for asset, rate in USD_PER_UNIT.items()}
        for _ in range(2):  # a second pass values assets quoted in ones the first pass valued (ETH/BTC)
            for book in self.books.values():
                rules = self.rules(book.symbol)
                mid = self._mid(book.symbol)
                if rules.base not in usd and rules.quote in usd and mid > 0:
                    usd[rules.base] = mid * usd[rules.quote]
        out: dict[str, Decimal] = {}
        for book in self.books.values():
            rules = self.rules(book.symbol)
            quote_usd = usd.get(rules.quote, Decimal(1))
            out.setdefault(rules.quote, (DEFAULT_FUNDING_USD / quote_usd).quantize(FEE_QUANTUM))
            base_usd = usd.get(rules.base) or self._mid(book.symbol) * quote_usd
            if base_usd > 0:
                out.setdefault(rules.base, rules.floor_qty(DEFAULT_FUNDING_USD / base_usd))
        return out

    def create_account(
        self,
        api_key: str,
        secret: str,
        *,
        passphrase: str | None = None,
        balances: Mapping[str, Decimal] | None = None,
        taker_fee: Decimal | None = None,
        maker_fee: Decimal | None = None,
    ) -> Account:
        """A new account with `balances` free (ValueError if the key is taken or empty)."""
        if not api_key or not secret:
            raise ValueError("api_key and secret must be non-empty")
        if api_key in self.accounts:
            raise ValueError(f"account {api_key!r} already exists on {self.venue_id}")
        account = Account(
            api_key,
            secret,
            passphrase,
            taker_fee=taker_fee,
            maker_fee=maker_fee,
            uid=next(self._uids),
            updated_ms=self.clock_ms(),
        )
        for asset, amount in (balances or {}).items():
            account.balance(asset).free = amount
        self.accounts[api_key] = account
        log.info(
            "sim.account_created venue=%s api_key=%s assets=%d", self.venue_id, mask(api_key), len(account.balances)
        )
        return account

    def account(self, api_key: str) -> Account:
        try:
            return self.accounts[api_key]
        except KeyError:
            raise KeyError(f"no account {api_key!r} on {self.venue_id}") from None

    def fund(self, api_key: str, amounts: Mapping[str, Decimal], *, add: bool = False) -> Account:
        """Set (or, with `add`, increase) free balances of an account."""
        account = self.account(api_key)
        for asset, amount in amounts.items():
            bal = account.balance(asset)
            bal.free = bal.free + amount if add else amount
        account.updated_ms = self.clock_ms()
        return account

    # ------------------------------------------------------------------ rules and books

    def rules(self, symbol: str) -> SymbolRules:
        rules = self._rules.get(symbol)
        if rules is None:
            book = self.books.get(symbol)
            if book is None:
                raise Rejection("unknown_symbol", f"{self.venue_id} does not trade {symbol!r}")
            limits = self._limits_for(book) if self._limits_for is not None else self.limits
            rules = self._rules[symbol] = SymbolRules.from_book(book, limits)
        return rules

    def _levels(self, symbol: str, side: Side) -> Iterator[tuple[Decimal, Decimal]]:
        """The levels a `side` order takes from (asks for a buy), best first, as (price, size) Decimals."""
        book = self.books[symbol]
        tick = self.rules(symbol).tick
        levels = book.asks if side == "buy" else book.bids
        for t in sorted(levels, reverse=side == "sell"):
            yield Decimal(t) * tick, Decimal(repr(levels[t]))

    def _mid(self, symbol: str) -> Decimal:
        book = self.books[symbol]
        tick = self.rules(symbol).tick
        return (Decimal(book.bid_top) + Decimal(book.ask_top)) * tick / 2

    # ------------------------------------------------------------------ placing

    def place(
        self,
        account: Account,
        req: OrderRequest,
        fault: OrderFault | None = None,
        *,
        cancel_crossing_post_only: bool = False,
    ) -> Order:
        """Check, match and book a new order; Rejection if the venue refuses it (nothing changes then).

        A post-only order that would cross is refused (Binance), or with `cancel_crossing_post_only` accepted and
        cancelled at once with nothing traded (OKX)."""
        _check_shape(req)
        rules = self.rules(req.symbol)
        self._check(req, rules)
        if req.client_id and self._open_by_client(account.api_key, req.symbol, req.client_id) is not None:
            raise Rejection("duplicate_client_id", f"client order id {req.client_id!r} is in use by an open order")
        crossing = req.post_only and self._would_take(req)
        if crossing and not cancel_crossing_post_only:
            raise Rejection("post_only_would_take", "a post-only order would cross the book")
        fills = [] if crossing else _walk(self._levels(req.symbol, req.side), req, rules)
        amount = req.amount if req.amount is not None else sum((q for _, q in fills), Decimal(0))
        if req.time_in_force == "FOK" and sum(q for _, q in fills) < amount:
            fills = []
        if isinstance(fault, PartialThenCancelFault):
            fills = _truncate(fills, rules.floor_qty(amount * Decimal(repr(fault.fraction))))
        self._check_funds(account, req, rules, fills)
        now = self.clock_ms()
        order = Order(
            next(self._order_ids),
            req.client_id,
            account.api_key,
            req.symbol,
            req.side,
            req.type,
            req.time_in_force,
            req.post_only,
            req.price,
            amount,
            req.quote_amount,
            now,
            updated_ms=now,
            fault=fault.kind if fault is not None else None,
        )
        for price, qty in fills:
            self._fill(account, order, rules, price, qty, maker=False)
        if crossing:
            order.status, order.end_reason = "canceled", "post_only_would_take"
        else:
            self._settle_new(account, order, rules, cancelled=isinstance(fault, PartialThenCancelFault))
        self.orders[order.id] = order
        if order.client_id:
            self._by_client.setdefault((account.api_key, order.symbol, order.client_id), []).append(order)
        log.info(
            "sim.order_placed venue=%s order=%d symbol=%s side=%s type=%s tif=%s status=%s filled=%s fault=%s",
            self.venue_id,
            order.id,
            order.symbol,
            order.side,
            order.type,
            order.time_in_force,
            order.status,
            order.filled,
            order.fault,
        )
        return order

    def _check(self, req: OrderRequest, rules: SymbolRules) -> None:
        market = req.type == "market"
        if req.price is not None:
            rules.check_price(req.price)
        if req.amount is not None:
            rules.check_qty(req.amount)
        if req.quote_amount is not None:
            rules.check_notional(req.quote_amount, market=True)
        elif req.amount is not None:
            price = req.price if req.price is not None else self._mid(req.symbol)
            rules.check_notional(price * req.amount, market=market)

    def _would_take(self, req: OrderRequest) -> bool:
        best = next(self._levels(req.symbol, req.side), None)
        if best is None or req.price is None:
            return False
        return req.price >= best[0] if req.side == "buy" else req.price <= best[0]

    def _check_funds(self, account: Account, req: OrderRequest, rules: SymbolRules, fills: Sequence[Fill]) -> None:
        if req.side == "buy":
            asset = rules.quote
            if req.quote_amount is not None:
                need = req.quote_amount
            elif req.type == "limit" and req.price is not None and req.amount is not None:
                need = req.price * req.amount
            else:
                need = sum((p * q for p, q in fills), Decimal(0))
            if self.fee_in_quote:  # the taker fee comes on top, in the same asset
                need += (need * _rate(account.taker_fee, self.taker_fee)).quantize(FEE_QUANTUM, ROUND_HALF_UP)
        else:
            asset = rules.base
            need = req.amount if req.amount is not None else sum((q for _, q in fills), Decimal(0))
        if account.balance(asset).free < need:
            raise Rejection("insufficient_balance", f"needs {need} {asset} free")

    def _fill(
        self, account: Account, order: Order, rules: SymbolRules, price: Decimal, qty: Decimal, *, maker: bool
    ) -> Trade:
        """Book one fill: balances, order totals, a trade. A maker fill spends what the resting order locked."""
        rate = _rate(account.maker_fee if maker else account.taker_fee, self.maker_fee if maker else self.taker_fee)
        cost = price * qty
        base, quote = account.balance(rules.base), account.balance(rules.quote)
        if order.side == "buy" and self.fee_in_quote:
            fee, fee_asset = (cost * rate).quantize(FEE_QUANTUM, ROUND_HALF_UP), rules.quote
            if maker:
                quote.locked -= cost
            else:
                quote.free -= cost
            quote.free -= fee
            base.free += qty
        elif order.side == "buy":
            fee, fee_asset = (qty * rate).quantize(FEE_QUANTUM, ROUND_HALF_UP), rules.base
            if maker:
                quote.locked -= cost
            else:
                quote.free -= cost
            base.free += qty - fee
        else:
            fee, fee_asset = (cost * rate).quantize(FEE_QUANTUM, ROUND_HALF_UP), rules.quote
            if maker:
                base.locked -= qty
            else:
                base.free -= qty
            quote.free += cost - fee
        now = self.clock_ms()
        trade = Trade(
            next(self._trade_ids),
            order.id,
            account.api_key,
            order.symbol,
            order.side,
            price,
            qty,
            cost,
            fee,
            fee_asset,
            maker,
            now,
        )
        order.trades.append(trade)
        order.filled += qty
        order.cost += cost
        order.fee += fee
        order.fee_asset = fee_asset
        order.updated_ms = account.updated_ms = now
        self.trades.append(trade)
        return trade

    def _settle_new(self, account: Account, order: Order, rules: SymbolRules, *, cancelled: bool) -> None:
        """The status of a just-matched order; a GTC remainder rests with its funds locked."""
        if order.quote_amount is not None:  # a market order by quote amount: filled is what it bought / sold
            order.amount = order.filled
            order.status = "filled" if order.filled else "expired"
            order.end_reason = None if order.filled else "ioc_remainder"
        elif order.remaining <= 0:
            order.status = "filled"
        elif cancelled:
            order.status, order.end_reason = "canceled", "by_venue"
        elif order.type == "limit" and order.time_in_force == "GTC":
            order.status = "partially_filled" if order.filled else "new"
            self._lock(account, order, rules, +1)
            self._resting.setdefault(order.symbol, []).append(order)
        else:
            order.status = "expired"
            order.end_reason = "fok_unfilled" if order.time_in_force == "FOK" else "ioc_remainder"

    @staticmethod
    def _lock(account: Account, order: Order, rules: SymbolRules, sign: int) -> None:
        """Move a resting order's remainder from free to locked (sign +1) or back (-1)."""
        if order.side == "buy":
            bal, amount = account.balance(rules.quote), (order.price or Decimal(0)) * order.remaining
        else:
            bal, amount = account.balance(rules.base), order.remaining
        bal.free -= sign * amount
        bal.locked += sign * amount

    # ------------------------------------------------------------------ lookups and cancels

    def _open_by_client(self, api_key: str, symbol: str, client_id: str) -> Order | None:
        for order in reversed(self._by_client.get((api_key, symbol, client_id), ())):
            if order.is_open:
                return order
        return None

    def find(
        self, account: Account, symbol: str, *, order_id: int | None = None, client_id: str | None = None
    ) -> Order:
        """The account's order on `symbol` by venue id, else by client id (the newest with it); with both, they must
        name the same order. NoSuchOrder otherwise."""
        if order_id is not None:
            order = self.orders.get(order_id)
            if order is None or order.api_key != account.api_key or order.symbol != symbol:
                raise NoSuchOrder(f"no order {order_id} on {symbol}")
            if client_id is not None and order.client_id != client_id:
                raise NoSuchOrder(f"order {order_id} does not have client id {client_id!r}")
            return order
        if client_id:
            same = self._by_client.get((account.api_key, symbol, client_id))
            if same:
                return same[-1]
        raise NoSuchOrder(f"no order with client id {client_id!r} on {symbol}")

    def cancel(
        self, account: Account, symbol: str, *, order_id: int | None = None, client_id: str | None = None
    ) -> Order:
        """Cancel an open order (its locked funds are freed); NoSuchOrder, or OrderClosed if it is already final."""
        order = self.find(account, symbol, order_id=order_id, client_id=client_id)
        if not order.is_open:
            raise OrderClosed(order)
        self._lock(account, order, self.rules(symbol), -1)
        order.status, order.end_reason = "canceled", "by_user"
        order.updated_ms = account.updated_ms = self.clock_ms()
        self._resting[symbol].remove(order)
        if not self._resting[symbol]:
            del self._resting[symbol]
        log.info(
            "sim.order_canceled venue=%s order=%d symbol=%s filled=%s", self.venue_id, order.id, symbol, order.filled
        )
        return order

    def open_orders(self, account: Account, symbol: str | None = None) -> list[Order]:
        books = [symbol] if symbol is not None else list(self._resting)
        return sorted(
            (o for s in books for o in self._resting.get(s, ()) if o.api_key == account.api_key),
            key=lambda o: o.id,
        )

    def account_orders(self, account: Account, symbol: str) -> list[Order]:
        return [o for o in self.orders.values() if o.api_key == account.api_key and o.symbol == symbol]

    def account_trades(self, account: Account, symbol: str) -> list[Trade]:
        return [t for t in self.trades if t.api_key == account.api_key and t.symbol == symbol]

    # ------------------------------------------------------------------ resting orders vs the moving book

    def on_updates(self, updates: Sequence[BookUpdate]) -> None:
        """Fill resting orders that the venue's book now crosses (called with every batch of book updates)."""
        if not self._resting:
            return
        for upd in updates:
            symbol = upd.book.symbol
            if symbol in self._resting:
                self._match_resting(symbol)

    def _match_resting(self, symbol: str) -> None:
        rules = self.rules(symbol)
        for side in ("buy", "sell"):
            orders = [o for o in self._resting[symbol] if o.side == side]
            if not orders:
                continue
            orders.sort(key=lambda o: (-(o.price or 0) if side == "buy" else (o.price or 0), o.id))
            pool = [[p, q] for p, q in self._levels(symbol, side)]
            for order in orders:
                qty = _take_crossing(pool, order)
                if qty:
                    self._fill(self.accounts[order.api_key], order, rules, order.price or Decimal(0), qty, maker=True)
                    order.status = "filled" if order.remaining <= 0 else "partially_filled"
                    log.info(
                        "sim.order_filled_resting venue=%s order=%d qty=%s status=%s",
                        self.venue_id,
                        order.id,
                        qty,
                        order.status,
                    )
        remaining = [o for o in self._resting[symbol] if o.is_open]
        if remaining:
            self._resting[symbol] = remaining
        else:
            del self._resting[symbol]

    # ------------------------------------------------------------------ control (JSON bodies for /_sim/)

    def apply_account_change(self, body: bytes) -> dict[str, Any]:
        """`POST /_sim/accounts`; ValueError / msgspec errors name the bad field."""
        change = msgspec.json.decode(body, type=AccountChange)
        taker = None if change.taker_fee is None else to_decimal(change.taker_fee, "taker_fee")
        maker = None if change.maker_fee is None else to_decimal(change.maker_fee, "maker_fee")
        balances = _amounts(change.balances or {}, "balances")
        deposit = _amounts(change.deposit or {}, "deposit")
        if change.api_key not in self.accounts:
            if not change.secret:
                raise ValueError(f"no account {change.api_key!r}: give `secret` to create it")
            self.create_account(
                change.api_key,
                change.secret,
                passphrase=change.passphrase,
                balances=balances,
                taker_fee=taker,
                maker_fee=maker,
            )
        else:
            account = self.fund(change.api_key, balances)
            account.taker_fee = taker if taker is not None else account.taker_fee
            account.maker_fee = maker if maker is not None else account.maker_fee
            if change.secret is not None:
                account.secret = change.secret
            if change.passphrase is not None:
                account.passphrase = change.passphrase
        self.fund(change.api_key, deposit, add=True)
        return self.account_json(change.api_key)

    def account_json(self, api_key: str) -> dict[str, Any]:
        """An account as the control endpoints show it (never its secret or passphrase)."""
        account = self.account(api_key)
        return {
            "api_key": account.api_key,
            "uid": account.uid,
            "taker_fee": str(_rate(account.taker_fee, self.taker_fee)),
            "maker_fee": str(_rate(account.maker_fee, self.maker_fee)),
            "balances": {
                a: {"free": str(b.free), "locked": str(b.locked)} for a, b in sorted(account.balances.items())
            },
            "open_orders": len(self.open_orders(account)),
        }

    def arm_fault(self, body: bytes) -> dict[str, Any]:
        """`POST /_sim/order-faults`."""
        self.faults.arm(_FAULT_DECODER.decode(body))
        return self.faults.state()

    def orders_json(self, api_key: str | None = None, symbol: str | None = None) -> dict[str, Any]:
        """`GET /_sim/orders`: every order the venue knows (of one account / symbol), oldest first, with trades."""
        return {
            "orders": [
                order_json(o)
                for o in self.orders.values()
                if (api_key is None or o.api_key == api_key) and (symbol is None or o.symbol == symbol)
            ]
        }


Fill = tuple[Decimal, Decimal]


def order_json(order: Order) -> dict[str, Any]:
    return {
        "id": order.id,
        "client_id": order.client_id,
        "api_key": order.api_key,
        "symbol": order.symbol,
        "side": order.side,
        "type": order.type,
        "time_in_force": order.time_in_force,
        "post_only": order.post_only,
        "price": None if order.price is None else str(order.price),
        "amount": str(order.amount),
        "quote_amount": None if order.quote_amount is None else str(order.quote_amount),
        "status": order.status,
        "filled": str(order.filled),
        "cost": str(order.cost),
        "fee": str(order.fee),
        "fee_asset": order.fee_asset,
        "created_ms": order.created_ms,
        "updated_ms": order.updated_ms,
        "fault": order.fault,
        "end_reason": order.end_reason,
        "trades": [
            {
                "id": t.id,
                "price": str(t.price),
                "amount": str(t.amount),
                "cost": str(t.cost),
                "fee": str(t.fee),
                "fee_asset": t.fee_asset,
                "maker": t.maker,
                "ts_ms": t.ts_ms,
            }
            for t in order.trades
        ],
    }


def _check_shape(req: OrderRequest) -> None:
    """What the protocol must have parsed: a limit order has a price and an amount, a market order an amount or a
    quote amount (exactly one). ValueError otherwise (a protocol bug, not a venue rejection)."""
    if req.type == "limit" and (req.price is None or req.amount is None or req.quote_amount is not None):
        raise ValueError(f"a limit order needs a price and an amount only: {req}")
    if req.type == "market" and (req.price is not None or (req.amount is None) == (req.quote_amount is None)):
        raise ValueError(f"a market order needs an amount or a quote amount, and no price: {req}")


def mask(api_key: str) -> str:
    """An API key as logs show it: its first four characters only."""
    return api_key[:4] + "***"


def _rate(own: Decimal | None, venue: Decimal) -> Decimal:
    return venue if own is None else own


def _id_base(venue_id: str, scale: int) -> int:
    """A venue's first id: different per venue, and above every id an earlier start of the sim gave out (as a real
    venue's ids never repeat): a ledger kept across runs books a fill once per (venue, trade id), so a restarted
    sim reusing trade ids would have its new fills taken for ones already booked. The start second (since 2023-11)
    times 10**6 leaves room for a million ids a second of the earlier run and stays below 2**53 (JSON numbers)."""
    since = max(0, int(time.time()) - 1_700_000_000)
    return since * 10**6 + scale + int(stable_unit(f"{venue_id}|ids") * scale) // 1000 * 1000


def _walk(levels: Iterable[Fill], req: OrderRequest, rules: SymbolRules) -> list[Fill]:
    """The fills a taker order gets walking `levels` (best first): up to its limit price, its amount or its quote
    amount, whichever binds first; stops where depth runs out."""
    fills: list[Fill] = []
    left = req.amount
    quote_left = req.quote_amount
    for price, size in levels:
        if req.price is not None and (price > req.price if req.side == "buy" else price < req.price):
            break
        if quote_left is not None:
            qty = min(size, rules.floor_qty(quote_left / price))
            quote_left -= price * qty
        else:
            qty = min(size, left or Decimal(0))
            left = (left or Decimal(0)) - qty
        if qty <= 0:
            break
        fills.append((price, qty))
    return fills


def _truncate(fills: Sequence[Fill], target: Decimal) -> list[Fill]:
    """The first fills up to `target` in total (the last one cut short)."""
    out: list[Fill] = []
    left = target
    for price, qty in fills:
        if left <= 0:
            break
        take = min(qty, left)
        out.append((price, take))
        left -= take
    return out


def _take_crossing(pool: list[list[Decimal]], order: Order) -> Decimal:
    """Take from `pool` (the opposite side's levels, best first, sizes decremented in place) what crosses `order`'s
    price, up to its remainder; returns the amount taken."""
    price = order.price or Decimal(0)
    want = order.remaining
    got = Decimal(0)
    for level in pool:
        if want <= 0 or (level[0] > price if order.side == "buy" else level[0] < price):
            break
        take = min(level[1], want)
        level[1] -= take
        want -= take
        got += take
    return got
