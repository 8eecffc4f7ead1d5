"""The Redis price grid: pipelined, atomic batch writes; consistent snapshots; a change feed to follow.

Keys, for key_prefix "arb" (the braces are a Redis Cluster hash tag: all keys of one grid share a slot, which the
write script and MULTI need):

    {arb}:grid          hash   "{instrument}|{venue}" -> msgpack Quote (full quote, depth included)
    {arb}:grid:tob      string fixed 64-byte top-of-book cells, venue-major (see `arb.grid.codec` for why)
    {arb}:grid:layout   string layout id of whoever wrote the blob; checked on every write and grid read
    {arb}:feed          stream one entry per written chunk: c = batch counter, q = msgpack list of its quotes
    {arb}:feed:pos      hash   c = last counter, id = stream id of that entry
    {arb}:venues        hash   venue id -> msgpack VenueHealth (connector workers publish it every ~0.5 s)
    {arb}:wallets       hash   venue id -> msgpack VenueWallets: deposit/withdraw status and fees (connectors.wallets)
    {arb}:risk:paused   set    instruments the risk engine paused (the scanner skips them)
    {arb}:funding       hash   "{instrument}|{venue}" -> msgpack FundingRate of a perp (see `arb.grid.funding`)
    {arb}:gas           hash   "{instrument}|{venue}" -> msgpack GasCost of one DEX swap (see `arb.grid.gas`)
    {arb}:opportunities stream opportunity lifecycle events (msgpack OpportunityEvent in field e), by the scanner

Write path: one Lua script (EVALSHA; reloaded on NOSCRIPT, e.g. after a Redis restart) updates hash, blob, counter
and feed of one chunk atomically. A batch bigger than `chunk_size` is cut into chunks sent as EVALSHAs in one
MULTI/EXEC round trip, so a batch is still all-or-nothing and one round trip. Within a batch the last quote for a
cell wins the cell; the feed keeps every quote (a recorder needs all of them). Each cell is assumed to have one
writer (the connector of its venue): the grid does not compare timestamps across writers. `write_many` (and so
GridWriter) encodes the next batch while the previous one is in flight.

Read paths: `read_instrument` is one HMGET (a single command, so every venue of the instrument is from the same
instant); `read_grid` reads the top-of-book blob and the feed position in one MULTI/EXEC (~2-4 ms for 300 × 20);
`read_quotes` does the same with HGETALL for full quotes with depth (~100 ms for 300 × 20: one bulk string per
cell through redis-py's parser, so not for the hot path).

Change feed: Redis Streams, not pub/sub. Pub/sub delivers only to whoever is connected at that instant and drops
silently; a stream is persistent and replayable by id, so a follower that was disconnected catches up with XREAD
from its last id, and a recorder can replay by time. Gaps are detectable: the counter `c` is incremented by the same
script that appends the entry, so it is exactly +1 per entry across all writers. A follower that sees a jump knows
entries were trimmed (it lagged more than `feed_maxlen`); one that sees `c` go backwards knows Redis lost its data
(restart). Either way it rebuilds from a snapshot, whose position (c, id) says exactly where to continue.

Failure (FAULTS M8): the client makes one attempt per call (redis-py's own retries are disabled: a retried write
whose first attempt timed out could be applied twice), bounded by `socket_timeout_s`; any Redis failure surfaces as
`GridUnavailable`, so callers fail closed instead of deciding on a grid they cannot read.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

import msgspec
import numpy as np
import numpy.typing as npt
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError, ResponseError

from arb import tasks
from arb.grid import codec
from arb.grid import funding as funding_codec
from arb.grid.errors import GridLayoutMismatch, GridUnavailable, InvalidQuote
from arb.grid.funding import FundingRate
from arb.grid.gas import DECODER as GAS_DECODER
from arb.grid.gas import ENCODER as GAS_ENCODER
from arb.grid.gas import GasCost
from arb.grid.layout import GridLayout
from arb.metrics import GRID_QUOTES_WRITTEN, GRID_READ_SECONDS, GRID_UNAVAILABLE, GRID_WRITE_SECONDS
from arb.model import Quote, VenueHealth, VenueWallets, encode_quote

if TYPE_CHECKING:
    from arb.config.schema import GridSettings
    from arb.grid.mirror import GridMirror
    from arb.grid.writer import GridWriter

log = logging.getLogger(__name__)

_HEALTH_ENCODER: Final = msgspec.msgpack.Encoder()
_HEALTH_DECODER: Final = msgspec.msgpack.Decoder(VenueHealth)
_R = TypeVar("_R")
_WALLETS_DECODER: Final = msgspec.msgpack.Decoder(VenueWallets)

NowNs = Callable[[], int]
FloatArray = npt.NDArray[np.float64]
Int64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

DEFAULT_CHUNK_SIZE: Final = 1000
"""Quotes per script call (and feed entry): big enough to amortise the call, small enough that no single script
blocks Redis for more than a few ms and a feed entry stays around 100 kB."""
HSET_ARGS_PER_CALL: Final = 1000
"""Lua's unpack() is bounded by its C stack (LUAI_MAXCSTACK 8000); HSET is called with at most this many arguments."""

