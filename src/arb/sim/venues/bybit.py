"""Bybit v5 spot, served locally in its documented wire format.

Follows (fields, names, error bodies, sequence rules):

- REST envelope `{"retCode", "retMsg", "result", "retExtInfo", "time"}` with business errors on HTTP 200:
  https://bybit-exchange.github.io/docs/v5/intro and https://bybit-exchange.github.io/docs/v5/error (10001
  parameter error, 10006 "Too many visits!", 10016 server error / service restarting; HTTP 403 "access too
  frequent" for an IP ban, HTTP 429 system-level frequency protection).
- Market data: https://bybit-exchange.github.io/docs/v5/market/time, .../market/instrument (`instruments-info` for
  `category=spot|linear|inverse|option`; spot has no pagination, the others page with `limit` / `cursor` /
  `nextPageCursor`), .../market/orderbook (`s`, `b`, `a`, `ts`, `u`, `seq`, `cts`; `u` is the 1000-level stream's),
  .../market/tickers (spot rows: `bid1Price` .. `usdIndexPrice`), .../market/kline (intervals `1` .. `M`, newest
  first, `[start, open, high, low, close, volume, turnover]`), https://bybit-exchange.github.io/docs/v5/system-status
  (an `ongoing` event while in maintenance) and .../rate-limit/rate-limit (`X-Bapi-Limit*` headers).
- WebSocket https://bybit-exchange.github.io/docs/v5/ws/connect: `/v5/public/spot`, `{"op": "subscribe" |
  "unsubscribe", "args": [...], "req_id": ..}` answered `{"success", "ret_msg": "subscribe", "conn_id", "req_id",
  "op"}`, at most 10 args per spot subscribe (`args size >10`), `error:handler not found,topic:<t>`,
  `error:already subscribed,topic:<t>`, `error:invalid op`; the heartbeat is the client's `{"op": "ping"}` answered
  `{"success": true, "ret_msg": "pong", .., "op": "ping"}`.
- Streams https://bybit-exchange.github.io/docs/v5/websocket/public/orderbook: `orderbook.{1,50,200,1000}.{symbol}`,
  spot field order `topic, ts, type, data{s, b, a, u, seq}, cts`; a `snapshot` on subscribe then `delta`s with
  absolute sizes ("0" deletes) and a window of `depth` levels (a level leaving it arrives as "0"); level 1 is
  snapshots only. `u` counts the topic's messages (each delta is the previous `u` + 1; here it starts at the book's
  update id when the topic is first subscribed), `seq` is the cross sequence (the book's update id here), and
  "u" = 1 is a snapshot after a service restart. Spot
  https://bybit-exchange.github.io/docs/v5/websocket/public/ticker: `tickers.{symbol}`, snapshots with `cs`.

What the real client asks for (ccxt 4.5.90 `bybit`, no keys): `load_markets` -> `instruments-info` for spot, linear
(and linear `status=PreLaunch`), inverse (twice likewise) and option for each of BTC, ETH, SOL, XRP, MNT, DOGE, all
answered here with empty lists but spot; `fetch_order_book` -> `orderbook?category=spot&limit=50`; `fetch_ticker` ->
`tickers?category=spot&symbol=..`; `fetch_ohlcv` -> `kline?category=spot&interval=1&limit=..`; `fetch_time` ->
`/v5/market/time`; `fetch_status` -> `/v5/system/status`; `watch_order_book` -> `orderbook.50.<id>`;
`watch_bids_asks` -> `orderbook.1.<id>`; `watch_ticker` -> `tickers.<id>`. ccxt keeps neither `u` nor `seq` and
checks no continuity (`pro/bybit.py handle_order_book`): a gap is the connector's to find (`arb.connectors.guards`).

Deviations, on purpose:
- every topic pushes at the market's pace (no 10/20/100/200 ms conflation) and level 1 is not re-pushed after 3 s
  without change; `ts` and `cts` are both the venue time of the book change;
- when the market keeps fewer levels than a topic's depth (the usual case: 20 < 50), a delta is exactly the
  market's diff; with more levels, the topic's top-`depth` window is diffed, and a delta after withheld updates
  also carries what they changed (the `u` gap still shows);
- only the `orderbook` and `tickers` topics exist (`publicTrade`, `kline` .. are refused as unknown topics);
- the server also sends WebSocket ping frames (the framework's keepalive; ccxt answers them), which Bybit does not;
  an `{"op": "ping"}` counts as an answer too;
- a `rate_limit` fault answers HTTP 429 with the 10006 body, `X-Bapi-Limit-*` headers *and* `Retry-After` (Bybit
  itself sends 10006 on HTTP 200 and only the reset timestamp); its 418 form is Bybit's HTTP 403 IP ban
  ("access too frequent", text body); maintenance answers HTTP 503 with retCode 10016 "Service is restarting" (the
  code Bybit documents for a restart), `/v5/system/status` keeps answering, and after maintenance every topic's `u`
  starts again at 1 (a restarted service);
- error texts for bad parameters are the sim's own under retCode 10001, except "Not supported symbols" (as ccxt's
  error table records it) and the WebSocket ones above.

Private trading (orders, executions, the unified wallet; real X-BAPI-* signature and timestamp checks) is served by
`arb.sim.venues.bybit_trading` over the venue's `SimVenue.trading` core (`arb.sim.trading`); `instruments-info`
shows the tick, step and ranges orders are checked against.

Any venue id can be served by this module with its own symbols; market ids are base + quote coin (`BTC/USDT` ->
`BTCUSDT`): Bybit's coin codes are ccxt's unified codes (ccxt's only renames, XBT and BCHSV, are not Bybit coins).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final

import numpy as np
import orjson
from aiohttp import web

from arb.sim.faults import MalformedKind
from arb.sim.server import Connection, Protocol, SimVenue, add_get_routes
from arb.sim.venues.binance import _candles
from arb.sim.venues.bybit_trading import BybitTrading, instrument_ranges

if TYPE_CHECKING:
    from arb.sim.market import Book, BookUpdate

DOCS: Final = (
    "https://bybit-exchange.github.io/docs/v5/intro",
    "https://bybit-exchange.github.io/docs/v5/ws/connect",
    "https://bybit-exchange.github.io/docs/v5/websocket/public/orderbook",
)

DEPTHS: Final = (1, 50, 200, 1000)
"""Spot order book topics (`orderbook.<depth>.<symbol>`)."""
MAX_ARGS: Final = 10
"""Most topics one spot subscribe request may carry."""
_CATEGORIES: Final = frozenset({"spot", "linear", "inverse", "option"})
_INTERVALS_MS: Final[dict[str, int]] = {
    "1": 60_000,
    "3": 180_000,
    "5": 300_000,
    "15": 900_000,
    "30": 1_800_000,
    "60": 3_600_000,
    "120": 7_200_000,
    "240": 14_400_000,
    "360": 21_600_000,
    "720": 43_200_000,
    "D": 86_400_000,
    "W": 604_800_000,
    "M": 2_592_000_000,  # a 30-day month: the sim does not keep a calendar
}
_MAX_KLINE_SPAN: Final = 200_000
"""Most candles between the requested ones and now that kline will synthesise (older requests get [])."""
_DEPTH_NAMES: Final = frozenset(str(d) for d in DEPTHS)
_CONN_NS: Final = uuid.UUID("6f1c7a52-3d2e-4c4b-9a57-0b1f5e2c9d11")
"""Namespace of the uuid5 `conn_id`s (deterministic: venue id and connection number)."""
_NOT_SUPPORTED: Final = "Not supported symbols"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _px(book: Book, price: float) -> str:
    return f"{price:.{book.price_decimals}f}"


def _qty(book: Book, size: float) -> str:
    return f"{size:.{book.size_decimals}f}" if size else "0"


def _envelope(result: Any, *, code: int = 0, msg: str = "OK") -> bytes:
    return orjson.dumps({"retCode": code, "retMsg": msg, "result": result, "retExtInfo": {}, "time": _now_ms()})


def _json(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


class _BadRequest(Exception):
    def __init__(self, msg: str, code: int = 10001) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


@dataclass(slots=True)
class _Topic:
    """One order book topic's stream state, shared by its subscribers (render runs once per update per channel)."""

    u: int
    """The `u` of the topic's latest message."""
    book_id: int
    """The book update id that message reflected (an update that starts further on means some were withheld)."""
    view: tuple[dict[int, float], dict[int, float]] | None
    """The top-`depth` window subscribers hold, where the book is deeper than the topic (else None)."""


