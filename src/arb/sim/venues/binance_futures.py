"""Binance USD-M futures (linear perpetuals), served locally next to the spot API in their documented wire format.

Follows https://developers.binance.com/docs/derivatives/usds-margined-futures (market data, REST and WebSocket):

- `GET /fapi/v1/exchangeInfo` (symbols with `contractType` PERPETUAL, `marginAsset`, `deliveryDate` 4133404800000,
  filters PRICE_FILTER / LOT_SIZE / MARKET_LOT_SIZE / MIN_NOTIONAL ...), `GET /fapi/v1/depth` (`lastUpdateId`, `E`,
  `T`; limit 5/10/20/50/100/500/1000, default 500), `GET /fapi/v1/ticker/bookTicker`, `GET /fapi/v1/premiumIndex`
  (mark price and funding: `lastFundingRate`, `nextFundingTime`, `time`), `GET /fapi/v1/fundingInfo`
  (`fundingIntervalHours`), `GET /fapi/v1/ping` and `/fapi/v1/time`.
- WebSocket: `<symbol>@depth[@100ms|@250ms|@500ms]` diffs with `pu` (the previous event's `u`: the futures chain rule
  ccxt.pro checks, `pu == previous u`), `<symbol>@bookTicker` (`e`, `u`, `E`, `T`, `s`, `b`, `B`, `a`, `A`) and
  partial books `<symbol>@depth<5|10|20>`, on the routed endpoints `/public/ws[/<n>]` (depth, bookTicker) and
  `/market/ws`, raw or combined (`/public/stream?streams=`), as ccxt 4.5.90 opens them (`get_ws_url('linear')`).

What the real client asks for (ccxt `binance`, no keys): `load_markets` -> `/fapi/v1/exchangeInfo`;
`watch_order_book('BTC/USDT:USDT')` -> `/public/ws/<n>` SUBSCRIBE `btcusdt@depth@100ms`, then `/fapi/v1/depth`;
`fetch_funding_rates` -> `/fapi/v1/premiumIndex`; `fetch_funding_intervals` -> `/fapi/v1/fundingInfo`.

Deviations, on purpose: `fundingInfo` lists every perp (Binance lists only those whose interval or caps were
adjusted; the rest are 8 h), so a client never has to assume an interval; the funding rate is a seeded constant per
perp (within +-0.01 %, Binance's default being +0.01 %) until a test sets it; mark and index price are the book's mid
and the market's true price of the underlying. The perp books themselves are the market's (`arb.sim.market`: the
underlying's true price x (1 + a seeded basis)).

Funding is set from Python (`BinanceFutures.set_funding`) or over HTTP, exempt from faults like every `/_sim/`
control:

    POST /_sim/funding  {"symbol": "BTC/USDT:USDT", "rate": 0.0003}   (also "interval_h")
    GET  /_sim/funding
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import msgspec
from aiohttp import web

from arb.sim.market import stable_unit

if TYPE_CHECKING:
    from arb.sim.market import Book
    from arb.sim.server import SimVenue

DOCS: Final = "https://developers.binance.com/docs/derivatives/usds-margined-futures"
PREFIX: Final = "fapi:"
"""Internal market id of a perp in the venue (`fapi:BTCUSDT`): spot and USD-M share ids (BTCUSDT) on Binance, served
on separate hosts; locally they share one venue, so the futures namespace is kept apart by this prefix (never on the
wire)."""
PERPETUAL_DELIVERY_MS: Final = 4_133_404_800_000
"""`deliveryDate` of every Binance perpetual (2100-12-25)."""
DEFAULT_INTERVAL_H: Final = 8.0
MAX_SEEDED_RATE: Final = 0.0001
_DEPTH_LIMITS: Final = (5, 10, 20, 50, 100, 500, 1000)
_MISSING: Final = "Mandatory parameter '{}' was not sent, was empty/null, or malformed."


def wire_id(market_id: str) -> str:
    """The id Binance shows (`fapi:BTCUSDT` -> `BTCUSDT`)."""
    return market_id.removeprefix(PREFIX)


def is_perp(market_id: str) -> bool:
    return market_id.startswith(PREFIX)


@dataclass
class Funding:
    """One perp's funding: `rate` per `interval_h` hours (positive: longs pay shorts)."""

    rate: float
    interval_h: float = DEFAULT_INTERVAL_H

    def next_funding_ms(self, now_ms: int) -> int:
        """The next settlement: funding is charged at multiples of the interval from 00:00 UTC."""
        step = int(self.interval_h * 3_600_000)
        return (now_ms // step + 1) * step


class FundingChange(msgspec.Struct, forbid_unknown_fields=True):
    symbol: str
    rate: float | None = None
    interval_h: float | None = None


class FuturesRefused(Exception):
    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


class BinanceFutures:
    """The USD-M perpetuals of one Binance-format venue: REST routes and funding state (see the module docstring)."""

    def __init__(self) -> None:
        self.funding: dict[str, Funding] = {}
        """Wire id (BTCUSDT) -> funding, one per listed perp (seeded when the venue starts)."""
        self._venue: SimVenue | None = None

    def set_funding(self, symbol: str, rate: float | None = None, *, interval_h: float | None = None) -> Funding:
        """Set a perp's funding rate and/or interval; `symbol` is unified (`BTC/USDT:USDT`) or the wire id."""
        key = self._key(symbol)
        if rate is not None and not (math.isfinite(rate) and abs(rate) < 0.1):
            raise ValueError(f"rate must be a finite fraction below 0.1 in size, got {rate!r}")
        if interval_h is not None and not (math.isfinite(interval_h) and interval_h > 0):
            raise ValueError(f"interval_h must be a positive number of hours, got {interval_h!r}")
        funding = self.funding[key]
        if rate is not None:
            funding.rate = rate
        if interval_h is not None:
            funding.interval_h = interval_h
        return funding

    def _key(self, symbol: str) -> str:
        venue = self._venue
        if venue is not None and symbol in venue.feed.by_symbol:
            return wire_id(venue.protocol.market_id(symbol))
        if symbol in self.funding:
            return symbol
        raise KeyError(f"no perpetual {symbol!r} (this venue's: {', '.join(sorted(self.funding)) or 'none'})")

    # ------------------------------------------------------------------ serving

    def install(
        self,
        venue: SimVenue,
        app: web.Application,
        *,
        respond: Callable[[Any, int], web.Response],
        empty_info: Callable[[], dict[str, Any]],
        add_routes: Callable[[dict[str, Callable[[web.Request], Any]]], None],
    ) -> None:
        """Seed funding for every perp the venue lists and add the `/fapi/v1/*` routes and the `/_sim/funding`
        control. `respond(payload, weight)` builds a response in Binance's format; `add_routes` adds GET handlers
        that may raise `FuturesRefused`."""
        self._venue = venue
        for market_id, book in venue.books_by_market_id.items():
            if is_perp(market_id):
                u = stable_unit(f"{venue.venue_id}|{book.symbol}|funding")
                self.funding.setdefault(wire_id(market_id), Funding(round((2 * u - 1) * MAX_SEEDED_RATE, 8)))
        add_routes(
            {
                "/fapi/v1/ping": lambda r: respond({}, 1),
                "/fapi/v1/time": lambda r: respond({"serverTime": time.time_ns() // 1_000_000}, 1),
                "/fapi/v1/exchangeInfo": lambda r: respond(self._exchange_info(venue, empty_info()), 1),
                "/fapi/v1/depth": lambda r: self._depth(venue, r, respond),
                "/fapi/v1/ticker/bookTicker": lambda r: self._book_ticker(venue, r, respond),
                "/fapi/v1/premiumIndex": lambda r: self._premium_index(venue, r, respond),
                "/fapi/v1/fundingInfo": lambda r: respond(self._funding_info(), 1),
            }
        )

        async def post_control(request: web.Request) -> web.Response:
            try:
                change = msgspec.json.decode(await request.read(), type=FundingChange)
                funding = self.set_funding(change.symbol, change.rate, interval_h=change.interval_h)
            except (msgspec.ValidationError, msgspec.DecodeError, ValueError, KeyError) as e:
                return web.json_response({"error": str(e).strip('"')}, status=422)
            return web.json_response({"rate": funding.rate, "interval_h": funding.interval_h})

        async def get_control(request: web.Request) -> web.Response:
            return web.json_response({k: {"rate": f.rate, "interval_h": f.interval_h} for k, f in self.funding.items()})

        app.router.add_post("/_sim/funding", post_control)
        app.router.add_get("/_sim/funding", get_control)

    def _perp_ids(self, venue: SimVenue) -> list[str]:
        return [m for m in venue.market_ids if is_perp(m)]

    def _book(self, venue: SimVenue, request: web.Request, *, required: bool) -> Book | None:
        symbol = request.query.get("symbol")
        if not symbol:
            if required:
                raise FuturesRefused(-1102, _MISSING.format("symbol"))
            return None
        book = venue.book(PREFIX + symbol)
        if book is None:
            raise FuturesRefused(-1121, "Invalid symbol.")
        return book

    def _exchange_info(self, venue: SimVenue, info: dict[str, Any]) -> dict[str, Any]:
        info["assets"] = [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}]
        info["symbols"] = [self._symbol_info(venue.books_by_market_id[m], wire_id(m)) for m in self._perp_ids(venue)]
        return info

    @staticmethod
    def _symbol_info(book: Book, market_id: str) -> dict[str, Any]:
        base, _, rest = book.symbol.partition("/")
        quote, _, settle = rest.partition(":")
        tick, step = f"{book.tick:.8f}".rstrip("0").rstrip("."), f"{book.step:.8f}".rstrip("0").rstrip(".")
        return {
            "symbol": market_id,
            "pair": market_id,
            "contractType": "PERPETUAL",
            "deliveryDate": PERPETUAL_DELIVERY_MS,
            "onboardDate": 1_569_398_400_000,
            "status": "TRADING",
            "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000",
            "baseAsset": base,
            "quoteAsset": quote,
            "marginAsset": settle or quote,
            "pricePrecision": book.price_decimals,
            "quantityPrecision": book.size_decimals,
            "baseAssetPrecision": 8,
            "quotePrecision": 8,
            "underlyingType": "COIN",
            "underlyingSubType": [],
            "triggerProtect": "0.0500",
            "liquidationFee": "0.012500",
            "marketTakeBound": "0.05",
            "maxMoveOrderLimit": 10000,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "4529764", "tickSize": tick},
                {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "1000000", "stepSize": step},
                {"filterType": "MARKET_LOT_SIZE", "minQty": step, "maxQty": "120000", "stepSize": step},
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                {"filterType": "MIN_NOTIONAL", "notional": "5"},
                {
                    "filterType": "PERCENT_PRICE",
                    "multiplierUp": "1.0500",
                    "multiplierDown": "0.9500",
                    "multiplierDecimal": "4",
                },
            ],
            "orderTypes": [
                "LIMIT",
                "MARKET",
                "STOP",
                "STOP_MARKET",
                "TAKE_PROFIT",
                "TAKE_PROFIT_MARKET",
                "TRAILING_STOP_MARKET",
            ],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
        }

    def _depth(
        self, venue: SimVenue, request: web.Request, respond: Callable[[Any, int], web.Response]
    ) -> web.Response:
        book = self._book(venue, request, required=True)
        assert book is not None  # noqa: S101 - required=True raises instead
        raw = request.query.get("limit") or "500"
        if not raw.isdigit() or int(raw) not in _DEPTH_LIMITS:
            raise FuturesRefused(-1130, "Data sent for parameter 'limit' is not valid.")
        limit = int(raw)
        bids, asks = book.levels(limit)
        now_ms = venue.now_ms()
        update_id = book.update_id
        if venue.faults.take("stale_snapshot", book.symbol):
            update_id = max(0, update_id - 1000)
        weight = 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20
        return respond(
            {
                "lastUpdateId": update_id,
                "E": now_ms,
                "T": now_ms,
                "bids": [[f"{p:.8f}", f"{s:.8f}"] for p, s in bids],
                "asks": [[f"{p:.8f}", f"{s:.8f}"] for p, s in asks],
            },
            weight,
        )

    def _book_ticker(
        self, venue: SimVenue, request: web.Request, respond: Callable[[Any, int], web.Response]
    ) -> web.Response:
        one = self._book(venue, request, required=False)
        books = [one] if one is not None else [venue.books_by_market_id[m] for m in self._perp_ids(venue)]
        now_ms = venue.now_ms()
        rows = []
        for book in books:
            bid, bid_size, ask, ask_size = book.top()
            rows.append(
                {"symbol": wire_id(venue.protocol.market_id(book.symbol)), "bidPrice": f"{bid:.8f}",
                 "bidQty": f"{bid_size:.8f}", "askPrice": f"{ask:.8f}", "askQty": f"{ask_size:.8f}", "time": now_ms}
            )  # fmt: skip
        return respond(rows[0] if one is not None else rows, 2 if one is not None else 5)

    def _premium_index(
        self, venue: SimVenue, request: web.Request, respond: Callable[[Any, int], web.Response]
    ) -> web.Response:
        one = self._book(venue, request, required=False)
        books = [one] if one is not None else [venue.books_by_market_id[m] for m in self._perp_ids(venue)]
        now_ms = venue.now_ms()
        rows = [self._premium_row(venue, book, now_ms) for book in books]
        return respond(rows[0] if one is not None else rows, 1 if one is not None else 10)

    def _premium_row(self, venue: SimVenue, book: Book, now_ms: int) -> dict[str, Any]:
        market_id = wire_id(venue.protocol.market_id(book.symbol))
        funding = self.funding[market_id]
        market = venue.market
        spec = market.instrument(book.instrument)
        index = float(market.mid[market.index[spec.underlying or spec.id]])
        mark = book.price((book.bid_top + book.ask_top) // 2)
        return {
            "symbol": market_id,
            "markPrice": f"{mark:.8f}",
            "indexPrice": f"{index:.8f}",
            "estimatedSettlePrice": f"{index:.8f}",
            "lastFundingRate": f"{funding.rate:.8f}",
            "interestRate": "0.00010000",
            "nextFundingTime": funding.next_funding_ms(now_ms),
            "time": now_ms,
        }

    def _funding_info(self) -> list[dict[str, Any]]:
        return [
            {"symbol": k, "adjustedFundingRateCap": "0.02000000", "adjustedFundingRateFloor": "-0.02000000",
             "fundingIntervalHours": int(f.interval_h) if f.interval_h == int(f.interval_h) else f.interval_h,
             "disclaimer": False}
            for k, f in self.funding.items()
        ]  # fmt: skip
