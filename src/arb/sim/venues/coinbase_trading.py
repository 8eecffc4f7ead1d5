"""Coinbase Advanced Trade's private REST endpoints (`/api/v3/brokerage/*`), served locally: orders, fills,
accounts and the fee tier.

Follows https://docs.cdp.coinbase.com/api-reference/advanced-trade-api/rest-api/orders/create-order
(`client_order_id`, `product_id`, `side`, `order_configuration` with exactly one of `market_market_ioc`
{`base_size` | `quote_size`}, `sor_limit_ioc`, `limit_limit_gtc` {`post_only`}, `limit_limit_fok`), .../orders/
cancel-orders (`POST /orders/batch_cancel`), .../orders/get-order (`GET /orders/historical/{order_id}`),
.../orders/list-orders (`GET /orders/historical/batch`), .../orders/list-fills (`GET /orders/historical/fills`),
.../accounts/list-accounts (`GET /accounts`), .../fees/get-transaction-summary, and the authentication pages
https://docs.cdp.coinbase.com/coinbase-app/authentication-authorization/api-key-authentication (CDP keys: a
`Bearer` JWT signed ES256 with the key's EC private key, header `kid` = the key name, claims `sub` = the key name,
`iss` "coinbase-cloud", `nbf` / `exp` (two minutes), `uri` = "METHOD host/path") and the legacy key scheme (the
`CB-ACCESS-KEY`, `CB-ACCESS-TIMESTAMP` (seconds, within 30 s of server time) and `CB-ACCESS-SIGN` = hex
HMAC-SHA256(secret, timestamp + METHOD + path + body) headers; the v2 endpoints sign the GET query too).

Authentication, checked for real against the venue's accounts (`arb.sim.trading`). Which scheme ccxt 4.5.90 uses
depends on the key: an API key containing `organizations/` or a PEM secret -> ES256 JWT; a secret of 88 characters
or ending in `=` -> an EdDSA JWT (not served here: 401); any other key / secret pair (the default account's,
`local-sim-key` / `localsimsecret00`) -> the legacy HMAC headers. An account whose secret is a PEM EC key is
verified as a CDP key (its public key checks the JWT's signature); any other account by HMAC. Refusals are HTTP
401: a bad or expired JWT answers "Unauthorized" (text), a legacy request `{"errors": [{"id":
"authentication_error", "message": "invalid api key" | "invalid signature" | "request timestamp expired"}]}`.
ccxt 4.5.90 raises AuthenticationError for all of them (its exact match on `authentication_error` wins over its
broad "request timestamp expired" -> InvalidNonce).

Orders: ids are UUIDs naming the core's orders and trades. Every fee is charged in the quote currency (Coinbase's
`total_fees` / `commission`), so a buy needs its cost plus the taker fee free. A `client_order_id` that the account
already used (whatever the order's state) creates nothing: the answer is a success naming the order that has it, as
Coinbase documents; this is what makes a resent order with the same id harmless here (FAULTS E4). A refused order is
HTTP 200 `{"success": false, "failure_reason", "error_response": {"error", "message", "error_details",
"preview_failure_reason", "new_order_failure_reason"}}`: INVALID_PRODUCT_ID, INVALID_PRICE_PRECISION (off the
tick), INVALID_SIZE_PRECISION (off `base_increment`), PREVIEW_INVALID_BASE_SIZE_TOO_SMALL / _TOO_LARGE,
PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL / _TOO_LARGE (notional outside `quote_min_size` / `quote_max_size`),
INVALID_LIMIT_PRICE_POST_ONLY (a post-only order that would take), INSUFFICIENT_FUND "Insufficient balance in source
account" (ccxt matches `preview_failure_reason` only: InsufficientFunds for PREVIEW_INSUFFICIENT_FUND, ExchangeError
for the rest). Malformed requests: HTTP 400 `{"error": "INVALID_ARGUMENT", ...}` (ccxt: BadRequest); an unsupported
configuration (GTD, stop, bracket) UNSUPPORTED_ORDER_CONFIGURATION. IOC / FOK / market remainders end `EXPIRED`,
cancels `CANCELLED`. An unknown order id: HTTP 404 `{"error": "NOT_FOUND", "message": "order with this orderID was
not found"}` (ccxt 4.5.90's broad pattern for it reads "self orderID", so it raises ExchangeError); cancelling an
unknown or finished order answers `success: false` (`UNKNOWN_CANCEL_ORDER`, `ORDER_IS_FULLY_FILLED`), which ccxt
raises as BadRequest.

What the real client calls (ccxt 4.5.90 `coinbase`, with keys): `load_markets` -> also `GET transaction_summary`
(the fee tier); `create_order` -> `POST /orders` with its own `client_order_id` "ccxt-<uuid>" (a caller's
`clientOrderId` is dropped; pass `client_order_id` in params to choose it); the answer carries ids only;
`fetch_order` -> `GET /orders/historical/{id}`; `cancel_order` -> `POST /orders/batch_cancel`; `fetch_open_orders`
/ `fetch_closed_orders` / `fetch_canceled_orders` -> `GET /orders/historical/batch?order_status=OPEN | FILLED |
CANCELLED` (EXPIRED orders are listed by `fetch_orders`); `fetch_my_trades` -> `GET /orders/historical/fills`;
`fetch_balance` -> the Coinbase App's `GET /v2/accounts` (ccxt's default: totals only, shown as free) or, with
params `{"v3": True}`, `GET /api/v3/brokerage/accounts` (`available_balance` and `hold`). ccxt has no lookup by
client order id here: list the orders and match `clientOrderId` (or resend with the same `client_order_id`, which
returns the existing order).

Order faults (`arb.sim.trading`): `reject` answers ORDER_ENTRY_DISABLED (ccxt: ExchangeError) unless the fault names
its own error / message; `rate_limit` answers like the venue's own rate limiting (`CoinbaseProtocol.rate_limited`).

Deviations, on purpose: spot only (no margin, futures, portfolios, previews, edits); the JWT's `uri` host is not
checked (the venue is local), EdDSA keys are not served, and Coinbase's deprecated `client_order_id` query parameter
of Get Order is not; a market buy by `quote_size` pays its fee on top of the quote size; fees and amounts are the
core's exact values (up to 8 decimals); order and fill lists keep everything and page by an opaque cursor.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final, TypeVar

import orjson
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from arb.sim.market import stable_unit
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

DOCS: Final = (
    "https://docs.cdp.coinbase.com/api-reference/advanced-trade-api/rest-api/orders/create-order",
    "https://docs.cdp.coinbase.com/api-reference/advanced-trade-api/rest-api/orders/get-order",
    "https://docs.cdp.coinbase.com/coinbase-app/authentication-authorization/api-key-authentication",
)
TAKER_FEE: Final = Decimal("0.012")
MAKER_FEE: Final = Decimal("0.006")
"""The first Advanced Trade tier (1.2 % / 0.6 %), charged in the quote currency."""
QUOTE_MIN: Final = Decimal(1)
QUOTE_MAX: Final = Decimal(150_000_000)
MAX_SKEW_S: Final = 30
"""How far a legacy CB-ACCESS-TIMESTAMP may be from server time."""
JWT_LEEWAY_S: Final = 5
REJECT_FAULT: Final = ("ORDER_ENTRY_DISABLED", "Order entry is disabled for this product")
"""What a `reject` order fault answers unless it names its own error / message."""
_CONFIGS: Final = frozenset({"market_market_ioc", "sor_limit_ioc", "limit_limit_gtc", "limit_limit_fok"})
_UNSUPPORTED: Final = frozenset(
    {
        "limit_limit_gtd",
        "stop_limit_stop_limit_gtc",
        "stop_limit_stop_limit_gtd",
        "trigger_bracket_gtc",
        "trigger_bracket_gtd",
        "sor_limit_fok",
        "twap_limit_gtd",
    }
)
_TIF: Final = {"GTC": "GOOD_UNTIL_CANCELLED", "IOC": "IMMEDIATE_OR_CANCEL", "FOK": "FILL_OR_KILL"}
_REFUSALS: Final = {
    "unknown_symbol": ("INVALID_PRODUCT_ID", "Invalid product_id", "UNKNOWN_PREVIEW_FAILURE_REASON"),
    "price_filter": ("INVALID_PRICE_PRECISION", "Invalid price precision", "PREVIEW_INVALID_PRICE_PRECISION"),
    "min_qty": ("INVALID_SIZE_PRECISION", "Base size is too small", "PREVIEW_INVALID_BASE_SIZE_TOO_SMALL"),
    "lot_size": ("INVALID_SIZE_PRECISION", "Invalid size precision", "PREVIEW_INVALID_SIZE_PRECISION"),
    "min_notional": ("UNKNOWN_FAILURE_REASON", "Quote size is too small", "PREVIEW_INVALID_QUOTE_SIZE_TOO_SMALL"),
    "max_notional": ("UNKNOWN_FAILURE_REASON", "Quote size is too large", "PREVIEW_INVALID_QUOTE_SIZE_TOO_LARGE"),
    "post_only_would_take": (
        "INVALID_LIMIT_PRICE_POST_ONLY",
        "Limit price would cause the post-only order to cross the book",
        "PREVIEW_INVALID_LIMIT_PRICE_POST_ONLY",
    ),
    "insufficient_balance": (
        "INSUFFICIENT_FUND",
        "Insufficient balance in source account",
        "PREVIEW_INSUFFICIENT_FUND",
    ),
}
_UNAUTHORIZED: Final = "Unauthorized\n"


def limits_for(book: Book) -> VenueLimits:
    """A product's ranges as the products list shows them: `quote_min_size` 1, `quote_max_size` 150,000,000 and
    `base_max_size` that much at the mid now (one step at least)."""
    mid = max(book.price((book.bid_top + book.ask_top) // 2), book.tick)
    step = Decimal(repr(book.step))
    return VenueLimits(
        min_notional=QUOTE_MIN,
        max_notional=QUOTE_MAX,
        max_qty=max(1, int(float(QUOTE_MAX) / mid / book.step)) * step,
    )


def hmac_signature(secret: str, timestamp: str, method: str, path: str, body: str) -> str:
    """The legacy CB-ACCESS-SIGN: hex HMAC-SHA256(secret, timestamp + METHOD + path + body)."""
    return hmac.new(secret.encode(), (timestamp + method.upper() + path + body).encode(), hashlib.sha256).hexdigest()


def ids_for(venue_id: str) -> tuple[Callable[[str, int], str], Callable[[str, str], int | None]]:
    """(to_uuid, from_uuid) for a venue: `to_uuid(kind, n)` is a UUID naming the core's order or trade `n` (kind
    "order" / "trade"), `from_uuid(kind, text)` the number back (None if `text` is not one of this venue's)."""
    prefixes = {kind: f"{int(stable_unit(f'{venue_id}|{kind}') * 2**32):08x}-0000-4000-8000" for kind in ("o", "t")}

    def to_uuid(kind: str, n: int) -> str:
        return f"{prefixes[kind[0]]}-{n:012x}"

    def from_uuid(kind: str, text: str) -> int | None:
        head, _, tail = text.rpartition("-")
        if head != prefixes[kind[0]] or len(tail) != 12:
            return None
        try:
            return int(tail, 16)
        except ValueError:
            return None

    return to_uuid, from_uuid


class CoinbaseError(Exception):
    """A request Coinbase refuses as a whole: `{"error", "error_details", "message"}` with HTTP `status`."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


class _Unauthorized(Exception):
    """A request whose authentication fails: 401, with the legacy JSON body or the gateway's plain text."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or "Unauthorized")
        self.message = message


@dataclass(frozen=True, slots=True)
class _Signed:
    account: Account
    body: str


Handler = Callable[[web.Request, _Signed], Awaitable[web.Response]]
_Row = TypeVar("_Row", Order, Trade)


def _respond(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def _num(x: Decimal | None) -> str:
    if x is None:
        return ""
    text = format(x.normalize(), "f")
    return "0" if text in ("-0", "") else text


def _rfc3339(ms: int) -> str:
    sec, rest = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{rest:03d}000Z"


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CoinbaseTrading:
    """Coinbase Advanced Trade's signed endpoints for one venue (see the module docstring)."""

    def __init__(self, *, clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000) -> None:
        self.clock_ms = clock_ms
        self.configs: dict[int, dict[str, Any]] = {}
        """Order id -> the `order_configuration` it was created with (shown back as sent)."""
        self.by_client: dict[tuple[str, str], int] = {}
        """(API key, client_order_id) -> the order that has it."""
        self.public_keys: dict[str, ec.EllipticCurvePublicKey | None] = {}
        """PEM secret -> its public key (None: not an EC private key), parsed once."""

    def install(
        self,
        venue: SimVenue,
        app: web.Application,
        *,
        currency_id: Callable[[str], str],
        rate_limited: Callable[[int, int], web.Response],
    ) -> None:
        """Add the signed routes to `app` and give the venue's trading core Coinbase's fees (in quote) and ranges.

        `currency_id(code)` is Coinbase's id for a unified currency code (`CELO` -> `CGLD`)."""
        venue.trading.configure(taker_fee=TAKER_FEE, maker_fee=MAKER_FEE, limits_for=limits_for, fee_in_quote=True)
        ctx = _Context(self, venue, venue.trading, currency_id, rate_limited)
        signed = ctx.signed
        base = "/api/v3/brokerage"
        app.router.add_post(f"{base}/orders", signed(ctx.create_order))
        app.router.add_post(f"{base}/orders/batch_cancel", signed(ctx.batch_cancel))
        app.router.add_get(f"{base}/orders/historical/batch", signed(ctx.list_orders))
        app.router.add_get(f"{base}/orders/historical/fills", signed(ctx.list_fills))
        app.router.add_get(f"{base}/orders/historical/{{order_id}}", signed(ctx.get_order))
        app.router.add_get(f"{base}/accounts", signed(ctx.accounts))
        app.router.add_get("/v2/accounts", signed(ctx.accounts_v2))
        app.router.add_get(f"{base}/transaction_summary", signed(ctx.transaction_summary))


class _Context:
    """The route handlers, bound to one venue."""

    def __init__(
        self,
        owner: CoinbaseTrading,
        venue: SimVenue,
        trading: Trading,
        currency_id: Callable[[str], str],
        rate_limited: Callable[[int, int], web.Response],
    ) -> None:
        self.owner = owner
        self.venue = venue
        self.trading = trading
        self.currency_id = currency_id
        self.rate_limited = rate_limited
        self.to_uuid, self.from_uuid = ids_for(venue.venue_id)

    # ------------------------------------------------------------------ authentication

    def signed(self, fn: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            try:
                return await fn(request, await self.authenticate(request))
            except _Unauthorized as e:
                if e.message is None:
                    return web.Response(text=_UNAUTHORIZED, status=401)
                return _respond({"errors": [{"id": "authentication_error", "message": e.message}]}, 401)
            except CoinbaseError as e:
                return _respond({"error": e.error, "error_details": e.message, "message": e.message}, e.status)

        return handler

    async def authenticate(self, request: web.Request) -> _Signed:
        body = await request.text() if request.can_read_body else ""
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return _Signed(self.verify_jwt(request, auth[7:]), body)
        return _Signed(self.verify_hmac(request, body), body)

    def verify_jwt(self, request: web.Request, token: str) -> Account:
        """The CDP key's account, if `token` is an ES256 JWT it signed for this request and it is current."""
        try:
            head_b64, claims_b64, sig_b64 = token.split(".")
            header, claims = orjson.loads(_b64url(head_b64)), orjson.loads(_b64url(claims_b64))
            signature = _b64url(sig_b64)
        except (ValueError, binascii.Error, orjson.JSONDecodeError):
            raise _Unauthorized from None
        if not isinstance(header, dict) or not isinstance(claims, dict) or header.get("alg") != "ES256":
            raise _Unauthorized
        account = self.trading.accounts.get(str(claims.get("sub", "")))
        if account is None or header.get("kid") != account.api_key or len(signature) != 64:
            raise _Unauthorized
        public_key = self.public_key(account.secret)
        if public_key is None:
            raise _Unauthorized
        der = utils.encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        try:
            public_key.verify(der, f"{head_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise _Unauthorized from None
        now_s = self.owner.clock_ms() / 1000
        nbf, exp = claims.get("nbf"), claims.get("exp")
        if not isinstance(nbf, int | float) or not isinstance(exp, int | float):
            raise _Unauthorized
        if not nbf - JWT_LEEWAY_S <= now_s < exp:
            raise _Unauthorized
        if not _uri_matches(str(claims.get("uri", "")), request.method, request.path):
            raise _Unauthorized
        return account

    def public_key(self, secret: str) -> ec.EllipticCurvePublicKey | None:
        """The public half of a CDP key's PEM secret (None if the secret is not an EC private key)."""
        cache = self.owner.public_keys
        if secret not in cache:
            try:
                key = load_pem_private_key(secret.encode(), password=None)
            except (ValueError, TypeError):
                key = None
            cache[secret] = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else None
        return cache[secret]

    def verify_hmac(self, request: web.Request, body: str) -> Account:
        """The legacy key's account, if the CB-ACCESS-* headers sign this request and the timestamp is current."""
        headers = request.headers
        account = self.trading.accounts.get(headers.get("CB-ACCESS-KEY", ""))
        if account is None:
            raise _Unauthorized("invalid api key")
        stamp = headers.get("CB-ACCESS-TIMESTAMP", "")
        if not stamp.isdigit() or abs(self.owner.clock_ms() // 1000 - int(stamp)) > MAX_SKEW_S:
            raise _Unauthorized("request timestamp expired")
        path = request.path
        if path.startswith("/v2/") and request.rel_url.raw_query_string:  # v2 signs its GET query, v3 does not
            path += "?" + request.rel_url.raw_query_string
        expected = hmac_signature(account.secret, stamp, request.method, path, body)
        if not hmac.compare_digest(headers.get("CB-ACCESS-SIGN", "").lower(), expected):
            raise _Unauthorized("invalid signature")
        return account

    # ------------------------------------------------------------------ orders

    async def create_order(self, request: web.Request, signed: _Signed) -> web.Response:
        body = _json_object(signed.body)
        client_id = str(body.get("client_order_id") or "")
        if not client_id:
            raise CoinbaseError(400, "INVALID_ARGUMENT", "client_order_id is required")
        req, config = self.order_request(body, client_id)
        account = signed.account
        known = self.owner.by_client.get((account.api_key, client_id))
        if known is not None:  # Coinbase creates nothing and answers with the order that has this id
            return _respond(self.success(self.trading.orders[known], config))
        if isinstance(req, tuple):
            return _respond(self.failure(*req, config=config))
        fault = self.trading.faults.take(req.symbol, req.side)
        if isinstance(fault, RateLimitFault):
            return self.rate_limited(fault.status, fault.retry_after_s)
        if isinstance(fault, DisconnectFault) and not fault.placed:
            await deliver(fault, lambda: cut_connection(request))
            return web.Response(status=499)  # never reaches the client: the connection is gone
        if isinstance(fault, RejectFault):
            error = fault.code or REJECT_FAULT[0]
            return _respond(self.failure(error, fault.message or REJECT_FAULT[1], error, config=config))
        try:
            order = self.trading.place(account, req, fault)
        except Rejection as e:
            return _respond(self.failure(*_REFUSALS[e.reason], config=config))
        self.owner.configs[order.id] = config
        self.owner.by_client[(account.api_key, client_id)] = order.id
        response = _respond(self.success(order, config))
        if not await deliver(fault, lambda: cut_connection(request)):
            return web.Response(status=499)  # never reaches the client: the connection is gone
        return response

    def order_request(
        self, body: Mapping[str, Any], client_id: str
    ) -> tuple[OrderRequest | tuple[str, str, str], dict[str, Any]]:
        """The order a create request asks for (or the refusal of an unknown product) and its configuration;
        CoinbaseError for a malformed request."""
        side = {"BUY": "buy", "SELL": "sell"}.get(str(body.get("side", "")))
        if side is None:
            raise CoinbaseError(400, "INVALID_ARGUMENT", "side must be BUY or SELL")
        configs = body.get("order_configuration")
        if not isinstance(configs, dict) or len(configs) != 1:
            raise CoinbaseError(400, "INVALID_ARGUMENT", "order_configuration must have exactly one order type")
        [(kind, config)] = configs.items()
        if kind in _UNSUPPORTED:
            raise CoinbaseError(400, "UNSUPPORTED_ORDER_CONFIGURATION", f"{kind} is not supported")
        if kind not in _CONFIGS or not isinstance(config, dict):
            raise CoinbaseError(400, "INVALID_ARGUMENT", f"unknown order_configuration {kind!r}")
        book = self.venue.book(str(body.get("product_id", "")))
        if book is None or book.symbol not in self.trading.books:
            return _REFUSALS["unknown_symbol"], configs
        if kind == "market_market_ioc":
            if ("base_size" in config) == ("quote_size" in config):
                raise CoinbaseError(400, "INVALID_ARGUMENT", "market_market_ioc needs base_size or quote_size")
            by_quote = "quote_size" in config
            size = _decimal(config, "quote_size" if by_quote else "base_size")
            req = OrderRequest(
                book.symbol,
                side,  # type: ignore[arg-type]
                "market",
                amount=None if by_quote else size,
                quote_amount=size if by_quote else None,
                time_in_force="IOC",
                client_id=client_id,
            )
            return req, configs
        tif = {"sor_limit_ioc": "IOC", "limit_limit_gtc": "GTC", "limit_limit_fok": "FOK"}[kind]
        req = OrderRequest(
            book.symbol,
            side,  # type: ignore[arg-type]
            "limit",
            amount=_decimal(config, "base_size"),
            price=_decimal(config, "limit_price"),
            time_in_force=tif,  # type: ignore[arg-type]
            post_only=kind == "limit_limit_gtc" and config.get("post_only") in (True, "true"),
            client_id=client_id,
        )
        return req, configs

    def success(self, order: Order, config: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "success": True,
            "success_response": {
                "order_id": self.to_uuid("order", order.id),
                "product_id": self.venue.market_ids[self.trading.books[order.symbol].row],
                "side": order.side.upper(),
                "client_order_id": order.client_id,
            },
            "order_configuration": dict(config),
        }

    @staticmethod
    def failure(error: str, message: str, preview: str, *, config: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "success": False,
            "failure_reason": "UNKNOWN_FAILURE_REASON",
            "order_id": "",
            "error_response": {
                "error": error,
                "message": message,
                "error_details": message,
                "preview_failure_reason": preview,
                "new_order_failure_reason": error,
            },
            "order_configuration": dict(config),
        }

    async def batch_cancel(self, request: web.Request, signed: _Signed) -> web.Response:
        body = _json_object(signed.body)
        ids = body.get("order_ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise CoinbaseError(400, "INVALID_ARGUMENT", "order_ids must be a non-empty list of order ids")
        results = []
        for text in ids:
            reason = "UNKNOWN_CANCEL_FAILURE_REASON"
            n = self.from_uuid("order", text)
            order = self.trading.orders.get(n) if n is not None else None
            if order is None or order.api_key != signed.account.api_key:
                reason = "UNKNOWN_CANCEL_ORDER"
            else:
                try:
                    self.trading.cancel(signed.account, order.symbol, order_id=order.id)
                except (NoSuchOrder, OrderClosed):
                    reason = "ORDER_IS_FULLY_FILLED" if order.status == "filled" else "UNKNOWN_CANCEL_ORDER"
            ok = reason == "UNKNOWN_CANCEL_FAILURE_REASON"
            results.append({"success": ok, "failure_reason": reason, "order_id": text})
        return _respond({"results": results})

    # ------------------------------------------------------------------ queries

    async def get_order(self, request: web.Request, signed: _Signed) -> web.Response:
        n = self.from_uuid("order", request.match_info["order_id"])
        order = self.trading.orders.get(n) if n is not None else None
        if order is None or order.api_key != signed.account.api_key:
            raise CoinbaseError(404, "NOT_FOUND", "order with this orderID was not found")
        return _respond({"order": self.order_json(order)})

    async def list_orders(self, request: web.Request, signed: _Signed) -> web.Response:
        q = request.query
        products = set(q.getall("product_ids", [])) | set(q.getall("product_id", []))
        statuses = set(q.getall("order_status", []))
        if "OPEN" in statuses and len(statuses) > 1:
            raise CoinbaseError(400, "INVALID_ARGUMENT", "OPEN cannot be combined with other order_status values")
        wanted_ids = set(q.getall("order_ids", []))
        side = q.get("order_side")
        start, end = _iso_ms(q, "start_date"), _iso_ms(q, "end_date")
        orders = [
            o
            for o in self.trading.orders.values()
            if o.api_key == signed.account.api_key
            and (not products or self.product(o.symbol) in products)
            and (not statuses or _status(o) in statuses)
            and (not wanted_ids or self.to_uuid("order", o.id) in wanted_ids)
            and (not side or o.side.upper() == side)
            and (start is None or o.created_ms >= start)
            and (end is None or o.created_ms <= end)
        ]
        rows, cursor = _page(sorted(orders, key=lambda o: o.id, reverse=True), lambda o: o.id, q, 1000)
        return _respond(
            {"orders": [self.order_json(o) for o in rows], "sequence": "0", "has_next": bool(cursor), "cursor": cursor}
        )

    async def list_fills(self, request: web.Request, signed: _Signed) -> web.Response:
        q = request.query
        products = set(q.getall("product_ids", [])) | set(q.getall("product_id", []))
        order_ids = set(q.getall("order_ids", [])) | set(q.getall("order_id", []))
        start, end = _iso_ms(q, "start_sequence_timestamp"), _iso_ms(q, "end_sequence_timestamp")
        trades = [
            t
            for t in self.trading.trades
            if t.api_key == signed.account.api_key
            and (not products or self.product(t.symbol) in products)
            and (not order_ids or self.to_uuid("order", t.order_id) in order_ids)
            and (start is None or t.ts_ms >= start)
            and (end is None or t.ts_ms <= end)
        ]
        rows, cursor = _page(sorted(trades, key=lambda t: t.id, reverse=True), lambda t: t.id, q, 1000)
        return _respond({"fills": [self.fill_json(t) for t in rows], "cursor": cursor})

    async def accounts(self, request: web.Request, signed: _Signed) -> web.Response:
        account = signed.account
        rows = []
        for asset, bal in sorted(account.balances.items()):
            cid = self.currency_id(asset)
            rows.append(
                {
                    "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.venue.venue_id}/{account.api_key}/{asset}")),
                    "name": f"{cid} Wallet",
                    "currency": cid,
                    "available_balance": {"value": _num(bal.free), "currency": cid},
                    "default": False,
                    "active": True,
                    "created_at": _rfc3339(0),
                    "updated_at": _rfc3339(account.updated_ms),
                    "deleted_at": None,
                    "type": "ACCOUNT_TYPE_FIAT" if asset in ("USD", "EUR", "GBP") else "ACCOUNT_TYPE_CRYPTO",
                    "ready": True,
                    "hold": {"value": _num(bal.locked), "currency": cid},
                    "retail_portfolio_id": "",
                }
            )
        return _respond({"accounts": rows, "has_next": False, "cursor": "", "size": len(rows)})

    async def accounts_v2(self, request: web.Request, signed: _Signed) -> web.Response:
        """The Coinbase App's wallets (`GET /v2/accounts`, what ccxt's fetch_balance reads by default): one balance
        per currency, the total (holds included)."""
        account = signed.account
        rows = []
        for asset, bal in sorted(account.balances.items()):
            cid = self.currency_id(asset)
            fiat = asset in ("USD", "EUR", "GBP")
            wallet = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.venue.venue_id}/{account.api_key}/{asset}"))
            rows.append(
                {
                    "id": wallet,
                    "name": f"{cid} Wallet",
                    "primary": asset == "BTC",
                    "type": "fiat" if fiat else "wallet",
                    "currency": {
                        "code": cid,
                        "name": cid,
                        "exponent": 2 if fiat else 8,
                        "type": "fiat" if fiat else "crypto",
                    },
                    "balance": {"amount": _num(bal.total), "currency": cid},
                    "created_at": _rfc3339(0),
                    "updated_at": _rfc3339(account.updated_ms),
                    "resource": "account",
                    "resource_path": f"/v2/accounts/{wallet}",
                    "allow_deposits": True,
                    "allow_withdrawals": True,
                }
            )
        pagination = {
            "ending_before": None,
            "starting_after": None,
            "previous_ending_before": None,
            "next_starting_after": None,
            "limit": len(rows),
            "order": "desc",
            "previous_uri": None,
            "next_uri": None,
        }
        return _respond({"pagination": pagination, "data": rows})

    async def transaction_summary(self, request: web.Request, signed: _Signed) -> web.Response:
        account = signed.account
        taker = account.taker_fee if account.taker_fee is not None else self.trading.taker_fee
        maker = account.maker_fee if account.maker_fee is not None else self.trading.maker_fee
        return _respond(
            {
                "total_volume": 0,
                "total_fees": 0,
                "fee_tier": {
                    "pricing_tier": "Advanced 1",
                    "usd_from": "0",
                    "usd_to": "1000",
                    "taker_fee_rate": _num(taker),
                    "maker_fee_rate": _num(maker),
                    "aop_from": "",
                    "aop_to": "",
                },
                "margin_rate": None,
                "goods_and_services_tax": None,
                "advanced_trade_only_volume": 0,
                "advanced_trade_only_fees": 0,
                "coinbase_pro_volume": 0,
                "coinbase_pro_fees": 0,
                "total_balance": "",
                "has_promo_fee": False,
            }
        )

    # ------------------------------------------------------------------ rendering

    def product(self, symbol: str) -> str:
        return self.venue.market_ids[self.trading.books[symbol].row]

    def order_json(self, order: Order) -> dict[str, Any]:
        """An order as Get Order / List Orders show it."""
        last = order.trades[-1] if order.trades else None
        hold = (order.price or Decimal(0)) * order.remaining if order.is_open and order.side == "buy" else Decimal(0)
        if order.is_open and order.side == "sell":
            hold = order.remaining
        filled_pct = order.filled / order.amount * 100 if order.amount else Decimal(0)
        return {
            "order_id": self.to_uuid("order", order.id),
            "product_id": self.product(order.symbol),
            "user_id": str(self.trading.account(order.api_key).uid),
            "order_configuration": self.owner.configs.get(order.id, {}),
            "side": order.side.upper(),
            "client_order_id": order.client_id,
            "status": _status(order),
            "time_in_force": _TIF[order.time_in_force],
            "created_time": _rfc3339(order.created_ms),
            "completion_percentage": _num(filled_pct.quantize(Decimal("0.01"))),
            "filled_size": _num(order.filled),
            "average_filled_price": _num(order.average or Decimal(0)),
            "fee": "",
            "number_of_fills": str(len(order.trades)),
            "filled_value": _num(order.cost),
            "pending_cancel": False,
            "size_in_quote": order.quote_amount is not None,
            "total_fees": _num(order.fee),
            "size_inclusive_of_fees": False,
            "total_value_after_fees": _num(order.cost + order.fee if order.side == "buy" else order.cost - order.fee),
            "trigger_status": "INVALID_ORDER_TYPE",
            "order_type": "LIMIT" if order.type == "limit" else "MARKET",
            "reject_reason": "REJECT_REASON_UNSPECIFIED",
            "settled": not order.is_open,
            "product_type": "SPOT",
            "reject_message": "",
            "cancel_message": "User requested cancel" if order.end_reason == "by_user" else "",
            "order_placement_source": "RETAIL_ADVANCED",
            "outstanding_hold_amount": _num(hold),
            "is_liquidation": False,
            "last_fill_time": _rfc3339(last.ts_ms) if last else None,
            "edit_history": [],
            "leverage": "",
            "margin_type": "UNKNOWN_MARGIN_TYPE",
            "retail_portfolio_id": "",
        }

    def fill_json(self, trade: Trade) -> dict[str, Any]:
        return {
            "entry_id": self.to_uuid("trade", trade.id),
            "trade_id": self.to_uuid("trade", trade.id),
            "order_id": self.to_uuid("order", trade.order_id),
            "trade_time": _rfc3339(trade.ts_ms),
            "trade_type": "FILL",
            "price": _num(trade.price),
            "size": _num(trade.amount),
            "commission": _num(trade.fee),
            "product_id": self.product(trade.symbol),
            "sequence_timestamp": _rfc3339(trade.ts_ms),
            "liquidity_indicator": "MAKER" if trade.maker else "TAKER",
            "size_in_quote": False,
            "user_id": str(self.trading.account(trade.api_key).uid),
            "side": trade.side.upper(),
            "retail_portfolio_id": "",
        }


# ---------------------------------------------------------------------------------------------------- parsing


def _uri_matches(uri: str, method: str, path: str) -> bool:
    """Whether a JWT's `uri` claim ("GET api.coinbase.com/api/v3/...") names this method and path (any host)."""
    verb, _, rest = uri.partition(" ")
    if verb != method:
        return False
    for scheme in ("https://", "http://"):
        rest = rest.removeprefix(scheme)
    _, slash, tail = rest.partition("/")
    return bool(slash) and "/" + tail == path


def _json_object(text: str) -> dict[str, Any]:
    try:
        body = orjson.loads(text) if text else None
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise CoinbaseError(400, "INVALID_ARGUMENT", "the request body must be a JSON object")
    return body


def _decimal(config: Mapping[str, Any], name: str) -> Decimal:
    raw = config.get(name)
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise CoinbaseError(400, "INVALID_ARGUMENT", f"{name} must be a decimal string") from None
    if raw is None or not value.is_finite() or value <= 0:
        raise CoinbaseError(400, "INVALID_ARGUMENT", f"{name} must be a positive decimal string")
    return value


def _status(order: Order) -> str:
    if order.is_open:
        return "OPEN"
    if order.status == "filled":
        return "FILLED"
    return "EXPIRED" if order.end_reason in ("ioc_remainder", "fok_unfilled") else "CANCELLED"


def _iso_ms(q: Mapping[str, str], name: str) -> int | None:
    raw = q.get(name)
    if not raw:
        return None
    try:
        return int(datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        raise CoinbaseError(400, "INVALID_ARGUMENT", f"{name} must be an RFC 3339 time") from None


def _page(rows: list[_Row], key: Callable[[_Row], int], q: Mapping[str, str], max_limit: int) -> tuple[list[_Row], str]:
    """Rows newest first after the `cursor` (the last id of the previous page), at most `limit`; the next cursor."""
    raw_limit = q.get("limit") or str(max_limit)
    if not raw_limit.isdigit() or int(raw_limit) < 1:
        raise CoinbaseError(400, "INVALID_ARGUMENT", "limit must be a positive integer")
    limit = min(int(raw_limit), max_limit)
    cursor = q.get("cursor")
    if cursor:
        if not cursor.isdigit():
            raise CoinbaseError(400, "INVALID_ARGUMENT", "invalid cursor")
        rows = [r for r in rows if key(r) < int(cursor)]
    page = rows[:limit]
    return page, (str(key(page[-1])) if len(rows) > limit else "")
