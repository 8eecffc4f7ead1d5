"""Record the grid's change feed to a tape (`arb record`): every quote, with both timestamps and depth, in feed order.

Why the feed and not the grid: the grid holds the last quote per cell, the feed every quote ever written (the
replay must see each update the live scanner saw). The recorder reads the feed like the mirror does (XREAD after the
last entry id, in batches of up to `count`), decodes each entry's quotes once (to filter and count them; the tape
stores them as columns, `arb.backtest.tape`), and checks the feed counter: an entry trimmed before it was read (the
recorder lagged more than the feed's maxlen) is a gap, logged as an error and listed in the manifest, never papered
over.

Use as `async with Recorder(grid, directory, settings) as rec:`; leaving reads what the feed holds up to that
moment, then writes the last chunk and the manifest (`rec.manifest`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from arb import tasks
from arb.backtest.tape import CHUNKS, MANIFEST, Manifest, TapeWriter, config_hash, write_live_steps
from arb.grid import codec

if TYPE_CHECKING:
    from arb.config import Settings
    from arb.grid import PriceGrid
    from arb.grid.mirror import GridMirror
    from arb.scanner.engine import Scanner

log = logging.getLogger(__name__)


def manifest_summary(manifest: Manifest, directory: Path | str) -> dict[str, Any]:
    """`arb record`'s report of a tape: the manifest with its chunk list counted, and where the tape is."""
    summary = {k: v for k, v in msgspec.to_builtins(manifest).items() if k != "chunks"}
    return summary | {"chunks": len(manifest.chunks), "dir": str(directory)}


def check_out_dir(directory: Path) -> None:
    """Refuse a directory that already holds a tape (a recording never overwrites one) or is not a directory."""
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"--out {directory}: exists and is not a directory")
    if (directory / MANIFEST).exists() or (directory / CHUNKS).exists():
        raise ValueError(f"--out {directory}: already holds a tape; choose another directory")


