"""Perpetual funding rates as the grid stores them (`{arb}:funding`, one hash field per perp cell).

Why a separate small record and not a field of Quote: funding changes every few hours and arrives on its own REST or
WebSocket channel, while quotes change many times a second; mixing them would either re-send the rate with every
book update or make a quote carry a value of unknown age. Each record carries its own `ts_ns`, and a reader judges
it stale after two funding intervals (the venue should have published the next rate by then): the scanner then
treats the rate as unknown, never as zero.

Sign convention (the venues' and ccxt's): a positive `rate` means longs pay shorts, `rate` x position notional once
per `interval_h` hours.
"""

from __future__ import annotations

import math
from typing import Annotated, Final

import msgspec

NS_PER_HOUR: Final = 3_600_000_000_000
STALE_INTERVALS: Final = 2.0
"""A rate older than this many funding intervals is stale."""


class FundingRate(msgspec.Struct, frozen=True, kw_only=True):
    """The current (or predicted next) funding rate of one perp on one venue."""

    venue: str
    instrument: str
    rate: float
    """Fraction of position notional paid by longs to shorts per interval (negative: shorts pay)."""
    interval_h: Annotated[float, msgspec.Meta(gt=0.0)]
    ts_ns: Annotated[int, msgspec.Meta(gt=0)]
    """When the venue published it (UTC ns); staleness is judged on it."""
    next_ts_ns: Annotated[int, msgspec.Meta(ge=0)] = 0
    """When it is next charged (UTC ns; 0 when the venue does not say)."""

    def problems(self) -> list[str]:
        """What makes this record unusable (decode checks the bounds; NaN/inf need this)."""
        out = []
        if not math.isfinite(self.rate):
            out.append(f"rate must be a finite number, got {self.rate!r}")
        if not (math.isfinite(self.interval_h) and self.interval_h > 0):
            out.append(f"interval_h must be a positive number of hours, got {self.interval_h!r}")
        if self.ts_ns <= 0 or self.next_ts_ns < 0:
            out.append("ts_ns must be positive UTC nanoseconds (next_ts_ns >= 0)")
        return out

    def stale(self, now_ns: int) -> bool:
        """Older than `STALE_INTERVALS` funding intervals (the boundary itself is still fresh)."""
        return now_ns - self.ts_ns > STALE_INTERVALS * self.interval_h * NS_PER_HOUR


ENCODER: Final = msgspec.msgpack.Encoder()
DECODER: Final = msgspec.msgpack.Decoder(FundingRate)
