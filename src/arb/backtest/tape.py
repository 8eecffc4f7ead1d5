"""A recording of the grid's change feed on disk (a "tape"): zstd-compressed msgpack chunks plus a manifest.

Why zstd msgpack and not Parquet: the feed already carries each batch of quotes as one msgpack payload (`q` of a
`{prefix}:feed` entry, `arb.grid.store`), so the recorder writes those bytes as they come, never decoding or
re-encoding a quote; zstd level 3 compresses them ~5-8x at several hundred MB/s on one core, so recording keeps up
with any ingest rate the grid itself sustains. The replayer decodes them with the same msgspec decoder the mirror
uses. Parquet would need a decode + columnar re-encode per quote (and pyarrow), for no gain on a sequential replay.

Layout of a tape directory:

    manifest.json              what was recorded (`Manifest`); written last, so a tape without it is incomplete
    chunks/000000.zst ...      each a zstd frame of concatenated msgpack records `[c, recorded_ns, q]`:
                               c = the feed counter of the entry, recorded_ns = when the recorder read it (the
                               replay clock), q = the entry's quotes exactly as the feed held them (msgpack bytes)

A chunk is closed every `chunk_entries` entries or `chunk_seconds` seconds, so a long recording is never one huge
file and a crash loses at most the open chunk. Every jump of the feed counter (entries trimmed before the recorder
read them: it fell behind by more than the feed's maxlen) is a `Gap` in the manifest and an error in the log: a
replay of a tape with gaps says so, it never looks complete.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import msgspec
import zstandard

from arb.grid import codec
from arb.model import Quote

MANIFEST: Final = "manifest.json"
CHUNKS: Final = "chunks"
FORMAT: Final = "arb-tape/1"
ZSTD_LEVEL: Final = 3


class Gap(msgspec.Struct, frozen=True):
    """Feed entries the recorder never saw: counters `after_c + 1 .. after_c + missed`."""

    after_c: int
    missed: int
    at_ns: int


class ChunkInfo(msgspec.Struct, frozen=True):
    file: str
    entries: int
    quotes: int
    first_c: int
    last_c: int
    first_ns: int
    """recorded_ns of its first entry."""
    last_ns: int
    bytes: int
    raw_bytes: int


class Manifest(msgspec.Struct, kw_only=True):
    format: str = FORMAT
    venues: list[str]
    instruments: list[str]
    config_hash: str
    """sha256 of the settings the recording ran with (`config_hash`): a replay under other settings is told so."""
    started_ns: int
    ended_ns: int
    first_recv_ns: int | None = None
    last_recv_ns: int | None = None
    entries: int = 0
    quotes: int = 0
    chunks: list[ChunkInfo] = msgspec.field(default_factory=list)
    gaps: list[Gap] = msgspec.field(default_factory=list)
    late_chunks: int = 0
    """Chunks whose write took longer than the chunk interval (the recorder was falling behind)."""
    filtered_out: int = 0
    """Quotes left out by the --venues / --instruments filter."""
    live_opportunities: int | None = None
    """With `arb record --demo`: opportunities the live scanner opened during the recording."""
    truth: str | None = None
    """With `--demo`: the local venues' ground truth (every injected dislocation), a JSON-lines file in the tape."""


class Entry(msgspec.Struct, frozen=True, array_like=True):
    c: int
    recorded_ns: int
    q: msgspec.Raw


_ENTRY_ENCODER = msgspec.msgpack.Encoder()
_ENTRY_DECODER = msgspec.msgpack.Decoder(Entry)


def config_hash(settings: object) -> str:
    """sha256 of the settings as JSON (secrets masked by pydantic's dump), to tell a replay what it runs against."""
    dump = settings.model_dump_json() if hasattr(settings, "model_dump_json") else repr(settings)
    return hashlib.sha256(dump.encode()).hexdigest()


class TapeError(ValueError):
    """A tape that cannot be read: missing, incomplete, or of another format; the message says which file."""


