"""The per-venue order gate on a fake clock: order-count windows (wait when short, refuse when long), the silence
after a 429/418 (FAULTS E10) and the backoff after maintenance (E13)."""

from __future__ import annotations

import asyncio

import pytest

from arb.config import load_settings
from arb.config.schema import OrderRateLimit
from arb.connectors.order_limits import BACKOFF_INITIAL_S, BACKOFF_MAX_S, OrderLimiter, SlidingWindow
from arb.executor.venue import VenueRateLimited, VenueUnavailable


class FakeClock:
    """Monotonic seconds that move only when a test (or a sleep) moves them."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def limiter(clock: FakeClock, *limits: OrderRateLimit, max_wait_s: float = 1.0) -> OrderLimiter:
    return OrderLimiter("binance", limits, max_wait_s=max_wait_s, clock=clock, sleep=clock.sleep)


async def test_creates_within_a_window_pass_at_once_and_the_next_waits_until_the_oldest_leaves_it() -> None:
    clock = FakeClock()
    gate = limiter(clock, OrderRateLimit(count=3, window_s=1.0))
    for _ in range(2):
        await gate.acquire("create", "BTC/USDT")
    clock.now += 0.4
    await gate.acquire("create", "BTC/USDT")

    await gate.acquire("create", "BTC/USDT")

    assert clock.slept == [pytest.approx(0.6)]  # until the first two leave the window, at t+1.0
    assert clock.now == pytest.approx(1001.0)


async def test_a_wait_longer_than_max_wait_is_refused_at_once_and_takes_no_room() -> None:
    clock = FakeClock()
    gate = limiter(clock, OrderRateLimit(count=2, window_s=10.0))
    await gate.acquire("create", "BTC/USDT")
    await gate.acquire("create", "BTC/USDT")

    with pytest.raises(VenueRateLimited, match="local order-count limit") as refused:
        await gate.acquire("create", "BTC/USDT")

    assert refused.value.retry_after_s == pytest.approx(10.0)
    assert clock.slept == []
    clock.now += 9.999
    assert gate.wait_s("create", "BTC/USDT") == pytest.approx(0.001)
    clock.now += 0.001
    await gate.acquire("create", "BTC/USDT")  # exactly when the window frees, not before
    assert clock.slept == []


async def test_per_symbol_windows_are_separate_and_per_account_windows_are_shared() -> None:
    clock = FakeClock()
    gate = limiter(
        clock, OrderRateLimit(count=1, window_s=2.0, per="symbol"), OrderRateLimit(count=3, window_s=2.0), max_wait_s=0
    )
    await gate.acquire("create", "BTC/USDT")
    await gate.acquire("create", "ETH/USDT")

    with pytest.raises(VenueRateLimited):
        await gate.acquire("create", "BTC/USDT")  # its own symbol window is full
    await gate.acquire("create", "SOL/USDT")
    with pytest.raises(VenueRateLimited):
        await gate.acquire("create", "XRP/USDT")  # the account's window is full


async def test_cancels_count_only_against_limits_that_name_them() -> None:
    clock = FakeClock()
    gate = limiter(
        clock,
        OrderRateLimit(count=1, window_s=1.0),
        OrderRateLimit(count=2, window_s=1.0, actions=["create", "cancel"]),
        max_wait_s=0,
    )
    await gate.acquire("cancel", "BTC/USDT")
    await gate.acquire("create", "BTC/USDT")  # the create-only window had room; the shared one is now full

    with pytest.raises(VenueRateLimited):
        await gate.acquire("cancel", "BTC/USDT")


async def test_concurrent_waiters_never_overfill_a_window() -> None:
    clock = FakeClock()
    gate = limiter(clock, OrderRateLimit(count=2, window_s=0.5), max_wait_s=2.0)
    granted: list[float] = []

    async def one() -> None:
        await gate.acquire("create", "BTC/USDT")
        granted.append(clock.now)

    await asyncio.gather(*(one() for _ in range(6)))

    assert len(granted) == 6
    for t in granted:  # any 0.5 s holds at most 2 grants
        assert sum(1 for u in granted if t - 0.5 < u <= t) <= 2


async def test_after_a_429_nothing_passes_until_retry_after_has_passed() -> None:
    clock = FakeClock()
    gate = limiter(clock)

    assert gate.rate_limited(2.0) == 2.0

    for wait in (0.0, 1.999):
        clock.now = 1000.0 + wait
        with pytest.raises(VenueRateLimited) as refused:
            gate.check()
        assert refused.value.retry_after_s == pytest.approx(2.0 - wait)
        with pytest.raises(VenueRateLimited):
            await gate.acquire("cancel", "BTC/USDT")
    clock.now = 1002.0
    gate.check()
    await gate.acquire("create", "BTC/USDT")


async def test_a_shorter_retry_after_does_not_shorten_a_ban_already_in_force() -> None:
    clock = FakeClock()
    gate = limiter(clock)
    gate.rate_limited(120.0)  # a 418 ban

    assert gate.rate_limited(1.0) == 120.0
    clock.now += 60
    with pytest.raises(VenueRateLimited):
        gate.check()


async def test_a_429_seen_while_a_call_waits_for_room_stops_that_call_too() -> None:
    clock = FakeClock()
    gate = limiter(clock, OrderRateLimit(count=1, window_s=0.5))
    await gate.acquire("create", "BTC/USDT")
    gate_sleep = clock.sleep

    async def sleep_then_429(seconds: float) -> None:
        await gate_sleep(seconds)
        gate.rate_limited(5.0)

    gate._sleep = sleep_then_429

    with pytest.raises(VenueRateLimited, match="rate limited by the venue"):
        await gate.acquire("create", "BTC/USDT")


async def test_maintenance_backs_off_exponentially_up_to_the_cap_and_a_success_resets_it() -> None:
    clock = FakeClock()
    gate = limiter(clock)
    backoffs = []
    for _ in range(8):
        backoffs.append(gate.unavailable())
        with pytest.raises(VenueUnavailable):
            await gate.acquire("create", "BTC/USDT")
        clock.now += backoffs[-1]
        gate.check()  # free again exactly when the backoff ends

    assert backoffs == [5.0, 10.0, 20.0, 40.0, 80.0, 160.0, BACKOFF_MAX_S, BACKOFF_MAX_S]
    gate.succeeded()
    assert gate.unavailable() == BACKOFF_INITIAL_S
    clock.now += 100
    assert gate.unavailable(retry_after_s=30.0) == 30.0  # the venue's own Retry-After wins over the backoff


def test_the_shipped_binance_limits_allow_50_orders_in_10_seconds_and_refuse_the_51st() -> None:
    clock = FakeClock()
    cfg = load_settings().venues["binance"]
    gate = OrderLimiter("binance", cfg.order_rate_limits, clock=clock, sleep=clock.sleep)

    async def burst() -> None:
        for _ in range(50):
            await gate.acquire("create", "BTC/USDT")
        with pytest.raises(VenueRateLimited) as refused:
            await gate.acquire("create", "ETH/USDT")
        assert refused.value.retry_after_s == pytest.approx(10.0)
        await gate.acquire("cancel", "BTC/USDT")  # Binance does not count cancels

    asyncio.run(burst())
    assert {(lim.count, lim.window_s) for lim in cfg.order_rate_limits} == {(50, 10.0), (160_000, 86_400.0)}


def test_bad_windows_and_limits_are_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="count > 0"):
        SlidingWindow(0, 1.0)
    with pytest.raises(ValueError, match="window_s"):
        OrderRateLimit(count=5, window_s=0)
    with pytest.raises(ValueError, match="per"):
        OrderRateLimit(count=5, window_s=1, per="ip")
    with pytest.raises(ValueError, match="actions"):
        OrderRateLimit(count=5, window_s=1, actions=["amend"])
