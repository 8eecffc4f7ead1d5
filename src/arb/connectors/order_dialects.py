"""How each ccxt class places, finds and cancels an order by *our* client id: the venue specifics of
`arb.connectors.orders.CcxtGateway`, one `Dialect` per ccxt id, so the gateway's guarantees (nothing resent, every
call bounded, errors mapped, keys masked) are written once and the differences stay in one table.

Why a table and not ccxt's unified calls alone: ccxt 4.5.90 unifies `clientOrderId` when an order is created, but
not when one is looked up or cancelled by it:

- Binance and OKX take `clientOrderId` on `fetch_order` / `cancel_order` (`origClientOrderId`, `clOrdId`).
- Bybit v5 (`orderLinkId`): ccxt's `fetch_order` sends `orderId` whatever it is given (None included) and refuses
  to run without `acknowledged`; the realtime query by `orderLinkId` finds an order open or among the newest 500
  closed, the order history by `orderLinkId` the rest
  (https://bybit-exchange.github.io/docs/v5/order/open-order, .../order-list); cancel takes `orderLinkId`
  (https://bybit-exchange.github.io/docs/v5/order/cancel-order). ccxt reports `PartiallyFilledCanceled` (an IOC
  remainder after a partial fill) as `closed`: here it is cancelled.
- Kraken (`cl_ord_id`: a UUID, 32 hex digits or at most 18 characters of text,
  https://docs.kraken.com/api/docs/rest-api/add-order): our ids are longer, so a longer id is sent as a short UUID
  derived from it (deterministic, so it is found again after a restart). OpenOrders / ClosedOrders filter by it
  (https://docs.kraken.com/api/docs/rest-api/get-open-orders, .../get-closed-orders); CancelOrder takes it directly
  (ccxt's `cancel_order(None, ...)` would also send `txid=None`). An order's trades come by their ids (QueryTrades:
  ccxt's `fetch_order_trades` needs them passed). Errors ccxt leaves generic: an unknown txid ("EOrder:Invalid
  order", ccxt: InvalidOrder) is not found; "EAPI:Invalid signature" (ccxt: a plain ExchangeError) is an auth error.
  ccxt's limiter spaces Kraken's queries 3 s apart with no burst; Kraken allows a burst (its call counter, at most
  15 on the Starter tier, decaying 0.33/s: https://docs.kraken.com/api/docs/guides/spot-rest-ratelimits), which
  the bucket below models, so a create followed by its read is not held past the gateway's timeout.
- Coinbase Advanced Trade: `client_order_id` is taken only as itself (ccxt puts its own "ccxt-<uuid>" there and
  drops `clientOrderId`); there is no lookup by it, so the product's open orders, then its newest orders, are listed
  and matched (https://docs.cdp.coinbase.com/api-reference/advanced-trade-api/rest-api/orders/list-orders); a
  cancel needs the venue id, found so first; a refused cancel is read from the venue's own `failure_reason` (ccxt
  raises a generic BadRequest for every one); fills are listed by order id (`order_ids`); free balances are the
  Advanced Trade accounts' `available_balance` (`v3`: ccxt's default reads the app's totals).

A venue whose ccxt id is not listed is traded the Binance / OKX way (ccxt's unified `clientOrderId`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import ccxt

Call = Callable[[Any, str, str], Awaitable[Any]]
"""(exchange, symbol, id) -> what ccxt answers: one order (a dict) or a list of orders."""
TradesCall = Callable[[Any, Mapping[str, Any], str, str], Awaitable[list[Any]]]
"""(exchange, the order as ccxt parsed it, its venue id, symbol) -> the order's trades."""

COINBASE_LOOKUP_LIMIT: Final = 250
"""How many of a product's newest orders a Coinbase lookup by client id reads (its lookup window)."""
KRAKEN_BUCKET: Final = {"capacity": 42, "tokens": 42}
"""Kraken's Starter call counter (15 queries, ccxt cost 3 each at ccxt's 1 token/s refill): a full bucket lets 15
queries through before the pacing, as a fresh counter does."""


@dataclass(frozen=True, slots=True)
class Step:
    """One bounded request of a lookup or cancel: `op` names it in logs and errors."""

    op: str
    call: Call


@dataclass(frozen=True, slots=True)
class ErrorRule:
    """An error ccxt raises too generically for this venue: `exc` whose text holds `text`, on a call of `kinds`, is
    read as the ccxt error `means` (and then mapped like any other, backoffs included)."""

    exc: type[Exception]
    text: str
    means: type[ccxt.BaseError]
    kinds: frozenset[str] = frozenset({"create", "cancel", "read"})

    def reading(self, exc: Exception, kind: str) -> Exception | None:
        """`exc` as the venue means it, or None if this rule does not apply."""
        if isinstance(exc, self.exc) and self.text in str(exc) and kind in self.kinds:
            meant: Exception = self.means(str(exc))
            return meant
        return None


