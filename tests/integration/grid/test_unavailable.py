"""FAULTS M8, Redis down or slow: every read fails closed with GridUnavailable, quickly, and works again after."""

from __future__ import annotations

import time

import pytest

from arb.grid import GridUnavailable
from arb.grid.embedded import EmbeddedRedis
from tests.support import quote

from .support import metric, open_grid


async def test_reads_and_writes_on_a_stopped_redis_raise_grid_unavailable(private_redis: EmbeddedRedis) -> None:
    async with open_grid(private_redis.url, socket_timeout_s=0.3) as grid:
        await grid.write([quote()])
        private_redis.stop()
        before = metric("arb_grid_unavailable_total", operation="read_grid")

        for operation, call in [
            ("read_grid", grid.read_grid),
            ("read_instrument", lambda: grid.read_instrument("BTC/USD")),
            ("read_quotes", grid.read_quotes),
            ("position", grid.position),
            ("write", lambda: grid.write([quote(sequence=2)])),
            ("ping", grid.ping),
        ]:
            started = time.perf_counter()
            with pytest.raises(GridUnavailable, match=f"grid {operation} failed: Redis unavailable") as info:
                await call()
            assert time.perf_counter() - started < 1.0
            assert info.value.operation == operation
            assert info.value.reason
        assert metric("arb_grid_unavailable_total", operation="read_grid") == before + 1

        private_redis.start()

        assert (await grid.read_grid()).present.sum() == 0  # back, and empty: it was not persistent
        assert (await grid.write([quote(sequence=3)])).c == 1


async def test_a_redis_that_does_not_answer_is_unavailable_after_the_socket_timeout(
    private_redis: EmbeddedRedis,
) -> None:
    async with open_grid(private_redis.url, socket_timeout_s=0.25) as grid, open_grid(private_redis.url) as admin:
        await grid.write([quote()])
        await admin.client.execute_command("CLIENT", "PAUSE", "600", "ALL")
        started = time.perf_counter()

        with pytest.raises(GridUnavailable, match="Timeout"):
            await grid.read_grid()

        assert 0.2 < time.perf_counter() - started < 0.9
        await admin.client.execute_command("CLIENT", "UNPAUSE")
        assert (await grid.read_grid()).present.sum() == 1
