"""Coinbase Advanced Trade, served locally in its documented wire format.

Follows (fields, names, error bodies, sequence rules):

- REST, public market data: https://docs.cdp.coinbase.com/api-reference/advanced-trade-api/rest-api/public/
  (list-public-products, get-public-product, get-public-product-book, get-public-market-trades,
  get-public-product-candles, get-server-time) under `/api/v3/brokerage/market/...` and `/api/v3/brokerage/time`;
  errors in the gateway's shape `{"error": "NOT_FOUND", "error_details": .., "message": ..}`. The Coinbase App
  (v2) endpoints ccxt also calls: https://docs.cdp.coinbase.com/coinbase-app/track-apis/currencies,
  .../exchange-rates, .../time, .../prices, wrapped in `{"data": ..}`; a 429 carries the documented
  `{"errors": [{"id": "rate_limit_exceeded", "message": "Too many requests"}]}`
  (https://docs.cdp.coinbase.com/coinbase-app/api-architecture/rate-limiting).
- WebSocket: https://docs.cdp.coinbase.com/advanced-trade/docs/ws-overview and .../ws-channels, and the AsyncAPI
  pages https://docs.cdp.coinbase.com/api-reference/advanced-trade-api/websocket/level2 (and /heartbeats):
  `{"type": "subscribe" | "unsubscribe", "product_ids": [..], "channel": ..}`, one channel per message, no key
  needed for public channels (a `jwt`, or the legacy `api_key`/`timestamp`/`signature`, is accepted unverified);
  a connection that has not subscribed within 5 s is closed. Every message is an envelope
  `{"channel", "client_id", "timestamp", "sequence_num", "events"}`: `level2` arrives as `l2_data` (an event of
  type `snapshot`, then `update`s of `{side: bid|offer, event_time, price_level, new_quantity}`, where
  `new_quantity` is the level's new size and "0" removes it), `ticker` / `ticker_batch` carry
  `best_bid[_quantity]` / `best_ask[_quantity]`, `heartbeats` ticks every second with a `heartbeat_counter`, and
  each (un)subscribe is confirmed by a `subscriptions` message listing what the connection now receives.
  Errors are `{"type": "error", "message": ..}` (what ccxt.pro coinbase `handle_message` reads).
- Sequence: `sequence_num` counts every message on the connection (all channels, acks and heartbeats included),
  exactly one more each time from 0; a jump means messages were dropped ("Sequence Numbers" in ws-overview).
  Coinbase has no book checksum, so the `bad_checksum` fault never applies here.

What the real client asks for (ccxt 4.5.90 `coinbase`, no keys): `load_markets` -> `GET /v2/currencies`,
`/v2/currencies/crypto`, `/v2/exchange-rates` (its fetchCurrencies runs even with the option `fetchCurrencies: False`),
`/api/v3/brokerage/market/products` and `...products?product_type=FUTURE` (a spot venue lists no futures);
`fetch_order_book` -> `market/product_book`; `fetch_ticker` -> `market/products/{id}/ticker?limit=1`;
`fetch_tickers` -> `market/products?product_ids=..`; `fetch_ohlcv` -> `market/products/{id}/candles`;
`fetch_time` -> `/v2/time`; `watch_order_book[_for_symbols]` -> subscribe `level2`; `watch_ticker` -> `ticker`;
`watch_tickers` -> `ticker_batch`. ccxt keeps no sequence for this venue and checks none
(`arb.connectors.guards.coinbase` does).

Deviations, on purpose: there are no trades, so `market_trades`, `candles`, `status` and the authenticated channels
answer with an error instead of a silent subscription, the ticker's `price` is the book's mid tick (like the
Binance module's last price), the REST trades behind `fetch_ticker` are synthetic (the newest at the touch, sides in
a fixed pattern), and `ticker_batch` is not conflated to 5 s; products have no
USD/USDC aliases (`alias_to` is empty); exchange rates are quoted against USD only. Coinbase documents no IP ban:
an escalated rate-limit fault (418) is answered as another 429 with the ban's Retry-After. Coinbase documents no
maintenance body either, and its gateway answers such errors with an HTML page (a 429 one is quoted in
https://github.com/coinbase-samples/advanced-trade-sdk-go/issues/18), so maintenance is a 503 HTML page with
Retry-After. When updates are withheld (`skip_sequence`) or lost (`stall`) the next message's `sequence_num` jumps
by one, however many were lost; a refresh that changed no level (rare) still sends an update with no levels,
so that every update id reaches every subscriber. Transport pings are the framework's (Coinbase documents none;
its application-level keep-alive is the heartbeats channel).

Private trading (orders, fills, accounts; real JWT / legacy HMAC checks) is served by
`arb.sim.venues.coinbase_trading` over the venue's `SimVenue.trading` core (`arb.sim.trading`); a product's
increments and size ranges are the rules orders are checked against.

Any venue id can be served by this module with its own symbols; product ids are base + "-" + quote currency ids,
with ccxt's `commonCurrencies` for coinbase reversed (`CELO` -> `CGLD`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import TYPE_CHECKING, Any, ClassVar, Final

import numpy as np
import orjson
from aiohttp import web

from arb.sim.faults import MalformedKind
from arb.sim.server import Connection, Protocol, SimVenue, add_get_routes
from arb.sim.venues.binance import _candles
from arb.sim.venues.coinbase_trading import CoinbaseTrading
from arb.tasks import cancel_and_wait, spawn

if TYPE_CHECKING:
    from arb.sim.market import Book, BookUpdate

DOCS: Final = (
    "https://docs.cdp.coinbase.com/api-reference/advanced-trade-api/rest-api/public/list-public-products",
    "https://docs.cdp.coinbase.com/advanced-trade/docs/ws-overview",
    "https://docs.cdp.coinbase.com/api-reference/advanced-trade-api/websocket/level2",
)

_ASSET_IDS: Final = {"CELO": "CGLD"}
"""Unified currency code -> Coinbase currency id, where ccxt renames (its `commonCurrencies` for coinbase, reversed)."""
_FIAT: Final = frozenset({"USD", "EUR", "GBP", "SGD", "CAD", "AUD", "JPY", "CHF"})

_GRANULARITY_S: Final[dict[str, int]] = {
    "ONE_MINUTE": 60,
    "FIVE_MINUTE": 300,
    "FIFTEEN_MINUTE": 900,
    "THIRTY_MINUTE": 1_800,
    "ONE_HOUR": 3_600,
    "TWO_HOUR": 7_200,
    "FOUR_HOUR": 14_400,
    "SIX_HOUR": 21_600,
    "ONE_DAY": 86_400,
}
_MAX_CANDLES: Final = 350
_MARKET_CHANNELS: Final = frozenset({"level2", "ticker", "ticker_batch"})
_MESSAGE_CHANNEL: Final = {"level2": "l2_data", "ticker": "ticker", "ticker_batch": "ticker_batch"}
_UNSERVED: Final = frozenset({"market_trades", "candles", "status", "user", "futures_balance_summary"})
_SEQ_PLACEHOLDER: Final = '"sequence_num":-1,'
"""What `render` leaves for `frame` to fill: the payload is shared by every subscriber, the number is per connection."""
_SNAPSHOT_EVENT_TIME: Final = "1970-01-01T00:00:00Z"
_RATE_LIMITED: Final = orjson.dumps({"errors": [{"id": "rate_limit_exceeded", "message": "Too many requests"}]})
_MAINTENANCE_PAGE: Final = (
    "<html><head><title>Coinbase</title></head><body><h1>Coinbase is temporarily unavailable</h1>"
    "<p>We are performing scheduled maintenance. Please try again shortly.</p></body></html>"
)


def _num(x: float, decimals: int) -> str:
    """A price or size as Coinbase writes it: plain decimal, no trailing zeros ("68923", "0.058", "0")."""
    s = f"{x:.{decimals}f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def _iso(ns: int, digits: int) -> str:
    """RFC 3339 UTC with `digits` fractional digits (REST uses 6, the WebSocket envelope 9)."""
    sec, frac = divmod(ns, 1_000_000_000)
    wall = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    return f"{wall}.{frac // 10 ** (9 - digits):0{digits}d}Z" if digits else f"{wall}Z"


def _ws_time(ms: int) -> str:
    return _iso(ms * 1_000_000, 9)


def _event_time(ms: int) -> str:
    return _iso(ms * 1_000_000, 6)


def _error(status: int, code: str, details: str) -> web.Response:
    body = orjson.dumps({"error": code, "error_details": details, "message": details})
    return web.Response(body=body, status=status, content_type="application/json")


def _json(payload: Any) -> web.Response:
    return web.Response(body=orjson.dumps(payload), content_type="application/json")


class _BadRequest(Exception):
    def __init__(self, status: int, code: str, details: str) -> None:
        super().__init__(details)
        self.status = status
        self.code = code
        self.details = details


def _invalid(details: str) -> _BadRequest:
    return _BadRequest(400, "INVALID_ARGUMENT", details)


class CoinbaseProtocol(Protocol):
    """Coinbase Advanced Trade market data, REST and WebSocket. See the module docstring for sources and deviations.

    One instance serves one venue (it keeps that venue's heartbeat task and per-book render state).
    """

    name: ClassVar[str] = "coinbase"
    ws_paths: ClassVar[tuple[str, ...]] = ("/",)

    def __init__(self, *, heartbeat_interval_s: float = 1.0, subscribe_timeout_s: float = 5.0) -> None:
        if heartbeat_interval_s <= 0 or subscribe_timeout_s <= 0:
            raise ValueError("heartbeat_interval_s and subscribe_timeout_s must be > 0")
        self.heartbeat_interval_s = heartbeat_interval_s
        self.subscribe_timeout_s = subscribe_timeout_s
        self._current: BookUpdate | None = None
        """The level2 update `render` just rendered; `frame` (called right after, per subscriber) reads its ids."""
        self._stats: dict[tuple[int, int], tuple[float, float, float, float]] = {}
        self._heartbeats: asyncio.Task[None] | None = None
        self._started = time.monotonic()
        self.trading = CoinbaseTrading()
        """The signed spot trading endpoints (orders, fills, accounts) over the venue's `SimVenue.trading` core."""

    def market_id(self, symbol: str) -> str:
        base, sep, quote = symbol.partition("/")
        if not sep or not base or not quote or ":" in quote:
            raise ValueError(f"coinbase advanced trade lists spot symbols like BTC/USD only, got {symbol!r}")
        return f"{_ASSET_IDS.get(base, base)}-{_ASSET_IDS.get(quote, quote)}"

    # ------------------------------------------------------------------ REST

    def install(self, venue: SimVenue, app: web.Application) -> None:
        market = "/api/v3/brokerage/market"
        routes: dict[str, Any] = {
            "/api/v3/brokerage/time": lambda r: _json(self._time_v3()),
            f"{market}/products": lambda r: self._products(venue, r),
            f"{market}/products/{{product_id}}": lambda r: _json(self._product(venue, self._path_product(venue, r))),
            f"{market}/product_book": lambda r: self._product_book(venue, r),
            f"{market}/products/{{product_id}}/ticker": lambda r: self._ticker(venue, r),
            f"{market}/products/{{product_id}}/candles": lambda r: self._candles(venue, r),
            "/v2/time": lambda r: _json({"data": self._time_v2()}),
            "/v2/currencies": lambda r: _json({"data": self._fiat_currencies(venue)}),
            "/v2/currencies/crypto": lambda r: _json({"data": self._crypto_currencies(venue)}),
            "/v2/exchange-rates": lambda r: self._exchange_rates(venue, r),
            "/v2/prices/{symbol}/{kind:buy|sell|spot}": lambda r: self._price_v2(venue, r),
        }
        add_get_routes(app, routes, refused=_BadRequest, error=lambda e: _error(e.status, e.code, e.details))
        self.trading.install(venue, app, currency_id=lambda c: _ASSET_IDS.get(c, c), rate_limited=self.rate_limited)

        async def start_heartbeats(app: web.Application) -> None:
            self._heartbeats = spawn(self._heartbeat_loop(venue), name=f"sim.{venue.venue_id}.heartbeats")

        async def stop_heartbeats(app: web.Application) -> None:
            if self._heartbeats is not None:
                await cancel_and_wait(self._heartbeats)

        app.on_startup.append(start_heartbeats)
        app.on_cleanup.append(stop_heartbeats)

    @staticmethod
    def _time_v3() -> dict[str, str]:
        ns = time.time_ns()
        return {"iso": _iso(ns, 3), "epochSeconds": str(ns // 1_000_000_000), "epochMillis": str(ns // 1_000_000)}

    @staticmethod
    def _time_v2() -> dict[str, Any]:
        ns = time.time_ns()
        return {"iso": _iso(ns, 0), "epoch": ns // 1_000_000_000}

    @staticmethod
    def _path_product(venue: SimVenue, request: web.Request) -> str:
        product_id = request.match_info["product_id"]
        if venue.book(product_id) is None:
            raise _BadRequest(404, "NOT_FOUND", f"ProductID {product_id} could not be found")
        return product_id

    @staticmethod
    def _opt_int(request: web.Request, name: str) -> int | None:
        raw = request.query.get(name)
        if raw is None or raw == "":
            return None
        try:
            return int(raw)
        except ValueError:
            raise _invalid(f'invalid value for {name}: strconv.ParseInt: parsing "{raw}": invalid syntax') from None

    @classmethod
    def _req_int(cls, request: web.Request, name: str) -> int:
        value = cls._opt_int(request, name)
        if value is None:
            raise _invalid(f"{name} is required")
        return value

    @staticmethod
    def _last_price(book: Book) -> float:
        return book.price((book.bid_top + book.ask_top) // 2)

    def _day_stats(self, venue: SimVenue, book: Book) -> tuple[float, float, float, float]:
        """(open, high, low, volume) of the last 24 h from the deterministic candles, cached per book and minute."""
        now_ms = time.time_ns() // 1_000_000
        key = (book.row, now_ms // 60_000)
        stats = self._stats.get(key)
        if stats is None:
            if len(self._stats) > 4 * len(venue.market_ids):
                self._stats.clear()
            opens = np.arange(24, dtype=np.int64) * 3_600_000 + (now_ms - 24 * 3_600_000)
            o, h, low, _c, v = _candles(venue, book, opens, 3_600_000, now_ms, aligned=False)
            stats = (float(o[0]), float(h.max()), float(low.min()), float(v.sum()))
            self._stats[key] = stats
        return stats

    def _product(self, venue: SimVenue, product_id: str) -> dict[str, Any]:
        book = venue.books_by_market_id[product_id]
        base, _, quote = book.symbol.partition("/")
        base_id, quote_id = _ASSET_IDS.get(base, base), _ASSET_IDS.get(quote, quote)
        pd, sd = book.price_decimals, book.size_decimals
        last = self._last_price(book)
        open_, _high, _low, volume = self._day_stats(venue, book)
        rules = venue.trading.rules(book.symbol)  # what orders are checked against
        tick, step = _num(float(rules.tick), pd), _num(float(rules.step), sd)
        return {
            "product_id": product_id,
            "price": _num(last, pd),
            "price_percentage_change_24h": repr((last - open_) / open_ * 100),
            "volume_24h": _num(volume, sd),
            "volume_percentage_change_24h": "0",
            "base_increment": step,
            "quote_increment": tick,
            "quote_min_size": format(rules.min_notional.normalize(), "f"),
            "quote_max_size": format(rules.max_notional.normalize(), "f"),
            "base_min_size": _num(float(rules.min_qty), sd),
            "base_max_size": _num(float(rules.max_qty), sd),
            "base_name": base,
            "quote_name": "US Dollar" if quote == "USD" else quote,
            "watched": False,
            "is_disabled": False,
            "new": False,
            "status": "online",
            "cancel_only": False,
            "limit_only": False,
            "post_only": False,
            "trading_disabled": False,
            "auction_mode": False,
            "product_type": "SPOT",
            "quote_currency_id": quote_id,
            "base_currency_id": base_id,
            "fcm_trading_session_details": None,
            "mid_market_price": "",
            "alias": "",
            "alias_to": [],
            "base_display_symbol": base,
            "quote_display_symbol": quote,
            "view_only": False,
            "price_increment": tick,
            "display_name": f"{base}-{quote}",
            "product_venue": "CBE",
            "approximate_quote_24h_volume": _num(volume * last, 2),
            "new_at": "2023-01-01T00:00:00Z",
        }

    def _products(self, venue: SimVenue, request: web.Request) -> web.Response:
        product_type = request.query.get("product_type", "")
        if product_type not in ("", "SPOT", "FUTURE", "UNKNOWN_PRODUCT_TYPE"):
            raise _invalid(f"invalid value for enum type: {product_type!r}")
        wanted = request.query.getall("product_ids", [])
        unknown = [p for p in wanted if venue.book(p) is None]
        if unknown:
            raise _BadRequest(404, "NOT_FOUND", f"ProductID {unknown[0]} could not be found")
        ids = [] if product_type == "FUTURE" else (wanted or venue.market_ids)
        products = [self._product(venue, p) for p in ids]
        return _json({"products": products, "num_products": len(products), "pagination": None})

    def _book_param(self, venue: SimVenue, request: web.Request) -> Book:
        product_id = request.query.get("product_id")
        if not product_id:
            raise _invalid("product_id is required")
        book = venue.book(product_id)
        if book is None:
            raise _BadRequest(404, "NOT_FOUND", f"ProductID {product_id} could not be found")
        return book

    def _product_book(self, venue: SimVenue, request: web.Request) -> web.Response:
        book = self._book_param(venue, request)
        limit = self._opt_int(request, "limit") or 0
        if limit < 0:
            raise _invalid("limit must be >= 0")
        bids, asks = book.levels(limit or None)
        pd, sd = book.price_decimals, book.size_decimals
        bid, ask = bids[0].price, asks[0].price
        mid = (bid + ask) / 2
        return _json(
            {
                "pricebook": {
                    "product_id": venue.market_ids[book.row],
                    "bids": [{"price": _num(p, pd), "size": _num(s, sd)} for p, s in bids],
                    "asks": [{"price": _num(p, pd), "size": _num(s, sd)} for p, s in asks],
                    "time": _iso(venue.event_time_ms(book.ts_ns) * 1_000_000, 6),
                },
                "last": _num(self._last_price(book), pd),
                "mid_market": _num(mid, pd + 1),
                "spread_bps": repr((ask - bid) / mid * 1e4),
                "spread_absolute": _num(ask - bid, pd),
            }
        )

    def _ticker(self, venue: SimVenue, request: web.Request) -> web.Response:
        product_id = self._path_product(venue, request)
        limit = self._req_int(request, "limit")
        if not 1 <= limit <= 1000:
            raise _invalid("limit must be between 1 and 1000")
        book = venue.books_by_market_id[product_id]
        bid, _bid_size, ask, _ask_size = book.top()
        pd, sd = book.price_decimals, book.size_decimals
        ts_ns = venue.event_time_ms(book.ts_ns) * 1_000_000
        trades = []
        for k in range(min(limit, 100)):
            trade_id = book.update_id - k
            buy = (trade_id * 2_654_435_761) % 7 < 4  # a fixed pattern of aggressor sides, the same on every call
            size = book.step * (1 + (trade_id * 40_503) % 97)
            trades.append(
                {
                    "trade_id": str(trade_id),
                    "product_id": product_id,
                    "price": _num(self._last_price(book) if k else (ask if buy else bid), pd),
                    "size": _num(size, sd),
                    "time": _iso(ts_ns - k * 250_000_000, 6),
                    "side": "BUY" if buy else "SELL",
                    "bid": "",
                    "ask": "",
                    "exchange": "coinbase",
                }
            )
        return _json({"trades": trades, "best_bid": _num(bid, pd), "best_ask": _num(ask, pd)})

    def _candles(self, venue: SimVenue, request: web.Request) -> web.Response:
        product_id = self._path_product(venue, request)
        granularity = request.query.get("granularity", "")
        step_s = _GRANULARITY_S.get(granularity)
        if step_s is None:
            raise _invalid(f"granularity {granularity!r} is not one of {', '.join(_GRANULARITY_S)}")
        start = self._req_int(request, "start")
        end = self._req_int(request, "end")
        if start > end:
            raise _invalid("start must be before end")
        limit = self._opt_int(request, "limit") or _MAX_CANDLES
        if not 1 <= limit <= _MAX_CANDLES:
            raise _invalid(f"limit must be between 1 and {_MAX_CANDLES}")
        now_s = time.time_ns() // 1_000_000_000
        first = -(-start // step_s) * step_s
        last = min(end // step_s, now_s // step_s) * step_s
        count = (last - first) // step_s + 1
        if count > _MAX_CANDLES:
            raise _invalid(f"number of candles requested should be less than {_MAX_CANDLES}")
        if count <= 0:
            return _json({"candles": []})
        first = max(first, last - (limit - 1) * step_s)
        book = venue.books_by_market_id[product_id]
        step_ms = step_s * 1000
        opens = np.arange(first * 1000, last * 1000 + 1, step_ms, dtype=np.int64)
        o, h, low, c, v = _candles(venue, book, opens, step_ms, now_s * 1000, aligned=True)
        pd, sd = book.price_decimals, book.size_decimals
        rows = [
            {
                "start": str(int(t) // 1000),
                "low": _num(round(float(ll), pd), pd),
                "high": _num(round(float(hh), pd), pd),
                "open": _num(round(float(oo), pd), pd),
                "close": _num(round(float(cc), pd), pd),
                "volume": _num(round(float(vv), sd), sd),
            }
            for t, oo, hh, ll, cc, vv in zip(opens, o, h, low, c, v, strict=True)
        ]
        rows.reverse()  # newest first, as the exchange sends them
        return _json({"candles": rows})

    @staticmethod
    def _currency_codes(venue: SimVenue) -> list[str]:
        codes: dict[str, None] = {}
        for book in venue.feed.books:
            base, _, quote = book.symbol.partition("/")
            codes[_ASSET_IDS.get(base, base)] = None
            codes[_ASSET_IDS.get(quote, quote)] = None
        return list(codes)

    def _fiat_currencies(self, venue: SimVenue) -> list[dict[str, Any]]:
        fiat = sorted({"USD", "EUR", "GBP"} | {c for c in self._currency_codes(venue) if c in _FIAT})
        return [{"id": c, "name": c, "min_size": "0.01"} for c in fiat]

    def _crypto_currencies(self, venue: SimVenue) -> list[dict[str, Any]]:
        rows = []
        for k, code in enumerate(c for c in self._currency_codes(venue) if c not in _FIAT):
            rows.append(
                {
                    "asset_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"coinbase:{code}")),
                    "code": code,
                    "name": code,
                    "color": "#0052FF",
                    "sort_index": 100 + k,
                    "exponent": 8,
                    "type": "crypto",
                    "address_regex": "^.+$",
                }
            )
        return rows

    def _exchange_rates(self, venue: SimVenue, request: web.Request) -> web.Response:
        currency = request.query.get("currency", "USD")
        if currency != "USD":
            raise _BadRequest(400, "invalid_request", "the local venue quotes exchange rates against USD only")
        rates = {"USD": "1"}
        for product_id, book in venue.books_by_market_id.items():
            base_id, _, quote_id = product_id.partition("-")
            if quote_id == "USD":
                rates[base_id] = repr(1 / max(self._last_price(book), 1e-18))
        return _json({"data": {"currency": "USD", "rates": rates}})

    def _price_v2(self, venue: SimVenue, request: web.Request) -> web.Response:
        product_id = request.match_info["symbol"]
        book = venue.book(product_id)
        if book is None:
            return web.Response(
                body=orjson.dumps({"errors": [{"id": "not_found", "message": "Invalid currency"}]}),
                status=404,
                content_type="application/json",
            )
        bid, _, ask, _ = book.top()
        kind = request.match_info["kind"]
        amount = ask if kind == "buy" else bid if kind == "sell" else self._last_price(book)
        base_id, _, quote_id = product_id.partition("-")
        return _json({"data": {"base": base_id, "currency": quote_id, "amount": _num(amount, book.price_decimals)}})

    # ------------------------------------------------------------------ errors, maintenance

    def rate_limited(self, status: int, retry_after_s: int) -> web.Response:
        # 429 either way: Coinbase has no documented IP ban (see the module docstring).
        return web.Response(
            body=_RATE_LIMITED,
            status=429,
            content_type="application/json",
            headers={"Retry-After": str(retry_after_s)},
        )

    def maintenance_response(self, retry_after_s: int | None) -> web.Response:
        headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else None
        return web.Response(text=_MAINTENANCE_PAGE, status=503, content_type="text/html", headers=headers)

    # ------------------------------------------------------------------ WebSocket

    def on_connect(self, conn: Connection) -> None:
        conn.state["seq"] = 0
        conn.state["l2"] = {}  # product id -> last book update id this connection has (snapshot or update)
        conn.state["heartbeats"] = None  # the next heartbeat_counter once subscribed
        conn.state["subscribed"] = False
        conn.state["opened"] = time.monotonic()

    @staticmethod
    def _next_seq(conn: Connection) -> int:
        seq: int = conn.state["seq"]
        conn.state["seq"] = seq + 1
        return seq

    def _send(self, conn: Connection, channel: str, timestamp: str, events: str) -> None:
        seq = self._next_seq(conn)
        head = f'{{"channel":"{channel}","client_id":"","timestamp":"{timestamp}","sequence_num":{seq},'
        conn.send(f'{head}"events":{events}}}')

    @staticmethod
    def _ws_error(conn: Connection, message: str) -> None:
        conn.send(orjson.dumps({"type": "error", "message": message}).decode())

    def on_text(self, conn: Connection, text: str) -> None:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError as e:
            self._ws_error(conn, f"failure to parse message: {e.msg} at line {e.lineno} column {e.colno}")
            return
        if not isinstance(msg, dict):
            self._ws_error(conn, "failure to parse message: expected a JSON object")
            return
        kind = msg.get("type")
        channel = msg.get("channel")
        product_ids = msg.get("product_ids", [])
        if kind not in ("subscribe", "unsubscribe"):
            self._ws_error(conn, f"unknown message type {kind!r}: expected 'subscribe' or 'unsubscribe'")
        elif "channels" in msg and channel is None:
            self._ws_error(conn, "'channels' is not supported: send one 'channel' per subscribe message")
        elif not isinstance(channel, str) or not channel:
            self._ws_error(conn, "channel is required")
        elif channel in _UNSERVED:
            self._ws_error(conn, f"channel {channel} is not served by this local venue")
        elif channel not in _MARKET_CHANNELS and channel != "heartbeats":
            self._ws_error(conn, f"unknown channel {channel}")
        elif not isinstance(product_ids, list) or not all(isinstance(p, str) for p in product_ids):
            self._ws_error(conn, "product_ids must be a list of product ids")
        elif kind == "subscribe":
            self._subscribe(conn, channel, product_ids)
        else:
            self._unsubscribe(conn, channel, product_ids)

    def _subscribe(self, conn: Connection, channel: str, product_ids: list[str]) -> None:
        if channel == "heartbeats":
            if conn.state["heartbeats"] is None:
                conn.state["heartbeats"] = 0
        else:
            if not product_ids:
                self._ws_error(conn, f"failure to subscribe: product_ids are required for channel {channel}")
                return
            unknown = [p for p in product_ids if conn.venue.book(p) is None]
            if unknown:  # nothing half-applied
                self._ws_error(conn, f"failure to subscribe: {unknown[0]} is not a valid product")
                return
            for product_id in dict.fromkeys(product_ids):
                conn.subscribe(product_id, channel)
                self._send_snapshot(conn, channel, product_id)
        conn.state["subscribed"] = True
        self._send_subscriptions(conn)

    def _unsubscribe(self, conn: Connection, channel: str, product_ids: list[str]) -> None:
        if channel == "heartbeats":
            conn.state["heartbeats"] = None
        else:
            unknown = [p for p in product_ids if conn.venue.book(p) is None]
            if unknown:
                self._ws_error(conn, f"failure to unsubscribe: {unknown[0]} is not a valid product")
                return
            targets = product_ids or [m for m, c in conn.topics if c == channel]
            for product_id in targets:
                conn.unsubscribe(product_id, channel)
                if channel == "level2":
                    conn.state["l2"].pop(product_id, None)
        self._send_subscriptions(conn)

    def _send_subscriptions(self, conn: Connection) -> None:
        subs: dict[str, list[str]] = {}
        for product_id, channel in sorted(conn.topics):
            subs.setdefault(channel, []).append(product_id)
        if conn.state["heartbeats"] is not None:
            subs["heartbeats"] = []
        events = orjson.dumps([{"subscriptions": subs}]).decode()
        self._send(conn, "subscriptions", _ws_time(conn.venue.now_ms()), events)

    def _send_snapshot(self, conn: Connection, channel: str, product_id: str) -> None:
        venue = conn.venue
        book = venue.books_by_market_id[product_id]
        if channel == "level2":
            bids, asks = book.levels()
            pd, sd = book.price_decimals, book.size_decimals
            levels = [
                f'{{"side":"{side}","event_time":"{_SNAPSHOT_EVENT_TIME}","price_level":"{_num(p, pd)}",'
                f'"new_quantity":"{_num(s, sd)}"}}'
                for side, rows in (("bid", bids), ("offer", asks))
                for p, s in rows
            ]
            events = f'[{{"type":"snapshot","product_id":"{product_id}","updates":[{",".join(levels)}]}}]'
            conn.state["l2"][product_id] = book.update_id
            self._send(conn, "l2_data", _ws_time(venue.event_time_ms(book.ts_ns)), events)
        else:
            events = f'[{{"type":"snapshot","tickers":[{self._ticker_json(venue, book, product_id)}]}}]'
            self._send(conn, channel, _ws_time(venue.now_ms()), events)

    def _ticker_json(self, venue: SimVenue, book: Book, product_id: str) -> str:
        open_, high, low, volume = self._day_stats(venue, book)
        bid, bid_size, ask, ask_size = book.top()
        last = self._last_price(book)
        pd, sd = book.price_decimals, book.size_decimals
        return (
            f'{{"type":"ticker","product_id":"{product_id}","price":"{_num(last, pd)}",'
            f'"volume_24_h":"{_num(volume, sd)}","low_24_h":"{_num(min(low, last), pd)}",'
            f'"high_24_h":"{_num(max(high, last), pd)}","low_52_w":"{_num(min(low, last) * 0.5, pd)}",'
            f'"high_52_w":"{_num(max(high, last) * 1.5, pd)}",'
            f'"price_percent_chg_24_h":"{(last - open_) / open_ * 100:.8f}",'
            f'"best_bid":"{_num(bid, pd)}","best_bid_quantity":"{_num(bid_size, sd)}",'
            f'"best_ask":"{_num(ask, pd)}","best_ask_quantity":"{_num(ask_size, sd)}"}}'
        )

    def sequenced(self, channel: str) -> bool:
        return channel == "level2"

    def render(self, channel: str, update: BookUpdate, venue: SimVenue) -> str | None:
        book = update.book
        product_id = venue.market_ids[book.row]
        ts = venue.event_time_ms(update.ts_ns)
        if channel == "level2":
            self._current = update
            pd, sd = book.price_decimals, book.size_decimals
            price = book.price
            event_time = _event_time(ts)
            levels = [
                f'{{"side":"{side}","event_time":"{event_time}","price_level":"{_num(price(t), pd)}",'
                f'"new_quantity":"{_num(s, sd)}"}}'
                for side, changes in (("bid", update.bids), ("offer", update.asks))
                for t, s in changes
            ]
            events = f'[{{"type":"update","product_id":"{product_id}","updates":[{",".join(levels)}]}}]'
            return (
                f'{{"channel":"l2_data","client_id":"","timestamp":"{_ws_time(ts)}",{_SEQ_PLACEHOLDER}'
                f'"events":{events}}}'
            )
        if not update.top_changed:
            return None
        events = f'[{{"type":"update","tickers":[{self._ticker_json(venue, book, product_id)}]}}]'
        message_channel = _MESSAGE_CHANNEL[channel]
        return (
            f'{{"channel":"{message_channel}","client_id":"","timestamp":"{_ws_time(ts)}",{_SEQ_PLACEHOLDER}'
            f'"events":{events}}}'
        )

    def frame(self, conn: Connection, channel: str, market_id: str, payload: str) -> str:
        if channel == "level2" and self._current is not None:
            update = self._current
            books: dict[str, int] = conn.state["l2"]
            last = books.get(market_id)
            if last is not None and update.first_id != last + 1:
                conn.state["seq"] += 1  # a message this connection should have had was lost: its number too
            books[market_id] = update.last_id
        seq = self._next_seq(conn)
        return payload.replace(_SEQ_PLACEHOLDER, f'"sequence_num":{seq},', 1)

    def malformed(self, kind: MalformedKind, channel: str, update: BookUpdate, payload: str) -> str:
        if kind == "invalid_json":
            return super().malformed(kind, channel, update, payload)
        good = orjson.loads(payload)  # the placeholder is valid JSON and survives a round trip in place
        book = update.book
        event = good["events"][0]
        crossing = _num(book.price(book.ask_top + 1), book.price_decimals)
        if channel == "level2":
            size = _num(book.bids[book.bid_top], book.size_decimals)
            event_time = good["timestamp"][:26] + "Z"  # the envelope's time to the microsecond, as levels carry it
            if kind == "wrong_types":
                event["updates"] = {"side": "bid", "price_level": float(crossing), "new_quantity": [size]}
            else:
                price = "NaN" if kind == "nan_price" else crossing  # crossed: a bid level above the best ask
                bad = {"side": "bid", "event_time": event_time, "price_level": price, "new_quantity": size}
                event["updates"].insert(0, bad)
        else:
            ticker = event["tickers"][0]
            if kind == "wrong_types":
                ticker["best_bid"] = [ticker["best_bid"]]
            elif kind == "nan_price":
                ticker["best_bid"] = "NaN"
            else:
                ticker["best_bid"] = crossing
        return orjson.dumps(good).decode()

    # ------------------------------------------------------------------ heartbeats, subscribe deadline

    async def _heartbeat_loop(self, venue: SimVenue) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval_s)
            if venue.faults.stalled():
                continue
            now = time.monotonic()
            now_ms = venue.now_ms()
            for conn in venue.connections:
                if conn.closed:
                    continue
                if not conn.state.get("subscribed") and now - conn.state.get("opened", now) > self.subscribe_timeout_s:
                    conn.close_soon(1000)  # "Clients must send a subscribe message within 5 seconds"
                    continue
                counter = conn.state.get("heartbeats")
                if counter is None:
                    continue
                conn.state["heartbeats"] = counter + 1
                self._send(conn, "heartbeats", _ws_time(now_ms), self._heartbeat_events(now_ms, now, counter))

    def _heartbeat_events(self, now_ms: int, now: float, counter: int) -> str:
        """The event as Coinbase writes it: Go's `time.String()` (with the monotonic reading) and a string counter."""
        sec, ms = divmod(now_ms, 1000)
        wall = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(sec))
        current = f"{wall}.{ms:03d}000000 +0000 UTC m=+{now - self._started:.9f}"
        return orjson.dumps([{"current_time": current, "heartbeat_counter": str(counter)}]).decode()
