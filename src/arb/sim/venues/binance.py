"""Binance spot, served locally in its documented wire format.

Follows (fields, names, error bodies, sequence rules):

- REST: https://developers.binance.com/docs/binance-spot-api-docs/rest-api (general endpoints: ping, time,
  exchangeInfo with PRICE_FILTER / LOT_SIZE / NOTIONAL filters; market data: depth, klines, ticker/24hr,
  ticker/bookTicker, ticker/price), .../rest-api/http-return-codes (429, 418 with Retry-After) and
  https://github.com/binance/binance-spot-api-docs/blob/master/errors.md (`{"code": -1121, "msg": "Invalid symbol."}`).
- WebSocket: https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams (raw streams at
  `/ws/<stream>`, combined at `/stream?streams=a/b` wrapped as `{"stream":..,"data":..}`, lowercase symbols; live
  SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS / SET_PROPERTY / GET_PROPERTY with `{"result": null, "id": N}` replies
  and the documented error codes; a ping frame every 20 s and disconnection without a pong echoing it within a
  minute, both configurable on the venue; `serverShutdown` before a shutdown), streams `<symbol>@depth[@100ms]`
  (`depthUpdate` diffs: `E`, `s`, `U`, `u`, `b`, `a`), `<symbol>@bookTicker` (`u`, `s`, `b`, `B`, `a`, `A`) and
  `<symbol>@depth<5|10|20>[@100ms]` partial books (`lastUpdateId`, `bids`, `asks`).
- Sequence: "How to manage a local order book correctly": the REST snapshot's `lastUpdateId` is the book's update
  id; every diff's `U` is the previous diff's `u` + 1, so the first diff after a snapshot has
  `U <= lastUpdateId + 1 <= u`. ccxt.pro checks exactly this (ccxt/pro/binance.py `handle_order_book`).

What the real client asks for (ccxt 4.5.90 `binance`, no keys): `load_markets` -> `GET /api/v3/exchangeInfo`,
`/fapi/v1/exchangeInfo`, `/dapi/v1/exchangeInfo` (a spot venue answers the futures ones with no symbols);
`watch_order_book` -> WebSocket `/ws/<n>` + SUBSCRIBE `<symbol>@depth@100ms`, then `GET /api/v3/depth?limit=1000`;
`watch_bids_asks` -> SUBSCRIBE `<symbol>@bookTicker`.

Deviations, on purpose: every stream updates at the market's pace (the `@1000ms` forms are accepted but not
conflated); the book has the market's depth (20+ levels), so `limit=5000` returns what there is; request weights are
counted in `X-MBX-USED-WEIGHT-1M` but never enforced (rate limits come from the fault switchboard).

Private trading (signed orders, open orders, trades, account; real HMAC and timestamp checks) is served by
`arb.sim.venues.binance_trading` over the venue's `SimVenue.trading` core (`arb.sim.trading`); exchangeInfo's
PRICE_FILTER / LOT_SIZE / NOTIONAL filters are the rules orders are checked against.

Wallet (deposit/withdraw status, networks, withdrawal fees): `GET /sapi/v1/capital/config/getall`, signed, served by
`arb.sim.venues.binance_wallet` (https://developers.binance.com/docs/wallet/capital/all-coins-info); its switches are
`BinanceProtocol.wallets` and `POST /_sim/wallets`.

USD-M perpetuals (`BTC/USDT:USDT` symbols): `/fapi/v1/*` REST, funding (`premiumIndex`, `fundingInfo`) and the futures
WebSocket (`/public/ws`, diffs with `pu`) are served by `arb.sim.venues.binance_futures`; its switches are
`BinanceProtocol.futures` and `POST /_sim/funding`. Spot sockets are also served under `/stream/ws` and `/stream/stream`
(where `arb.connectors.urls.point_at_local` sends ccxt's spot socket, so ccxt can tell spot from futures by the URL).

Any venue id can be served by this module with its own symbols (`SimVenue(venue_id, BinanceProtocol(), ...)`);
market ids are base + quote asset ids, with ccxt's `commonCurrencies` for binance reversed (`YOYOW` -> `YOYO`).
"""

from __future__ import annotations

import math
import re
import time
from typing import TYPE_CHECKING, Any, ClassVar, Final

