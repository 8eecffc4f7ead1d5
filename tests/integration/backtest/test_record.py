"""The recorder against a real Redis grid: every quote of the feed, in order, with depth and both timestamps; only
what came after it started; filters; and a feed trimmed under a stalled recorder is a gap in the manifest, not a
silently shorter tape."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from arb.backtest.record import Recorder
from arb.backtest.tape import read_entries, read_manifest
from arb.config import load_settings
from arb.config.schema import Settings
from arb.model import Quote
from tests.integration.grid.support import LAYOUT, open_grid
from tests.support import MS, NS, quote


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings()


def book(venue: str, instrument: str, k: int) -> Quote:
    bids = tuple((100.0 - k * 0.01 - lvl * 0.1, 1.0 + lvl) for lvl in range(5))
    asks = tuple((100.5 + k * 0.01 + lvl * 0.1, 2.0 + lvl) for lvl in range(5))
    return quote(venue, instrument, bid=bids[0][0], ask=asks[0][0], bids=bids, asks=asks, sequence=k,
                 ts_exchange=NS + k * MS, ts_recv=NS + k * MS + 3 * MS)  # fmt: skip


async def test_the_tape_holds_every_quote_written_after_it_started_in_feed_order(
    redis_url: str, tmp_path: Path, settings: Settings
) -> None:
    async with open_grid(redis_url) as grid:
        await grid.write([book("binance", "BTC/USD", 0)])  # before the recording: not on the tape
        written = [[book(LAYOUT.venues[k % 2], LAYOUT.instruments[k % 3], k)] for k in range(1, 41)]
        written.append([book("binance", "ETH/USD", 41), book("kraken", "ETH/USD", 42)])  # one entry, two quotes
        async with Recorder(grid, tmp_path / "tape", settings, chunk_entries=7) as rec:
            for batch in written:
                await grid.write(batch)
            await asyncio.sleep(0.05)
        manifest = rec.manifest

    entries = list(read_entries(tmp_path / "tape"))
    assert [q for _, _, qs in entries for q in qs] == [q for batch in written for q in batch]  # depth and times too
    assert [c for c, _, _ in entries] == list(range(2, 2 + len(written)))
    assert [ns for _, ns, _ in entries] == sorted(ns for _, ns, _ in entries)
    assert (manifest.entries, manifest.quotes, manifest.gaps) == (41, 42, [])
    assert len(manifest.chunks) == 6  # 41 entries, 7 a chunk
    assert (manifest.first_recv_ns, manifest.last_recv_ns) == (NS + 4 * MS, NS + 45 * MS)
    assert read_manifest(tmp_path / "tape") == manifest


async def test_venue_and_instrument_filters_keep_only_what_was_asked_for(
    redis_url: str, tmp_path: Path, settings: Settings
) -> None:
    async with open_grid(redis_url) as grid:
        async with Recorder(grid, tmp_path / "tape", settings, venues=["kraken"], instruments=["BTC/USD"]) as rec:
            batch = [book("kraken", "BTC/USD", 1), book("binance", "BTC/USD", 2), book("kraken", "SOL/USD", 3)]
            await grid.write(batch)
            await asyncio.sleep(0.05)

    [(_, _, quotes)] = list(read_entries(tmp_path / "tape"))
    assert [(q.venue, q.instrument) for q in quotes] == [("kraken", "BTC/USD")]
    assert rec.manifest.filtered_out == 2
    assert rec.manifest.venues == ["kraken"]


async def test_a_feed_trimmed_while_the_recorder_stalled_is_a_gap_in_the_manifest(
    redis_url: str, tmp_path: Path, settings: Settings
) -> None:
    async with open_grid(redis_url, feed_maxlen=10) as grid:
        async with Recorder(grid, tmp_path / "tape", settings) as rec:
            await grid.write([book("binance", "BTC/USD", 1)])
            await asyncio.sleep(0.3)  # the recorder has read entry 1

            def burst() -> None:  # another writer, while this process (and its recorder) is stalled
                async def write() -> None:
                    async with open_grid(redis_url, feed_maxlen=10) as other:
                        for k in range(2, 202):
                            await other.write([book("kraken", "BTC/USD", k)])

                asyncio.run(write())

            writer = threading.Thread(target=burst)
            writer.start()
            writer.join()  # blocks the event loop: the recorder cannot read while 200 entries go by
        manifest = rec.manifest

    assert len(manifest.gaps) == 1
    gap = manifest.gaps[0]
    assert gap.after_c == 1
    assert 180 <= gap.missed < 200  # the feed kept ~10 of the 200 (MAXLEN ~ trims by whole nodes)
    entries = list(read_entries(tmp_path / "tape"))
    assert entries[-1][0] == 201  # what was still there was recorded
    assert manifest.entries == len(entries) == 1 + 200 - gap.missed


async def test_an_existing_tape_is_never_overwritten_and_unknown_filters_are_refused(
    redis_url: str, tmp_path: Path, settings: Settings
) -> None:
    async with open_grid(redis_url) as grid:
        async with Recorder(grid, tmp_path / "tape", settings):
            pass
        with pytest.raises(ValueError, match="already holds a tape"):
            Recorder(grid, tmp_path / "tape", settings)
        with pytest.raises(ValueError, match="not in the settings: nasdaq"):
            Recorder(grid, tmp_path / "other", settings, venues=["nasdaq"])
    assert read_manifest(tmp_path / "tape").entries == 0