def _same_id(client_id: str) -> str:
    return client_id


def _unified_params(wire_id: str) -> dict[str, Any]:
    return {"clientOrderId": wire_id}


async def _default_trades(exchange: Any, raw: Mapping[str, Any], order_id: str, symbol: str) -> list[Any]:
    if exchange.has.get("fetchOrderTrades"):
        return list(await exchange.fetch_order_trades(order_id, symbol))
    return list(await exchange.fetch_my_trades(symbol))


def _no_status_change(raw: Mapping[str, Any]) -> str | None:
    return raw.get("status")


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one ccxt class trades by client id (module docstring).

    `wire_id(client_id)`: the id the venue gets. `lookup`: tried in order; an answer that is a dict is the order
    (the call raises ccxt's OrderNotFound itself), a list is searched for the wire id (newest first wins). `cancel`:
    by wire id; None: the order is looked up and cancelled by its venue id with `cancel_by_id`. `fetch_by_id`: reads
    a just-written order by its venue id in one call (None: by client id). `status(raw)`: ccxt's status, corrected.
    `prepare(exchange)`: run once at open (what ccxt would otherwise ask on the first private call, once per
    concurrent call). `serial`: one private request at a time (a venue that refuses a nonce lower than the last one
    it saw: concurrent requests can arrive out of order).
    """

    wire_id: Callable[[str], str] = _same_id
    create_params: Callable[[str], dict[str, Any]] = _unified_params
    lookup: tuple[Step, ...] = (
        Step("fetch_order", lambda ex, symbol, cid: ex.fetch_order(None, symbol, {"clientOrderId": cid})),
    )
    cancel: Step | None = Step(
        "cancel_order", lambda ex, symbol, cid: ex.cancel_order(None, symbol, {"clientOrderId": cid})
    )
    cancel_by_id: Call | None = None
    fetch_by_id: Call | None = None
    trades: TradesCall = _default_trades
    status: Callable[[Mapping[str, Any]], str | None] = _no_status_change
    balance_params: Mapping[str, Any] = field(default_factory=dict)
    errors: tuple[ErrorRule, ...] = ()
    ccxt_config: Mapping[str, Any] = field(default_factory=dict)
    """Added to the ccxt exchange's config."""
    prepare: Callable[[Any], Awaitable[Any]] | None = None
    serial: bool = False


# ---------------------------------------------------------------------------------------------------- Bybit


def _bybit_status(raw: Mapping[str, Any]) -> str | None:
    info = raw.get("info") or {}
    if info.get("orderStatus") == "PartiallyFilledCanceled":  # ccxt: "closed"; what filled is in `filled`
        return "canceled"
    return raw.get("status")


BYBIT: Final = Dialect(
    lookup=(
        Step("fetch_open_orders", lambda ex, s, cid: ex.fetch_open_orders(s, None, None, {"orderLinkId": cid})),
        Step(
            "fetch_canceled_and_closed_orders",
            lambda ex, s, cid: ex.fetch_canceled_and_closed_orders(s, None, None, {"orderLinkId": cid}),
        ),
    ),
    cancel=Step("cancel_order", lambda ex, s, cid: ex.cancel_order(None, s, {"orderLinkId": cid})),
    fetch_by_id=lambda ex, s, oid: ex.fetch_order(oid, s, {"acknowledged": True}),
    status=_bybit_status,
    # https://bybit-exchange.github.io/docs/v5/error (10016 "Server error"; ccxt: a plain ExchangeError): a 5xx
    errors=(ErrorRule(ccxt.ExchangeError, '"retCode":10016', ccxt.ExchangeNotAvailable),),
    prepare=lambda ex: ex.is_unified_enabled(),  # the account type, which ccxt reads before a first order
)


# ---------------------------------------------------------------------------------------------------- Kraken

KRAKEN_CL_ORD_ID: Final = re.compile(
    r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32}|[!-~]{1,18})$"
)


def kraken_cl_ord_id(client_id: str) -> str:
    """`client_id` itself when Kraken takes it as a `cl_ord_id`, else a short UUID (32 hex digits) derived from it."""
    if KRAKEN_CL_ORD_ID.match(client_id):
        return client_id
    return hashlib.sha256(client_id.encode()).hexdigest()[:32]


async def _kraken_cancel(exchange: Any, symbol: str, wire_id: str) -> Mapping[str, Any]:
    answer = await exchange.privatePostCancelOrder({"cl_ord_id": wire_id})
    return {"id": None, "status": None, "info": answer}  # `{"count": 1}`: the order is read after


