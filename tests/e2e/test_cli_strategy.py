"""`arb strategy ...` as a user runs it, on 1H candles served by the local Binance venue (its `/api/v3/klines`, reached
by the real ccxt class through the venue's `urls:` override): fetch, train, backtest, walk-forward, signal.

The full-size walk-forward (5,000 bars, default budget, <= 10 minutes) is `-m slow`; the default run uses a small
budget so the whole chain is checked in well under a minute per step.
"""

from __future__ import annotations

import json
import select
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arb.config import load_settings

from .test_cli import arb, json_out

ASSETS = ("BTC/USD", "ETH/USD")


def _disabled_others() -> str:
    off = [v for v, c in load_settings().venues.items() if c.kind == "cex" and v != "binance"]
    return "".join(f"  {v}: {{enabled: false}}\n" for v in off)


@pytest.fixture(scope="module")
def binance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The local Binance venue in a process of its own."""
    config = tmp_path_factory.mktemp("sim") / "sim.yaml"
    config.write_text("venues:\n" + _disabled_others())
    proc = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "arb.sim", "--config", str(config), "--book-update-hz", "1", "--tick-hz", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, "the local venues did not start within 60 s"
        yield json.loads(proc.stdout.readline())["venues"]["binance"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        if proc.stdout is not None:
            proc.stdout.close()


def user_config(tmp_path: Path, served: dict[str, Any], *, days: int, train: int, test: int, steps: int) -> Path:
    path = tmp_path / "user.yaml"
    path.write_text(
        f"database_url: sqlite+aiosqlite:///{tmp_path / 'ledger.db'}\n"
        "venues:\n" + _disabled_others() + f'  binance:\n    urls: {{http: "{served["http_url"]}", '
        f'ws: "{served["ws_url"]}"}}\n'
        "strategy:\n"
        f"  candles: {{assets: [{', '.join(ASSETS)}], history_days: {days}, data_dir: {tmp_path / 'candles'}}}\n"
        f"  rl: {{total_timesteps: {steps}, models_dir: {tmp_path / 'models'}}}\n"
        f"  walk_forward: {{train_bars: {train}, test_bars: {test}}}\n"
    )
    return path


METRICS = {"sharpe", "sortino", "calmar", "max_drawdown", "win_rate", "profit_factor", "total_return", "trades"}


def check_report(doc: dict[str, Any], out: Path) -> None:
    assert METRICS <= doc["strategy"].keys()
    assert set(doc["baselines"]) == {"buy_and_hold", "sma_crossover"}
    for baseline in doc["baselines"].values():
        assert METRICS <= baseline.keys()
    assert (out / "report.html").read_text().count("buy_and_hold") >= 1
    assert (out / "equity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.timeout(300)
def test_fetch_train_backtest_walk_forward_and_signal_on_local_venue_candles(
    binance: dict[str, Any], tmp_path: Path
) -> None:
    config = user_config(tmp_path, binance, days=60, train=600, test=200, steps=1_500)
    env = {"ARB_CONFIG": str(config)}

    fetched = json_out(arb("strategy", "fetch", "--json", env=env))
    assert set(fetched["added"]) == set(ASSETS)
    assert all(60 * 24 <= n <= 60 * 24 + 1 for n in fetched["added"].values())
    again = json_out(arb("strategy", "fetch", "--json", env=env))
    assert all(n <= 1 for n in again["added"].values())  # resumed: only a bar that closed since, if any

    wf_out = tmp_path / "wf"
    started = time.monotonic()
    result = arb("strategy", "walk-forward", "--asset", "BTC/USD", "--out", str(wf_out), "--json", env=env, timeout=240)
    doc = json_out(result)
    check_report(doc, wf_out)
    assert len(doc["windows"]) == (60 * 24 - 600) // 200
    assert doc["period"]["bars"] == 200 * len(doc["windows"])  # out of sample only
    assert "walk-forward: window 1/" in result.stderr  # progress
    assert time.monotonic() - started < 240

    model = json_out(arb("strategy", "train", "--asset", "BTC/USD", "--json", env=env))
    assert Path(model["path"]).is_dir()
    bt_out = tmp_path / "bt"
    doc = json_out(arb("strategy", "backtest", "--asset", "ETH/USD", "--model", model["path"], "--out", str(bt_out),
                       "--json", env=env))  # fmt: skip
    check_report(doc, bt_out)

    signals = json_out(arb("strategy", "signal", "--json", env=env))
    assert sorted(s["asset"] for s in signals) == sorted(ASSETS)
    assert {s["model_id"] for s in signals} == {model["id"]}
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        stored = db.execute("SELECT asset, direction FROM strategy_signals ORDER BY asset").fetchall()
        models = db.execute("SELECT id, algo FROM strategy_models").fetchall()
    assert stored == [(s["asset"], s["direction"]) for s in sorted(signals, key=lambda s: s["asset"])]
    assert models == [(model["id"], "ppo")]

    cycle = arb("strategy", "run", "--once", env=env, timeout=120)  # fetch, stops, signal, paper: one hourly cycle
    assert cycle.returncode == 0, cycle.stderr
    assert "signal BTC/USD direction=" in cycle.stderr
    assert "strategy.signals_not_published reason=no_redis_url" in cycle.stderr  # said, not silently skipped


def test_backtest_of_any_ohlcv_file_prints_the_json_shape(tmp_path: Path) -> None:
    """An FX-style CSV (Date, Open, High, Low, Close; no volume, no sentiment): a model trained on it, then judged."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(3)
    n = 900
    close = 1.1 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    ts = pd.date_range("2024-01-01", periods=n, freq="1h")
    lines = ["Date,Open,High,Low,Close"] + [
        f"{t:%Y-%m-%d %H:%M:%S},{o:.8f},{max(o, c) * 1.0005:.8f},{min(o, c) * 0.9995:.8f},{c:.8f}"
        for t, o, c in zip(ts, open_, close, strict=True)
    ]
    data = tmp_path / "eurusd.csv"
    data.write_text("\n".join(lines) + "\n")
    config = tmp_path / "user.yaml"
    config.write_text(
        f"database_url: sqlite+aiosqlite:///{tmp_path / 'ledger.db'}\n"
        f"strategy:\n  rl: {{total_timesteps: 800, models_dir: {tmp_path / 'models'}}}\n"
        "  walk_forward: {train_bars: 600, test_bars: 100}\n"
    )
    result = arb("strategy", "backtest", "--data", str(data), "--out", str(tmp_path / "r"), "--json",
                 env={"ARB_CONFIG": str(config)})  # fmt: skip
    last = json.loads(result.stdout.strip().splitlines()[-1])
    assert METRICS <= last["strategy"].keys()
    assert set(last["baselines"]) == {"buy_and_hold", "sma_crossover"}
    assert last["period"]["bars"] == n - 600 + 1


