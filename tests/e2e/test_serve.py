"""`arb serve` end to end: the API over HTTP in front of the embedded stack (Redis, local venues, connectors,
scanner, paper trader), driven as a client drives it; and its refusals to listen beyond loopback (FAULTS S10).

The stack trades only what the API asks for (`--auto-trade` off), so every execution in the ledger is one this test
made: asking twice with one Idempotency-Key makes one execution, and the kill switch stops the next.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

pytestmark = pytest.mark.timeout(240)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARB_")}
    env["ARB_DATABASE_URL"] = f"sqlite+aiosqlite:///{db}"
    return env


def arb(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "arb", *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def new_key(env: dict[str, str], scope: str) -> str:
    proc = arb(env, "api-key", "create", "--scope", scope, "--name", f"e2e-{scope}", "--json")
    assert proc.returncode == 0, proc.stderr
    return str(json.loads(proc.stdout)["token"])


def test_a_public_bind_without_any_api_key_is_refused(tmp_path: Path) -> None:
    proc = arb(env_for(tmp_path / "l.db"), "serve", "--host", "0.0.0.0")  # noqa: S104 - what is refused
    assert proc.returncode == 2
    assert "refusing to bind 0.0.0.0: no API key exists yet" in proc.stderr


def test_a_public_bind_on_a_default_database_password_is_refused(tmp_path: Path) -> None:
    env = env_for(tmp_path / "l.db") | {"ARB_DATABASE_URL": "postgresql+asyncpg://arb:postgres@127.0.0.1:5432/arb"}
    proc = arb(env, "serve", "--host", "0.0.0.0")  # noqa: S104 - what is refused
    assert proc.returncode == 2
    assert "ARB_DATABASE_URL uses a default password" in proc.stderr
    assert "postgres@" not in proc.stderr


async def _wait_ready(
    client: httpx.AsyncClient, headers: dict[str, str], proc: subprocess.Popen[str]
) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    health: dict[str, Any] = {}
    while time.monotonic() < deadline:
        assert proc.poll() is None, "arb serve exited"
        try:
            r = await client.get("/api/v1/monitoring/health", headers=headers)
            health = r.json()
            if r.status_code == 200 and health["status"] == "ok" and health["venues_connected"] >= 16:
                return health
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.5)
    raise AssertionError(f"arb serve never became ready: {health}")


async def _execute_one(client: httpx.AsyncClient, trade: dict[str, str], idem: str) -> tuple[str, httpx.Response]:
    """The top open opportunity, executed; a 409 (it closed before the trader took it) moves on to the next."""
    reasons = []
    deadline = time.monotonic() + 60
    n = 0
    while time.monotonic() < deadline:
        n += 1
        scan = (await client.get("/api/v1/arbitrage/scan", params={"limit": 1}, headers=trade)).json()
        if not scan["opportunities"]:
            await asyncio.sleep(0.5)
            continue
        oid = scan["opportunities"][0]["id"]
        r = await client.post(
            "/api/v1/arbitrage/execute",
            json={"opportunity_id": oid},
            headers=trade | {"Idempotency-Key": f"{idem}-{n}"},
        )
        if r.status_code == 200:
            return f"{idem}-{n}", r
        assert r.status_code == 409, r.text
        reasons.append(r.json()["detail"])
        await asyncio.sleep(0.3)
    raise AssertionError(f"no opportunity could be executed: {reasons}")


async def _client_session(port: int, keys: dict[str, str], proc: subprocess.Popen[str]) -> dict[str, Any]:
    read, trade, admin = ({"X-API-Key": keys[s]} for s in ("read", "trade", "admin"))
    seen: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        seen["health"] = await _wait_ready(client, read, proc)
        async with websockets.connect(
            f"ws://127.0.0.1:{port}/api/v1/stream/opportunities", additional_headers={"X-API-Key": keys["read"]}
        ) as ws:
            seen["ws"] = json.loads(await asyncio.wait_for(ws.recv(), 20))
        idem, first = await _execute_one(client, trade, "e2e")
        seen["first"] = first.json()
        oid = seen["first"]["opportunity_id"]
        again = await client.post(
            "/api/v1/arbitrage/execute", json={"opportunity_id": oid}, headers=trade | {"Idempotency-Key": idem}
        )
        seen["again"], seen["again_replayed"] = again.json(), again.headers.get("idempotent-replayed")
        ex = seen["first"]["execution_id"]
        seen["execution"] = (await client.get(f"/api/v1/arbitrage/executions/{ex}", headers=trade)).json()
        seen["execution_other_key"] = (await client.get(f"/api/v1/arbitrage/executions/{ex}", headers=read)).status_code
        await asyncio.sleep(1.0)  # the trader's next snapshot
        seen["portfolio"] = (await client.get("/api/v1/portfolio/status", headers=read)).json()
        r = await client.post("/api/v1/risk/kill-switch", json={"engaged": True, "reason": "e2e"}, headers=admin)
        seen["kill"] = r.json()
        scan = (await client.get("/api/v1/arbitrage/scan", params={"limit": 1}, headers=trade)).json()
        if scan["opportunities"]:
            blocked = await client.post(
                "/api/v1/arbitrage/execute",
                json={"opportunity_id": scan["opportunities"][0]["id"]},
                headers=trade | {"Idempotency-Key": "after-kill"},
            )
            seen["blocked"] = (blocked.status_code, blocked.json()["detail"])
        seen["metrics"] = (await client.get("/metrics")).text
    return seen


def test_serve_runs_the_stack_and_a_client_scans_executes_once_per_key_and_halts_it(tmp_path: Path) -> None:
    env = env_for(tmp_path / "ledger.db")
    keys = {scope: new_key(env, scope) for scope in ("read", "trade", "admin")}
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "arb", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        seen = asyncio.run(_client_session(port, keys, proc))
    finally:
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-3000:]

    assert seen["health"]["status"] == "ok", seen["health"]
    assert seen["health"]["checks"]["database"]["ok"]
    assert seen["ws"]["type"] in ("opened", "updated", "closed")
    assert seen["ws"]["opportunity"]["id"]
    first = seen["first"]
    assert first["executed"] is True
    assert first["status"] in ("done", "hedged")
    assert seen["again"] == first
    assert seen["again_replayed"] == "true"
    execution = seen["execution"]
    assert execution["execution_id"] == first["execution_id"]
    assert execution["status"] in ("done", "hedged")
    assert {o["side"] for o in execution["orders"]} == {"buy", "sell"}
    assert seen["execution_other_key"] == 404  # another principal's execution (S3)
    assert seen["portfolio"]["mode"] == "paper"
    assert len(seen["portfolio"]["balances"]) > 10
    assert seen["kill"]["state"] == "halted"
    if "blocked" in seen:
        assert seen["blocked"][0] == 409
        assert "kill switch is engaged" in seen["blocked"][1]
    assert 'arb_api_requests_total{method="POST",route="/api/v1/arbitrage/execute",status="200"}' in seen["metrics"]
    for token in keys.values():  # no key in the process's own output (S8)
        assert token.split("_", 2)[2] not in stderr
