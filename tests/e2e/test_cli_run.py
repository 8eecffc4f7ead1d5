"""`arb run` and the trading CLI as a user runs them: the local stack trading paper against the local venues'
private endpoints, then the ledger read back through `arb orders`, `arb positions`, `arb risk status` and the kill
switch."""

from __future__ import annotations

from pathlib import Path

from .test_cli import arb, json_out


def trading_config(tmp_path: Path) -> Path:
    """Four venues in the two formats whose order paths `arb run` trades (Binance: binance, gate, mexc; OKX: okx)."""
    from arb.config import load_settings

    keep = {"binance", "gate", "mexc", "okx"}
    off = [v for v, c in load_settings().venues.items() if c.kind == "cex" and v not in keep]
    path = tmp_path / "trade.yaml"
    path.write_text("venues:\n" + "".join(f"  {v}: {{enabled: false}}\n" for v in off))
    return path


def test_arb_run_trades_the_local_venues_with_every_fill_accounted(tmp_path: Path) -> None:
    config = trading_config(tmp_path)
    env = {"ARB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}", "ARB_LOG_LEVEL": "WARNING"}

    proc = arb("run", "--config", str(config), "--seconds", "30", "--json", "--order-fault-every", "6",
               env=env, timeout=150)  # fmt: skip

    report = json_out(proc)
    assert report["executions"] > 0, report
    assert report["success_rate"] >= 0.95, report
    assert report["unaccounted_exposure"] == 0.0, report["exposure_by_asset"]
    assert report["escalated"] == 0
    assert report["trading_state"] == "active"
    assert report["stack"]["order_faults"] >= 3
    # what the run booked is what the ledger CLI reads back
    orders = json_out(arb("orders", "--json", "--limit", "10000", env=env))
    assert len(orders) >= 2 * report["executions"]
    assert all(o["status"] in ("filled", "cancelled", "rejected") for o in orders)
    assert json_out(arb("orders", "--open", "--json", env=env)) == []


def test_kill_switch_is_persisted_and_reported(tmp_path: Path) -> None:
    env = {"ARB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"}

    on = arb("kill-switch", "on", "--reason", "exchange incident", env=env)
    assert on.returncode == 0, on.stderr
    status = json_out(arb("risk", "status", "--json", env=env))
    assert (status["state"], status["reason"]) == ("halted", "exchange incident")
    assert status["actor"].startswith("cli:")

    assert arb("kill-switch", "off", "--reason", "resolved", env=env).returncode == 0
    assert json_out(arb("risk", "status", "--json", env=env))["state"] == "active"


def test_kill_switch_refuses_a_missing_reason_or_a_bad_state(tmp_path: Path) -> None:
    env = {"ARB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}"}
    bad = arb("kill-switch", "maybe", "--reason", "x", env=env)
    assert bad.returncode == 2
    assert "state must be on or off, got 'maybe'" in bad.stderr
    blank = arb("kill-switch", "on", "--reason", "  ", env=env)
    assert blank.returncode == 2
    assert "--reason must say why" in blank.stderr


def test_run_live_refuses_without_live_mode() -> None:
    proc = arb("run", "--live", "--seconds", "5")
    assert proc.returncode == 2
    assert "--live needs `mode: live`" in proc.stderr
