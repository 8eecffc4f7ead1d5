"""Kraken spot's private REST endpoints (`/0/private/*`), served locally: orders, trades and balances.

Follows https://docs.kraken.com/api/docs/guides/spot-rest-auth (the `API-Key` header, `API-Sign` = base64 of
HMAC-SHA512, keyed with the base64-decoded secret, of the URI path + SHA256(nonce + POST data), and a `nonce` that
must increase with every call of a key), https://docs.kraken.com/api/docs/rest-api/add-order (`ordertype`
market / limit, `type`, `volume`, `price`, `oflags` post / viqc / fcib / fciq / nompp, `timeinforce` GTC / IOC,
`userref` (int32) or `cl_ord_id` (a UUID or up to 18 characters of free text), `validate`), .../cancel-order (by
txid, userref or cl_ord_id), .../get-orders-info (`QueryOrders`), .../get-open-orders, .../get-closed-orders,
.../get-trade-history (`TradesHistory`), .../get-trades-info (`QueryTrades`), .../get-account-balance (`Balance`),
.../get-extended-balance (`BalanceEx`: `balance` and `hold_trade`) and
https://docs.kraken.com/api/docs/guides/spot-errors. Every answer is `{"error": [...], "result": ...}` on HTTP 200.

Authentication, checked for real against the venue's accounts (`arb.sim.trading`): a missing or unknown key is
"EAPI:Invalid key" (ccxt 4.5.90: AuthenticationError); a wrong signature (or a secret that is not base64) is
"EAPI:Invalid signature", which ccxt 4.5.90 has in neither of its error tables and raises as a plain ExchangeError;
a nonce missing, not an integer, or not greater than the last one the key used is "EAPI:Invalid nonce" (ccxt:
InvalidNonce). The nonce is checked after the signature, and only a request that passes both moves it on.

Orders: IDs look like Kraken's (`OXXXXX-XXXXX-XXXXXX` orders, `TXXXXX-XXXXX-XXXXXX` trades), each naming the core's
order or trade. Every fee is charged in the quote currency (what Kraken's order and trade records state), so a buy
needs its cost plus the taker fee free. Refusals: "EQuery:Unknown asset pair" (ccxt: BadSymbol), "EOrder:Invalid
price:<pair> price can only be specified up to N decimals." (off the tick), "EOrder:Order minimum not met" (below
`ordermin`; ccxt: InvalidOrder), "EOrder:Cost minimum not met" (below `costmin`), "EGeneral:Invalid
arguments:volume" (off `lot_decimals`; ccxt: InvalidOrder), "EOrder:Insufficient funds" (ccxt: InsufficientFunds),
"EGeneral:Invalid arguments:<name>" for a bad or missing parameter (ccxt: BadRequest for the bare
"EGeneral:Invalid arguments"). A post-only order that would take is accepted and then cancelled (`reason` "Post only
order"); IOC and market remainders end `canceled` with what they filled. Cancelling an unknown or finished order:
"EOrder:Unknown order" (ccxt's cancel_order: OrderNotFound); querying an unknown txid: "EOrder:Invalid order" (ccxt
4.5.90: InvalidOrder, not OrderNotFound).

What the real client calls (ccxt 4.5.90 `kraken`): `load_markets` -> the public AssetPairs and Assets only;
`create_order` -> `AddOrder` (clientOrderId as `cl_ord_id`; the answer's `descr` and `txid` only, so the order has no
status until fetched); `fetch_order` -> `QueryOrders` (`txid`, `trades=true`); `cancel_order` -> `CancelOrder`
(`txid`, or `cl_ord_id` from params `clientOrderId`); `fetch_open_orders` / `fetch_closed_orders` -> `OpenOrders` /
`ClosedOrders` (params `clientOrderId` -> `cl_ord_id`: the lookup by client id); `fetch_my_trades` ->
`TradesHistory`; `fetch_balance` -> `BalanceEx`. ccxt signs with a strictly increasing millisecond nonce per
exchange instance, so two instances on one key can collide (FAULTS E12).

Order faults (`arb.sim.trading`): `reject` answers "EService:Market in cancel_only mode" (ccxt: OnMaintenance) unless
the fault gives its own message; `rate_limit` answers like the venue's own rate limiting (`KrakenProtocol
.rate_limited`).

Deviations, on purpose: spot only (no margin, `leverage` other than none is refused); `timeinforce` GTD, conditional
order types, `starttm` / `expiretm`, `close`, amend, batch and cancel-all endpoints are not served; `fcib` is
accepted but the fee is still charged in quote; costs, fees and balances are written with the core's precision (up
to 8 decimals) rather than the asset's display decimals, so they add up exactly; a `cl_ord_id` already used by an
open order is refused with "EOrder:Duplicate cl_ord_id" (the sim's own text); the nonce window setting of Kraken keys
is not modelled (window 0); history keeps every order and trade and pages by `ofs` (50 rows) only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import parse_qsl

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
    Trade,
    VenueLimits,
    deliver,
)

if TYPE_CHECKING:
    from arb.sim.market import Book
    from arb.sim.server import SimVenue
    from arb.sim.trading import Trading
    from arb.sim.venues.kraken import PairNames

DOCS: Final = (
    "https://docs.kraken.com/api/docs/guides/spot-rest-auth",
    "https://docs.kraken.com/api/docs/rest-api/add-order",
    "https://docs.kraken.com/api/docs/rest-api/get-orders-info",
    "https://docs.kraken.com/api/docs/guides/spot-errors",
)
TAKER_FEE: Final = Decimal("0.004")
MAKER_FEE: Final = Decimal("0.0025")
"""The first tier of AssetPairs' `fees` / `fees_maker` (0.40 % / 0.25 %), charged in the quote currency."""
LOT_STEP: Final = Decimal("0.00000001")
"""`lot_decimals` 8: the volume increment Kraken accepts."""
COST_MIN: Final = Decimal("0.5")
"""AssetPairs' `costmin`, in the quote currency."""
PAGE: Final = 50
REJECT_FAULT: Final = "EService:Market in cancel_only mode"
"""What a `reject` order fault answers unless it gives its own message."""
_ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_CL_ORD_ID_RE: Final = re.compile(
    r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32}|[!-~]{1,18})$"
)
_OFLAGS: Final = frozenset({"post", "fcib", "fciq", "nompp", "viqc"})
_STATUS: Final = {"new": "open", "partially_filled": "open", "filled": "closed", "canceled": "canceled"}
_REASON: Final = {
    "ioc_remainder": "Insufficient liquidity",
    "fok_unfilled": "Insufficient liquidity",
    "post_only_would_take": "Post only order",
    "by_user": "User requested",
    "by_venue": "Canceled by venue",
}