_WRITE_SCRIPT: Final = """
-- KEYS: grid hash, tob blob, feed stream, feed position hash, layout id
-- ARGV: layout id, feed maxlen, feed payload (msgpack list of every quote), tob runs, tob cells, hash pairs
local stored = redis.call('GET', KEYS[5])
if not stored then
  redis.call('SET', KEYS[5], ARGV[1])
elseif stored ~= ARGV[1] then
  return redis.error_reply('ARBLAYOUT ' .. stored)
end
-- Top of book: the blob is venue-major (see codec.blob_index), so one connector's cells form a few contiguous runs;
-- one SETRANGE per run (ARGV[4]: u32 offset, u32 length per run; ARGV[5]: the runs' bytes back to back).
local runs, cells = ARGV[4], ARGV[5]
local pos = 1
for k = 0, #runs / 8 - 1 do
  local off, len = struct.unpack('<I4I4', runs, 8 * k + 1)
  redis.call('SETRANGE', KEYS[2], off, string.sub(cells, pos, pos + len - 1))
  pos = pos + len
end
-- Full quotes by name: ARGV[6] is a msgpack array field, value, field, value... (as str, which cmsgpack decodes in
-- C; redis-py would pack each as its own argument in Python, ~1-2 us each).
local kv = cmsgpack.unpack(ARGV[6])
local n = #kv
local i = 1
while i <= n do
  local j = math.min(i + HSET_ARGS - 1, n)
  redis.call('HSET', KEYS[1], unpack(kv, i, j))
  i = j + 1
end
local c = redis.call('HINCRBY', KEYS[4], 'c', 1)
local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'c', c, 'q', ARGV[3])
redis.call('HSET', KEYS[4], 'id', id)
return {c, id}
""".replace("HSET_ARGS", str(HSET_ARGS_PER_CALL))
_LAYOUT_ERROR: Final = re.compile(r"ARBLAYOUT (\S+)")


class FeedPosition(msgspec.Struct, frozen=True):
    """Where the change feed stood: `c` of its last entry (0: none yet) and that entry's stream id."""

    c: int = 0
    id: str = "0-0"


class QuoteView(msgspec.Struct, frozen=True, gc=False):
    """A quote as a reader sees it at `now`: its receive-time age and whether its venue's limit calls it stale."""

    quote: Quote
    age_ns: int
    stale: bool

    @property
    def fresh(self) -> bool:
        return not self.stale


class InstrumentSnapshot(msgspec.Struct, frozen=True):
    """All venues of one instrument, read in one command (so consistent); venues without a quote are absent."""

    instrument: str
    taken_ns: int
    position: FeedPosition
    venues: dict[str, QuoteView]
    skipped: dict[str, int]

    def fresh(self) -> dict[str, QuoteView]:
        return {v: qv for v, qv in self.venues.items() if not qv.stale}


class QuotesSnapshot(msgspec.Struct, frozen=True):
    """Every cell as a full Quote (depth included), read in one transaction with the feed position.

    Slower than `GridSnapshot` (one bulk string per cell); for tools, exports and the API, not the hot path."""

    taken_ns: int
    position: FeedPosition
    quotes: dict[tuple[str, str], QuoteView]
    skipped: dict[str, int]


