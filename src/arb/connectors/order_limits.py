"""One venue's gate for trading calls: its documented order-count limits, and the silence a 429/418 or a maintenance
window demands.

Why here and not only ccxt's limiter: ccxt (`enableRateLimit`) paces *request weight*, but venues also count
*orders* (Binance: 50 new orders per 10 s and 160,000 per day per account; OKX: 60 place-order requests per 2 s per
instrument), and a venue that answered 429/418 must hear nothing from us until its Retry-After has passed (FAULTS
E10: Binance bans the IP, with 418, for calls made during that time). Likewise a venue in maintenance is left alone
for a backoff instead of being asked again in a loop (E13). All of it is decided locally, before a request exists.

- `acquire(action, symbol)` gates a create or cancel: every configured sliding window (`OrderRateLimit`) that counts
  the action must have room. If one is full, the call waits for room when that is at most `max_wait_s` away, and
  otherwise raises `VenueRateLimited` at once (nothing is sent; `retry_after_s` says when there will be room).
- `check()` gates every call (reads too): while a venue-imposed rate-limit block is on it raises `VenueRateLimited`,
  while a maintenance backoff is on, `VenueUnavailable`.
- `rate_limited(retry_after_s)` / `unavailable(retry_after_s)` start those blocks; `succeeded()` resets the
  maintenance backoff's doubling.

Why not `asyncio-throttle` (a project dependency): its `Throttler` only waits, polling every 10 ms, on the real
monotonic clock; it cannot say how long a wait would be (to refuse a long one), and it cannot run on a test clock.
The window here is the same deque of timestamps, with those two things added.

Clock and sleep are injected, so the unit tests run on a fake clock.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Final, Literal

from arb.config.schema import OrderRateLimit
from arb.executor.venue import VenueRateLimited, VenueUnavailable

log = logging.getLogger(__name__)

Action = Literal["create", "cancel"]

MAX_WAIT_S: Final = 1.0
"""Longest a create/cancel waits for room in an order-count window; a longer wait is refused (the opportunity it
was for would be gone by then)."""
BACKOFF_INITIAL_S: Final = 5.0
BACKOFF_MAX_S: Final = 300.0
"""A venue in maintenance (or unreachable) with no Retry-After is left alone 5 s, then 10, 20, ... up to 5 min while
it keeps failing; a success resets it."""


class SlidingWindow:
    """At most `count` events in any `window_s` seconds (timestamps of the last `count` events kept)."""

    def __init__(self, count: int, window_s: float) -> None:
        if count <= 0 or not window_s > 0:
            raise ValueError(f"a window needs count > 0 and window_s > 0, got {count} / {window_s}")
        self.count = count
        self.window_s = window_s
        self._times: deque[float] = deque()

    def wait_s(self, now: float) -> float:
        """Seconds until one more event fits (0: it fits now)."""
        times = self._times
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if len(times) < self.count:
            return 0.0
        return times[len(times) - self.count] + self.window_s - now

    def record(self, now: float) -> None:
        self._times.append(now)
        if len(self._times) > self.count:
            self._times.popleft()

    def __len__(self) -> int:
        return len(self._times)


class OrderLimiter:
    """The gate of one venue (module docstring). Share one instance among everything that trades on the venue with
    the same keys: the limits are per account."""

    def __init__(
        self,
        venue: str,
        limits: Iterable[OrderRateLimit] = (),
        *,
        max_wait_s: float = MAX_WAIT_S,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0, got {max_wait_s}")
        self.venue = venue
        self.limits = tuple(limits)
        self.max_wait_s = max_wait_s
        self._clock = clock
        self._sleep = sleep
        self._windows: dict[tuple[int, str], SlidingWindow] = {}
        self._rate_limited_until = -math.inf
        self._unavailable_until = -math.inf
        self._backoff_s = 0.0

    def __repr__(self) -> str:
        return f"OrderLimiter(venue={self.venue!r}, limits={len(self.limits)})"

    # ------------------------------------------------------------------ venue-imposed blocks

    def check(self) -> None:
        """Raise if the venue must not be called now (a rate-limit block, or a maintenance backoff)."""
        now = self._clock()
        if now < self._rate_limited_until:
            left = self._rate_limited_until - now
            raise VenueRateLimited(self.venue, f"rate limited by the venue; quiet for {left:.3f} s more", left)
        if now < self._unavailable_until:
            left = self._unavailable_until - now
            raise VenueUnavailable(self.venue, f"unavailable; not called again for {left:.3f} s")

    def rate_limited(self, retry_after_s: float) -> float:
        """The venue answered 429/418: no call to it for `retry_after_s` (an earlier, longer block stands).
        Returns the seconds the block has left."""
        now = self._clock()
        self._rate_limited_until = max(self._rate_limited_until, now + max(0.0, retry_after_s))
        left = self._rate_limited_until - now
        log.warning("gateway.rate_limited venue=%s retry_after_s=%.3f quiet_s=%.3f", self.venue, retry_after_s, left)
        return left

    def unavailable(self, retry_after_s: float | None = None) -> float:
        """The venue is in maintenance or unreachable: no call for `retry_after_s`, or (None) for the next step of
        the exponential backoff. Returns the seconds the block has left."""
        if retry_after_s is None:
            self._backoff_s = min(BACKOFF_MAX_S, self._backoff_s * 2 if self._backoff_s else BACKOFF_INITIAL_S)
            retry_after_s = self._backoff_s
        now = self._clock()
        self._unavailable_until = max(self._unavailable_until, now + max(0.0, retry_after_s))
        left = self._unavailable_until - now
        log.warning("gateway.unavailable venue=%s backoff_s=%.3f", self.venue, left)
        return left

    def succeeded(self) -> None:
        """A call went through: the next maintenance starts its backoff from the beginning."""
        self._backoff_s = 0.0

    # ------------------------------------------------------------------ order-count windows

    def _applicable(self, action: Action, symbol: str) -> list[SlidingWindow]:
        out = []
        for i, limit in enumerate(self.limits):
            if action not in limit.actions:
                continue
            key = (i, symbol if limit.per == "symbol" else "")
            window = self._windows.get(key)
            if window is None:
                window = self._windows[key] = SlidingWindow(limit.count, limit.window_s)
            out.append(window)
        return out

    def wait_s(self, action: Action, symbol: str) -> float:
        """Seconds until one more `action` on `symbol` fits every window (0: now)."""
        now = self._clock()
        return max((w.wait_s(now) for w in self._applicable(action, symbol)), default=0.0)

    async def acquire(self, action: Action, symbol: str) -> None:
        """Take room for one `action` on `symbol`: at once, after a wait of at most `max_wait_s`, or not at all
        (VenueRateLimited, nothing taken). Also raises what `check` raises."""
        self.check()
        windows = self._applicable(action, symbol)
        deadline = self._clock() + self.max_wait_s
        while True:
            now = self._clock()
            wait = max((w.wait_s(now) for w in windows), default=0.0)
            if wait <= 0:
                for w in windows:
                    w.record(now)
                return
            if now + wait > deadline:
                log.warning(
                    "gateway.order_limit venue=%s action=%s symbol=%s wait_s=%.3f", self.venue, action, symbol, wait
                )
                raise VenueRateLimited(
                    self.venue, f"local order-count limit: {action} on {symbol} has room in {wait:.3f} s", wait
                )
            await self._sleep(wait)
            self.check()  # a 429 seen by another call meanwhile stops this one too
