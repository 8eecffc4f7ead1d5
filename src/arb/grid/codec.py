"""How quotes are laid out in Redis, and how entries read back are checked before anyone trusts them.

Two representations of one cell, written together by one Lua script (so they never disagree):

* the *hash* `{prefix}:grid`, field `"{instrument}|{venue}"` -> msgpack Quote (`arb.model.encode_quote`): the full
  quote with depth, addressed by name, readable by any tool, robust to config changes;
* the *top-of-book blob* `{prefix}:grid:tob`, one Redis string of fixed 64-byte cells (`CELL_DTYPE`) in venue-major
  order (`blob_index`), updated with SETRANGE over runs of neighbouring cells.

Why the blob: a whole-grid read of 300 × 20 cells from the hash is 12,000 bulk strings, which redis-py parses at ~8 µs
each in pure Python (~90-150 ms; ~11 ms even with hiredis, before decoding 6,000 Quotes at ~1 µs each). Building one
reply inside Lua instead costs Redis ~12 ms. The blob is one bulk string that numpy maps with `frombuffer`: the whole
read takes ~2-4 ms and lands directly in the arrays the mirror and the scanner use. The price is that the blob's
meaning depends on the layout's order, hence the layout id check.

Every check here mirrors `arb.model.quote_problems` exactly (a property test holds them equal): the vectorised and
fast scalar forms only exist because the grid checks 100,000+ quotes a second, and they defer to `quote_problems` for
anything unusual (depth, non-finite values) and for the message.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Sequence
from operator import attrgetter
from typing import Final, Literal

import msgspec
import numpy as np
import numpy.typing as npt

from arb.grid.layout import FIELD_SEPARATOR, GridLayout
from arb.metrics import GRID_MALFORMED
from arb.model import Quote, decode_quote, decode_quotes, quote_is_sound, quote_problems

log = logging.getLogger(__name__)

CELL_DTYPE: Final = np.dtype(
    [
        ("bid", "<f8"),
        ("ask", "<f8"),
        ("bid_size", "<f8"),
        ("ask_size", "<f8"),
        ("ts_exchange", "<i8"),
        ("ts_recv", "<i8"),
        ("sequence", "<i8"),
        ("magic", "<u4"),
        ("n_bids", "<u2"),
        ("n_asks", "<u2"),
    ]
)
"""One top-of-book cell: little-endian, 64 bytes. `magic` marks a written cell (SETRANGE pads with zero bytes, so an
empty cell reads as magic 0); `n_bids`/`n_asks` say whether the hash holds depth for it."""
CELL_SIZE: Final = CELL_DTYPE.itemsize
CELL_MAGIC: Final = 0x31514241  # b"ABQ1" read little-endian; version 1 of this cell format
FLOAT_FIELDS: Final = ("bid", "ask", "bid_size", "ask_size")
INT_FIELDS: Final = ("ts_exchange", "ts_recv", "sequence")
MAX_U16: Final = 0xFFFF

SkipReason = Literal[
    "bad_field",
    "unknown_instrument",
    "unknown_venue",
    "undecodable",
    "invalid_quote",
    "field_mismatch",
    "bad_blob",
    "feed_bad_counter",
    "feed_undecodable",
]

_GETTERS: Final = {name: attrgetter(name) for name in (*FLOAT_FIELDS, *INT_FIELDS, "bids", "asks")}
_RAW_LIST: Final = msgspec.msgpack.Decoder(list[msgspec.Raw])


class _LooseQuote(msgspec.Struct, array_like=True):
    """Quote's shape without its value constraints: tells "not a quote at all" from "a quote with bad values"."""

    venue: str
    instrument: str
    bid: float
    bid_size: float
    ask: float
    ask_size: float
    ts_exchange: int
    ts_recv: int
    sequence: int = 0
    bids: tuple[tuple[float, float], ...] = ()
    asks: tuple[tuple[float, float], ...] = ()


_LOOSE: Final = msgspec.msgpack.Decoder(_LooseQuote)