class GridSnapshot:
    """Top of book of every cell as (instruments × venues) arrays, read in one transaction with the feed position.

    Empty cells are NaN (prices, sizes) and 0 (times, sequence) with `present` False. Depth is not here (only
    `has_depth`); read it per instrument with `PriceGrid.read_instrument`.
    """

    __slots__ = (
        "ask",
        "ask_size",
        "bid",
        "bid_size",
        "has_depth",
        "layout",
        "position",
        "present",
        "sequence",
        "skipped",
        "taken_ns",
        "ts_exchange",
        "ts_recv",
    )

    def __init__(
        self,
        layout: GridLayout,
        records: codec.Records,
        *,
        taken_ns: int,
        position: FeedPosition,
        skipped: dict[str, int],
    ) -> None:
        shape = layout.shape
        self.layout = layout
        self.taken_ns = taken_ns
        self.position = position
        self.skipped = skipped
        present = (records["magic"] == codec.CELL_MAGIC).reshape(shape)
        self.present: BoolArray = present

        def floats(name: str) -> FloatArray:
            a = records[name].astype(np.float64).reshape(shape)
            a[~present] = np.nan
            return a

        self.bid = floats("bid")
        self.ask = floats("ask")
        self.bid_size = floats("bid_size")
        self.ask_size = floats("ask_size")
        self.ts_exchange: Int64Array = records["ts_exchange"].astype(np.int64).reshape(shape)
        self.ts_recv: Int64Array = records["ts_recv"].astype(np.int64).reshape(shape)
        self.sequence: Int64Array = records["sequence"].astype(np.int64).reshape(shape)
        self.has_depth: BoolArray = ((records["n_bids"] > 0) | (records["n_asks"] > 0)).reshape(shape)

    def ages_ns(self, now_ns: int | None = None) -> Int64Array:
        """Receive-time age of every cell at `now_ns` (default: when the snapshot was taken); empty cells: int64 max."""
        now = self.taken_ns if now_ns is None else now_ns
        ages: Int64Array = np.where(self.present, now - self.ts_recv, np.iinfo(np.int64).max)
        return ages

    def fresh_mask(self, now_ns: int | None = None) -> BoolArray:
        """True where a quote exists and is within its venue's age limit; never True for an empty cell."""
        fresh: BoolArray = self.present & codec.fresh_mask(self.ages_ns(now_ns), self.layout.max_age_ns[None, :])
        return fresh

    def stale_mask(self, now_ns: int | None = None) -> BoolArray:
        """True where a quote exists but is too old (or dated too far in the future) to use."""
        stale: BoolArray = self.present & ~self.fresh_mask(now_ns)
        return stale

    def view(self, instrument: str, venue: str, now_ns: int | None = None) -> QuoteView | None:
        """One cell as a QuoteView (top of book only: `bids`/`asks` are empty even where `has_depth`)."""
        i, j = self.layout.instrument_index(instrument), self.layout.venue_index(venue)
        if not self.present[i, j]:
            return None
        q = Quote(
            venue=venue,
            instrument=instrument,
            bid=float(self.bid[i, j]),
            bid_size=float(self.bid_size[i, j]),
            ask=float(self.ask[i, j]),
            ask_size=float(self.ask_size[i, j]),
            ts_exchange=int(self.ts_exchange[i, j]),
            ts_recv=int(self.ts_recv[i, j]),
            sequence=int(self.sequence[i, j]),
        )
        age = (self.taken_ns if now_ns is None else now_ns) - q.ts_recv
        max_age = int(self.layout.max_age_ns[j])
        return QuoteView(q, age, not (-max_age <= age <= max_age))

    def __repr__(self) -> str:
        return f"GridSnapshot({int(self.present.sum())}/{self.layout.n_cells} cells, position={self.position})"


class PreparedWrite(msgspec.Struct, frozen=True):
    """A validated, encoded batch from `PriceGrid.prepare`, ready for `PriceGrid.send`."""

    n_quotes: int
    layout_id: str
    chunks: list[list[bytes | str | int]]


class GridKeys(msgspec.Struct, frozen=True):
    grid: str
    tob: str
    layout: str
    feed: str
    pos: str
    venues: str
    paused: str
    opportunities: str
    funding: str
    wallets: str
    execute: str
    """Stream of manual execute requests (`arb.executor.commands`); answers on `{execute}:<request id>`."""
    trader: str
    """The trading process's last portfolio/risk snapshot (`arb.trading.TraderSnapshot`), for the API."""
    signals: str
    """Stream of directional signals (`arb strategy signal` / `run`): JSON `arb.ledger.strategy.SignalRecord` in
    field s."""
    gas: str
    """DEX swap gas per cell (`arb.grid.gas.GasCost`), re-published by the DEX connectors every block."""

    @classmethod
    def for_prefix(cls, prefix: str) -> GridKeys:
        tag = "{" + prefix + "}"
        return cls(
            f"{tag}:grid", f"{tag}:grid:tob", f"{tag}:grid:layout", f"{tag}:feed", f"{tag}:feed:pos", f"{tag}:venues",
            f"{tag}:risk:paused", f"{tag}:opportunities", f"{tag}:funding",
            f"{tag}:wallets", f"{tag}:execute", f"{tag}:trader", f"{tag}:strategy:signals", f"{tag}:gas",
        )  # fmt: skip

    def all(self) -> tuple[str, ...]:
        """The market-data keys `reset` deletes (risk pauses and the opportunity record are not market data)."""
        return (self.grid, self.tob, self.layout, self.feed, self.pos, self.venues, self.funding, self.gas)


