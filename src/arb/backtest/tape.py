"""A recording of the grid's change feed on disk (a "tape"): zstd-compressed columnar msgpack chunks + a manifest.

Why columns in zstd msgpack, and not the feed's own msgpack or Parquet: the replay's cost is putting quotes into the
mirror, and per-quote objects cost ~5 us each to decode and ~10 us to apply (validation, one depth write per side),
which caps a replay near 20,000 quotes/s. The recorder already decodes every feed entry (to count it, check its
counter and filter it), so at each chunk's close it lays the chunk's quotes out as columns (numpy arrays: top of
book, both timestamps, sequence, depth padded to `MAX_DEPTH` levels with NaN) and the replayer writes a whole
feed entry into the mirror with a handful of vectorised assignments (`GridMirror.apply_columns`). The arrays go
into one msgpack map per chunk as raw little-endian buffers (`np.frombuffer` reads them without a copy), and zstd
level 3 shrinks the NaN padding and repeated prices ~4x at hundreds of MB/s. Parquet would give the same columns
through pyarrow, a large dependency, with no gain for a sequential replay of whole chunks.

Layout of a tape directory:

    manifest.json              what was recorded (`Manifest`); written last, so a tape without it is incomplete
    chunks/000000.zst ...      each a zstd frame of one msgpack map: the chunk's venue and instrument names, per
                               feed entry its counter `c`, `recorded_ns` (when the recorder read it: the replay
                               clock) and its first quote's index, then one column per quote field

A chunk is closed every `chunk_entries` entries or `chunk_seconds` seconds, so a long recording is never one huge
file and a crash loses at most the open chunk. Every jump of the feed counter (entries trimmed before the recorder
read them: it fell behind by more than the feed's maxlen) is a `Gap` in the manifest and an error in the log: a
replay of a tape with gaps says so, it never looks complete.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import msgspec
import numpy as np
import numpy.typing as npt
import zstandard

from arb.model import MAX_DEPTH, Quote

if TYPE_CHECKING:
    from arb.grid.layout import GridLayout

MANIFEST: Final = "manifest.json"
LIVE_STEPS: Final = "live_steps.npz"
"""`arb record --demo`: where the live scanner stepped (after which feed entry, at what time, full or not)."""
CHUNKS: Final = "chunks"
FORMAT: Final = "arb-tape/2"
ZSTD_LEVEL: Final = 3
_NAN_LEVELS: Final = (math.nan,) * (2 * MAX_DEPTH)
FloatArray = npt.NDArray[np.float64]
Int64Array = npt.NDArray[np.int64]


class Gap(msgspec.Struct, frozen=True):
    """Feed entries the recorder never saw: counters `after_c + 1 .. after_c + missed` (negative `missed`: the feed
    counter went back, i.e. Redis restarted empty)."""

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
    live_steps: int | None = None
    """With `--demo`: how many scanner steps the live run made (`LIVE_STEPS`); a replay steps at the same points."""


class Block(msgspec.Struct, kw_only=True):
    """One chunk as columns. Entry k's quotes are rows `start[k]:start[k+1]`; `venue`/`instrument` index the chunk's
    `venues`/`instruments` names; depth arrays are (quotes x MAX_DEPTH), NaN past each book's last level."""

    venues: list[str]
    instruments: list[str]
    c: Int64Array
    recorded_ns: Int64Array
    start: Int64Array
    venue: npt.NDArray[np.uint16]
    instrument: npt.NDArray[np.uint16]
    bid: FloatArray
    bid_size: FloatArray
    ask: FloatArray
    ask_size: FloatArray
    ts_exchange: Int64Array
    ts_recv: Int64Array
    sequence: Int64Array
    n_bids: npt.NDArray[np.uint8]
    n_asks: npt.NDArray[np.uint8]
    bid_px: FloatArray
    bid_qty: FloatArray
    ask_px: FloatArray
    ask_qty: FloatArray

    @property
    def entries(self) -> int:
        return len(self.c)

    def cells(self, layout: GridLayout) -> Int64Array:
        """Each quote row's flat cell in `layout` (-1 where its instrument or venue is not in the layout)."""
        n_v = len(layout.venues)
        iidx = np.array([layout.instrument_index(x) if layout.has_instrument(x) else -1 for x in self.instruments]
                        or [-1], np.int64)[self.instrument]  # fmt: skip
        vidx = np.array([layout.venue_index(v) if layout.has_venue(v) else -1 for v in self.venues] or [-1],
                        np.int64)[self.venue]  # fmt: skip
        cells: Int64Array = np.where((iidx >= 0) & (vidx >= 0), iidx * n_v + vidx, -1)
        return cells

    def quotes(self, k: int) -> list[Quote]:
        """Entry k's quotes as objects (the slow path: tests, first prices; the replay writes the columns)."""
        out = []
        for r in range(int(self.start[k]), int(self.start[k + 1])):
            nb, na = int(self.n_bids[r]), int(self.n_asks[r])
            out.append(
                Quote(
                    venue=self.venues[self.venue[r]], instrument=self.instruments[self.instrument[r]],
                    bid=float(self.bid[r]), bid_size=float(self.bid_size[r]), ask=float(self.ask[r]),
                    ask_size=float(self.ask_size[r]), ts_exchange=int(self.ts_exchange[r]),
                    ts_recv=int(self.ts_recv[r]), sequence=int(self.sequence[r]),
                    bids=tuple(zip(self.bid_px[r, :nb].tolist(), self.bid_qty[r, :nb].tolist(), strict=True)),
                    asks=tuple(zip(self.ask_px[r, :na].tolist(), self.ask_qty[r, :na].tolist(), strict=True)),
                )
            )  # fmt: skip
        return out