async def _kraken_trades(exchange: Any, raw: Mapping[str, Any], order_id: str, symbol: str) -> list[Any]:
    ids = [str(t["id"]) for t in raw.get("trades") or [] if t.get("id")]
    if ids:
        return list(await exchange.fetch_order_trades(order_id, symbol, None, None, {"trades": ids}))
    return list(await exchange.fetch_my_trades(symbol))


_KRAKEN_LIST: Final = {"trades": True}
"""Orders listed with their trade ids, for `_kraken_trades`."""

KRAKEN: Final = Dialect(
    wire_id=kraken_cl_ord_id,
    lookup=(
        Step(
            "fetch_open_orders",
            lambda ex, s, cid: ex.fetch_open_orders(s, None, None, {"clientOrderId": cid, **_KRAKEN_LIST}),
        ),
        Step(
            "fetch_closed_orders",
            lambda ex, s, cid: ex.fetch_closed_orders(s, None, None, {"clientOrderId": cid, **_KRAKEN_LIST}),
        ),
    ),
    cancel=Step("cancel_order", _kraken_cancel),
    fetch_by_id=lambda ex, s, oid: ex.fetch_order(oid, s),
    trades=_kraken_trades,
    errors=(
        ErrorRule(ccxt.ExchangeError, "EAPI:Invalid signature", ccxt.AuthenticationError),
        ErrorRule(ccxt.InvalidOrder, "EOrder:Invalid order", ccxt.OrderNotFound, frozenset({"read"})),
        ErrorRule(ccxt.InvalidOrder, "EOrder:Unknown order", ccxt.OrderNotFound, frozenset({"cancel", "read"})),
    ),
    ccxt_config={"tokenBucket": KRAKEN_BUCKET},
    # "the nonce must increase with every call of a key" (https://docs.kraken.com/api/docs/guides/spot-rest-auth):
    # ccxt's nonces rise in signing order, which concurrent requests need not keep on arrival
    serial=True,
)


# ---------------------------------------------------------------------------------------------------- Coinbase

_COINBASE_NOT_CANCELLABLE: Final = frozenset({"UNKNOWN_CANCEL_ORDER", "ORDER_IS_FULLY_FILLED"})


async def _coinbase_cancel(exchange: Any, symbol: str, order_id: str) -> Mapping[str, Any]:
    """Batch-cancel one order and read its result: an order gone or filled first is ccxt's OrderNotFound (the gateway
    then reads it), another refusal an ExchangeError naming the venue's reason."""
    answer = await exchange.v3PrivatePostBrokerageOrdersBatchCancel({"order_ids": [order_id]})
    results = answer.get("results") if isinstance(answer, dict) else None
    result = results[0] if isinstance(results, list) and results and isinstance(results[0], dict) else {}
    if result.get("success") is not True:
        reason = str(result.get("failure_reason") or "no result")
        error = ccxt.OrderNotFound if reason in _COINBASE_NOT_CANCELLABLE else ccxt.ExchangeError
        raise error(f"coinbase cancel of {order_id} failed: {reason}")
    return {"id": order_id, "status": None, "info": answer}


def _coinbase_status(raw: Mapping[str, Any]) -> str | None:
    info = raw.get("info") or {}
    if info.get("status") == "FAILED":  # ccxt: "canceled"; the venue never took it
        return "rejected"
    return raw.get("status")


COINBASE: Final = Dialect(
    create_params=lambda cid: {"client_order_id": cid},
    lookup=(
        Step("fetch_open_orders", lambda ex, s, cid: ex.fetch_open_orders(s)),
        Step("fetch_orders", lambda ex, s, cid: ex.fetch_orders(s, None, COINBASE_LOOKUP_LIMIT)),
    ),
    cancel=None,
    cancel_by_id=_coinbase_cancel,
    fetch_by_id=lambda ex, s, oid: ex.fetch_order(oid, s),
    trades=lambda ex, raw, oid, s: ex.fetch_my_trades(s, None, None, {"order_ids": oid}),
    status=_coinbase_status,
    balance_params={"v3": True},
)


UNIFIED: Final = Dialect()
"""Binance, OKX and any ccxt class that takes `clientOrderId` on create, fetch and cancel."""
DIALECTS: Final[Mapping[str, Dialect]] = {
    "binance": UNIFIED,
    "okx": UNIFIED,
    "bybit": BYBIT,
    "kraken": KRAKEN,
    "coinbase": COINBASE,
}


def dialect_for(ccxt_id: str) -> Dialect:
    return DIALECTS.get(ccxt_id, UNIFIED)