def limits_for(book: Book) -> VenueLimits:
    """A pair's rules as AssetPairs shows them: volumes to `lot_decimals` 8, `ordermin` one book lot, `costmin` 0.5;
    Kraken lists no maxima (the core's are lifted out of reach)."""
    huge = Decimal(10) ** 15
    return VenueLimits(
        step=LOT_STEP,
        min_qty=Decimal(repr(book.step)),
        min_notional=COST_MIN,
        max_notional=huge,
        max_qty=huge,
        max_price=huge,
    )


def signature(secret: str, path: str, nonce: str, post_data: str) -> str:
    """Kraken's API-Sign: base64(HMAC-SHA512(base64decode(secret), path + SHA256(nonce + POST data))).
    binascii.Error if the secret is not base64."""
    digest = hashlib.sha256((nonce + post_data).encode()).digest()
    mac = hmac.new(base64.b64decode(secret), path.encode() + digest, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode()


def txid(prefix: str, n: int) -> str:
    """A Kraken-style id for the core's order or trade number `n` (`O` orders, `T` trades): 16 base-32 digits."""
    digits = "".join(_ALPHABET[(n >> (5 * i)) & 31] for i in reversed(range(16)))
    text = prefix + digits
    return f"{text[:6]}-{text[6:11]}-{text[11:]}"


def parse_txid(prefix: str, text: str) -> int | None:
    """The number a `txid(prefix, n)` names, or None if `text` is not one."""
    raw = text.replace("-", "")
    if len(raw) != 17 or not raw.startswith(prefix) or len(text) != 19:
        return None
    n = 0
    for ch in raw[1:]:
        i = _ALPHABET.find(ch)
        if i < 0:
            return None
        n = n * 32 + i
    return n


class KrakenError(Exception):
    """A request Kraken refuses: `{"error": [text]}`."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


@dataclass(frozen=True, slots=True)
class _Signed:
    account: Account
    params: Mapping[str, str]


Handler = Callable[[web.Request, _Signed], Awaitable[web.Response]]
_Row = TypeVar("_Row", Order, Trade)


def _respond(result: Any) -> web.Response:
    return web.Response(body=orjson.dumps({"error": [], "result": result}), content_type="application/json")


def _refused(text: str) -> web.Response:
    return web.Response(body=orjson.dumps({"error": [text]}), content_type="application/json")


def _num(x: Decimal) -> str:
    text = format(x.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _vol(x: Decimal) -> str:
    return f"{x:.8f}"


class KrakenTrading:
    """Kraken spot's signed endpoints for one venue (see the module docstring)."""

    def __init__(self) -> None:
        self.nonces: dict[str, int] = {}
        """API key -> the last nonce it used successfully."""
        self.userrefs: dict[int, int] = {}
        """Order id -> its `userref`."""

    def install(
        self,
        venue: SimVenue,
        app: web.Application,
        *,
        names: Callable[[str], PairNames],
        resolve: Callable[[str], str | None],
        asset_id: Callable[[str], str],
        rate_limited: Callable[[int, int], web.Response],
    ) -> None:
        """Add the signed routes to `app` and give the venue's trading core Kraken's fees (in quote) and rules.

        `names(symbol)` gives a pair's Kraken names, `resolve(name)` the symbol an id / altname / wsname names (None
        if none), `asset_id(code)` Kraken's asset id for a unified code (`BTC` -> `XXBT`)."""
        venue.trading.configure(taker_fee=TAKER_FEE, maker_fee=MAKER_FEE, limits_for=limits_for, fee_in_quote=True)
        ctx = _Context(self, venue, venue.trading, names, resolve, asset_id, rate_limited)
        routes: dict[str, Handler] = {
            "AddOrder": ctx.add_order,
            "CancelOrder": ctx.cancel_order,
            "QueryOrders": ctx.query_orders,
            "OpenOrders": ctx.open_orders,
            "ClosedOrders": ctx.closed_orders,
            "TradesHistory": ctx.trades_history,
            "QueryTrades": ctx.query_trades,
            "Balance": ctx.balance,
            "BalanceEx": ctx.balance_ex,
        }
        for path, fn in routes.items():
            app.router.add_post(f"/0/private/{path}", ctx.signed(fn))


class _Context:
    """The route handlers, bound to one venue."""

    def __init__(
        self,
        owner: KrakenTrading,
        venue: SimVenue,
        trading: Trading,
        names: Callable[[str], PairNames],
        resolve: Callable[[str], str | None],
        asset_id: Callable[[str], str],
        rate_limited: Callable[[int, int], web.Response],
    ) -> None:
        self.owner = owner
        self.venue = venue
        self.trading = trading
        self.names = names
        self.resolve = resolve
        self.asset_id = asset_id
        self.rate_limited = rate_limited

    # ------------------------------------------------------------------ authentication

    def signed(self, fn: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            try:
                return await fn(request, await self.authenticate(request))
            except KrakenError as e:
                return _refused(e.text)

        return handler

    async def authenticate(self, request: web.Request) -> _Signed:
        """The request's account and parameters, or KrakenError as Kraken answers a badly signed request."""
        account = self.trading.accounts.get(request.headers.get("API-Key", ""))
        if account is None:
            raise KrakenError("EAPI:Invalid key")
        body = await request.text() if request.can_read_body else ""
        params = _params(body, request.content_type)
        nonce = params.get("nonce", "")
        try:
            expected = signature(account.secret, request.path, nonce, body)
        except (binascii.Error, ValueError):
            raise KrakenError("EAPI:Invalid signature") from None
        if not hmac.compare_digest(request.headers.get("API-Sign", ""), expected):
            raise KrakenError("EAPI:Invalid signature")
        if not nonce.isdigit() or len(nonce) > 20 or int(nonce) <= self.owner.nonces.get(account.api_key, 0):
            raise KrakenError("EAPI:Invalid nonce")
        self.owner.nonces[account.api_key] = int(nonce)
        return _Signed(account, params)

    # ------------------------------------------------------------------ orders

    async def add_order(self, request: web.Request, signed: _Signed) -> web.Response:
        p = signed.params
        req, userref = self.order_request(p)
        descr = {"order": self.describe(req)}
        if p.get("validate") in ("true", "1", "True"):
            return _respond({"descr": descr})
        fault = self.trading.faults.take(req.symbol, req.side)
        if isinstance(fault, RateLimitFault):
            return self.rate_limited(fault.status, fault.retry_after_s)
        if isinstance(fault, DisconnectFault) and not fault.placed:
            await deliver(fault, lambda: cut_connection(request))
            return web.Response(status=499)  # never reaches the client: the connection is gone
        if isinstance(fault, RejectFault):
            raise KrakenError(fault.message or fault.code or REJECT_FAULT)
        try:
            order = self.trading.place(signed.account, req, fault, cancel_crossing_post_only=True)
        except Rejection as e:
            raise KrakenError(self.rejection(e, req)) from None
        if userref is not None:
            self.owner.userrefs[order.id] = userref
        response = _respond({"descr": descr, "txid": [txid("O", order.id)]})
        if not await deliver(fault, lambda: cut_connection(request)):
            return web.Response(status=499)  # never reaches the client: the connection is gone
        return response

    def order_request(self, p: Mapping[str, str]) -> tuple[OrderRequest, int | None]:
        """The order an AddOrder asks for and its userref; KrakenError naming the bad argument otherwise."""
        for name in ("pair", "type", "ordertype", "volume"):
            if not p.get(name):
                raise KrakenError(f"EGeneral:Invalid arguments:{name}")
        side, order_type = p["type"], p["ordertype"]
        if side not in ("buy", "sell"):
            raise KrakenError("EGeneral:Invalid arguments:type")
        if order_type not in ("limit", "market"):
            raise KrakenError("EGeneral:Invalid arguments:ordertype")
        flags, tif, userref, cl_ord_id = _order_options(p)
        symbol = self.resolve(p["pair"])
        if symbol is None or symbol not in self.trading.books:
            raise KrakenError("EQuery:Unknown asset pair")
        volume = _decimal(p, "volume")
        if order_type == "market":
            if "post" in flags:
                raise KrakenError("EGeneral:Invalid arguments:oflags")
            by_quote = "viqc" in flags
            if by_quote and side != "buy":
                raise KrakenError("EGeneral:Invalid arguments:viqc")
            req = OrderRequest(
                symbol,
                side,  # type: ignore[arg-type]
                "market",
                amount=None if by_quote else volume,
                quote_amount=volume if by_quote else None,
                time_in_force="IOC",
                client_id=cl_ord_id,
            )
            return req, userref
        if "viqc" in flags:
            raise KrakenError("EGeneral:Invalid arguments:viqc")
        if not p.get("price"):
            raise KrakenError("EGeneral:Invalid arguments:price")
        req = OrderRequest(
            symbol,
            side,  # type: ignore[arg-type]
            "limit",
            amount=volume,
            price=_decimal(p, "price"),
            time_in_force=tif,  # type: ignore[arg-type]
            post_only="post" in flags,
            client_id=cl_ord_id,
        )
        return req, userref

    def rejection(self, e: Rejection, req: OrderRequest) -> str:
        names = self.names(req.symbol)
        if e.reason == "price_filter":
            rules = self.trading.rules(req.symbol)
            if req.price is not None and req.price % rules.tick:
                decimals = max(0, -rules.tick.normalize().as_tuple().exponent)  # type: ignore[operator]
                return f"EOrder:Invalid price:{names.altname} price can only be specified up to {decimals} decimals."
            return "EOrder:Invalid price"
        return {
            "unknown_symbol": "EQuery:Unknown asset pair",
            "min_qty": "EOrder:Order minimum not met",
            "lot_size": "EGeneral:Invalid arguments:volume",
            "min_notional": "EOrder:Cost minimum not met",
            "max_notional": "EGeneral:Invalid arguments:volume",
            "duplicate_client_id": "EOrder:Duplicate cl_ord_id",
            "insufficient_balance": "EOrder:Insufficient funds",
            "post_only_would_take": "EOrder:Post only order",
        }[e.reason]

    def describe(self, req: OrderRequest | Order) -> str:
        """Kraken's one-line `descr.order`: `buy 0.25000000 XBTUSD @ limit 30010.0`."""
        altname = self.names(req.symbol).altname
        volume = req.quote_amount if req.quote_amount is not None else req.amount
        if req.type == "market":
            return f"{req.side} {_vol(volume or Decimal(0))} {altname} @ market"
        return f"{req.side} {_vol(volume or Decimal(0))} {altname} @ limit {_num(req.price or Decimal(0))}"

    async def cancel_order(self, request: web.Request, signed: _Signed) -> web.Response:
        p = signed.params
        account = signed.account
        ref = p.get("cl_ord_id") or p.get("txid") or ""
        if not ref:
            raise KrakenError("EGeneral:Invalid arguments:txid")
        n = parse_txid("O", ref)
        if n is not None:
            targets = [o for o in (self.trading.orders.get(n),) if o is not None and o.api_key == account.api_key]
        elif ref.lstrip("-").isdigit() and not p.get("cl_ord_id"):
            userref = int(ref)
            targets = [o for o in self.mine(account) if self.owner.userrefs.get(o.id) == userref and o.is_open]
        else:
            targets = [o for o in self.mine(account) if o.client_id == ref and o.is_open]
        count = 0
        for order in targets:
            try:
                self.trading.cancel(account, order.symbol, order_id=order.id)
                count += 1
            except (NoSuchOrder, OrderClosed):
                pass
        if not count:
            raise KrakenError("EOrder:Unknown order")
        return _respond({"count": count})

    def mine(self, account: Account) -> list[Order]:
        return [o for o in self.trading.orders.values() if o.api_key == account.api_key]

    # ------------------------------------------------------------------ queries

    async def query_orders(self, request: web.Request, signed: _Signed) -> web.Response:
        p = signed.params
        ids = [t for t in p.get("txid", "").split(",") if t]
        if not ids or len(ids) > PAGE:
            raise KrakenError("EGeneral:Invalid arguments:txid")
        userref = _userref(p)
        out: dict[str, Any] = {}
        for text in ids:
            n = parse_txid("O", text)
            order = self.trading.orders.get(n) if n is not None else None
            if order is None or order.api_key != signed.account.api_key:
                raise KrakenError("EOrder:Invalid order")
            if userref is None or self.owner.userrefs.get(order.id) == userref:
                out[text] = self.order_json(order, trades=_flag(p, "trades"))
        return _respond(out)

    async def open_orders(self, request: web.Request, signed: _Signed) -> web.Response:
        p = signed.params
        orders = [o for o in self.mine(signed.account) if o.is_open and self.matches(o, p)]
        rows = {txid("O", o.id): self.order_json(o, trades=_flag(p, "trades")) for o in reversed(orders)}
        return _respond({"open": rows})

    async def closed_orders(self, request: web.Request, signed: _Signed) -> web.Response:
        p = signed.params
        start, end = _time(p, "start"), _time(p, "end")
        at_close = p.get("closetime") == "close"
        orders = [
            o
            for o in reversed(self.mine(signed.account))
            if not o.is_open
            and self.matches(o, p)
            and (start is None or (o.updated_ms if at_close else o.created_ms) / 1000 > start)
            and (end is None or (o.updated_ms if at_close else o.created_ms) / 1000 <= end)
        ]
        page = _page(orders, p)
        rows = {txid("O", o.id): self.order_json(o, trades=_flag(p, "trades")) for o in page}
        return _respond({"closed": rows, "count": len(orders)})

    def matches(self, order: Order, p: Mapping[str, str]) -> bool:
        userref = _userref(p)
        if userref is not None and self.owner.userrefs.get(order.id) != userref:
            return False
        return not (p.get("cl_ord_id") and p["cl_ord_id"] != order.client_id)

    async def trades_history(self, request: web.Request, signed: _Signed) -> web.Response:
        p = signed.params
        kind = p.get("type", "all")
        if kind not in ("all", "any position", "closed position", "closing position", "no position"):
            raise KrakenError("EGeneral:Invalid arguments:type")
        start, end = _time(p, "start"), _time(p, "end")
        trades = [
            t
            for t in reversed(self.trading.trades)
            if t.api_key == signed.account.api_key
            and kind in ("all", "no position")
            and (start is None or t.ts_ms / 1000 > start)
            and (end is None or t.ts_ms / 1000 <= end)
        ]
        page = _page(trades, p)
        return _respond({"trades": {txid("T", t.id): self.trade_json(t) for t in page}, "count": len(trades)})

    async def query_trades(self, request: web.Request, signed: _Signed) -> web.Response:
        ids = [t for t in signed.params.get("txid", "").split(",") if t]
        if not ids or len(ids) > 20:
            raise KrakenError("EGeneral:Invalid arguments:txid")
        by_id = {t.id: t for t in self.trading.trades if t.api_key == signed.account.api_key}
        out = {}
        for text in ids:
            n = parse_txid("T", text)
            trade = by_id.get(n) if n is not None else None
            if trade is None:
                raise KrakenError("EGeneral:Invalid arguments:txid")
            out[text] = self.trade_json(trade)
        return _respond(out)

    async def balance(self, request: web.Request, signed: _Signed) -> web.Response:
        return _respond({self.asset_id(a): _num(b.total) for a, b in sorted(signed.account.balances.items())})

    async def balance_ex(self, request: web.Request, signed: _Signed) -> web.Response:
        return _respond(
            {
                self.asset_id(a): {
                    "balance": _num(b.total),
                    "hold_trade": _num(b.locked),
                    "credit": "0",
                    "credit_used": "0",
                }
                for a, b in sorted(signed.account.balances.items())
            }
        )

    # ------------------------------------------------------------------ rendering

    def order_json(self, order: Order, *, trades: bool) -> dict[str, Any]:
        """An order as QueryOrders / OpenOrders / ClosedOrders show it."""
        status = _STATUS.get(order.status, "canceled")  # an expired IOC / market remainder: Kraken says canceled
        flags = ["fciq"]
        if order.post_only:
            flags.append("post")
        if order.quote_amount is not None:
            flags.append("viqc")
        userref = self.owner.userrefs.get(order.id)
        row: dict[str, Any] = {
            "refid": None,
            "userref": userref,
            "status": status,
            "opentm": order.created_ms / 1000,
            "starttm": 0,
            "expiretm": 0,
            "descr": {
                "pair": self.names(order.symbol).altname,
                "type": order.side,
                "ordertype": order.type,
                "price": _num(order.price or Decimal(0)),
                "price2": "0",
                "leverage": "none",
                "order": self.describe(order),
                "close": "",
            },
            "vol": _vol(order.quote_amount if order.quote_amount is not None else order.amount),
            "vol_exec": _vol(order.filled),
            "cost": _num(order.cost),
            "fee": _num(order.fee),
            "price": _num(order.average or Decimal(0)),
            "stopprice": "0.00000",
            "limitprice": "0.00000",
            "misc": "",
            "oflags": ",".join(flags),
            "timeinforce": "IOC" if order.time_in_force != "GTC" else "GTC",
        }
        if order.client_id:
            row["cl_ord_id"] = order.client_id
        if not order.is_open:
            row["closetm"] = order.updated_ms / 1000
            row["reason"] = _REASON.get(order.end_reason or "") if status == "canceled" else None
        if trades and order.trades:
            row["trades"] = [txid("T", t.id) for t in order.trades]
        return row

    def trade_json(self, trade: Trade) -> dict[str, Any]:
        order = self.trading.orders.get(trade.order_id)
        return {
            "ordertxid": txid("O", trade.order_id),
            "postxid": txid("T", trade.id + 1),
            "pair": self.names(trade.symbol).id,
            "aclass": "currency",
            "time": trade.ts_ms / 1000,
            "type": trade.side,
            "ordertype": order.type if order is not None else "limit",
            "price": _num(trade.price),
            "cost": _num(trade.cost),
            "fee": _num(trade.fee),
            "vol": _vol(trade.amount),
            "margin": "0.00000",
            "leverage": "0",
            "misc": "",
            "trade_id": trade.id,
            "maker": trade.maker,
        }


# ---------------------------------------------------------------------------------------------------- parsing


def _params(body: str, content_type: str) -> dict[str, str]:
    """The POST data: form-encoded (or JSON, which ccxt sends for a few endpoints), values as strings."""
    if content_type == "application/json":
        try:
            data = orjson.loads(body) if body else {}
        except orjson.JSONDecodeError:
            raise KrakenError("EGeneral:Invalid arguments") from None
        if not isinstance(data, dict):
            raise KrakenError("EGeneral:Invalid arguments")
        return {str(k): v if isinstance(v, str) else orjson.dumps(v).decode() for k, v in data.items()}
    return dict(parse_qsl(body, keep_blank_values=True))


def _order_options(p: Mapping[str, str]) -> tuple[set[str], str, int | None, str]:
    """An AddOrder's `oflags`, `timeinforce`, `userref` and `cl_ord_id`, checked (spot: no leverage)."""
    if p.get("leverage") not in (None, "", "none", "1"):
        raise KrakenError("EGeneral:Invalid arguments:leverage")
    flags = {f for f in p.get("oflags", "").split(",") if f}
    if not flags <= _OFLAGS or {"fcib", "fciq"} <= flags:
        raise KrakenError("EGeneral:Invalid arguments:oflags")
    tif = p.get("timeinforce") or "GTC"
    if tif not in ("GTC", "IOC"):
        raise KrakenError("EGeneral:Invalid arguments:timeinforce")
    userref = _userref(p)
    cl_ord_id = p.get("cl_ord_id", "")
    if cl_ord_id and (not _CL_ORD_ID_RE.match(cl_ord_id) or userref is not None):
        raise KrakenError("EGeneral:Invalid arguments:cl_ord_id")
    return flags, tif, userref, cl_ord_id


def _decimal(p: Mapping[str, str], name: str) -> Decimal:
    try:
        value = Decimal(p[name])
    except (InvalidOperation, KeyError):
        raise KrakenError(f"EGeneral:Invalid arguments:{name}") from None
    if not value.is_finite() or value <= 0:
        raise KrakenError(f"EGeneral:Invalid arguments:{name}")
    return value


def _userref(p: Mapping[str, str]) -> int | None:
    raw = p.get("userref")
    if raw is None or raw == "":
        return None
    if not raw.lstrip("-").isdigit() or not -(2**31) <= int(raw) < 2**31:
        raise KrakenError("EGeneral:Invalid arguments:userref")
    return int(raw)


def _flag(p: Mapping[str, str], name: str) -> bool:
    return p.get(name, "").lower() in ("true", "1")


def _time(p: Mapping[str, str], name: str) -> float | None:
    raw = p.get(name)
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise KrakenError(f"EGeneral:Invalid arguments:{name}") from None


def _page(rows: list[_Row], p: Mapping[str, str]) -> list[_Row]:
    raw = p.get("ofs") or "0"
    if not raw.isdigit():
        raise KrakenError("EGeneral:Invalid arguments:ofs")
    return rows[int(raw) : int(raw) + PAGE]