def rejection_reason(data: bytes | msgspec.Raw) -> SkipReason:
    """Why a stored quote failed to decode: `invalid_quote` if it is shaped like a Quote but its values break the
    rules (NaN, negative size...), `undecodable` if it is not a Quote at all."""
    try:
        _LOOSE.decode(data)
    except msgspec.DecodeError:
        return "undecodable"
    return "invalid_quote"


_INF: Final = math.inf

Records = npt.NDArray[np.void]
"""A structured array of CELL_DTYPE."""
BoolArray = npt.NDArray[np.bool_]
Int64Array = npt.NDArray[np.int64]


class Skips:
    """What one read skipped, by reason; mirrored into `arb_grid_malformed_total` and logged (the first few per read,
    so a bad entry that stays in Redis does not flood the log at snapshot rate)."""

    __slots__ = ("_logged", "_where", "counts")
    LOG_LIMIT: Final = 5

    def __init__(self, where: str) -> None:
        self._where = where
        self._logged = 0
        self.counts: dict[str, int] = {}

    def record(self, reason: SkipReason, key: str, detail: str = "", n: int = 1) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + n
        GRID_MALFORMED.labels(reason).inc(n)
        if self._logged < self.LOG_LIMIT:
            self._logged += 1
            log.warning(
                "grid.malformed where=%s reason=%s key=%r count=%d detail=%r", self._where, reason, key, n, detail
            )

    def __bool__(self) -> bool:
        return bool(self.counts)


def sound_mask(rec: Records) -> BoolArray:
    """Per record: passes every check of `quote_problems` that the top of book can fail (not depth order)."""
    bid, ask = rec["bid"], rec["ask"]
    bs, asz = rec["bid_size"], rec["ask_size"]
    with np.errstate(invalid="ignore"):
        ok: BoolArray = (
            (bid > 0.0)
            & (bid <= ask)
            & (ask < _INF)
            & (bs >= 0.0)
            & (bs < _INF)
            & (asz >= 0.0)
            & (asz < _INF)
            & (rec["ts_exchange"] >= 0)
            & (rec["ts_recv"] > 0)
        )
    return ok


def fresh_mask(age_ns: Int64Array, max_age_ns: Int64Array) -> BoolArray:
    """A quote is fresh while `-max_age <= age <= max_age` (its venue's limit; `max_age_ns` broadcasts by column).

    The upper bound is the design's staleness rule (an age exactly at the limit is still fresh, one ns more is stale).
    The lower bound refuses quotes stamped further in the *future* than the limit: that is a clock fault, and a quote
    we cannot date must not count as fresh.
    """
    ok: BoolArray = (age_ns <= max_age_ns) & (age_ns >= -max_age_ns)
    return ok


class Rejected(msgspec.Struct, frozen=True):
    """A quote refused by `pack`: its position in the input, the quote, a skip reason and a human-readable problem."""

    position: int
    quote: Quote
    reason: SkipReason
    problem: str


class Packed(msgspec.Struct):
    """Quotes resolved to cells and laid out as CELL_DTYPE records, in input order, bad ones left out."""

    quotes: list[Quote]
    cells: list[int]
    records: Records
    rejected: list[Rejected]


def _records(qs: Sequence[Quote]) -> Records:
    n = len(qs)
    rec = np.zeros(n, CELL_DTYPE)
    for name in FLOAT_FIELDS:
        rec[name] = np.fromiter(map(_GETTERS[name], qs), np.float64, n)
    for name in INT_FIELDS:
        rec[name] = np.fromiter(map(_GETTERS[name], qs), np.int64, n)
    rec["magic"] = CELL_MAGIC
    for name, side in (("n_bids", "bids"), ("n_asks", "asks")):
        lengths = np.fromiter(map(len, map(_GETTERS[side], qs)), np.int64, n)
        rec[name] = np.minimum(lengths, MAX_U16)
    return rec


def _unknown(layout: GridLayout, q: Quote, position: int) -> Rejected:
    if not layout.has_instrument(q.instrument):
        return Rejected(position, q, "unknown_instrument", f"instrument {q.instrument!r} is not in the grid layout")
    return Rejected(position, q, "unknown_venue", f"venue {q.venue!r} is not in the grid layout")