import numpy as np
import orjson
from aiohttp import web

from arb.sim.faults import MalformedKind
from arb.sim.market import stable_unit
from arb.sim.server import Connection, Protocol, SimVenue, add_get_routes
from arb.sim.venues.binance_futures import PREFIX, BinanceFutures, FuturesRefused, is_perp, wire_id
from arb.sim.venues.binance_trading import BinanceTrading, rules_filters
from arb.sim.venues.binance_wallet import BinanceWallets

if TYPE_CHECKING:
    from arb.sim.market import Book, BookUpdate

DOCS: Final = (
    "https://developers.binance.com/docs/binance-spot-api-docs/rest-api",
    "https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams",
)

_ASSET_IDS: Final = {"YOYOW": "YOYO"}
"""Unified currency code -> Binance asset id, where ccxt renames (its `commonCurrencies` for binance, reversed)."""

_INTERVALS_MS: Final[dict[str, int]] = {
    "1s": 1_000,
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "3d": 259_200_000,
    "1w": 604_800_000,
    "1M": 2_592_000_000,  # a 30-day month: the sim does not keep a calendar
}
_DIFF_CHANNELS: Final = frozenset({"depth", "depth@100ms", "depth@250ms", "depth@500ms"})
_PARTIAL: Final = re.compile(r"^depth(5|10|20)(@100ms|@1000ms)?$")
_CHANNELS: Final = frozenset({"depth", "depth@100ms", "depth@250ms", "depth@500ms", "depth@1000ms", "bookTicker"})
_METHODS: Final = "`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`"
_ID_RE: Final = re.compile(r"^[A-Za-z0-9]{1,36}$")
_MAX_KLINE_SPAN: Final = 200_000
"""Most candles between the requested ones and now that klines will synthesise (older requests get [])."""

_RATE_LIMITS: Final = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]
STALE_SNAPSHOT_LAG: Final = 1000
"""Update ids a `stale_snapshot` fault puts a snapshot behind the stream."""
_MISSING = "Mandatory parameter '{}' was not sent, was empty/null, or malformed."


def _f8(x: float) -> str:
    return f"{x:.8f}"


def _is_partial(channel: str) -> bool:
    """`depth5`, `depth10@100ms`, ...: a partial book stream (a bare `depth` / `depth@100ms` is the diff stream)."""
    return channel.startswith("depth") and channel[5:6].isdigit()


def _partial_levels_json(book: Book, channel: str) -> tuple[str, str]:
    """The bids and asks JSON arrays' contents of a partial book stream: the top N levels, N from the channel."""
    bids, asks = book.levels(int(channel[5:].partition("@")[0]))
    return (
        ",".join(f'["{p:.8f}","{s:.8f}"]' for p, s in bids),
        ",".join(f'["{p:.8f}","{s:.8f}"]' for p, s in asks),
    )


def _levels_json(book: Book, changes: list[tuple[int, float]]) -> str:
    price = book.price
    return ",".join(f'["{price(t):.8f}","{s:.8f}"]' for t, s in changes)


def _error(status: int, code: int, msg: str) -> web.Response:
    return web.Response(body=orjson.dumps({"code": code, "msg": msg}), status=status, content_type="application/json")


