"""Capital.com's documented request limits, enforced on our side before a request exists.

The limits (https://capital.com/api-general-information, https://open-api.capital.com/ "Rate limits"): at most
10 requests a second per user; one position or working-order request (`POST /positions`, `POST /workingorders`,
and their closes/deletes) per 0.1 s; one session creation (`POST /session`) per second. A request over them is
answered 429 (`error.too-many.requests`), so the client never sends one: every request first takes room in the
windows that count it, waiting when there is none (the waits are at most a second; nothing is refused).

Why windows with a margin: the venue counts arrival times, ours are send times; network jitter can bunch requests
that left 1.0 s apart into less. Each window is stretched by `margin` (5 %), which costs 5 % of the budget and keeps
the venue's count under its limit. After a 429 (or any Retry-After), nothing at all is sent until it has passed.

One gate per user (API key): the limits are per user, so every client of one account in one process shares it.
Clock and sleep are injected for the unit tests.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final, Literal

import msgspec

from arb.connectors.order_limits import SlidingWindow

log = logging.getLogger(__name__)

Kind = Literal["read", "trade", "session"]
"""`trade`: a position / working-order request; `session`: a session creation; `read`: anything else."""


class RateLimits(msgspec.Struct, frozen=True, kw_only=True):
    requests: int = 10
    requests_window_s: float = 1.0
    trades: int = 1
    trades_window_s: float = 0.1
    sessions: int = 1
    sessions_window_s: float = 1.0
    margin: float = 1.05
    """Each window is this much longer on our side than on the venue's (see the module docstring)."""

    def __post_init__(self) -> None:
        for name in ("requests", "trades", "sessions"):
            if getattr(self, name) < 1:
                raise ValueError(f"RateLimits.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("requests_window_s", "trades_window_s", "sessions_window_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"RateLimits.{name} must be a positive number, got {value!r}")
        if not (math.isfinite(self.margin) and self.margin >= 1.0):
            raise ValueError(f"RateLimits.margin must be >= 1, got {self.margin!r}")


DOCUMENTED: Final = RateLimits()


class RequestGate:
    """The windows of one user. `await gate.acquire(kind)` returns when a request of `kind` may be sent now.

    Requests go in the order they asked (one lock), so a burst is spread evenly instead of racing."""

    def __init__(
        self,
        limits: RateLimits = DOCUMENTED,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        keep_times: int = 1000,
    ) -> None:
        m = limits.margin
        self.limits = limits
        self._all = SlidingWindow(limits.requests, limits.requests_window_s * m)
        self._windows: dict[Kind, tuple[SlidingWindow, ...]] = {
            "read": (self._all,),
            "trade": (self._all, SlidingWindow(limits.trades, limits.trades_window_s * m)),
            "session": (self._all, SlidingWindow(limits.sessions, limits.sessions_window_s * m)),
        }
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self._quiet_until = -math.inf
        self.sent: deque[tuple[float, Kind]] = deque(maxlen=keep_times)
        """(clock time, kind) of the most recent requests let through, newest last."""

    def wait_s(self, kind: Kind) -> float:
        """Seconds until a request of `kind` fits (0: now)."""
        now = self._clock()
        return max(self._quiet_until - now, *(w.wait_s(now) for w in self._windows[kind]), 0.0)

    async def acquire(self, kind: Kind) -> float:
        """Wait for room, take it; returns the clock time the request is let through."""
        windows = self._windows[kind]
        async with self._lock:
            while True:
                now = self._clock()
                wait = max(self._quiet_until - now, *(w.wait_s(now) for w in windows))
                if wait <= 0:
                    for w in windows:
                        w.record(now)
                    self.sent.append((now, kind))
                    return now
                await self._sleep(wait)

    def quiet(self, seconds: float) -> None:
        """The venue said to wait (429 with Retry-After): nothing is let through for `seconds`."""
        until = self._clock() + max(0.0, seconds)
        if until > self._quiet_until:
            self._quiet_until = until
            log.warning("capital_com.rate_limited quiet_s=%.3f", seconds)
