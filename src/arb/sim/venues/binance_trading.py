"""Binance spot's private REST endpoints, served locally: orders, open orders, trades and the account.

Follows https://developers.binance.com/docs/binance-spot-api-docs/rest-api (trading endpoints: "New order (TRADE)"
`POST /api/v3/order` with ACK / RESULT / FULL answers, "Cancel order (TRADE)" `DELETE /api/v3/order`; account
endpoints: "Query order (USER_DATA)" `GET /api/v3/order`, "Current open orders" `GET /api/v3/openOrders`, "All
orders" `GET /api/v3/allOrders`, "Account information" `GET /api/v3/account`, "Account trade list"
`GET /api/v3/myTrades`), its "Request Security" / "Timing security" sections and
https://github.com/binance/binance-spot-api-docs/blob/master/errors.md.

Authentication, checked for real against the venue's accounts (`arb.sim.trading`): the `X-MBX-APIKEY` header must
name an account (missing or malformed: 401 -2014 "API-key format invalid."; unknown: 401 -2015 "Invalid API-key, IP,
or permissions for action."); `signature` is the hex HMAC-SHA256, keyed with the secret, of the query string
concatenated with the body, both without the `signature` parameter (-1022 "Signature for this request is not
valid.", case-insensitive as documented); `timestamp` (ms, or µs) must be less than 1000 ms ahead of server time
and no more than `recvWindow` (default 5000, at most 60000) behind it (-1021 "Timestamp for this request was 1000ms
ahead of the server's time." / "... is outside of the recvWindow."). Missing parameters are -1102 naming them.

Orders: `LIMIT` (GTC / IOC / FOK), `LIMIT_MAKER` (post-only: -2010 "Order would immediately match and take." when
it would cross), `MARKET` by `quantity` or `quoteOrderQty`; `newClientOrderId` unique among open orders (-2010
"Duplicate order sent."); filters from exchangeInfo (the same `SymbolRules`): -1013 "Filter failure: PRICE_FILTER" /
"LOT_SIZE" / "NOTIONAL"; -2010 "Account has insufficient balance for requested action."; an order that cannot be
found: -2013 "Order does not exist." (query) and -2011 "Unknown order sent." (cancel, also of an order already
final). IOC / market remainders and FOK misses end `EXPIRED`. Successful order answers carry `X-MBX-ORDER-COUNT-10S`
and `X-MBX-ORDER-COUNT-1D`. ccxt 4.5.90 maps these to AuthenticationError (-2014, -2015, -1022), InvalidNonce
(-1021), InvalidOrder (PRICE_FILTER / LOT_SIZE bodies, -2010), BadRequest (-1013 NOTIONAL), InsufficientFunds (the
balance message), OrderImmediatelyFillable (the post-only message), OrderNotFound (-2011, -2013) and, for 429 / 418,
DDoSProtection.

What the real client calls (ccxt 4.5.90 `binance`, spot): `create_order` -> `POST /api/v3/order` (form body, with
`newOrderRespType=FULL` and a generated `newClientOrderId`), `fetch_order` -> `GET /api/v3/order` (`orderId`, or
`origClientOrderId` from params `clientOrderId`), `cancel_order` -> `DELETE /api/v3/order`, `fetch_open_orders` ->
`GET /api/v3/openOrders`, `fetch_orders` / `fetch_closed_orders` -> `GET /api/v3/allOrders`, `fetch_my_trades` ->
`GET /api/v3/myTrades`, `fetch_balance` -> `GET /api/v3/account`.

Order faults (`arb.sim.trading`): `reject` answers -2010 "Market is closed." (ccxt: MarketClosed) unless the fault
gives its own code / message; `rate_limit` answers like the venue's own rate limiting (429 / 418, -1003,
Retry-After).

Deviations, on purpose: HMAC keys only (no RSA / Ed25519); stop, trailing, iceberg, pegged and OCO orders are not
served (-1116 "Invalid orderType."), nor `cancelRestrictions`, self-trade prevention or `DELETE /api/v3/openOrders`;
weights are counted in `X-MBX-USED-WEIGHT-1M` but never enforced; order counts are the venue's (not per account),
reported and never enforced; the myTrades / allOrders 24-hour window limits are not enforced; the wallet endpoint
(`binance_wallet`) still takes any key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl

from aiohttp import web

from arb.sim.server import cut_connection
from arb.sim.trading import (
    Account,
    DisconnectFault,
    NoSuchOrder,
    Order,
    OrderClosed,
    OrderFault,
    OrderRequest,
    RateLimitFault,
    RejectFault,
    Rejection,
    SymbolRules,
    Trade,
    VenueLimits,
    deliver,
)

if TYPE_CHECKING:
    from arb.sim.server import SimVenue
    from arb.sim.trading import Trading

DOCS: Final = (
    "https://developers.binance.com/docs/binance-spot-api-docs/rest-api",
    "https://github.com/binance/binance-spot-api-docs/blob/master/errors.md",
)
LIMITS: Final = VenueLimits(min_notional=Decimal(5))
"""The NOTIONAL filter's `minNotional` (USDT 5, Binance's usual spot minimum); Binance's usual maximum notional
(9,000,000), quantity (900,000,000) and price (1,000,000,000)."""
TAKER_FEE: Final = Decimal("0.001")
MAKER_FEE: Final = Decimal("0.001")
"""Regular-user spot rates, paid in the asset received (no BNB discount)."""
RECV_WINDOW_MS: Final = 5000
MAX_RECV_WINDOW_MS: Final = 60_000
MAX_AHEAD_MS: Final = 1000

_MISSING: Final = "Mandatory parameter '{}' was not sent, was empty/null, or malformed."
_DECIMAL_RE: Final = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
_DECIMAL_RANGE: Final = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"
_CLIENT_ID_RE: Final = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
_KEY_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_ID_CHARS: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_STATUS: Final = {
    "new": "NEW",
    "partially_filled": "PARTIALLY_FILLED",
    "filled": "FILLED",
    "canceled": "CANCELED",
    "expired": "EXPIRED",
}
_REJECTIONS: Final = {
    "unknown_symbol": (-1121, "Invalid symbol."),
    "price_filter": (-1013, "Filter failure: PRICE_FILTER"),
    "min_qty": (-1013, "Filter failure: LOT_SIZE"),
    "lot_size": (-1013, "Filter failure: LOT_SIZE"),
    "min_notional": (-1013, "Filter failure: NOTIONAL"),
    "max_notional": (-1013, "Filter failure: NOTIONAL"),
    "duplicate_client_id": (-2010, "Duplicate order sent."),
    "post_only_would_take": (-2010, "Order would immediately match and take."),
    "insufficient_balance": (-2010, "Account has insufficient balance for requested action."),
}
REJECT_FAULT: Final = (-2010, "Market is closed.")
"""What a `reject` order fault answers unless it names its own code / message."""


class BinanceError(Exception):
    """A request Binance refuses: answered `{"code": code, "msg": msg}` with HTTP `status`."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


