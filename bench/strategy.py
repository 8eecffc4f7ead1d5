"""Directional-layer benchmark (`./run bench strategy [--quick]`). Prints ONE JSON object.

Measured, in one process on one core (torch limited to one thread):
- `env_steps_per_s`: `CryptoFuturesEnv` discrete steps a second with random actions (target >= 20,000), and the
  continuous variant's; baseline in the same run: gymnasium's own CartPole-v1 (a minimal pure-Python env), so
  `env_vs_cartpole` says what our accounting costs relative to the cheapest env the library ships.
- `signals_100_assets_s`: `arb.strategy.signals.compute_signals` for 100 assets of 1,000 hourly bars each with a
  trained PPO agent: indicators, features, the agent's forward pass and sizing (target <= 1 s); baseline in the same
  run: `feature_matrix` alone for the same 100 assets over the same last `HISTORY_BARS` (500) bars a signal reads
  (`signals_vs_features`: what the indicators' second use, the agent and sizing add).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import gymnasium as gym
import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from arb.config.schema import DirectionalRisk, RLSettings
from arb.risk.directional import DirectionalBook
from arb.strategy.features import feature_matrix
from arb.strategy.rl import agents
from arb.strategy.signals import HISTORY_BARS, AssetInput, compute_signals
from strategy_env import env_steps_per_s


def progress(msg: str) -> None:
    sys.stderr.write(f"bench.strategy: {msg}\n")


def cartpole_steps_per_s(seconds: float) -> float:
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    n, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for a in rng.integers(0, 2, 1000):
            _, _, term, trunc, _ = env.step(int(a))
            if term or trunc:
                env.reset()
        n += 1000
    return n / (time.perf_counter() - started)


def bars(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate([[close[0]], close[:-1]])
    idx = pd.date_range("2025-01-01", periods=n, freq="1h", tz="UTC", name="ts")
    return pd.DataFrame(
        {"open": open_, "high": np.maximum(open_, close) * 1.003, "low": np.minimum(open_, close) * 0.997,
         "close": close, "volume": rng.uniform(10, 20, n), "filled": False, "clipped": False},
        index=idx,
    )  # fmt: skip


def signal_timing(assets: int, n_bars: int, repeats: int) -> dict[str, Any]:
    rl = RLSettings(total_timesteps=512)
    frames = [bars(n_bars, seed) for seed in range(assets)]
    train = frames[0]
    feats = feature_matrix(train)
    close, high, low = (train[c].to_numpy(np.float64) for c in ("close", "high", "low"))
    progress("training a small PPO agent for the signal timing (not timed)")
    agent = agents.train(feats, close, high, low, rl, timesteps=512)
    inputs = [AssetInput(f"A{i}/USD", f) for i, f in enumerate(frames)]
    book = DirectionalBook(equity=100_000.0, day_start_equity=100_000.0)
    rules = DirectionalRisk()
    compute_signals(inputs[:2], agent, model_id="bench", rules=rules, book=book)  # warm-up (torch, pandas caches)
    full, base = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        out = compute_signals(inputs, agent, model_id="bench", rules=rules, book=book)
        full.append(time.perf_counter() - started)
        started = time.perf_counter()
        for f in frames:
            feature_matrix(f.iloc[-HISTORY_BARS:])
        base.append(time.perf_counter() - started)
    if len(out) != assets:
        raise SystemExit(f"expected {assets} signals, got {len(out)}")
    return {
        "signals_100_assets_s": round(statistics.median(full), 4),
        "features_only_100_assets_s": round(statistics.median(base), 4),
        "signals_vs_features": round(statistics.median(full) / statistics.median(base), 2),
        "signal_target_s": 1.0,
        "signals_meet_target": statistics.median(full) <= 1.0,
        "bars_per_asset": n_bars,
        "repeats": repeats,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter timings (CI smoke)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seconds = 1.0 if args.quick else 3.0
    progress("env steps")
    env = env_steps_per_s(seconds)
    progress("CartPole baseline")
    cartpole = cartpole_steps_per_s(seconds)
    signals = signal_timing(100, 1_000, 2 if args.quick else 5)
    discrete = float(env["env_discrete_steps_per_s"])
    result = {
        "benchmark": "strategy",
        **env,
        "cartpole_steps_per_s": round(cartpole),
        "env_vs_cartpole": round(discrete / cartpole, 3),
        **signals,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
