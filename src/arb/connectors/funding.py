"""Perpetuals' funding rates, polled with ccxt and published to the grid (`{prefix}:funding`) for the basis kind.

Why a poller and not the book stream: funding changes every few hours and comes from its own REST endpoint (Binance
USD-M: `GET /fapi/v1/premiumIndex`, https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/
rest-api/Mark-Price; intervals from `GET /fapi/v1/fundingInfo`, .../Get-Funding-Rate-Info). For each CEX venue with
configured perps (`type: perp` instruments), every `scanner.funding_refresh_s` (60 s) it calls ccxt
`fetch_funding_rates(symbols)` (else `fetch_funding_rate` per symbol) and writes one `arb.grid.funding.FundingRate`
per perp with `PriceGrid.write_funding`. Public data: no credentials.

Normalisation (`funding_rate`): `rate` is ccxt's `fundingRate`; the interval is ccxt's `interval` ("8h"), else the
venue's funding-interval list (`fetch_funding_intervals`, Binance's fundingInfo), else `DEFAULT_INTERVAL_H` with a
warning (`funding.interval_assumed`: 8 h is Binance's, Bybit's and OKX's default); `ts_ns` is the venue's
`timestamp` (else the poll time), `next_ts_ns` is `fundingTimestamp`. A perp whose rate is missing or not a finite
number gets no record: the scanner then treats its funding as unknown, never as zero.

Failures (network, a venue that is down, Redis) are logged as `funding.poll_failed` and retried after `retry_s`; a
poller never ends its worker. The last published rates age out in the scanner after two intervals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from arb.connectors.ccxt_pro import LocalEndpoint
from arb.connectors.polling import close_shielded, poll_forever, rest_exchange, running
from arb.connectors.wallets import ExchangeFactory, ccxt_rest_factory
from arb.grid.funding import FundingRate

if TYPE_CHECKING:
    from arb.config.schema import Settings
    from arb.grid.store import PriceGrid

log = logging.getLogger(__name__)

Publish = Callable[[Sequence[FundingRate]], Awaitable[None]]

DEFAULT_INTERVAL_H: Final = 8.0
RETRY_S: Final = 15.0
NS_PER_MS: Final = 1_000_000


def interval_hours(value: Any) -> float | None:
    """ccxt's interval string ("8h", "4h", "1h") or a number of hours, as hours; None when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        hours = float(value)
    elif isinstance(value, str) and value.endswith("h") and value[:-1].replace(".", "", 1).isdigit():
        hours = float(value[:-1])
    else:
        return None
    return hours if math.isfinite(hours) and hours > 0 else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        x = float(value)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def funding_rate(
    venue: str, instrument: str, data: Mapping[str, Any], now_ns: int, *, interval_h: float | None = None
) -> FundingRate | None:
    """One FundingRate from a ccxt funding-rate structure; None when it has no usable rate.

    `interval_h` is the venue's interval for this perp from elsewhere (fundingInfo), used when the structure has none.
    """
    rate = _number(data.get("fundingRate"))
    if rate is None:
        return None
    hours = interval_hours(data.get("interval")) or interval_h or DEFAULT_INTERVAL_H
    ts_ms = _number(data.get("timestamp"))
    next_ms = _number(data.get("fundingTimestamp"))
    return FundingRate(
        venue=venue,
        instrument=instrument,
        rate=rate,
        interval_h=hours,
        ts_ns=int(ts_ms) * NS_PER_MS if ts_ms is not None and ts_ms > 0 else now_ns,
        next_ts_ns=int(next_ms) * NS_PER_MS if next_ms is not None and next_ms > 0 else 0,
    )


def venue_perps(settings: Settings, venue_id: str) -> dict[str, str]:
    """The venue's perp symbols -> instrument id (`BTC/USDT:USDT` -> `BTC/USD-PERP`)."""
    return {
        inst.venues[venue_id]: iid
        for iid, inst in settings.instruments.items()
        if inst.type == "perp" and venue_id in inst.venues
    }


