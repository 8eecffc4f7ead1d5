"""Opportunity lifecycle events on a Redis stream (`{prefix}:opportunities`), for the API, the CLI and recorders.

Why a stream next to the grid: every consumer (the REST WebSocket, `arb scan --follow` in another terminal, a recorder)
reads the same ordered record without talking to the scanner process, and a consumer that was away resumes from the
last id it saw. Writing is batched in a background task so the scanner's pass never waits on Redis; a failed write
keeps the batch and retries (a lifecycle record with a missing `closed` would leave an opportunity open forever for
its readers), bounded by `max_pending`, past which the oldest `updated` events are dropped and counted.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import TYPE_CHECKING, Final

import msgspec

from arb import tasks
from arb.grid.errors import GridError
from arb.grid.store import redis_errors, stream_entries
from arb.model import OpportunityEvent

if TYPE_CHECKING:
    from arb.grid.store import PriceGrid

log = logging.getLogger(__name__)

_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(OpportunityEvent)
_FIELD: Final = b"e"


class OpportunityStream:
    """`async with OpportunityStream(grid) as stream: scanner.sinks.append(stream.put)`."""

    def __init__(
        self, grid: PriceGrid, *, maxlen: int = 100_000, max_pending: int = 50_000, flush_s: float = 0.005
    ) -> None:
        self._grid = grid
        self._key = grid.keys.opportunities
        self._maxlen = maxlen
        self._max_pending = max_pending
        self._flush_s = flush_s
        self._pending: collections.deque[OpportunityEvent] = collections.deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self.written = 0
        self.dropped = 0

    def put(self, event: OpportunityEvent) -> None:
        if len(self._pending) >= self._max_pending:
            for k, old in enumerate(self._pending):
                if old.type == "updated":
                    del self._pending[k]
                    self.dropped += 1
                    break
        self._pending.append(event)
        self._wake.set()

    async def flush(self) -> int:
        if not self._pending:
            return 0
        batch = list(self._pending)
        async with self._grid.client.pipeline(transaction=False) as pipe:
            for event in batch:
                pipe.xadd(self._key, {_FIELD: _ENCODER.encode(event)}, maxlen=self._maxlen, approximate=True)
            with redis_errors("opportunity_stream"):
                await pipe.execute()
        for _ in batch:
            self._pending.popleft()
        self.written += len(batch)
        return len(batch)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(self._flush_s)  # gather what one scanner pass emits into one round trip
            try:
                await self.flush()
                if self._failing:
                    self._failing = False
                    log.info("scanner.stream_recovered")
            except GridError as e:
                if not self._failing:
                    self._failing = True
                    log.warning("scanner.stream_failing pending=%d error=%r", len(self._pending), str(e))
                await asyncio.sleep(0.2)
                self._wake.set()

    async def __aenter__(self) -> OpportunityStream:
        self._task = tasks.spawn(self._run(), name="opportunity-stream")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            await tasks.cancel_and_wait(self._task)
        try:
            await self.flush()
        except GridError as e:
            log.error("scanner.stream_final_flush_failed lost=%d error=%r", len(self._pending), str(e))


async def read_events(
    grid: PriceGrid, after: str = "0-0", *, count: int = 1000, block_ms: int | None = None
) -> tuple[str, list[OpportunityEvent]]:
    """Events after stream id `after` (oldest first) and the id to continue from; undecodable entries are logged
    and skipped, never guessed."""
    with redis_errors("read_opportunities"):
        raw = await grid.client.xread({grid.keys.opportunities: after}, count=count, block=block_ms)
    if not raw:
        return after, []
    entries = stream_entries(raw)
    out: list[OpportunityEvent] = []
    last = after
    for entry_id, fields in entries:
        last = entry_id.decode()
        try:
            out.append(_DECODER.decode(fields[_FIELD]))
        except (KeyError, msgspec.MsgspecError) as e:
            log.error("scanner.stream_entry_unreadable id=%s error=%r", last, str(e))
    return last, out
