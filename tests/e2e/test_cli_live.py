"""`arb run` on the configured venues as a user runs it: `--live` (real orders, keys from the environment) and
`--market venues` (paper accounts on the venues' market data: no order ever reaches a venue).

The exchanges are stood in for by the local venues (binance and okx, each in its own format) reached through the
venues' `urls:` override, so the run is the live path end to end: the configured venues' market data through ccxt.pro,
the user's account (a fresh one, made on the venue for this test, with keys only the environment holds), real signed
orders. The venue's own record of the account's orders is compared with the ledger's, and the keys are searched for in
everything the run wrote.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import signal
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arb.config import load_settings
from arb.sim.trading import DEFAULT_API_KEY

from .test_cli import arb, json_out

LIVE_VENUES = ("binance", "okx")


def _disabled_others() -> str:
    off = [v for v, c in load_settings().venues.items() if c.kind == "cex" and v not in LIVE_VENUES]
    return "".join(f"  {v}: {{enabled: false}}\n" for v in off)


def _post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(  # noqa: S310 - loopback only
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - loopback only
        return json.loads(resp.read())


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback only
        return json.loads(resp.read())


@pytest.fixture
def venues(tmp_path: Path) -> Iterator[dict[str, dict[str, Any]]]:
    """The local binance and okx venues, with dislocations, in a process of their own (as the exchanges would be)."""
    config = tmp_path / "sim.yaml"
    config.write_text("venues:\n" + _disabled_others())
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "arb.sim", "--config", str(config), "--book-update-hz", "1", "--tick-hz", "20",
         "--regular", "--dislocations-per-min", "40", "--dislocation-ms", "1500", "4000"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "the local venues did not start within 60 s"
        served = json.loads(proc.stdout.readline())["venues"]
        yield {v: served[v] for v in LIVE_VENUES}
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        if proc.stdout is not None:
            proc.stdout.close()


def _live_config(tmp_path: Path, served: dict[str, dict[str, Any]]) -> Path:
    lines = ["mode: live\n", "venues:\n", _disabled_others()]
    for v, info in served.items():
        lines.append(f'  {v}:\n    urls: {{http: "{info["http_url"]}", ws: "{info["ws_url"]}"}}\n')
    path = tmp_path / "live.yaml"
    path.write_text("".join(lines))
    return path


def _open_account(served: dict[str, dict[str, Any]]) -> dict[str, str]:
    """A fresh account on each venue, funded like the sim's default one; returns the env that holds its keys."""
    key, secret, passphrase = f"user-{secrets.token_hex(6)}", secrets.token_hex(16), secrets.token_hex(8)
    env = {}
    for v, info in served.items():
        default = _get(f"{info['http_url']}/_sim/accounts/{DEFAULT_API_KEY}")
        balances = {a: b["free"] for a, b in default["balances"].items()}
        _post(f"{info['http_url']}/_sim/accounts",
              {"api_key": key, "secret": secret, "passphrase": passphrase, "balances": balances})  # fmt: skip
        name = v.upper()
        env |= {f"ARB_{name}_API_KEY": key, f"ARB_{name}_SECRET": secret, f"ARB_{name}_PASSWORD": passphrase}
    return env


@pytest.mark.timeout(300)
def test_arb_run_live_trades_the_configured_venues_with_the_keys_from_the_environment(
    tmp_path: Path, venues: dict[str, dict[str, Any]]
) -> None:
    config = _live_config(tmp_path, venues)
    keys = _open_account(venues)
    db = tmp_path / "ledger.db"
    env = {"ARB_DATABASE_URL": f"sqlite+aiosqlite:///{db}", "ARB_LOG_LEVEL": "INFO", **keys}

    proc = arb("run", "--live", "--config", str(config), "--seconds", "40", "--json", env=env, timeout=200)

    report = json_out(proc)
    assert report["mode"] == "live"
    assert report["executions"] > 0, report
    assert report["success_rate"] >= 0.95, report
    assert report["unaccounted_exposure"] == 0.0, report["exposure_by_asset"]
    # every order the venues hold for this account is one the ledger booked, in the venue's final state
    ledger = json_out(arb("orders", "--json", "--limit", "10000", env={"ARB_DATABASE_URL": env["ARB_DATABASE_URL"]}))
    booked = {(o["venue"], o["venue_order_id"]): o["status"] for o in ledger if o["venue_order_id"]}
    on_venues = {
        (v, str(o["id"])): o["status"]
        for v, info in venues.items()
        for o in _get(f"{info['http_url']}/_sim/orders?api_key={keys['ARB_BINANCE_API_KEY']}")["orders"]
    }
    assert on_venues, "no order reached the venues"
    assert set(on_venues) == set(booked)
    assert {v for v, _ in on_venues} == set(LIVE_VENUES)
    # the default (sim) account was never used: the run traded only with the keys it was given
    for info in venues.values():
        assert _get(f"{info['http_url']}/_sim/orders?api_key={DEFAULT_API_KEY}")["orders"] == []
    # no key, secret or passphrase in anything the run wrote
    written = proc.stdout + proc.stderr + db.read_bytes().decode("latin-1")
    written += "".join(p.read_text(errors="replace") for p in Path(report["stack"]["log_dir"]).glob("*.log"))
    for name, value in keys.items():
        if not name.endswith("_API_KEY"):
            assert value not in written, f"{name} leaked"
    rows = sqlite3.connect(db).execute("select count(*) from orders").fetchone()[0]
    assert rows == len(ledger)