@dataclass(frozen=True, slots=True)
class _Signed:
    """An authenticated request: its account and its parameters (query string and form body merged)."""

    account: Account
    params: Mapping[str, str]


Respond = Callable[[Any, int], web.Response]
Handler = Callable[[web.Request, _Signed], Awaitable[web.Response]]


def signature(secret: str, payload: str) -> str:
    """Binance's HMAC-SHA256 signature of `payload` (query string + body, without `signature`), hex."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def _f8(x: Decimal | None) -> str:
    return f"{x or Decimal(0):.8f}"


class BinanceTrading:
    """Binance spot's signed endpoints for one venue (see the module docstring)."""

    def __init__(self, *, clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000) -> None:
        self.clock_ms = clock_ms
        self._orders_10s: deque[int] = deque()
        self._orders_day: tuple[int, int] = (0, 0)  # (day number, count)

    def install(
        self,
        venue: SimVenue,
        app: web.Application,
        *,
        market_id: Callable[[str], str],
        respond: Respond,
        error: Callable[[int, int, str], web.Response],
        rate_limited: Callable[[int, int], web.Response],
    ) -> None:
        """Add the signed trading routes to `app` and give the venue's trading core Binance's rules and fees.

        `market_id` maps a unified symbol to the venue's id; `respond(payload, weight)`, `error(status, code, msg)`
        and `rate_limited(status, retry_after_s)` build answers in the venue's format."""
        trading = venue.trading
        trading.configure(taker_fee=TAKER_FEE, maker_fee=MAKER_FEE, limits=LIMITS)
        ctx = _Context(self, venue, trading, market_id, respond, error, rate_limited)
        signed = ctx.signed
        app.router.add_post("/api/v3/order", signed(ctx.new_order))
        app.router.add_get("/api/v3/order", signed(ctx.query_order))
        app.router.add_delete("/api/v3/order", signed(ctx.cancel_order))
        app.router.add_get("/api/v3/openOrders", signed(ctx.open_orders))
        app.router.add_get("/api/v3/allOrders", signed(ctx.all_orders))
        app.router.add_get("/api/v3/myTrades", signed(ctx.my_trades))
        app.router.add_get("/api/v3/account", signed(ctx.account_info))

    def count_order(self) -> tuple[int, int]:
        """Record a new order; the account's order counts over the last 10 s and today (the response headers)."""
        now = self.clock_ms()
        window = self._orders_10s
        window.append(now)
        while window and window[0] <= now - 10_000:
            window.popleft()
        day = now // 86_400_000
        count = self._orders_day[1] + 1 if self._orders_day[0] == day else 1
        self._orders_day = (day, count)
        return len(window), count


