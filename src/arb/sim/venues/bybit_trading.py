"""Bybit v5 spot's private REST endpoints (unified trading account), served locally: orders, executions, the
wallet balance and the account queries ccxt makes before trading.

Follows https://bybit-exchange.github.io/docs/v5/intro ("Authentication for HTTP API": the `X-BAPI-API-KEY`,
`X-BAPI-TIMESTAMP`, `X-BAPI-RECV-WINDOW` and `X-BAPI-SIGN` headers, the sign being the hex HMAC-SHA256, keyed with the
secret, of timestamp + API key + recv_window + the query string (GET) or the JSON body (POST), and the rule
`server_time - recv_window <= timestamp < server_time + 1000`), .../v5/order/create-order, .../v5/order/cancel-order,
.../v5/order/open-order (`GET /v5/order/realtime`), .../v5/order/order-list (`GET /v5/order/history`),
.../v5/order/execution (`GET /v5/execution/list`), .../v5/account/wallet-balance, .../v5/account/account-info,
.../v5/user/apikey-info (`GET /v5/user/query-api`), .../v5/asset/coin-info (`GET /v5/asset/coin/query-info`),
.../v5/enum (`orderStatus`, `rejectReason`, `cancelType`) and .../v5/error (the codes below).

Authentication, checked for real against the venue's accounts (`arb.sim.trading`): a request without the key,
timestamp or sign header is HTTP 401 retCode 10001 "empty value: apiTimestamp[..] apiKey[..] apiSignature[..]"; an
unknown key is HTTP 401 10003 "API key is invalid."; a timestamp outside the window (recv_window defaults to 5000,
at most 60000 ms) is 10002 "invalid request, please check your server timestamp or recv_window param. ..."; a wrong
sign is 10004 "error sign! origin_string[..]" (both HTTP 200, as Bybit answers them). ccxt 4.5.90 maps 10003 / 10004
to AuthenticationError and 10002 to InvalidNonce.

Orders (`category=spot` only): `orderType` Limit (`timeInForce` GTC, IOC, FOK, PostOnly) or Market (always IOC;
`qty` in base with `marketUnit=baseCoin`, in quote with `quoteCoin`, the default for buys), `orderLinkId` (at most
36 of `A-Za-z0-9_-`). A refused order is answered whole (HTTP 200) with the spot trade codes: 170121 "Invalid
symbol.", 170132 / 170133 / 170134 price above the maximum / below the minimum / off the tick, 170135 / 170136 /
170137 quantity above the maximum / below the minimum / off the step, 170140 "Order value exceeded lower limit."
(below `minOrderAmt`), 170124 "Order amount too large.", 170141 "Duplicate clientOrderId", 170131 "Insufficient
balance." (ccxt: InvalidOrder, or InsufficientFunds for 170131). A PostOnly order that would take is accepted and
cancelled at once (`rejectReason` EC_PostOnlyWillTakeLiquidity). IOC / market remainders and FOK misses end
`Cancelled` (nothing filled) or `PartiallyFilledCanceled` (spot's status for a part-filled order that was
cancelled, which ccxt 4.5.90 reports as `closed`: its `filled` is what counts). Cancelling or finding an order that
does not exist, or cancelling one already final: 170213 "Order does not exist." (ccxt: OrderNotFound). Missing or
malformed parameters: 10001 naming the parameter (the texts are the sim's own).

What the real client calls (ccxt 4.5.90 `bybit`, spot, with keys): `load_markets` -> also `GET
/v5/asset/coin/query-info`; the first private call -> `GET /v5/user/query-api` and `GET /v5/account/info` (this
venue's accounts are unified: `uta` 1, `unifiedMarginStatus` 5); `create_order` -> `POST /v5/order/create` (ids
only in the answer, so ccxt's order has no status until fetched); `fetch_order` -> `GET /v5/order/realtime` with
`orderId` (ccxt insists on `params={"acknowledged": True}`: the realtime query finds an order among the open ones
and the newest 500 closed); `fetch_open_order(s)` -> realtime, `fetch_closed_orders` / `fetch_canceled_orders` ->
`GET /v5/order/history`; `cancel_order` -> `POST /v5/order/cancel`; `fetch_my_trades` -> `GET /v5/execution/list`;
`fetch_balance` -> `GET /v5/account/wallet-balance?accountType=UNIFIED`. ccxt's `fetch_order(None, ...)` sends
`orderId=None`, so a lookup by client id is `fetch_open_orders` / `fetch_canceled_and_closed_orders` with
`params={"orderLinkId": ...}` (or `privateGetV5OrderRealtime`).

Order faults (`arb.sim.trading`): `reject` answers 170210 "New order rejected." (ccxt: InvalidOrder) unless the fault
names its own code / message; `rate_limit` answers like the venue's own rate limiting (`BybitProtocol.rate_limited`:
HTTP 429, 10006 "Too many visits!").

Deviations, on purpose: spot in the unified account only (no margin `isLeverage=1`, no conditional `orderFilter`
orders, no other category: 10001); no amend, batch or cancel-all endpoints; `orderLinkId` is unique among open
orders only (the core's rule); history and executions keep every record (no 7-day / 2-year cut-off, though a
`startTime` alone still means the 7 days from it) and page by an opaque cursor; no `X-Bapi-Limit*` headers on
private answers; the instruments list's ranges are the ones orders are checked against (`LIMITS_FOR`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final, TypeVar

import orjson
from aiohttp import web

from arb.sim.server import cut_connection
from arb.sim.trading import (
    Account,
    DisconnectFault,
    NoSuchOrder,
    Order,
    OrderClosed,
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
    from arb.sim.market import Book
    from arb.sim.server import SimVenue
    from arb.sim.trading import Trading

DOCS: Final = (
    "https://bybit-exchange.github.io/docs/v5/intro",
    "https://bybit-exchange.github.io/docs/v5/order/create-order",
    "https://bybit-exchange.github.io/docs/v5/order/open-order",
    "https://bybit-exchange.github.io/docs/v5/account/wallet-balance",
    "https://bybit-exchange.github.io/docs/v5/error",
)
TAKER_FEE: Final = Decimal("0.001")
MAKER_FEE: Final = Decimal("0.001")
"""Bybit's spot VIP 0 rates, paid in the asset received."""
MIN_ORDER_AMT: Final = Decimal(5)
MAX_ORDER_AMT: Final = Decimal(8_000_000)
MAX_ORDER_USD: Final = 5_000_000
"""`maxOrderQty` is about this much quote (USD) at the mid when the venue starts."""
RECV_WINDOW_MS: Final = 5000
MAX_RECV_WINDOW_MS: Final = 60_000
MAX_AHEAD_MS: Final = 1000
REALTIME_CLOSED_KEPT: Final = 500
"""The realtime query sees the newest this many closed orders (per account and category)."""
_SEVEN_DAYS_MS: Final = 7 * 86_400_000
_LINK_ID_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,36}$")
_STATUS_OPEN: Final = {"new": "New", "partially_filled": "PartiallyFilled", "filled": "Filled"}
_REJECT_REASON: Final = {
    None: "EC_NoError",
    "ioc_remainder": "EC_NoImmediateQtyToFill",
    "fok_unfilled": "EC_CancelForNoFullFill",
    "post_only_would_take": "EC_PostOnlyWillTakeLiquidity",
    "by_user": "EC_PerCancelRequest",
    "by_venue": "EC_Others",
}
_CANCEL_TYPE: Final = {"by_user": "CancelByUser", "by_venue": "CancelByAdmin"}
_REJECTIONS: Final = {
    "unknown_symbol": (170121, "Invalid symbol."),
    "min_qty": (170136, "Order quantity lower than the minimum."),
    "min_notional": (170140, "Order value exceeded lower limit."),
    "max_notional": (170124, "Order amount too large."),
    "duplicate_client_id": (170141, "Duplicate clientOrderId"),
    "insufficient_balance": (170131, "Insufficient balance."),
    "post_only_would_take": (170218, "The LIMIT-MAKER order is rejected due to invalid price."),
}
REJECT_FAULT: Final = (170210, "New order rejected.")
"""What a `reject` order fault answers unless it names its own code / message."""
_NOT_FOUND: Final = (170213, "Order does not exist.")


