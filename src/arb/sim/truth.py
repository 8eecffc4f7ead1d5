"""Ground truth of injected dislocations: a JSON-lines file and/or a Redis stream, plus the in-memory list.

Why both sinks: a file survives the run and is what an offline check (backtest, benchmark report) reads; a Redis
stream sits next to the price grid, so a live check can line up "what was injected" with "what the scanner saw" in one
place, in order. Each record is one `Dislocation` (venue, instrument, symbol, bps, start_ns, end_ns, id, source),
written when the dislocation starts, with its planned end. The file also holds every venue's book of the instrument
at the start and, as `BooksAt` lines (`{"id", "ts_ns", "books"}`), each later time one of those books was refreshed
while the dislocation lasted; `read_truth_file` folds them into `Dislocation.moments`.

Redis writes are asynchronous (the market steps synchronously); `close()` waits for the ones in flight, so a closed
log is complete.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import msgspec

from arb.sim.market import BooksAt, Dislocation
from arb.tasks import spawn

if TYPE_CHECKING:
    import redis.asyncio as aioredis

log = logging.getLogger(__name__)

TRUTH_STREAM: Final = "{arb}:sim:truth"
"""Default stream key; the `{arb}` hash tag keeps it in the grid's Redis Cluster slot."""

_ENCODER: Final = msgspec.json.Encoder()
_FIELDS: Final = ("id", "venue", "instrument", "symbol", "bps", "start_ns", "end_ns", "source")


class TruthLog:
    """Records every dislocation the market starts. See the module docstring."""

    def __init__(
        self,
        path: Path | str | None = None,
        *,
        redis: aioredis.Redis | None = None,
        stream: str = TRUTH_STREAM,
        maxlen: int = 100_000,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.redis = redis
        self.stream = stream
        self.maxlen = maxlen
        self.records: list[Dislocation] = []
        self.redis_errors = 0
        self._pending: set[asyncio.Task[None]] = set()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch()

    def record(self, d: Dislocation) -> None:
        self.records.append(d)
        if self.path is not None:
            with self.path.open("ab") as f:
                f.write(_ENCODER.encode(d) + b"\n")
        if self.redis is not None:
            task = spawn(self._xadd(d), name=f"sim.truth.xadd.{d.id}")
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    def record_moment(self, moment: BooksAt) -> None:
        """A later moment of a recorded dislocation (file only: the stream carries what started, not the books)."""
        if self.path is not None:
            with self.path.open("ab") as f:
                f.write(_ENCODER.encode(moment) + b"\n")

    async def _xadd(self, d: Dislocation) -> None:
        if self.redis is None:
            return
        fields: dict[Any, Any] = {name: str(getattr(d, name)) for name in _FIELDS}
        try:
            await self.redis.xadd(self.stream, fields, maxlen=self.maxlen, approximate=True)
        except Exception as e:  # a truth record must never take the market down; the file and list still have it
            self.redis_errors += 1
            log.warning("sim.truth_redis_failed id=%d error=%r", d.id, e)

    async def close(self) -> None:
        """Wait for Redis writes in flight."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=5.0)


def read_truth_file(path: Path | str) -> list[Dislocation]:
    """Every dislocation of a truth JSON-lines file, in order, with its later moments (`Dislocation.moments`).

    Raises ValueError naming the line when one is neither a dislocation nor a moment of an earlier one."""
    out: list[Dislocation] = []
    moments: dict[int, list[BooksAt]] = {}
    with Path(path).open("rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                raw = msgspec.json.decode(line)
                if isinstance(raw, dict) and "venue" in raw:  # a moment has no `venue` field of its own
                    out.append(msgspec.convert(raw, Dislocation))
                    continue
                moment = msgspec.convert(raw, BooksAt)
            except msgspec.MsgspecError as exc:
                raise ValueError(f"{path}:{n}: not a truth record: {exc}") from None
            moments.setdefault(moment.id, []).append(moment)
    known = {d.id for d in out}
    if unknown := sorted(set(moments) - known):
        raise ValueError(f"{path}: moments of dislocations that were never recorded: {unknown[:5]}")
    return [msgspec.structs.replace(d, moments=moments[d.id]) if d.id in moments else d for d in out]


async def read_truth_stream(redis: aioredis.Redis, stream: str = TRUTH_STREAM) -> list[Dislocation]:
    """Every record of a truth stream, in order."""
    out: list[Dislocation] = []
    entries: list[tuple[Any, dict[Any, Any]]] = await redis.xrange(stream)  # type: ignore[assignment]
    for _id, raw in entries:
        fields = {_text(k): _text(v) for k, v in raw.items()}
        out.append(
            Dislocation(
                id=int(fields["id"]),
                venue=fields["venue"],
                instrument=fields["instrument"],
                symbol=fields["symbol"],
                bps=float(fields["bps"]),
                start_ns=int(fields["start_ns"]),
                end_ns=int(fields["end_ns"]),
                source=fields["source"],
            )
        )
    return out


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
