"""OKX spot (API v5), served locally in its documented wire format.

Follows (fields, names, error bodies, sequence rules):

- REST: https://www.okx.com/docs-v5/en/#public-data-rest-api-get-instruments (instruments per `instType`),
  https://www.okx.com/docs-v5/en/#order-book-trading-market-data-get-order-book (`/market/books`, `sz` <= 400, and
  `/market/books-full`, `sz` <= 5000), ...#order-book-trading-market-data-get-ticker / -get-tickers,
  ...#order-book-trading-market-data-get-candlesticks / -get-candlesticks-history (`[ts,o,h,l,c,vol,volCcy,
  volCcyQuote,confirm]`, newest first, `after`/`before` exclusive, UTC+8 bars and their `utc` twins),
  ...#public-data-rest-api-get-system-time and ...#status-get-status. Every body is `{"code","msg","data"}`; errors
  use the codes and HTTP statuses of https://www.okx.com/docs-v5/en/#error-code-rest-api-public (50014 missing
  parameter 400, 51000 bad parameter 400, 51001 unknown instrument 200, 50011 rate limit 429, 50001 503).
- WebSocket: https://www.okx.com/docs-v5/en/#overview-websocket (`/ws/v5/public`; text `ping` -> `pong`; `{"op":
  "subscribe"|"unsubscribe","args":[{"channel","instId"}]}` acked per arg with `{"event","arg","connId"}`, errors
  `{"event":"error","code","msg","connId"}` with 60012 invalid request, 60018 no such channel/instrument, 60019
  invalid op, 60011 login needed; notice 64008 before a service upgrade closes the socket) and
  https://www.okx.com/docs-v5/en/#order-book-trading-market-data-ws-order-book-channel: `books` (snapshot with
  `prevSeqId` -1, then `update`s whose `prevSeqId` is the previous message's `seqId`, levels `[px, sz, "0",
  orders]`, size "0" deletes), `books5`, `bbo-tbt` (snapshots carrying `seqId` only) and
  ...#order-book-trading-market-data-ws-tickers-channel (`tickers`).
- Checksum (same page, "Checksum"): CRC32, as a signed 32-bit integer, of the best 25 bids and asks of the book after
  the message, as `bid_px:bid_sz:ask_px:ask_sz:...` alternately, a side's missing levels skipped, using the strings
  as sent. `venue.faults.take("bad_checksum", symbol)` corrupts it.
- Sequence exceptions (same page, "Sequence ID"), FAULTS M5: a book that has not changed for a while gets a
  keep-alive update with no levels and `prevSeqId == seqId ==` the last sent `seqId`; after maintenance the numbering
  may restart: one update with `seqId < prevSeqId` (its `prevSeqId` still the last sent `seqId`), then the chain goes
  on from there. Neither is a gap; only `prevSeqId != last seqId` is.

What the real client asks for (ccxt 4.5.90 `okx`, no keys): `load_markets` -> `GET /api/v5/public/instruments` with
`instType` SPOT, FUTURES, SWAP and OPTION (the last once per `uly` BTC-USD, ETH-USD; a spot venue answers all but SPOT
with no instruments); `fetch_order_book` -> `/market/books?sz=100` (`books-full` above 400); `fetch_ticker(s)` ->
`/market/ticker`, `/market/tickers?instType=SPOT`; `fetch_ohlcv` -> `/market/candles` (`history-candles` for starts
older than 1440 bars); `fetch_time` / `fetch_status` -> `/public/time`, `/system/status`. `watch_order_book` ->
`/ws/v5/public` + subscribe `books` (ccxt keeps the `seqId` chain itself and raises InvalidNonce on a break, then
unsubscribes and subscribes again for a fresh snapshot; it does not verify the checksum); `watch_bids_asks` ->
`bbo-tbt`; `watch_ticker(s)` -> `tickers`. ccxt sends a text `ping` every 18 s.

Deviations, on purpose:
- OKX fixed the `books` checksum to 0 in production on 2026-06-23 (help centre notice "OKX Order Book Channels
  Checksum Field Deprecation"); this venue sends the documented CRC32 by default so checksum faults can be tested,
  and sends 0 like production with `OkxProtocol(checksum=False)`.
- Keep-alives come after `keepalive_after_s` without a change (OKX: "around 60 seconds"; default 60), checked
  whenever the venue renders anything, so a venue whose market is stopped sends none by itself;
  `send_keepalives()` sends them now. `books5` / `bbo-tbt` get no keep-alive resend.
- A sequence restart happens when maintenance starts with sockets open (`on_maintenance`) or on `reset_sequences()`;
  seqIds then count from 0 again, from the next update on (clients that reconnect after maintenance mostly see it as
  a snapshot with a lower `seqId`).
- A subscribe with one bad arg is refused whole (nothing half-applied); `books-l2-tbt` / `books50-l2-tbt` need a
  login this venue does not offer (60011); `/ws/v5/business` and `/private` are not served. No 30-s idle disconnect.
- OKX documents no Retry-After and no IP ban status: the rate-limit answers carry the switchboard's Retry-After, and
  its escalation to 418 gets the same 50011 body.
- Every stream updates at the market's pace; the book has the market's depth (20+ levels), so `sz=400` returns what
  there is. Candles are the deterministic series of `arb.sim.venues.binance._candles`; `1M`/`3M` bars are 30/90 days.

Private trading (orders, fills, balances; real OK-ACCESS-* signature, timestamp and passphrase checks) is served by
`arb.sim.venues.okx_trading` over the venue's `SimVenue.trading` core (`arb.sim.trading`); orders are checked against
the `tickSz` / `lotSz` / `minSz` the instruments list shows.

Any venue id can be served by this module with its own symbols; market ids are `BASE-QUOTE` currency ids, with
ccxt's `commonCurrencies` for okx reversed (`AET` -> `AE`).
"""

