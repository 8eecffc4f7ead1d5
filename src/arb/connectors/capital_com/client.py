"""The Capital.com REST client: one session (CST / X-SECURITY-TOKEN), kept alive and renewed, and the calls arb makes.

Follows https://open-api.capital.com/ ("Session", "Markets Info", "Trading", "Rate limits") and
https://capital.com/api-general-information (base URLs, limits):

* **Session**: `POST /api/v1/session` with the `X-CAP-API-KEY` header and `{"identifier", "password"}`; the tokens
  come back in the `CST` and `X-SECURITY-TOKEN` response headers and go on every later request. A session lapses 10
  minutes after its last use, so the client (a) pings (`GET /api/v1/ping`) when it has been idle `keepalive_s`
  (4 min by default; a streaming connection's pings count as use, see `touch`), and (b) logs in again *before* a
  request when the session has been idle longer than `session_idle_s - renew_margin_s`, instead of waiting for a 401.
  A session refused anyway (401 with a session error code: expired, invalidated by a new login elsewhere, weekend
  maintenance) is re-created once, coalesced: many callers that see the same dead tokens cause one login.
* **Retries**: a read refused for its session is sent once more after the new login. A write (position or
  working-order request) is never resent here: `SessionExpired` tells the caller, who must first find out whether it
  took effect (`arb.connectors.capital_com.orders`, FAULTS E17). Nothing else is retried.
* **Limits**: every request waits for room in `RequestGate` (10/s, one trading request per 0.1 s, one session per
  second); a 429 silences the client for its Retry-After (FAULTS E10).
* **Errors** (`arb.executor.venue`'s tree, so the executor treats every venue alike): the API key or login refused
  -> `VenueAuthError`; 429 -> `VenueRateLimited`; 503 / maintenance / no connection -> `VenueUnavailable`; no answer
  in time or a connection cut mid-request -> `RequestTimedOut` (a write's outcome is then unknown); any other
  `{"errorCode": ...}` answer -> `CapitalComError` (404 -> `CapitalComNotFound`). Messages name the status and error
  code, never a key, password or token (FAULTS S8): the tokens' `repr` is masked and they are never logged.

Lifecycle: `async with CapitalComClient(endpoint, credentials) as client:`; it cannot be opened twice or reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar

import aiohttp
import msgspec
from pydantic import SecretStr

from arb import tasks
from arb.config.schema import VenueConfig
from arb.connectors.capital_com.limits import DOCUMENTED, Kind, RateLimits, RequestGate
from arb.connectors.capital_com.wire import (
    AUTH_ERRORS,
    ERROR_DECODER,
    RATE_LIMIT_ERROR,
    SESSION_ERRORS,
    Confirm,
    DealReference,
    MarketDetails,
    MarketDetailsList,
    PositionEntry,
    Positions,
    Prices,
    SessionBody,
    WorkingOrderEntry,
    WorkingOrders,
)
from arb.connectors.wallets import env_name
from arb.executor.venue import (
    GatewayError,
    OrderNotFound,
    RequestTimedOut,
    VenueAuthError,
    VenueRateLimited,
    VenueUnavailable,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
API: Final = "/api/v1"
MAX_EPICS_PER_REQUEST: Final = 50
"""`GET /api/v1/markets?epics=` takes at most 50 epics."""
MAX_PRICES_PER_REQUEST: Final = 1000
"""`GET /api/v1/prices/{epic}` answers at most 1000 bars (`max`, default 10)."""
RESOLUTIONS: Final = frozenset({"MINUTE", "MINUTE_5", "MINUTE_15", "MINUTE_30", "HOUR", "HOUR_4", "DAY", "WEEK"})
"""The bar sizes `GET /api/v1/prices/{epic}` takes (`resolution`)."""
_ENCODER: Final = msgspec.json.Encoder(decimal_format="number")
"""Decimals (sizes, levels) go on the wire as JSON numbers with exactly their digits."""


class CapitalComError(GatewayError):
    """The API answered with an error body; `status` and `error_code` say which (never a credential)."""

    def __init__(self, venue: str, status: int, error_code: str, what: str) -> None:
        super().__init__(venue, f"{what}: HTTP {status} {error_code}")
        self.status = status
        self.error_code = error_code


class CapitalComNotFound(CapitalComError, OrderNotFound):
    """404: no such epic, deal, deal reference or position."""


class SessionExpired(GatewayError):
    """A write was refused for its session (401); the client has logged in again. Whether the write took effect is
    for the caller to find out before anything is resent (FAULTS E17)."""


# ---------------------------------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class CapitalComCredentials:
    """API key, login identifier and API password; `repr` masks the secrets (SecretStr)."""

    api_key: SecretStr
    identifier: str
    password: SecretStr

    @classmethod
    def from_env(
        cls, venue_id: str = "capital_com", environ: Mapping[str, str] | None = None
    ) -> CapitalComCredentials | None:
        """`ARB_<VENUE>_API_KEY`, `ARB_<VENUE>_IDENTIFIER`, `ARB_<VENUE>_PASSWORD`; None when none is set, ValueError
        naming the missing variables when only some are."""
        env = os.environ if environ is None else environ
        names = {w: env_name(venue_id, w) for w in ("API_KEY", "IDENTIFIER", "PASSWORD")}
        values = {w: env.get(n, "") for w, n in names.items()}
        if not any(values.values()):
            return None
        missing = [names[w] for w, v in values.items() if not v]
        if missing:
            raise ValueError(f"Capital.com credentials incomplete: set {', '.join(missing)}")
        return cls(SecretStr(values["API_KEY"]), values["IDENTIFIER"], SecretStr(values["PASSWORD"]))

    def secrets(self) -> list[str]:
        return [self.api_key.get_secret_value(), self.password.get_secret_value()]


class Endpoint(msgspec.Struct, frozen=True):
    """Where the API is: REST base URL (no path) and the streaming WebSocket URL."""

    rest_url: str
    ws_url: str


def endpoint_from_config(venue: VenueConfig, *, live: bool) -> Endpoint:
    """The live or demo URLs of a `cfd` venue's config (`urls.rest_live` / `ws_live` or `rest_demo` / `ws_demo`).

    Live only when asked: paper mode streams real prices from the demo environment, where no real money moves."""
    which = "live" if live else "demo"
    keys = (f"rest_{which}", f"ws_{which}")
    missing = [k for k in keys if not venue.urls.get(k)]
    if missing:
        raise ValueError(f"venue {venue.name!r}: urls.{' and urls.'.join(missing)} not configured")
    return Endpoint(venue.urls[keys[0]].rstrip("/"), venue.urls[keys[1]])


class ClientOptions(msgspec.Struct, frozen=True, kw_only=True):
    timeout_s: float = 10.0
    """Bound of one request (connect, send, answer), rate-limit waits excluded."""
    session_idle_s: float = 600.0
    """The venue ends a session this long after its last use (documented: 10 minutes)."""
    renew_margin_s: float = 60.0
    """Log in again before a request when the session has been idle longer than session_idle_s minus this."""
    keepalive_s: float | None = 240.0
    """Ping the session when idle this long (None: never; the pre-request renewal still applies)."""
    limits: RateLimits = DOCUMENTED

    def __post_init__(self) -> None:
        for name in ("timeout_s", "session_idle_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"ClientOptions.{name} must be a positive number, got {value!r}")
        if not (0 <= self.renew_margin_s < self.session_idle_s):
            raise ValueError("ClientOptions.renew_margin_s must be >= 0 and below session_idle_s")
        if self.keepalive_s is not None and not (0 < self.keepalive_s < self.session_idle_s - self.renew_margin_s):
            raise ValueError("ClientOptions.keepalive_s must be > 0 and below session_idle_s - renew_margin_s")


@dataclass(frozen=True)
class SessionTokens:
    """One login's tokens; `generation` counts logins, so a caller can say which tokens it saw refused."""

    cst: str = field(repr=False)
    security_token: str = field(repr=False)
    generation: int
    account_id: str = ""

    def headers(self) -> dict[str, str]:
        return {"CST": self.cst, "X-SECURITY-TOKEN": self.security_token}