def typed_problems(q: Quote) -> list[str]:
    """quote_problems, plus the type errors a Quote built in code (not decoded) can carry."""
    try:
        np.array([q.ts_exchange, q.ts_recv, q.sequence], dtype=np.int64)
        return quote_problems(q)
    except (TypeError, ValueError, OverflowError) as e:
        return [f"fields have wrong types or out-of-range values ({e})"]


def pack(layout: GridLayout, quotes: Sequence[Quote], *, validated: bool = False) -> Packed:
    """Resolve every quote's cell and build its record; quotes that are unknown to the layout or unsound go to
    `rejected` (the writer refuses the batch on any, the mirror skips and counts them). `validated`: the caller
    checked every quote with `quote_is_sound`, so only the vectorised top-of-book checks run (depth is not walked
    again)."""
    get = layout.cells.get
    cells = [get((q.instrument, q.venue), -1) for q in quotes]
    positions: list[int] | None = None
    rejected: list[Rejected] = []
    qs: Sequence[Quote] = quotes
    if -1 in cells:
        positions = [k for k, c in enumerate(cells) if c >= 0]
        rejected = [_unknown(layout, quotes[k], k) for k, c in enumerate(cells) if c < 0]
        qs = [quotes[k] for k in positions]
        cells = [cells[k] for k in positions]
    try:
        rec: Records | None = _records(qs)
    except (TypeError, ValueError, OverflowError):
        rec = None
    if rec is None:
        suspects: Sequence[int] = range(len(qs))
    else:
        unsound = ~sound_mask(rec)
        if not validated:
            unsound |= (rec["n_bids"] > 0) | (rec["n_asks"] > 0)
        suspects = np.flatnonzero(unsound).tolist()
    bad: set[int] = set()
    for k in suspects:
        if rec is not None:  # the record built, so the fields have their types: the fast check decides
            with contextlib.suppress(TypeError):
                if quote_is_sound(qs[k]):
                    continue
        problems = typed_problems(qs[k])
        if problems:
            bad.add(k)
            rejected.append(
                Rejected(k if positions is None else positions[k], qs[k], "invalid_quote", "; ".join(problems))
            )
    if bad:
        qs = [q for k, q in enumerate(qs) if k not in bad]
        cells = [c for k, c in enumerate(cells) if k not in bad]
        rejected.sort(key=lambda r: r.position)
    if rec is None or bad:
        rec = _records(qs)
    return Packed(list(qs), cells, rec, rejected)


def msgpack_array(encoded: Sequence[bytes]) -> bytes:
    """A msgpack array of already-encoded items: byte-identical to encoding the list, without encoding twice."""
    n = len(encoded)
    if n < 16:
        header = bytes((0x90 | n,))
    elif n <= 0xFFFF:
        header = b"\xdc" + n.to_bytes(2, "big")
    else:
        header = b"\xdd" + n.to_bytes(4, "big")
    return header + b"".join(encoded)


def cell_key(layout: GridLayout, cell: int) -> str:
    n_v = len(layout.venues)
    return f"{layout.instruments[cell // n_v]}{FIELD_SEPARATOR}{layout.venues[cell % n_v]}"


def decode_hash_entry(layout: GridLayout, field: bytes, value: bytes, skips: Skips) -> tuple[int, Quote] | None:
    """One grid hash entry -> (cell, quote), or None after recording why it was skipped."""
    try:
        name = field.decode()
    except UnicodeDecodeError:
        skips.record("bad_field", repr(field), "field is not UTF-8")
        return None
    instrument, sep, venue = name.partition(FIELD_SEPARATOR)
    if not sep:
        skips.record("bad_field", name, f"field has no {FIELD_SEPARATOR!r}")
        return None
    cell = layout.cells.get((instrument, venue))
    if cell is None:
        if not layout.has_instrument(instrument):
            skips.record("unknown_instrument", name, f"instrument {instrument!r} is not in the grid layout")
        else:
            skips.record("unknown_venue", name, f"venue {venue!r} is not in the grid layout")
        return None
    try:
        q = decode_quote(value)
    except msgspec.DecodeError as e:  # ValidationError included
        skips.record(rejection_reason(value), name, str(e))
        return None
    if q.instrument != instrument or q.venue != venue:
        skips.record("field_mismatch", name, f"holds a quote of {q.instrument}{FIELD_SEPARATOR}{q.venue}")
        return None
    if not quote_is_sound(q):
        skips.record("invalid_quote", name, "; ".join(quote_problems(q)))
        return None
    return cell, q