from __future__ import annotations

import re
import time
import zlib
from typing import TYPE_CHECKING, Any, ClassVar, Final

import numpy as np
import orjson
from aiohttp import web

from arb.sim.faults import MalformedKind
from arb.sim.market import stable_unit
from arb.sim.server import Connection, Protocol, SimVenue, add_get_routes
from arb.sim.venues.binance import _candles
from arb.sim.venues.okx_trading import OkxTrading

if TYPE_CHECKING:
    from arb.sim.market import Book, BookUpdate

DOCS: Final = (
    "https://www.okx.com/docs-v5/en/#public-data-rest-api-get-instruments",
    "https://www.okx.com/docs-v5/en/#order-book-trading-market-data-get-order-book",
    "https://www.okx.com/docs-v5/en/#order-book-trading-market-data-ws-order-book-channel",
    "https://www.okx.com/docs-v5/en/#error-code-rest-api-public",
    "https://www.okx.com/docs-v5/en/#error-code-websocket-public",
)

_ASSET_IDS: Final = {"AET": "AE"}
"""Unified currency code -> OKX currency id, where ccxt renames (its `commonCurrencies` for okx, reversed)."""

_H: Final = 3_600_000
_D: Final = 24 * _H
_BARS_MS: Final[dict[str, int]] = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1H": _H,
    "2H": 2 * _H,
    "4H": 4 * _H,
    "6H": 6 * _H,
    "12H": 12 * _H,
    "1D": _D,
    "2D": 2 * _D,
    "3D": 3 * _D,
    "1W": 7 * _D,
    "1M": 30 * _D,  # the sim keeps no calendar
    "3M": 90 * _D,
}
_HK_OFFSET_MS: Final = -8 * _H
"""Bars of 6H and up open at 00:00 UTC+8 unless the bar name ends in `utc`."""
_MONDAY_MS: Final = 4 * _D
"""1970-01-05, the first Monday after the epoch: weekly bars open on Mondays."""
_MAX_CANDLE_SPAN: Final = 200_000
"""Most bars between the requested ones and now that candles will synthesise (older requests get [])."""

_BOOK_DEPTH: Final = 400
_CHECKSUM_LEVELS: Final = 25
_CHANNELS: Final = frozenset({"books", "books5", "bbo-tbt", "tickers"})
_LOGIN_CHANNELS: Final = frozenset({"books-l2-tbt", "books50-l2-tbt"})
_INST_TYPES: Final = frozenset({"SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION"})
_ID_RE: Final = re.compile(r"^[A-Za-z0-9]{1,32}$")
_SEQ_ORIGIN: Final = 10_000_000_000
_DAY_STATS_TTL_S: Final = 1.0
_LIST_TIME: Final = "1548133413000"


def _fmt(x: float, decimals: int) -> str:
    """A number as OKX writes it: fixed point, no trailing zeros (`65000.1`, `65000`, `0.00012`)."""
    s = f"{x:.{decimals}f}"
    return s.rstrip("0").rstrip(".") if "." in s else s


def _crc32_signed(text: str) -> int:
    value = zlib.crc32(text.encode())
    return value - (1 << 32) if value >= 1 << 31 else value


def _corrupt(checksum: int) -> int:
    """A different, non-zero signed 32-bit checksum (0 means "no checksum" since OKX deprecated the field)."""
    bad = checksum ^ 0x5A5A5A5A
    return bad or 1


