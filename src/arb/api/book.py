"""The API's view of open opportunities: the scanner's lifecycle stream (`{prefix}:opportunities`) folded into the
set open now, and fanned out to WebSocket subscribers.

Why follow the stream instead of scanning: the trading process's scanner already decided what is open (with its
hysteresis, staleness and venue health); a second scanner in the API would disagree with it at the edges, and the
ids a client executes must be the trading process's ids. On start the whole retained stream is read (opened/updated
upsert, closed removes), then new entries as they come. A subscriber that cannot keep up loses its oldest events and
is told how many (`dropped`), never blocks the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Final

from arb import tasks
from arb.grid.errors import GridError
from arb.model import OpportunityEvent
from arb.scanner.stream import read_events

if TYPE_CHECKING:
    from arb.grid.store import PriceGrid

log = logging.getLogger(__name__)

QUEUE_SIZE: Final = 1000


class Subscription:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[OpportunityEvent] = asyncio.Queue(QUEUE_SIZE)
        self.dropped = 0

    def offer(self, event: OpportunityEvent) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)


class OpportunityBook:
    def __init__(self, grid: PriceGrid, *, block_ms: int = 1000) -> None:
        self._grid = grid
        self._block_ms = block_ms
        self.open: dict[str, OpportunityEvent] = {}
        self.last_id = "0-0"
        self.caught_up = asyncio.Event()
        self.failing: str | None = None
        self._subs: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None

    def apply(self, event: OpportunityEvent) -> None:
        oid = event.opportunity.id
        if event.type == "closed":
            self.open.pop(oid, None)
        else:
            self.open[oid] = event
        for sub in self._subs:
            sub.offer(event)

    def ranked(self) -> list[OpportunityEvent]:
        """Open opportunities, best priority first (ties by id, so pages are stable)."""
        return sorted(self.open.values(), key=lambda e: (-e.opportunity.priority, e.opportunity.id))

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        sub = Subscription()
        self._subs.add(sub)
        try:
            yield sub
        finally:
            self._subs.discard(sub)

    async def _follow(self) -> None:
        while True:
            try:
                block = self._block_ms if self.caught_up.is_set() else None
                last, events = await read_events(self._grid, self.last_id, count=5000, block_ms=block)
                if self.failing is not None:
                    log.info("api.book_recovered")
                    self.failing = None
            except GridError as exc:
                if self.failing is None:
                    log.warning("api.book_failing error=%r", str(exc))
                self.failing = str(exc)
                await asyncio.sleep(0.5)
                continue
            self.last_id = last
            for event in events:
                self.apply(event)
            if not events and not self.caught_up.is_set():
                self.caught_up.set()

    async def __aenter__(self) -> OpportunityBook:
        self._task = tasks.spawn(self._follow(), name="api-opportunity-book")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            await tasks.cancel_and_wait(self._task)
