"""The `arb` command as a user runs it: a real process, real config, real embedded Redis."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest


def arb(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("ARB_")}
    full_env.update(env or {})
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "arb", *args], capture_output=True, text=True, timeout=timeout, env=full_env, check=False
    )


def json_out(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_help_lists_the_commands() -> None:
    proc = arb("--help")

    assert proc.returncode == 0
    for command in ("config", "venues", "instruments", "grid", "demo"):
        assert command in proc.stdout


def test_instrument_count_json_has_the_spec_universe() -> None:
    counts = json_out(arb("instruments", "--count", "--json"))

    assert counts["total"] >= 300
    assert counts["by_class"] == {"crypto_major": 95, "crypto_alt": 248, "fx": 50, "commodity": 30, "index": 20}
    assert counts["perps"] == 5  # BTC, ETH, SOL, XRP, DOGE USD-M perpetuals on binance
    assert counts["total"] == 443 + 5


def test_instruments_filter_by_asset_class() -> None:
    rows = json_out(arb("instruments", "--asset-class", "fx", "--json"))

    assert len(rows) == 50
    assert {r["asset_class"] for r in rows} == {"fx"}
    assert all("capital_com" in r["venues"] for r in rows)


def test_unknown_asset_class_is_a_usage_error() -> None:
    proc = arb("instruments", "--asset-class", "stonks")

    assert proc.returncode == 2
    assert "unknown --asset-class 'stonks'" in proc.stderr


def test_venues_json_lists_exchanges_capital_com_and_dexes() -> None:
    rows = json_out(arb("venues", "--json"))

    kinds = [r["kind"] for r in rows]
    assert kinds.count("cex") >= 16
    assert [r["id"] for r in rows if r["kind"] == "cfd"] == ["capital_com"]
    assert {r["id"] for r in rows if r["kind"] == "dex"} >= {"uniswap_v2", "uniswap_v3", "sushiswap", "pancakeswap"}
    binance = next(r for r in rows if r["id"] == "binance")
    assert "watchOrderBook" in binance["capabilities"]  # read from ccxt.pro, not typed in


def test_venues_table_is_readable() -> None:
    proc = arb("venues")

    assert proc.returncode == 0
    assert "binance" in proc.stdout
    assert "capital_com" in proc.stdout


def test_config_check_passes_on_shipped_config() -> None:
    summary = json_out(arb("config", "check", "--json"))

    assert summary["ok"] is True
    assert summary["coverage_ok"] is True


def test_config_check_names_file_key_and_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("venues:\n  kraken:\n    fees: {taker: -0.5, maker: 0.0}\n")

    proc = arb("config", "check", "--config", str(bad))

    assert proc.returncode == 2
    assert f"{bad}:3: venues.kraken.fees.taker: Input should be greater than or equal to 0" in proc.stderr
    assert proc.stdout == ""


def three_venue_config(tmp_path: Path) -> Path:
    """The shipped config with every venue but binance, kraken and gate disabled (a short demo for the suite; also
    Capital.com and the DEXes, which `tests/e2e/test_demo_venues.py` covers)."""
    from arb.config import load_settings

    keep = {"binance", "kraken", "gate"}
    off = [v for v in load_settings().venues if v not in keep]
    path = tmp_path / "three.yaml"
    path.write_text("venues:\n" + "".join(f"  {v}: {{enabled: false}}\n" for v in off))
    return path


def test_demo_streams_local_venues_into_the_grid_and_reports_json(tmp_path: Path) -> None:
    config = three_venue_config(tmp_path)
    db = tmp_path / "ledger.db"
    env = {"ARB_LOG_LEVEL": "INFO", "ARB_DATABASE_URL": f"sqlite+aiosqlite:///{db}"}

    proc = arb("demo", "--config", str(config), "--seconds", "6", "--json", env=env, timeout=90)

    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    found = report["opportunities"]
    assert found["ledger"] == f"sqlite+aiosqlite:///{db}"
    assert found["persist_dropped"] == 0
    assert found["opened"] == found["closed"]  # the scanner closed what was open when the demo stopped
    with sqlite3.connect(db) as conn:  # every opportunity the scanner opened is in the ledger, closed
        rows = conn.execute("SELECT count(*), count(closed_at_ns) FROM opportunities").fetchone()
    assert rows == (found["opened"], found["opened"])
    assert set(report["venues"]) == {"binance", "kraken", "gate"}
    assert report["venues_connected"] == 3, report["venues"]
    assert report["instruments_covered"] >= 100  # instruments quoted fresh by 2+ of the three
    assert report["updates"] > 0
    assert report["updates_per_s"] == pytest.approx(report["updates"] / report["seconds"], rel=0.01)
    assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["p99"]
    assert report["errors"] == 0
    assert report["faults"] == 0
    for venue in report["venues"].values():
        assert venue["connected"] is True
        assert venue["updates"] > 0
    started = re.search(r"embedded_redis\.started pid=(\d+)", proc.stderr)
    assert started, proc.stderr
    children = [int(p) for p in re.findall(r"child\.ready name=\w+ pid=(\d+)", proc.stderr)]
    assert len(children) == 3, proc.stderr  # the local venues and two connector workers
    for pid in [int(started.group(1)), *children]:
        deadline = time.monotonic() + 5
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(f"/proc/{pid}").exists(), f"demo left process {pid} running"


def test_demo_with_a_fault_schedule_reports_the_drops_and_reconnects(tmp_path: Path) -> None:
    config = three_venue_config(tmp_path)

    proc = arb(
        "demo", "--config", str(config), "--seconds", "7", "--fault-every", "2", "--json",
        env={"ARB_LOG_LEVEL": "INFO"}, timeout=90,
    )  # fmt: skip

    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["faults"] >= 3
    assert report["reconnects"] >= 2
    assert sum(v["reconnects"] for v in report["venues"].values()) == report["reconnects"]
    assert report["venues_connected_avg"] >= 2.0


def test_demo_with_bad_config_starts_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("instruments:\n  ZZZ/USD: {asset_class: fx, base: ZZZ, quote: USD, venues: {nowhere: ZZZUSD}}\n")

    proc = arb("demo", "--config", str(bad), env={"ARB_LOG_LEVEL": "INFO"})

    assert proc.returncode == 2
    assert "venue 'nowhere', which is not configured" in proc.stderr
    assert "embedded_redis.started" not in proc.stderr


@pytest.mark.parametrize("planted", ["redis://:s3cret-planted@127.0.0.1:1/0"])
def test_demo_never_prints_the_redis_password(planted: str) -> None:
    proc = arb("demo", env={"ARB_REDIS_URL": planted, "ARB_GRID__SOCKET_TIMEOUT_S": "0.5"})

    assert proc.returncode == 1  # nothing listens on port 1
    assert "s3cret-planted" not in proc.stdout + proc.stderr
    assert "grid Redis at redis://:***@127.0.0.1:1/0: grid ping failed: Redis unavailable" in proc.stderr
