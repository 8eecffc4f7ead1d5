"""Capital.com's historical prices behind the small ccxt-like surface `arb.strategy.candles` pages through.

`CandleStore.update` and `fetch_ohlcv_range` were written against ccxt (`fetch_ohlcv(symbol, timeframe, since,
limit)` -> `[[ms, open, high, low, close, volume]]`, `parse_timeframe`, `enableRateLimit`, `markets`,
`load_markets()`); Capital.com has no ccxt class, so this adapter gives its `GET /api/v1/prices/{epic}` that shape.

Prices: a CFD bar carries bid and ask OHLC; the candle is the MID of the two, field by field (spread-neutral, so a
widening spread at the daily roll or over a weekend does not read as a price move). Volume is `lastTradedVolume`.

Paging: a request for `limit` bars from `since` asks for the window [since, since + (limit - 1) h], so the venue's
answer is the same whichever end it trims from. The venue has no bar for hours its market was closed (an FX weekend,
a commodity's daily break), so a window may come back short or empty; an empty one that ends before now is stepped
over (one request per window), because `CandleStore.update` reads an empty page as "no more data". The gaps that
remain are filled by `arb.strategy.candles.clean` (flat bars, `filled=True`).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

from arb.connectors.capital_com.client import MAX_PRICES_PER_REQUEST, CapitalComClient
from arb.connectors.capital_com.wire import PricePoint

HOUR_MS: Final = 3_600_000
TIMEFRAMES: Final = {"1h": ("HOUR", HOUR_MS)}
"""ccxt timeframe -> Capital.com resolution and bar length; only what the directional layer fetches."""


def mid_candle(point: PricePoint, epic: str) -> list[float]:
    """`[open time ms, open, high, low, close, volume]` of one Capital.com bar, prices the bid/ask mid.

    ValueError naming the epic when the bar's time cannot be read."""
    text = point.snapshotTimeUTC
    try:
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{epic}: bar time {text!r} is not an ISO time") from None
    at = at.replace(tzinfo=dt.UTC) if at.tzinfo is None else at.astimezone(dt.UTC)
    ms = int(at.timestamp() * 1000)
    return [
        ms,
        point.openPrice.mid,
        point.highPrice.mid,
        point.lowPrice.mid,
        point.closePrice.mid,
        float(point.lastTradedVolume),
    ]


class CapitalComCandles:
    """1H mid candles of `epics` through an open `CapitalComClient` (module docstring). The client's RequestGate
    keeps the documented request limits, hence `enableRateLimit`; the client's owner closes it."""

    enableRateLimit: Final = True

    def __init__(
        self, client: CapitalComClient, epics: Iterable[str], *, clock: Callable[[], float] = time.time
    ) -> None:
        self.client = client
        self.id = client.venue
        self.epics = list(dict.fromkeys(epics))
        self.markets: dict[str, dict[str, Any]] = {}
        self._clock = clock

    def __repr__(self) -> str:
        return f"CapitalComCandles(venue={self.id!r}, epics={len(self.epics)})"

    async def load_markets(self) -> dict[str, dict[str, Any]]:
        """The epics (of those asked for) the venue lists now, as `markets` (epic -> its id, name and type)."""
        details = await self.client.markets(self.epics)
        self.markets = {
            d.epic: {"id": d.epic, "symbol": d.epic, "name": d.instrument.name, "type": d.instrument.type}
            for d in details
        }
        return self.markets

    @staticmethod
    def parse_timeframe(timeframe: str) -> int:
        """Seconds in a bar (ccxt's method of the same name)."""
        return _timeframe(timeframe)[1] // 1000

    async def fetch_ohlcv(
        self, symbol: str, timeframe: str = "1h", since: int | None = None, limit: int | None = None
    ) -> list[list[float]]:
        """Mid candles of epic `symbol` opening at or after `since` (ms; None: the newest `limit`), at most `limit`
        (capped at the venue's 1000), oldest first."""
        resolution, step = _timeframe(timeframe)
        count = MAX_PRICES_PER_REQUEST if limit is None else limit
        if not 1 <= count:
            raise ValueError(f"{symbol}: limit must be at least 1, got {limit}")
        count = min(count, MAX_PRICES_PER_REQUEST)
        if since is None:
            answer = await self.client.prices(symbol, resolution=resolution, max=count)
            return [mid_candle(p, symbol) for p in answer.prices]
        now = int(self._clock() * 1000)
        start = -(-since // step) * step
        while True:
            end = start + (count - 1) * step
            answer = await self.client.prices(
                symbol, resolution=resolution, start=_utc(start), end=_utc(end), max=count
            )
            if answer.prices or end >= now:
                return [mid_candle(p, symbol) for p in answer.prices]
            start = end + step  # a window with the market closed throughout: step over it


def _timeframe(timeframe: str) -> tuple[str, int]:
    found = TIMEFRAMES.get(timeframe)
    if found is None:
        raise ValueError(f"Capital.com candles: timeframe {timeframe!r} not supported (only {', '.join(TIMEFRAMES)})")
    return found


def _utc(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
