"""DEX swap gas as the grid stores it (`{arb}:gas`, one hash field per DEX cell), and its publisher.

Why in Redis and not in the quote: the DEX connector prices one swap's gas per block (units x (base fee + tip) x the
native token's price in the pool's quote token, `arb.connectors.dex.gas.GasQuote`), but the scanner runs on a grid
mirror in another process (or machine) and never sees the connector; gas is published beside the quotes like funding
rates are (`arb.grid.funding`), one small record per (instrument, venue), re-written every block.

`quote_cost` is in the pool's quote token (USDC for WETH/USDC), None while the native token has no price there: the
scanner then charges NaN (no opportunity), never 0. A record older than the venue's quote-age limit is stale (the
connector stopped publishing): its cell's gas is unknown again.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Final

import msgspec

from arb import tasks

log = logging.getLogger(__name__)


class GasCost(msgspec.Struct, frozen=True, kw_only=True):
    """Gas of one swap on DEX `venue` for `instrument` at `block`, in the pool's quote token."""

    venue: str
    instrument: str
    block: Annotated[int, msgspec.Meta(ge=0)]
    quote_cost: float | None
    """Quote-token units per swap; None: the native token has no price in it yet (unpriced, never 0)."""
    ts_ns: Annotated[int, msgspec.Meta(gt=0)]
    """When the connector priced it (UTC ns); staleness is judged on it."""

    def problems(self) -> list[str]:
        """What makes this record unusable (decode checks the bounds; NaN/inf/negative need this)."""
        if self.quote_cost is not None and not (math.isfinite(self.quote_cost) and self.quote_cost >= 0):
            return [f"quote_cost must be a finite non-negative number or null, got {self.quote_cost!r}"]
        return []


ENCODER: Final = msgspec.msgpack.Encoder()
DECODER: Final = msgspec.msgpack.Decoder(GasCost)

WriteGas = Callable[[Sequence[GasCost]], Awaitable[None]]


class GasPublisher:
    """Takes gas records from a connector's synchronous `gas_sink` and writes the newest per cell in one HSET per
    flush (`PriceGrid.write_gas`), so a block's gas for every pool costs one round trip, off the quoting path.

        publisher = GasPublisher(grid.write_gas)
        async with publisher:                      # flushes until closed, then once more
            DexConnector(..., gas_sink=publisher.put)
    """

    def __init__(self, write: WriteGas, *, min_interval_s: float = 0.05) -> None:
        if min_interval_s < 0:
            raise ValueError(f"min_interval_s must be >= 0, got {min_interval_s}")
        self._write = write
        self._min_interval_s = min_interval_s
        self._pending: dict[tuple[str, str], GasCost] = {}
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        self.failed = 0

    def put(self, gas: GasCost) -> None:
        """Queue `gas` (a newer record of the same cell replaces a pending one). ValueError for a malformed one."""
        problems = gas.problems()
        if problems:
            raise ValueError(f"gas of {gas.instrument} on {gas.venue}: {'; '.join(problems)}")
        self._pending[(gas.instrument, gas.venue)] = gas
        self._changed.set()

    async def flush(self) -> None:
        """Write what is pending now; a Redis failure is logged and counted, and those records are dropped (the next
        block re-publishes every cell, and a cell left unwritten ages out to unknown gas, never to zero)."""
        batch = list(self._pending.values())
        self._pending.clear()
        if not batch:
            return
        try:
            await self._write(batch)
            self.written += len(batch)
        except Exception as exc:  # GridError or a dropped connection: log, count, keep publishing
            self.failed += len(batch)
            log.warning("grid.gas_unpublished records=%d error=%r", len(batch), str(exc)[:200])

    async def _run(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            await self.flush()
            await asyncio.sleep(self._min_interval_s)

    async def __aenter__(self) -> GasPublisher:
        self._task = tasks.spawn(self._run(), name="gas-publisher")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            await tasks.cancel_and_wait(self._task)
        await self.flush()


def gas_cost(venue: str, instrument: str, block: int, quote_cost: float | None, ts_ns: int | None = None) -> GasCost:
    """A record for `GasPublisher.put` stamped now (or at `ts_ns`)."""
    now = ts_ns or time.time_ns()
    return GasCost(venue=venue, instrument=instrument, block=block, quote_cost=quote_cost, ts_ns=now)
