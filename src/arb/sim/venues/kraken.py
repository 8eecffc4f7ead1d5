"""Kraken spot, served locally in its documented wire format: REST `/0/public/*` and WebSocket v2.

Follows (fields, names, error strings, book rules):

- REST: https://docs.kraken.com/api/docs/rest-api/get-tradable-asset-pairs (AssetPairs: `altname`, `wsname`,
  `base`, `quote`, `pair_decimals`, `lot_decimals`, `cost_decimals`, `tick_size`, `ordermin`, `costmin`, `status`),
  .../get-asset-info (Assets), .../get-order-book (Depth: `[price, volume, timestamp]`, `count` 1-500),
  .../get-ticker-information (Ticker: `a`, `b`, `c`, `v`, `p`, `t`, `l`, `h`, `o`), .../get-ohlc-data (OHLC: up to
  720 rows, `since` exclusive, `last`), .../get-server-time, .../get-system-status; every answer is
  `{"error": [...], "result": ...}`; rate limits https://docs.kraken.com/api/docs/guides/spot-rest-ratelimits
  (`EGeneral:Too many requests`, then `EGeneral:Temporary lockout`), maintenance `EService:Unavailable`.
- WebSocket v2: https://docs.kraken.com/api/docs/websocket-v2/book (subscribe `{"method":"subscribe","params":
  {"channel":"book","symbol":[..],"depth":10},"req_id":N}`, one ack per symbol, then a `snapshot` and `update`s,
  price/qty as JSON numbers padded to the pair's precision, a CRC32 `checksum` on both, `timestamp` RFC 3339),
  .../websocket-v2/ticker (`event_trigger` `bbo` or `trades`), .../websocket-v2/ping (`{"method":"pong"}`),
  .../websocket-v2/heartbeat (`{"channel":"heartbeat"}` about once a second on a subscribed but quiet connection),
  .../websocket-v2/status (sent on connect, and with `system: maintenance` before a shutdown); errors
  `{"error":"Currency pair not supported X/Y","method":"subscribe","success":false,"symbol":..}`, `Already
  subscribed` (one depth per symbol per connection), `Malformed request` (`"method":"error"` when nothing in the
  request can be answered).
- Book maintenance: https://docs.kraken.com/api/docs/guides/spot-ws-book-v2 ("after each update, the book should be
  truncated to your subscribed depth as you won't receive "qty": 0 for price levels that fall out of scope"; the
  checksum is over the top 10 asks low->high then bids high->low, each price and qty with its `.` and leading zeros
  removed, CRC32 as an unsigned 32-bit integer). Each depth-N stream here keeps the top-N view it last published: a
  level that leaves the top N because a better one arrived is *not* deleted on the wire (the client trims), a level
  that leaves the book is (`qty: 0`), and a level that moves up into the top N is sent as an insert.

What the real client asks for (ccxt 4.5.90 `kraken`, no keys): `load_markets` -> `GET /0/public/AssetPairs` (plus
`/0/public/Assets` unless `fetchCurrencies` is off); `fetch_order_book` -> `Depth?pair=<id>&count=N`; `fetch_ticker(s)`
-> `Ticker?pair=<id>[,<id>]`; `fetch_ohlcv` -> `OHLC?pair=<id>&interval=<minutes>[&since=<s>]`; `fetch_status` ->
`SystemStatus`. ccxt.pro's public streams all use v2 (`/v2`): `watch_order_book(_for_symbols)` subscribes `book`
(depth 10 unless a limit is given) with ccxt's *unified* symbols, `watch_bids_asks` subscribes `ticker` with
`event_trigger: bbo`, and it pings with `{"method":"ping"}` every 6 s. ccxt does not verify the checksum (its option
`watchOrderBook.checksum` is off by default); `arb.connectors.guards.kraken` does.

Private trading (orders, trades, balances; real API-Sign and nonce checks) is served by
`arb.sim.venues.kraken_trading` over the venue's `SimVenue.trading` core (`arb.sim.trading`); AssetPairs'
`lot_decimals`, `ordermin`, `costmin` and `tick_size` are the rules orders are checked against.

Names: market ids follow Kraken's (legacy X/Z-prefixed assets give `XXBTZUSD`, `ZUSDZJPY`; newer ones `SOLUSD`;
a few historical exceptions such as `XDGUSD` are listed), `wsname` uses altnames (`XBT/USD`), and the v2 symbol is
the wsname with XBT -> BTC and XDG -> DOGE. ccxt's `commonCurrencies` for kraken are reversed to find Kraken's asset
(unified LUNA is Kraken's `LUNA2`, unified LUNC is Kraken's `LUNA`), so `load_markets` round-trips; note that ccxt.pro
subscribes v2 with its unified symbol, so its `LUNA/USD` stream is Kraken's `LUNA/USD` (Terra Classic) as it would be
against the real exchange.

Deviations, on purpose: only v2 is served (ccxt uses nothing else for public data); only `book` and `ticker` channels;
a `ticker` with the default `trades` trigger updates with the top of book (the sim has no trades); the book has the
market's depth (20 levels), so depths 25-1000 stream the whole book; Ticker's lot volumes carry the pair's
`lot_decimals` (Kraken shows 3) so they equal the book sizes; error texts the docs do not spell out are taken from
ccxt's kraken error table (`Subscription depth not supported`) or written in Kraken's style (`Channel trade not
supported`).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final
from zlib import crc32

import numpy as np
import orjson
from aiohttp import web

from arb.sim.faults import MalformedKind
from arb.sim.market import stable_unit
from arb.sim.server import Connection, Protocol, SimVenue, add_get_routes
from arb.sim.venues.binance import _candles
from arb.sim.venues.kraken_trading import KrakenTrading

if TYPE_CHECKING:
    from arb.sim.market import Book, BookUpdate

DOCS: Final = (
    "https://docs.kraken.com/api/docs/rest-api/get-tradable-asset-pairs",
    "https://docs.kraken.com/api/docs/websocket-v2/book",
    "https://docs.kraken.com/api/docs/guides/spot-ws-book-v2",
)

_LEGACY: Final[dict[str, tuple[str, str]]] = {
    "BTC": ("XXBT", "XBT"),
    "ETH": ("XETH", "ETH"),
    "XRP": ("XXRP", "XRP"),
    "LTC": ("XLTC", "LTC"),
    "XLM": ("XXLM", "XLM"),
    "XMR": ("XXMR", "XMR"),
    "ZEC": ("XZEC", "ZEC"),
    "ETC": ("XETC", "ETC"),
    "DOGE": ("XXDG", "XDG"),
    "MLN": ("XMLN", "MLN"),
    "USD": ("ZUSD", "USD"),
    "EUR": ("ZEUR", "EUR"),
    "GBP": ("ZGBP", "GBP"),
    "JPY": ("ZJPY", "JPY"),
    "CAD": ("ZCAD", "CAD"),
    "AUD": ("ZAUD", "AUD"),
}
"""Unified code -> (Kraken asset id, altname) for Kraken's X/Z-prefixed assets (ccxt `commonCurrencies` reversed)."""
_RENAMED: Final[dict[str, str]] = {"LUNA": "LUNA2", "LUNC": "LUNA", "USTC": "UST", "KFEE": "FEE"}
"""Unified code -> Kraken asset id where ccxt renames an unprefixed asset."""
_V2_NAMES: Final[dict[str, str]] = {"XBT": "BTC", "XDG": "DOGE"}
_PAIR_IDS: Final[dict[str, str]] = {
    "DOGE/USD": "XDGUSD",
    "DOGE/EUR": "XDGEUR",
    "USDT/USD": "USDTZUSD",
    "AUD/USD": "AUDUSD",
    "AUD/JPY": "AUDJPY",
}
"""Pairs whose id breaks the rule (legacy base + legacy quote ids, else altnames)."""

