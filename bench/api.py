"""API benchmark: `GET /api/v1/arbitrage/scan` throughput and latency with the whole universe live. Prints ONE JSON
object (`./run bench api [--seconds N] [--connections C]`).

Set-up, all real, as deployed (separate processes on one Redis): a redis-server; `arb run --manual` (the 16 local
venues, the connector workers, the scanner over 345 instruments, the paper trader; dislocations held 2-10 s so
opportunities stay open); and the API alone, `arb serve` (uvicorn + uvloop, one worker) on that Redis, with an
admin key made by `arb api-key create` and the per-key rate limit lifted (`ARB_API__RATE_LIMIT_PER_S`), since
throttling is not what is measured. The load comes from `wrk` (C, one thread: light on the 2 cores), installed
by `./run bench api` from Debian's packages when missing.

Measured, once the health check says every venue is connected and the universe covered:
* `scan`: `GET /api/v1/arbitrage/scan?limit=50` (auth, ranking of every open opportunity, 50 serialised with their
  full cost breakdown): requests/s and latency p50/p90/p99. Target (issue 7): >= 2,000 req/s, p99 <= 20 ms.
* baseline, in the same run: `GET /healthz` (no auth, one Redis PING): the server's floor on this machine;
  `scan_vs_floor` is the ratio of their throughputs.
Both share the machine with the stack that feeds them (connectors, scanner, trader), as in production.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from arb.grid.embedded import EmbeddedRedis

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wrk(url: str, key: str | None, seconds: int, connections: int) -> dict[str, float]:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if key:
        args[1:1] = ["-H", f"X-API-Key: {key}"]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=seconds + 30).stdout  # noqa: S603
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = {q: float(v) * _UNITS[u] for q, v, u in re.findall(r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s)$", out, re.M)}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    return {
        "requests_per_s": rps, "p50_ms": lat["50"], "p90_ms": lat["90"], "p99_ms": lat["99"],
        "requests": float(total.group(1)) if total else 0.0, "non_2xx": float(non2xx.group(1)) if non2xx else 0.0,
    }  # fmt: skip


def wait_ready(base: str, key: str, proc: subprocess.Popen[str], timeout_s: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    health: dict[str, Any] = {}
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"arb serve exited with {proc.returncode}")
        try:
            req = urllib.request.Request(base + "/api/v1/monitoring/health", headers={"X-API-Key": key})  # noqa: S310
            with urllib.request.urlopen(req, timeout=5) as r:  # noqa: S310 - loopback
                health = json.loads(r.read())
            if health["status"] == "ok":
                return health
        except OSError:
            pass
        time.sleep(1.0)
    raise SystemExit(f"arb serve never became ready: {health}")


def scan_total(base: str, key: str) -> int:
    req = urllib.request.Request(base + "/api/v1/arbitrage/scan?limit=50", headers={"X-API-Key": key})  # noqa: S310
    with urllib.request.urlopen(req, timeout=5) as r:  # noqa: S310 - loopback
        return int(json.loads(r.read())["total"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--warmup", type=float, default=10.0, help="Seconds of stack warm-up after ready.")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench api needs wrk (Debian package `wrk`; ./run bench api installs it as root)")
    tmp = Path(tempfile.mkdtemp(prefix="arb-bench-api-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARB_")}
    env |= {"ARB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'ledger.db'}", "ARB_LOG_LEVEL": "WARNING",
            "ARB_API__RATE_LIMIT_PER_S": "100000", "ARB_API__RATE_LIMIT_BURST": "1000000"}  # fmt: skip
    made = subprocess.run([sys.executable, "-m", "arb", "api-key", "create", "--scope", "admin", "--name", "bench",
                           "--json"], capture_output=True, text=True, env=env, check=True)  # fmt: skip
    key = json.loads(made.stdout)["token"]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with EmbeddedRedis() as redis:
        env["ARB_REDIS_URL"] = redis.url
        trader = subprocess.Popen([sys.executable, "-m", "arb", "run", "--manual", "--metrics-port", "0",
                                   "--dislocation-ms", "2000", "10000"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=(tmp / "run.log").open("w"), text=True)  # fmt: skip
        api = subprocess.Popen([sys.executable, "-m", "arb", "serve", "--port", str(port)], env=env,  # noqa: S603
                               stdout=subprocess.DEVNULL, stderr=(tmp / "serve.log").open("w"), text=True)  # fmt: skip
        try:
            health = wait_ready(base, key, api)
            time.sleep(args.warmup)
            pages = [scan_total(base, key)]
            scan = wrk(base + "/api/v1/arbitrage/scan?limit=50", key, args.seconds, args.connections)
            pages.append(scan_total(base, key))
            floor = wrk(base + "/healthz", None, args.seconds, args.connections)
        finally:
            for proc in (api, trader):
                proc.send_signal(signal.SIGINT)
            for proc in (api, trader):
                proc.wait(timeout=60)
    result = {
        "benchmark": "api_scan",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "instruments_covered": health["instruments_covered"], "venues_connected": health["venues_connected"],
        "open_opportunities_before_after": pages,
        "connections": args.connections, "seconds": args.seconds,
        "scan": scan, "baseline_healthz": floor,
        "scan_vs_floor": scan["requests_per_s"] / floor["requests_per_s"],
        "target": {"requests_per_s": 2000, "p99_ms": 20},
        "meets_target": scan["requests_per_s"] >= 2000 and scan["p99_ms"] <= 20,
    }  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
