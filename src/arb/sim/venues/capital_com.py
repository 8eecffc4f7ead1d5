"""Capital.com, served locally in its documented REST + WebSocket format, with sessions, market hours and faults.

Follows https://open-api.capital.com/ and https://capital.com/api-general-information:

- Session: `POST /api/v1/session` needs the `X-CAP-API-KEY` header (missing: 401 `error.null.api.key`, unknown:
  401 `error.invalid.api.key`) and `{"identifier", "password"}` (wrong: 401 `error.invalid.details`); it answers the
  account details with the tokens in the `CST` and `X-SECURITY-TOKEN` headers. Every other call needs both tokens
  (missing: 401 `error.null.client.token` / `error.null.account.token`; unknown or expired: 401
  `error.invalid.session.token`). A session lapses `session_idle_s` (600 s) after its last use; `GET /api/v1/ping`
  and streaming pings are uses. `GET|DELETE /api/v1/session`, `GET /api/v1/time`, `GET /api/v1/accounts`.
- Markets: `GET /api/v1/markets/{epic}` and `GET /api/v1/markets?epics=A,B` (at most 50) with `instrument` (incl.
  `openingHours`), `dealingRules` (`minStepDistance` = tick, `minDealSize` = `minSizeIncrement` = lot step) and
  `snapshot` (`marketStatus` TRADEABLE or CLOSED, `bid`, `offer`, `decimalPlacesFactor`).
- Prices: `GET /api/v1/prices/{epic}?resolution=&max=&from=&to=` (max 1..1000, default 10; from/to
  `YYYY-MM-DDTHH:MM:SS` UTC): deterministic bid/ask bars ending at the current price (the Binance venue's kline
  path, the current spread either side); with `hours="real"` closed hours have no bar. With `from`, the first `max`
  bars from it; without, the last `max` up to `to` (or now).
- Trading (`arb.sim.venues.capital_com_trading`): `GET|POST /api/v1/positions`, `GET|DELETE
  /api/v1/positions/{dealId}`, `GET|POST /api/v1/workingorders`, `DELETE /api/v1/workingorders/{dealId}`,
  `GET /api/v1/confirms/{dealReference}`.
- Limits, per user, by arrival time: 10 requests a second, one position/order request per 0.1 s, one session
  creation per second; over them: 429 `{"errorCode": "error.too-many.requests"}` (counted in `stats`).
- Streaming at `/connect`: `marketData.subscribe` / `marketData.unsubscribe` with `cst` and `securityToken`
  (answered `{"status": "OK", "destination": ..., "correlationId": ..., "payload": {"subscriptions": {epic:
  "PROCESSED"}}}`), `ping` (answered `{"status": "OK", "destination": "ping", ..., "payload": {}}`), and a `quote`
  message whenever a subscribed epic's top of book changes while its market is open. At most 40 epics per connection;
  a connection that sent nothing for `ws_idle_s` (600 s) is closed.

Market hours (`hours="real"`): the instrument's weekly opening hours by asset class, in UTC: FX Sunday 22:00 to
Friday 22:00; commodities and indices the same with a daily break 21:00-22:00; crypto always. `hours="always"`
keeps every market open (benchmarks, weekend demos); `set_market_status(epic, "CLOSED")` overrides either. A closed
market stops quoting, reports `marketStatus` CLOSED and rejects deals (MARKET_CLOSED).

Faults: everything `arb.sim.faults` does to any venue applies (drop, stall, malformed quotes, REST 429 / maintenance
503 with Capital.com's bodies, frozen timestamps); order faults (`/_sim/order-faults`: reject, ack_delay, ghost,
rate_limit, disconnect) apply to position and working-order requests; and session faults (FAULTS E17):
`expire_sessions()` ends every session now, `expire_after("POST /api/v1/positions")` ends the session that makes the
next such request right after it is served. Control: `POST /_sim/sessions` (`{"action": "expire"}` or
`{"action": "expire_after", "request": "POST /api/v1/positions"}`), `POST /_sim/market-status`
(`{"epic": .., "status": "CLOSED" | "TRADEABLE" | null}`), `GET /_sim/deals` (every account's positions, working
orders and confirms, for test invariants).

Deviations, on purpose: the encrypted-password login is not served; a new subscription is sent the epic's current
quote at once (if its market is open); error messages on the stream use `{"status": "FAILED", "payload":
{"errorCode": ...}}` (the documentation shows only successful messages); 4xx bodies of deal requests use local error
codes (`error.invalid.size`, `error.not-found.epic`, ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

import msgspec
import numpy as np
import orjson
from aiohttp import web

from arb.sim.faults import MalformedKind
from arb.sim.server import Connection, Protocol, SimVenue, cut_connection
from arb.sim.trading import DEFAULT_API_KEY, DisconnectFault, RateLimitFault, RejectFault, deliver
from arb.sim.venues.binance import _candles  # one deterministic candle path for every local venue
from arb.sim.venues.capital_com_trading import CfdAccount, CfdDesk, DealError, position_json, utc_text
from arb.tasks import cancel_and_wait, spawn

if TYPE_CHECKING:
    from arb.config.schema import Settings
    from arb.sim.market import Book, BookUpdate, Market, MarketConfig

log = logging.getLogger(__name__)

DOCS: Final = ("https://open-api.capital.com/", "https://capital.com/api-general-information")
DEFAULT_IDENTIFIER: Final = "local-sim@arb.invalid"
DEFAULT_PASSWORD: Final = "local-sim-password"  # noqa: S105 - a public sim credential, not a secret
API: Final = "/api/v1"
WS_PATH: Final = "/connect"
MAX_EPICS_PER_REQUEST: Final = 50
MAX_EPICS_PER_CONNECTION: Final = 40
_EPIC: Final = re.compile(r"^[A-Z0-9_.]{1,40}$")
_ENCODER: Final = msgspec.json.Encoder(decimal_format="number")
_BODY_DECODER: Final = msgspec.json.Decoder(float_hook=Decimal)
"""Request bodies: JSON numbers as exact Decimals (a size of 0.1 is 0.1, never 0.1000000000000000055)."""

_FULL: Final = ["00:00 - 00:00"]
_HOURS: Final[dict[str, dict[str, list[str] | str]]] = {
    "fx": {"mon": _FULL, "tue": _FULL, "wed": _FULL, "thu": _FULL, "fri": ["00:00 - 22:00"], "sat": [],
           "sun": ["22:00 - 00:00"], "zone": "UTC"},
    "session": {"mon": ["00:00 - 21:00", "22:00 - 00:00"], "tue": ["00:00 - 21:00", "22:00 - 00:00"],
                "wed": ["00:00 - 21:00", "22:00 - 00:00"], "thu": ["00:00 - 21:00", "22:00 - 00:00"],
                "fri": ["00:00 - 21:00"], "sat": [], "sun": ["22:00 - 00:00"], "zone": "UTC"},
    "crypto": {d: _FULL for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")} | {"zone": "UTC"},
}  # fmt: skip
"""Weekly opening hours (wire form) by kind of market; commodities and indices share the `session` one."""
_KIND: Final = {
    "fx": "fx",
    "commodity": "session",
    "index": "session",
    "crypto_major": "crypto",
    "crypto_alt": "crypto",
}
_TYPE: Final = {
    "fx": "CURRENCIES",
    "commodity": "COMMODITIES",
    "index": "INDICES",
    "crypto_major": "CRYPTOCURRENCIES",
    "crypto_alt": "CRYPTOCURRENCIES",
}
_DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_PRICES_PER_REQUEST: Final = 1000
_RESOLUTION_MS: Final = {
    "MINUTE": 60_000, "MINUTE_5": 300_000, "MINUTE_15": 900_000, "MINUTE_30": 1_800_000, "HOUR": 3_600_000,
    "HOUR_4": 14_400_000, "DAY": 86_400_000, "WEEK": 604_800_000,
}  # fmt: skip
_MAX_PRICE_SPAN: Final = 200_000
"""Most bars between the first requested one and now that `GET /prices` synthesises (older requests get none)."""


def hours_open(kind: str, at: dt.datetime) -> bool:
    """Whether a market of `kind` (fx, session, crypto) is open at `at` by `_HOURS` (an end of 00:00 is 24:00)."""
    table = _HOURS[kind]
    at = at.astimezone(dt.UTC)
    minute = at.hour * 60 + at.minute + at.second / 60
    spans = table[_DAYS[at.weekday()]]
    for span in spans:
        start, end = (int(h) * 60 + int(m) for h, m in (p.strip().split(":") for p in span.split("-")))
        if start <= minute < (end or 1440):
            return True
    return False


class _ApiError(Exception):
    def __init__(self, status: int, code: str, retry_after_s: int | None = None) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.retry_after_s = retry_after_s


@dataclass
class _Session:
    account: CfdAccount
    cst: str
    security_token: str
    last_used: float
    expire_after: list[str] = field(default_factory=list)


class _Windows:
    """The venue's own count of one user's requests (arrival times), by limit."""

    def __init__(self) -> None:
        self.times: dict[str, deque[float]] = {}

    def take(self, key: str, count: int, window_s: float, now: float) -> bool:
        times = self.times.setdefault(key, deque())
        while times and times[0] <= now - window_s:
            times.popleft()
        if len(times) >= count:
            return False
        times.append(now)
        return True


class CapitalComProtocol(Protocol):
    """Capital.com's REST + WebSocket API over a `SimVenue` (see the module docstring)."""

    name: ClassVar[str] = "capital_com"
    ws_paths: ClassVar[tuple[str, ...]] = (WS_PATH,)

    def __init__(
        self,
        *,
        session_idle_s: float = 600.0,
        ws_idle_s: float = 600.0,
        hours: Literal["real", "always"] = "real",
        currencies: Mapping[str, str] | None = None,
        wall: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        clock: Callable[[], float] = time.monotonic,
        requests_per_s: int = 10,
        trade_interval_s: float = 0.1,
        session_interval_s: float = 1.0,
    ) -> None:
        if session_idle_s <= 0 or ws_idle_s <= 0:
            raise ValueError("session_idle_s and ws_idle_s must be > 0")
        if hours not in ("real", "always"):
            raise ValueError(f"hours must be 'real' or 'always', got {hours!r}")
        self.session_idle_s = session_idle_s
        self.ws_idle_s = ws_idle_s
        self.hours = hours
        self.currencies = dict(currencies or {})
        """epic -> the instrument's quote currency (default: after the instrument id's '/', else USD)."""
        self.requests_per_s = requests_per_s
        self.trade_interval_s = trade_interval_s
        self.session_interval_s = session_interval_s
        self._wall = wall
        self._clock = clock
        self.sessions: dict[str, _Session] = {}
        self.status_override: dict[str, str] = {}
        self._status_cache: dict[str, tuple[str, float]] = {}
        self._windows: dict[str, _Windows] = {}
        self._expire_after: deque[str] = deque()
        self._venue: SimVenue | None = None
        self._epics: list[str] = []
        self._idle_task: asyncio.Task[None] | None = None
        self._unlisten: Callable[[], None] | None = None
        self.desk: CfdDesk | None = None
        self.default_account: CfdAccount | None = None

    # ------------------------------------------------------------------ wiring

    def market_id(self, symbol: str) -> str:
        if not _EPIC.match(symbol):
            raise ValueError(f"{symbol!r} is not a Capital.com epic (upper-case letters, digits, '_' or '.')")
        return symbol

    @property
    def venue(self) -> SimVenue:
        if self._venue is None:
            raise RuntimeError("the protocol is not installed on a venue")
        return self._venue

    def install(self, venue: SimVenue, app: web.Application) -> None:
        self._venue = venue
        self._epics = list(venue.market_ids)
        self.desk = CfdDesk(venue.venue_id, self._book, self.is_open, wall=self._wall)
        self.default_account = self.desk.add_account(DEFAULT_API_KEY, DEFAULT_IDENTIFIER, DEFAULT_PASSWORD)
        self._unlisten = venue.feed.add_listener(self._on_book_updates)
        routes: list[tuple[str, str, Callable[[web.Request, _Session], Awaitable[Any]], str]] = [
            ("GET", "/session", self._get_session, "read"),
            ("DELETE", "/session", self._delete_session, "read"),
            ("GET", "/ping", self._ping, "read"),
            ("GET", "/time", self._time, "read"),
            ("GET", "/accounts", self._accounts, "read"),
            ("GET", "/markets", self._markets, "read"),
            ("GET", "/markets/{epic}", self._market, "read"),
            ("GET", "/positions", self._positions, "read"),
            ("GET", "/positions/{deal_id}", self._position, "read"),
            ("POST", "/positions", self._open_position, "trade"),
            ("DELETE", "/positions/{deal_id}", self._close_position, "trade"),
            ("GET", "/workingorders", self._working_orders, "read"),
            ("POST", "/workingorders", self._create_working_order, "trade"),
            ("DELETE", "/workingorders/{deal_id}", self._delete_working_order, "trade"),
            ("GET", "/confirms/{ref}", self._confirm, "read"),
            ("GET", "/prices/{epic}", self._prices, "read"),
        ]
        app.router.add_post(f"{API}/session", self._create_session)
        for method, path, fn, kind in routes:
            app.router.add_route(method, API + path, self._authenticated(fn, kind))
        app.router.add_post("/_sim/sessions", self._control_sessions)
        app.router.add_post("/_sim/market-status", self._control_status)
        app.router.add_get("/_sim/deals", self._control_deals)
        app.on_startup.append(self._start_idle_check)
        app.on_cleanup.append(self._stop_idle_check)

    async def _start_idle_check(self, app: web.Application) -> None:
        self._idle_task = spawn(self._close_idle_connections(), name=f"sim.{self.venue.venue_id}.ws-idle")

    async def _stop_idle_check(self, app: web.Application) -> None:
        if self._unlisten is not None:
            self._unlisten()
        if self._idle_task is not None:
            await cancel_and_wait(self._idle_task)

    def _book(self, epic: str) -> Book:
        book = self.venue.book(epic)
        if book is None:
            raise KeyError(epic)
        return book

    def _epic_of(self, book: Book) -> str:
        return self._epics[book.row]

    def _on_book_updates(self, updates: Any) -> None:
        if self.desk is not None:
            self.desk.on_updates(updates, self._epic_of)

    # ------------------------------------------------------------------ market status

    def asset_class(self, epic: str) -> str:
        return self.venue.market.instrument(self._book(epic).instrument).asset_class

    def market_status(self, epic: str) -> str:
        """TRADEABLE or CLOSED now: the override, else the hours (cached for 0.25 s: the hot path asks per quote)."""
        override = self.status_override.get(epic)
        if override is not None:
            return override
        if self.hours == "always":
            return "TRADEABLE"
        now = self._clock()
        cached = self._status_cache.get(epic)
        if cached is not None and cached[1] > now:
            return cached[0]
        kind = _KIND.get(self.asset_class(epic), "session")
        status = "TRADEABLE" if hours_open(kind, self._wall()) else "CLOSED"
        self._status_cache[epic] = (status, now + 0.25)
        return status

    def is_open(self, epic: str) -> bool:
        return self.market_status(epic) == "TRADEABLE"

    def set_market_status(self, epic: str, status: str | None) -> None:
        """Force `epic` CLOSED / TRADEABLE (None: back to its hours)."""
        self._book(epic)
        if status is None:
            self.status_override.pop(epic, None)
        elif status in ("TRADEABLE", "CLOSED"):
            self.status_override[epic] = status
        else:
            raise ValueError(f"status must be TRADEABLE, CLOSED or null, got {status!r}")
        log.info("sim.capital_com.market_status venue=%s epic=%s status=%s", self.venue.venue_id, epic, status)

    def opening_hours(self, epic: str) -> dict[str, list[str] | str]:
        if self.hours == "always":
            return _HOURS["crypto"]
        return _HOURS[_KIND.get(self.asset_class(epic), "session")]

    def market_json(self, epic: str) -> dict[str, Any]:
        """The `market` object of positions and working orders (a snapshot's short form)."""
        book = self._book(epic)
        bid, _, ask, _ = book.top()
        return {
            "instrumentName": book.instrument,
            "expiry": "-",
            "marketStatus": self.market_status(epic),
            "epic": epic,
            "instrumentType": _TYPE.get(self.asset_class(epic), "CURRENCIES"),
            "lotSize": 1,
            "bid": bid,
            "offer": ask,
            "updateTimeUTC": utc_text(self._wall()),
            "delayTime": 0,
            "streamingPricesAvailable": True,
            "scalingFactor": 1,
        }

    def details_json(self, epic: str) -> dict[str, Any]:
        book = self._book(epic)
        bid, _, ask, _ = book.top()
        tick = Decimal(repr(book.tick))
        step = Decimal(repr(book.step))
        currency = self.currencies.get(epic) or (book.instrument.split("/")[1] if "/" in book.instrument else "USD")
        return {
            "instrument": {
                "epic": epic,
                "expiry": "-",
                "name": book.instrument,
                "lotSize": 1,
                "type": _TYPE.get(self.asset_class(epic), "CURRENCIES"),
                "guaranteedStopAllowed": True,
                "streamingPricesAvailable": True,
                "currency": currency,
                "marginFactor": 5,
                "marginFactorUnit": "PERCENTAGE",
                "openingHours": self.opening_hours(epic),
                "country": "",
            },
            "dealingRules": {
                "minStepDistance": {"unit": "POINTS", "value": tick},
                "minDealSize": {"unit": "POINTS", "value": step},
                "maxDealSize": {"unit": "POINTS", "value": step * 1_000_000},
                "minSizeIncrement": {"unit": "POINTS", "value": step},
                "minGuaranteedStopDistance": {"unit": "PERCENTAGE", "value": 1},
                "minStopOrProfitDistance": {"unit": "PERCENTAGE", "value": Decimal("0.01")},
                "maxStopOrProfitDistance": {"unit": "PERCENTAGE", "value": 60},
                "marketOrderPreference": "AVAILABLE_DEFAULT_OFF",
                "trailingStopsPreference": "NOT_AVAILABLE",
            },
            "snapshot": {
                "marketStatus": self.market_status(epic),
                "netChange": 0,
                "percentageChange": 0,
                "updateTime": utc_text(self._wall()),
                "delayTime": 0,
                "bid": bid,
                "offer": ask,
                "decimalPlacesFactor": book.price_decimals,
                "scalingFactor": 1,
                "marketModes": ["REGULAR"],
            },
        }

    # ------------------------------------------------------------------ sessions

    def expire_sessions(self) -> int:
        """End every session now (their tokens answer 401 error.invalid.session.token); returns how many."""
        n = len(self.sessions)
        self.sessions.clear()
        self.venue.faults.count("session_expired", n=n)
        return n

    def expire_after(self, request: str, count: int = 1) -> None:
        """End the session that makes the next `count` requests `request` ("POST /api/v1/positions") after each."""
        method, _, path = request.partition(" ")
        if method not in ("GET", "POST", "DELETE", "PUT") or not path.startswith("/"):
            raise ValueError(f"request must be 'METHOD /path', got {request!r}")
        self._expire_after.extend([request] * count)
        log.info("sim.capital_com.expire_after venue=%s request=%r count=%d", self.venue.venue_id, request, count)

    def _session_for(self, cst: str | None, security: str | None) -> _Session:
        if not cst:
            raise _ApiError(401, "error.null.client.token")
        if not security:
            raise _ApiError(401, "error.null.account.token")
        session = self.sessions.get(cst)
        now = self._clock()
        if session is None or session.security_token != security:
            raise _ApiError(401, "error.invalid.session.token")
        if now - session.last_used > self.session_idle_s:
            del self.sessions[cst]
            self.venue.faults.count("session_lapsed")
            raise _ApiError(401, "error.invalid.session.token")
        session.last_used = now
        return session

    def _limit(self, account: CfdAccount, kind: str) -> None:
        windows = self._windows.setdefault(account.api_key, _Windows())
        now = self._clock()
        if kind == "trade" and not windows.take("trade", 1, self.trade_interval_s, now):
            self.venue.stats["rate_limited_trade"] += 1
            raise _ApiError(429, "error.too-many.requests", 1)
        if kind == "session" and not windows.take("session", 1, self.session_interval_s, now):
            self.venue.stats["rate_limited_session"] += 1
            raise _ApiError(429, "error.too-many.requests", 1)
        if not windows.take("all", self.requests_per_s, 1.0, now):
            self.venue.stats["rate_limited"] += 1
            raise _ApiError(429, "error.too-many.requests", 1)

    async def _create_session(self, request: web.Request) -> web.Response:
        try:
            key = request.headers.get("X-CAP-API-KEY")
            if not key:
                raise _ApiError(401, "error.null.api.key")
            account = self.desk.accounts.get(key) if self.desk is not None else None
            if account is None:
                raise _ApiError(401, "error.invalid.api.key")
            self._limit(account, "session")
            try:
                body = orjson.loads(await request.read())
            except orjson.JSONDecodeError:
                raise _ApiError(400, "error.invalid.request.body") from None
            if not isinstance(body, dict) or not body.get("password"):
                raise _ApiError(400, "error.null.password")
            if body.get("identifier") != account.identifier or body.get("password") != account.password:
                raise _ApiError(401, "error.invalid.details")
        except _ApiError as e:
            return _error(e)
        cst, security = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        self.sessions[cst] = _Session(account, cst, security, self._clock())
        self.venue.stats["sessions_created"] += 1
        log.info("sim.capital_com.session_created venue=%s account=%s", self.venue.venue_id, account.account_id)
        response = _json(self._session_body(account))
        response.headers["CST"] = cst
        response.headers["X-SECURITY-TOKEN"] = security
        return response

    def _session_body(self, account: CfdAccount) -> dict[str, Any]:
        balance = {
            "balance": account.balance,
            "deposit": account.balance,
            "profitLoss": 0,
            "available": account.balance,
        }
        return {
            "accountType": "CFD",
            "accountInfo": balance,
            "currencyIsoCode": account.currency,
            "currencySymbol": "$" if account.currency == "USD" else account.currency,
            "currentAccountId": account.account_id,
            "streamingHost": self.venue.ws_url + "/",
            "accounts": [
                {
                    "accountId": account.account_id,
                    "accountName": "CFD",
                    "preferred": True,
                    "accountType": "CFD",
                    "currency": account.currency,
                    "balance": balance,
                }
            ],
            "clientId": account.account_id,
            "timezoneOffset": 0,
            "hasActiveDemoAccounts": True,
            "hasActiveLiveAccounts": False,
            "trailingStopsEnabled": False,
        }

    def _authenticated(
        self, fn: Callable[[web.Request, _Session], Awaitable[Any]], kind: str
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            try:
                session = self._session_for(request.headers.get("CST"), request.headers.get("X-SECURITY-TOKEN"))
                self._limit(session.account, kind)
                result = await fn(request, session)
            except _ApiError as e:
                return _error(e)
            except DealError as e:
                return _error(_ApiError(e.status, e.code))
            key = f"{request.method} {request.path}"
            if self._expire_after and self._expire_after[0] == key:
                self._expire_after.popleft()
                self.sessions.pop(session.cst, None)
                self.venue.faults.count("session_expired")
                log.info("sim.capital_com.session_expired venue=%s after=%r", self.venue.venue_id, key)
            return result if isinstance(result, web.StreamResponse) else _json(result)

        return handler

    # ------------------------------------------------------------------ REST handlers

    async def _get_session(self, request: web.Request, s: _Session) -> Any:
        return {
            "clientId": s.account.account_id,
            "accountId": s.account.account_id,
            "timezoneOffset": 0,
            "locale": "en",
            "currency": s.account.currency,
            "streamEndpoint": self.venue.ws_url + "/",
        }

    async def _delete_session(self, request: web.Request, s: _Session) -> Any:
        self.sessions.pop(s.cst, None)
        return {"status": "SUCCESS"}

    async def _ping(self, request: web.Request, s: _Session) -> Any:
        return {"status": "OK"}

    async def _time(self, request: web.Request, s: _Session) -> Any:
        return {"serverTime": int(self._wall().timestamp() * 1000)}

    async def _accounts(self, request: web.Request, s: _Session) -> Any:
        return {"accounts": self._session_body(s.account)["accounts"]}

    async def _markets(self, request: web.Request, s: _Session) -> Any:
        epics = [e for e in request.query.get("epics", "").split(",") if e]
        if not epics:
            raise _ApiError(400, "error.invalid.epics")
        if len(epics) > MAX_EPICS_PER_REQUEST:
            raise _ApiError(400, "error.invalid.epics.max")
        return {"marketDetails": [self.details_json(e) for e in epics if self.venue.book(e) is not None]}

    async def _market(self, request: web.Request, s: _Session) -> Any:
        epic = request.match_info["epic"]
        if self.venue.book(epic) is None:
            raise _ApiError(404, "error.not-found.epic")
        return self.details_json(epic)

    async def _prices(self, request: web.Request, s: _Session) -> Any:
        """Historical bars: bid/ask around `_candles`' deterministic mid path (ending at the current mid), the
        current spread either side. With `hours="real"` the hours the market was closed have no bar (as on the
        venue); the bar still forming is included (the venue sends it too)."""
        epic = request.match_info["epic"]
        book = self.venue.book(epic)
        if book is None:
            raise _ApiError(404, "error.not-found.epic")
        step = _RESOLUTION_MS.get(request.query.get("resolution", "MINUTE"))
        if step is None:
            raise _ApiError(400, "error.invalid.resolution")
        try:
            limit = int(request.query.get("max", "10"))
        except ValueError:
            raise _ApiError(400, "error.invalid.max") from None
        if not 1 <= limit <= MAX_PRICES_PER_REQUEST:
            raise _ApiError(400, "error.invalid.max")
        start, end = (_api_time_ms(request.query.get(k), k) for k in ("from", "to"))
        if start is not None and end is not None and start > end:
            raise _ApiError(400, "error.invalid.daterange")
        now_ms = int(self._wall().timestamp() * 1000)
        current = now_ms - now_ms % step
        last = current if end is None else min(current, end // step * step)
        first = -(-start // step) * step if start is not None else last - (limit - 1) * step
        kind = "crypto" if self.hours == "always" else _KIND.get(self.asset_class(epic), "session")
        body: dict[str, Any] = {"prices": [], "instrumentType": _TYPE.get(self.asset_class(epic), "CURRENCIES")}
        if last < first or (current - first) // step > _MAX_PRICE_SPAN:
            return body
        opens = np.arange(first, last + 1, step, dtype=np.int64)
        opens = np.array([t for t in opens.tolist() if hours_open(kind, _utc_of_ms(t))], dtype=np.int64)
        opens = opens[:limit] if start is not None else opens[-limit:]
        if not len(opens):
            return body
        o, h, lo, c, v = _candles(self.venue, book, opens, step, now_ms, aligned=True)
        bid, _, ask, _ = book.top()
        half, digits = max(ask - bid, 0.0) / 2, book.price_decimals
        body["prices"] = [
            {
                "snapshotTime": _utc_of_ms(t).strftime("%Y-%m-%dT%H:%M:%S"),
                "snapshotTimeUTC": _utc_of_ms(t).strftime("%Y-%m-%dT%H:%M:%S"),
                **{
                    name: {"bid": round(x - half, digits), "ask": round(x + half, digits)}
                    for name, x in (("openPrice", oo), ("closePrice", cc), ("highPrice", hh), ("lowPrice", ll))
                },
                "lastTradedVolume": round(vv),
            }
            for t, oo, hh, ll, cc, vv in zip(opens.tolist(), o.tolist(), h.tolist(), lo.tolist(), c.tolist(),
                                             v.tolist(), strict=True)
        ]  # fmt: skip
        return body

    async def _positions(self, request: web.Request, s: _Session) -> Any:
        assert self.desk is not None  # noqa: S101 - installed
        return {"positions": self.desk.positions_json(s.account, self.market_json)}

    async def _position(self, request: web.Request, s: _Session) -> Any:
        p = s.account.positions.get(request.match_info["deal_id"])
        if p is None:
            raise _ApiError(404, "error.not-found.dealId")
        return position_json(p, s.account.currency, self.market_json(p.epic))

    async def _working_orders(self, request: web.Request, s: _Session) -> Any:
        assert self.desk is not None  # noqa: S101 - installed
        return {"workingOrders": self.desk.working_json(s.account, self.market_json)}

    async def _confirm(self, request: web.Request, s: _Session) -> Any:
        confirm = s.account.confirms.get(request.match_info["ref"])
        if confirm is None:
            raise _ApiError(404, "error.not-found.dealReference")
        return confirm

    async def _deal_request(
        self, request: web.Request, s: _Session, place: Callable[[CfdAccount, dict[str, Any], str | None], str]
    ) -> web.StreamResponse:
        """A position / working-order request with the order faults: rate_limit and reject refuse, ack_delay, ghost
        and disconnect act on the answer once the deal is placed (a disconnect that is not `placed` cuts first)."""
        body = _body(await request.read())
        epic = str(body.get("epic", ""))
        fault = self.venue.trading.faults.take(epic, str(body.get("direction", "")).lower())
        if isinstance(fault, RateLimitFault):
            return _error(_ApiError(fault.status, "error.too-many.requests", fault.retry_after_s))
        reject = (fault.code or "REJECTED") if isinstance(fault, RejectFault) else None
        if isinstance(fault, DisconnectFault) and not fault.placed:
            await deliver(fault, lambda: cut_connection(request))
            return web.Response(status=499)  # never reaches the client: the connection is gone
        ref = place(s.account, body, reject)
        response = _json({"dealReference": ref})
        if not await deliver(fault, lambda: cut_connection(request)):
            return web.Response(status=499)
        return response

    async def _open_position(self, request: web.Request, s: _Session) -> Any:
        desk = self.desk
        assert desk is not None  # noqa: S101 - installed
        return await self._deal_request(request, s, lambda a, b, r: desk.open_position(a, b, reject=r))

    async def _create_working_order(self, request: web.Request, s: _Session) -> Any:
        desk = self.desk
        assert desk is not None  # noqa: S101 - installed
        return await self._deal_request(request, s, lambda a, b, r: desk.create_working_order(a, b, reject=r))

    async def _close_position(self, request: web.Request, s: _Session) -> Any:
        assert self.desk is not None  # noqa: S101 - installed
        return {"dealReference": self.desk.close_position(s.account, request.match_info["deal_id"])}

    async def _delete_working_order(self, request: web.Request, s: _Session) -> Any:
        assert self.desk is not None  # noqa: S101 - installed
        return {"dealReference": self.desk.delete_working_order(s.account, request.match_info["deal_id"])}

    # ------------------------------------------------------------------ control

    async def _control_sessions(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
            action = body.get("action") if isinstance(body, dict) else None
            if action == "expire":
                return web.json_response({"expired": self.expire_sessions()})
            if action == "expire_after":
                self.expire_after(str(body.get("request", "")), int(body.get("count", 1)))
                return web.json_response({"ok": True})
            raise ValueError(f"action must be 'expire' or 'expire_after', got {action!r}")
        except (orjson.JSONDecodeError, ValueError, TypeError) as e:
            return web.json_response({"error": str(e)}, status=422)

    async def _control_status(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
            if not isinstance(body, dict):
                raise ValueError("body must be an object")
            self.set_market_status(str(body.get("epic", "")), body.get("status"))
        except KeyError as e:
            return web.json_response({"error": f"unknown epic {e}"}, status=404)
        except (orjson.JSONDecodeError, ValueError) as e:
            return web.json_response({"error": str(e)}, status=422)
        return web.json_response({"ok": True})

    async def _control_deals(self, request: web.Request) -> web.Response:
        assert self.desk is not None  # noqa: S101 - installed
        out = {
            a.api_key[:4] + "***": {
                "positions": self.desk.positions_json(a, self.market_json),
                "workingOrders": self.desk.working_json(a, self.market_json),
                "confirms": len(a.confirms),
                "closed": len(a.closed),
            }
            for a in self.desk.accounts.values()
        }
        return web.Response(body=_ENCODER.encode(out), content_type="application/json")

    # ------------------------------------------------------------------ streaming

    def on_connect(self, conn: Connection) -> None:
        conn.state["last_message"] = self._clock()

    def on_text(self, conn: Connection, text: str) -> None:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            self._stream_error(conn, "", None, "error.invalid.message")
            return
        if not isinstance(msg, dict):
            self._stream_error(conn, "", None, "error.invalid.message")
            return
        destination = str(msg.get("destination", ""))
        cid = msg.get("correlationId")
        try:
            session = self._session_for(msg.get("cst"), msg.get("securityToken"))
        except _ApiError as e:
            self._stream_error(conn, destination, cid, e.code)
            return
        conn.state["last_message"] = self._clock()
        if destination == "ping":
            conn.send(_dumps({"status": "OK", "destination": "ping", "correlationId": cid, "payload": {}}))
        elif destination in ("marketData.subscribe", "marketData.unsubscribe"):
            self._on_subscription(conn, destination, cid, msg.get("payload"), session)
        else:
            self._stream_error(conn, destination, cid, "error.invalid.destination")

    def _on_subscription(self, conn: Connection, destination: str, cid: Any, payload: Any, s: _Session) -> None:
        epics = payload.get("epics") if isinstance(payload, dict) else None
        if not isinstance(epics, list) or not all(isinstance(e, str) for e in epics):
            self._stream_error(conn, destination, cid, "error.invalid.epics")
            return
        subscribed = {m for m, _ in conn.topics}
        if destination == "marketData.unsubscribe":
            for e in epics:
                conn.unsubscribe(e, "quote")
            result = dict.fromkeys(epics, "DELETED")
        else:
            known = [e for e in epics if self.venue.book(e) is not None]
            if len(subscribed | set(known)) > MAX_EPICS_PER_CONNECTION:
                self._stream_error(conn, destination, cid, "error.invalid.subscription.limit")
                return
            for e in known:
                conn.subscribe(e, "quote")
            result = {e: ("PROCESSED" if e in known else "NOT_FOUND") for e in epics}
        conn.send(_dumps({"status": "OK", "destination": destination, "correlationId": cid,
                          "payload": {"subscriptions": result}}))  # fmt: skip
        if destination == "marketData.subscribe":
            for e in epics:
                book = self.venue.book(e)
                if book is not None and self.is_open(e):
                    conn.send(self._quote(e, book, self.venue.now_ms()))

    def _stream_error(self, conn: Connection, destination: str, cid: Any, code: str) -> None:
        self.venue.stats["stream_errors"] += 1
        conn.send(_dumps({"status": "FAILED", "destination": destination, "correlationId": cid,
                          "payload": {"errorCode": code}}))  # fmt: skip

    async def _close_idle_connections(self) -> None:
        """Capital.com drops a streaming connection after `ws_idle_s` without a message from the client."""
        period = max(0.02, min(self.ws_idle_s / 4, 1.0))
        while True:
            await asyncio.sleep(period)
            now = self._clock()
            for conn in list(self.venue.connections):
                if now - conn.state.get("last_message", now) > self.ws_idle_s and not conn.closed:
                    log.info("sim.capital_com.ws_idle venue=%s conn=%d", self.venue.venue_id, conn.id)
                    self.venue.stats["ws_idle_closed"] += 1
                    conn.close_soon(1000)

    def _quote(self, epic: str, book: Book, ts_ms: int) -> str:
        bid, bid_qty, ask, ask_qty = book.top()
        return (
            f'{{"status":"OK","destination":"quote","payload":{{"epic":"{epic}","product":"CFD",'
            f'"bid":{bid!r},"bidQty":{bid_qty!r},"ofr":{ask!r},"ofrQty":{ask_qty!r},"timestamp":{ts_ms}}}}}'
        )

    def render(self, channel: str, update: BookUpdate, venue: SimVenue) -> str | None:
        if not update.top_changed:
            return None  # the stream carries the top of book only
        epic = self._epics[update.book.row]
        if not self.is_open(epic):
            return None
        venue.stats["quotes"] += 1
        return self._quote(epic, update.book, venue.event_time_ms(update.ts_ns))

    def malformed(self, kind: MalformedKind, channel: str, update: BookUpdate, payload: str) -> str:
        if kind == "wrong_types":
            return re.sub(r'"bid":[^,]+', '"bid":"not a number"', payload, count=1)
        if kind == "nan_price":
            return re.sub(r'"bid":[^,]+', '"bid":NaN', payload, count=1)
        if kind == "crossed":
            bid, _, ask, _ = update.book.top()
            return payload.replace(f'"bid":{bid!r}', f'"bid":{ask * 1.01!r}', 1)
        return payload[: max(1, len(payload) // 2)]

    # ------------------------------------------------------------------ error bodies

    def rate_limited(self, status: int, retry_after_s: int) -> web.Response:
        return _error(_ApiError(status, "error.too-many.requests", retry_after_s))

    def maintenance_response(self, retry_after_s: int | None) -> web.Response:
        return _error(_ApiError(503, "error.service.unavailable", retry_after_s))


def _utc_of_ms(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def _api_time_ms(text: str | None, name: str) -> int | None:
    """`from` / `to` (`YYYY-MM-DDTHH:MM:SS`, UTC) as epoch ms; 400 error.invalid.<name> when it is not that."""
    if text is None:
        return None
    try:
        at = dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    except ValueError:
        raise _ApiError(400, f"error.invalid.{name}") from None
    return int(at.timestamp() * 1000)


def _dumps(obj: Any) -> str:
    return _ENCODER.encode(obj).decode()


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=_ENCODER.encode(obj), status=status, content_type="application/json")


def _error(e: _ApiError) -> web.Response:
    response = _json({"errorCode": e.code}, e.status)
    if e.retry_after_s is not None:
        response.headers["Retry-After"] = str(e.retry_after_s)
    return response


def _body(raw: bytes) -> dict[str, Any]:
    """A request body as a dict, JSON numbers as exact Decimals; DealError(400) when it is not a JSON object."""
    try:
        body = _BODY_DECODER.decode(raw) if raw else None
    except msgspec.DecodeError:
        raise DealError(400, "error.invalid.request.body") from None
    if not isinstance(body, dict):
        raise DealError(400, "error.invalid.request.body")
    return body


# ---------------------------------------------------------------------------------------------------- serving


@dataclass(frozen=True)
class LocalCapitalCom:
    """A running local Capital.com: its URLs (as `arb.connectors.capital_com.Endpoint` takes them) and account."""

    venue: SimVenue
    protocol: CapitalComProtocol
    rest_url: str
    ws_url: str
    api_key: str = DEFAULT_API_KEY
    identifier: str = DEFAULT_IDENTIFIER
    password: str = field(default=DEFAULT_PASSWORD, repr=False)


def capital_com_venue(
    market: Market,
    epics: Mapping[str, str],
    *,
    venue_id: str = "capital_com",
    protocol: CapitalComProtocol | None = None,
    **venue_options: Any,
) -> SimVenue:
    """A (not yet started) local Capital.com over `market` listing `epics` (instrument id -> epic); every
    instrument must be in the market. For a group of venues on one market (the demo): add it to the group's venues."""
    return SimVenue(venue_id, protocol or CapitalComProtocol(), market, epics, **venue_options)


def settings_epics(settings: Settings, venue_id: str = "capital_com") -> dict[str, str]:
    """Instrument id -> epic for every instrument the settings map to `venue_id`."""
    return {iid: inst.venues[venue_id] for iid, inst in settings.instruments.items() if venue_id in inst.venues}


@contextlib.asynccontextmanager
async def serve_capital_com(
    settings: Settings,
    *,
    venue_id: str = "capital_com",
    instruments: Iterable[str] | None = None,
    market: Market | None = None,
    config: MarketConfig | None = None,
    protocol: CapitalComProtocol | None = None,
    run_market: bool = True,
    **venue_options: Any,
) -> AsyncIterator[LocalCapitalCom]:
    """`async with serve_capital_com(settings) as local:` a local Capital.com on 127.0.0.1 listing every instrument
    the settings map to `venue_id` (or those of `instruments`), until the block ends.

    `market`: a market (which must price those instruments) shared with other local venues, run by its owner; when
    None, one of its own is made from the settings (`config`) and run here unless `run_market=False`."""
    from arb.sim.market import InstrumentSpec
    from arb.sim.market import Market as MarketCls

    epics = settings_epics(settings, venue_id)
    if instruments is not None:
        wanted = list(instruments)
        unknown = [i for i in wanted if i not in epics]
        if unknown:
            raise ValueError(f"not mapped to {venue_id}: {', '.join(unknown)}")
        epics = {i: epics[i] for i in wanted}
    protocol = protocol or CapitalComProtocol(
        currencies={epic: settings.instruments[iid].quote for iid, epic in epics.items()}
    )
    own = market is None
    if market is None:
        specs = [
            InstrumentSpec.derive(
                iid, base=settings.instruments[iid].base, quote=settings.instruments[iid].quote,
                asset_class=settings.instruments[iid].asset_class,
            )
            for iid in epics
        ]  # fmt: skip
        market = MarketCls(specs, config)
    async with capital_com_venue(market, epics, venue_id=venue_id, protocol=protocol, **venue_options) as venue:
        if own and run_market:
            await market.start()
        try:
            yield LocalCapitalCom(venue, protocol, venue.http_url, venue.ws_url + WS_PATH)
        finally:
            if own:
                await market.close()


__all__ = [
    "DEFAULT_IDENTIFIER",
    "DEFAULT_PASSWORD",
    "CapitalComProtocol",
    "LocalCapitalCom",
    "capital_com_venue",
    "hours_open",
    "serve_capital_com",
    "settings_epics",
]
