"""The mirror against a real Redis: it follows the feed, and fails closed, recovers and reports every gap (M8)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from arb.grid import GridUnavailable, PriceGrid
from arb.grid.embedded import EmbeddedRedis
from tests.support import NS, Clock, quote

from .support import LAYOUT, metric, metric_total, open_grid


@pytest.fixture
async def grid(redis_url: str) -> AsyncIterator[PriceGrid]:
    async with open_grid(redis_url, clock=Clock()) as g:
        yield g


async def test_a_following_mirror_shows_a_write_within_milliseconds(grid: PriceGrid) -> None:
    mirror = grid.mirror(block_ms=200)
    async with mirror.following():
        assert await mirror.wait_until(lambda m: m.valid, 5)
        started = time.perf_counter()

        await grid.write([quote("kraken", "SOL/USD", bid=42.0, ask=43.0, sequence=5)])

        assert await mirror.wait_until(lambda m: m.sequence[2, 1] == 5, 2)
        assert time.perf_counter() - started < 0.5
        assert (mirror.bid[2, 1], mirror.ask[2, 1]) == (42.0, 43.0)
        assert mirror.fresh_mask(NS).sum() == 1
        stopping = time.perf_counter()
    assert time.perf_counter() - stopping < 1.0  # the follower stops at once, even mid-XREAD
    assert not mirror.valid  # stopped following: no longer vouched for


async def test_a_mirror_starts_from_a_rebuild_of_what_is_already_there(grid: PriceGrid) -> None:
    await grid.write([quote(sequence=1), quote("dex", "ETH/USD", sequence=2)])
    mirror = grid.mirror()
    assert not mirror.valid
    assert not mirror.fresh_mask(NS).any()

    snapshot = await mirror.rebuild()

    assert mirror.valid
    assert mirror.position == snapshot.position
    assert mirror.present.sum() == 2
    assert mirror.gaps == []


async def test_a_follower_that_fell_behind_the_trimmed_feed_rebuilds_and_reports_the_gap(redis_url: str) -> None:
    async with open_grid(redis_url, feed_maxlen=10) as grid:
        await grid.write([quote(sequence=1)])
        mirror = grid.mirror(block_ms=50)
        await mirror.rebuild()
        assert mirror.position.c == 1
        before = metric("arb_grid_mirror_gaps_total", reason="trimmed")
        # the follower is not running: 400 entries go by, far more than feed_maxlen keeps
        await grid.write_many([[quote(LAYOUT.venues[k % 3], sequence=k)] for k in range(2, 402)])

        async with mirror.following():
            assert await mirror.wait_until(lambda m: m.position.c == 401 and m.valid, 5)

    assert len(mirror.gaps) == 1
    gap = mirror.gaps[0]
    assert gap.reason == "trimmed"
    assert (gap.last_c, gap.resumed_c) == (1, 401)
    assert gap.missed is not None
    assert 0 < gap.missed < 400
    assert mirror.sequence[0].tolist() == [399, 400, 401]  # the last write of each venue
    assert metric("arb_grid_mirror_gaps_total", reason="trimmed") == before + 1


async def test_while_redis_is_down_the_mirror_fails_closed_and_afterwards_rebuilds(
    private_redis: EmbeddedRedis,
) -> None:
    async with open_grid(private_redis.url, clock=time.time_ns, socket_timeout_s=0.5) as grid:
        await grid.write([quote(sequence=1)])
        mirror = grid.mirror(block_ms=100, backoff_initial_s=0.02, backoff_max_s=0.2)
        async with mirror.following():
            assert await mirror.wait_until(lambda m: m.valid and m.sequence[0, 0] == 1, 5)
            assert mirror.fresh_mask(NS)[0, 0]

            private_redis.stop()

            assert await mirror.wait_until(lambda m: not m.valid, 5)
            assert not mirror.fresh_mask(NS).any()
            with pytest.raises(GridUnavailable, match="read_grid"):
                await grid.read_grid()
            with pytest.raises(GridUnavailable, match="write"):
                await grid.write([quote(sequence=2)])

            private_redis.start()  # same port, empty: what a crashed non-persistent Redis looks like

            assert await mirror.wait_until(lambda m: m.valid, 10)
            assert not mirror.present.any()  # the old quote died with Redis; the mirror does not keep it alive
            await grid.write([quote("kraken", "ETH/USD", sequence=3)])
            assert await mirror.wait_until(lambda m: m.sequence[1, 1] == 3, 5)
            assert mirror.fresh_mask(NS).sum() == 1

    gap = mirror.gaps[-1]
    assert gap.reason == "restart"
    assert gap.missed is None
    assert gap.duration_ns > 0
    assert gap.last_c == 1


async def test_a_restart_between_two_reads_is_noticed_even_without_a_connection_error(
    private_redis: EmbeddedRedis,
) -> None:
    async with open_grid(private_redis.url, socket_timeout_s=0.5) as grid:
        for k in range(1, 6):
            await grid.write([quote(sequence=k)])
        mirror = grid.mirror(block_ms=100, backoff_initial_s=0.02, backoff_max_s=0.2)
        async with mirror.following():
            assert await mirror.wait_until(lambda m: m.valid and m.position.c == 5, 5)

            private_redis.restart()
            await grid.write([quote("dex", "SOL/USD", sequence=9)])

            assert await mirror.wait_until(lambda m: m.sequence[2, 2] == 9, 10)

    assert [g.reason for g in mirror.gaps] == ["restart"]
    assert not mirror.present[0, 0]


async def test_a_redis_too_slow_to_answer_counts_as_down_until_it_answers_again(
    private_redis: EmbeddedRedis,
) -> None:
    async with (
        open_grid(private_redis.url, clock=time.time_ns, socket_timeout_s=0.3) as grid,
        open_grid(private_redis.url, socket_timeout_s=5) as patient,
    ):
        await grid.write([quote(sequence=1)])
        mirror = grid.mirror(block_ms=50, backoff_initial_s=0.02, backoff_max_s=0.1)
        async with mirror.following():
            assert await mirror.wait_until(lambda m: m.valid, 5)
            before = metric_total("arb_grid_unavailable_total")

            await patient.client.execute_command("CLIENT", "PAUSE", "1500", "ALL")
            late_write = asyncio.create_task(patient.write([quote(sequence=2)]))  # waits out the pause

            assert await mirror.wait_until(lambda m: not m.valid, 5)
            assert not mirror.fresh_mask(NS).any()
            assert await mirror.wait_until(lambda m: m.valid and m.sequence[0, 0] == 2, 10)
            await late_write

    gap = mirror.gaps[-1]
    assert gap.reason == "unavailable"
    assert gap.missed is not None
    assert gap.duration_ns >= 300_000_000
    assert metric_total("arb_grid_unavailable_total") > before


async def test_a_mirror_started_while_redis_is_down_waits_and_then_starts_without_a_gap(
    private_redis: EmbeddedRedis,
) -> None:
    async with open_grid(private_redis.url, socket_timeout_s=0.3) as grid:
        private_redis.stop()
        mirror = grid.mirror(block_ms=50, backoff_initial_s=0.02, backoff_max_s=0.1)
        async with mirror.following():
            await asyncio.sleep(0.3)
            assert not mirror.valid

            private_redis.start()
            await grid.write([quote(sequence=4)])

            assert await mirror.wait_until(lambda m: m.valid and m.sequence[0, 0] == 4, 10)
        assert mirror.gaps == []
