"""Trading on a CEX through ccxt: `CcxtGateway`, the `arb.executor.venue.VenueGateway` of every ccxt venue (live,
or a local one via `point_at_local`).

    async with CcxtGateway("binance", settings.venues["binance"], credentials) as gateway:
        if (problem := gateway.check_order(order)) is None:
            report = await gateway.create_order(order)

What it guarantees the executor (FAULTS E2, E3, E6, E10-E14):

- **Nothing is ever resent.** ccxt's own retries are off (`maxRetriesOnFailure: 0`, STYLE: errors); a create or
  cancel that times out or loses its connection raises `RequestTimedOut` and the order is resolved by
  `fetch_order(symbol, client_id)`. The one retry anywhere: a *read* refused for its timestamp is sent once more
  after the clock offset is resynced (E11); a write so refused raises `VenueAuthError` (it was not placed).
- **Every call is bounded** by `timeout_s`, at the asyncio level (rate-limiter waits included) and as ccxt's HTTP
  `timeout`; a lookup by client id is at most two such calls (open orders, then recent ones), plus one for trades.
- **Rate limits** (`arb.connectors.order_limits.OrderLimiter`): ccxt's weight limiter (`enableRateLimit`) paces
  requests; the venue's order-count windows (`VenueConfig.order_rate_limits`) gate creates and cancels; after a
  429/418 no call of any kind reaches the venue until its Retry-After has passed (E10); after a maintenance answer or
  a refused connection the venue is refused locally for a backoff, never polled in a loop (E13).
- **Client ids** are the venue's own field, sent, found and cancelled by the venue's dialect
  (`arb.connectors.order_dialects`): Binance `newClientOrderId` / `origClientOrderId` and OKX `clOrdId` through
  ccxt's unified `clientOrderId`; Bybit `orderLinkId` (looked up among open and recent orders, then the history);
  Kraken `cl_ord_id` (an id longer than Kraken's 18 characters of free text goes as a short UUID derived from it,
  the same every time; open, then closed orders filtered by it); Coinbase `client_order_id` (no lookup by it: the
  product's open orders, then its newest ones, are listed and matched; a cancel finds the venue id first). Reports
  always carry our id. `check_order` refuses one the venue would (E14, on the id as sent), with off-tick prices,
  off-step amounts and notionals below the minimum, using ccxt's precision helpers on the venue's own market rules.
  Amounts and prices are sent as the strings those helpers return. Kraken's private calls go one at a time, so its
  nonces arrive in the order they were signed (E12 within one gateway).
- **Reports** carry the venue's fills (trade id, Decimal price, amount, fee and fee currency), from the order's own
  trades when the venue returns them (Binance's FULL answer), else from its trades by order id (Kraken: by the trade
  ids its order lists; Coinbase: its fills filtered by order id). ccxt's unified
  numbers are floats; they are read back through their shortest repr, which is exact for the venue's decimal strings
  of up to 15 significant digits (every spot price, amount and fee arb trades).
- **Keys never leak**: not in `repr`, exception messages (every key and `signature` masked, `wallets.redact`) or
  logs, ccxt's DEBUG request logs included (its logger is replaced with a masking one).

Status mapping (ccxt -> `OrderStatus`): open with nothing filled -> ACKED, open and partly filled ->
PARTIALLY_FILLED, closed -> FILLED, canceled / expired (an IOC remainder) -> CANCELLED, rejected -> REJECTED; where
ccxt's status is wrong the venue's own decides (Bybit's PartiallyFilledCanceled, which ccxt calls closed, ->
CANCELLED; Coinbase's FAILED -> REJECTED). A venue that answers a new order or a cancel with ids only (OKX, Bybit,
Kraken, Coinbase) is asked for the order at once (by its venue id where ccxt can read one in a single call, else by
client id); if that read fails the report is ACKED with nothing filled, and the executor resolves it like any open
order.

Error mapping (ccxt -> `arb.executor.venue`): InvalidOrder / InsufficientFunds / any venue refusal of a create ->
OrderRejected; RequestTimeout, a connection lost mid-request, an unreadable answer -> RequestTimedOut;
DDoSProtection / RateLimitExceeded -> VenueRateLimited (Retry-After from the answer's headers); AuthenticationError
/ PermissionDenied / InvalidNonce -> VenueAuthError; OnMaintenance, or no connection at all -> VenueUnavailable;
another 5xx (ExchangeNotAvailable) -> VenueUnavailable on a read, RequestTimedOut on a create or cancel (Binance: its
outcome is unknown); OrderNotFound, or no order with the client id in a lookup -> OrderNotFound (on cancel: the
order is fetched instead, E6). Errors ccxt raises too generically are first read as the venue means them (the
dialect's table): Kraken "EAPI:Invalid signature" (a plain ExchangeError) -> AuthenticationError, "EOrder:Invalid
order" on a read and "EOrder:Unknown order" on a cancel (InvalidOrder) -> OrderNotFound; Bybit 10016 "Server error"
(ExchangeError) -> ExchangeNotAvailable; a Coinbase cancel refused as UNKNOWN_CANCEL_ORDER / ORDER_IS_FULLY_FILLED
(ccxt: a bare BadRequest) -> OrderNotFound. Every 5xx, maintenance answer or refused connection starts the venue's
local backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import logging
import re
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

import aiohttp
import ccxt

from arb.connectors.order_dialects import KRAKEN_CL_ORD_ID, Dialect, Step, dialect_for
from arb.connectors.order_limits import OrderLimiter
from arb.connectors.polling import close_shielded, rest_exchange
from arb.connectors.wallets import ccxt_rest_factory, redact
from arb.executor.venue import (
    GatewayError,
    Market,
    OrderNotFound,
    OrderRejected,
    OrderReport,
    RequestTimedOut,
    VenueAuthError,
    VenueRateLimited,
    VenueUnavailable,
)
from arb.model import Fill, Order, OrderStatus, OrderType, Side, TimeInForce

if TYPE_CHECKING:
    from arb.config.schema import VenueConfig
    from arb.connectors.ccxt_pro import LocalEndpoint
    from arb.connectors.wallets import Credentials

log = logging.getLogger(__name__)

T = TypeVar("T")
Kind = Literal["create", "cancel", "read"]
ExchangeFactory = Callable[[str, dict[str, Any]], Any]

CLOCK_SKEW_ALERT_MS: Final = 500
"""A resynced clock offset larger than this is logged as `gateway.clock_skew` (FAULTS E11)."""
OPEN_TIMEOUT_S: Final = 30.0
"""Bound on loading the venue's markets at open (several throttled requests; no order waits on it)."""
DEFAULT_RETRY_AFTER_S: Final = 10.0
"""Quiet time after a 429/418 that names none (Binance and the local venues always send Retry-After)."""
_BANNED_UNTIL: Final = re.compile(r"banned until (\d{13})")
_SIGNED: Final = re.compile(r"((?:signature|sign)['\"]?\s*[:=]\s*['\"]?)[^'\"&\s,}]+", re.IGNORECASE)
_CLIENT_IDS: Final = {
    # https://developers.binance.com/docs/binance-spot-api-docs/rest-api (New order: newClientOrderId, "-1100 ...
    # legal range is '^[\.A-Z\:/a-z0-9_-]{1,36}$'")
    "binance": (re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$"), "1-36 of A-Z a-z 0-9 . : / _ -"),
    # https://www.okx.com/docs-v5/en/#order-book-trading-trade-post-place-order (clOrdId: "case-sensitive
    # alphanumerics ... up to 32 characters")
    "okx": (re.compile(r"^[A-Za-z0-9]{1,32}$"), "1-32 letters and digits"),
    # https://bybit-exchange.github.io/docs/v5/order/create-order (orderLinkId: "The max length is 36 characters.
    # Combinations of numbers, letters (upper and lower cases), dashes, and underscores are supported.")
    "bybit": (re.compile(r"^[A-Za-z0-9_-]{1,36}$"), "1-36 of A-Z a-z 0-9 _ -"),
    # https://docs.kraken.com/api/docs/rest-api/add-order (cl_ord_id: a long UUID, a short UUID of 32 hex digits, or
    # "free format ascii text up to 18 characters"); checked on the id as sent: a longer one goes as a short UUID
    "kraken": (KRAKEN_CL_ORD_ID, "a UUID, 32 hex digits or 1-18 printable ASCII characters"),
    # Coinbase Advanced Trade (client_order_id) documents no format: anything non-empty.
}
"""What each venue accepts as a client order id (others: anything non-empty), checked on the id as sent."""


def to_decimal(value: Any) -> Decimal | None:
    """A ccxt unified number as a Decimal (floats through their shortest repr; None / non-finite -> None)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        d = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def _plain(d: Decimal) -> str:
    """`d` without an exponent (ccxt's precision helpers expect plain decimal strings)."""
    return format(d, "f")


def ccxt_status(raw: str | None, filled: Decimal) -> OrderStatus:
    """The executor's status for a ccxt order status and filled amount (module docstring)."""
    if raw == "closed":
        return OrderStatus.FILLED
    if raw in ("canceled", "cancelled", "expired"):
        return OrderStatus.CANCELLED
    if raw == "rejected":
        return OrderStatus.REJECTED
    return OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.ACKED


class _MaskingLogger:
    """Stands in for ccxt's logger: every line with keys and signatures masked (ccxt DEBUG logs request headers)."""

    def __init__(self, target: logging.Logger, mask: Callable[[str], str]) -> None:
        self._target = target
        self._mask = mask

    def isEnabledFor(self, level: int) -> bool:
        return self._target.isEnabledFor(level)

    def log(self, level: int, msg: object, *args: object, **_: object) -> None:
        if self._target.isEnabledFor(level):
            text = str(msg) % args if args else str(msg)
            self._target.log(level, "%s", self._mask(text))

    def debug(self, msg: object, *args: object, **kw: object) -> None:
        self.log(logging.DEBUG, msg, *args, **kw)

    def info(self, msg: object, *args: object, **kw: object) -> None:
        self.log(logging.INFO, msg, *args, **kw)

    def warning(self, msg: object, *args: object, **kw: object) -> None:
        self.log(logging.WARNING, msg, *args, **kw)

    def error(self, msg: object, *args: object, **kw: object) -> None:
        self.log(logging.ERROR, msg, *args, **kw)


@dataclass(frozen=True, slots=True)
class _Rules:
    """A market's rules: what `Market` shows plus the upper limits `check_order` also applies."""

    market: Market
    max_amount: Decimal | None
    min_price: Decimal | None
    max_price: Decimal | None
    max_notional: Decimal | None


def _rules_of(exchange: Any, symbol: str, m: dict[str, Any], taker_fee: Decimal) -> _Rules:
    """A ccxt market's trading rules as the executor checks them before sending."""
    precision, limits = m.get("precision") or {}, m.get("limits") or {}

    def limit(kind: str, bound: str) -> Decimal | None:
        return to_decimal((limits.get(kind) or {}).get(bound))

    def step(value: Any) -> Decimal | None:
        """A ccxt precision value as a step: itself in TICK_SIZE mode, 10^-n in DECIMAL_PLACES mode."""
        d = to_decimal(value)
        if d is None:
            return None
        if exchange.precisionMode == ccxt.TICK_SIZE:
            return d
        if exchange.precisionMode == ccxt.DECIMAL_PLACES:
            return Decimal(1).scaleb(-int(d))
        return None  # significant digits: no fixed step

    market = Market(
        symbol=symbol, base=m["base"], quote=m["quote"], amount_step=step(precision.get("amount")),
        price_tick=step(precision.get("price")), min_amount=limit("amount", "min"), min_notional=limit("cost", "min"),
        taker_fee=taker_fee,
    )  # fmt: skip
    return _Rules(market, limit("amount", "max"), limit("price", "min"), limit("price", "max"), limit("cost", "max"))


async def public_markets(
    venue_id: str,
    config: VenueConfig,
    symbols: Iterable[str],
    *,
    endpoint: LocalEndpoint | None = None,
    ccxt_id: str | None = None,
    factory: ExchangeFactory = ccxt_rest_factory,
    timeout_s: float = OPEN_TIMEOUT_S,
) -> dict[str, Market]:
    """The trading rules of `symbols` on the venue from its public market data, with no keys: what paper trading on
    real market data sizes orders by (`arb.executor.paper`). A symbol the venue does not list is left out (logged);
    a venue that cannot be asked raises VenueUnavailable."""
    ccxt_config = {"enableRateLimit": True, "timeout": int(timeout_s * 1000), "options": {"fetchCurrencies": False}}
    exchange = rest_exchange(factory, ccxt_id or config.ccxt_id or venue_id, ccxt_config, endpoint)
    try:
        try:
            await asyncio.wait_for(exchange.load_markets(), timeout_s)
        except (TimeoutError, ccxt.BaseError) as exc:
            raise VenueUnavailable(venue_id, f"markets could not be loaded: {type(exc).__name__}") from None
        out: dict[str, Market] = {}
        taker = Decimal(repr(config.fees.taker))
        for symbol in symbols:
            m = exchange.markets.get(symbol)
            if m is None:
                log.warning("gateway.symbol_not_listed venue=%s symbol=%s", venue_id, symbol)
                continue
            out[symbol] = _rules_of(exchange, symbol, m, taker).market
        return out
    finally:
        await close_shielded(exchange, f"markets-{venue_id}-close")


class CcxtGateway:
    """One venue's trading access through its ccxt REST class (module docstring). Use as `async with`; it cannot be
    reopened. `limiter`: share one `OrderLimiter` among gateways trading the same account (default: its own, from
    `config.order_rate_limits`). `ccxt_id` overrides `config.ccxt_id`, as for the connectors: a local venue served
    in another exchange's format is traded with that exchange's class."""

    def __init__(
        self,
        venue_id: str,
        config: VenueConfig,
        credentials: Credentials,
        *,
        endpoint: LocalEndpoint | None = None,
        timeout_s: float = 5.0,
        factory: ExchangeFactory = ccxt_rest_factory,
        limiter: OrderLimiter | None = None,
        ccxt_id: str | None = None,
    ) -> None:
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        if config.kind != "cex":
            raise ValueError(f"venue {venue_id} is not a ccxt (cex) venue")
        self.ccxt_id = ccxt_id or config.ccxt_id or venue_id
        self._dialect: Dialect = dialect_for(self.ccxt_id)
        self._serial: contextlib.AbstractAsyncContextManager[Any] = (
            asyncio.Lock() if self._dialect.serial else contextlib.nullcontext()
        )
        self._venue = venue_id
        self._config = config
        self._credentials = credentials
        self._secrets = credentials.values()
        self._endpoint = endpoint
        self.timeout_s = timeout_s
        self._factory = factory
        self.limiter = limiter or OrderLimiter(venue_id, config.order_rate_limits)
        self._exchange: Any = None
        self._state: Literal["new", "opening", "open", "closed"] = "new"
        self._rules: dict[str, _Rules] = {}
        self._resync_lock = asyncio.Lock()
        self._clock_generation = 0

    def __repr__(self) -> str:
        return f"CcxtGateway(venue={self._venue!r}, ccxt_id={self.ccxt_id!r}, state={self._state!r})"

    @property
    def venue(self) -> str:
        return self._venue

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> CcxtGateway:
        if self._state != "new":
            raise RuntimeError(f"gateway {self._venue} was already opened; make a new one")
        self._state = "opening"
        config: dict[str, Any] = {
            **self._credentials.ccxt_config(),
            "enableRateLimit": True,
            "timeout": int(self.timeout_s * 1000),
            "options": {"maxRetriesOnFailure": 0, "fetchCurrencies": False, "fetchMargins": False},
            **copy.deepcopy(dict(self._dialect.ccxt_config)),
        }
        exchange = rest_exchange(self._factory, self.ccxt_id, config, self._endpoint)
        exchange.logger = _MaskingLogger(logging.getLogger(f"{__name__}.ccxt"), self._mask)
        self._exchange = exchange
        prepare = self._dialect.prepare
        try:
            await self._request("load_markets", exchange.load_markets, "read", max(self.timeout_s, OPEN_TIMEOUT_S))
            if prepare is not None:
                await self._request("prepare", lambda: prepare(exchange), "read")
        except BaseException:
            await self.aclose()
            raise
        self._state = "open"
        log.info("gateway.opened venue=%s ccxt_id=%s markets=%d", self._venue, exchange.id, len(exchange.markets))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._state = "closed"
        exchange, self._exchange = self._exchange, None
        if exchange is not None:
            await close_shielded(exchange, f"gateway-{self._venue}-close")

    def _opened(self) -> Any:
        if self._state != "open":
            raise RuntimeError(f"gateway {self._venue} is {self._state}, not open")
        return self._exchange

    # ------------------------------------------------------------------ market rules

    def _rules_for(self, symbol: str) -> _Rules:
        exchange = self._opened()
        rules = self._rules.get(symbol)
        if rules is not None:
            return rules
        m = exchange.markets.get(symbol)
        if m is None:
            raise KeyError(f"{self._venue} does not list {symbol!r}")
        # the account's configured taker rate, not the market's base tier
        rules = self._rules[symbol] = _rules_of(exchange, symbol, m, Decimal(repr(self._config.fees.taker)))
        return rules

    def market(self, symbol: str) -> Market:
        return self._rules_for(symbol).market

    def amount_to_precision(self, symbol: str, amount: Decimal) -> Decimal:
        """ccxt's `amount_to_precision` (truncated to the step); 0 when that leaves nothing."""
        self._rules_for(symbol)
        try:
            return Decimal(self._exchange.amount_to_precision(symbol, _plain(amount)))
        except ccxt.InvalidOrder:  # ccxt refuses a result of 0
            return Decimal(0)

    def price_to_precision(self, symbol: str, price: Decimal) -> Decimal:
        self._rules_for(symbol)
        return Decimal(self._exchange.price_to_precision(symbol, _plain(price)))

    def check_order(self, order: Order) -> str | None:
        if order.venue != self._venue:
            return f"order is for venue {order.venue!r}, this gateway trades on {self._venue!r}"
        try:
            rules = self._rules_for(order.symbol)
        except KeyError:
            return f"{self._venue} does not list {order.symbol!r}"
        return (
            self._check_client_id(order.client_id)
            or self._check_amount(order, rules)
            or self._check_price(order, rules)
        )

    def _check_client_id(self, client_id: str) -> str | None:
        rule = _CLIENT_IDS.get(self.ccxt_id)
        if not client_id:
            return "client_id is empty"
        if rule is not None and not rule[0].match(self._dialect.wire_id(client_id)):
            return f"client_id {client_id!r} is not a valid {self._venue} client order id ({rule[1]})"
        return None

    def _check_amount(self, order: Order, rules: _Rules) -> str | None:
        amount, m = order.amount, rules.market
        if not amount.is_finite() or amount <= 0:
            return f"amount must be a positive number, got {amount}"
        if self.amount_to_precision(order.symbol, amount) != amount:
            return f"amount {amount} is off the step {m.amount_step} of {order.symbol}"
        if m.min_amount is not None and amount < m.min_amount:
            return f"amount {amount} is below the minimum {m.min_amount} of {order.symbol}"
        if rules.max_amount is not None and amount > rules.max_amount:
            return f"amount {amount} is above the maximum {rules.max_amount} of {order.symbol}"
        return None

    def _check_price(self, order: Order, rules: _Rules) -> str | None:
        if order.type == OrderType.MARKET:
            return "a market order cannot be post-only" if order.time_in_force == TimeInForce.POST_ONLY else None
        price, m = order.price, rules.market
        if price is None or not price.is_finite() or price <= 0:
            return f"a limit order needs a positive price, got {price}"
        if self.price_to_precision(order.symbol, price) != price:
            return f"price {price} is off the tick {m.price_tick} of {order.symbol}"
        if (rules.min_price is not None and price < rules.min_price) or (
            rules.max_price is not None and price > rules.max_price
        ):
            return f"price {price} is outside {rules.min_price}..{rules.max_price} for {order.symbol}"
        notional = price * order.amount
        if m.min_notional is not None and notional < m.min_notional:
            return f"notional {notional} is below the minimum {m.min_notional} of {order.symbol}"
        if rules.max_notional is not None and notional > rules.max_notional:
            return f"notional {notional} is above the maximum {rules.max_notional} of {order.symbol}"
        return None

    # ------------------------------------------------------------------ trading

    async def create_order(self, order: Order) -> OrderReport:
        exchange = self._opened()
        problem = self.check_order(order)
        if problem is not None:
            raise OrderRejected(self._venue, f"refused before sending: {problem}")
        await self.limiter.acquire("create", order.symbol)
        params: dict[str, Any] = self._dialect.create_params(self._dialect.wire_id(order.client_id))
        price: str | None = None
        if order.type == OrderType.LIMIT:
            price = exchange.price_to_precision(order.symbol, _plain(order.price or Decimal(0)))
            if order.time_in_force == TimeInForce.POST_ONLY:
                params["postOnly"] = True
            else:
                params["timeInForce"] = order.time_in_force.value
        amount = exchange.amount_to_precision(order.symbol, _plain(order.amount))
        raw = await self._request(
            "create_order",
            lambda: exchange.create_order(order.symbol, order.type.value, order.side.value, amount, price, params),
            "create",
        )
        log.info(
            "gateway.order_created venue=%s client_id=%s symbol=%s side=%s amount=%s price=%s tif=%s status=%s",
            self._venue,
            order.client_id,
            order.symbol,
            order.side.value,
            amount,
            price,
            order.time_in_force.value,
            raw.get("status"),
        )
        return await self._report_after_write(raw, order.symbol, order.client_id, order.side)

    async def fetch_order(self, symbol: str, client_id: str) -> OrderReport:
        self._opened()
        raw = await self._find(symbol, client_id)
        return await self._report(raw, symbol, client_id, None, strict_fills=True)

    async def cancel_order(self, symbol: str, client_id: str) -> OrderReport:
        exchange = self._opened()
        dialect = self._dialect
        await self.limiter.acquire("cancel", symbol)
        if dialect.cancel is not None:
            step, ref = dialect.cancel, dialect.wire_id(client_id)
        else:  # the venue cancels by its own id only: find the order first (OrderNotFound: nothing to cancel)
            found = await self._find(symbol, client_id)
            order_id = _id(found.get("id"))
            if found.get("status") != "open" or order_id is None or dialect.cancel_by_id is None:
                return await self._report(found, symbol, client_id, None, strict_fills=True)
            step, ref = Step("cancel_order", dialect.cancel_by_id), order_id
        try:
            raw = await self._request(step.op, lambda: step.call(exchange, symbol, ref), "cancel")
        except OrderNotFound:
            # Already final (filled, expired, cancelled) or never there: what the venue knows decides (FAULTS E6).
            log.info("gateway.cancel_unknown venue=%s client_id=%s symbol=%s", self._venue, client_id, symbol)
            return await self.fetch_order(symbol, client_id)
        return await self._report_after_write(raw, symbol, client_id, None)

    async def fetch_balances(self) -> dict[str, Decimal]:
        exchange = self._opened()
        params = dict(self._dialect.balance_params)
        raw = await self._request("fetch_balance", lambda: exchange.fetch_balance(params), "read")
        free = raw.get("free") or {}
        return {asset: d for asset, value in free.items() if (d := to_decimal(value)) is not None}

    async def _find(self, symbol: str, client_id: str) -> Mapping[str, Any]:
        """The venue's order with this client id, by the dialect's lookup steps in turn (each one bounded call): an
        answer that is one order is it; in a list, the newest with the id sent. OrderNotFound when none has it."""
        exchange, dialect = self._exchange, self._dialect
        wire_id = dialect.wire_id(client_id)
        for step in dialect.lookup:
            answer = await self._request(step.op, functools.partial(step.call, exchange, symbol, wire_id), "read")
            if isinstance(answer, Mapping):
                return answer
            same = [o for o in answer or () if isinstance(o, Mapping) and o.get("clientOrderId") == wire_id]
            if same:
                return max(same, key=lambda o: o.get("timestamp") or 0)  # lists come newest first: ties keep that
        detail = f"{dialect.lookup[-1].op}: no order with client id {client_id!r} on {symbol}"
        log.info("gateway.order_not_found venue=%s client_id=%s symbol=%s", self._venue, client_id, symbol)
        raise OrderNotFound(self._venue, detail)

    # ------------------------------------------------------------------ reports

    async def _report_after_write(
        self, raw: Mapping[str, Any], symbol: str, client_id: str, side: Side | None
    ) -> OrderReport:
        """The report of a create or cancel answer; an answer without a status (ids only) is completed by a read
        (by the venue id where the dialect can, else by client id), and a failed read is not the write's failure (the
        report is then ACKED, left to the executor to resolve)."""
        if raw.get("status") is None:
            exchange, by_id, order_id = self._exchange, self._dialect.fetch_by_id, _id(raw.get("id"))
            try:
                if by_id is None or order_id is None:
                    return await self.fetch_order(symbol, client_id)
                read = await self._request("fetch_order", lambda: by_id(exchange, symbol, order_id), "read")
                return await self._report(read, symbol, client_id, side, strict_fills=True)
            except GatewayError as exc:
                log.warning(
                    "gateway.order_unconfirmed venue=%s client_id=%s error=%s", self._venue, client_id, exc.detail
                )
                return OrderReport(
                    client_id=client_id, venue_order_id=_id(raw.get("id")), status=OrderStatus.ACKED, filled=Decimal(0)
                )
        return await self._report(raw, symbol, client_id, side, strict_fills=False)

    async def _report(
        self, raw: Mapping[str, Any], symbol: str, client_id: str, side: Side | None, *, strict_fills: bool
    ) -> OrderReport:
        filled = to_decimal(raw.get("filled")) or Decimal(0)
        try:
            fills = await self._fills(raw, symbol, client_id, side, filled)
        except GatewayError:
            if strict_fills:
                raise
            log.warning("gateway.fills_unavailable venue=%s client_id=%s filled=%s", self._venue, client_id, filled)
            fills = ()
        return OrderReport(
            client_id=client_id,
            venue_order_id=_id(raw.get("id")),
            status=ccxt_status(self._dialect.status(raw), filled),
            filled=filled,
            average_price=to_decimal(raw.get("average")) if filled > 0 else None,
            fills=fills,
        )

    async def _fills(
        self, raw: Mapping[str, Any], symbol: str, client_id: str, side: Side | None, filled: Decimal
    ) -> tuple[Fill, ...]:
        """The order's trades as Fills: those in the answer (with a price and amount: Kraken lists bare trade ids),
        else (when something filled) its trades by order id, the dialect's way."""
        trades: list[Any] = [t for t in raw.get("trades") or [] if t.get("price") is not None and t.get("amount")]
        order_id = _id(raw.get("id"))
        if not trades and filled > 0 and order_id is not None:
            exchange, fetch = self._exchange, self._dialect.trades
            trades = await self._request("fetch_order_trades", lambda: fetch(exchange, raw, order_id, symbol), "read")
            trades = [t for t in trades if _id(t.get("order")) in (None, order_id)]
        order_side = side or (Side(raw["side"]) if raw.get("side") in ("buy", "sell") else None)
        out: dict[str, Fill] = {}
        for t in trades:
            fill = self._fill(t, symbol, client_id, order_side, raw.get("timestamp"))
            if fill is not None:
                out.setdefault(fill.trade_id, fill)  # one fill per trade id, whatever the venue repeats
        return tuple(out.values())

    def _fill(self, t: Mapping[str, Any], symbol: str, client_id: str, side: Side | None, order_ts: Any) -> Fill | None:
        trade_id, price, amount = _id(t.get("id")), to_decimal(t.get("price")), to_decimal(t.get("amount"))
        trade_side = Side(t["side"]) if t.get("side") in ("buy", "sell") else side
        if trade_id is None or price is None or amount is None or trade_side is None:
            log.warning("gateway.trade_unusable venue=%s client_id=%s trade_id=%s", self._venue, client_id, trade_id)
            return None
        fee = t.get("fee") or {}
        ts_ms = t.get("timestamp") or order_ts
        return Fill(
            trade_id=trade_id,
            client_id=client_id,
            venue=self._venue,
            symbol=symbol,
            side=trade_side,
            price=price,
            amount=amount,
            fee=to_decimal(fee.get("cost")) or Decimal(0),
            fee_currency=str(fee.get("currency") or ""),
            ts=int(ts_ms) * 1_000_000 if isinstance(ts_ms, int | float) else time.time_ns(),
        )

    # ------------------------------------------------------------------ requests and errors

    async def _request(
        self, op: str, call: Callable[[], Awaitable[T]], kind: Kind, timeout_s: float | None = None
    ) -> T:
        """`call()` under the venue's gate and a timeout (`timeout_s`, default the gateway's); ccxt errors mapped
        (module docstring). A read refused for its timestamp is retried once after a clock resync; nothing else is
        retried."""
        limit = timeout_s or self.timeout_s
        self.limiter.check()
        generation = self._clock_generation
        try:
            async with asyncio.timeout(limit), self._serial:
                result = await call()
        except ccxt.InvalidNonce as exc:
            detail = f"{op}: timestamp refused: {self._detail(str(exc))}"
            await self._resync(generation)
            if kind != "read":
                log.warning(
                    "gateway.call_failed venue=%s op=%s error=VenueAuthError detail=%r", self._venue, op, detail
                )
                raise VenueAuthError(self._venue, detail + " (clock resynced; a write is never resent)") from None
            self.limiter.check()
            try:
                async with asyncio.timeout(limit), self._serial:
                    result = await call()
            except Exception as again:
                raise self._error(op, again, kind, limit) from None
        except Exception as exc:
            raise self._error(op, exc, kind, limit) from None
        self.limiter.succeeded()
        return result

    async def _resync(self, generation: int) -> None:
        """Measure the venue's clock again (ccxt `load_time_difference`), once for all calls refused meanwhile."""
        async with self._resync_lock:
            if generation != self._clock_generation:
                return  # another call resynced since this one was sent
            try:
                self.limiter.check()
                async with asyncio.timeout(self.timeout_s):
                    offset = await self._exchange.load_time_difference()
            except Exception as exc:
                error = exc if isinstance(exc, GatewayError) else self._error("load_time_difference", exc, "read", 0)
                log.warning("gateway.clock_resync_failed venue=%s error=%s", self._venue, error.detail)
                return
            self._clock_generation += 1
            offset_ms = int(offset)
            if abs(offset_ms) > CLOCK_SKEW_ALERT_MS:
                log.warning("gateway.clock_skew venue=%s offset_ms=%d", self._venue, offset_ms)
            else:
                log.info("gateway.clock_resynced venue=%s offset_ms=%d", self._venue, offset_ms)

    def _error(self, op: str, exc: Exception, kind: Kind, timeout_s: float) -> GatewayError:
        """The gateway error for a failed call (and its effect on the venue's gate). Called in the `except` block,
        before any await, so `last_response_headers` are still the failed answer's."""
        detail = f"{op}: {type(exc).__name__}: {self._detail(str(exc))}"
        err = self._classify(op, exc, kind, detail, timeout_s or self.timeout_s)
        log.warning(
            "gateway.call_failed venue=%s op=%s error=%s detail=%r", self._venue, op, type(err).__name__, err.detail
        )
        return err

    def _classify(self, op: str, exc: Exception, kind: Kind, detail: str, timeout_s: float) -> GatewayError:
        """The gateway error for `exc` (the table in the module docstring); checks run most specific first."""
        venue = self._venue
        for rule in self._dialect.errors:  # what this venue means by an error ccxt leaves too generic
            meant = rule.reading(exc, kind)
            if meant is not None:
                exc = meant
                break
        cause = exc.__cause__
        if isinstance(exc, TimeoutError | ccxt.RequestTimeout):
            return RequestTimedOut(venue, f"{op}: no answer within {timeout_s} s")
        if isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
            retry_after = self._retry_after(str(exc))
            left = self.limiter.rate_limited(DEFAULT_RETRY_AFTER_S if retry_after is None else retry_after)
            return VenueRateLimited(venue, detail, left)
        if isinstance(exc, ccxt.ExchangeNotAvailable):
            return self._unavailable(op, exc, kind, detail)
        if isinstance(exc, ccxt.AuthenticationError | ccxt.InvalidNonce):
            return VenueAuthError(venue, detail)
        if isinstance(exc, ccxt.OrderNotFound):
            return OrderNotFound(venue, detail)
        if isinstance(exc, ccxt.OperationFailed) or isinstance(cause, aiohttp.ClientError):
            return RequestTimedOut(venue, detail)  # a network failure or an unreadable answer: outcome unknown
        if isinstance(exc, ccxt.ExchangeError):
            return OrderRejected(venue, detail) if kind == "create" else GatewayError(venue, detail)
        # Not a ccxt error: a failure in the client itself. After a create was sent its outcome is unknown.
        return RequestTimedOut(venue, detail) if kind != "read" else GatewayError(venue, detail)

    def _unavailable(self, op: str, exc: Exception, kind: Kind, detail: str) -> GatewayError:
        """ExchangeNotAvailable: a 5xx / maintenance answer or no connection (the venue is left alone for a
        backoff), or a connection lost mid-request."""
        cause = exc.__cause__
        if cause is not None and not isinstance(cause, aiohttp.ClientConnectorError | socket.gaierror):
            return RequestTimedOut(self._venue, f"{op}: connection lost mid-request ({type(cause).__name__})")
        self.limiter.unavailable(self._retry_after(str(exc)) if cause is None else None)
        if cause is None and kind != "read" and not isinstance(exc, ccxt.OnMaintenance):
            # A 5xx answer to a write other than maintenance: "the execution status is UNKNOWN and could have been
            # a success" (Binance, https://developers.binance.com/docs/binance-spot-api-docs/rest-api, HTTP codes).
            return RequestTimedOut(self._venue, f"{detail} (a 5xx answer to a {kind}: its outcome is unknown)")
        return VenueUnavailable(self._venue, detail)  # maintenance, or never connected: nothing was placed

    def _retry_after(self, message: str) -> float | None:
        """Seconds the venue asked to be left alone: its Retry-After header (delta-seconds or an HTTP date), else
        a ban end in its message ("banned until <ms>", Binance's 418), else None."""
        headers = getattr(self._exchange, "last_response_headers", None) or {}
        for name, value in headers.items():
            if name.lower() == "retry-after":
                try:
                    return max(0.0, float(value))
                except ValueError:
                    pass
                try:
                    return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
                except (TypeError, ValueError):
                    break
        match = _BANNED_UNTIL.search(message)
        if match:
            return max(0.0, int(match.group(1)) / 1000 - time.time())
        return None

    def _mask(self, text: str) -> str:
        """`text` with every key and signature masked (log lines: kept whole)."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _SIGNED.sub(r"\1***", text)

    def _detail(self, text: str) -> str:
        """`text` masked and cut short, for an exception message."""
        return redact(self._mask(text), ())


def _id(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)