LOT_DECIMALS: Final = 8
"""Kraken's `lot_decimals` for (nearly) every spot pair: quantities go on the wire with 8 decimals."""
_DEPTHS: Final = (10, 25, 100, 500, 1000)
_CHECKSUM_LEVELS: Final = 10
_INTERVALS_MIN: Final = frozenset({1, 5, 15, 30, 60, 240, 1440, 10080, 21600})
_OHLC_ROWS: Final = 720
_VERSION: Final = "2.0.10"
_HEARTBEAT_S: Final = 1.0
_HEARTBEAT_TICK_S: Final = 0.1
_NOT_A_LIST: Final = re.compile(r'"bids":\[[^\]]*\]')
_CHECKSUM_FIELD: Final = re.compile(r'"checksum":(\d+)')


def _asset(code: str) -> tuple[str, str]:
    """(Kraken asset id, altname) for a unified currency code."""
    if code in _LEGACY:
        return _LEGACY[code]
    renamed = _RENAMED.get(code, code)
    return renamed, renamed


@dataclass(frozen=True, slots=True)
class PairNames:
    """Every name Kraken gives one spot pair."""

    id: str
    altname: str
    wsname: str
    v2: str
    base: str
    quote: str

    @classmethod
    def of(cls, symbol: str) -> PairNames:
        base, sep, quote = symbol.partition("/")
        if not sep or not base or not quote or ":" in quote or "/" in quote:
            raise ValueError(f"kraken spot lists spot symbols like BTC/USD only, got {symbol!r}")
        base_id, base_alt = _asset(base)
        quote_id, quote_alt = _asset(quote)
        legacy = base_id != base_alt and quote_id != quote_alt
        pair_id = _PAIR_IDS.get(symbol) or (base_id + quote_id if legacy else base_alt + quote_alt)
        v2 = f"{_V2_NAMES.get(base_alt, base_alt)}/{_V2_NAMES.get(quote_alt, quote_alt)}"
        return cls(pair_id, base_alt + quote_alt, f"{base_alt}/{quote_alt}", v2, base_id, quote_id)