def decode_feed_quotes(payload: bytes, where: str, skips: Skips) -> list[Quote]:
    """The `q` field of a feed entry. If the list as a whole does not decode, each element is tried on its own, so
    one bad quote costs only itself."""
    try:
        return decode_quotes(payload)
    except msgspec.DecodeError as e:
        first_error = str(e)
    try:
        raws = _RAW_LIST.decode(payload)
    except msgspec.DecodeError:
        skips.record("feed_undecodable", where, first_error)
        return []
    out: list[Quote] = []
    for k, raw in enumerate(raws):
        try:
            out.append(decode_quote(raw))
        except msgspec.DecodeError as e:
            skips.record(rejection_reason(raw), f"{where}#{k}", str(e))
    return out


def parse_counter(raw: bytes | None) -> int | None:
    """The `c` field of a feed entry: a positive decimal integer, else None."""
    if raw is None or not raw.isdigit() or len(raw) > 19:
        return None
    c = int(raw)
    return c if c > 0 else None


def blob_index(layout: GridLayout) -> Int64Array:
    """Flat cell index (instrument-major, as every array) -> position in the blob, which is *venue-major*.

    Why venue-major: each connector writes one venue, so the cells of one flush are neighbours in the blob and the
    write script covers them with a few SETRANGEs over contiguous runs instead of one per cell (each call from Lua
    costs Redis ~2-3 us).
    """
    n_i, n_v = layout.shape
    idx: Int64Array = (np.arange(n_v, dtype=np.int64)[None, :] * n_i + np.arange(n_i, dtype=np.int64)[:, None]).ravel()
    return idx


def str16(data: bytes) -> bytes:
    """A msgpack str with a 16/32-bit length header: the string form Redis's Lua `cmsgpack` decodes (it predates the
    bin types, so bytes are framed as str)."""
    n = len(data)
    if n <= 0xFFFF:
        return b"\xda" + n.to_bytes(2, "big") + data
    return b"\xdb" + n.to_bytes(4, "big") + data


def decode_blob(layout: GridLayout, blob: bytes | None, skips: Skips) -> Records:
    """The top-of-book blob -> one record per cell (layout order); empty, garbage and unsound cells come back zeroed
    (magic 0 = empty), the latter two counted."""
    n = layout.n_cells
    if not blob:
        return np.zeros(n, CELL_DTYPE)
    usable = min(len(blob), n * CELL_SIZE) // CELL_SIZE
    if len(blob) > n * CELL_SIZE or len(blob) % CELL_SIZE:
        skips.record("bad_blob", "tob", f"{len(blob)} bytes for {n} cells of {CELL_SIZE} bytes; extra bytes ignored")
    in_blob_order = np.zeros(n, CELL_DTYPE)
    in_blob_order[:usable] = np.frombuffer(blob, CELL_DTYPE, count=usable)
    out: Records = in_blob_order[blob_index(layout)]
    magic = out["magic"]
    present = magic == CELL_MAGIC
    garbage = np.flatnonzero((magic != 0) & ~present)
    if garbage.size:
        skips.record("undecodable", cell_key(layout, int(garbage[0])), "cell has no valid marker", n=int(garbage.size))
        out[garbage] = np.zeros(1, CELL_DTYPE)
    unsound = np.flatnonzero(present & ~sound_mask(out))
    if unsound.size:
        first = out[unsound[0]]
        skips.record(
            "invalid_quote",
            cell_key(layout, int(unsound[0])),
            f"bid={first['bid']} ask={first['ask']} sizes={first['bid_size']}/{first['ask_size']}",
            n=int(unsound.size),
        )
        out[unsound] = np.zeros(1, CELL_DTYPE)
    return out
