"""The tape on disk: what reads back is what was appended; an incomplete, foreign or damaged tape is refused naming
the file, never read as a shorter one."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from arb.backtest.tape import CHUNKS, MANIFEST, Manifest, TapeError, TapeWriter, read_entries, read_manifest
from arb.grid import codec
from tests.support import MS, NS, quote

ENCODE = msgspec.msgpack.Encoder()


def write_tape(directory: Path, n: int, *, chunk_entries: int = 4, after_c: int | None = 0) -> Manifest:
    manifest = Manifest(venues=["binance"], instruments=["BTC/USD"], config_hash="x", started_ns=NS, ended_ns=0)
    writer = TapeWriter(directory, manifest, after_c=after_c, chunk_entries=chunk_entries)
    for c in range(1, n + 1):
        q = quote(sequence=c, ts_recv=NS + c * MS)
        writer.append(c, NS + c * MS + 1, codec.msgpack_array([ENCODE.encode(q)]), 1, (q.ts_recv, q.ts_recv))
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
    raw = (tmp_path / MANIFEST).read_text().replace('"arb-tape/1"', '"arb-tape/99"')
    (tmp_path / MANIFEST).write_text(raw)

    with pytest.raises(TapeError, match="arb-tape/99"):
        read_manifest(tmp_path)
