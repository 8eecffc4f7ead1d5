"""OKX spot's private REST endpoints (API v5), served locally: orders, fills, the trading account's balances.

Follows https://www.okx.com/docs-v5/en/: "Trade" (`POST /api/v5/trade/order` ...#order-book-trading-trade-post-place-
order, `POST /trade/batch-orders` ...-post-place-multiple-orders, `POST /trade/cancel-order` ...-post-cancel-order,
`GET /trade/order` ...-get-order-details, `GET /trade/orders-pending` ...-get-order-list, `GET /trade/orders-history`
...-get-order-history-last-7-days, `GET /trade/fills` / `fills-history` ...-get-transaction-details-last-3-days /
-last-3-months), "Trading Account" (`GET /api/v5/account/balance` ...#trading-account-rest-api-get-balance), "Funding
Account" (`GET /api/v5/asset/currencies` ...#funding-account-rest-api-get-currencies), "REST Authentication"
(...#overview-rest-authentication-making-requests, -signature) and the error codes of ...#error-code-rest-api.

Authentication, checked for real against the venue's accounts (`arb.sim.trading`), every failure HTTP 401 with
`{"code", "msg", "data": []}`: the `OK-ACCESS-KEY`, `-SIGN`, `-TIMESTAMP` and `-PASSPHRASE` headers must be present
(50103, 50106, 50107, 50104), the key known (50111 "Invalid OK-ACCESS-KEY."), the timestamp ISO 8601 (50112) and
within 30 s of server time (50102 "Timestamp request expired."), the passphrase the account's (50105) and the
signature base64(HMAC-SHA256(secret, timestamp + METHOD + request path with its query + body)) (50113 "Invalid
signature."). ccxt 4.5.90 maps them to AuthenticationError, and 50102 to InvalidNonce.

Orders: `ordType` `limit` (GTC), `ioc`, `fok`, `post_only` (accepted and cancelled at once, `cancelSource` 31, if it
would take) and `market` (`sz` in base or, with `tgtCcy=quote_ccy`, the default for buys, in quote), `tdMode` `cash`,
`clOrdId` unique among pending orders (51016). A refused order is answered per order (HTTP 200, `code` "1" "All
operations failed", or "2" for a partly failed batch) with its `sCode` / `sMsg`: 51001 unknown instrument, 51000
"Parameter px error" for a price off the tick (OKX documents no dedicated spot code), 51020 below `minSz`, 51121 off
`lotSz`, 51008 "Order failed. Insufficient {ccy} balance in account" (ccxt: InsufficientFunds). IOC / market
remainders end `canceled` with `cancelSource` 14, FOK misses with 13, user cancels with 1. Cancelling or fetching an
order that does not exist: 51400 (cancel, also of an order already final) and 51603 "Order does not exist" (ccxt:
OrderNotFound for both). Missing or malformed request parameters are answered whole (50014 / 51000, HTTP 400).

What the real client calls (ccxt 4.5.90 `okx`, spot, with keys): `load_markets` -> also `GET /asset/currencies`;
`create_order` -> `POST /trade/batch-orders` with one order (`privatePostTradeOrder` when configured), `tgtCcy`
`base_ccy` and a generated `clOrdId`; its answer carries ids only, so ccxt's order has no status until fetched;
`fetch_order` -> `GET /trade/order` (`ordId` or `clOrdId`), `cancel_order` -> `POST /trade/cancel-order`,
`fetch_open_orders` -> `GET /trade/orders-pending`, `fetch_closed_orders` -> `GET /trade/orders-history`,
`fetch_my_trades` -> `GET /trade/fills-history`, `fetch_balance` -> `GET /account/balance`.

Order faults (`arb.sim.trading`) apply to a whole create request (every order of a batch): `reject` answers sCode
51006 "Order price is not within the price limit ..." (ccxt: InvalidOrder) unless the fault names its own code /
message; `rate_limit` answers like the venue's own rate limiting (50011, 429).

Deviations, on purpose: spot cash mode only (no margin, `tdMode` other than `cash` is 51000); no algo, amend,
mass-cancel or batch-cancel endpoints; `asset/currencies` lists one chain per currency with no fees (deposit and
withdrawal state for OKX is not modelled); market buys by base amount are refused when the balance is short rather
than reduced to what it can buy; history endpoints keep every order and fill (no 7-day / 3-month cut-off) and page
by id (`after` / `before`) and time (`begin` / `end`); balances list every asset the account has held.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final

import orjson
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
    Trade,
    VenueLimits,
    deliver,
)

if TYPE_CHECKING:
    from arb.sim.server import SimVenue
    from arb.sim.trading import Trading

DOCS: Final = (
    "https://www.okx.com/docs-v5/en/#order-book-trading-trade-post-place-order",
    "https://www.okx.com/docs-v5/en/#order-book-trading-trade-get-order-details",
    "https://www.okx.com/docs-v5/en/#trading-account-rest-api-get-balance",
    "https://www.okx.com/docs-v5/en/#overview-rest-authentication-signature",
    "https://www.okx.com/docs-v5/en/#error-code-rest-api",
)
TAKER_FEE: Final = Decimal("0.001")
MAKER_FEE: Final = Decimal("0.0008")
"""Regular user level 1 spot rates, paid in the asset received."""
LIMITS: Final = VenueLimits(max_qty=Decimal("9999999999"), max_notional=Decimal(20_000_000))
"""What the instruments list shows as `maxLmtSz` / `maxLmtAmt` (no minimum notional: `minSz` is one lot)."""
MAX_SKEW_MS: Final = 30_000
MAX_BATCH: Final = 20
_CL_ORD_ID_RE: Final = re.compile(r"^[A-Za-z0-9]{1,32}$")
_TAG_RE: Final = re.compile(r"^[A-Za-z0-9]{1,16}$")
_ORD_TYPES: Final = frozenset({"market", "limit", "post_only", "fok", "ioc"})
_STATE: Final = {
    "new": "live",
    "partially_filled": "partially_filled",
    "filled": "filled",
    "canceled": "canceled",
    "expired": "canceled",
}
_CANCEL_SOURCE: Final = {
    "by_venue": ("0", "Order canceled by system"),
    "by_user": ("1", "Order canceled by user"),
    "fok_unfilled": ("13", "Order canceled: FOK order was canceled due to incompletely filled."),
    "ioc_remainder": ("14", "Order canceled: IOC order was partially canceled due to incompletely filled."),
    "post_only_would_take": ("31", "The post-only order will take liquidity in taker orders"),
}
_REJECTIONS: Final = {
    "unknown_symbol": ("51001", "Instrument ID, Instrument ID code or Spread ID doesn't exist."),
    "price_filter": ("51000", "Parameter px error"),
    "min_qty": ("51020", "Your order should meet or exceed the minimum order amount."),
    "lot_size": ("51121", "Order quantity must be a multiple of the lot size."),
    "min_notional": ("51020", "Your order should meet or exceed the minimum order amount."),
    "max_notional": ("51005", "Your order amount exceeds the max order amount."),
    "duplicate_client_id": ("51016", "Client order ID already exists."),
}
_ORDER_NOT_FOUND: Final = ("51603", "Order does not exist")
_CANCEL_FAILED: Final = ("51400", "Order cancellation failed as the order has been filled, canceled or does not exist.")
_INST_TYPES: Final = frozenset({"SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION", "EVENTS"})


class OkxError(Exception):
    """A request OKX refuses as a whole: `{"code": code, "msg": msg, "data": []}` with HTTP `status`."""

    def __init__(self, code: str, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


class _OrderRefused(Exception):
    """One order of a create request refused: its `sCode` / `sMsg` (and `subCode`)."""

    def __init__(self, code: str, msg: str, sub_code: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.sub_code = sub_code


@dataclass(frozen=True, slots=True)
class _Signed:
    account: Account
    body: str


def signature(secret: str, timestamp: str, method: str, request_path: str, body: str = "") -> str:
    """OKX's OK-ACCESS-SIGN: base64 of HMAC-SHA256(secret, timestamp + METHOD + request path (+ query) + body)."""
    digest = hmac.new(secret.encode(), (timestamp + method.upper() + request_path + body).encode(), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


def _num(x: Decimal | None) -> str:
    """A number as OKX writes it: plain digits, no trailing zeros ("" for none)."""
    if x is None:
        return ""
    text = format(x.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _respond(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def _error(code: str, msg: str, status: int) -> web.Response:
    return _respond({"code": code, "msg": msg, "data": []}, status)


def _us() -> str:
    return str(time.time_ns() // 1000)


class OkxTrading:
    """OKX spot's signed endpoints for one venue (see the module docstring)."""

    def __init__(self, *, clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000) -> None:
        self.clock_ms = clock_ms

    def install(
        self,
        venue: SimVenue,
        app: web.Application,
        *,
        market_id: Callable[[str], str],
        rate_limited: Callable[[int, int], web.Response],
    ) -> None:
        """Add the signed routes to `app` and give the venue's trading core OKX's fees (its rules are the book's
        tick, lot and minimum size, which `/public/instruments` shows)."""
        venue.trading.configure(taker_fee=TAKER_FEE, maker_fee=MAKER_FEE, limits=LIMITS)
        ctx = _Context(self, venue, venue.trading, market_id, rate_limited)
        signed = ctx.signed
        app.router.add_post("/api/v5/trade/order", signed(ctx.place_one))
        app.router.add_post("/api/v5/trade/batch-orders", signed(ctx.place_batch))
        app.router.add_post("/api/v5/trade/cancel-order", signed(ctx.cancel_order))
        app.router.add_get("/api/v5/trade/order", signed(ctx.get_order))
        app.router.add_get("/api/v5/trade/orders-pending", signed(ctx.orders_pending))
        app.router.add_get("/api/v5/trade/orders-history", signed(ctx.orders_history))
        app.router.add_get("/api/v5/trade/fills", signed(ctx.fills))
        app.router.add_get("/api/v5/trade/fills-history", signed(ctx.fills))
        app.router.add_get("/api/v5/account/balance", signed(ctx.balance))
        app.router.add_get("/api/v5/asset/currencies", signed(ctx.currencies))


Handler = Callable[[web.Request, _Signed], Awaitable[web.Response]]


class _Context:
    """The route handlers, bound to one venue."""

    def __init__(
        self,
        owner: OkxTrading,
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
            except OkxError as e:
                return _error(e.code, e.msg, e.status)

        return handler

    async def authenticate(self, request: web.Request) -> _Signed:
        """The request's account and raw body, or OkxError as OKX answers a badly signed request."""
        headers = request.headers
        for header, code in (
            ("OK-ACCESS-KEY", "50103"),
            ("OK-ACCESS-SIGN", "50106"),
            ("OK-ACCESS-TIMESTAMP", "50107"),
            ("OK-ACCESS-PASSPHRASE", "50104"),
        ):
            if not headers.get(header):
                raise OkxError(code, f'Request header "{header}" cannot be empty.', 401)
        account = self.trading.accounts.get(headers["OK-ACCESS-KEY"])
        if account is None:
            raise OkxError("50111", "Invalid OK-ACCESS-KEY.", 401)
        stamp = headers["OK-ACCESS-TIMESTAMP"]
        sent_ms = _iso_ms(stamp)
        if sent_ms is None:
            raise OkxError("50112", "Invalid OK-ACCESS-TIMESTAMP.", 401)
        if abs(self.owner.clock_ms() - sent_ms) > MAX_SKEW_MS:
            raise OkxError("50102", "Timestamp request expired.", 401)
        if account.passphrase is None or not hmac.compare_digest(headers["OK-ACCESS-PASSPHRASE"], account.passphrase):
            raise OkxError("50105", 'Request header "OK-ACCESS-PASSPHRASE" incorrect.', 401)
        body = await request.text() if request.can_read_body else ""
        expected = signature(account.secret, stamp, request.method, request.raw_path, body)
        if not hmac.compare_digest(headers["OK-ACCESS-SIGN"], expected):
            raise OkxError("50113", "Invalid signature.", 401)
        return _Signed(account, body)

    # ------------------------------------------------------------------ placing

    async def place_one(self, request: web.Request, signed: _Signed) -> web.Response:
        body = _json_body(signed.body)
        if not isinstance(body, dict):
            raise OkxError("50002", "JSON syntax error")
        return await self.place(request, signed.account, [body])

    async def place_batch(self, request: web.Request, signed: _Signed) -> web.Response:
        body = _json_body(signed.body)
        if not isinstance(body, list) or not body or not all(isinstance(o, dict) for o in body):
            raise OkxError("50002", "JSON syntax error")
        if len(body) > MAX_BATCH:
            raise OkxError("51111", f"Maximum {MAX_BATCH} orders can be placed in bulk.")
        return await self.place(request, signed.account, body)

    async def place(self, request: web.Request, account: Account, bodies: Sequence[Mapping[str, Any]]) -> web.Response:
        parsed = [_order_request(self.venue, self.trading, b) for b in bodies]
        in_time = _us()
        first = next((req for req, _ in parsed if isinstance(req, OrderRequest)), None)
        fault = self.trading.faults.take(first.symbol, first.side) if first is not None else None
        if isinstance(fault, RateLimitFault):
            return self.rate_limited(fault.status, fault.retry_after_s)
        if isinstance(fault, DisconnectFault) and not fault.placed:
            await deliver(fault, lambda: cut_connection(request))
            return web.Response(status=499)  # never reaches the client: the connection is gone
        rows = [self.place_parsed(account, req, body, fault) for (req, body) in parsed]
        failed = sum(1 for r in rows if r["sCode"] != "0")
        code, msg = ("0", "") if not failed else ("1", "All operations failed") if failed == len(rows) else ("2", "")
        response = _respond({"code": code, "msg": msg, "data": rows, "inTime": in_time, "outTime": _us()})
        if not await deliver(fault, lambda: cut_connection(request)):
            return web.Response(status=499)  # never reaches the client: the connection is gone
        return response

    def place_parsed(
        self,
        account: Account,
        req: OrderRequest | _OrderRefused,
        body: Mapping[str, Any],
        fault: OrderFault | None,
    ) -> dict[str, Any]:
        """One order of a create request: its result row (`sCode` "0" and its id, or why it was refused)."""
        cl_ord_id, tag = str(body.get("clOrdId") or ""), str(body.get("tag") or "")
        if isinstance(req, _OrderRefused):
            return _row("", cl_ord_id, tag, req.code, req.msg, req.sub_code)
        if isinstance(fault, RejectFault):
            return _row(
                "", cl_ord_id, tag, fault.code or "51006", fault.message or self.price_limit_message(req.symbol)
            )
        try:
            order = self.trading.place(account, req, fault, cancel_crossing_post_only=True)
        except Rejection as e:
            if e.reason == "insufficient_balance":
                rules = self.trading.rules(req.symbol)
                ccy = rules.quote if req.side == "buy" else rules.base
                return _row("", cl_ord_id, tag, "51008", f"Order failed. Insufficient {ccy} balance in account", "1000")
            return _row("", cl_ord_id, tag, *_REJECTIONS[e.reason])
        return _row(str(order.id), order.client_id, tag, "0", "Order placed")

    def price_limit_message(self, symbol: str) -> str:
        book = self.venue.book_for_symbol(symbol)
        mid = (book.price(book.bid_top) + book.price(book.ask_top)) / 2
        decimals = book.price_decimals
        return (
            f"Order price is not within the price limit (max buy price: {mid * 1.05:.{decimals}f}, "
            f"min sell price: {mid * 0.95:.{decimals}f})"
        )

    # ------------------------------------------------------------------ cancelling and querying

    def find(self, account: Account, params: Mapping[str, Any]) -> Order:
        """The order named by `ordId` (preferred) or `clOrdId` on `instId`; OkxError if the request names none."""
        symbol = self.symbol(params)
        ord_id, cl_ord_id = str(params.get("ordId") or ""), str(params.get("clOrdId") or "")
        if not ord_id and not cl_ord_id:
            raise OkxError("51003", "Either client order ID or order ID is required.", 200)
        if ord_id and not ord_id.isdigit():
            raise OkxError("51000", "Parameter ordId error")
        if ord_id:
            return self.trading.find(account, symbol, order_id=int(ord_id))
        return self.trading.find(account, symbol, client_id=cl_ord_id)

    def symbol(self, params: Mapping[str, Any]) -> str:
        inst_id = params.get("instId")
        if not inst_id:
            raise OkxError("50014", "Parameter instId can not be empty.")
        book = self.venue.book(str(inst_id))
        if book is None or book.symbol not in self.trading.books:
            raise OkxError("51001", _REJECTIONS["unknown_symbol"][1], 200)
        return book.symbol

    async def cancel_order(self, request: web.Request, signed: _Signed) -> web.Response:
        body = _json_body(signed.body)
        if not isinstance(body, dict):
            raise OkxError("50002", "JSON syntax error")
        in_time = _us()
        try:
            order = self.find(signed.account, body)
            self.trading.cancel(signed.account, order.symbol, order_id=order.id)
        except (NoSuchOrder, OrderClosed):
            row = _row(str(body.get("ordId") or ""), str(body.get("clOrdId") or ""), None, *_CANCEL_FAILED)
            return _respond(
                {"code": "1", "msg": "All operations failed", "data": [row], "inTime": in_time, "outTime": _us()}
            )
        row = _row(str(order.id), order.client_id, None, "0", "")
        return _respond({"code": "0", "msg": "", "data": [row], "inTime": in_time, "outTime": _us()})

    async def get_order(self, request: web.Request, signed: _Signed) -> web.Response:
        try:
            order = self.find(signed.account, request.query)
        except NoSuchOrder:
            raise OkxError(*_ORDER_NOT_FOUND, 200) from None
        return _respond({"code": "0", "msg": "", "data": [self.order_json(order)]})

    async def orders_pending(self, request: web.Request, signed: _Signed) -> web.Response:
        q = request.query
        symbol = self.symbol(q) if q.get("instId") else None
        orders = [o for o in self.trading.open_orders(signed.account, symbol) if _matches(o, q)]
        return self.order_page(orders, q)

    async def orders_history(self, request: web.Request, signed: _Signed) -> web.Response:
        q = request.query
        _inst_type(q, required=True)
        symbol = self.symbol(q) if q.get("instId") else None
        orders = [
            o
            for o in self.trading.orders.values()
            if o.api_key == signed.account.api_key
            and not o.is_open
            and (symbol is None or o.symbol == symbol)
            and _matches(o, q)
            and _in_range(o.created_ms, q)
        ]
        return self.order_page(orders, q)

    def order_page(self, orders: list[Order], q: Mapping[str, str]) -> web.Response:
        """Newest first, `after` / `before` an order id, at most `limit` (100)."""
        rows = _page(sorted(orders, key=lambda o: o.id, reverse=True), lambda o: o.id, q)
        return _respond({"code": "0", "msg": "", "data": [self.order_json(o) for o in rows]})

    async def fills(self, request: web.Request, signed: _Signed) -> web.Response:
        q = request.query
        _inst_type(q, required=request.path.endswith("fills-history"))
        symbol = self.symbol(q) if q.get("instId") else None
        ord_id = q.get("ordId")
        trades = [
            t
            for t in reversed(self.trading.trades)
            if t.api_key == signed.account.api_key
            and (symbol is None or t.symbol == symbol)
            and (not ord_id or str(t.order_id) == ord_id)
            and _in_range(t.ts_ms, q)
        ]
        rows = _page(trades, lambda t: t.id, q)
        return _respond({"code": "0", "msg": "", "data": [self.fill_json(t) for t in rows]})

    async def balance(self, request: web.Request, signed: _Signed) -> web.Response:
        account = signed.account
        wanted = {c for c in request.query.get("ccy", "").split(",") if c}
        details = [
            {
                "ccy": ccy,
                "availBal": _num(b.free),
                "availEq": _num(b.free),
                "cashBal": _num(b.total),
                "eq": _num(b.total),
                "frozenBal": _num(b.locked),
                "ordFrozen": _num(b.locked),
                "fixedBal": "0",
                "borrowFroz": "0",
                "crossLiab": "0",
                "liab": "0",
                "interest": "0",
                "upl": "0",
                "uTime": str(account.updated_ms),
                "eqUsd": "",
                "disEq": "",
                "isoEq": "0",
                "maxLoan": "0",
                "collateralEnabled": False,
            }
            for ccy, b in sorted(account.balances.items())
            if not wanted or ccy in wanted
        ]
        summary = {
            "adjEq": "",
            "availEq": "",
            "borrowFroz": "",
            "details": details,
            "imr": "",
            "isoEq": "0",
            "mgnRatio": "",
            "mmr": "",
            "notionalUsd": "",
            "ordFroz": "",
            "totalEq": "",
            "uTime": str(account.updated_ms),
            "upl": "0",
        }
        return _respond({"code": "0", "msg": "", "data": [summary]})

    async def currencies(self, request: web.Request, signed: _Signed) -> web.Response:
        codes = sorted({a for s in self.trading.books for a in (s.partition("/")[0], s.partition("/")[2])})
        wanted = {c for c in request.query.get("ccy", "").split(",") if c}
        rows = [
            {
                "ccy": c,
                "chain": f"{c}-{c}",
                "name": c,
                "canDep": True,
                "canWd": True,
                "canInternal": True,
                "mainNet": True,
                "minFee": "0",
                "maxFee": "0",
                "fee": "0",
                "minWd": "0",
                "maxWd": "1000000000",
                "minDep": "0",
                "wdTickSz": "8",
                "needTag": False,
                "ctAddr": "",
                "logoLink": "",
                "minDepArrivalConfirm": "1",
                "minWdUnlockConfirm": "1",
                "depQuotaFixed": "",
                "usedDepQuotaFixed": "",
                "wdQuota": "10000000",
                "usedWdQuota": "0",
                "depEstOpenTime": "",
                "wdEstOpenTime": "",
                "burningFeeRate": "",
            }
            for c in codes
            if not wanted or c in wanted
        ]
        return _respond({"code": "0", "msg": "", "data": rows})

    # ------------------------------------------------------------------ rendering

    def order_json(self, order: Order) -> dict[str, Any]:
        """An order as `GET /api/v5/trade/order` shows it (spot, cash mode)."""
        rules = self.trading.rules(order.symbol)
        fee_ccy, rebate_ccy = (rules.base, rules.quote) if order.side == "buy" else (rules.quote, rules.base)
        last = order.trades[-1] if order.trades else None
        source, reason = _CANCEL_SOURCE[order.end_reason] if order.end_reason else ("", "")
        tgt_ccy = "" if order.type == "limit" else "quote_ccy" if order.quote_amount is not None else "base_ccy"
        return {
            "accFillSz": _num(order.filled),
            "algoClOrdId": "",
            "algoId": "",
            "attachAlgoClOrdId": "",
            "attachAlgoOrds": [],
            "avgPx": _num(order.average),
            "cTime": str(order.created_ms),
            "cancelSource": source,
            "cancelSourceReason": reason,
            "category": "normal",
            "ccy": "",
            "clOrdId": order.client_id,
            "fee": _num(-order.fee),
            "feeCcy": fee_ccy,
            "fillPx": _num(last.price) if last else "",
            "fillSz": _num(last.amount) if last else "0",
            "fillTime": str(last.ts_ms) if last else "",
            "instId": self.market_id(order.symbol),
            "instType": "SPOT",
            "isTpLimit": "false",
            "lever": "",
            "linkedAlgoOrd": {"algoId": ""},
            "ordId": str(order.id),
            "ordType": _ord_type(order),
            "pnl": "0",
            "posSide": "net",
            "px": _num(order.price),
            "pxType": "",
            "pxUsd": "",
            "pxVol": "",
            "quickMgnType": "",
            "rebate": "0",
            "rebateCcy": rebate_ccy,
            "reduceOnly": "false",
            "side": order.side,
            "slOrdPx": "",
            "slTriggerPx": "",
            "slTriggerPxType": "",
            "source": "",
            "state": _STATE[order.status],
            "stpId": "",
            "stpMode": "cancel_maker",
            "sz": _num(order.quote_amount if tgt_ccy == "quote_ccy" else order.amount),
            "tag": "",
            "tdMode": "cash",
            "tgtCcy": tgt_ccy,
            "tpOrdPx": "",
            "tpTriggerPx": "",
            "tpTriggerPxType": "",
            "tradeId": str(last.id) if last else "",
            "tradeQuoteCcy": rules.quote,
            "uTime": str(order.updated_ms),
        }

    def fill_json(self, trade: Trade) -> dict[str, Any]:
        rate = self.trading.maker_fee if trade.maker else self.trading.taker_fee
        account = self.trading.accounts.get(trade.api_key)
        if account is not None:
            own = account.maker_fee if trade.maker else account.taker_fee
            rate = own if own is not None else rate
        order = self.trading.orders.get(trade.order_id)
        return {
            "instType": "SPOT",
            "instId": self.market_id(trade.symbol),
            "tradeId": str(trade.id),
            "ordId": str(trade.order_id),
            "clOrdId": order.client_id if order is not None else "",
            "billId": str(trade.id),
            "subType": "1" if trade.side == "buy" else "2",
            "tag": "",
            "fillPx": _num(trade.price),
            "fillSz": _num(trade.amount),
            "fillIdxPx": "",
            "fillPnl": "0",
            "fillPxVol": "",
            "fillPxUsd": "",
            "fillMarkVol": "",
            "fillFwdPx": "",
            "fillMarkPx": "",
            "side": trade.side,
            "posSide": "net",
            "execType": "M" if trade.maker else "T",
            "feeCcy": trade.fee_asset,
            "fee": _num(-trade.fee),
            "feeRate": _num(-rate),
            "ts": str(trade.ts_ms),
            "fillTime": str(trade.ts_ms),
            "tradeQuoteCcy": self.trading.rules(trade.symbol).quote,
        }


# ---------------------------------------------------------------------------------------------------- parsing


def _json_body(text: str) -> Any:
    if not text:
        raise OkxError("50000", "Body for POST request cannot be empty.")
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        raise OkxError("50002", "JSON syntax error") from None


def _iso_ms(stamp: str) -> int | None:
    """Milliseconds of an ISO 8601 UTC timestamp (`2020-12-08T09:08:57.715Z`), None if it is not one."""
    try:
        parsed = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return int(parsed.timestamp() * 1000)


def _decimal(body: Mapping[str, Any], name: str) -> Decimal | None:
    raw = body.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise OkxError("51000", f"Parameter {name} error") from None
    if not value.is_finite() or value <= 0:
        raise OkxError("51000", f"Parameter {name} error")
    return value


def _order_request(
    venue: SimVenue, trading: Trading, body: Mapping[str, Any]
) -> tuple[OrderRequest | _OrderRefused, Mapping[str, Any]]:
    """The order a create request asks for (or why this one order is refused); OkxError for a malformed request."""
    for name in ("instId", "tdMode", "side", "ordType", "sz"):
        if not body.get(name):
            raise OkxError("50014", f"Parameter {name} can not be empty.")
    side, ord_type = body["side"], body["ordType"]
    if side not in ("buy", "sell"):
        raise OkxError("51000", "Parameter side error")
    if ord_type not in _ORD_TYPES:
        raise OkxError("51000", "Parameter ordType error")
    if body["tdMode"] != "cash":
        raise OkxError("51000", "Parameter tdMode error")
    cl_ord_id, tag = str(body.get("clOrdId") or ""), str(body.get("tag") or "")
    if cl_ord_id and not _CL_ORD_ID_RE.match(cl_ord_id):
        raise OkxError("51000", "Parameter clOrdId error")
    if tag and not _TAG_RE.match(tag):
        raise OkxError("51000", "Parameter tag error")
    size, price = _decimal(body, "sz"), _decimal(body, "px")
    if ord_type != "market" and price is None:
        raise OkxError("50014", "Parameter px can not be empty.")
    book = venue.book(str(body["instId"]))
    if book is None or book.symbol not in trading.books:
        return _OrderRefused(*_REJECTIONS["unknown_symbol"]), body
    if ord_type == "market":
        tgt_ccy = body.get("tgtCcy") or ("quote_ccy" if side == "buy" else "base_ccy")
        if tgt_ccy not in ("base_ccy", "quote_ccy"):
            raise OkxError("51000", "Parameter tgtCcy error")
        by_quote = tgt_ccy == "quote_ccy"
        req = OrderRequest(
            book.symbol,
            side,
            "market",
            amount=None if by_quote else size,
            quote_amount=size if by_quote else None,
            client_id=cl_ord_id,
        )
    else:
        tif = {"limit": "GTC", "post_only": "GTC", "ioc": "IOC", "fok": "FOK"}[ord_type]
        req = OrderRequest(
            book.symbol,
            side,
            "limit",
            amount=size,
            price=price,
            time_in_force=tif,  # type: ignore[arg-type]
            post_only=ord_type == "post_only",
            client_id=cl_ord_id,
        )
    return req, body


def _row(ord_id: str, cl_ord_id: str, tag: str | None, code: str, msg: str, sub_code: str = "") -> dict[str, Any]:
    row: dict[str, Any] = {"clOrdId": cl_ord_id, "ordId": ord_id}
    if tag is not None:
        row["tag"] = tag
    row |= {"ts": str(time.time_ns() // 1_000_000), "sCode": code, "sMsg": msg}
    if tag is not None:
        row["subCode"] = sub_code
    return row


def _ord_type(order: Order) -> str:
    if order.type == "market":
        return "market"
    if order.post_only:
        return "post_only"
    return {"GTC": "limit", "IOC": "ioc", "FOK": "fok"}[order.time_in_force]


def _inst_type(q: Mapping[str, str], *, required: bool) -> None:
    inst_type = q.get("instType")
    if not inst_type:
        if required:
            raise OkxError("50014", "Parameter instType can not be empty.")
        return
    if inst_type not in _INST_TYPES:
        raise OkxError("51000", "Parameter instType error")


def _matches(order: Order, q: Mapping[str, str]) -> bool:
    """The `instType` (SPOT only here), `ordType` and `state` filters of the order lists."""
    if q.get("instType") not in (None, "", "SPOT"):
        return False
    if q.get("ordType") and q["ordType"] != _ord_type(order):
        return False
    return not (q.get("state") and q["state"] != _STATE[order.status])


def _int(q: Mapping[str, str], name: str) -> int | None:
    raw = q.get(name)
    if not raw:
        return None
    if not raw.isdigit():
        raise OkxError("51000", f"Parameter {name} error")
    return int(raw)


def _in_range(ts_ms: int, q: Mapping[str, str]) -> bool:
    begin, end = _int(q, "begin"), _int(q, "end")
    return (begin is None or ts_ms >= begin) and (end is None or ts_ms <= end)


def _page(rows: list[Any], key: Callable[[Any], int], q: Mapping[str, str]) -> list[Any]:
    """Rows newest first: those older than `after` / newer than `before` (ids), at most `limit` (max 100)."""
    after, before = _int(q, "after"), _int(q, "before")
    limit = min(_int(q, "limit") or 100, 100)
    rows = [r for r in rows if (after is None or key(r) < after) and (before is None or key(r) > before)]
    return rows[:limit]