def checksum_token(text: str) -> str:
    """One price or qty as the checksum reads it: no `.`, no leading zeros (`0.00100000` -> `100000`)."""
    return text.replace(".", "").lstrip("0")


def book_checksum(asks: Sequence[tuple[str, str]], bids: Sequence[tuple[str, str]]) -> int:
    """Kraken's CRC32 over the top 10 asks (best first) then the top 10 bids (best first), as wire strings."""
    parts = [checksum_token(p) + checksum_token(q) for p, q in asks[:_CHECKSUM_LEVELS]]
    parts += [checksum_token(p) + checksum_token(q) for p, q in bids[:_CHECKSUM_LEVELS]]
    return crc32("".join(parts).encode())


def _rfc3339(ns: int) -> str:
    seconds, rest = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest // 1000:06d}Z"


class _KrakenError(Exception):
    """A REST call Kraken answers with `{"error": [text]}`."""


class _View:
    """The top-N levels a depth-N stream last published for one book (what its subscribers hold after trimming)."""

    __slots__ = ("asks", "bids", "conns", "last_id")

    def __init__(self, book: Book, depth: int) -> None:
        self.conns: set[Connection] = set()
        self.bids: dict[int, float] = {}
        self.asks: dict[int, float] = {}
        self.last_id = 0
        self.reset(book, depth)

    def reset(self, book: Book, depth: int) -> None:
        self.bids = {t: book.bids[t] for t in sorted(book.bids, reverse=True)[:depth]}
        self.asks = {t: book.asks[t] for t in sorted(book.asks)[:depth]}
        self.last_id = book.update_id


def _side_diff(view: dict[int, float], side: dict[int, float], top: dict[int, float]) -> list[tuple[int, float]]:
    """What a depth-N stream sends for one side: new or resized levels of `top`, and deletes only for levels that
    left the book (a level pushed below the depth by a better one is left for the client to trim)."""
    out = [(t, s) for t, s in top.items() if view.get(t) != s]
    out += [(t, 0.0) for t in view if t not in top and t not in side]
    return out


def _kraken_body(body: dict[str, Any]) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


