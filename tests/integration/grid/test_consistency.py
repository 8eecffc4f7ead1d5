"""Snapshots under concurrent writers: every snapshot holds whole batches only, and its feed position says which.

Each of 4 writers owns a quarter of the instruments and writes them, all venues, in batches that carry one generation
number (in `sequence`) for every quote; each batch spans several chunks (several script calls in one transaction).
A snapshot that showed two generations of one writer, or a position that does not count exactly the batches it
shows, would be a half-applied batch. Batches are sized past what Redis reads from a socket at once (16 kB), so
without the transaction other clients' commands really would run between a batch's chunks (checked: this suite
fails with `transaction=False`).
"""

from __future__ import annotations

import asyncio

import numpy as np
import numpy.typing as npt

from arb.grid import FeedPosition, GridLayout, PriceGrid
from arb.model import Quote
from tests.support import NS

from .support import open_grid

WRITERS = 4
GENERATIONS = 25
LAYOUT = GridLayout.from_lists([f"C{i:02d}/USD" for i in range(48)], [f"v{j}" for j in range(10)], 60_000)
CHUNK = 8
OWNED = [[x for i, x in enumerate(LAYOUT.instruments) if i % WRITERS == w] for w in range(WRITERS)]
BATCH = len(OWNED[0]) * len(LAYOUT.venues)  # 120 quotes: 15 chunks, ~40 kB, more than Redis reads at once
CHUNKS_PER_BATCH = -(-BATCH // CHUNK)


def batch(writer: int, generation: int) -> list[Quote]:
    return [
        Quote(
            venue=v,
            instrument=x,
            bid=100.0 + generation,
            bid_size=1.0,
            ask=100.5 + generation,
            ask_size=1.0,
            ts_exchange=NS,
            ts_recv=NS + generation,
            sequence=generation,
        )
        for x in OWNED[writer]
        for v in LAYOUT.venues
    ]


async def write_all(url: str, writer: int) -> None:
    async with open_grid(url, LAYOUT, chunk_size=CHUNK) as grid:
        for generation in range(1, GENERATIONS + 1):
            await grid.write(batch(writer, generation))
            await asyncio.sleep(0)


def generations_seen(sequence: npt.NDArray[np.int64], present: npt.NDArray[np.bool_]) -> list[int]:
    """Per writer, the one generation its cells show (0: none yet); fails on a mix."""
    seen = []
    for owned in OWNED:
        rows = [LAYOUT.instrument_index(x) for x in owned]
        cells = sequence[rows]
        if not present[rows].any():
            seen.append(0)
            continue
        assert present[rows].all(), "a writer's batch is only partly visible"
        values = np.unique(cells)
        assert len(values) == 1, f"half-applied batch: generations {values.tolist()} visible at once"
        seen.append(int(values[0]))
    return seen


def check(position: FeedPosition, seen: list[int], previous: list[int]) -> None:
    assert position.c == sum(seen) * CHUNKS_PER_BATCH, (position, seen)
    assert all(now >= before for now, before in zip(seen, previous, strict=True)), "a snapshot went back in time"


async def test_grid_snapshots_under_concurrent_writers_hold_whole_batches_only(redis_url: str) -> None:
    async with open_grid(redis_url, LAYOUT, chunk_size=CHUNK) as reader:
        writers = [asyncio.create_task(write_all(redis_url, w)) for w in range(WRITERS)]
        previous = [0] * WRITERS
        snapshots = 0
        while not all(t.done() for t in writers) or snapshots < 5:
            snap = await reader.read_grid()
            seen = generations_seen(snap.sequence, snap.present)
            check(snap.position, seen, previous)
            previous = seen
            snapshots += 1
        await asyncio.gather(*writers)
        final = await reader.read_grid()

    assert generations_seen(final.sequence, final.present) == [GENERATIONS] * WRITERS
    assert final.position.c == WRITERS * GENERATIONS * CHUNKS_PER_BATCH
    assert snapshots >= 5


async def test_quote_snapshots_under_concurrent_writers_hold_whole_batches_only(redis_url: str) -> None:
    async with open_grid(redis_url, LAYOUT, chunk_size=CHUNK) as reader:
        writers = [asyncio.create_task(write_all(redis_url, w)) for w in range(WRITERS)]
        previous = [0] * WRITERS
        while not all(t.done() for t in writers):
            snap = await reader.read_quotes()
            sequence = np.zeros(LAYOUT.shape, np.int64)
            present = np.zeros(LAYOUT.shape, np.bool_)
            for (x, v), view in snap.quotes.items():
                i, j = LAYOUT.instrument_index(x), LAYOUT.venue_index(v)
                sequence[i, j], present[i, j] = view.quote.sequence, True
            seen = generations_seen(sequence, present)
            check(snap.position, seen, previous)
            previous = seen
            for x in OWNED[0][:2]:  # one instrument: every venue from the same batch
                row = await reader.read_instrument(x)
                assert len({qv.quote.sequence for qv in row.venues.values()}) <= 1
        await asyncio.gather(*writers)


async def test_a_mirror_following_concurrent_writers_ends_equal_to_the_grid(redis_url: str) -> None:
    async with open_grid(redis_url, LAYOUT, chunk_size=CHUNK) as reader:
        mirror = reader.mirror(block_ms=50)
        async with mirror.following():
            assert await mirror.wait_until(lambda m: m.valid, 5)
            await asyncio.gather(*(write_all(redis_url, w) for w in range(WRITERS)))
            final = await reader.read_grid()
            assert await mirror.wait_until(lambda m: m.position == final.position, 5)

            assert generations_seen(mirror.sequence, mirror.present) == [GENERATIONS] * WRITERS
            np.testing.assert_array_equal(mirror.bid, final.bid)
            np.testing.assert_array_equal(mirror.ts_recv, final.ts_recv)
            assert mirror.gaps == []


async def test_two_grids_on_one_redis_do_not_see_each_other(redis_url: str) -> None:
    from arb.config.schema import GridSettings

    one = PriceGrid.from_url(redis_url, LAYOUT, GridSettings(key_prefix="one"))
    two = PriceGrid.from_url(redis_url, LAYOUT, GridSettings(key_prefix="two"))
    async with one, two:
        await one.write(batch(0, 1))

        assert (await one.read_grid()).present.sum() == BATCH
        assert not (await two.read_grid()).present.any()
        assert (await two.position()).c == 0