@dataclass
class ClientStats:
    requests: int = 0
    sessions_created: int = 0
    session_errors: int = 0
    """401 session refusals seen (each followed by a new login)."""
    renewed_idle: int = 0
    """Logins done ahead of a request because the session had been idle too long."""
    keepalive_pings: int = 0


# ---------------------------------------------------------------------------------------------------- the client


class _Answer(msgspec.Struct, frozen=True):
    status: int
    body: bytes
    retry_after_s: float


class CapitalComClient:
    """See the module docstring. `venue` names the venue in errors and logs."""

    def __init__(
        self,
        endpoint: Endpoint,
        credentials: CapitalComCredentials,
        *,
        venue: str = "capital_com",
        options: ClientOptions | None = None,
        gate: RequestGate | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint = Endpoint(endpoint.rest_url.rstrip("/"), endpoint.ws_url)
        self.venue = venue
        self.options = options or ClientOptions()
        self.gate = gate or RequestGate(self.options.limits, clock=clock)
        self.stats = ClientStats()
        self._credentials = credentials
        self._clock = clock
        self._tokens: SessionTokens | None = None
        self._last_used = -math.inf
        self._login_lock = asyncio.Lock()
        self._generation = 0
        self._http: aiohttp.ClientSession | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._state: Literal["new", "open", "closed"] = "new"

    def __repr__(self) -> str:
        return f"CapitalComClient(venue={self.venue!r}, rest_url={self.endpoint.rest_url!r}, state={self._state})"

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> CapitalComClient:
        if self._state != "new":
            raise RuntimeError(f"CapitalComClient is {self._state}; make a new one")
        self._state = "open"
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.options.timeout_s))
        if self.options.keepalive_s is not None:
            self._keepalive = tasks.spawn(self._keep_alive(self.options.keepalive_s), name=f"{self.venue}-keepalive")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._state = "closed"
        if self._keepalive is not None:
            await tasks.cancel_and_wait(self._keepalive)
        if self._http is not None:
            await self._http.close()

    @property
    def http(self) -> aiohttp.ClientSession:
        """The client's HTTP session (the stream opens its WebSockets on it)."""
        if self._state != "open" or self._http is None:
            raise RuntimeError(f"CapitalComClient is {self._state}; use it inside `async with`")
        return self._http

    # ------------------------------------------------------------------ session

    @property
    def idle_s(self) -> float:
        return self._clock() - self._last_used

    def touch(self) -> None:
        """The session was used (a request answered, or a stream ping with its tokens acknowledged)."""
        self._last_used = self._clock()

    async def tokens(self) -> SessionTokens:
        """Valid tokens: the current ones, or a new login when there are none or they have idled too long."""
        tokens = self._tokens
        if tokens is not None and self.idle_s < self.options.session_idle_s - self.options.renew_margin_s:
            return tokens
        if tokens is not None:
            self.stats.renewed_idle += 1
            log.info("capital_com.session_renew venue=%s reason=idle idle_s=%.1f", self.venue, self.idle_s)
        return await self.relogin(tokens)

    async def relogin(self, stale: SessionTokens | None) -> SessionTokens:
        """Log in again unless someone already replaced `stale` (then their tokens are returned)."""
        async with self._login_lock:
            current = self._tokens
            if current is not None and (stale is None or current.generation != stale.generation):
                return current
            self._tokens = None
            tokens = await self._login()
            self._tokens = tokens
            return tokens

    async def _login(self) -> SessionTokens:
        creds = self._credentials
        body = msgspec.json.encode({"identifier": creds.identifier, "password": creds.password.get_secret_value()})
        headers = {"X-CAP-API-KEY": creds.api_key.get_secret_value(), "Content-Type": "application/json"}
        answer, response_headers = await self._http_call("POST", f"{API}/session", "session", headers, body, None)
        if answer.status != 200:
            raise self._error(answer, "POST /session", write=False)
        cst, security = response_headers.get("CST"), response_headers.get("X-SECURITY-TOKEN")
        if not cst or not security:
            raise VenueAuthError(self.venue, "POST /session: answer without CST / X-SECURITY-TOKEN headers")
        try:
            info = msgspec.json.decode(answer.body, type=SessionBody)
        except msgspec.MsgspecError as exc:
            raise VenueAuthError(self.venue, f"POST /session: unreadable answer ({exc})") from None
        self._generation += 1
        self.stats.sessions_created += 1
        self.touch()
        log.info(
            "capital_com.session_created venue=%s generation=%d account=%s",
            self.venue,
            self._generation,
            info.currentAccountId,
        )
        return SessionTokens(cst, security, self._generation, info.currentAccountId)

    async def _keep_alive(self, every_s: float) -> None:
        while True:
            if self._tokens is None:  # not logged in yet (or being logged in again): nothing to keep alive
                await asyncio.sleep(every_s)
                continue
            idle = self.idle_s
            if idle < every_s:
                await asyncio.sleep(every_s - idle)
                continue
            try:
                await self.ping()
                self.stats.keepalive_pings += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next request logs in again if the session is gone
                log.warning("capital_com.keepalive_failed venue=%s error=%r", self.venue, str(exc)[:200])
                await asyncio.sleep(min(every_s, 5.0))

    # ------------------------------------------------------------------ requests

    async def _http_call(
        self,
        method: str,
        path: str,
        kind: Kind,
        headers: dict[str, str],
        body: bytes | None,
        params: dict[str, str] | None,
    ) -> tuple[_Answer, Mapping[str, str]]:
        await self.gate.acquire(kind)
        self.stats.requests += 1
        url = self.endpoint.rest_url + path
        try:
            async with asyncio.timeout(self.options.timeout_s):
                async with self.http.request(method, url, headers=headers, data=body, params=params) as resp:
                    data = await resp.read()
                    retry_after = _retry_after_s(resp.headers.get("Retry-After"))
                    return _Answer(resp.status, data, retry_after), resp.headers
        except aiohttp.ClientConnectorError as exc:
            raise VenueUnavailable(self.venue, f"{method} {path}: cannot connect ({type(exc).__name__})") from None
        except (TimeoutError, aiohttp.ServerTimeoutError):
            raise RequestTimedOut(self.venue, f"{method} {path}: no answer within {self.options.timeout_s}s") from None
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise RequestTimedOut(self.venue, f"{method} {path}: connection lost ({type(exc).__name__})") from None

    async def request(
        self,
        method: str,
        path: str,
        *,
        kind: Kind = "read",
        json: Any = None,
        params: dict[str, str] | None = None,
    ) -> bytes:
        """One authenticated call; the answer's body on 2xx, else the error of the module docstring. A GET refused
        for its session is sent once more after a new login; any other method raises SessionExpired then."""
        body = None if json is None else _ENCODER.encode(json)
        what = f"{method} {path.removeprefix(API)}"
        retried = False
        while True:
            tokens = await self.tokens()
            headers = {"X-CAP-API-KEY": self._credentials.api_key.get_secret_value(), **tokens.headers()}
            if body is not None:
                headers["Content-Type"] = "application/json"
            answer, _ = await self._http_call(method, path, kind, headers, body, params)
            if 200 <= answer.status < 300:
                self.touch()
                return answer.body
            code = _error_code(answer.body)
            if answer.status == 401 and code in SESSION_ERRORS:
                self.stats.session_errors += 1
                log.warning("capital_com.session_refused venue=%s request=%r code=%s", self.venue, what, code)
                await self.relogin(tokens)
                if method == "GET" and not retried:
                    retried = True
                    continue
                if method == "GET":
                    raise VenueAuthError(self.venue, f"{what}: session refused again after a new login ({code})")
                raise SessionExpired(self.venue, f"{what}: session refused ({code}); logged in again, nothing resent")
            if answer.status != 429:
                self.touch()  # the venue knew the session: it was used
            raise self._error(answer, what, write=method != "GET")

    def _error(self, answer: _Answer, what: str, *, write: bool) -> GatewayError:
        code = _error_code(answer.body)
        status = answer.status
        if status == 429 or code == RATE_LIMIT_ERROR:
            wait = answer.retry_after_s or 1.0
            self.gate.quiet(wait)
            return VenueRateLimited(self.venue, f"{what}: HTTP {status} {code or 'rate limited'}", wait)
        if code in AUTH_ERRORS or status in (401, 403):
            return VenueAuthError(self.venue, f"{what}: HTTP {status} {code or 'unauthorized'}")
        if status >= 500:
            if write:  # the venue may have acted on it: only a lookup can tell
                return RequestTimedOut(self.venue, f"{what}: HTTP {status} {code}; outcome unknown")
            return VenueUnavailable(self.venue, f"{what}: HTTP {status} {code or 'unavailable'}")
        if status == 404:
            return CapitalComNotFound(self.venue, status, code or "not found", what)
        return CapitalComError(self.venue, status, code or "error", what)

    async def _get(self, path: str, decoder: type[T], params: dict[str, str] | None = None) -> T:
        body = await self.request("GET", path, params=params)
        return _decode(body, decoder, self.venue, path)

    # ------------------------------------------------------------------ reads

    async def ping(self) -> None:
        await self.request("GET", f"{API}/ping")

    async def market(self, epic: str) -> MarketDetails:
        return await self._get(f"{API}/markets/{epic}", MarketDetails)

    async def markets(self, epics: Sequence[str]) -> list[MarketDetails]:
        """Details of `epics` (batches of 50 per request); epics the venue does not know are simply absent."""
        out: list[MarketDetails] = []
        for i in range(0, len(epics), MAX_EPICS_PER_REQUEST):
            chunk = ",".join(epics[i : i + MAX_EPICS_PER_REQUEST])
            result = await self._get(f"{API}/markets", MarketDetailsList, {"epics": chunk})
            out.extend(result.marketDetails)
        return out

    async def prices(
        self,
        epic: str,
        *,
        resolution: str = "HOUR",
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
        max: int = MAX_PRICES_PER_REQUEST,  # the API's own parameter name
    ) -> Prices:
        """Historical bid/ask bars of `epic` (`GET /api/v1/prices/{epic}`), oldest first: those opening in
        [start, end] (the venue sends `from` / `to` as `YYYY-MM-DDTHH:MM:SS` in UTC), at most `max` (1..1000).

        `start` / `end` must be timezone-aware: a naive time would be read in some unknown zone. Errors name the epic
        (the path carries it); an epic the venue does not know is CapitalComNotFound."""
        if not epic or "/" in epic or "?" in epic:
            raise ValueError(f"{epic!r} is not a Capital.com epic")
        if resolution not in RESOLUTIONS:
            raise ValueError(f"{epic}: resolution must be one of {sorted(RESOLUTIONS)}, got {resolution!r}")
        if not 1 <= max <= MAX_PRICES_PER_REQUEST:
            raise ValueError(f"{epic}: max must be 1..{MAX_PRICES_PER_REQUEST}, got {max}")
        params = {"resolution": resolution, "max": str(max)}
        for name, at in (("from", start), ("to", end)):
            if at is not None:
                params[name] = api_time(at, f"{epic}: {name}")
        if start is not None and end is not None and start > end:
            raise ValueError(f"{epic}: from {params['from']} is after to {params['to']}")
        return await self._get(f"{API}/prices/{epic}", Prices, params)

    async def positions(self) -> list[PositionEntry]:
        return (await self._get(f"{API}/positions", Positions)).positions

    async def position(self, deal_id: str) -> PositionEntry:
        return await self._get(f"{API}/positions/{deal_id}", PositionEntry)

    async def working_orders(self) -> list[WorkingOrderEntry]:
        return (await self._get(f"{API}/workingorders", WorkingOrders)).workingOrders

    async def confirm(self, deal_reference: str) -> Confirm:
        return await self._get(f"{API}/confirms/{deal_reference}", Confirm)

    # ------------------------------------------------------------------ writes (raw: one request each, never resent)

    async def post_position(self, body: Mapping[str, Any]) -> str:
        return await self._write("POST", f"{API}/positions", body)

    async def delete_position(self, deal_id: str) -> str:
        return await self._write("DELETE", f"{API}/positions/{deal_id}", None)

    async def post_working_order(self, body: Mapping[str, Any]) -> str:
        return await self._write("POST", f"{API}/workingorders", body)

    async def delete_working_order(self, deal_id: str) -> str:
        return await self._write("DELETE", f"{API}/workingorders/{deal_id}", None)

    async def _write(self, method: str, path: str, body: Mapping[str, Any] | None) -> str:
        answer = await self.request(method, path, kind="trade", json=body)
        return _decode(answer, DealReference, self.venue, path).dealReference


def _decode(body: bytes, decoder: type[T], venue: str, path: str) -> T:
    try:
        return msgspec.json.decode(body, type=decoder)
    except msgspec.MsgspecError as exc:
        raise CapitalComError(venue, 200, f"unreadable answer ({exc})", path.removeprefix(API)) from None


def api_time(at: dt.datetime, what: str = "time") -> str:
    """`at` as the API's `from` / `to` text: `YYYY-MM-DDTHH:MM:SS` in UTC. ValueError for a naive datetime."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{what}: {at.isoformat()} has no time zone (give a timezone-aware UTC time)")
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _error_code(body: bytes) -> str:
    with contextlib.suppress(msgspec.MsgspecError):
        return ERROR_DECODER.decode(body).errorCode
    return ""


def _retry_after_s(value: str | None) -> float:
    if not value:
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        return 0.0
    return seconds if math.isfinite(seconds) and seconds > 0 else 0.0