class KrakenProtocol(Protocol):
    """Kraken spot market data, REST and WebSocket v2. See the module docstring for sources and deviations.

    One instance per venue (it keeps the published depth views of that venue's books).
    """

    name: ClassVar[str] = "kraken"
    ws_paths: ClassVar[tuple[str, ...]] = ("/v2",)
    maintenance_exempt: ClassVar[frozenset[str]] = frozenset({"/0/public/SystemStatus"})

    def __init__(self) -> None:
        self._venue: SimVenue | None = None
        self._pairs: dict[str, PairNames] = {}
        self._by_name: dict[str, str] = {}
        self._by_v2: dict[str, str] = {}
        self._views: dict[str, dict[int, _View]] = {}
        self._subscribers: set[Connection] = set()
        self._unlisten: Callable[[], None] | None = None
        self._heartbeat: asyncio.TimerHandle | None = None
        self._day_stats: dict[str, tuple[int, dict[str, float]]] = {}
        self.trading = KrakenTrading()
        """The signed spot trading endpoints (orders, trades, balances) over the venue's `SimVenue.trading` core."""

    def market_id(self, symbol: str) -> str:
        return PairNames.of(symbol).id

    # ------------------------------------------------------------------ REST

    def install(self, venue: SimVenue, app: web.Application) -> None:
        if self._venue is not None and self._venue is not venue:
            raise RuntimeError("a KrakenProtocol serves one venue; make one per venue")
        self._venue = venue
        for market_id, book in venue.books_by_market_id.items():
            names = PairNames.of(book.symbol)
            self._pairs[market_id] = names
            self._by_v2[names.v2] = market_id
            for alias in (names.id, names.altname, names.wsname, names.v2):
                self._by_name.setdefault(alias, market_id)
        routes: dict[str, Callable[[web.Request], Any]] = {
            "Time": lambda r: {
                "unixtime": int(time.time()),
                "rfc1123": time.strftime("%a, %d %b %y %H:%M:%S +0000", time.gmtime()),
            },
            "SystemStatus": lambda r: {
                "status": "maintenance" if venue.faults.in_maintenance() else "online",
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            },
            "Assets": lambda r: self._assets(venue, r),
            "AssetPairs": lambda r: self._asset_pairs(venue, r),
            "Depth": lambda r: self._depth(venue, r),
            "Ticker": lambda r: self._ticker(venue, r),
            "OHLC": lambda r: self._ohlc(venue, r),
        }
        add_get_routes(
            app,
            {f"/0/public/{path}": fn for path, fn in routes.items()},
            refused=_KrakenError,
            error=lambda e: _kraken_body({"error": [str(e)]}),
            body=lambda result: _kraken_body({"error": [], "result": result}),
        )
        by_name = self._by_name
        self.trading.install(
            venue,
            app,
            names=PairNames.of,
            resolve=lambda name: venue.books_by_market_id[by_name[name]].symbol if name in by_name else None,
            asset_id=lambda code: _asset(code)[0],
            rate_limited=self.rate_limited,
        )

    def _market_ids(self, request: web.Request, *, required: bool) -> list[str]:
        """The market ids named by `pair` (a comma list of ids, altnames or ws names)."""
        raw = request.query.get("pair", "")
        if not raw:
            if required:
                raise _KrakenError("EGeneral:Invalid arguments")
            return list(self._pairs)
        out = []
        for name in raw.split(","):
            market_id = self._by_name.get(name.strip())
            if market_id is None:
                raise _KrakenError("EQuery:Unknown asset pair")
            out.append(market_id)
        return out

    @staticmethod
    def _int_arg(request: web.Request, name: str, default: int | None) -> int | None:
        raw = request.query.get(name, "")
        if raw == "":
            return default
        if not raw.lstrip("-").isdigit() or len(raw) > 19:
            raise _KrakenError(f"EGeneral:Invalid arguments:{name}")
        return int(raw)

    def _assets(self, venue: SimVenue, request: web.Request) -> dict[str, Any]:
        assets: dict[str, dict[str, Any]] = {}
        for book in venue.books_by_market_id.values():
            for code in book.symbol.split("/"):
                asset_id, alt = _asset(code)
                fiat = asset_id.startswith("Z") and code in _LEGACY
                assets[asset_id] = {
                    "aclass": "currency",
                    "altname": asset_id if fiat else alt,
                    "decimals": 4 if fiat else 10 if code in _LEGACY else LOT_DECIMALS,
                    "display_decimals": 2 if fiat else 5,
                    "collateral_value": 1.0 if fiat else 0.5,
                    "status": "enabled",
                }
        wanted = request.query.get("asset", "")
        if not wanted:
            return assets
        by_alias: dict[str, str] = {alias: a for a, info in assets.items() for alias in (a, str(info["altname"]))}
        out = {}
        for name in wanted.split(","):
            found = by_alias.get(name.strip())
            if found is None:
                raise _KrakenError("EQuery:Unknown asset")
            out[found] = assets[found]
        return out

    def _pair_info(self, venue: SimVenue, market_id: str) -> dict[str, Any]:
        book = venue.books_by_market_id[market_id]
        names = self._pairs[market_id]
        rules = venue.trading.rules(book.symbol)  # what orders are checked against
        fees = [[0, 0.4], [10000, 0.35], [50000, 0.24], [100000, 0.22], [250000, 0.2], [500000, 0.18]]
        fees_maker = [[0, 0.25], [10000, 0.2], [50000, 0.14], [100000, 0.12], [250000, 0.1], [500000, 0.08]]
        return {
            "altname": names.altname,
            "wsname": names.wsname,
            "aclass_base": "currency",
            "base": names.base,
            "aclass_quote": "currency",
            "quote": names.quote,
            "lot": "unit",
            "cost_decimals": 5,
            "pair_decimals": book.price_decimals,
            "lot_decimals": LOT_DECIMALS,
            "lot_multiplier": 1,
            "leverage_buy": [],
            "leverage_sell": [],
            "fees": fees,
            "fees_maker": fees_maker,
            "fee_volume_currency": "ZUSD",
            "margin_call": 80,
            "margin_stop": 40,
            "ordermin": f"{rules.min_qty:.{book.size_decimals}f}",
            "costmin": format(rules.min_notional.normalize(), "f"),
            "tick_size": f"{rules.tick:.{book.price_decimals}f}",
            "status": "online",
        }

    def _asset_pairs(self, venue: SimVenue, request: web.Request) -> dict[str, Any]:
        info = request.query.get("info", "info")
        keys = {
            "info": None,
            "leverage": ("leverage_buy", "leverage_sell"),
            "fees": ("fees", "fees_maker", "fee_volume_currency"),
            "margin": ("margin_call", "margin_stop"),
        }
        if info not in keys:
            raise _KrakenError("EGeneral:Invalid arguments:info")
        out = {}
        for market_id in self._market_ids(request, required=False):
            row = self._pair_info(venue, market_id)
            subset = keys[info]
            out[market_id] = row if subset is None else {k: row[k] for k in subset}
        return out

    def _depth(self, venue: SimVenue, request: web.Request) -> dict[str, Any]:
        market_ids = self._market_ids(request, required=True)
        if len(market_ids) != 1:
            raise _KrakenError("EGeneral:Invalid arguments")
        count = self._int_arg(request, "count", 100)
        if count is None or not 1 <= count <= 500:
            raise _KrakenError("EGeneral:Invalid arguments:count")
        book = venue.books_by_market_id[market_ids[0]]
        bids, asks = book.levels(count)
        pd, ts = book.price_decimals, book.ts_ns // 1_000_000_000
        return {
            market_ids[0]: {
                "asks": [[f"{p:.{pd}f}", f"{s:.{LOT_DECIMALS}f}", ts] for p, s in asks],
                "bids": [[f"{p:.{pd}f}", f"{s:.{LOT_DECIMALS}f}", ts] for p, s in bids],
            }
        }

    def _day(self, venue: SimVenue, market_id: str) -> dict[str, float]:
        """24 h statistics from the deterministic hourly candles, cached for the hour (the last price is live)."""
        now_ms = time.time_ns() // 1_000_000
        hour = now_ms // 3_600_000
        cached = self._day_stats.get(market_id)
        if cached is None or cached[0] != hour:
            book = venue.books_by_market_id[market_id]
            current = hour * 3_600_000
            opens = np.arange(current - 23 * 3_600_000, current + 1, 3_600_000, dtype=np.int64)
            o, h, low, c, v = _candles(venue, book, opens, 3_600_000, now_ms, aligned=True)
            midnight = int((now_ms - now_ms % 86_400_000 - int(opens[0])) // 3_600_000)  # index of 00:00 UTC
            volume = float(v.sum())
            today = slice(max(0, midnight), None)
            stats = {
                "open": float(o[max(0, midnight)]),
                "high": float(h.max()),
                "low": float(low.min()),
                "volume": volume,
                "vwap": float((v * c).sum()) / volume if volume else float(c[-1]),
                "volume_today": float(v[today].sum()),
                "trades": float(int(volume / max(book.step, 1e-12)) % 1_000_000 + 1000),
            }
            self._day_stats[market_id] = (hour, stats)
            return stats
        return cached[1]

    @staticmethod
    def _last(book: Book) -> float:
        return book.price((book.bid_top + book.ask_top) // 2)

    def _ticker(self, venue: SimVenue, request: web.Request) -> dict[str, Any]:
        out = {}
        for market_id in self._market_ids(request, required=False):
            book = venue.books_by_market_id[market_id]
            day = self._day(venue, market_id)
            pd = book.price_decimals
            bid, bid_size, ask, ask_size = book.top()
            last = self._last(book)
            low, high = min(day["low"], last), max(day["high"], last)

            def px(x: float, pd: int = pd) -> str:
                return f"{round(x, pd):.{pd}f}"

            def qty(x: float) -> str:
                return f"{x:.{LOT_DECIMALS}f}"

            trades = int(day["trades"])
            out[market_id] = {
                "a": [px(ask), str(max(1, math.ceil(ask_size))), qty(ask_size)],
                "b": [px(bid), str(max(1, math.ceil(bid_size))), qty(bid_size)],
                "c": [px(last), qty(book.step)],
                "v": [qty(day["volume_today"]), qty(day["volume"])],
                "p": [px(day["vwap"]), px(day["vwap"])],
                "t": [max(1, trades // 3), trades],
                "l": [px(low), px(low)],
                "h": [px(high), px(high)],
                "o": px(day["open"]),
            }
        return out

    def _ohlc(self, venue: SimVenue, request: web.Request) -> dict[str, Any]:
        market_ids = self._market_ids(request, required=True)
        if len(market_ids) != 1:
            raise _KrakenError("EGeneral:Invalid arguments")
        interval = self._int_arg(request, "interval", 1)
        if interval not in _INTERVALS_MIN:
            raise _KrakenError("EGeneral:Invalid arguments:interval")
        since = self._int_arg(request, "since", None)
        step_ms = interval * 60_000
        now_ms = time.time_ns() // 1_000_000
        current = now_ms - now_ms % step_ms
        first = current - (_OHLC_ROWS - 1) * step_ms
        if since is not None:  # rows strictly after `since`; the newest (unfinished) row is always there
            first = min(current, max(first, (since * 1000 // step_ms + 1) * step_ms))
        book = venue.books_by_market_id[market_ids[0]]
        opens = np.arange(first, current + 1, step_ms, dtype=np.int64)
        o, h, low, c, v = _candles(venue, book, opens, step_ms, now_ms, aligned=True)
        pd = book.price_decimals
        rows = [
            [
                int(t) // 1000,
                f"{oo:.{pd}f}",
                f"{hh:.{pd}f}",
                f"{ll:.{pd}f}",
                f"{cc:.{pd}f}",
                f"{(oo + hh + ll + cc) / 4:.{pd}f}",
                f"{round(float(vv), book.size_decimals):.{LOT_DECIMALS}f}",
                int(vv / book.step) % 10_000 + 1,
            ]
            for t, oo, hh, ll, cc, vv in zip(opens, o, h, low, c, v, strict=True)
        ]
        return {market_ids[0]: rows, "last": (current - step_ms) // 1000}

    # ------------------------------------------------------------------ errors, maintenance

    def rate_limited(self, status: int, retry_after_s: int) -> web.Response:
        text = "EGeneral:Temporary lockout" if status == 418 else "EGeneral:Too many requests"
        return web.Response(
            body=orjson.dumps({"error": [text]}),
            status=status,
            content_type="application/json",
            headers={"Retry-After": str(retry_after_s)},
        )

    def maintenance_response(self, retry_after_s: int | None) -> web.Response:
        headers = {"Retry-After": str(retry_after_s)} if retry_after_s is not None else None
        return web.Response(
            body=orjson.dumps({"error": ["EService:Unavailable"]}),
            status=503,
            content_type="application/json",
            headers=headers,
        )

    def on_maintenance(self, conn: Connection) -> None:
        conn.send(self._status(conn, "maintenance"))

    # ------------------------------------------------------------------ WebSocket v2

    @staticmethod
    def _status(conn: Connection, system: str) -> str:
        connection_id = int(stable_unit(f"{conn.venue.venue_id}|{conn.id}") * 2**63)
        entry = {"api_version": "v2", "connection_id": connection_id, "system": system, "version": _VERSION}
        return orjson.dumps({"channel": "status", "data": [entry], "type": "update"}).decode()

    def on_connect(self, conn: Connection) -> None:
        conn.state["subs"] = {}  # ("book" | "ticker", market id) -> topic channel
        conn.state["hb_at"] = time.monotonic()
        conn.state["hb_sent"] = 0
        conn.send(self._status(conn, "online"))

    @staticmethod
    def _reply(conn: Connection, req_id: Any, body: dict[str, Any]) -> None:
        stamp = _rfc3339(time.time_ns())
        body["time_in"] = body["time_out"] = stamp
        if req_id is not None:
            body["req_id"] = req_id
        conn.send(orjson.dumps(body).decode())

    def _error(self, conn: Connection, req_id: Any, method: str, text: str, symbol: str | None = None) -> None:
        body: dict[str, Any] = {"error": text, "method": method, "success": False}
        if symbol is not None:
            body["symbol"] = symbol
        self._reply(conn, req_id, body)

    def on_text(self, conn: Connection, text: str) -> None:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            self._error(conn, None, "error", "Malformed request")
            return
        if not isinstance(msg, dict):
            self._error(conn, None, "error", "Malformed request")
            return
        req_id = msg.get("req_id")
        method = msg.get("method")
        if req_id is not None and (not isinstance(req_id, int) or isinstance(req_id, bool)):
            self._error(conn, None, "error", "Malformed request")
        elif method == "ping":
            self._reply(conn, req_id, {"method": "pong"})
        elif method in ("subscribe", "unsubscribe"):
            self._on_subscription(conn, req_id, method, msg.get("params"))
        else:
            self._error(conn, req_id, "error", "Malformed request")

    def _on_subscription(self, conn: Connection, req_id: Any, method: str, params: Any) -> None:
        request = self._parse_params(params)
        if isinstance(request, str):
            self._error(conn, req_id, method, request)
            return
        channel, symbols, options = request
        for symbol in symbols:
            market_id = self._by_v2.get(symbol)
            if market_id is None:
                self._error(conn, req_id, method, f"Currency pair not supported {symbol}", symbol)
            elif method == "subscribe":
                self._subscribe(conn, req_id, channel, market_id, options)
            else:
                self._unsubscribe(conn, req_id, channel, market_id)

    @staticmethod
    def _parse_params(params: Any) -> tuple[str, list[str], dict[str, Any]] | str:
        """(channel, symbols, options) of a subscribe/unsubscribe request, or the error text."""
        if not isinstance(params, dict):
            return "Malformed request"
        channel, symbols = params.get("channel"), params.get("symbol")
        if channel not in ("book", "ticker"):
            return "Malformed request" if not isinstance(channel, str) else f"Channel {channel} not supported"
        if not isinstance(symbols, list) or not symbols or not all(isinstance(s, str) for s in symbols):
            return "Malformed request"
        snapshot = params.get("snapshot", True)
        if not isinstance(snapshot, bool):
            return "Malformed request"
        options: dict[str, Any] = {"snapshot": snapshot}
        if channel == "book":
            depth = params.get("depth", 10)
            if not isinstance(depth, int) or isinstance(depth, bool) or depth not in _DEPTHS:
                return "Subscription depth not supported"
            options["depth"] = depth
        else:
            trigger = params.get("event_trigger", "trades")
            if trigger not in ("bbo", "trades"):
                return "Malformed request"
            options["event_trigger"] = trigger
        return channel, symbols, options

    def _subscribe(self, conn: Connection, req_id: Any, channel: str, market_id: str, options: dict[str, Any]) -> None:
        venue = conn.venue
        symbol = self._pairs[market_id].v2
        subs: dict[tuple[str, str], str] = conn.state["subs"]
        if (channel, market_id) in subs:
            self._error(conn, req_id, "subscribe", "Already subscribed", symbol)
            return
        book = venue.books_by_market_id[market_id]
        view: _View | None = None
        if channel == "book":
            depth = options["depth"]
            topic = f"book-{depth}"
            view = self._views.setdefault(market_id, {}).get(depth)
            if view is None:
                view = self._views[market_id][depth] = _View(book, depth)
            view.conns.add(conn)
        else:
            topic = "ticker"
        subs[(channel, market_id)] = topic
        conn.subscribe(market_id, topic)
        self._subscribers.add(conn)
        self._listen(venue)
        result = {"channel": channel, **options, "symbol": symbol}
        self._reply(conn, req_id, {"method": "subscribe", "result": result, "success": True})
        if options["snapshot"]:
            if view is not None:
                conn.send(self._book_message("snapshot", venue, book, view, view.bids, view.asks, None))
            else:
                conn.send(self._ticker_message("snapshot", venue, market_id))

    def _unsubscribe(self, conn: Connection, req_id: Any, channel: str, market_id: str) -> None:
        symbol = self._pairs[market_id].v2
        subs: dict[tuple[str, str], str] = conn.state["subs"]
        topic = subs.pop((channel, market_id), None)
        if topic is None:
            self._error(conn, req_id, "unsubscribe", "Subscription Not Found", symbol)
            return
        conn.unsubscribe(market_id, topic)
        result: dict[str, Any] = {"channel": channel, "symbol": symbol}
        if channel == "book":
            depth = int(topic[5:])
            result["depth"] = depth
            views = self._views.get(market_id, {})
            view = views.get(depth)
            if view is not None:
                view.conns.discard(conn)
                if not view.conns:
                    del views[depth]
            if not views:
                self._views.pop(market_id, None)
        if not subs:
            self._subscribers.discard(conn)
        self._reply(conn, req_id, {"method": "unsubscribe", "result": result, "success": True})

    # ------------------------------------------------------------------ keeping the published views current

    def _listen(self, venue: SimVenue) -> None:
        """Follow the market while a book view exists, and tick heartbeats while anyone is subscribed.

        The listener is added after the server's own, so it runs after every batch was rendered: a view whose update
        was not sent (stall, skip_sequence) is moved to the book, so that update is lost to its subscribers as a
        dropped message would be, and their next checksum fails. Heartbeats use a loop timer, not a task, so a closed
        venue leaves nothing pending."""
        if self._unlisten is None and self._views:
            self._unlisten = venue.feed.add_listener(self._after_batch)
        if self._heartbeat is None and self._subscribers:
            self._heartbeat = asyncio.get_running_loop().call_later(_HEARTBEAT_TICK_S, self._heartbeats)

    def _after_batch(self, updates: Sequence[BookUpdate]) -> None:
        venue = self._venue
        if venue is None:
            return
        market_ids = venue.market_ids
        for upd in updates:
            views = self._views.get(market_ids[upd.book.row])
            if not views:
                continue
            for depth, view in list(views.items()):
                view.conns = {c for c in view.conns if not c.closed}
                if not view.conns:
                    del views[depth]
                elif view.last_id != upd.last_id:
                    view.reset(upd.book, depth)
            if not views:
                del self._views[market_ids[upd.book.row]]
        if not self._views and self._unlisten is not None:
            self._unlisten()
            self._unlisten = None

    def _heartbeats(self) -> None:
        """`{"channel":"heartbeat"}` to each subscribed connection that got nothing for a second."""
        self._heartbeat = None
        venue = self._venue
        now = time.monotonic()
        for conn in list(self._subscribers):
            if conn.closed:
                self._subscribers.discard(conn)
                continue
            state = conn.state
            if conn.sent != state["hb_sent"]:
                state["hb_at"], state["hb_sent"] = now, conn.sent
            elif now - state["hb_at"] >= _HEARTBEAT_S:
                conn.send('{"channel":"heartbeat"}')
                state["hb_at"], state["hb_sent"] = now, conn.sent
        if venue is not None and self._subscribers:
            try:
                venue.port  # noqa: B018 - raises once the venue is closed
            except RuntimeError:
                return
            self._listen(venue)

    # ------------------------------------------------------------------ rendering

    def sequenced(self, channel: str) -> bool:
        """Book streams carry no sequence number, but each checksum commits to the whole top of book, so a withheld
        update is a gap the client can detect (from the next message's checksum)."""
        return channel.startswith("book-")

    def render(self, channel: str, update: BookUpdate, venue: SimVenue) -> str | None:
        book = update.book
        market_id = venue.market_ids[book.row]
        if channel == "ticker":
            return self._ticker_message("update", venue, market_id) if update.top_changed else None
        depth = int(channel[5:])
        view = self._views.get(market_id, {}).get(depth)
        if view is None:
            return None
        top_bids = {t: book.bids[t] for t in sorted(book.bids, reverse=True)[:depth]}
        top_asks = {t: book.asks[t] for t in sorted(book.asks)[:depth]}
        bids = _side_diff(view.bids, book.bids, top_bids)
        asks = _side_diff(view.asks, book.asks, top_asks)
        view.bids, view.asks, view.last_id = top_bids, top_asks, update.last_id
        if not bids and not asks:
            return None
        bad = venue.faults.message_faults_armed() and venue.faults.take("bad_checksum", book.symbol)
        return self._book_message("update", venue, book, view, dict(bids), dict(asks), update.ts_ns, bad)

    def _book_message(
        self,
        kind: str,
        venue: SimVenue,
        book: Book,
        view: _View,
        bids: dict[int, float],
        asks: dict[int, float],
        ts_ns: int | None,
        bad_checksum: bool = False,
    ) -> str:
        """A `book` snapshot (levels: the view) or update (levels: the changes), checksummed over the view."""
        pd = book.price_decimals
        price = book.price

        def levels(side: dict[int, float], ticks: list[int]) -> tuple[str, list[tuple[str, str]]]:
            pairs = [(f"{price(t):.{pd}f}", f"{side[t]:.{LOT_DECIMALS}f}") for t in ticks]
            return ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in pairs), pairs

        bid_json, _ = levels(bids, sorted(bids, reverse=True))
        ask_json, _ = levels(asks, sorted(asks))
        _, top_bids = levels(view.bids, sorted(view.bids, reverse=True)[:_CHECKSUM_LEVELS])
        _, top_asks = levels(view.asks, sorted(view.asks)[:_CHECKSUM_LEVELS])
        checksum = book_checksum(top_asks, top_bids)
        if bad_checksum:
            checksum = (checksum + 1) % 2**32
        stamp = _rfc3339(venue.event_time_ms(book.ts_ns if ts_ns is None else ts_ns) * 1_000_000)
        symbol = self._pairs[venue.market_ids[book.row]].v2
        return (
            f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{symbol}","bids":[{bid_json}],'
            f'"asks":[{ask_json}],"checksum":{checksum},"timestamp":"{stamp}"}}]}}'
        )

    def _ticker_message(self, kind: str, venue: SimVenue, market_id: str) -> str:
        book = venue.books_by_market_id[market_id]
        day = self._day(venue, market_id)
        pd = book.price_decimals
        bid, bid_size, ask, ask_size = book.top()
        last = self._last(book)
        change = round(last - day["open"], pd)
        p, q = f"{{:.{pd}f}}", f"{{:.{LOT_DECIMALS}f}}"
        fields = [
            ("bid", p.format(bid)),
            ("bid_qty", q.format(bid_size)),
            ("ask", p.format(ask)),
            ("ask_qty", q.format(ask_size)),
            ("last", p.format(last)),
            ("volume", q.format(round(day["volume"], book.size_decimals))),
            ("vwap", p.format(round(day["vwap"], pd))),
            ("low", p.format(round(min(day["low"], last), pd))),
            ("high", p.format(round(max(day["high"], last), pd))),
            ("change", p.format(change)),
            ("change_pct", f"{change / day['open'] * 100 if day['open'] else 0.0:.2f}"),
        ]
        body = ",".join(f'"{k}":{v}' for k, v in fields)
        symbol = self._pairs[market_id].v2
        return f'{{"channel":"ticker","type":"{kind}","data":[{{"symbol":"{symbol}",{body}}}]}}'

    def malformed(self, kind: MalformedKind, channel: str, update: BookUpdate, payload: str) -> str:
        if kind == "invalid_json":
            return super().malformed(kind, channel, update, payload)
        book = update.book
        pd = book.price_decimals
        if channel == "ticker":
            good = orjson.loads(payload)
            entry = good["data"][0]
            if kind == "wrong_types":
                entry["bid"], entry["ask_qty"] = [entry["bid"]], str(entry["ask_qty"])
            elif kind == "nan_price":
                entry["bid"] = "NaN"
            else:  # crossed: best bid above best ask
                entry["bid"] = book.price(book.ask_top + 1)
            return orjson.dumps(good).decode()
        if kind == "wrong_types":
            payload = _NOT_A_LIST.sub('"bids":"not a list of levels"', payload, count=1)
            return _CHECKSUM_FIELD.sub(r'"checksum":"\1"', payload, count=1)
        size = f"{book.bids[book.bid_top]:.{LOT_DECIMALS}f}"
        bad_price = '"NaN"' if kind == "nan_price" else f"{book.price(book.ask_top + 1):.{pd}f}"
        level = f'{{"price":{bad_price},"qty":{size}}}'
        if '"bids":[]' in payload:
            return payload.replace('"bids":[]', f'"bids":[{level}]', 1)
        return payload.replace('"bids":[', f'"bids":[{level},', 1)