_COLUMNS: Final = (
    ("c", np.int64), ("recorded_ns", np.int64), ("start", np.int64), ("venue", np.uint16), ("instrument", np.uint16),
    ("bid", np.float64), ("bid_size", np.float64), ("ask", np.float64), ("ask_size", np.float64),
    ("ts_exchange", np.int64), ("ts_recv", np.int64), ("sequence", np.int64), ("n_bids", np.uint8),
    ("n_asks", np.uint8), ("bid_px", np.float64), ("bid_qty", np.float64), ("ask_px", np.float64),
    ("ask_qty", np.float64),
)  # fmt: skip
_DEPTH_COLUMNS: Final = frozenset({"bid_px", "bid_qty", "ask_px", "ask_qty"})


class _ChunkFile(msgspec.Struct):
    venues: list[str]
    instruments: list[str]
    columns: dict[str, bytes]


_CHUNK_ENCODER = msgspec.msgpack.Encoder()
_CHUNK_DECODER = msgspec.msgpack.Decoder(_ChunkFile)


HASHED_SETTINGS: Final = frozenset(
    {"venues", "chains", "quote_equivalence", "instruments", "thresholds", "scanner", "risk", "executor"}
)
"""What decides what a replay finds and does; not the process's plumbing (mode, Redis and database URLs, log
level, grid sizing, coverage alarms), so a tape recorded with another log level or ledger still matches."""


def config_hash(settings: object) -> str:
    """sha256 of the settings that decide a replay's result (`HASHED_SETTINGS`), as JSON: a replay under other
    settings than the recording's is told so."""
    if hasattr(settings, "model_dump_json"):
        dump = settings.model_dump_json(include=set(HASHED_SETTINGS))
    else:
        dump = repr(settings)
    return hashlib.sha256(dump.encode()).hexdigest()


class TapeError(ValueError):
    """A tape that cannot be read: missing, incomplete, or of another format; the message says which file."""