def stream_entries(response: Any) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """The entries of a non-empty one-stream XREAD reply, whichever protocol answered (RESP3: {stream: [entries]},
    RESP2: [[stream, entries]])."""
    entries = next(iter(response.values()))[0] if isinstance(response, dict) else response[0][1]
    return cast(list[tuple[bytes, dict[bytes, bytes]]], entries)


@contextmanager
def redis_errors(operation: str) -> Iterator[None]:
    """Turn every way Redis can fail into `GridUnavailable` (or `GridLayoutMismatch`), counted by operation."""
    try:
        yield
    except ResponseError as e:
        m = _LAYOUT_ERROR.search(str(e))
        if m:
            raise GridLayoutMismatch(stored=m.group(1), ours="(see writer)") from e
        GRID_UNAVAILABLE.labels(operation).inc()
        raise GridUnavailable(operation, f"{type(e).__name__}: {e}") from e
    except (RedisError, OSError) as e:
        GRID_UNAVAILABLE.labels(operation).inc()
        raise GridUnavailable(operation, f"{type(e).__name__}: {e}") from e


def connect(url: str, *, socket_timeout_s: float = 2.0) -> aioredis.Redis:
    """A client configured for fail-closed use: bounded waits, bytes in and out, and no hidden retries."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=socket_timeout_s,
        socket_connect_timeout=socket_timeout_s,
        retry=Retry(NoBackoff(), 0),
        decode_responses=False,
        health_check_interval=0,
    )


def _position(raw: Sequence[bytes | None]) -> FeedPosition:
    c_raw, id_raw = raw
    c = codec.parse_counter(c_raw)
    if c is None or id_raw is None:
        return FeedPosition()
    return FeedPosition(c, id_raw.decode())


class PriceGrid:
    """Writes quotes into the Redis grid and reads snapshots of it. One per process is enough; it is safe to share
    between tasks (redis-py pools connections)."""

    def __init__(
        self,
        client: aioredis.Redis,
        layout: GridLayout,
        *,
        key_prefix: str = "arb",
        feed_maxlen: int = 10_000,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        now_ns: NowNs = time.time_ns,
        owns_client: bool = False,
    ) -> None:
        if chunk_size < 1 or feed_maxlen < 1:
            raise ValueError("chunk_size and feed_maxlen must be >= 1")
        self.client = client
        self.layout = layout
        self.keys = GridKeys.for_prefix(key_prefix)
        self.feed_maxlen = feed_maxlen
        self.chunk_size = chunk_size
        self.now_ns = now_ns
        self._owns_client = owns_client
        self._script_sha = ""
        self._write_keys = (self.keys.grid, self.keys.tob, self.keys.feed, self.keys.pos, self.keys.layout)
        self._instrument_fields: dict[str, list[bytes]] = {}
        self._field_str16 = [codec.str16(f) for f in layout.fields]
        self._blob_index = codec.blob_index(layout)

    @classmethod
    def from_url(
        cls,
        url: str,
        layout: GridLayout,
        settings: GridSettings | None = None,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        now_ns: NowNs = time.time_ns,
    ) -> PriceGrid:
        """A grid on its own client (closed by `aclose`), configured from `settings.grid` (defaults if None)."""
        if settings is None:
            from arb.config.schema import GridSettings

            settings = GridSettings()
        client = connect(url, socket_timeout_s=settings.socket_timeout_s)
        return cls(
            client,
            layout,
            key_prefix=settings.key_prefix,
            feed_maxlen=settings.feed_maxlen,
            chunk_size=chunk_size,
            now_ns=now_ns,
            owns_client=True,
        )

    async def aclose(self) -> None:
        if self._owns_client:
            await self.client.aclose()

    async def __aenter__(self) -> PriceGrid:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- writing ------------------------------------------------------------------------------------------------

    def _chunk_args(self, packed: codec.Packed, lo: int, hi: int) -> list[bytes | str | int]:
        qs = packed.quotes[lo:hi]
        encoded = [encode_quote(q) for q in qs]
        latest = dict(zip(packed.cells[lo:hi], range(len(qs)), strict=True))  # the last quote for a cell wins
        cells = np.fromiter(latest.keys(), np.int64, len(latest))
        rows = np.fromiter(latest.values(), np.int64, len(latest))
        in_blob = self._blob_index[cells]
        order = np.argsort(in_blob)
        in_blob = in_blob[order]
        breaks = np.flatnonzero(np.diff(in_blob) != 1) + 1
        starts = np.concatenate(([0], breaks))
        ends = np.concatenate((breaks, [len(in_blob)]))
        runs = np.empty((len(starts), 2), "<u4")
        runs[:, 0] = in_blob[starts] * codec.CELL_SIZE
        runs[:, 1] = (ends - starts) * codec.CELL_SIZE
        fields = self._field_str16
        pairs: list[bytes] = [b"\xdd" + (2 * len(latest)).to_bytes(4, "big")]
        for cell, row in latest.items():
            pairs.append(fields[cell])
            pairs.append(codec.str16(encoded[row]))
        return [
            self.layout.layout_id,
            self.feed_maxlen,
            codec.msgpack_array(encoded),
            runs.tobytes(),
            packed.records[lo:hi][rows[order]].tobytes(),
            b"".join(pairs),
        ]

    async def _load_script(self) -> str:
        sha = await self.client.script_load(_WRITE_SCRIPT)
        self._script_sha = str(sha.decode() if isinstance(sha, bytes) else sha)
        return self._script_sha

    def prepare(self, quotes: Sequence[Quote], *, validated: bool = False) -> PreparedWrite:
        """Validate and encode a batch for `send` (pure CPU, no I/O).

        Refuses the whole batch (InvalidQuote) if any quote fails `quote_problems` or names an instrument/venue the
        layout lacks: connectors validate first, so a bad quote here is a bug to surface, not noise to filter.
        Separate from `send` so a writer can prepare the next batch while the previous one is in flight.
        """
        if not quotes:
            raise ValueError("a grid write needs at least one quote")
        packed = codec.pack(self.layout, quotes, validated=validated)
        if packed.rejected:
            first = packed.rejected[0]
            q = first.quote
            raise InvalidQuote(
                f"batch of {len(quotes)} refused, {len(packed.rejected)} bad quote(s); first: quote #{first.position} "
                f"(venue={q.venue!r}, instrument={q.instrument!r}, sequence={q.sequence!r}): {first.problem}"
            )
        chunks = [self._chunk_args(packed, lo, lo + self.chunk_size) for lo in range(0, len(quotes), self.chunk_size)]
        return PreparedWrite(len(quotes), self.layout.layout_id, chunks)

    async def send(self, prepared: PreparedWrite) -> FeedPosition:
        """Store a prepared batch: every quote into the feed, the last one per cell into the grid; all or nothing
        (one MULTI/EXEC round trip when it spans several chunks). Returns the feed position after it.

        Raises GridUnavailable when Redis fails; a write that timed out may or may not have been applied.
        """
        if prepared.layout_id != self.layout.layout_id:
            raise ValueError("this batch was prepared for another grid layout")
        started = time.perf_counter()
        try:
            with redis_errors("write"):
                try:
                    result = await self._run_write(prepared.chunks)
                except NoScriptError:
                    log.info("grid.script_reload reason=noscript")
                    await self._load_script()
                    result = await self._run_write(prepared.chunks)
        except GridLayoutMismatch as e:
            raise GridLayoutMismatch(e.stored, self.layout.layout_id) from e.__cause__
        finally:
            GRID_WRITE_SECONDS.observe(time.perf_counter() - started)
        GRID_QUOTES_WRITTEN.inc(prepared.n_quotes)
        c, entry_id = result
        return FeedPosition(int(c), entry_id.decode())

    async def write(self, quotes: Sequence[Quote]) -> FeedPosition:
        """`send(prepare(quotes))`: store a batch atomically, or refuse it whole (see both)."""
        return await self.send(self.prepare(quotes))

    async def write_many(
        self,
        batches: Iterable[Sequence[Quote]],
        *,
        on_written: Callable[[int, FeedPosition], None] | None = None,
        validated: bool = False,
    ) -> int:
        """Write batches in order, each atomically, with the next batch prepared while the previous is in flight.

        Why: preparing (validation, encoding) costs Python about as much as Redis spends executing a batch, and the
        two run on different cores; overlapping them nearly doubles throughput. Still one write in flight at a time,
        so batches land in order. `on_written(n_quotes, position)` is called as each batch is confirmed. `validated`:
        every quote already passed `quote_is_sound` (GridWriter.put checks each), so depth is not re-checked.
        Returns the number of quotes written; on failure raises like `write` (earlier batches stay written, later ones
        are not attempted).
        """
        written = 0
        in_flight: tuple[asyncio.Task[FeedPosition], int] | None = None

        async def settle() -> None:
            nonlocal written, in_flight
            if in_flight is not None:
                task, n = in_flight
                in_flight = None
                position = await task
                written += n
                if on_written is not None:
                    on_written(n, position)

        try:
            for batch in batches:
                try:
                    prepared = self.prepare(batch, validated=validated)
                finally:  # also when prepare refuses the batch: what is in flight lands first
                    await settle()
                task = tasks.spawn(self.send(prepared), name="grid-write", report=False)
                in_flight = (task, prepared.n_quotes)
                await tasks.let_run(task)
            await settle()
        finally:
            if in_flight is not None:  # cancelled while a batch was in flight; its outcome is unknown
                await tasks.cancel_and_wait(in_flight[0])
        return written

    async def _run_write(self, chunks: list[list[bytes | str | int]]) -> tuple[int, bytes]:
        sha = self._script_sha or await self._load_script()
        keys = self._write_keys
        if len(chunks) == 1:
            res = await self.client.evalsha(sha, len(keys), *keys, *chunks[0])
            return cast(tuple[int, bytes], tuple(res))
        async with self.client.pipeline(transaction=True) as pipe:
            for args in chunks:
                pipe.evalsha(sha, len(keys), *keys, *args)
            results = await pipe.execute()
        return cast(tuple[int, bytes], tuple(results[-1]))

    # --- reading ------------------------------------------------------------------------------------------------

    def _fields_of(self, instrument: str) -> list[bytes]:
        fields = self._instrument_fields.get(instrument)
        if fields is None:
            i = self.layout.instrument_index(instrument)
            n_v = len(self.layout.venues)
            fields = list(self.layout.fields[i * n_v : (i + 1) * n_v])
            self._instrument_fields[instrument] = fields
        return fields

    def _view(self, q: Quote, j: int, now: int) -> QuoteView:
        age = now - q.ts_recv
        max_age = int(self.layout.max_age_ns[j])
        return QuoteView(q, age, not (-max_age <= age <= max_age))

    async def read_instrument(self, instrument: str) -> InstrumentSnapshot:
        """Every venue's quote for one instrument (depth included), from one HMGET: a consistent cross-section."""
        fields = self._fields_of(instrument)  # KeyError for an unknown instrument, before touching Redis
        started = time.perf_counter()
        with redis_errors("read_instrument"):
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.hmget(self.keys.grid, fields)
                pipe.hmget(self.keys.pos, ["c", "id"])
                values, pos = await pipe.execute()
        now = self.now_ns()
        skips = codec.Skips("read_instrument")
        venues: dict[str, QuoteView] = {}
        for j, (field, value) in enumerate(zip(fields, values, strict=True)):
            if value is None:
                continue
            decoded = codec.decode_hash_entry(self.layout, field, value, skips)
            if decoded is not None:
                venues[self.layout.venues[j]] = self._view(decoded[1], j, now)
        GRID_READ_SECONDS.labels("instrument").observe(time.perf_counter() - started)
        return InstrumentSnapshot(instrument, now, _position(pos), venues, skips.counts)

    def _check_layout(self, stored: bytes | None) -> None:
        if stored is not None and stored.decode(errors="replace") != self.layout.layout_id:
            raise GridLayoutMismatch(stored.decode(errors="replace"), self.layout.layout_id)

    async def read_grid(self) -> GridSnapshot:
        """Top of book of every cell plus the feed position, in one MULTI/EXEC: the snapshot holds whole batches only,
        and a follower that continues from `position` misses nothing and applies nothing twice."""
        started = time.perf_counter()
        with redis_errors("read_grid"):
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.get(self.keys.tob)
                pipe.hmget(self.keys.pos, ["c", "id"])
                pipe.get(self.keys.layout)
                blob, pos, stored_layout = await pipe.execute()
        self._check_layout(stored_layout)
        now = self.now_ns()
        skips = codec.Skips("read_grid")
        records = codec.decode_blob(self.layout, blob, skips)
        snap = GridSnapshot(self.layout, records, taken_ns=now, position=_position(pos), skipped=skips.counts)
        GRID_READ_SECONDS.labels("grid").observe(time.perf_counter() - started)
        return snap

    async def read_quotes(self) -> QuotesSnapshot:
        """Every cell as a full Quote plus the feed position, in one MULTI/EXEC (HGETALL: slow, see QuotesSnapshot)."""
        started = time.perf_counter()
        with redis_errors("read_quotes"):
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.hgetall(self.keys.grid)
                pipe.hmget(self.keys.pos, ["c", "id"])
                entries, pos = await pipe.execute()
        now = self.now_ns()
        skips = codec.Skips("read_quotes")
        quotes: dict[tuple[str, str], QuoteView] = {}
        n_v = len(self.layout.venues)
        for field, value in entries.items():
            decoded = codec.decode_hash_entry(self.layout, field, value, skips)
            if decoded is not None:
                cell, q = decoded
                quotes[(q.instrument, q.venue)] = self._view(q, cell % n_v, now)
        GRID_READ_SECONDS.labels("quotes").observe(time.perf_counter() - started)
        return QuotesSnapshot(now, _position(pos), quotes, skips.counts)

    async def position(self) -> FeedPosition:
        """The feed position now (c = 0 when nothing was written since Redis started empty)."""
        with redis_errors("position"):
            pos = await self.client.hmget(self.keys.pos, ["c", "id"])
        return _position(cast(list[bytes | None], pos))

    async def read_feed(
        self, after_id: str, *, count: int, block_ms: int | None
    ) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """Feed entries after `after_id` (at most `count`), waiting up to `block_ms` for the first (None: no wait)."""
        with redis_errors("follow"):
            response = await self.client.xread({self.keys.feed: after_id}, count=count, block=block_ms)
        if not response:
            return []
        return stream_entries(response)

    async def publish_health(self, healths: Sequence[VenueHealth]) -> None:
        """Store each venue's feed health under `{prefix}:venues` (one HSET)."""
        if not healths:
            return
        mapping: dict[str | bytes, bytes] = {h.venue: _HEALTH_ENCODER.encode(h) for h in healths}
        with redis_errors("publish_health"):
            await self.client.hset(self.keys.venues, mapping=cast(Any, mapping))

    async def read_health(self) -> dict[str, VenueHealth]:
        """Every venue's last published feed health; an unreadable entry is logged and left out, never guessed."""
        return {h.venue: h for h in await self._read_records("health", self.keys.venues, _HEALTH_DECODER)}

    async def write_wallets(self, wallets: Sequence[VenueWallets]) -> None:
        """Store each venue's wallet table under `{prefix}:wallets` (one HSET; a venue's table replaces its last)."""
        if not wallets:
            return
        mapping: dict[str | bytes, bytes] = {w.venue: _HEALTH_ENCODER.encode(w) for w in wallets}
        with redis_errors("write_wallets"):
            await self.client.hset(self.keys.wallets, mapping=cast(Any, mapping))

    async def read_wallets(self) -> dict[str, VenueWallets]:
        """Every venue's last published wallet table; an unreadable entry is logged and left out (that venue's wallets
        are then unknown, never guessed open)."""
        return {w.venue: w for w in await self._read_records("wallets", self.keys.wallets, _WALLETS_DECODER)}

    async def read_paused(self) -> set[str]:
        """Instruments the risk engine paused (a Redis set, so every scanner process sees the same pauses)."""
        with redis_errors("read_paused"):
            members = cast(set[bytes], await self.client.smembers(self.keys.paused))
        return {m.decode() for m in members}

    async def set_paused(self, instrument: str, paused: bool) -> None:
        with redis_errors("set_paused"):
            if paused:
                await self.client.sadd(self.keys.paused, instrument)
            else:
                await self.client.srem(self.keys.paused, instrument)

    async def write_funding(self, rates: Sequence[FundingRate]) -> None:
        """Store perps' funding rates under `{prefix}:funding` (one HSET); a malformed rate refuses the whole batch."""
        mapping: dict[str | bytes, bytes] = {}
        for r in rates:
            problems = r.problems()
            if problems:
                raise InvalidQuote(f"funding of {r.instrument} on {r.venue}: {'; '.join(problems)}")
            mapping[f"{r.instrument}|{r.venue}"] = funding_codec.ENCODER.encode(r)
        if not mapping:
            return
        with redis_errors("write_funding"):
            await self.client.hset(self.keys.funding, mapping=cast(Any, mapping))

    async def read_funding(self) -> dict[tuple[str, str], FundingRate]:
        """Every stored funding rate by (instrument, venue); an unreadable entry is logged and left out (its perp then
        has no rate, which the scanner treats as unknown, never as zero)."""
        rates = await self._read_records("funding", self.keys.funding, funding_codec.DECODER)
        out: dict[tuple[str, str], FundingRate] = {}
        for r in rates:
            if r.problems():
                log.error("grid.funding_unreadable venue=%s instrument=%s error=%r", r.venue, r.instrument,
                          "; ".join(r.problems()))  # fmt: skip
                continue
            out[(r.instrument, r.venue)] = r
        return out

    async def write_gas(self, records: Sequence[GasCost]) -> None:
        """Store DEX swap gas under `{prefix}:gas` (one HSET); a malformed record refuses the whole batch."""
        mapping: dict[str | bytes, bytes] = {}
        for r in records:
            problems = r.problems()
            if problems:
                raise InvalidQuote(f"gas of {r.instrument} on {r.venue}: {'; '.join(problems)}")
            mapping[f"{r.instrument}|{r.venue}"] = GAS_ENCODER.encode(r)
        if not mapping:
            return
        with redis_errors("write_gas"):
            await self.client.hset(self.keys.gas, mapping=cast(Any, mapping))

    async def read_gas(self) -> dict[tuple[str, str], GasCost]:
        """Every stored gas record by (instrument, venue); an unreadable one is logged and left out (its cell's gas
        is then unknown to the scanner, never zero)."""
        out: dict[tuple[str, str], GasCost] = {}
        for r in await self._read_records("gas", self.keys.gas, GAS_DECODER):
            if r.problems():
                log.error("grid.gas_unreadable venue=%s instrument=%s error=%r", r.venue, r.instrument,
                          "; ".join(r.problems()))  # fmt: skip
                continue
            out[(r.instrument, r.venue)] = r
        return out

    async def _read_records(self, what: str, key: str, decoder: msgspec.msgpack.Decoder[_R]) -> list[_R]:
        """Every field of the hash `key` decoded; an unreadable one is logged (`grid.<what>_unreadable`) and left out,
        so what it described reads as unknown, never guessed."""
        with redis_errors(f"read_{what}"):
            raw = cast(dict[bytes, bytes], await self.client.hgetall(key))
        out: list[_R] = []
        for field, value in raw.items():
            try:
                out.append(decoder.decode(value))
            except msgspec.MsgspecError as exc:
                log.error("grid.%s_unreadable field=%r error=%r", what, field, str(exc))
        return out

    async def reset(self) -> None:
        """Delete the whole grid (hash, blob, layout id, feed, position), e.g. after a layout change."""
        with redis_errors("reset"):
            await self.client.delete(*self.keys.all())
        log.warning("grid.reset prefix_keys=%s", ",".join(self.keys.all()))

    async def server_run_id(self) -> str:
        """Redis's run id: it changes when the server restarts, which is how a follower tells "Redis was away" from
        "Redis came back empty"."""
        with redis_errors("info"):
            info = await self.client.info("server")
        return str(info.get("run_id", ""))

    async def ping(self) -> None:
        """Raise GridUnavailable unless Redis answers within the socket timeout."""
        with redis_errors("ping"):
            await self.client.ping()

    # --- companions -------------------------------------------------------------------------------------------

    def writer(
        self,
        *,
        max_batch: int = 1000,
        max_delay_ms: float = 5.0,
        max_pending: int = 100_000,
        on_written: Callable[[list[Quote]], None] | None = None,
    ) -> GridWriter:
        from arb.grid.writer import GridWriter

        return GridWriter(
            self, max_batch=max_batch, max_delay_ms=max_delay_ms, max_pending=max_pending, on_written=on_written
        )

    def mirror(
        self,
        *,
        block_ms: int = 500,
        count: int = 1000,
        backoff_initial_s: float = 0.05,
        backoff_max_s: float = 2.0,
        now_ns: NowNs | None = None,
        depth: int = 0,
    ) -> GridMirror:
        from arb.grid.mirror import GridMirror

        return GridMirror(
            self,
            block_ms=block_ms,
            count=count,
            backoff_initial_s=backoff_initial_s,
            backoff_max_s=backoff_max_s,
            now_ns=now_ns,
            depth=depth,
        )