def limits_for(book: Book) -> VenueLimits:
    """A spot pair's ranges as the instruments list shows them: `minOrderAmt` 5 and `maxOrderAmt` 8,000,000 (in the
    quote coin), `maxOrderQty` about USD 5,000,000 worth at the mid now (one step at least)."""
    mid = max(book.price((book.bid_top + book.ask_top) // 2), book.tick)
    step = Decimal(repr(book.step))
    return VenueLimits(
        min_notional=MIN_ORDER_AMT,
        max_notional=MAX_ORDER_AMT,
        max_qty=max(1, int(MAX_ORDER_USD / mid / book.step)) * step,
    )


class BybitError(Exception):
    """A request Bybit refuses: `{"retCode": code, "retMsg": msg, "result": {}, ...}` with HTTP `status`."""

    def __init__(self, code: int, msg: str, status: int = 200) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


@dataclass(frozen=True, slots=True)
class _Signed:
    account: Account
    body: str


Handler = Callable[[web.Request, _Signed], Awaitable[web.Response]]
_Row = TypeVar("_Row", Order, Trade)


def signature(secret: str, timestamp: str, api_key: str, recv_window: str, payload: str) -> str:
    """Bybit's X-BAPI-SIGN: hex HMAC-SHA256(secret, timestamp + api key + recv_window + query string | body)."""
    text = timestamp + api_key + recv_window + payload
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _num(x: Decimal | None, default: str = "0") -> str:
    """A number as Bybit writes it: plain digits, no trailing zeros (`default` for none)."""
    if x is None:
        return default
    text = format(x.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _respond(result: Any, *, code: int = 0, msg: str = "OK", status: int = 200) -> web.Response:
    body = {"retCode": code, "retMsg": msg, "result": result, "retExtInfo": {}, "time": _now_ms()}
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


class BybitTrading:
    """Bybit v5 spot's signed endpoints for one venue (see the module docstring)."""

    def __init__(self, *, clock_ms: Callable[[], int] = _now_ms) -> None:
        self.clock_ms = clock_ms

    def install(
        self,
        venue: SimVenue,
        app: web.Application,
        *,
        market_id: Callable[[str], str],
        rate_limited: Callable[[int, int], web.Response],
    ) -> None:
        """Add the signed routes to `app` and give the venue's trading core Bybit's fees and per-pair ranges (what
        `instruments-info` shows, see `limits_for`)."""
        venue.trading.configure(taker_fee=TAKER_FEE, maker_fee=MAKER_FEE, limits_for=limits_for)
        ctx = _Context(self, venue, venue.trading, market_id, rate_limited)
        signed = ctx.signed
        app.router.add_post("/v5/order/create", signed(ctx.create_order))
        app.router.add_post("/v5/order/cancel", signed(ctx.cancel_order))
        app.router.add_get("/v5/order/realtime", signed(ctx.realtime))
        app.router.add_get("/v5/order/history", signed(ctx.history))
        app.router.add_get("/v5/execution/list", signed(ctx.executions))
        app.router.add_get("/v5/account/wallet-balance", signed(ctx.wallet_balance))
        app.router.add_get("/v5/account/info", signed(ctx.account_info))
        app.router.add_get("/v5/user/query-api", signed(ctx.api_key_info))
        app.router.add_get("/v5/asset/coin/query-info", signed(ctx.coin_info))


def instrument_ranges(rules: SymbolRules) -> dict[str, str]:
    """The `lotSizeFilter` / `priceFilter` numbers of a spot instrument, from the rules orders are checked against."""
    return {
        "basePrecision": _num(rules.step),
        "minOrderQty": _num(rules.min_qty),
        "maxOrderQty": _num(rules.max_qty),
        "minOrderAmt": _num(rules.min_notional),
        "maxOrderAmt": _num(rules.max_notional),
        "tickSize": _num(rules.tick),
    }


class _Context:
    """The route handlers, bound to one venue."""

    def __init__(
        self,
        owner: BybitTrading,
        venue: SimVenue,
        trading: Trading,
        market_id: Callable[[str], str],
        rate_limited: Callable[[int, int], web.Response],
    ) -> None:
        self.owner = owner
        self.venue = venue
        self.trading = trading
        self.market_id = market_id
        self.rate_limited = rate_limited

    # ------------------------------------------------------------------ authentication

    def signed(self, fn: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            try:
                return await fn(request, await self.authenticate(request))
            except BybitError as e:
                return _respond({}, code=e.code, msg=e.msg, status=e.status)

        return handler

    async def authenticate(self, request: web.Request) -> _Signed:
        """The request's account and raw body, or BybitError as Bybit answers a badly signed request."""
        headers = request.headers
        key = headers.get("X-BAPI-API-KEY", "")
        stamp = headers.get("X-BAPI-TIMESTAMP", "")
        sign = headers.get("X-BAPI-SIGN", "")
        if not key or not stamp or not sign:
            msg = f"empty value: apiTimestamp[{stamp}] apiKey[{key}] apiSignature[{sign}]"
            raise BybitError(10001, msg, 401)
        account = self.trading.accounts.get(key)
        if account is None:
            raise BybitError(10003, "API key is invalid.", 401)
        window_raw = headers.get("X-BAPI-RECV-WINDOW", "")
        window = int(window_raw) if window_raw.isdigit() else RECV_WINDOW_MS
        now = self.owner.clock_ms()
        sent = int(stamp) if stamp.isdigit() else -1
        if not (0 < window <= MAX_RECV_WINDOW_MS) or not (now - window <= sent < now + MAX_AHEAD_MS):
            raise BybitError(
                10002,
                "invalid request, please check your server timestamp or recv_window param. "
                f"req_timestamp[{stamp}],server_timestamp[{now}],recv_window[{window_raw or RECV_WINDOW_MS}]",
            )
        body = await request.text() if request.can_read_body else ""
        payload = body if request.method == "POST" else request.rel_url.raw_query_string
        expected = signature(account.secret, stamp, key, window_raw, payload)
        if not hmac.compare_digest(sign.lower(), expected):
            raise BybitError(10004, f"error sign! origin_string[{stamp}{key}{window_raw}{payload}]")
        return _Signed(account, body)

    # ------------------------------------------------------------------ orders

    async def create_order(self, request: web.Request, signed: _Signed) -> web.Response:
        body = _json_body(signed.body)
        req = self.order_request(body)
        fault = self.trading.faults.take(req.symbol, req.side)
        if isinstance(fault, RateLimitFault):
            return self.rate_limited(fault.status, fault.retry_after_s)
        if isinstance(fault, DisconnectFault) and not fault.placed:
            await deliver(fault, lambda: cut_connection(request))
            return web.Response(status=499)  # never reaches the client: the connection is gone
        if isinstance(fault, RejectFault):
            code = int(fault.code) if fault.code and fault.code.isdigit() else REJECT_FAULT[0]
            raise BybitError(code, fault.message or REJECT_FAULT[1])
        try:
            order = self.trading.place(signed.account, req, fault, cancel_crossing_post_only=True)
        except Rejection as e:
            raise BybitError(*self.rejection(e, req)) from None
        response = _respond({"orderId": str(order.id), "orderLinkId": order.client_id})
        if not await deliver(fault, lambda: cut_connection(request)):
            return web.Response(status=499)  # never reaches the client: the connection is gone
        return response

    def order_request(self, body: Mapping[str, Any]) -> OrderRequest:
        """The order a create request asks for; BybitError (10001, or 170121 for an unknown symbol) otherwise."""
        _category(body)
        for name in ("symbol", "side", "orderType", "qty"):
            if not body.get(name):
                raise BybitError(10001, f"params error: {name} is required")
        side = {"Buy": "buy", "Sell": "sell"}.get(str(body["side"]))
        if side is None:
            raise BybitError(10001, "params error: side invalid")
        order_type = str(body["orderType"])
        if order_type not in ("Limit", "Market"):
            raise BybitError(10001, "params error: orderType invalid")
        if str(body.get("isLeverage") or "0") != "0":
            raise BybitError(10001, "params error: isLeverage is not supported here (spot margin)")
        if str(body.get("orderFilter") or "Order") != "Order":
            raise BybitError(10001, "params error: orderFilter is not supported here (conditional orders)")
        link_id = str(body.get("orderLinkId") or "")
        if link_id and not _LINK_ID_RE.match(link_id):
            raise BybitError(10001, "params error: orderLinkId invalid")
        qty = _decimal(body, "qty")
        symbol = self.symbol(str(body["symbol"]), refused=170121)
        if order_type == "Market":
            unit = str(body.get("marketUnit") or ("quoteCoin" if side == "buy" else "baseCoin"))
            if unit not in ("baseCoin", "quoteCoin"):
                raise BybitError(10001, "params error: marketUnit invalid")
            by_quote = unit == "quoteCoin"
            return OrderRequest(
                symbol,
                side,  # type: ignore[arg-type]
                "market",
                amount=None if by_quote else qty,
                quote_amount=qty if by_quote else None,
                time_in_force="IOC",
                client_id=link_id,
            )
        price = _decimal(body, "price") if body.get("price") else None
        if price is None:
            raise BybitError(10001, "params error: price is required for a Limit order")
        tif = str(body.get("timeInForce") or "GTC")
        if tif not in ("GTC", "IOC", "FOK", "PostOnly"):
            raise BybitError(10001, "params error: timeInForce invalid")
        return OrderRequest(
            symbol,
            side,  # type: ignore[arg-type]
            "limit",
            amount=qty,
            price=price,
            time_in_force="GTC" if tif == "PostOnly" else tif,  # type: ignore[arg-type]
            post_only=tif == "PostOnly",
            client_id=link_id,
        )

    def rejection(self, e: Rejection, req: OrderRequest) -> tuple[int, str]:
        """Bybit's spot code and message for a core rejection (price and lot failures told apart as Bybit does)."""
        rules = self.trading.rules(req.symbol)
        if e.reason == "price_filter":
            price = req.price or Decimal(0)
            if price > rules.max_price:
                return 170132, "Order price too high."
            if price < rules.min_price:
                return 170133, "Order price lower than the minimum."
            return 170134, "Order price decimal too long."
        if e.reason == "lot_size":
            if (req.amount or Decimal(0)) > rules.max_qty:
                return 170135, "Order quantity too large."
            return 170137, "Order volume decimal too long"
        return _REJECTIONS[e.reason]

    def symbol(self, market_id: str, *, refused: int = 10001) -> str:
        book = self.venue.book(market_id)
        if book is None or book.symbol not in self.trading.books:
            raise BybitError(refused, "Invalid symbol." if refused == 170121 else "params error: symbol invalid")
        return book.symbol

    async def cancel_order(self, request: web.Request, signed: _Signed) -> web.Response:
        body = _json_body(signed.body)
        _category(body)
        if not body.get("symbol"):
            raise BybitError(10001, "params error: symbol is required")
        symbol = self.symbol(str(body["symbol"]), refused=170121)
        order_id, link_id = str(body.get("orderId") or ""), str(body.get("orderLinkId") or "")
        if not order_id and not link_id:
            raise BybitError(10001, "params error: orderId or orderLinkId is required")
        if str(body.get("orderFilter") or "Order") != "Order":
            raise BybitError(*_NOT_FOUND)  # no conditional orders here
        try:
            if order_id:
                if not order_id.isdigit():
                    raise NoSuchOrder(order_id)
                found = self.trading.find(signed.account, symbol, order_id=int(order_id), client_id=link_id or None)
            else:
                found = self._open_by_link_id(signed.account, symbol, link_id)
            order = self.trading.cancel(signed.account, symbol, order_id=found.id)
        except (NoSuchOrder, OrderClosed):
            raise BybitError(*_NOT_FOUND) from None
        return _respond({"orderId": str(order.id), "orderLinkId": order.client_id})

    def _open_by_link_id(self, account: Account, symbol: str, link_id: str) -> Order:
        """The open order with this orderLinkId (else the newest with it, which a cancel then finds final)."""
        for order in self.trading.open_orders(account, symbol):
            if order.client_id == link_id:
                return order
        return self.trading.find(account, symbol, client_id=link_id)

    # ------------------------------------------------------------------ queries

    async def realtime(self, request: web.Request, signed: _Signed) -> web.Response:
        """Open orders; by `orderId` / `orderLinkId` also the newest closed ones; `openOnly=1` the closed ones."""
        q = request.query
        _category(q)
        symbol = self.symbol(q["symbol"]) if q.get("symbol") else None
        open_only = q.get("openOnly", "0")
        if open_only not in ("0", "1", "2"):
            raise BybitError(10001, "params error: openOnly invalid")
        account = signed.account
        mine = [o for o in self.trading.orders.values() if o.api_key == account.api_key]
        recent_closed = [o for o in mine if not o.is_open][-REALTIME_CLOSED_KEPT:]
        open_orders = [o for o in mine if o.is_open]
        by_id = bool(q.get("orderId") or q.get("orderLinkId"))
        pool = recent_closed if open_only != "0" else open_orders + (recent_closed if by_id else [])
        orders = [o for o in pool if (symbol is None or o.symbol == symbol) and _matches(o, q)]
        if q.get("orderLinkId") and not q.get("orderId"):
            orders = sorted(orders, key=lambda o: o.id)[-1:]  # an orderLinkId names one order: the newest with it
        return self.order_page(orders, q, max_limit=50, default_limit=20)

    async def history(self, request: web.Request, signed: _Signed) -> web.Response:
        q = request.query
        _category(q)
        symbol = self.symbol(q["symbol"]) if q.get("symbol") else None
        start, end = _time_range(q)
        status = q.get("orderStatus")
        orders = [
            o
            for o in self.trading.orders.values()
            if o.api_key == signed.account.api_key
            and (not o.is_open or status is not None)
            and (symbol is None or o.symbol == symbol)
            and (status is None or _status(o) == status)
            and _matches(o, q)
            and (start is None or o.created_ms >= start)
            and (end is None or o.created_ms <= end)
        ]
        return self.order_page(orders, q, max_limit=50, default_limit=20)

    def order_page(
        self, orders: list[Order], q: Mapping[str, str], *, max_limit: int, default_limit: int
    ) -> web.Response:
        newest_first = sorted(orders, key=lambda o: o.id, reverse=True)
        rows, cursor = _page(newest_first, lambda o: o.id, q, max_limit, default_limit)
        return _respond({"category": "spot", "list": [self.order_json(o) for o in rows], "nextPageCursor": cursor})

    async def executions(self, request: web.Request, signed: _Signed) -> web.Response:
        q = request.query
        _category(q)
        symbol = self.symbol(q["symbol"]) if q.get("symbol") else None
        start, end = _time_range(q)
        exec_type = q.get("execType")
        if exec_type not in (None, "", "Trade"):
            trades: list[Trade] = []  # spot executions are all trades
        else:
            order_id, link_id = q.get("orderId"), q.get("orderLinkId")
            trades = [
                t
                for t in self.trading.trades
                if t.api_key == signed.account.api_key
                and (symbol is None or t.symbol == symbol)
                and (not order_id or str(t.order_id) == order_id)
                and (not link_id or self._link_id(t) == link_id)
                and (start is None or t.ts_ms >= start)
                and (end is None or t.ts_ms <= end)
            ]
        rows, cursor = _page(sorted(trades, key=lambda t: t.id, reverse=True), lambda t: t.id, q, 100, 50)
        return _respond({"category": "spot", "list": [self.execution_json(t) for t in rows], "nextPageCursor": cursor})

    def _link_id(self, trade: Trade) -> str:
        order = self.trading.orders.get(trade.order_id)
        return order.client_id if order is not None else ""

    async def wallet_balance(self, request: web.Request, signed: _Signed) -> web.Response:
        q = request.query
        if not q.get("accountType"):
            raise BybitError(10001, "params error: accountType is required")
        if q["accountType"] != "UNIFIED":
            raise BybitError(10001, "accountType only support UNIFIED.")
        wanted = {c for c in q.get("coin", "").split(",") if c}
        account = signed.account
        coins = [
            _coin_json(ccy, b.total, b.locked)
            for ccy, b in sorted(account.balances.items())
            if (ccy in wanted if wanted else b.total != 0)
        ]
        summary = {
            "accountType": "UNIFIED",
            "accountIMRate": "0",
            "accountMMRate": "0",
            "accountLTV": "0",
            "totalEquity": "",
            "totalWalletBalance": "",
            "totalMarginBalance": "",
            "totalAvailableBalance": "",
            "totalPerpUPL": "0",
            "totalInitialMargin": "0",
            "totalMaintenanceMargin": "0",
            "coin": coins,
        }
        return _respond({"list": [summary]})

    async def account_info(self, request: web.Request, signed: _Signed) -> web.Response:
        return _respond(
            {
                "marginMode": "REGULAR_MARGIN",
                "updatedTime": str(signed.account.updated_ms),
                "unifiedMarginStatus": 5,
                "dcpStatus": "OFF",
                "timeWindow": 10,
                "smpGroup": 0,
                "isMasterTrader": False,
                "spotHedgingStatus": "OFF",
            }
        )

    async def api_key_info(self, request: web.Request, signed: _Signed) -> web.Response:
        account = signed.account
        return _respond(
            {
                "id": str(account.uid),
                "note": "local sim",
                "apiKey": account.api_key,
                "readOnly": 0,
                "secret": "",
                "permissions": {
                    "ContractTrade": [],
                    "Spot": ["SpotTrade"],
                    "Wallet": ["AccountTransfer"],
                    "Options": [],
                    "Derivatives": [],
                    "CopyTrading": [],
                    "BlockTrade": [],
                    "Exchange": [],
                    "NFT": [],
                    "Affiliate": [],
                    "Earn": [],
                },
                "ips": ["*"],
                "type": 1,
                "deadlineDay": -1,
                "expiredAt": "",
                "createdAt": datetime.fromtimestamp(0, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "unified": 0,
                "uta": 1,
                "userID": account.uid,
                "inviterID": 0,
                "vipLevel": "No VIP",
                "mktMakerLevel": "0",
                "affiliateID": 0,
                "rsaPublicKey": "",
                "isMaster": True,
                "parentUid": "0",
                "kycLevel": "LEVEL_DEFAULT",
                "kycRegion": "",
            }
        )

    async def coin_info(self, request: web.Request, signed: _Signed) -> web.Response:
        wanted = request.query.get("coin")
        coins = sorted({a for s in self.trading.books for a in (s.partition("/")[0], s.partition("/")[2])})
        rows = [
            {
                "name": c,
                "coin": c,
                "remainAmount": "1000000000",
                "chains": [
                    {
                        "chainType": c,
                        "confirmation": "1",
                        "withdrawFee": "0",
                        "depositMin": "0",
                        "withdrawMin": "0",
                        "chain": c,
                        "chainDeposit": "1",
                        "chainWithdraw": "1",
                        "minAccuracy": "8",
                        "withdrawPercentageFee": "0",
                        "contractAddress": "",
                        "safeConfirmNumber": "1",
                    }
                ],
            }
            for c in coins
            if not wanted or c == wanted
        ]
        return _respond({"rows": rows})

    # ------------------------------------------------------------------ rendering

    def order_json(self, order: Order) -> dict[str, Any]:
        """A spot order as the realtime and history queries show it (unified account)."""
        by_quote = order.quote_amount is not None
        unit = "" if order.type == "limit" else "quoteCoin" if by_quote else "baseCoin"
        leaves = Decimal(0) if not order.is_open else order.remaining
        status = _status(order)
        tif = "PostOnly" if order.post_only else order.time_in_force
        return {
            "orderId": str(order.id),
            "orderLinkId": order.client_id,
            "blockTradeId": "",
            "symbol": self.market_id(order.symbol),
            "price": _num(order.price),
            "qty": _num(order.quote_amount if by_quote else order.amount),
            "side": "Buy" if order.side == "buy" else "Sell",
            "isLeverage": "0",
            "positionIdx": 0,
            "orderStatus": status,
            "cancelType": _CANCEL_TYPE.get(order.end_reason or "", "UNKNOWN"),
            "rejectReason": _REJECT_REASON[order.end_reason],
            "avgPrice": _num(order.average, ""),
            "leavesQty": _num(leaves),
            "leavesValue": _num(leaves * (order.price or Decimal(0))),
            "cumExecQty": _num(order.filled),
            "cumExecValue": _num(order.cost),
            "cumExecFee": _num(order.fee),
            "cumFeeDetail": {order.fee_asset: _num(order.fee)} if order.fee else {},
            "timeInForce": tif,
            "orderType": "Limit" if order.type == "limit" else "Market",
            "stopOrderType": "",
            "orderIv": "",
            "marketUnit": unit,
            "triggerPrice": "0",
            "takeProfit": "0",
            "stopLoss": "0",
            "tpLimitPrice": "0",
            "slLimitPrice": "0",
            "tpTriggerBy": "",
            "slTriggerBy": "",
            "triggerDirection": 0,
            "triggerBy": "",
            "lastPriceOnCreated": "",
            "reduceOnly": False,
            "closeOnTrigger": False,
            "placeType": "",
            "smpType": "None",
            "smpGroup": 0,
            "smpOrderId": "",
            "createdTime": str(order.created_ms),
            "updatedTime": str(order.updated_ms),
            "extraFees": "",
        }

    def execution_json(self, trade: Trade) -> dict[str, Any]:
        order = self.trading.orders.get(trade.order_id)
        rate = self.trading.maker_fee if trade.maker else self.trading.taker_fee
        account = self.trading.accounts.get(trade.api_key)
        if account is not None:
            own = account.maker_fee if trade.maker else account.taker_fee
            rate = own if own is not None else rate
        return {
            "symbol": self.market_id(trade.symbol),
            "orderType": "Limit" if order is None or order.type == "limit" else "Market",
            "underlyingPrice": "",
            "orderLinkId": order.client_id if order is not None else "",
            "side": "Buy" if trade.side == "buy" else "Sell",
            "indexPrice": "",
            "orderId": str(trade.order_id),
            "stopOrderType": "",
            "leavesQty": _num(order.remaining if order is not None and order.is_open else Decimal(0)),
            "execTime": str(trade.ts_ms),
            "feeCurrency": trade.fee_asset,
            "isMaker": trade.maker,
            "execFee": _num(trade.fee),
            "feeRate": _num(rate),
            "execId": str(trade.id),
            "tradeIv": "",
            "blockTradeId": "",
            "markPrice": "",
            "execPrice": _num(trade.price),
            "markIv": "",
            "orderQty": _num(order.amount if order is not None else trade.amount),
            "orderPrice": _num(order.price if order is not None else None),
            "execValue": _num(trade.cost),
            "execType": "Trade",
            "execQty": _num(trade.amount),
            "closedSize": "",
            "extraFees": "",
            "seq": trade.id,
        }


# ---------------------------------------------------------------------------------------------------- parsing


def _json_body(text: str) -> dict[str, Any]:
    try:
        body = orjson.loads(text) if text else None
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise BybitError(10001, "params error: the body must be a JSON object")
    return body


def _category(params: Mapping[str, Any]) -> None:
    category = params.get("category")
    if not category:
        raise BybitError(10001, "params error: category is required")
    if category != "spot":
        raise BybitError(10001, "Illegal category")


def _decimal(body: Mapping[str, Any], name: str) -> Decimal:
    raw = body.get(name)
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise BybitError(10001, f"params error: {name} invalid") from None
    if not value.is_finite() or value <= 0:
        raise BybitError(10001, f"params error: {name} invalid")
    return value


def _status(order: Order) -> str:
    if order.status in _STATUS_OPEN:
        return _STATUS_OPEN[order.status]
    return "PartiallyFilledCanceled" if order.filled else "Cancelled"


def _matches(order: Order, q: Mapping[str, str]) -> bool:
    if q.get("orderId") and q["orderId"] != str(order.id):
        return False
    if q.get("orderLinkId") and q["orderLinkId"] != order.client_id:
        return False
    return not (q.get("orderFilter") not in (None, "", "Order"))


def _int(q: Mapping[str, str], name: str) -> int | None:
    raw = q.get(name)
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 19:
        raise BybitError(10001, f"params error: {name} invalid")
    return int(raw)


def _time_range(q: Mapping[str, str]) -> tuple[int | None, int | None]:
    """`startTime` / `endTime` (ms); a start alone means the 7 days from it, as Bybit documents."""
    start, end = _int(q, "startTime"), _int(q, "endTime")
    if start is not None and end is not None and start > end:
        raise BybitError(10001, "params error: startTime must be less than endTime")
    if start is not None and end is None:
        end = start + _SEVEN_DAYS_MS
    return start, end


def _page(
    rows: list[_Row], key: Callable[[_Row], int], q: Mapping[str, str], max_limit: int, default_limit: int
) -> tuple[list[_Row], str]:
    """Rows newest first after the `cursor` (the last id of the previous page), at most `limit`; the next cursor
    ("" when nothing is left)."""
    limit = _int(q, "limit") or default_limit
    if not 1 <= limit <= max_limit:
        raise BybitError(10001, "params error: limit invalid")
    cursor = q.get("cursor")
    if cursor:
        if not cursor.isdigit():
            raise BybitError(10001, "params error: cursor invalid")
        rows = [r for r in rows if key(r) < int(cursor)]
    page = rows[:limit]
    return page, (str(key(page[-1])) if len(rows) > limit else "")


def _coin_json(coin: str, total: Decimal, locked: Decimal) -> dict[str, Any]:
    return {
        "coin": coin,
        "equity": _num(total),
        "usdValue": "",
        "walletBalance": _num(total),
        "locked": _num(locked),
        "spotHedgingQty": "0",
        "borrowAmount": "0",
        "availableToWithdraw": "",
        "accruedInterest": "0",
        "totalOrderIM": "0",
        "totalPositionIM": "0",
        "totalPositionMM": "0",
        "unrealisedPnl": "0",
        "cumRealisedPnl": "0",
        "bonus": "0",
        "marginCollateral": True,
        "collateralSwitch": True,
        "availableToBorrow": "",
        "spotBorrow": "0",
    }