class FundingPoller:
    """Reads one venue's perps' funding every `refresh_s` and publishes it (`run`), or once (`poll_once`)."""

    def __init__(
        self,
        venue_id: str,
        ccxt_id: str,
        perps: Mapping[str, str],
        publish: Publish,
        *,
        endpoint: LocalEndpoint | None = None,
        refresh_s: float = 60.0,
        retry_s: float = RETRY_S,
        exchange_factory: ExchangeFactory = ccxt_rest_factory,
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        if refresh_s <= 0 or retry_s <= 0:
            raise ValueError("refresh_s and retry_s must be > 0")
        self.venue_id = venue_id
        self.ccxt_id = ccxt_id
        self.perps = dict(perps)
        self.endpoint = endpoint
        self.refresh_s = refresh_s
        self.retry_s = retry_s
        self._publish = publish
        self._factory = exchange_factory
        self._now_ns = now_ns
        self._exchange: Any = None
        self._intervals: dict[str, float] = {}
        self._assumed: set[str] = set()
        self.polls = 0
        self.failures = 0
        self.last_error = ""

    def __repr__(self) -> str:
        return f"FundingPoller(venue={self.venue_id!r}, ccxt_id={self.ccxt_id!r}, perps={len(self.perps)})"

    def _open(self) -> Any:
        if self._exchange is None:
            config: dict[str, Any] = {
                "enableRateLimit": True,
                "options": {"fetchCurrencies": False, "fetchMargins": False, "maxRetriesOnFailure": 0},
            }
            self._exchange = rest_exchange(self._factory, self.ccxt_id, config, self.endpoint)
        return self._exchange

    async def _fetch(self, exchange: Any, symbols: list[str]) -> dict[str, Any]:
        if exchange.has.get("fetchFundingRates") is True:
            return dict(await exchange.fetch_funding_rates(symbols) or {})
        out: dict[str, Any] = {}
        for symbol in symbols:
            out[symbol] = await exchange.fetch_funding_rate(symbol)
        return out

    async def _interval_table(self, exchange: Any, symbols: list[str]) -> dict[str, float]:
        """The venue's funding interval per perp (read once per session: intervals change rarely)."""
        if self._intervals or exchange.has.get("fetchFundingIntervals") is not True:
            return self._intervals
        table = await exchange.fetch_funding_intervals(symbols) or {}
        self._intervals = {
            s: h for s, row in table.items() if isinstance(row, Mapping) and (h := interval_hours(row.get("interval")))
        }
        return self._intervals

    async def poll_once(self) -> list[FundingRate]:
        """Read every perp's funding now (raises what ccxt raises)."""
        exchange = self._open()
        if exchange.markets is None:
            await exchange.load_markets()
        symbols = [s for s in self.perps if s in exchange.markets]
        if not symbols:
            return []
        rates = await self._fetch(exchange, symbols)
        intervals: Mapping[str, float] = {}
        if any(interval_hours((rates.get(s) or {}).get("interval")) is None for s in symbols):
            intervals = await self._interval_table(exchange, symbols)
        now = self._now_ns()
        out: list[FundingRate] = []
        for symbol in symbols:
            data = rates.get(symbol)
            if not isinstance(data, Mapping):
                continue
            record = funding_rate(self.venue_id, self.perps[symbol], data, now, interval_h=intervals.get(symbol))
            if record is None:
                log.warning("funding.rate_missing venue=%s symbol=%s", self.venue_id, symbol)
                continue
            if interval_hours(data.get("interval")) is None and symbol not in intervals and symbol not in self._assumed:
                self._assumed.add(symbol)
                log.warning(
                    "funding.interval_assumed venue=%s symbol=%s interval_h=%s",
                    self.venue_id,
                    symbol,
                    record.interval_h,
                )
            out.append(record)
        return out

    async def refresh(self) -> bool:
        """One poll and publish; a failure is logged and counted, never raised. True when rates were published."""
        try:
            rates = await self.poll_once()
            if rates:
                await self._publish(rates)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a venue or Redis failing must never end the worker
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {str(exc)[:300]}"
            log.warning("funding.poll_failed venue=%s error=%r", self.venue_id, self.last_error)
            return False
        self.polls += 1
        self.last_error = ""
        log.info("funding.published venue=%s perps=%d", self.venue_id, len(rates))
        return True

    async def run(self) -> None:
        """Poll every `refresh_s` (after a failure: within `retry_s`) until cancelled; then close the exchange."""
        try:
            await poll_forever(self.refresh, self.refresh_s, self.retry_s)
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        exchange, self._exchange = self._exchange, None
        if exchange is not None:
            await close_shielded(exchange, f"funding-{self.venue_id}-close")


def pollers_for(
    settings: Settings,
    venues: Iterable[str],
    publish: Publish,
    *,
    endpoints: Mapping[str, LocalEndpoint] | None = None,
    ccxt_ids: Mapping[str, str] | None = None,
    exchange_factory: ExchangeFactory = ccxt_rest_factory,
) -> list[FundingPoller]:
    """A poller for each CEX venue in `venues` with configured perps (`ccxt_ids` overrides the class, as for the
    connectors)."""
    endpoints = endpoints or {}
    ccxt_ids = ccxt_ids or {}
    out: list[FundingPoller] = []
    for vid in venues:
        cfg = settings.venues.get(vid)
        if cfg is None or cfg.kind != "cex":
            continue
        perps = venue_perps(settings, vid)
        if not perps:
            continue
        out.append(
            FundingPoller(
                vid,
                ccxt_ids.get(vid) or cfg.ccxt_id or vid,
                perps,
                publish,
                endpoint=endpoints.get(vid),
                refresh_s=settings.scanner.funding_refresh_s,
                exchange_factory=exchange_factory,
            )
        )
    return out


@contextlib.asynccontextmanager
async def polling_funding(
    settings: Settings,
    grid: PriceGrid,
    venues: Iterable[str],
    *,
    endpoints: Mapping[str, LocalEndpoint] | None = None,
    ccxt_ids: Mapping[str, str] | None = None,
) -> AsyncIterator[list[FundingPoller]]:
    """Run a funding poller (publishing to `grid`) for every venue in `venues` with perps; stop them on exit."""
    pollers = pollers_for(settings, venues, grid.write_funding, endpoints=endpoints, ccxt_ids=ccxt_ids)
    async with running("funding", pollers):
        yield pollers
