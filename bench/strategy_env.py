"""RL environment throughput: `CryptoFuturesEnv` steps per second, one process, one thread, random actions.

Imported by bench/strategy.py (`env_steps_per_s`); run alone it prints ONE JSON object:
`python bench/strategy_env.py [--seconds N]`.

Data: generated, so the figure does not depend on a candle store: 20,000 hourly bars of a geometric Brownian motion
(1 % hourly volatility) with highs/lows 0.5 % around the close, and a float32 feature matrix of 14 columns (the
shape of `arb.strategy.features.feature_matrix`), standard normal. Settings: the shipped defaults
(window 24 -> 337-value observations, episodes of 720 bars, leverage from config). Actions are drawn up front from a
seeded generator (uniform over the discrete actions; uniform in [-1, 1] for the continuous variant), so the time
measured is the env's: step + reset at each episode end. Target (issue 8): >= 20,000 discrete steps/s on one core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Any

import numpy as np

from arb.config import load_settings
from arb.strategy.rl.env import CryptoFuturesEnv

BARS = 20_000
FEATURES = 14
TARGET_DISCRETE = 20_000.0


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, BARS)))
    features = rng.standard_normal((BARS, FEATURES)).astype(np.float32)
    return features, close, close * 1.005, close * 0.995


def _run(env: CryptoFuturesEnv, actions: list[Any], seconds: float) -> dict[str, float]:
    env.reset(seed=0)
    steps = episodes = 0
    n = len(actions)
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(1000):  # check the clock once per 1,000 steps
            _, _, terminated, truncated, _ = env.step(actions[steps % n])
            steps += 1
            if terminated or truncated:
                env.reset()
                episodes += 1
        if time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - started
    return {"steps": float(steps), "episodes": float(episodes), "seconds": elapsed, "steps_per_s": steps / elapsed}


def env_steps_per_s(seconds: float = 3.0) -> dict[str, Any]:
    """Discrete and continuous env steps/s on generated data (see the module docstring), each measured `seconds`."""
    rl = load_settings(None).strategy.rl
    features, close, high, low = _data()
    rng = np.random.default_rng(1)
    discrete_actions: list[Any] = list(rng.integers(0, 3, size=100_000))
    continuous_actions: list[Any] = list(rng.uniform(-1.0, 1.0, size=(100_000, 1)).astype(np.float32))
    discrete = _run(CryptoFuturesEnv(features, close, high, low, rl), discrete_actions, seconds)
    continuous = _run(CryptoFuturesEnv(features, close, high, low, rl, continuous=True), continuous_actions, seconds)
    return {
        "env_discrete_steps_per_s": round(discrete["steps_per_s"]),
        "env_continuous_steps_per_s": round(continuous["steps_per_s"]),
        "env_discrete_target_steps_per_s": TARGET_DISCRETE,
        "env_discrete_meets_target": discrete["steps_per_s"] >= TARGET_DISCRETE,
        "env_discrete_steps": int(discrete["steps"]),
        "env_continuous_steps": int(continuous["steps"]),
        "env_window": rl.window,
        "env_features": FEATURES,
        "env_obs_dim": rl.window * FEATURES + 1,
        "env_bars": BARS,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    print(json.dumps(env_steps_per_s(args.seconds)))


if __name__ == "__main__":
    main()