class Recorder:
    def __init__(
        self,
        grid: PriceGrid,
        directory: Path,
        settings: Settings,
        *,
        venues: Collection[str] | None = None,
        instruments: Collection[str] | None = None,
        chunk_entries: int = 5000,
        chunk_seconds: float = 5.0,
        count: int = 1000,
        block_ms: int = 200,
    ) -> None:
        """`venues` / `instruments`: record only these (None: all); each must be in `settings` (ValueError)."""
        unknown = [v for v in venues or () if v not in settings.venues]
        unknown += [i for i in instruments or () if i not in settings.instruments]
        if unknown:
            raise ValueError(f"not in the settings: {', '.join(unknown)}")
        check_out_dir(directory)
        self.grid, self.dir, self.settings = grid, directory, settings
        self.venues = frozenset(venues) if venues else None
        self.instruments = frozenset(instruments) if instruments else None
        self._chunking = (chunk_entries, chunk_seconds)
        self._count, self._block_ms = count, block_ms
        self._writer: TapeWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_id = "0-0"
        self.skips = codec.Skips("record")
        self._steps: tuple[list[int], list[int], list[bool], list[str], list[Any]] | None = None

    @property
    def manifest(self) -> Manifest:
        if self._writer is None:
            raise RuntimeError("the recorder has not started")
        return self._writer.manifest

    def step_marker(self, mirror: GridMirror, scanner: Scanner) -> Callable[[bool, int], None]:
        """A `Scanner.on_step` for the live `scanner` on `mirror`: notes after which feed entry, when, and with which
        venues up it stepped (written beside the chunks at close, `arb.backtest.tape.LiveSteps`)."""
        c: list[int] = []
        now: list[int] = []
        full: list[bool] = []
        up: list[Any] = []
        self._steps = (c, now, full, list(scanner.layout.venues), up)

        def note(is_full: bool, now_ns: int) -> None:
            if self._writer is not None and not self._writer.manifest.ended_ns:
                c.append(mirror.position.c)
                now.append(now_ns)
                full.append(is_full)
                up.append(scanner.venue_up.copy())

        return note

    async def __aenter__(self) -> Recorder:
        layout = self.grid.layout
        position = await self.grid.position()
        self._last_id = position.id or "0-0"
        self.dir.mkdir(parents=True, exist_ok=True)
        manifest = Manifest(
            venues=sorted(self.venues or layout.venues),
            instruments=sorted(self.instruments or layout.instruments),
            config_hash=config_hash(self.settings),
            started_ns=time.time_ns(),
            ended_ns=0,
        )
        entries, seconds = self._chunking
        self._writer = TapeWriter(self.dir, manifest, after_c=position.c, chunk_entries=entries, chunk_seconds=seconds)
        log.info("record.started dir=%s after_c=%d", self.dir, position.c)
        self._task = tasks.spawn(self._follow(), name="recorder")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            await tasks.cancel_and_wait(self._task)
        await self.close()

    async def close(self, **extra: Any) -> Manifest:
        """Read what the feed holds now, then close the tape (once); `extra` sets manifest fields (e.g.
        `live_opportunities`) before it is written."""
        writer = self._writer
        if writer is None:
            raise RuntimeError("the recorder has not started")
        if self._task is not None:
            await tasks.cancel_and_wait(self._task)
            self._task = None
            while await self._read_once(block_ms=None):
                pass
        for key, value in extra.items():
            setattr(writer.manifest, key, value)
        if self._steps is not None and not writer.manifest.ended_ns:
            write_live_steps(self.dir, *self._steps)
            writer.manifest.live_steps = len(self._steps[0])
        if not writer.manifest.ended_ns:
            manifest = writer.close()
            gaps = sum(g.missed for g in manifest.gaps)
            log.info("record.closed dir=%s entries=%d quotes=%d chunks=%d gaps=%d missed_entries=%d", self.dir,
                     manifest.entries, manifest.quotes, len(manifest.chunks), len(manifest.gaps), gaps)  # fmt: skip
        return writer.manifest

    async def _follow(self) -> None:
        while True:
            tasks.raise_if_cancelling()
            await self._read_once(block_ms=self._block_ms)

    async def _read_once(self, *, block_ms: int | None) -> int:
        entries = await self.grid.read_feed(self._last_id, count=self._count, block_ms=block_ms)
        writer = self._writer
        if writer is None:
            raise RuntimeError("the recorder has not started")
        now = time.time_ns()
        for raw_id, fields in entries:
            entry_id = raw_id.decode()
            c = codec.parse_counter(fields.get(b"c"))
            payload = fields.get(b"q")
            self._last_id = entry_id
            if c is None or payload is None:
                self.skips.record("feed_bad_counter" if c is None else "feed_undecodable", entry_id)
                continue
            quotes = codec.decode_feed_quotes(payload, entry_id, self.skips)
            if self.venues is not None or self.instruments is not None:
                kept = [q for q in quotes if self._wanted(q.venue, q.instrument)]
                writer.manifest.filtered_out += len(quotes) - len(kept)
                quotes = kept
            gaps = len(writer.manifest.gaps)
            writer.append(c, now, quotes)
            if len(writer.manifest.gaps) > gaps:
                gap = writer.manifest.gaps[-1]
                log.error("record.gap after_c=%d missed=%d (the feed was trimmed before the recorder read it)",
                          gap.after_c, gap.missed)  # fmt: skip
        return len(entries)

    def _wanted(self, venue: str, instrument: str) -> bool:
        return (self.venues is None or venue in self.venues) and (
            self.instruments is None or instrument in self.instruments
        )


async def record_grid(
    settings: Settings,
    url: str,
    directory: Path,
    venues: Collection[str],
    instruments: Collection[str],
    seconds: float | None,
    as_json: bool,
    console: Any,
) -> int:
    """`arb record` on a running stack's grid (ARB_REDIS_URL): record until `seconds` pass or Ctrl-C, with progress
    on stderr every 5 s; exit code 1 if the tape has gaps (it is still written, and says where)."""
    import sys

    from arb.grid import GridLayout, PriceGrid

    async with PriceGrid.from_url(url, GridLayout.from_settings(settings), settings.grid) as grid:
        await grid.ping()
        async with Recorder(grid, directory, settings, venues=venues or None, instruments=instruments or None) as rec:
            started = time.monotonic()
            try:
                while seconds is None or time.monotonic() - started < seconds:
                    await asyncio.sleep(min(5.0, max(0.05, (seconds or 5.0) - (time.monotonic() - started))))
                    m = rec.manifest
                    sys.stderr.write(f"record: {time.monotonic() - started:5.1f}s entries {m.entries} quotes "
                                     f"{m.quotes} chunks {len(m.chunks)} gaps {len(m.gaps)}\n")  # fmt: skip
            except (KeyboardInterrupt, asyncio.CancelledError):
                log.info("record.stopping reason=interrupted")
            manifest = await rec.close()
    summary = manifest_summary(manifest, directory)
    if as_json:
        sys.stdout.write(msgspec.json.encode(summary).decode() + "\n")
    else:
        console.print(f"recorded {manifest.quotes} quotes in {manifest.entries} feed entries "
                      f"({len(manifest.chunks)} chunks), {len(manifest.gaps)} gaps -> {directory}")  # fmt: skip
    return 1 if manifest.gaps else 0
