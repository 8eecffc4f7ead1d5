"""The documented Capital.com limits, on a fake clock: 10 requests/s, one trade per 0.1 s, one session per second."""

from __future__ import annotations

import asyncio

import pytest

from arb.connectors.capital_com.limits import RateLimits, RequestGate


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def gate(t: FakeTime, **limits: float) -> RequestGate:
    return RequestGate(RateLimits(**limits), clock=t.clock, sleep=t.sleep)  # type: ignore[arg-type]


async def test_reads_go_ten_per_window_and_the_window_is_stretched_by_the_margin() -> None:
    t = FakeTime()
    g = gate(t)

    times = [await g.acquire("read") for _ in range(25)]

    # 10 at once, the next 10 when the first left the (1.0 s x 1.05) window, then the last 5.
    assert times == [0.0] * 10 + [pytest.approx(1.05)] * 10 + [pytest.approx(2.1)] * 5


async def test_trading_requests_are_spaced_by_a_tenth_of_a_second_plus_margin() -> None:
    t = FakeTime()
    g = gate(t)

    times = [await g.acquire("trade") for _ in range(3)]

    assert times == [0.0, pytest.approx(0.105), pytest.approx(0.21)]


async def test_a_session_creation_waits_a_second_after_the_last_and_counts_as_a_request() -> None:
    t = FakeTime()
    g = gate(t)

    first = await g.acquire("session")
    second = await g.acquire("session")
    reads = [await g.acquire("read") for _ in range(10)]

    assert (first, second) == (0.0, pytest.approx(1.05))
    # The window at 1.05 holds the second session: room for 9 reads, the 10th waits for the next window.
    assert reads[:9] == [pytest.approx(1.05)] * 9
    assert reads[9] == pytest.approx(2.1)


async def test_after_quiet_nothing_at_all_goes_until_the_retry_after_has_passed() -> None:
    t = FakeTime()
    g = gate(t)
    await g.acquire("read")

    g.quiet(2.5)

    assert g.wait_s("read") == pytest.approx(2.5)
    assert await g.acquire("trade") == pytest.approx(2.5)


async def test_concurrent_callers_go_in_arrival_order_within_the_limits() -> None:
    t = FakeTime()
    g = gate(t, requests=2, requests_window_s=1.0, margin=1.0)

    results = await asyncio.gather(*(g.acquire("read") for _ in range(5)))

    assert results == [0.0, 0.0, 1.0, 1.0, 2.0]
    assert [k for _, k in g.sent] == ["read"] * 5


@pytest.mark.parametrize(
    ("field", "value"),
    [("requests", 0), ("trades_window_s", 0.0), ("margin", 0.9), ("sessions_window_s", float("nan"))],
)
def test_impossible_limits_are_refused_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"RateLimits.{field}"):
        RateLimits(**{field: value})  # type: ignore[arg-type]
