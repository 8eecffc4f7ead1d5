"""The tape on disk: what reads back is what was appended; an incomplete, foreign or damaged tape is refused naming
the file, never read as a shorter one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from arb.backtest.tape import (
    CHUNKS,
    MANIFEST,
    Manifest,
    TapeError,
    TapeWriter,
    read_blocks,
    read_entries,
    read_manifest,
)
from tests.support import MS, NS, quote


def write_tape(directory: Path, n: int, *, chunk_entries: int = 4, after_c: int | None = 0) -> Manifest:
    manifest = Manifest(venues=["binance"], instruments=["BTC/USD"], config_hash="x", started_ns=NS, ended_ns=0)
    writer = TapeWriter(directory, manifest, after_c=after_c, chunk_entries=chunk_entries)
    for c in range(1, n + 1):
        q = quote(sequence=c, ts_recv=NS + c * MS)
        writer.append(c, NS + c * MS + 1, [q])
    return writer.close(NS + 10**9)


def test_entries_read_back_in_order_across_chunks(tmp_path: Path) -> None:
    manifest = write_tape(tmp_path, 10)

    entries = list(read_entries(tmp_path))

    assert [c for c, _, _ in entries] == list(range(1, 11))
    assert [qs[0].sequence for _, _, qs in entries] == list(range(1, 11))
    assert [ch.entries for ch in manifest.chunks] == [4, 4, 2]
    assert manifest.gaps == []
    assert read_manifest(tmp_path) == manifest


def test_a_counter_jump_is_recorded_as_a_gap(tmp_path: Path) -> None:
    manifest = write_tape(tmp_path, 3, after_c=-5)  # the feed was at -5: entries -4..0 never reached the tape

    assert [(g.after_c, g.missed) for g in manifest.gaps] == [(-5, 5)]


def test_a_tape_without_manifest_is_refused_as_unfinished(tmp_path: Path) -> None:
    write_tape(tmp_path, 3)
    (tmp_path / MANIFEST).unlink()

    with pytest.raises(TapeError, match=r"no manifest\.json .*did not finish"):
        read_manifest(tmp_path)


def test_a_damaged_chunk_is_refused_naming_the_file(tmp_path: Path) -> None:
    write_tape(tmp_path, 6)
    (tmp_path / CHUNKS / "000001.zst").write_bytes(b"not zstd")

    with pytest.raises(TapeError, match=r"000001\.zst"):
        list(read_entries(tmp_path))


def test_another_format_is_refused(tmp_path: Path) -> None:
    write_tape(tmp_path, 1)
    raw = (tmp_path / MANIFEST).read_text().replace('"arb-tape/2"', '"arb-tape/99"')
    (tmp_path / MANIFEST).write_text(raw)

    with pytest.raises(TapeError, match="arb-tape/99"):
        read_manifest(tmp_path)


def test_a_block_applied_as_columns_leaves_the_mirror_as_the_quotes_applied_one_by_one(tmp_path: Path) -> None:
    from arb.grid import GridLayout
    from arb.grid.mirror import GridMirror

    layout = GridLayout.from_lists(["BTC/USD", "ETH/USD"], ["binance", "okx"], {"binance": 1000, "okx": 1000})
    entries = [
        [quote("binance", "BTC/USD", sequence=1, bids=((100.0, 1.0), (99.0, 2.0)), asks=((100.5, 1.0),)),
         quote("okx", "ETH/USD", sequence=2, bid=10.0, ask=10.1),
         quote("binance", "BTC/USD", sequence=3, bid=100.2, bids=((100.2, 3.0),), asks=((100.5, 1.0),)),
         quote("kraken", "BTC/USD", sequence=4)],  # a venue the layout does not have
        [quote("okx", "BTC/USD", sequence=5, bids=tuple((100.0 - k, 1.0) for k in range(20)))],
    ]  # fmt: skip
    manifest = Manifest(venues=[], instruments=[], config_hash="x", started_ns=NS, ended_ns=0)
    writer = TapeWriter(tmp_path / "t", manifest)
    for c, quotes in enumerate(entries, 1):
        writer.append(c, NS + c, quotes)
    writer.close()
    [block] = list(read_blocks(tmp_path / "t"))
    cells = block.cells(layout)
    by_columns = GridMirror.offline(layout, depth=20, now_ns=lambda: NS)
    by_quotes = GridMirror.offline(layout, depth=20, now_ns=lambda: NS)

    for k, quotes in enumerate(entries):
        by_columns.apply_columns(block, k, cells)
        by_quotes.apply(quotes)

    for name in ("bid", "ask", "bid_size", "ask_size", "ts_exchange", "ts_recv", "sequence", "bid_px", "bid_qty",
                 "ask_px", "ask_qty", "dirty"):  # fmt: skip
        assert np.array_equal(getattr(by_columns, name), getattr(by_quotes, name), equal_nan=True), name
    assert by_columns.sequence.tolist() == [[3, 5], [0, 2]]  # the last BTC/USD quote of binance won
    assert by_columns.skipped == {"unknown_cell": 1}


def test_the_config_hash_follows_what_decides_a_replay_not_the_plumbing(monkeypatch: pytest.MonkeyPatch) -> None:
    from arb.backtest.tape import config_hash
    from arb.config import load_settings

    base = config_hash(load_settings())
    monkeypatch.setenv("ARB_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("ARB_DATABASE_URL", "sqlite+aiosqlite:////tmp/other.db")
    assert config_hash(load_settings()) == base
    monkeypatch.setenv("ARB_THRESHOLDS__MIN_NET_SPREAD", "0.002")
    assert config_hash(load_settings()) != base


def test_live_steps_read_back_and_a_count_mismatch_is_refused(tmp_path: Path) -> None:
    from arb.backtest.tape import read_live_steps, write_live_steps

    manifest = write_tape(tmp_path, 3)
    assert read_live_steps(tmp_path, manifest) is None  # recorded without a live scanner
    up = [np.array([True, False]), np.array([True, True]), np.array([False, True])]
    write_live_steps(tmp_path, [1, 1, 3], [NS + 5, NS + 6, NS + 9], [False, True, False], ["binance", "okx"], up)
    manifest.live_steps = 3

    steps = read_live_steps(tmp_path, manifest)

    assert steps is not None
    assert (steps.c.tolist(), steps.now_ns.tolist(), steps.full.tolist()) == (
        [1, 1, 3], [NS + 5, NS + 6, NS + 9], [False, True, False]
    )  # fmt: skip
    aligned = steps.for_venues(["okx", "kraken", "binance"])  # the replay's layout order; kraken unrecorded: up
    assert aligned.venue_up.tolist() == [[False, True, True], [True, True, True], [True, True, False]]
    manifest.live_steps = 4
    with pytest.raises(TapeError, match="3 steps, the manifest says 4"):
        read_live_steps(tmp_path, manifest)
