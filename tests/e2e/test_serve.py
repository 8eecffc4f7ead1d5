"""`arb serve`: answers health and metrics on loopback, refuses a public bind while the API has no auth (S10)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback only
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_serve_refuses_a_public_bind_without_auth() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "arb", "serve", "--host", "0.0.0.0"],  # noqa: S104
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert proc.returncode == 2
    assert "refusing to bind 0.0.0.0" in proc.stderr


def test_serve_reports_health_and_metrics_then_stops_cleanly_on_ctrl_c() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARB_")}
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "arb", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        status, body = 0, b""
        while time.monotonic() < deadline:
            try:
                status, body = get(f"http://127.0.0.1:{port}/healthz")
                break
            except OSError:
                time.sleep(0.1)
        assert status == 200, body
        health = json.loads(body)
        assert health["grid_redis"] == "ok"
        assert health["instruments"] >= 300
        status, body = get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        assert b"python_info" in body
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=15)

    assert proc.returncode == 0, stderr
    assert "embedded_redis.stopped" in stderr