class TapeWriter:
    """Append feed entries to a tape directory; `close()` writes the last chunk and the manifest.

    Not async: each `append` is a buffer append, and a chunk is compressed and written in one call when it closes (a
    few ms for ~1 MB); the recorder calls it between reads of the feed."""

    def __init__(
        self,
        directory: Path,
        manifest: Manifest,
        *,
        after_c: int | None = None,
        chunk_entries: int = 5000,
        chunk_seconds: float = 5.0,
    ) -> None:
        """`after_c`: the feed counter recording starts after (what the feed held before is not part of the tape);
        None: from whatever entry comes first."""
        if chunk_entries < 1 or chunk_seconds <= 0:
            raise ValueError("chunk_entries must be >= 1 and chunk_seconds > 0")
        self.dir = directory
        (directory / CHUNKS).mkdir(parents=True, exist_ok=False)
        self.manifest = manifest
        self.chunk_entries, self.chunk_seconds = chunk_entries, chunk_seconds
        self._buf = bytearray()
        self._n = self._quotes = 0
        self._first: tuple[int, int] | None = None
        self._last: tuple[int, int] = (0, 0)
        self._last_c = after_c
        self._opened = time.monotonic()
        self._compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)

    def append(self, c: int, recorded_ns: int, payload: bytes, n_quotes: int, recv_range: tuple[int, int]) -> None:
        """One feed entry: its counter, when it was read, its `q` bytes, how many quotes, and (min, max) ts_recv."""
        m = self.manifest
        if self._last_c is not None and c != self._last_c + 1:
            m.gaps.append(Gap(after_c=self._last_c, missed=c - self._last_c - 1, at_ns=recorded_ns))
        self._last_c = c
        self._buf += _ENTRY_ENCODER.encode(Entry(c, recorded_ns, msgspec.Raw(payload)))
        if self._first is None:
            self._first = (c, recorded_ns)
        self._last = (c, recorded_ns)
        self._n += 1
        self._quotes += n_quotes
        m.entries += 1
        m.quotes += n_quotes
        lo, hi = recv_range
        m.first_recv_ns = lo if m.first_recv_ns is None else min(m.first_recv_ns, lo)
        m.last_recv_ns = hi if m.last_recv_ns is None else max(m.last_recv_ns, hi)
        if self._n >= self.chunk_entries or time.monotonic() - self._opened >= self.chunk_seconds:
            self.flush()

    def flush(self) -> None:
        """Close the open chunk (if any entry is in it)."""
        if not self._n or self._first is None:
            self._opened = time.monotonic()
            return
        began = time.monotonic()
        m = self.manifest
        name = f"{len(m.chunks):06d}.zst"
        data = self._compressor.compress(bytes(self._buf))
        path = self.dir / CHUNKS / name
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        m.chunks.append(
            ChunkInfo(name, self._n, self._quotes, self._first[0], self._last[0], self._first[1], self._last[1],
                      len(data), len(self._buf))
        )  # fmt: skip
        if time.monotonic() - began > self.chunk_seconds:
            m.late_chunks += 1
        self._buf.clear()
        self._n = self._quotes = 0
        self._first = None
        self._opened = time.monotonic()

    def close(self, ended_ns: int | None = None) -> Manifest:
        self.flush()
        m = self.manifest
        m.ended_ns = ended_ns or time.time_ns()
        write_manifest(self.dir, m)
        return m


def write_manifest(directory: Path, manifest: Manifest) -> None:
    tmp = directory / (MANIFEST + ".tmp")
    tmp.write_bytes(msgspec.json.format(msgspec.json.encode(manifest), indent=2))
    os.replace(tmp, directory / MANIFEST)


def read_manifest(directory: Path) -> Manifest:
    path = directory / MANIFEST
    if not path.is_file():
        raise TapeError(f"{directory}: no {MANIFEST} (not a tape, or a recording that did not finish)")
    try:
        manifest = msgspec.json.decode(path.read_bytes(), type=Manifest)
    except msgspec.DecodeError as e:
        raise TapeError(f"{path}: {e}") from None
    if manifest.format != FORMAT:
        raise TapeError(f"{path}: format {manifest.format!r}, this arb reads {FORMAT!r}")
    return manifest


def read_entries(
    directory: Path, manifest: Manifest | None = None, skips: codec.Skips | None = None
) -> Iterator[tuple[int, int, list[Quote]]]:
    """(c, recorded_ns, quotes) of every recorded feed entry, in feed order. A quote that does not decode is dropped
    on its own, as the mirror drops it (`skips` counts them by reason when given)."""
    m = manifest or read_manifest(directory)
    skips = skips if skips is not None else codec.Skips("tape")
    decompressor = zstandard.ZstdDecompressor()
    for chunk in m.chunks:
        path = directory / CHUNKS / chunk.file
        try:
            raw = decompressor.decompress(path.read_bytes(), max_output_size=max(chunk.raw_bytes, 1))
        except (OSError, zstandard.ZstdError) as e:
            raise TapeError(f"{path}: {e}") from None
        entries = msgspec.msgpack.Decoder(list[Entry]).decode(_as_array(raw, chunk.entries))
        for entry in entries:
            yield entry.c, entry.recorded_ns, codec.decode_feed_quotes(bytes(entry.q), f"{chunk.file}#{entry.c}", skips)


def _as_array(concatenated: bytes, n: int) -> bytes:
    """Concatenated msgpack values as one msgpack array of `n` (so one decode call reads the whole chunk)."""
    if n < 16:
        head = bytes([0x90 | n])
    elif n < 65536:
        head = b"\xdc" + n.to_bytes(2, "big")
    else:
        head = b"\xdd" + n.to_bytes(4, "big")
    return head + concatenated