class _Context:
    """The route handlers, bound to one venue."""

    def __init__(
        self,
        owner: BinanceTrading,
        venue: SimVenue,
        trading: Trading,
        market_id: Callable[[str], str],
        respond: Respond,
        error: Callable[[int, int, str], web.Response],
        rate_limited: Callable[[int, int], web.Response],
    ) -> None:
        self.owner = owner
        self.venue = venue
        self.trading = trading
        self.market_id = market_id
        self.respond = respond
        self.error = error
        self.rate_limited = rate_limited

    # ------------------------------------------------------------------ authentication

    def signed(self, fn: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            try:
                return await fn(request, await self.authenticate(request))
            except BinanceError as e:
                return self.error(e.status, e.code, e.msg)

        return handler

    async def authenticate(self, request: web.Request) -> _Signed:
        """The request's account and parameters, or BinanceError as Binance answers a badly signed request."""
        query = request.rel_url.raw_query_string
        body = await request.text() if request.can_read_body else ""
        params = _params(query, body)
        key = request.headers.get("X-MBX-APIKEY", "")
        if not _KEY_RE.match(key):
            raise BinanceError(-2014, "API-key format invalid.", 401)
        account = self.trading.accounts.get(key)
        if account is None:
            raise BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        for name in ("signature", "timestamp"):
            if not params.get(name):
                raise BinanceError(-1102, _MISSING.format(name))
        query_part, body_part = _unsigned(query), _unsigned(body)
        if not hmac.compare_digest(params["signature"].lower(), signature(account.secret, query_part + body_part)):
            raise BinanceError(-1022, "Signature for this request is not valid.")
        self.check_timestamp(params)
        return _Signed(account, params)

    def check_timestamp(self, params: Mapping[str, str]) -> None:
        ts = _int(params, "timestamp")
        if ts is not None and ts >= 10**14:  # microseconds
            ts //= 1000
        window = _recv_window(params)
        now = self.owner.clock_ms()
        if ts is None or ts >= now + MAX_AHEAD_MS:
            raise BinanceError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if now - ts > window:
            raise BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")

    # ------------------------------------------------------------------ orders

    def symbol(self, params: Mapping[str, str]) -> str:
        """The unified symbol of the mandatory `symbol` parameter (spot markets only)."""
        symbol = self.optional_symbol(params)
        if symbol is None:
            raise BinanceError(-1102, _MISSING.format("symbol"))
        return symbol

    def optional_symbol(self, params: Mapping[str, str]) -> str | None:
        market_id = params.get("symbol")
        if not market_id:
            return None
        book = self.venue.book(market_id)
        if book is None or book.symbol not in self.trading.books:
            raise BinanceError(-1121, "Invalid symbol.")
        return book.symbol

    async def new_order(self, request: web.Request, signed: _Signed) -> web.Response:
        params = signed.params
        symbol = self.symbol(params)
        order_req, resp_type = _order_request(symbol, params)
        fault = self.trading.faults.take(symbol, order_req.side)
        refused = self.refused_by(fault)
        if refused is not None:
            return refused
        if isinstance(fault, DisconnectFault) and not fault.placed:
            await deliver(fault, lambda: cut_connection(request))
            return web.Response(status=499)  # never reaches the client: the connection is gone
        try:
            order = self.trading.place(signed.account, order_req, fault)
        except Rejection as e:
            code, msg = _REJECTIONS[e.reason]
            return self.error(400, code, msg)
        response = self.respond(self.order_answer(order, resp_type), 1)
        ten_s, day = self.owner.count_order()
        response.headers["X-MBX-ORDER-COUNT-10S"] = str(ten_s)
        response.headers["X-MBX-ORDER-COUNT-1D"] = str(day)
        if not await deliver(fault, lambda: cut_connection(request)):
            return web.Response(status=499)  # never reaches the client: the connection is gone
        return response

    def refused_by(self, fault: OrderFault | None) -> web.Response | None:
        """The answer of a fault that refuses the order outright (nothing placed), else None."""
        if isinstance(fault, RateLimitFault):
            return self.rate_limited(fault.status, fault.retry_after_s)
        if isinstance(fault, RejectFault):
            code = int(fault.code) if fault.code is not None else REJECT_FAULT[0]
            return self.error(400, code, fault.message or REJECT_FAULT[1])
        return None

    def find(self, signed: _Signed, *, new_client_id: bool = False) -> Order:
        """The order named by `orderId` / `origClientOrderId` (-1102 if neither; NoSuchOrder if none matches)."""
        params = signed.params
        symbol = self.symbol(params)
        order_id = _int(params, "orderId")
        client_id = params.get("origClientOrderId") or None
        if order_id is None and client_id is None:
            raise BinanceError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        return self.trading.find(signed.account, symbol, order_id=order_id, client_id=client_id)

    async def query_order(self, request: web.Request, signed: _Signed) -> web.Response:
        try:
            order = self.find(signed)
        except NoSuchOrder:
            raise BinanceError(-2013, "Order does not exist.") from None
        return self.respond(self.order_json(order), 4)

    async def cancel_order(self, request: web.Request, signed: _Signed) -> web.Response:
        try:
            order = self.find(signed)
            self.trading.cancel(signed.account, order.symbol, order_id=order.id)
        except (NoSuchOrder, OrderClosed):
            raise BinanceError(-2011, "Unknown order sent.") from None
        body = self.order_json(order, cancel=True)
        body["clientOrderId"] = signed.params.get("newClientOrderId") or _client_id()
        return self.respond(body, 1)

    async def open_orders(self, request: web.Request, signed: _Signed) -> web.Response:
        symbol = self.optional_symbol(signed.params)
        orders = self.trading.open_orders(signed.account, symbol)
        return self.respond([self.order_json(o) for o in orders], 6 if symbol else 80)

    async def all_orders(self, request: web.Request, signed: _Signed) -> web.Response:
        params = signed.params
        symbol = self.symbol(params)
        orders = self.trading.account_orders(signed.account, symbol)
        first_id = _int(params, "orderId")
        rows = _window(
            [o for o in orders if first_id is None or o.id >= first_id],
            lambda o: o.created_ms,
            params,
            from_start=first_id is not None,
        )
        return self.respond([self.order_json(o) for o in rows], 20)

    async def my_trades(self, request: web.Request, signed: _Signed) -> web.Response:
        params = signed.params
        symbol = self.symbol(params)
        order_id, from_id = _int(params, "orderId"), _int(params, "fromId")
        trades = [
            t
            for t in self.trading.account_trades(signed.account, symbol)
            if (order_id is None or t.order_id == order_id) and (from_id is None or t.id >= from_id)
        ]
        rows = _window(trades, lambda t: t.ts_ms, params, from_start=from_id is not None)
        return self.respond([self.trade_json(t) for t in rows], 5 if order_id is not None else 20)

    async def account_info(self, request: web.Request, signed: _Signed) -> web.Response:
        account = signed.account
        taker = account.taker_fee if account.taker_fee is not None else self.trading.taker_fee
        maker = account.maker_fee if account.maker_fee is not None else self.trading.maker_fee
        omit_zero = signed.params.get("omitZeroBalances", "false").lower() == "true"
        balances = [
            {"asset": asset, "free": _f8(b.free), "locked": _f8(b.locked)}
            for asset, b in sorted(account.balances.items())
            if not (omit_zero and b.total == 0)
        ]
        return self.respond(
            {
                "makerCommission": int(maker * 10_000),
                "takerCommission": int(taker * 10_000),
                "buyerCommission": 0,
                "sellerCommission": 0,
                "commissionRates": {"maker": _f8(maker), "taker": _f8(taker), "buyer": _f8(None), "seller": _f8(None)},
                "canTrade": True,
                "canWithdraw": True,
                "canDeposit": True,
                "brokered": False,
                "requireSelfTradePrevention": False,
                "preventSor": False,
                "updateTime": account.updated_ms,
                "accountType": "SPOT",
                "balances": balances,
                "permissions": ["SPOT"],
                "uid": account.uid,
            },
            20,
        )

    # ------------------------------------------------------------------ rendering

    def order_json(self, order: Order, *, cancel: bool = False) -> dict[str, Any]:
        """An order as `GET /api/v3/order` (or, with `cancel`, `DELETE`) shows it."""
        body: dict[str, Any] = {"symbol": self.market_id(order.symbol)}
        if cancel:
            body["origClientOrderId"] = order.client_id
        body |= {
            "orderId": order.id,
            "orderListId": -1,
            "clientOrderId": order.client_id,
            "price": _f8(order.price),
            "origQty": _f8(order.amount),
            "executedQty": _f8(order.filled),
            "cummulativeQuoteQty": _f8(order.cost),
            "status": _STATUS[order.status],
            "timeInForce": order.time_in_force,
            "type": _order_type(order),
            "side": order.side.upper(),
        }
        if cancel:
            body["transactTime"] = order.updated_ms
        else:
            body |= {
                "stopPrice": _f8(None),
                "icebergQty": _f8(None),
                "time": order.created_ms,
                "updateTime": order.updated_ms,
                "isWorking": True,
                "workingTime": order.created_ms,
            }
        body |= {"origQuoteOrderQty": _f8(order.quote_amount), "selfTradePreventionMode": "NONE"}
        return body

    def order_answer(self, order: Order, resp_type: str) -> dict[str, Any]:
        """The `POST /api/v3/order` answer in `resp_type` (ACK / RESULT / FULL)."""
        ack = {
            "symbol": self.market_id(order.symbol),
            "orderId": order.id,
            "orderListId": -1,
            "clientOrderId": order.client_id,
            "transactTime": order.created_ms,
        }
        if resp_type == "ACK":
            return ack
        result = ack | {
            "price": _f8(order.price),
            "origQty": _f8(order.amount),
            "executedQty": _f8(order.filled),
            "origQuoteOrderQty": _f8(order.quote_amount),
            "cummulativeQuoteQty": _f8(order.cost),
            "status": _STATUS[order.status],
            "timeInForce": order.time_in_force,
            "type": _order_type(order),
            "side": order.side.upper(),
            "workingTime": order.created_ms,
            "selfTradePreventionMode": "NONE",
        }
        if resp_type == "RESULT":
            return result
        result["fills"] = [
            {
                "price": _f8(t.price),
                "qty": _f8(t.amount),
                "commission": _f8(t.fee),
                "commissionAsset": t.fee_asset,
                "tradeId": t.id,
            }
            for t in order.trades
        ]
        return result

    def trade_json(self, trade: Trade) -> dict[str, Any]:
        return {
            "symbol": self.market_id(trade.symbol),
            "id": trade.id,
            "orderId": trade.order_id,
            "orderListId": -1,
            "price": _f8(trade.price),
            "qty": _f8(trade.amount),
            "quoteQty": _f8(trade.cost),
            "commission": _f8(trade.fee),
            "commissionAsset": trade.fee_asset,
            "time": trade.ts_ms,
            "isBuyer": trade.side == "buy",
            "isMaker": trade.maker,
            "isBestMatch": True,
        }


# ---------------------------------------------------------------------------------------------------- parsing


def _params(query: str, body: str) -> dict[str, str]:
    """Query string and form body merged (the query wins, as Binance documents); -1101 on a repeated parameter."""
    merged: dict[str, str] = {}
    for raw in (body, query):
        seen: set[str] = set()
        for name, value in parse_qsl(raw, keep_blank_values=True):
            if name in seen:
                raise BinanceError(-1101, "Duplicate values for a parameter detected.")
            seen.add(name)
            merged[name] = value
    return merged


def _unsigned(raw: str) -> str:
    """`raw` (query string or body) without its `signature` parameter: what the client signed."""
    return "&".join(p for p in raw.split("&") if p and not p.startswith("signature=")) if raw else ""


def _int(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 20:
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.")
    return int(raw)


def _recv_window(params: Mapping[str, str]) -> Decimal:
    raw = params.get("recvWindow")
    if not raw:
        return Decimal(RECV_WINDOW_MS)
    if not _DECIMAL_RE.match(raw):
        raise BinanceError(
            -1100, f"Illegal characters found in parameter 'recvWindow'; legal range is '{_DECIMAL_RANGE}'."
        )
    window = Decimal(raw)
    if window > MAX_RECV_WINDOW_MS:
        raise BinanceError(
            -1102, f"'recvWindow' contains unexpected value. Cannot be greater than '{MAX_RECV_WINDOW_MS}'."
        )
    return window


def _decimal(params: Mapping[str, str], name: str) -> Decimal | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not _DECIMAL_RE.match(raw):
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{_DECIMAL_RANGE}'.")
    value = Decimal(raw)
    if value != value.quantize(Decimal("1e-8")):
        raise BinanceError(-1111, f"Parameter '{name}' has too much precision.")
    return value


def _order_request(symbol: str, params: Mapping[str, str]) -> tuple[OrderRequest, str]:
    """The new order a `POST /api/v3/order` asks for, and its response type; BinanceError naming a bad parameter."""
    for name in ("side", "type"):
        if not params.get(name):
            raise BinanceError(-1102, _MISSING.format(name))
    side = params["side"]
    if side not in ("BUY", "SELL"):
        raise BinanceError(-1117, "Invalid side.")
    kind = params["type"]
    if kind not in ("LIMIT", "LIMIT_MAKER", "MARKET"):
        raise BinanceError(-1116, "Invalid orderType.")
    tif = params.get("timeInForce") or None
    if kind == "LIMIT" and tif is None:
        raise BinanceError(-1102, _MISSING.format("timeInForce"))
    if kind != "LIMIT" and tif is not None:
        raise BinanceError(-1106, "Parameter 'timeInForce' sent when not required.")
    if tif is not None and tif not in ("GTC", "IOC", "FOK"):
        raise BinanceError(-1115, "Invalid timeInForce.")
    amount, price, quote = _decimal(params, "quantity"), _decimal(params, "price"), _decimal(params, "quoteOrderQty")
    _check_amounts(kind, amount, price, quote)
    client_id = params.get("newClientOrderId") or _client_id()
    if not _CLIENT_ID_RE.match(client_id):
        raise BinanceError(
            -1100,
            "Illegal characters found in parameter 'newClientOrderId'; legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.",
        )
    resp_type = params.get("newOrderRespType") or ("FULL" if kind in ("LIMIT", "MARKET") else "ACK")
    if resp_type not in ("ACK", "RESULT", "FULL"):
        raise BinanceError(-1100, "Illegal characters found in parameter 'newOrderRespType'.")
    req = OrderRequest(
        symbol=symbol,
        side="buy" if side == "BUY" else "sell",
        type="market" if kind == "MARKET" else "limit",
        amount=amount,
        price=price,
        quote_amount=quote,
        time_in_force=tif or "GTC",  # type: ignore[arg-type]  # a market order never rests, whatever this says
        post_only=kind == "LIMIT_MAKER",
        client_id=client_id,
    )
    return req, resp_type


def _check_amounts(kind: str, amount: Decimal | None, price: Decimal | None, quote: Decimal | None) -> None:
    """The quantity / price / quoteOrderQty combination each order type needs."""
    if kind == "MARKET":
        if price is not None:
            raise BinanceError(-1106, "Parameter 'price' sent when not required.")
        if amount is None and quote is None:
            raise BinanceError(-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!")
        if amount is not None and quote is not None:
            raise BinanceError(-1106, "Parameter 'quoteOrderQty' sent when not required.")
        return
    if quote is not None:
        raise BinanceError(-1106, "Parameter 'quoteOrderQty' sent when not required.")
    for name, value in (("quantity", amount), ("price", price)):
        if value is None:
            raise BinanceError(-1102, _MISSING.format(name))


def _order_type(order: Order) -> str:
    if order.type == "market":
        return "MARKET"
    return "LIMIT_MAKER" if order.post_only else "LIMIT"


def _client_id() -> str:
    """A venue-generated client order id (22 alphanumerics, like Binance's)."""
    return "".join(secrets.choice(_ID_CHARS) for _ in range(22))


def _window(rows: list[Any], ts: Callable[[Any], int], params: Mapping[str, str], *, from_start: bool) -> list[Any]:
    """`startTime` / `endTime` / `limit` (default 500, max 1000) over rows oldest first: the oldest `limit` from a
    start (or from an id), else the newest `limit`."""
    start, end = _int(params, "startTime"), _int(params, "endTime")
    limit = min(_int(params, "limit") or 500, 1000)
    rows = [r for r in rows if (start is None or ts(r) >= start) and (end is None or ts(r) <= end)]
    return rows[:limit] if from_start or start is not None else rows[-limit:]


def rules_filters(rules: SymbolRules) -> dict[str, dict[str, Any]]:
    """The PRICE_FILTER, LOT_SIZE and NOTIONAL filters exchangeInfo advertises for `rules` (what orders are checked
    against), by filter type."""
    return {
        "PRICE_FILTER": {
            "filterType": "PRICE_FILTER",
            "minPrice": _f8(rules.min_price),
            "maxPrice": _f8(rules.max_price),
            "tickSize": _f8(rules.tick),
        },
        "LOT_SIZE": {
            "filterType": "LOT_SIZE",
            "minQty": _f8(rules.min_qty),
            "maxQty": _f8(rules.max_qty),
            "stepSize": _f8(rules.step),
        },
        "NOTIONAL": {
            "filterType": "NOTIONAL",
            "minNotional": _f8(rules.min_notional),
            "applyMinToMarket": True,
            "maxNotional": _f8(rules.max_notional),
            "applyMaxToMarket": False,
            "avgPriceMins": 5,
        },
    }