def _error_body(code: str, msg: str) -> dict[str, Any]:
    return {"code": code, "msg": msg, "data": []}


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(payload), status=status, content_type="application/json")


def _ok(data: list[Any]) -> web.Response:
    return _json({"code": "0", "msg": "", "data": data})


class _BadRequest(Exception):
    def __init__(self, code: str, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


def _missing(name: str) -> _BadRequest:
    return _BadRequest("50014", f"Parameter {name} can not be empty.")


def _bad_param(name: str) -> _BadRequest:
    return _BadRequest("51000", f"Parameter {name} error")


class _Seq:
    """One book's `seqId` numbering and what its `books` stream last carried.

    `seqId = update_id - base`, with `before` for update ids below `switch` and `after` from it on: a restart
    (`reset`) takes effect with the next update, whose `prevSeqId` is still in the old numbering.
    """

    __slots__ = ("after", "before", "sent_at", "sent_id", "switch")

    def __init__(self, origin: int, update_id: int, now: float) -> None:
        self.before = self.after = -origin
        self.switch = 0
        self.sent_id = update_id
        self.sent_at = now

    def seq(self, update_id: int) -> int:
        return update_id - (self.after if update_id >= self.switch else self.before)

    def reset(self, update_id: int) -> None:
        """Restart the numbering at 0 with the update after `update_id` (the book's current id)."""
        self.before = self.after if update_id >= self.switch else self.before
        self.switch = self.after = update_id + 1


class OkxProtocol(Protocol):
    """OKX spot market data, REST and WebSocket. See the module docstring for sources and deviations."""

    name: ClassVar[str] = "okx"
    ws_paths: ClassVar[tuple[str, ...]] = ("/ws/v5/public",)
    maintenance_exempt: ClassVar[frozenset[str]] = frozenset({"/api/v5/system/status"})

    def __init__(self, *, checksum: bool = True, keepalive_after_s: float = 60.0) -> None:
        if not keepalive_after_s > 0:
            raise ValueError("keepalive_after_s must be > 0")
        self.checksum = checksum
        self.keepalive_after_s = keepalive_after_s
        self._seqs: dict[tuple[str, int], _Seq] = {}
        self._next_keepalive_scan: dict[str, float] = {}
        self._day_stats: dict[tuple[str, int], tuple[float, tuple[float, float, float, float, float]]] = {}
        self._maintenance_since: dict[str, float] = {}
        self.trading = OkxTrading()
        """The signed spot trading endpoints (orders, fills, balances) over the venue's `SimVenue.trading` core."""

    def market_id(self, symbol: str) -> str:
        base, sep, quote = symbol.partition("/")
        if not sep or not base or not quote or ":" in quote:
            raise ValueError(f"okx spot lists spot symbols like BTC/USDT only, got {symbol!r}")
        return f"{_ASSET_IDS.get(base, base)}-{_ASSET_IDS.get(quote, quote)}"

    # ------------------------------------------------------------------ sequence ids (public for tests and tools)

    def _seq(self, venue: SimVenue, book: Book) -> _Seq:
        key = (venue.venue_id, book.row)
        st = self._seqs.get(key)
        if st is None:
            origin = _SEQ_ORIGIN + int(stable_unit(f"{venue.venue_id}|{book.symbol}|seq") * _SEQ_ORIGIN)
            st = self._seqs[key] = _Seq(origin, book.update_id, time.monotonic())
        return st

    def seq_id(self, venue: SimVenue, symbol: str) -> int:
        """The `seqId` of `symbol`'s book as it is now (what a snapshot taken now would carry)."""
        book = venue.book_for_symbol(symbol)
        return self._seq(venue, book).seq(book.update_id)

    def reset_sequences(self, venue: SimVenue, symbol: str | None = None) -> None:
        """Restart the `seqId` numbering (of `symbol`'s book, or of all): the next update has `seqId < prevSeqId`."""
        books = venue.feed.books if symbol is None else [venue.book_for_symbol(symbol)]
        for book in books:
            self._seq(venue, book).reset(book.update_id)

    def send_keepalives(self, venue: SimVenue, symbol: str | None = None, *, idle_s: float = 0.0) -> int:
        """Send every `books` subscriber of an idle book (of `symbol`, or of any) a keep-alive now; returns how many.

        A book is idle when its stream has carried its latest update and nothing for `idle_s`; a book with an update
        not yet sent (or withheld by `skip_sequence`) gets none, so a keep-alive never claims a state it skipped.
        """
        now = time.monotonic()
        subscribers: dict[str, list[Connection]] = {}
        for conn in venue.connections:
            for market_id, channel in conn.topics:
                if channel == "books":
                    subscribers.setdefault(market_id, []).append(conn)
        sent = 0
        for market_id, conns in subscribers.items():
            book = venue.books_by_market_id[market_id]
            if symbol is not None and book.symbol != symbol:
                continue
            st = self._seq(venue, book)
            if st.sent_id != book.update_id or now - st.sent_at < idle_s:
                continue
            seq = st.seq(book.update_id)
            payload = self._books_message(
                market_id, "update", "[]", "[]", venue.now_ms(), self._checksum_of(book), seq, seq
            )
            for conn in conns:
                conn.send(payload)
            st.sent_at = now
            sent += len(conns)
        return sent

    def _maybe_keepalives(self, venue: SimVenue) -> None:
        now = time.monotonic()
        if now < self._next_keepalive_scan.get(venue.venue_id, 0.0):
            return
        self._next_keepalive_scan[venue.venue_id] = now + self.keepalive_after_s / 4
        self.send_keepalives(venue, idle_s=self.keepalive_after_s)

    # ------------------------------------------------------------------ REST

    def install(self, venue: SimVenue, app: web.Application) -> None:
        routes: dict[str, Any] = {
            "/api/v5/public/time": lambda r: _ok([{"ts": str(time.time_ns() // 1_000_000)}]),
            "/api/v5/system/status": lambda r: self._status(venue),
            "/api/v5/public/instruments": lambda r: self._instruments(venue, r),
            "/api/v5/market/books": lambda r: self._books(venue, r, max_sz=_BOOK_DEPTH),
            "/api/v5/market/books-full": lambda r: self._books(venue, r, max_sz=5000),
            "/api/v5/market/ticker": lambda r: self._ticker(venue, r),
            "/api/v5/market/tickers": lambda r: self._tickers(venue, r),
            "/api/v5/market/candles": lambda r: self._candles(venue, r, history=False),
            "/api/v5/market/history-candles": lambda r: self._candles(venue, r, history=True),
        }
        add_get_routes(app, routes, refused=_BadRequest, error=lambda e: _json(_error_body(e.code, e.msg), e.status))
        self.trading.install(venue, app, market_id=self.market_id, rate_limited=self.rate_limited)

    def _status(self, venue: SimVenue) -> web.Response:
        if not venue.faults.in_maintenance():
            self._maintenance_since.pop(venue.venue_id, None)
            return _ok([])
        now_ms = time.time_ns() // 1_000_000
        begin = self._maintenance_since.setdefault(venue.venue_id, now_ms)
        left = venue.faults.maintenance_retry_after()
        return _ok(
            [
                {
                    "title": "Spot System Upgrade",
                    "state": "ongoing",
                    "begin": str(int(begin)),
                    "end": "" if left is None else str(now_ms + left * 1000),
                    "preOpenBegin": "",
                    "href": "",
                    "serviceType": "1",
                    "system": "unified",
                    "scheDesc": "",
                    "maintType": "1",
                    "env": "1",
                }
            ]
        )

    @staticmethod
    def _inst_id(venue: SimVenue, request: web.Request) -> Book:
        inst_id = request.query.get("instId")
        if not inst_id:
            raise _missing("instId")
        book = venue.book(inst_id)
        if book is None:
            raise _BadRequest("51001", "Instrument ID, Instrument ID code or Spread ID doesn't exist.", 200)
        return book

    @staticmethod
    def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
        """An integer parameter in lo..hi (values above `hi` are capped, as OKX does for `limit`)."""
        raw = request.query.get(name)
        if raw is None or raw == "":
            return default
        if not raw.isdigit() or len(raw) > 20 or int(raw) < lo:
            raise _bad_param(name)
        return min(int(raw), hi)

    @staticmethod
    def _ms_param(request: web.Request, name: str) -> int | None:
        raw = request.query.get(name)
        if raw is None or raw == "":
            return None
        if not raw.isdigit() or len(raw) > 20:
            raise _bad_param(name)
        return int(raw)

    def _instrument(self, book: Book, code: int) -> dict[str, Any]:
        base, _, quote = book.symbol.partition("/")
        base_id, quote_id = _ASSET_IDS.get(base, base), _ASSET_IDS.get(quote, quote)
        return {
            "instType": "SPOT",
            "instId": f"{base_id}-{quote_id}",
            "instIdCode": code,
            "uly": "",
            "instFamily": "",
            "category": "1",
            "baseCcy": base_id,
            "quoteCcy": quote_id,
            "settleCcy": "",
            "ctVal": "",
            "ctMult": "",
            "ctValCcy": "",
            "optType": "",
            "stk": "",
            "listTime": _LIST_TIME,
            "contTdSwTime": _LIST_TIME,
            "auctionEndTime": "",
            "openType": "",
            "expTime": "",
            "lever": "10",
            "tickSz": _fmt(book.tick, book.price_decimals),
            "lotSz": _fmt(book.step, book.size_decimals),
            "minSz": _fmt(book.step, book.size_decimals),
            "ctType": "",
            "alias": "",
            "state": "live",
            "ruleType": "normal",
            "maxLmtSz": "9999999999",
            "maxMktSz": "1000000",
            "maxLmtAmt": "20000000",
            "maxMktAmt": "1000000",
            "maxTwapSz": "9999999999",
            "maxIcebergSz": "9999999999",
            "maxTriggerSz": "9999999999",
            "maxStopSz": "1000000",
            "futureSettlement": False,
            "tradeQuoteCcyList": [quote_id],
        }

    def _instruments(self, venue: SimVenue, request: web.Request) -> web.Response:
        q = request.query
        inst_type = q.get("instType")
        if not inst_type:
            raise _missing("instType")
        if inst_type not in _INST_TYPES:
            raise _bad_param("instType")
        if inst_type == "OPTION" and not (q.get("uly") or q.get("instFamily")):
            raise _BadRequest("50015", "Either parameter uly or instFamily is required")
        if inst_type != "SPOT":
            return _ok([])  # a spot venue: no margin pairs, futures, swaps or options
        inst_id = q.get("instId")
        books = venue.feed.books if not inst_id else [b for b in [venue.book(inst_id)] if b is not None]
        return _ok([self._instrument(b, 100_000 + b.row) for b in books])

    def _level(self, book: Book, tick: int, size: float) -> str:
        if size == 0.0:
            return f'["{_fmt(book.price(tick), book.price_decimals)}","0","0","0"]'
        orders = 1 + (tick + int(size / book.step)) % 9
        return f'["{_fmt(book.price(tick), book.price_decimals)}","{_fmt(size, book.size_decimals)}","0","{orders}"]'

    def _side_json(self, book: Book, ticks: list[int], side: dict[int, float]) -> str:
        return "[" + ",".join(self._level(book, t, side[t]) for t in ticks) + "]"

    def _top_ticks(self, book: Book, n: int) -> tuple[list[int], list[int]]:
        return sorted(book.bids, reverse=True)[:n], sorted(book.asks)[:n]

    def _books(self, venue: SimVenue, request: web.Request, max_sz: int) -> web.Response:
        book = self._inst_id(venue, request)
        sz = self._int_param(request, "sz", 1, 1, max_sz)
        bids, asks = self._top_ticks(book, sz)
        body = (
            f'{{"code":"0","msg":"","data":[{{"asks":{self._side_json(book, asks, book.asks)},'
            f'"bids":{self._side_json(book, bids, book.bids)},"ts":"{venue.event_time_ms(book.ts_ns)}",'
            f'"seqId":{self._seq(venue, book).seq(book.update_id)}}}]}}'
        )
        return web.Response(text=body, content_type="application/json")

    def _day(self, venue: SimVenue, book: Book) -> tuple[float, float, float, float, float]:
        """(open, high, low, base volume, quote volume) of the last 24 h, recomputed at most once a second."""
        key = (venue.venue_id, book.row)
        now = time.monotonic()
        cached = self._day_stats.get(key)
        if cached is not None and now - cached[0] < _DAY_STATS_TTL_S:
            return cached[1]
        now_ms = time.time_ns() // 1_000_000
        opens = np.arange(24, dtype=np.int64) * _H + (now_ms - 24 * _H)
        o, h, low, c, v = _candles(venue, book, opens, _H, now_ms, aligned=False)
        stats = (float(o[0]), float(h.max()), float(low.min()), float(v.sum()), float((v * c).sum()))
        self._day_stats[key] = (now, stats)
        return stats

    @staticmethod
    def _last_price(book: Book) -> float:
        return book.price((book.bid_top + book.ask_top) // 2)

    def _ticker_row(self, venue: SimVenue, book: Book, ts_ms: int) -> dict[str, Any]:
        open_, high, low, volume, quote_volume = self._day(venue, book)
        pd, sd = book.price_decimals, book.size_decimals
        last = self._last_price(book)
        open_ = round(open_, pd)
        bid, bid_size, ask, ask_size = book.top()
        return {
            "instType": "SPOT",
            "instId": venue.market_ids[book.row],
            "last": _fmt(last, pd),
            "lastSz": _fmt(bid_size, sd),
            "askPx": _fmt(ask, pd),
            "askSz": _fmt(ask_size, sd),
            "bidPx": _fmt(bid, pd),
            "bidSz": _fmt(bid_size, sd),
            "open24h": _fmt(open_, pd),
            "high24h": _fmt(round(max(high, last, open_), pd), pd),
            "low24h": _fmt(round(min(low, last, open_), pd), pd),
            "volCcy24h": _fmt(round(quote_volume, 8), 8),
            "vol24h": _fmt(round(volume, sd), sd),
            "ts": str(ts_ms),
            "sodUtc0": _fmt(open_, pd),
            "sodUtc8": _fmt(open_, pd),
        }

    def _ticker(self, venue: SimVenue, request: web.Request) -> web.Response:
        book = self._inst_id(venue, request)
        return _ok([self._ticker_row(venue, book, venue.event_time_ms(book.ts_ns))])

    def _tickers(self, venue: SimVenue, request: web.Request) -> web.Response:
        inst_type = request.query.get("instType")
        if not inst_type:
            raise _missing("instType")
        if inst_type not in _INST_TYPES:
            raise _bad_param("instType")
        if inst_type != "SPOT":
            return _ok([])
        return _ok([self._ticker_row(venue, b, venue.event_time_ms(b.ts_ns)) for b in venue.feed.books])

    @staticmethod
    def _bar(bar: str) -> tuple[int, int]:
        """(length, alignment offset) in ms of an OKX bar name; `_bad_param` if it is not one."""
        utc = bar.endswith("utc")
        name = bar[:-3] if utc else bar
        step = _BARS_MS.get(name)
        if step is None or (utc and step < 6 * _H):
            raise _bad_param("bar")
        offset = 0 if utc or step < 6 * _H else _HK_OFFSET_MS
        return step, offset + (_MONDAY_MS if name == "1W" else 0)

    def _candles(self, venue: SimVenue, request: web.Request, *, history: bool) -> web.Response:
        book = self._inst_id(venue, request)
        step, off = self._bar(request.query.get("bar") or "1m")
        limit = self._int_param(request, "limit", 100, 1, 300)
        after, before = self._ms_param(request, "after"), self._ms_param(request, "before")
        now_ms = time.time_ns() // 1_000_000
        current = now_ms - (now_ms - off) % step
        last = current if after is None else min(current, (after - 1) - (after - 1 - off) % step)
        first = last - (limit - 1) * step
        if before is not None:
            first = max(first, (before + 1) + (off - before - 1) % step)
        if not history:
            first = max(first, current - 1439 * step)  # /candles serves the latest 1440 bars only
        if last < first or (current - first) // step > _MAX_CANDLE_SPAN:
            return _ok([])
        opens = np.arange(first, last + 1, step, dtype=np.int64)
        o, h, low, c, v = _candles(venue, book, opens - off, step, now_ms - off, aligned=True)
        pd, sd = book.price_decimals, book.size_decimals
        rows = [
            [
                str(int(t)),
                _fmt(round(float(oo), pd), pd),
                _fmt(round(float(hh), pd), pd),
                _fmt(round(float(ll), pd), pd),
                _fmt(round(float(cc), pd), pd),
                _fmt(round(float(vv), sd), sd),
                _fmt(float(vv * cc), 8),
                _fmt(float(vv * cc), 8),
                "0" if int(t) == current else "1",
            ]
            for t, oo, hh, ll, cc, vv in zip(opens, o, h, low, c, v, strict=True)
        ]
        rows.reverse()  # newest first
        return _ok(rows)

    # ------------------------------------------------------------------ errors, maintenance

    def rate_limited(self, status: int, retry_after_s: int) -> web.Response:
        response = _json(_error_body("50011", "Too Many Requests"), status)
        response.headers["Retry-After"] = str(retry_after_s)
        return response

    def maintenance_response(self, retry_after_s: int | None) -> web.Response:
        # 50001 is what ccxt's okx maps to OnMaintenance (`exceptions.exact`).
        response = _json(_error_body("50001", "Service temporarily unavailable. Please try again later."), 503)
        if retry_after_s is not None:
            response.headers["Retry-After"] = str(retry_after_s)
        return response

    def on_maintenance(self, conn: Connection) -> None:
        self.reset_sequences(conn.venue)  # idempotent until the next update: one restart per maintenance
        notice = {
            "event": "notice",
            "code": "64008",
            "msg": "The connection will soon be closed for a service upgrade. Please reconnect.",
            "connId": conn.state["connId"],
        }
        conn.send(orjson.dumps(notice).decode())

    # ------------------------------------------------------------------ WebSocket

    def on_connect(self, conn: Connection) -> None:
        conn.state["connId"] = f"{(conn.id * 0x9E3779B1 + 0x7F4A7C15) & 0xFFFFFFFF:08x}"

    @staticmethod
    def _ws_error(conn: Connection, req_id: str | None, code: str, msg: str) -> None:
        body: dict[str, Any] = {} if req_id is None else {"id": req_id}
        body |= {"event": "error", "code": code, "msg": msg, "connId": conn.state["connId"]}
        conn.send(orjson.dumps(body).decode())

    def on_text(self, conn: Connection, text: str) -> None:
        if text == "ping":
            conn.send("pong")
            return
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            msg = None
        if not isinstance(msg, dict):
            self._ws_error(conn, None, "60012", f"Invalid request: {text}")
            return
        req_id = msg.get("id")
        if req_id is not None and not (isinstance(req_id, str) and _ID_RE.match(req_id)):
            self._ws_error(conn, None, "60012", f"Invalid request: {text}")
            return
        op = msg.get("op")
        if not isinstance(op, str):
            self._ws_error(conn, req_id, "60012", f"Invalid request: {text}")
        elif op not in ("subscribe", "unsubscribe"):
            self._ws_error(conn, req_id, "60019", f"Invalid op: op={op}")
        else:
            topics = self._topics(conn, req_id, text, msg.get("args"))
            if topics is not None:
                self._on_subscribe(conn, req_id, op, topics)

    def _topics(self, conn: Connection, req_id: str | None, text: str, args: Any) -> list[tuple[str, str]] | None:
        """The (channel, instId) of every arg, or None after answering the first bad one with its error."""
        if not isinstance(args, list) or not args or not all(isinstance(a, dict) for a in args):
            self._ws_error(conn, req_id, "60012", f"Invalid request: {text}")
            return None
        topics = []
        for arg in args:
            channel, inst_id = arg.get("channel"), arg.get("instId")
            if not isinstance(channel, str) or not isinstance(inst_id, str):
                self._ws_error(conn, req_id, "60012", f"Invalid request: {text}")
                return None
            if channel in _LOGIN_CHANNELS:
                self._ws_error(conn, req_id, "60011", "Please log in")
                return None
            if channel not in _CHANNELS or conn.venue.book(inst_id) is None:
                self._ws_error(
                    conn,
                    req_id,
                    "60018",
                    f"Wrong URL or channel:{channel},instId:{inst_id} doesn't exist. "
                    "Please use the correct URL, channel and parameters referring to API document.",
                )
                return None
            topics.append((channel, inst_id))
        return topics

    def _on_subscribe(self, conn: Connection, req_id: str | None, op: str, topics: list[tuple[str, str]]) -> None:
        for channel, inst_id in topics:
            ack: dict[str, Any] = {} if req_id is None else {"id": req_id}
            ack |= {"event": op, "arg": {"channel": channel, "instId": inst_id}, "connId": conn.state["connId"]}
            conn.send(orjson.dumps(ack).decode())
        for channel, inst_id in topics:
            if op == "unsubscribe":
                conn.unsubscribe(inst_id, channel)
                continue
            conn.subscribe(inst_id, channel)
            first = self._initial(conn.venue, channel, inst_id)
            conn.send(first)

    def _initial(self, venue: SimVenue, channel: str, inst_id: str) -> str:
        """The first push of a subscription: a `books` snapshot, or the current state of the other channels."""
        book = venue.books_by_market_id[inst_id]
        st = self._seq(venue, book)
        seq = st.seq(book.update_id)
        ts = venue.event_time_ms(book.ts_ns)
        if channel == "books":
            if book.update_id > st.sent_id:
                st.sent_id = book.update_id
            st.sent_at = time.monotonic()
            bids, asks = self._top_ticks(book, _BOOK_DEPTH)
            return self._books_message(
                inst_id,
                "snapshot",
                self._side_json(book, asks, book.asks),
                self._side_json(book, bids, book.bids),
                ts,
                self._checksum_of(book),
                -1,
                seq,
            )
        if channel == "tickers":
            return self._tickers_message(venue, book, inst_id, ts)
        return self._snapshot_message(channel, book, inst_id, ts, seq, 1 if channel == "bbo-tbt" else 5)

    # ------------------------------------------------------------------ rendering

    def sequenced(self, channel: str) -> bool:
        return channel == "books"

    @staticmethod
    def _books_message(
        inst_id: str, action: str, asks: str, bids: str, ts: int, checksum: int, prev: int, seq: int
    ) -> str:
        return (
            f'{{"arg":{{"channel":"books","instId":"{inst_id}"}},"action":"{action}","data":[{{"asks":{asks},'
            f'"bids":{bids},"ts":"{ts}","checksum":{checksum},"prevSeqId":{prev},"seqId":{seq}}}]}}'
        )

    def _snapshot_message(self, channel: str, book: Book, inst_id: str, ts: int, seq: int, depth: int) -> str:
        bids, asks = self._top_ticks(book, depth)
        extra = f'"instId":"{inst_id}",' if channel == "books5" else ""
        return (
            f'{{"arg":{{"channel":"{channel}","instId":"{inst_id}"}},"data":[{{'
            f'"asks":{self._side_json(book, asks, book.asks)},"bids":{self._side_json(book, bids, book.bids)},'
            f'{extra}"ts":"{ts}","seqId":{seq}}}]}}'
        )

    def _tickers_message(self, venue: SimVenue, book: Book, inst_id: str, ts: int) -> str:
        row = orjson.dumps(self._ticker_row(venue, book, ts)).decode()
        return f'{{"arg":{{"channel":"tickers","instId":"{inst_id}"}},"data":[{row}]}}'

    def _checksum_of(self, book: Book) -> int:
        """The documented CRC32 of the book's best 25 levels a side (0 when this venue sends none)."""
        if not self.checksum:
            return 0
        bids, asks = self._top_ticks(book, _CHECKSUM_LEVELS)
        pd, sd = book.price_decimals, book.size_decimals
        parts: list[str] = []
        for i in range(max(len(bids), len(asks))):
            if i < len(bids):
                parts += (_fmt(book.price(bids[i]), pd), _fmt(book.bids[bids[i]], sd))
            if i < len(asks):
                parts += (_fmt(book.price(asks[i]), pd), _fmt(book.asks[asks[i]], sd))
        return _crc32_signed(":".join(parts))

    @staticmethod
    def _top5_changed(update: BookUpdate) -> bool:
        """Whether the update touched the best 5 levels of a side (added, resized or removed one of them)."""
        book = update.book
        bids, asks = sorted(book.bids, reverse=True)[:5], sorted(book.asks)[:5]
        bid_floor = bids[-1] if len(bids) == 5 else -1
        ask_ceiling = asks[-1] if len(asks) == 5 else 1 << 62
        return any(t >= bid_floor for t, _ in update.bids) or any(t <= ask_ceiling for t, _ in update.asks)

    def render(self, channel: str, update: BookUpdate, venue: SimVenue) -> str | None:
        self._maybe_keepalives(venue)
        book = update.book
        inst_id = venue.market_ids[book.row]
        if channel == "books":
            return self._render_books(update, venue, inst_id)
        ts = venue.event_time_ms(update.ts_ns)
        if channel == "tickers":
            return self._tickers_message(venue, book, inst_id, ts) if update.top_changed else None
        if channel == "bbo-tbt" and not update.top_changed:
            return None
        if channel == "books5" and not self._top5_changed(update):
            return None
        seq = self._seq(venue, book).seq(update.last_id)
        return self._snapshot_message(channel, book, inst_id, ts, seq, 1 if channel == "bbo-tbt" else 5)

    def _render_books(self, update: BookUpdate, venue: SimVenue, inst_id: str) -> str:
        book = update.book
        st = self._seq(venue, book)
        prev, seq = st.seq(update.first_id - 1), st.seq(update.last_id)
        st.sent_id = update.last_id
        st.sent_at = time.monotonic()
        checksum = self._checksum_of(book)
        if checksum and venue.faults.message_faults_armed() and venue.faults.take("bad_checksum", book.symbol):
            checksum = _corrupt(checksum)
        bids = sorted(update.bids, key=lambda c: -c[0])
        asks = sorted(update.asks)
        return self._books_message(
            inst_id,
            "update",
            "[" + ",".join(self._level(book, t, s) for t, s in asks) + "]",
            "[" + ",".join(self._level(book, t, s) for t, s in bids) + "]",
            venue.event_time_ms(update.ts_ns),
            checksum,
            prev,
            seq,
        )

    def malformed(self, kind: MalformedKind, channel: str, update: BookUpdate, payload: str) -> str:
        if kind == "invalid_json":
            return super().malformed(kind, channel, update, payload)
        good = orjson.loads(payload)
        data = good["data"][0]
        book = update.book
        crossing = _fmt(book.price(book.ask_top + 1), book.price_decimals)
        size = _fmt(book.bids[book.bid_top], book.size_decimals)
        if channel == "tickers":
            if kind == "wrong_types":
                data["bidPx"], data["ts"] = [data["bidPx"]], int(data["ts"])
            else:
                data["bidPx"] = "NaN" if kind == "nan_price" else crossing
        elif kind == "wrong_types":
            data["bids"] = "not a list of levels"
            if "seqId" in data:
                data["seqId"] = str(data["seqId"])
        else:
            price = "NaN" if kind == "nan_price" else crossing
            data["bids"] = [[price, size, "0", "1"], *data["bids"]]
        return orjson.dumps(good).decode()
