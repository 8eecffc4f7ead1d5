"""Child processes of `arb` (local venues, connector workers): started, awaited ready, stopped for good.

Why one place: the demo and the ingest benchmark each run the local venues and connector workers in processes of
their own (the machine has two cores and one Python process uses one). Each child prints one JSON line on stdout
when it is ready, logs to a file (so its output neither mixes with ours nor fills a pipe), and dies with its
parent (PR_SET_PDEATHSIG on Linux), so a SIGKILLed demo leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Final

import orjson

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG: Final = 1


def freeze_heap() -> None:
    """Collect once, then put every object still alive out of the cyclic garbage collector's reach (`gc.freeze`).

    Why: a process that has loaded its long-lived state (ccxt's markets of every venue, the sim's books, the
    scanner's arrays) otherwise re-traverses all of it in every full (generation-2) collection: measured at
    ~100 ms every ~10 s in a connector worker and in the scanner's process, a 100 ms stall of every quote and
    opportunity in flight and the whole of the scanner's detection-latency tail (issue 4). Objects created later
    are collected as usual. Unfreezing first means state dropped since the last call (an exchange object replaced
    on reconnect) is collected by this call instead of leaking. The full collection costs ~100 ms, so call it after
    start-up or reconnect work, never on a hot path."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """preexec_fn: have the kernel SIGTERM this child when the thread that forked it exits."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ChildError(RuntimeError):
    """A child process failed to start or died; the message carries the tail of its log."""


class Child:
    """`async with Child("sim", ["-m", "arb.sim", ...], log_path) as child: child.ready` (the parsed JSON line)."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        log_path: Path,
        *,
        ready_timeout_s: float = 60.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """`env` is added to this process's environment for the child."""
        self.name = name
        self.env = None if env is None else {**os.environ, **env}
        self.args = list(args)
        self.log_path = log_path
        self.ready_timeout_s = ready_timeout_s
        self.ready: dict[str, Any] = {}
        self._proc: asyncio.subprocess.Process | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.returncode

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def start(self) -> dict[str, Any]:
        self._log = self.log_path.open("ab")
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *self.args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log,
            preexec_fn=die_with_parent,  # started from the main thread, which outlives the child
            env=self.env,
            limit=1 << 24,
        )
        stdout = self._proc.stdout
        if stdout is None:  # pragma: no cover - PIPE always gives one
            raise ChildError(f"{self.name}: no stdout pipe")
        try:
            line = await asyncio.wait_for(stdout.readline(), self.ready_timeout_s)
        except TimeoutError:
            await self.stop()
            raise ChildError(
                f"{self.name} not ready after {self.ready_timeout_s:.0f}s; log:\n{self.log_tail()}"
            ) from None
        if not line:
            await self.stop()
            raise ChildError(f"{self.name} exited before it was ready; log {self.log_path}:\n{self.log_tail()}")
        try:
            self.ready = orjson.loads(line)
        except orjson.JSONDecodeError:
            await self.stop()
            raise ChildError(f"{self.name} printed {line[:200]!r} instead of its ready line") from None
        log.info("child.ready name=%s pid=%d log=%s", self.name, self._proc.pid, self.log_path)
        return self.ready

    async def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout_s`; returns the exit code."""
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout_s)
            except TimeoutError:
                log.warning("child.kill name=%s pid=%d", self.name, proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return None if proc is None else proc.returncode

    async def __aenter__(self) -> Child:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