@pytest.mark.timeout(300)
def test_arb_run_on_the_configured_venues_paper_trades_without_sending_any_order(
    tmp_path: Path, venues: dict[str, dict[str, Any]]
) -> None:
    config = _live_config(tmp_path, venues)
    config.write_text(config.read_text().replace("mode: live\n", ""))
    db = tmp_path / "ledger.db"
    env = {"ARB_DATABASE_URL": f"sqlite+aiosqlite:///{db}", "ARB_LOG_LEVEL": "WARNING"}

    proc = arb("run", "--market", "venues", "--config", str(config), "--seconds", "40", "--json", env=env, timeout=200)

    report = json_out(proc)
    assert report["mode"] == "paper"
    assert report["executions"] > 0, report
    assert report["success_rate"] >= 0.95, report
    assert report["unaccounted_exposure"] == 0.0, report["exposure_by_asset"]
    # paper accounts fill on the grid's depth: not one order reached a venue, under any account
    for info in venues.values():
        assert _get(f"{info['http_url']}/_sim/orders")["orders"] == []
    ledger = json_out(arb("orders", "--json", "--limit", "10000", env={"ARB_DATABASE_URL": env["ARB_DATABASE_URL"]}))
    assert len(ledger) >= 2 * report["executions"]
    assert {o["venue"] for o in ledger} == set(LIVE_VENUES)


@pytest.mark.timeout(300)
def test_a_trader_with_external_connectors_trades_on_the_grid_a_separate_arb_connect_fills(
    tmp_path: Path, venues: dict[str, dict[str, Any]], redis_url: str
) -> None:
    """The deployment's split (deploy/, docs/deploy.md): connectors in one process, the trader in another, one Redis."""
    config = _live_config(tmp_path, venues)
    config.write_text(config.read_text().replace("mode: live\n", ""))
    env = {"ARB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}", "ARB_REDIS_URL": redis_url,
           "ARB_LOG_LEVEL": "WARNING"}  # fmt: skip
    base = {k: v for k, v in os.environ.items() if not k.startswith("ARB_")}
    connect = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "arb", "connect", "--venues", ",".join(LIVE_VENUES), "--config", str(config),
         "--metrics-port", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=base | env,
    )  # fmt: skip
    try:
        proc = arb("run", "--market", "venues", "--connectors", "external", "--config", str(config), "--seconds", "40",
                   "--json", "--metrics-port", "0", env=env, timeout=200)  # fmt: skip
    finally:
        connect.send_signal(signal.SIGINT)
        _, connect_err = connect.communicate(timeout=30)

    report = json_out(proc)
    assert report["executions"] > 0, report
    assert report["success_rate"] >= 0.95, report
    assert report["stack"]["venues_connected"] == len(LIVE_VENUES), report["stack"]
    assert connect.returncode == 0, connect_err[-2000:]
    assert "arb connect: binance, okx" in connect_err
    log_dir = Path(report["stack"]["log_dir"])
    assert not list(log_dir.glob("worker*.log"))  # the trader started no connector of its own


def test_external_connectors_need_the_configured_venues_and_a_shared_redis(tmp_path: Path) -> None:
    proc = arb("run", "--connectors", "external", "--seconds", "5")
    assert proc.returncode == 2
    assert "--connectors external reads a grid that `arb connect` fills" in proc.stderr
    proc = arb("connect", "--venues", "binance")
    assert proc.returncode == 2
    assert "set ARB_REDIS_URL" in proc.stderr
    proc = arb("connect", "--venues", "nowhere", env={"ARB_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert proc.returncode == 2
    assert "--venues: not in the settings: nowhere" in proc.stderr


def test_run_live_without_keys_says_which_variables_to_set(tmp_path: Path) -> None:
    config = tmp_path / "live.yaml"
    config.write_text("mode: live\n")

    proc = arb("run", "--live", "--config", str(config), "--seconds", "5")

    assert proc.returncode == 2
    assert "no venue has keys" in proc.stderr
    assert "ARB_BINANCE_API_KEY/ARB_BINANCE_SECRET" in proc.stderr
    assert "nothing was sent" in proc.stderr


def test_live_settings_without_the_live_flag_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "live.yaml"
    config.write_text("mode: live\n")

    proc = arb("run", "--config", str(config), "--seconds", "5")

    assert proc.returncode == 2
    assert "pass --live" in proc.stderr


def test_live_refuses_the_local_venues_fault_schedule(tmp_path: Path) -> None:
    config = tmp_path / "live.yaml"
    config.write_text("mode: live\n")

    proc = arb("run", "--live", "--config", str(config), "--order-fault-every", "5", env={"ARB_BINANCE_API_KEY": "k",
               "ARB_BINANCE_SECRET": "s"})  # fmt: skip

    assert proc.returncode == 2
    assert "--order-fault-every" in proc.stderr