class _Columns:
    """The open chunk's quotes, column by column, as Python lists (turned into arrays when the chunk closes)."""

    def __init__(self) -> None:
        self.venues: dict[str, int] = {}
        self.instruments: dict[str, int] = {}
        self.c: list[int] = []
        self.recorded_ns: list[int] = []
        self.start: list[int] = [0]
        self.cols: dict[str, list[Any]] = {
            name: [] for name, _ in _COLUMNS if name not in ("c", "recorded_ns", "start")
        }
        self.n = 0

    def add(self, c: int, recorded_ns: int, quotes: Sequence[Quote]) -> None:
        cols = self.cols
        venue, instrument = cols["venue"], cols["instrument"]
        bid_levels, ask_levels = cols["bid_px"], cols["ask_px"]  # interleaved (price, size) until `arrays`
        for q in quotes:
            venue.append(self.venues.setdefault(q.venue, len(self.venues)))
            instrument.append(self.instruments.setdefault(q.instrument, len(self.instruments)))
            cols["bid"].append(q.bid)
            cols["bid_size"].append(q.bid_size)
            cols["ask"].append(q.ask)
            cols["ask_size"].append(q.ask_size)
            cols["ts_exchange"].append(q.ts_exchange)
            cols["ts_recv"].append(q.ts_recv)
            cols["sequence"].append(q.sequence)
            cols["n_bids"].append(len(q.bids))
            cols["n_asks"].append(len(q.asks))
            bid_levels.extend(itertools.chain.from_iterable(q.bids))
            bid_levels.extend(_NAN_LEVELS[: 2 * (MAX_DEPTH - len(q.bids))])
            ask_levels.extend(itertools.chain.from_iterable(q.asks))
            ask_levels.extend(_NAN_LEVELS[: 2 * (MAX_DEPTH - len(q.asks))])
        self.n += len(quotes)
        self.c.append(c)
        self.recorded_ns.append(recorded_ns)
        self.start.append(self.n)

    def encode(self) -> bytes:
        columns: dict[str, bytes] = {
            "c": np.asarray(self.c, np.int64).tobytes(),
            "recorded_ns": np.asarray(self.recorded_ns, np.int64).tobytes(),
            "start": np.asarray(self.start, np.int64).tobytes(),
        }
        for name, dtype in _COLUMNS:
            if name in columns or name in ("bid_qty", "ask_qty"):
                continue
            if name in ("bid_px", "ask_px"):
                levels = np.asarray(self.cols[name], np.float64).reshape(self.n, MAX_DEPTH, 2)
                columns[name] = np.ascontiguousarray(levels[:, :, 0]).tobytes()
                columns[name.replace("_px", "_qty")] = np.ascontiguousarray(levels[:, :, 1]).tobytes()
            else:
                columns[name] = np.asarray(self.cols[name], dtype).tobytes()
        return _CHUNK_ENCODER.encode(_ChunkFile(list(self.venues), list(self.instruments), columns))


def decode_block(raw: bytes, where: str) -> Block:
    try:
        chunk = _CHUNK_DECODER.decode(raw)
        arrays: dict[str, Any] = {}
        for name, dtype in _COLUMNS:
            array = np.frombuffer(chunk.columns[name], dtype)
            arrays[name] = array.reshape(-1, MAX_DEPTH) if name in _DEPTH_COLUMNS else array
    except (msgspec.DecodeError, KeyError, ValueError) as e:
        raise TapeError(f"{where}: not a chunk of {FORMAT} ({e})") from None
    block = Block(venues=chunk.venues, instruments=chunk.instruments, **arrays)
    n = len(block.bid)
    if len(block.start) != block.entries + 1 or int(block.start[-1]) != n or len(block.bid_px) != n:
        raise TapeError(f"{where}: inconsistent column lengths")
    return block


class TapeWriter:
    """Append feed entries to a tape directory; `close()` writes the last chunk and the manifest.

    Not async: `append` adds the entry's quotes to the open chunk's columns, and a chunk is turned into arrays,
    compressed and written in one call when it closes (a few ms for 5,000 entries); the recorder calls it between
    reads of the feed."""

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
        self._cols = _Columns()
        self._last_c = after_c
        self._opened = time.monotonic()
        self._compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)

    def append(self, c: int, recorded_ns: int, quotes: Sequence[Quote]) -> None:
        """One feed entry: its counter, when it was read, and its quotes (as the feed held them: validated)."""
        m = self.manifest
        if self._last_c is not None and c != self._last_c + 1:
            m.gaps.append(Gap(after_c=self._last_c, missed=c - self._last_c - 1, at_ns=recorded_ns))
        self._last_c = c
        self._cols.add(c, recorded_ns, quotes)
        m.entries += 1
        m.quotes += len(quotes)
        if quotes:
            lo, hi = min(q.ts_recv for q in quotes), max(q.ts_recv for q in quotes)
            m.first_recv_ns = lo if m.first_recv_ns is None else min(m.first_recv_ns, lo)
            m.last_recv_ns = hi if m.last_recv_ns is None else max(m.last_recv_ns, hi)
        if len(self._cols.c) >= self.chunk_entries or time.monotonic() - self._opened >= self.chunk_seconds:
            self.flush()

    def flush(self) -> None:
        """Close the open chunk (if any entry is in it)."""
        cols = self._cols
        if not cols.c:
            self._opened = time.monotonic()
            return
        began = time.monotonic()
        m = self.manifest
        name = f"{len(m.chunks):06d}.zst"
        raw = cols.encode()
        data = self._compressor.compress(raw)
        path = self.dir / CHUNKS / name
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        m.chunks.append(
            ChunkInfo(name, len(cols.c), cols.n, cols.c[0], cols.c[-1], cols.recorded_ns[0], cols.recorded_ns[-1],
                      len(data), len(raw))
        )  # fmt: skip
        if time.monotonic() - began > self.chunk_seconds:
            m.late_chunks += 1
        self._cols = _Columns()
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