def test_bad_data_and_unknown_assets_are_refused_naming_them(tmp_path: Path) -> None:
    bad = tmp_path / "bars.xlsx"
    bad.write_text("x")
    result = arb("strategy", "backtest", "--data", str(bad), "--json")
    assert result.returncode == 1
    assert "xlsx" in result.stderr
    result = arb("strategy", "fetch", "--assets", "NOPE/USD")
    assert result.returncode == 2
    assert "NOPE/USD" in result.stderr
    result = arb("strategy", "train", "--algo", "a2c")
    assert result.returncode == 2
    assert "a2c" in result.stderr


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_walk_forward_over_5000_bars_with_the_default_budget_takes_under_ten_minutes(
    binance: dict[str, Any], tmp_path: Path
) -> None:
    defaults = load_settings().strategy
    config = user_config(
        tmp_path, binance, days=209, train=defaults.walk_forward.train_bars, test=defaults.walk_forward.test_bars,
        steps=defaults.rl.total_timesteps,
    )  # fmt: skip
    env = {"ARB_CONFIG": str(config)}
    fetched = json_out(arb("strategy", "fetch", "--assets", "BTC/USD", "--json", env=env, timeout=300))
    assert fetched["added"]["BTC/USD"] >= 5_000

    started = time.monotonic()
    doc = json_out(arb("strategy", "walk-forward", "--asset", "BTC/USD", "--out", str(tmp_path / "wf"), "--json",
                       env=env, timeout=600))  # fmt: skip
    elapsed = time.monotonic() - started

    check_report(doc, tmp_path / "wf")
    assert len(doc["windows"]) == 6
    assert elapsed < 600
