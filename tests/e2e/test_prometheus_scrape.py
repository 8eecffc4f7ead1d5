"""A real Prometheus on loopback scrapes a running `arb run` and evaluates deploy/prometheus/rules.yml against it.

The run streams the local venues with the kill switch engaged beforehand (so it trades nothing) and a config that
requires 99 exchanges, which makes the outcome deterministic: KillSwitchEngaged fires at once (no `for`), and
resolves once `arb kill-switch off` is read by the run; VenueCoverageLow is pending (the local venues are fewer than
99; it needs 2 minutes to fire); every rule evaluates without error on real series.

Prometheus is the binary of Debian's `prometheus` package (`./run test` installs it as root); without it this test
skips and says why. Slow (about 40 s): `./run test --slow` runs it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from tests.unit.deploy.test_grafana import DASHBOARDS, as_promql, dashboard_queries

from .test_cli import arb

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = shutil.which("prometheus")
T = TypeVar("T")

pytestmark = [
    pytest.mark.slow,  # about 40 s: `arb run` starts the local venues and stops gracefully
    pytest.mark.skipif(
        PROMETHEUS is None,
        reason="prometheus not found: `./run test` installs Debian's prometheus package when run as root with apt-get",
    ),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback only
        return json.loads(resp.read())


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, proc_logs: Callable[[], str]) -> T:
    """Poll `probe` until it returns something; fail with the processes' logs otherwise."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            found = probe()
            if found is not None:
                return found
        except OSError as exc:  # not listening yet
            last = exc
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what} (last error: {last})\n{proc_logs()}")


@pytest.fixture
def arb_run(tmp_path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """`arb run` on the local venues with its /metrics on a free port, kill switch engaged, 99 exchanges required."""
    env = {"ARB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}", "ARB_LOG_LEVEL": "WARNING"}
    engaged = arb("kill-switch", "on", "--reason", "e2e: no trading while Prometheus watches", env=env)
    assert engaged.returncode == 0, engaged.stderr
    config = tmp_path / "coverage.yaml"
    config.write_text("coverage:\n  min_exchanges: 99\n")
    port = free_port()
    log = (tmp_path / "arb-run.log").open("w")
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "arb", "run", "--config", str(config), "--metrics-port", str(port), "--seconds", "300"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("ARB_")} | env,
    )
    try:
        yield port, env
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def prometheus(tmp_path: Path, arb_run: tuple[int, dict[str, str]]) -> Iterator[str]:
    """Prometheus with deploy/prometheus/prometheus.yml's rules and globals, scraping the run every second."""
    assert PROMETHEUS is not None
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["scrape_configs"] = [
        {"job_name": "arb-trader", "static_configs": [{"targets": [f"127.0.0.1:{arb_run[0]}"]}]}
    ]
    home = tmp_path / "prometheus"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "prometheus" / "rules.yml", home / "rules.yml")  # rule_files: [rules.yml]
    (home / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (home / "prometheus.log").open("w")
    proc = subprocess.Popen(  # noqa: S603
        [PROMETHEUS, f"--config.file={home / 'prometheus.yml'}", f"--web.listen-address=127.0.0.1:{port}",
         f"--storage.tsdb.path={home / 'data'}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.timeout(150)
def test_prometheus_scrapes_arb_and_evaluates_the_alert_rules(
    tmp_path: Path, arb_run: tuple[int, dict[str, str]], prometheus: str
) -> None:
    _, env = arb_run

    def logs() -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(tmp_path.rglob("*.log")) if p.is_file()
        )

    def query(expr: str) -> list[dict[str, Any]]:
        url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        result: list[dict[str, Any]] = get_json(url)["data"]["result"]
        return result

    def alert(name: str, state: str) -> dict[str, Any] | None:
        alerts = get_json(f"{prometheus}/api/v1/alerts")["data"]["alerts"]
        return next((a for a in alerts if a["labels"]["alertname"] == name and a["state"] == state), None)

    def nonempty(expr: str) -> list[dict[str, Any]] | None:
        return query(expr) or None

    # The run's venues are up in Prometheus, per venue, and its scanner counts them.
    connected = wait_for("arb_venues_connected >= 2", lambda: nonempty("arb_venues_connected >= 2"), 90, logs)
    venues = float(connected[0]["value"][1])
    up = query("arb_connector_up == 1")
    assert len(up) >= 2
    assert all(series["metric"]["venue"] for series in up)
    assert venues < 99

    # KillSwitchEngaged fires (no `for`), with its annotations rendered from the scraped series.
    firing = wait_for("KillSwitchEngaged firing", lambda: alert("KillSwitchEngaged", "firing"), 30, logs)
    assert firing["labels"]["severity"] == "page"
    assert firing["labels"]["job"] == "arb-trader"
    assert firing["annotations"]["summary"] == f"Kill switch engaged on {firing['labels']['instance']}: trading halted"
    assert "arb kill-switch off" in firing["annotations"]["runbook"]

    # VenueCoverageLow: fewer venues than the 99 required (the value is the connected count), pending for 2 minutes.
    pending = wait_for("VenueCoverageLow pending", lambda: alert("VenueCoverageLow", "pending"), 30, logs)
    assert 2 <= float(pending["value"]) < 99
    assert pending["labels"]["severity"] == "page"

    # Every rule evaluates on real series without error; GridStale stays quiet on a grid that is being written.
    groups = get_json(f"{prometheus}/api/v1/rules")["data"]["groups"]
    rules = {r["name"]: r for g in groups for r in g["rules"]}
    assert len(rules) == 9
    assert {name: r["health"] for name, r in rules.items() if r["health"] != "ok"} == {}
    assert rules["GridStale"]["state"] == "inactive"

    # Every Grafana query runs on these real series (Prometheus answers, no error); the coverage board has data.
    for name, path in DASHBOARDS.items():
        for q in dashboard_queries(json.loads(path.read_text())):
            url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": as_promql(q)})
            assert get_json(url)["status"] == "success", (name, q)
    for expr in ("max(arb_venues_connected)", "max(arb_instruments_covered)", "max(arb_grid_age_seconds)"):
        assert query(expr), expr

    # Releasing the kill switch resolves the alert: the run reads the ledger within a second.
    released = arb("kill-switch", "off", "--reason", "e2e done", env=env)
    assert released.returncode == 0, released.stderr
    wait_for("arb_risk_kill_switch == 0", lambda: nonempty("arb_risk_kill_switch == 0"), 30, logs)
    wait_for("KillSwitchEngaged resolved", lambda: alert("KillSwitchEngaged", "firing") is None or None, 30, logs)