def read_blocks(directory: Path, manifest: Manifest | None = None) -> Iterator[Block]:
    """Every chunk as columns, in feed order (the replay's fast path)."""
    m = manifest or read_manifest(directory)
    decompressor = zstandard.ZstdDecompressor()
    for chunk in m.chunks:
        path = directory / CHUNKS / chunk.file
        try:
            raw = decompressor.decompress(path.read_bytes(), max_output_size=max(chunk.raw_bytes, 1))
        except (OSError, zstandard.ZstdError) as e:
            raise TapeError(f"{path}: {e}") from None
        yield decode_block(raw, str(path))


def read_entries(directory: Path, manifest: Manifest | None = None) -> Iterator[tuple[int, int, list[Quote]]]:
    """(c, recorded_ns, quotes) of every recorded feed entry, in feed order, as objects (slower than `read_blocks`)."""
    for block in read_blocks(directory, manifest):
        for k in range(block.entries):
            yield int(block.c[k]), int(block.recorded_ns[k]), block.quotes(k)


class LiveSteps(msgspec.Struct, kw_only=True):
    """The live scanner's decision points: step k ran after feed entry `c[k]` was in its mirror, at `now_ns[k]`,
    over every row (`full[k]`) or the rows changed since its previous step, with `venue_up[k]` (per `venues`) the
    venues its health feed said were up.

    Why a replay needs them: an opportunity's id carries the receive time of the newest quote it was first seen on,
    and the live scanner, busy or woken late, often took several feed entries in one step; stepping after every
    entry instead can see an opportunity one quote earlier, under another id. And a venue streams a moment before
    its health says connected. Stepping where live stepped, at its time and with its venues up, gives the same ids
    and edges by construction."""

    c: Int64Array
    now_ns: Int64Array
    full: npt.NDArray[np.bool_]
    venues: list[str]
    venue_up: npt.NDArray[np.bool_]

    def for_venues(self, venues: Sequence[str]) -> LiveSteps:
        """The same steps with `venue_up` columns in the order of `venues` (a venue the recording lacked: up)."""
        index = {v: j for j, v in enumerate(self.venues)}
        up = np.ones((len(self.c), len(venues)), np.bool_)
        for j, v in enumerate(venues):
            if v in index:
                up[:, j] = self.venue_up[:, index[v]]
        return msgspec.structs.replace(self, venues=list(venues), venue_up=up)


def write_live_steps(
    directory: Path,
    c: Sequence[int],
    now_ns: Sequence[int],
    full: Sequence[bool],
    venues: Sequence[str],
    venue_up: Sequence[npt.NDArray[np.bool_]],
) -> None:
    up = np.asarray(venue_up, np.bool_).reshape(len(c), len(venues))
    with (directory / LIVE_STEPS).open("wb") as f:
        np.savez(f, c=np.asarray(c, np.int64), now_ns=np.asarray(now_ns, np.int64), full=np.asarray(full, np.bool_),
                 venues=np.asarray(list(venues), np.str_), venue_up=up)  # fmt: skip


def read_live_steps(directory: Path, manifest: Manifest) -> LiveSteps | None:
    """The tape's live steps, None when it has none (recorded without a live scanner in the process)."""
    if manifest.live_steps is None:
        return None
    path = directory / LIVE_STEPS
    try:
        with np.load(path) as data:
            steps = LiveSteps(c=data["c"], now_ns=data["now_ns"], full=data["full"],
                              venues=[str(v) for v in data["venues"]], venue_up=data["venue_up"])  # fmt: skip
    except (OSError, KeyError, ValueError) as e:
        raise TapeError(f"{path}: {e}") from None
    n = manifest.live_steps
    if not len(steps.c) == len(steps.now_ns) == len(steps.full) == len(steps.venue_up) == n:
        raise TapeError(f"{path}: {len(steps.c)} steps, the manifest says {n}")
    return steps
