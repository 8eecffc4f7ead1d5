"""The `arb` command as a user runs it: a real process, real config, real embedded Redis."""

from __future__ import annotations

import json
import os
import re
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
    assert counts["by_class"] == {"crypto_major": 50, "crypto_alt": 150, "fx": 50, "commodity": 30, "index": 20}


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


def test_demo_starts_embedded_redis_shows_coverage_and_stops_it() -> None:
    proc = arb("demo", env={"ARB_LOG_LEVEL": "INFO"})

    assert proc.returncode == 0, proc.stderr
    assert "embedded redis-server" in proc.stdout
    assert "coverage" in proc.stdout
    assert "300 instruments" in proc.stdout
    assert "grid: 300 instruments x 21 venues, 0 cells quoted, feed at c=0" in proc.stdout
    started = re.search(r"embedded_redis\.started pid=(\d+)", proc.stderr)
    assert started, proc.stderr
    pid = int(started.group(1))
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists(), "demo left its redis-server running"


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