def _json(payload: Any, weight: int, venue: SimVenue) -> web.Response:
    used = venue.stats
    minute = int(time.time() // 60)
    key = f"weight_1m@{minute}"
    if key not in used:
        for stale in [k for k in used if k.startswith("weight_1m@")]:
            del used[stale]
    used[key] += weight
    return web.Response(
        body=orjson.dumps(payload),
        content_type="application/json",
        headers={"X-MBX-USED-WEIGHT-1M": str(used[key])},
    )


class _BadRequest(Exception):
    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


def _stream_key(name: str, futures: bool = False) -> tuple[str, str] | None:
    """`btcusdt@depth@100ms` -> ("BTCUSDT", "depth@100ms") (on a futures socket: "fapi:BTCUSDT"); None if it is not
    a stream this venue serves."""
    symbol, sep, channel = name.partition("@")
    if not sep or not symbol or symbol != symbol.lower():
        return None
    if channel in _CHANNELS or _PARTIAL.match(channel):
        return (PREFIX if futures else "") + symbol.upper(), channel
    return None


_FUTURES_WS: Final = ("/public/", "/market/")
"""Path starts of the USD-M futures sockets (ccxt: `fstream.binance.com/public/ws` for depth and bookTicker)."""


class BinanceProtocol(Protocol):
    """Binance spot market data, REST and WebSocket. See the module docstring for sources and deviations."""

    name: ClassVar[str] = "binance"
    ws_paths: ClassVar[tuple[str, ...]] = (
        "/ws",
        "/ws/{streams:.+}",
        "/stream",
        "/stream/",
        "/stream/ws",
        "/stream/ws/{streams:.+}",
        "/stream/stream",
        "/public/ws",
        "/public/ws/{streams:.+}",
        "/public/stream",
        "/market/ws",
        "/market/ws/{streams:.+}",
        "/market/stream",
    )
    maintenance_exempt: ClassVar[frozenset[str]] = frozenset({"/sapi/v1/system/status"})

    def __init__(self) -> None:
        self.wallets = BinanceWallets()
        """Deposit/withdraw switches and fees per coin (filled with every listed asset when the venue starts)."""
        self.futures = BinanceFutures()
        """USD-M perpetuals' funding (seeded for every listed perp when the venue starts; `set_funding` changes it)."""
        self.trading = BinanceTrading()
        """The signed spot trading endpoints (orders, trades, account) over the venue's `SimVenue.trading` core."""

    def market_id(self, symbol: str) -> str:
        base, sep, rest = symbol.partition("/")
        quote, colon, settle = rest.partition(":")
        if not sep or not base or not quote or (colon and settle != quote):
            raise ValueError(
                f"binance lists spot symbols like BTC/USDT and linear perps like BTC/USDT:USDT only, got {symbol!r}"
            )
        return (PREFIX if colon else "") + _ASSET_IDS.get(base, base) + _ASSET_IDS.get(quote, quote)

    @staticmethod
    def _spot_ids(venue: SimVenue) -> list[str]:
        return [m for m in venue.market_ids if not is_perp(m)]

    # ------------------------------------------------------------------ REST

    def install(self, venue: SimVenue, app: web.Application) -> None:
        routes: dict[str, Any] = {
            "/api/v3/ping": lambda r: _json({}, 1, venue),
            "/api/v3/time": lambda r: _json({"serverTime": time.time_ns() // 1_000_000}, 1, venue),
            "/api/v3/exchangeInfo": lambda r: self._exchange_info(venue, r),
            "/api/v3/depth": lambda r: self._depth(venue, r),
            "/api/v3/ticker/bookTicker": lambda r: self._book_ticker(venue, r),
            "/api/v3/ticker/24hr": lambda r: self._ticker_24hr(venue, r),
            "/api/v3/ticker/price": lambda r: self._ticker_price(venue, r),
            "/api/v3/klines": lambda r: self._klines(venue, r),
            "/dapi/v1/exchangeInfo": lambda r: _json(self._empty_info(), 1, venue),
            "/sapi/v1/system/status": lambda r: _json(
                {"status": 1, "msg": "system_maintenance"}
                if venue.faults.in_maintenance()
                else {"status": 0, "msg": "normal"},
                1,
                venue,
            ),
        }
        add_get_routes(app, routes, refused=_BadRequest, error=lambda e: _error(e.status, e.code, e.msg))
        self.futures.install(
            venue,
            app,
            respond=lambda payload, weight: _json(payload, weight, venue),
            empty_info=self._empty_info,
            add_routes=lambda more: add_get_routes(
                app, more, refused=FuturesRefused, error=lambda e: _error(e.status, e.code, e.msg)
            ),
        )
        self.wallets.install(
            venue,
            app,
            asset_id=lambda code: _ASSET_IDS.get(code, code),
            respond=lambda payload, weight: _json(payload, weight, venue),
            error=_error,
        )
        self.trading.install(
            venue,
            app,
            market_id=self.market_id,
            respond=lambda payload, weight: _json(payload, weight, venue),
            error=_error,
            rate_limited=self.rate_limited,
        )

    @staticmethod
    def _empty_info() -> dict[str, Any]:
        return {
            "timezone": "UTC",
            "serverTime": time.time_ns() // 1_000_000,
            "rateLimits": _RATE_LIMITS,
            "exchangeFilters": [],
            "symbols": [],
        }

    def _symbols_param(self, venue: SimVenue, request: web.Request) -> list[str] | None:
        """The market ids named by `symbol` or `symbols` (a JSON array); None when neither is given."""
        q = request.query
        if "symbol" in q and "symbols" in q:
            raise _BadRequest(-1128, "Combination of optional parameters invalid.")
        if "symbol" in q:
            symbol = q["symbol"]
            if not symbol:
                raise _BadRequest(-1102, _MISSING.format("symbol"))
            if venue.book(symbol) is None:
                raise _BadRequest(-1121, "Invalid symbol.")
            return [symbol]
        if "symbols" in q:
            try:
                names = orjson.loads(q["symbols"])
            except orjson.JSONDecodeError:
                raise _BadRequest(-1100, "Illegal characters found in parameter 'symbols'.") from None
            if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
                raise _BadRequest(-1100, "Illegal characters found in parameter 'symbols'.")
            if any(venue.book(n) is None for n in names):
                raise _BadRequest(-1121, "Invalid symbol.")
            return names
        return None

    def _symbol(self, venue: SimVenue, request: web.Request) -> str:
        """The one market id in the mandatory `symbol` parameter."""
        symbol = request.query.get("symbol")
        if not symbol:
            raise _BadRequest(-1102, _MISSING.format("symbol"))
        if venue.book(symbol) is None:
            raise _BadRequest(-1121, "Invalid symbol.")
        return symbol

    @classmethod
    def _int_param(cls, request: web.Request, name: str, default: int) -> int:
        value = cls._opt_int_param(request, name)
        return default if value is None else value

    @staticmethod
    def _opt_int_param(request: web.Request, name: str) -> int | None:
        raw = request.query.get(name)
        if raw is None or raw == "":
            return None
        if not raw.lstrip("-").isdigit() or len(raw) > 20:
            raise _BadRequest(
                -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."
            )
        return int(raw)

    def _symbol_info(self, venue: SimVenue, market_id: str) -> dict[str, Any]:
        book = venue.books_by_market_id[market_id]
        checked = rules_filters(venue.trading.rules(book.symbol))  # the filters orders are checked against
        base, _, quote = book.symbol.partition("/")
        return {
            "symbol": market_id,
            "status": "TRADING",
            "baseAsset": _ASSET_IDS.get(base, base),
            "baseAssetPrecision": 8,
            "quoteAsset": _ASSET_IDS.get(quote, quote),
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
            "icebergAllowed": True,
            "ocoAllowed": True,
            "otoAllowed": True,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": True,
            "cancelReplaceAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                checked["PRICE_FILTER"],
                checked["LOT_SIZE"],
                {"filterType": "ICEBERG_PARTS", "limit": 10},
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": "0.00000000",
                    "maxQty": "900000000.00000000",
                    "stepSize": "0.00000000",
                },
                {
                    "filterType": "TRAILING_DELTA",
                    "minTrailingAboveDelta": 10,
                    "maxTrailingAboveDelta": 2000,
                    "minTrailingBelowDelta": 10,
                    "maxTrailingBelowDelta": 2000,
                },
                checked["NOTIONAL"],
                {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }

    def _exchange_info(self, venue: SimVenue, request: web.Request) -> web.Response:
        names = self._symbols_param(venue, request) or self._spot_ids(venue)
        info = self._empty_info()
        info["symbols"] = [self._symbol_info(venue, n) for n in names]
        return _json(info, 20, venue)

    def _depth(self, venue: SimVenue, request: web.Request) -> web.Response:
        market_id = self._symbol(venue, request)
        limit = self._int_param(request, "limit", 100)
        if limit < 1:
            raise _BadRequest(-1100, "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'.")
        limit = min(limit, 5000)
        book = venue.books_by_market_id[market_id]
        bids, asks = book.levels(limit)
        weight = 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250
        update_id = book.update_id
        if venue.faults.take("stale_snapshot", book.symbol):  # M4: a snapshot the stream has already passed
            update_id = max(0, update_id - STALE_SNAPSHOT_LAG)
        return _json(
            {
                "lastUpdateId": update_id,
                "bids": [[_f8(p), _f8(s)] for p, s in bids],
                "asks": [[_f8(p), _f8(s)] for p, s in asks],
            },
            weight,
            venue,
        )

    def _book_ticker(self, venue: SimVenue, request: web.Request) -> web.Response:
        names = self._symbols_param(venue, request)
        rows = []
        for name in names or self._spot_ids(venue):
            bid, bid_size, ask, ask_size = venue.books_by_market_id[name].top()
            rows.append(
                {
                    "symbol": name,
                    "bidPrice": _f8(bid),
                    "bidQty": _f8(bid_size),
                    "askPrice": _f8(ask),
                    "askQty": _f8(ask_size),
                }
            )
        single = "symbol" in request.query
        return _json(rows[0] if single else rows, 2 if single else 4, venue)

    def _ticker_price(self, venue: SimVenue, request: web.Request) -> web.Response:
        names = self._symbols_param(venue, request)
        rows = []
        for name in names or self._spot_ids(venue):
            book = venue.books_by_market_id[name]
            rows.append({"symbol": name, "price": _f8(self._last_price(book))})
        single = "symbol" in request.query
        return _json(rows[0] if single else rows, 2 if single else 4, venue)

    @staticmethod
    def _last_price(book: Book) -> float:
        return book.price((book.bid_top + book.ask_top) // 2)

    def _ticker_24hr(self, venue: SimVenue, request: web.Request) -> web.Response:
        names = self._symbols_param(venue, request)
        now_ms = time.time_ns() // 1_000_000
        rows = [self._ticker_row(venue, n, now_ms) for n in names or self._spot_ids(venue)]
        single = "symbol" in request.query
        return _json(rows[0] if single else rows, 2 if single else 80, venue)

    def _ticker_row(self, venue: SimVenue, market_id: str, now_ms: int) -> dict[str, Any]:
        book = venue.books_by_market_id[market_id]
        opens = np.arange(24, dtype=np.int64) * 3_600_000 + (now_ms - 24 * 3_600_000)
        o, h, low, c, v = _candles(venue, book, opens, 3_600_000, now_ms, aligned=False)
        last = self._last_price(book)
        pd = book.price_decimals
        open_ = round(float(o[0]), pd)
        volume = float(v.sum())
        quote_volume = float((v * c).sum())
        bid, bid_size, ask, ask_size = book.top()
        trades = int(volume / max(book.step, 1e-12)) % 1_000_000 + 1000
        return {
            "symbol": market_id,
            "priceChange": _f8(round(last - open_, pd)),
            "priceChangePercent": f"{(last - open_) / open_ * 100:.3f}",
            "weightedAvgPrice": _f8(round(quote_volume / volume, pd) if volume else last),
            "prevClosePrice": _f8(open_),
            "lastPrice": _f8(last),
            "lastQty": _f8(bid_size),
            "bidPrice": _f8(bid),
            "bidQty": _f8(bid_size),
            "askPrice": _f8(ask),
            "askQty": _f8(ask_size),
            "openPrice": _f8(open_),
            "highPrice": _f8(round(max(float(h.max()), last, open_), pd)),
            "lowPrice": _f8(round(min(float(low.min()), last, open_), pd)),
            "volume": _f8(round(volume, book.size_decimals)),
            "quoteVolume": _f8(round(quote_volume, 8)),
            "openTime": now_ms - 86_400_000,
            "closeTime": now_ms,
            "firstId": book.update_id,
            "lastId": book.update_id + trades - 1,
            "count": trades,
        }

    def _klines(self, venue: SimVenue, request: web.Request) -> web.Response:
        market_id = self._symbol(venue, request)
        interval = request.query.get("interval")
        if not interval:
            raise _BadRequest(-1102, _MISSING.format("interval"))
        step = _INTERVALS_MS.get(interval)
        if step is None:
            raise _BadRequest(-1120, "Invalid interval.")
        limit = self._int_param(request, "limit", 500)
        start = self._opt_int_param(request, "startTime")
        end = self._opt_int_param(request, "endTime")
        if not 1 <= limit <= 1000:
            raise _BadRequest(-1100, "Illegal characters found in parameter 'limit'; legal range is '^[0-9]{1,20}$'.")
        if start is not None and end is not None and start > end:
            raise _BadRequest(-1023, "Start time is greater than end time.")
        now_ms = time.time_ns() // 1_000_000
        current = now_ms - now_ms % step
        if start is not None:
            first = -(-start // step) * step
            last = min(current, (end // step) * step if end is not None else current, first + (limit - 1) * step)
        else:
            last = min(current, (end // step) * step if end is not None else current)
            first = last - (limit - 1) * step
        if last < first or (current - first) // step > _MAX_KLINE_SPAN:
            return _json([], 2, venue)
        book = venue.books_by_market_id[market_id]
        opens = np.arange(first, last + 1, step, dtype=np.int64)
        o, h, low, c, v = _candles(venue, book, opens, step, now_ms, aligned=True)
        pd, sd = book.price_decimals, book.size_decimals
        rows = [
            [
                int(t),
                _f8(round(float(oo), pd)),
                _f8(round(float(hh), pd)),
                _f8(round(float(ll), pd)),
                _f8(round(float(cc), pd)),
                _f8(round(float(vv), sd)),
                int(t) + step - 1,
                _f8(float(vv * cc)),
                int(vv / book.step) % 10_000 + 1,
                _f8(round(float(vv) / 2, sd)),
                _f8(float(vv * cc) / 2),
                "0",
            ]
            for t, oo, hh, ll, cc, vv in zip(opens, o, h, low, c, v, strict=True)
        ]
        return _json(rows, 2, venue)

    # ------------------------------------------------------------------ errors, maintenance

    def rate_limited(self, status: int, retry_after_s: int) -> web.Response:
        if status == 418:
            until = time.time_ns() // 1_000_000 + retry_after_s * 1000
            msg = (
                f"Way too much request weight used; IP banned until {until}. "
                "Please use WebSocket Streams for live updates to avoid bans."
            )
        else:
            msg = (
                "Too many requests; current limit of IP(127.0.0.1) is 6000 requests per minute. "
                "Please use WebSocket Streams for live updates to avoid polling the API."
            )
        response = _error(status, -1003, msg)
        response.headers["Retry-After"] = str(retry_after_s)
        return response

    def maintenance_response(self, retry_after_s: int | None) -> web.Response:
        # The body ccxt maps to OnMaintenance (ccxt binance `exceptions.exact`).
        response = _error(503, 1, "System is under maintenance.")
        if retry_after_s is not None:
            response.headers["Retry-After"] = str(retry_after_s)
        return response

    def on_maintenance(self, conn: Connection) -> None:
        conn.send(orjson.dumps({"e": "serverShutdown", "E": conn.venue.now_ms()}).decode())

    # ------------------------------------------------------------------ WebSocket

    def on_connect(self, conn: Connection) -> None:
        path = conn.request.path
        futures = path.startswith(_FUTURES_WS)
        conn.state["futures"] = futures
        conn.state["combined"] = path.rstrip("/").endswith("/stream")  # /stream, /stream/stream, /public/stream
        conn.state["streams"] = {}
        if conn.state["combined"]:
            names = conn.request.query.get("streams", "").split("/")
        else:
            names = conn.request.match_info.get("streams", "").split("/")
        for name in names:
            key = _stream_key(name, futures)
            if key is not None:  # ccxt opens /ws/0: a name that is no stream subscribes nothing
                self._subscribe(conn, name, key)

    @staticmethod
    def _subscribe(conn: Connection, name: str, key: tuple[str, str]) -> None:
        conn.state["streams"][name] = key
        conn.subscribe(*key)

    @staticmethod
    def _reply(conn: Connection, req_id: Any, result: Any) -> None:
        conn.send(orjson.dumps({"result": result, "id": req_id}).decode())

    @staticmethod
    def _ws_error(conn: Connection, req_id: Any, code: int, msg: str) -> None:
        conn.send(orjson.dumps({"error": {"code": code, "msg": msg}, "id": req_id}).decode())

    def on_text(self, conn: Connection, text: str) -> None:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError as e:
            self._ws_error(conn, None, 3, f"Invalid JSON: {e.msg} at line {e.lineno} column {e.colno}")
            return
        if not isinstance(msg, dict):
            self._ws_error(conn, None, 2, "Invalid request: expected an object")
            return
        req_id = msg.get("id")
        if not (
            req_id is None
            or (isinstance(req_id, int) and not isinstance(req_id, bool) and -(2**63) <= req_id < 2**63)
            or (isinstance(req_id, str) and _ID_RE.match(req_id))
        ):
            self._ws_error(conn, None, 2, "Invalid request: request ID must be an unsigned integer")
            return
        method = msg.get("method")
        params = msg.get("params", [])
        if method is None:
            self._ws_error(conn, req_id, 2, f"Invalid request: missing field `method` at line 1 column {len(text)}")
        elif not isinstance(params, list):
            self._ws_error(conn, req_id, 1, "Invalid value type: expected an array")
        elif method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            self._on_subscribe(conn, req_id, method, params)
        elif method == "LIST_SUBSCRIPTIONS":
            self._reply(conn, req_id, list(conn.state["streams"]))
        elif method in ("SET_PROPERTY", "GET_PROPERTY"):
            self._on_property(conn, req_id, method, params)
        else:
            self._ws_error(
                conn,
                req_id,
                2,
                f"Invalid request: unknown variant `{method}`, expected one of {_METHODS} at line 1 column 28",
            )

    def _on_subscribe(self, conn: Connection, req_id: Any, method: str, params: list[Any]) -> None:
        keys: list[tuple[str, tuple[str, str]]] = []
        for p in params:
            key = _stream_key(p, conn.state["futures"]) if isinstance(p, str) else None
            if key is None:
                self._ws_error(conn, req_id, 2, "Invalid request: invalid stream")  # nothing half-applied
                return
            keys.append((p, key))
        streams: dict[str, tuple[str, str]] = conn.state["streams"]
        for name, key in keys:
            if method == "SUBSCRIBE":
                self._subscribe(conn, name, key)
            elif streams.pop(name, None) is not None:
                conn.unsubscribe(*key)
        self._reply(conn, req_id, None)

    def _on_property(self, conn: Connection, req_id: Any, method: str, params: list[Any]) -> None:
        if not params or not isinstance(params[0], str):
            self._ws_error(conn, req_id, 2, "Invalid request: property name must be a string")
        elif params[0] != "combined":
            self._ws_error(conn, req_id, 0, "Unknown property")
        elif method == "GET_PROPERTY":
            self._reply(conn, req_id, conn.state["combined"])
        elif len(params) != 2:
            self._ws_error(conn, req_id, 2, "Invalid request: too many parameters")
        elif not isinstance(params[1], bool):
            self._ws_error(conn, req_id, 1, "Invalid value type: expected Boolean")
        else:
            conn.state["combined"] = params[1]
            self._reply(conn, req_id, None)

    def sequenced(self, channel: str) -> bool:
        return channel in _DIFF_CHANNELS or channel == "depth@1000ms"

    def frame(self, conn: Connection, channel: str, market_id: str, payload: str) -> str:
        if conn.state["combined"]:
            return f'{{"stream":"{wire_id(market_id).lower()}@{channel}","data":{payload}}}'
        return payload

    def render(self, channel: str, update: BookUpdate, venue: SimVenue) -> str | None:
        book = update.book
        market_id = venue.market_ids[book.row]
        if is_perp(market_id):
            return self._render_futures(channel, update, venue, wire_id(market_id))
        if channel == "bookTicker":
            if not update.top_changed:
                return None
            bid, bid_size, ask, ask_size = book.top()
            return (
                f'{{"u":{update.last_id},"s":"{market_id}","b":"{bid:.8f}","B":"{bid_size:.8f}",'
                f'"a":"{ask:.8f}","A":"{ask_size:.8f}"}}'
            )
        if _is_partial(channel):
            b, a = _partial_levels_json(book, channel)
            return f'{{"lastUpdateId":{update.last_id},"bids":[{b}],"asks":[{a}]}}'
        return (
            f'{{"e":"depthUpdate","E":{venue.event_time_ms(update.ts_ns)},"s":"{market_id}",'
            f'"U":{update.first_id},"u":{update.last_id},"b":[{_levels_json(book, update.bids)}],'
            f'"a":[{_levels_json(book, update.asks)}]}}'
        )

    @staticmethod
    def _render_futures(channel: str, update: BookUpdate, venue: SimVenue, market_id: str) -> str | None:
        """USD-M formats: every event has `e`, `E` (event time) and `T` (transaction time); diffs carry `pu`, the
        previous event's `u` (the sim's chain is contiguous, so it is `U - 1`); partial books are diff-shaped."""
        book = update.book
        e_ms = venue.event_time_ms(update.ts_ns)
        if channel == "bookTicker":
            if not update.top_changed:
                return None
            bid, bid_size, ask, ask_size = book.top()
            return (
                f'{{"e":"bookTicker","u":{update.last_id},"E":{e_ms},"T":{e_ms},"s":"{market_id}",'
                f'"b":"{bid:.8f}","B":"{bid_size:.8f}","a":"{ask:.8f}","A":"{ask_size:.8f}"}}'
            )
        if _is_partial(channel):
            b, a = _partial_levels_json(book, channel)
        else:
            b, a = _levels_json(book, update.bids), _levels_json(book, update.asks)
        return (
            f'{{"e":"depthUpdate","E":{e_ms},"T":{e_ms},"s":"{market_id}","U":{update.first_id},'
            f'"u":{update.last_id},"pu":{update.first_id - 1},"b":[{b}],"a":[{a}]}}'
        )

    def malformed(self, kind: MalformedKind, channel: str, update: BookUpdate, payload: str) -> str:
        if kind == "invalid_json":
            return super().malformed(kind, channel, update, payload)
        good = orjson.loads(payload)
        book = update.book
        if channel == "bookTicker":
            if kind == "wrong_types":
                good["b"], good["u"] = [good.get("b")], str(update.last_id)
            elif kind == "nan_price":
                good["b"] = "NaN"
            else:  # crossed: best bid above best ask
                good["b"] = _f8(book.price(book.ask_top + 1))
            return orjson.dumps(good).decode()
        bids_key = "b" if "b" in good else "bids"
        if kind == "wrong_types":
            good[bids_key] = "not a list of levels"
            if "U" in good:
                good["U"] = str(good["U"])
        elif kind == "nan_price":
            good[bids_key] = [["NaN", _f8(book.bids[book.bid_top])], *good[bids_key]]
        else:  # crossed: a bid level above the best ask
            good[bids_key] = [[_f8(book.price(book.ask_top + 1)), _f8(book.bids[book.bid_top])], *good[bids_key]]
        return orjson.dumps(good).decode()


def _candles(
    venue: SimVenue, book: Book, opens: np.ndarray, step_ms: int, now_ms: int, *, aligned: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic candles (open, high, low, close, volume) for `opens`, ending at the book's price now.

    Each candle's return is a hash of (venue, symbol, interval, open time), so the same request gives the same
    shape every time; the level follows the live price (the newest close is the book's current mid).
    """
    current = now_ms - now_ms % step_ms if aligned else int(opens[-1])
    first = int(opens[0])
    span = np.arange(first, current + 1, step_ms, dtype=np.int64)
    seed = np.uint64(int(stable_unit(f"{venue.venue_id}|{book.symbol}|{step_ms}") * 2**63))
    u1, u2, u3, u4 = (_uniform(span // step_ms, seed + np.uint64(k)) for k in range(4))
    z = np.sqrt(-2.0 * np.log(np.maximum(u1, 1e-12))) * np.cos(2 * math.pi * u2)
    sigma = venue.market.config.volatility_bps / 1e4 * math.sqrt(step_ms / 1000)
    r = sigma * z
    log_close = math.log(max(book.price((book.bid_top + book.ask_top) // 2), 1e-12)) - (np.cumsum(r[::-1])[::-1] - r)
    close = np.exp(log_close)
    open_ = np.exp(log_close - r)
    wick = sigma / 2
    high = np.maximum(open_, close) * np.exp(np.abs(u3 - 0.5) * wick)
    low = np.minimum(open_, close) * np.exp(-np.abs(u4 - 0.5) * wick)
    base_qty = venue.market.config.level_notional / max(float(close[-1]), 1e-12)
    volume = base_qty * 30 * math.sqrt(step_ms / 60_000) * (0.5 + u3)
    idx = ((opens - first) // step_ms).astype(np.int64)
    return open_[idx], high[idx], low[idx], close[idx], volume[idx]


def _uniform(keys: np.ndarray, seed: np.uint64) -> np.ndarray:
    """splitmix64 of (keys + seed) -> uniforms in [0, 1); arrays only (uint64 wrap-around is intended)."""
    x = keys.astype(np.uint64) + seed
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) * 2.0**-53
