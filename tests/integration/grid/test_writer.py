"""GridWriter: the connectors' batching writer. Cheap put(), flushes by size and by time, survives Redis outages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from arb.grid import GridUnavailable, InvalidQuote, PriceGrid
from arb.grid.embedded import EmbeddedRedis
from arb.model import decode_quotes
from tests.support import Clock, quote

from .support import eventually, metric, open_grid


@pytest.fixture
async def grid(redis_url: str) -> AsyncIterator[PriceGrid]:
    async with open_grid(redis_url, clock=Clock()) as g:
        yield g


async def wait_for_c(grid: PriceGrid, c: int, timeout_s: float = 2.0) -> bool:
    async def reached() -> bool:
        return (await grid.position()).c >= c

    return await eventually(reached, timeout_s)


async def test_a_full_batch_is_flushed_without_waiting_for_the_timer(grid: PriceGrid) -> None:
    async with grid.writer(max_batch=10, max_delay_ms=60_000) as writer:
        for k in range(10):
            writer.put(quote(sequence=k))

        assert await wait_for_c(grid, 1)
        assert writer.written == 10
        assert writer.pending == 0


async def test_a_partial_batch_is_flushed_after_the_delay(grid: PriceGrid) -> None:
    async with grid.writer(max_batch=1000, max_delay_ms=20) as writer:
        writer.put(quote(sequence=1))
        writer.put(quote("kraken", sequence=2))

        assert await wait_for_c(grid, 1, timeout_s=1.0)
        assert writer.written == 2


async def test_leaving_the_block_flushes_what_is_pending(grid: PriceGrid) -> None:
    async with grid.writer(max_batch=1000, max_delay_ms=60_000) as writer:
        for k in range(5):
            writer.put(quote(sequence=k))

    assert writer.written == 5
    assert (await grid.read_grid()).sequence[0, 0] == 4


async def test_bad_quotes_are_refused_at_put_naming_them(grid: PriceGrid) -> None:
    async with grid.writer() as writer:
        with pytest.raises(InvalidQuote, match="venue='ftx'"):
            writer.put(quote("ftx"))
        with pytest.raises(InvalidQuote, match=r"sequence=3\).*crossed book"):
            writer.put(quote(bid=2.0, ask=1.0, sequence=3))
        with pytest.raises(InvalidQuote, match="wrong types"):
            writer.put(quote(bid="100.0"))
        writer.put(quote())

    assert writer.written == 1


async def test_a_writer_is_used_once_inside_its_block(grid: PriceGrid) -> None:
    writer = grid.writer()
    with pytest.raises(RuntimeError, match="inside `async with`"):
        writer.put(quote())
    async with writer:
        with pytest.raises(RuntimeError, match="cannot be opened again"):
            await writer.__aenter__()
    with pytest.raises(RuntimeError, match="closed"):
        writer.put(quote())
    with pytest.raises(RuntimeError, match="cannot be opened again"):
        await writer.__aenter__()


async def test_when_redis_falls_behind_the_oldest_pending_quotes_are_dropped_and_counted(grid: PriceGrid) -> None:
    before = metric("arb_grid_writer_dropped_total", reason="overflow")
    async with grid.writer(max_batch=10, max_pending=20, max_delay_ms=60_000) as writer:
        for k in range(50):  # no await in between: the flusher never gets a turn
            writer.put(quote(sequence=k))
        assert writer.dropped == 30

    assert writer.written == 20
    entries = await grid.client.xrange(grid.keys.feed)
    assert [q.sequence for e in entries for q in decode_quotes(e[1][b"q"])] == list(range(30, 50))
    assert metric("arb_grid_writer_dropped_total", reason="overflow") == before + 30


async def test_a_writer_rides_out_a_redis_outage_dropping_what_it_could_not_write(
    private_redis: EmbeddedRedis,
) -> None:
    async with open_grid(private_redis.url, socket_timeout_s=0.3) as grid:
        async with grid.writer(max_batch=5, max_delay_ms=10) as writer:
            writer.put(quote(sequence=1))
            assert await wait_for_c(grid, 1)

            private_redis.stop()
            for k in range(2, 12):
                writer.put(quote(sequence=k))
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)
            assert writer.dropped > 0

            private_redis.start()
            # The first write after the restart may still meet a pooled connection to the dead server; that batch is
            # dropped like any other failed write (module docstring), so the feed recovers with the quotes after it.
            put = 11

            async def kraken_written() -> bool:
                nonlocal put
                put += 1
                writer.put(quote("kraken", sequence=put))
                await asyncio.sleep(0.05)
                try:
                    return "kraken" in (await grid.read_instrument("BTC/USD")).venues
                except GridUnavailable:  # the reader may meet a stale pooled connection too
                    return False

            assert await eventually(kraken_written, timeout_s=5)

        assert writer.written + writer.dropped == put