def _parse_topic(venue: SimVenue, topic: object) -> tuple[str, str] | None:
    """`orderbook.50.BTCUSDT` -> ("BTCUSDT", "orderbook.50"), `tickers.BTCUSDT` -> ("BTCUSDT", "tickers"); else None."""
    if not isinstance(topic, str):
        return None
    parts = topic.split(".")
    if len(parts) == 3 and parts[0] == "orderbook" and parts[1] in _DEPTH_NAMES:
        market_id, channel = parts[2], f"orderbook.{parts[1]}"
    elif len(parts) == 2 and parts[0] == "tickers":
        market_id, channel = parts[1], "tickers"
    else:
        return None
    return (market_id, channel) if venue.book(market_id) is not None else None


def _top(book: Book, depth: int) -> tuple[dict[int, float], dict[int, float]]:
    bids, asks = book.bids, book.asks
    return (
        {t: bids[t] for t in sorted(bids, reverse=True)[:depth]},
        {t: asks[t] for t in sorted(asks)[:depth]},
    )


def _diff(old: dict[int, float], new: dict[int, float]) -> list[tuple[int, float]]:
    changes = [(t, s) for t, s in new.items() if old.get(t) != s]
    changes.extend((t, 0.0) for t in old if t not in new)
    return changes


class BybitProtocol(Protocol):
    """Bybit v5 spot market data, REST and WebSocket. See the module docstring for sources and deviations."""

    name: ClassVar[str] = "bybit"
    ws_paths: ClassVar[tuple[str, ...]] = ("/v5/public/spot",)
    maintenance_exempt: ClassVar[frozenset[str]] = frozenset({"/v5/system/status"})

    def __init__(self) -> None:
        self._topics: dict[tuple[str, str, int], _Topic] = {}
        self._restarts: dict[str, int] = {}
        """Venue id -> maintenances seen: after one, the restarted service's topics count `u` from 1 again."""
        self._day: dict[tuple[str, str], tuple[int, tuple[float, float, float, float, float]]] = {}
        """(venue, market id) -> (minute, 24h open/high/low/volume/turnover), recomputed once a minute."""
        self.trading = BybitTrading()
        """The signed spot trading endpoints (orders, executions, wallet) over the venue's `SimVenue.trading` core."""

    def market_id(self, symbol: str) -> str:
        base, sep, quote = symbol.partition("/")
        if not sep or not base or not quote or ":" in quote:
            raise ValueError(f"bybit spot lists spot symbols like BTC/USDT only, got {symbol!r}")
        return base + quote

    # ------------------------------------------------------------------ REST

    def install(self, venue: SimVenue, app: web.Application) -> None:
        routes: dict[str, Any] = {
            "/v5/market/time": lambda r: self._time(),
            "/v5/system/status": lambda r: self._status(venue),
            "/v5/market/instruments-info": lambda r: self._instruments(venue, r),
            "/v5/market/orderbook": lambda r: self._orderbook(venue, r),
            "/v5/market/tickers": lambda r: self._tickers(venue, r),
            "/v5/market/kline": lambda r: self._kline(venue, r),
        }
        add_get_routes(
            app,
            routes,
            refused=_BadRequest,
            error=lambda e: _json(_envelope({}, code=e.code, msg=e.msg)),
            body=lambda result: _json(_envelope(result)),
        )
        self.trading.install(venue, app, market_id=self.market_id, rate_limited=self.rate_limited)

    @staticmethod
    def _category(request: web.Request, *, default: str | None = None) -> str:
        category = request.query.get("category", default)
        if category not in _CATEGORIES:
            raise _BadRequest("Illegal category")
        return category

    @staticmethod
    def _int(request: web.Request, name: str, lo: int, hi: int) -> int | None:
        raw = request.query.get(name)
        if raw is None or raw == "":
            return None
        if not raw.isdigit() or len(raw) > 19 or not lo <= int(raw) <= hi:
            raise _BadRequest(f"params error: {name} invalid")
        return int(raw)

    @staticmethod
    def _symbol(venue: SimVenue, request: web.Request, category: str) -> str:
        symbol = request.query.get("symbol")
        if not symbol:
            raise _BadRequest("params error: symbol is required")
        if category != "spot" or venue.book(symbol) is None:
            raise _BadRequest(_NOT_SUPPORTED)
        return symbol

    @staticmethod
    def _time() -> dict[str, str]:
        ns = time.time_ns()
        return {"timeSecond": str(ns // 1_000_000_000), "timeNano": str(ns)}

    @staticmethod
    def _status(venue: SimVenue) -> dict[str, Any]:
        if not venue.faults.in_maintenance():
            return {"list": []}
        now = _now_ms()
        left = venue.faults.maintenance_retry_after()
        return {
            "list": [
                {
                    "id": str(uuid.uuid5(_CONN_NS, f"{venue.venue_id}|maintenance")),
                    "title": "System maintenance",
                    "state": "ongoing",
                    "begin": str(now),
                    "end": str(now + left * 1000) if left is not None else "",
                    "href": "",
                    "serviceTypes": [1, 2, 3, 4, 5],
                    "product": [2],
                    "uidSuffix": [],
                    "maintainType": 1,
                    "env": 1,
                }
            ]
        }

    def _instruments(self, venue: SimVenue, request: web.Request) -> dict[str, Any]:
        category = self._category(request)
        if category != "spot":  # a spot venue: no contracts, one empty page
            return {"category": category, "list": [], "nextPageCursor": ""}
        names = venue.market_ids
        symbol = request.query.get("symbol")
        if symbol:
            names = [n for n in names if n == symbol]
        if request.query.get("status", "Trading") != "Trading":
            names = []
        return {"category": "spot", "list": [self._instrument(venue, n) for n in names]}

    @staticmethod
    def _instrument(venue: SimVenue, market_id: str) -> dict[str, Any]:
        book = venue.books_by_market_id[market_id]
        base, _, quote = book.symbol.partition("/")
        ranges = instrument_ranges(venue.trading.rules(book.symbol))  # what orders are checked against
        max_qty = float(ranges["maxOrderQty"])
        return {
            "symbolId": book.row + 1,
            "symbol": market_id,
            "baseCoin": base,
            "quoteCoin": quote,
            "innovation": "0",
            "status": "Trading",
            "marginTrading": "none",
            "stTag": "0",
            "lotSizeFilter": {
                "basePrecision": _qty(book, book.step),
                "quotePrecision": "0.00000001",
                "minOrderQty": _qty(book, float(ranges["minOrderQty"])),
                "maxOrderQty": _qty(book, max_qty),
                "minOrderAmt": ranges["minOrderAmt"],
                "maxOrderAmt": ranges["maxOrderAmt"],
                "maxLimitOrderQty": _qty(book, max_qty),
                "maxMarketOrderQty": _qty(book, round(max_qty / 2 / book.step) * book.step or book.step),
                "postOnlyMaxLimitOrderSize": _qty(book, max_qty * 5),
            },
            "priceFilter": {"tickSize": _px(book, float(ranges["tickSize"]))},
            "riskParameters": {"priceLimitRatioX": "0.005", "priceLimitRatioY": "0.01"},
            "symbolType": "",
        }

    def _orderbook(self, venue: SimVenue, request: web.Request) -> dict[str, Any]:
        category = self._category(request)
        market_id = self._symbol(venue, request, category)
        limit = self._int(request, "limit", 1, 1000) or 1
        book = venue.books_by_market_id[market_id]
        topic = self._caught_up(venue, market_id, 1000, book)  # REST `u` is the 1000-level stream's
        bids, asks = book.levels(limit)
        return {
            "s": market_id,
            "b": [[_px(book, p), _qty(book, s)] for p, s in bids],
            "a": [[_px(book, p), _qty(book, s)] for p, s in asks],
            "ts": venue.now_ms(),
            "u": topic.u,
            "seq": book.update_id,
            "cts": venue.event_time_ms(book.ts_ns),
        }

    def _tickers(self, venue: SimVenue, request: web.Request) -> dict[str, Any]:
        category = self._category(request)
        if category != "spot":
            if request.query.get("symbol"):
                raise _BadRequest(_NOT_SUPPORTED)
            return {"category": category, "list": []}
        names = [self._symbol(venue, request, category)] if request.query.get("symbol") else venue.market_ids
        now_ms = _now_ms()
        rows = []
        for name in names:
            book = venue.books_by_market_id[name]
            bid, bid_size, ask, ask_size = book.top()
            row = {
                "symbol": name,
                "bid1Price": _px(book, bid),
                "bid1Size": _qty(book, bid_size),
                "ask1Price": _px(book, ask),
                "ask1Size": _qty(book, ask_size),
            }
            row.update(self._day_stats(venue, book, name, now_ms))
            rows.append(row)
        return {"category": "spot", "list": rows}

    def _day_stats(self, venue: SimVenue, book: Book, market_id: str, now_ms: int) -> dict[str, str]:
        """The spot ticker's 24h fields: deterministic candles (as klines show) ending at the book's mid now."""
        key = (venue.venue_id, market_id)
        minute = now_ms // 60_000
        cached = self._day.get(key)
        if cached is None or cached[0] != minute:
            opens = np.arange(24, dtype=np.int64) * 3_600_000 + (now_ms - 24 * 3_600_000)
            o, h, low, c, v = _candles(venue, book, opens, 3_600_000, now_ms, aligned=False)
            day = (float(o[0]), float(h.max()), float(low.min()), float(v.sum()), float((v * c).sum()))
            self._day[key] = cached = (minute, day)
        open_, high, low_, volume, turnover = cached[1]
        pd = book.price_decimals
        last = book.price((book.bid_top + book.ask_top) // 2)
        open_ = round(open_, pd)
        return {
            "lastPrice": _px(book, last),
            "prevPrice24h": _px(book, open_),
            "price24hPcnt": f"{(last - open_) / open_:.4f}",
            "highPrice24h": _px(book, round(max(high, last, open_), pd)),
            "lowPrice24h": _px(book, round(min(low_, last, open_), pd)),
            "turnover24h": f"{turnover:.8f}",
            "volume24h": _qty(book, round(volume, book.size_decimals)),
            "usdIndexPrice": _px(book, last) if book.symbol.endswith(("/USDT", "/USDC")) else "",
        }

    def _kline(self, venue: SimVenue, request: web.Request) -> dict[str, Any]:
        category = self._category(request, default="linear")  # documented default: linear
        market_id = self._symbol(venue, request, category)
        interval = request.query.get("interval")
        if not interval:
            raise _BadRequest("params error: interval is required")
        step = _INTERVALS_MS.get(interval)
        if step is None:
            raise _BadRequest("Invalid period!")
        limit = self._int(request, "limit", 1, 1000) or 200
        start = self._int(request, "start", 0, 2**62)
        end = self._int(request, "end", 0, 2**62)
        if start is not None and end is not None and start > end:
            raise _BadRequest("params error: start is greater than end")
        now_ms = _now_ms()
        current = now_ms - now_ms % step
        if start is not None:  # from the candle that contains `start`
            first = start - start % step
            last = min(current, end - end % step if end is not None else current, first + (limit - 1) * step)
        else:
            last = min(current, end - end % step if end is not None else current)
            first = last - (limit - 1) * step
        result: dict[str, Any] = {"symbol": market_id, "category": category, "list": []}
        if last < first or (current - first) // step > _MAX_KLINE_SPAN:
            return result
        book = venue.books_by_market_id[market_id]
        opens = np.arange(first, last + 1, step, dtype=np.int64)
        o, h, low, c, v = _candles(venue, book, opens, step, now_ms, aligned=True)
        pd, sd = book.price_decimals, book.size_decimals
        result["list"] = [
            [
                str(int(t)),
                _px(book, round(float(oo), pd)),
                _px(book, round(float(hh), pd)),
                _px(book, round(float(ll), pd)),
                _px(book, round(float(cc), pd)),
                _qty(book, round(float(vv), sd)),
                f"{float(vv * cc):.8f}",
            ]
            for t, oo, hh, ll, cc, vv in zip(opens[::-1], o[::-1], h[::-1], low[::-1], c[::-1], v[::-1], strict=True)
        ]
        return result

    # ------------------------------------------------------------------ errors, maintenance

    def rate_limited(self, status: int, retry_after_s: int) -> web.Response:
        if status == 418:  # an IP ban, Bybit's way: HTTP 403 "access too frequent"
            return web.Response(text="access too frequent", status=403, headers={"Retry-After": str(retry_after_s)})
        reset_ms = _now_ms() + retry_after_s * 1000
        return _json(
            _envelope({}, code=10006, msg="Too many visits!"),
            status=429,
            headers={
                "X-Bapi-Limit": "600",
                "X-Bapi-Limit-Status": "0",
                "X-Bapi-Limit-Reset-Timestamp": str(reset_ms),
                "Retry-After": str(retry_after_s),
            },
        )

    def maintenance_response(self, retry_after_s: int | None) -> web.Response:
        headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else None
        return _json(_envelope({}, code=10016, msg="Service is restarting"), status=503, headers=headers)

    # ------------------------------------------------------------------ WebSocket: requests

    def on_connect(self, conn: Connection) -> None:
        conn.state["conn_id"] = str(uuid.uuid5(_CONN_NS, f"{conn.venue.venue_id}|{conn.id}"))
        conn.state["topics"] = {}

    @staticmethod
    def _reply(conn: Connection, *, success: bool, ret_msg: str, op: Any, req_id: Any) -> None:
        body: dict[str, Any] = {"success": success, "ret_msg": ret_msg, "conn_id": conn.state["conn_id"]}
        if req_id is not None:
            body["req_id"] = req_id
        body["op"] = op
        conn.send(orjson.dumps(body).decode())

    def on_text(self, conn: Connection, text: str) -> None:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError as e:
            msg = e
        if not isinstance(msg, dict):
            found = text.lstrip()[:1] or "EOF"
            if found != "{":
                reason = f"readObjectStart: expect {{ or n, but found {found}"
            else:
                reason = f"ReadObject: {msg.msg if isinstance(msg, orjson.JSONDecodeError) else msg}"
            self._reply(conn, success=False, ret_msg=f"Failed to decode incoming data:{reason}", op="", req_id=None)
            return
        op = msg.get("op")
        req_id = msg.get("req_id")
        if op == "ping":
            conn.ping_outstanding_since = None  # the documented heartbeat proves the client alive
            self._reply(conn, success=True, ret_msg="pong", op="ping", req_id=req_id)
        elif op in ("subscribe", "unsubscribe"):
            self._on_subscribe(conn, op, msg.get("args"), req_id)
        else:
            op_name = op if isinstance(op, str) else ""
            self._reply(conn, success=False, ret_msg="error:invalid op", op=op_name, req_id=req_id)

    def _on_subscribe(self, conn: Connection, op: str, args: Any, req_id: Any) -> None:
        if not isinstance(args, list) or not args:
            self._reply(conn, success=False, ret_msg="error:args is empty", op=op, req_id=req_id)
            return
        if op == "subscribe" and len(args) > MAX_ARGS:
            self._reply(conn, success=False, ret_msg=f"args size >{MAX_ARGS}", op=op, req_id=req_id)
            return
        topics: dict[str, tuple[str, str]] = conn.state["topics"]
        keys: dict[str, tuple[str, str]] = {}
        for arg in args:  # all or nothing: the first bad topic refuses the request
            key = _parse_topic(conn.venue, arg)
            if key is None:
                self._reply(conn, success=False, ret_msg=f"error:handler not found,topic:{arg}", op=op, req_id=req_id)
                return
            if op == "subscribe" and arg in topics:
                msg = f"error:already subscribed,topic:{arg}"
                self._reply(conn, success=False, ret_msg=msg, op=op, req_id=req_id)
                return
            keys[arg] = key
        if op == "unsubscribe":
            for arg, key in keys.items():
                if topics.pop(arg, None) is not None:
                    conn.unsubscribe(*key)
            self._reply(conn, success=True, ret_msg="", op=op, req_id=req_id)
            return
        self._reply(conn, success=True, ret_msg="subscribe", op=op, req_id=req_id)
        for arg, (market_id, channel) in keys.items():
            topics[arg] = (market_id, channel)
            conn.subscribe(market_id, channel)
            conn.send(self._first_message(conn.venue, market_id, channel))

    def _first_message(self, venue: SimVenue, market_id: str, channel: str) -> str:
        book = venue.books_by_market_id[market_id]
        ts = venue.event_time_ms(book.ts_ns)
        if channel == "tickers":
            return self._ticker_message(venue, book, market_id, book.update_id, ts)
        depth = int(channel[10:])
        topic = self._caught_up(venue, market_id, depth, book)
        bids, asks = book.levels(depth)
        b = ",".join(f'["{_px(book, p)}","{_qty(book, s)}"]' for p, s in bids)
        a = ",".join(f'["{_px(book, p)}","{_qty(book, s)}"]' for p, s in asks)
        return (
            f'{{"topic":"{channel}.{market_id}","ts":{ts},"type":"snapshot","data":{{"s":"{market_id}",'
            f'"b":[{b}],"a":[{a}],"u":{topic.u},"seq":{book.update_id}}},"cts":{ts}}}'
        )

    # ------------------------------------------------------------------ WebSocket: streams

    def _after_restart(self, venue: SimVenue) -> None:
        """A maintenance since we last looked restarted the service: its topics count `u` from 1 again."""
        starts = venue.faults.injected["maintenance"]
        if self._restarts.get(venue.venue_id, 0) != starts:
            self._restarts[venue.venue_id] = starts
            for key in [k for k in self._topics if k[0] == venue.venue_id]:
                del self._topics[key]

    def _topic(self, venue: SimVenue, market_id: str, depth: int, book: Book) -> _Topic:
        self._after_restart(venue)
        key = (venue.venue_id, market_id, depth)
        topic = self._topics.get(key)
        if topic is None:
            first_u = 0 if self._restarts.get(venue.venue_id) else max(0, book.update_id - 1)
            view = _top(book, depth) if depth < venue.market.config.depth else None
            topic = self._topics[key] = _Topic(u=first_u, book_id=-1, view=view)
        return topic

    def _caught_up(self, venue: SimVenue, market_id: str, depth: int, book: Book) -> _Topic:
        """The topic as of the book now: a book that moved unseen since its last message costs one `u`."""
        topic = self._topic(venue, market_id, depth, book)
        if topic.book_id != book.update_id:
            topic.u += 1
            topic.book_id = book.update_id
            if topic.view is not None:
                topic.view = _top(book, depth)
        return topic

    def sequenced(self, channel: str) -> bool:
        return channel.startswith("orderbook.") and channel != "orderbook.1"

    def render(self, channel: str, update: BookUpdate, venue: SimVenue) -> str | None:
        if venue.faults.in_maintenance():
            return None  # the service is down; the sockets being closed get nothing more
        book = update.book
        market_id = venue.market_ids[book.row]
        ts = venue.event_time_ms(update.ts_ns)
        if channel == "tickers":
            if not update.top_changed:
                return None
            return self._ticker_message(venue, book, market_id, update.last_id, ts)
        depth = int(channel[10:])
        topic = self._topic(venue, market_id, depth, book)
        missed = update.first_id > topic.book_id + 1
        if missed:
            topic.u += 1  # the withheld updates' messages had their `u` too: the next one shows the gap
        topic.book_id = update.last_id
        if depth == 1:
            if not (update.top_changed or missed):
                return None
            topic.u += 1
            bid, bid_size, ask, ask_size = book.top()
            return (
                f'{{"topic":"{channel}.{market_id}","ts":{ts},"type":"snapshot","data":{{"s":"{market_id}",'
                f'"b":[["{_px(book, bid)}","{_qty(book, bid_size)}"]],'
                f'"a":[["{_px(book, ask)}","{_qty(book, ask_size)}"]],'
                f'"u":{topic.u},"seq":{update.last_id}}},"cts":{ts}}}'
            )
        if topic.view is None:
            bids, asks = update.bids, update.asks
        else:
            window = _top(book, depth)
            bids, asks = _diff(topic.view[0], window[0]), _diff(topic.view[1], window[1])
            topic.view = window
        if not bids and not asks:
            return None
        topic.u += 1
        b = ",".join(f'["{_px(book, book.price(t))}","{_qty(book, s)}"]' for t, s in sorted(bids, reverse=True))
        a = ",".join(f'["{_px(book, book.price(t))}","{_qty(book, s)}"]' for t, s in sorted(asks))
        return (
            f'{{"topic":"{channel}.{market_id}","ts":{ts},"type":"delta","data":{{"s":"{market_id}",'
            f'"b":[{b}],"a":[{a}],"u":{topic.u},"seq":{update.last_id}}},"cts":{ts}}}'
        )

    def _ticker_message(self, venue: SimVenue, book: Book, market_id: str, cs: int, ts: int) -> str:
        data = {"symbol": market_id, **self._day_stats(venue, book, market_id, _now_ms())}
        return orjson.dumps(
            {"topic": f"tickers.{market_id}", "ts": ts, "type": "snapshot", "cs": cs, "data": data}
        ).decode()

    def malformed(self, kind: MalformedKind, channel: str, update: BookUpdate, payload: str) -> str:
        if kind == "invalid_json":
            return super().malformed(kind, channel, update, payload)
        good = orjson.loads(payload)
        data = good["data"]
        book = update.book
        if channel == "tickers":
            if kind == "wrong_types":
                data["lastPrice"] = [data["lastPrice"]]
            elif kind == "nan_price":
                data["lastPrice"] = "NaN"
            else:  # crossed: a day whose low is above its high
                data["highPrice24h"], data["lowPrice24h"] = data["lowPrice24h"], data["highPrice24h"]
            return orjson.dumps(good).decode()
        size = _qty(book, book.bids[book.bid_top])
        if kind == "wrong_types":
            data["b"] = "not a list of levels"
            data["u"] = str(data["u"])
        elif kind == "nan_price":
            data["b"] = [["NaN", size], *data["b"]]
        else:  # crossed: a bid level above the best ask
            data["b"] = [[_px(book, book.price(book.ask_top + 1)), size], *data["b"]]
        return orjson.dumps(good).decode()
