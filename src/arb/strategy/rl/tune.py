"""Optuna search over a few PPO hyperparameters, judged on a held-out tail of the data.

Why a tail and not a random split: bars are a time series; validating on the bars after the training ones is the
only split that does not leak the future into the choice. The objective is the annualised Sharpe ratio of the
agent's step returns over that tail, traded through `CryptoFuturesEnv` (same costs as training and backtest). Each
trial reports that Sharpe `reports` times during training, so the MedianPruner stops trials that trail the median of
earlier ones at the same point. The sampler is TPE with a fixed seed, and every trial trains with the same seed, so
a study is reproducible and two trials differ only in their hyperparameters.

Search space: learning_rate (1e-5..1e-3, log), n_steps (128, 256, 512, 1024), gamma (0.9..0.9999), ent_coef
(1e-5..0.05, log). The result feeds `agents.train(..., hyperparams=best)`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any, Final

import numpy as np
import optuna

from arb.config.schema import RLSettings
from arb.strategy.rl import agents
from arb.strategy.rl.env import CryptoFuturesEnv

__all__ = ["HOURS_PER_YEAR", "run_study", "tune", "validation_sharpe"]

log = logging.getLogger(__name__)

HOURS_PER_YEAR: Final = 24.0 * 365.0
N_STEPS: Final = (128, 256, 512, 1024)


def validation_sharpe(
    agent: agents.Agent, features: np.ndarray, close: np.ndarray, high: np.ndarray, low: np.ndarray, rl: RLSettings
) -> float:
    """Annualised Sharpe (hourly bars) of the agent trading every bar of the series once, from its first full window;
    0 when the returns do not vary (e.g. an agent that never trades)."""
    env = CryptoFuturesEnv(
        features, close, high, low, rl, continuous=agent.continuous, episode_bars=len(close), random_start=False
    )
    env.reset(seed=0)
    equity, position = rl.initial_equity, 0.0
    returns = []
    while True:
        d = agent.decide(features, env.t, position)
        action: Any = np.array([d.target], dtype=np.float32) if agent.continuous else round(d.target) + 1
        _, _, terminated, truncated, info = env.step(action)
        returns.append(info["equity"] / equity - 1.0)
        equity, position = info["equity"], info["position"]
        if terminated or truncated or equity <= 0.0:
            break
    r = np.asarray(returns)
    sd = float(r.std())
    if sd <= 0.0:
        return 0.0
    return float(r.mean()) / sd * math.sqrt(HOURS_PER_YEAR)


def _split(n: int, window: int, validation_fraction: float) -> int:
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    split = round(n * (1.0 - validation_fraction))
    if split < window + 1 or n - split < 2:
        raise ValueError(
            f"{n} bars cannot hold a training part of > window ({window}) bars and a validation tail of "
            f"{validation_fraction:.0%}: give more bars"
        )
    return split


def run_study(
    features: np.ndarray,
    close: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    rl: RLSettings,
    *,
    n_trials: int,
    timesteps: int,
    on_progress: Callable[[int, int], None] | None = None,
    seed: int | None = None,
    validation_fraction: float = 0.2,
    reports: int = 4,
    n_startup_trials: int = 3,
) -> optuna.Study:
    """The study itself (all trials, their intermediate reports and states); `tune` returns its best parameters."""
    if n_trials < 1 or timesteps < 1 or reports < 1:
        raise ValueError(f"n_trials, timesteps and reports must be >= 1, got {n_trials}, {timesteps}, {reports}")
    n = len(close)
    split = _split(n, rl.window, validation_fraction)
    lo = split - rl.window  # the first validation decision is at the close of bar split-1, held over bar split
    train_part = (features[:split], close[:split], high[:split], low[:split])
    val_part = (features[lo:], close[lo:], high[lo:], low[lo:])
    seed_ = rl.seed if seed is None else seed
    every = max(1, timesteps // reports)

    def objective(trial: optuna.Trial) -> float:
        params = {
            "learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-3, log=True),
            "n_steps": trial.suggest_categorical("n_steps", N_STEPS),
            "gamma": trial.suggest_float("gamma", 0.9, 0.9999),
            "ent_coef": trial.suggest_float("ent_coef", 1e-5, 0.05, log=True),
        }

        def checkpoint(agent: agents.Agent, done: int) -> None:
            trial.report(validation_sharpe(agent, *val_part, rl), step=done)
            if trial.should_prune():
                raise optuna.TrialPruned(f"validation Sharpe below the median at step {done}")

        agent = agents.train(
            *train_part, rl, algo="ppo", timesteps=timesteps, seed=seed_, hyperparams=params,
            on_checkpoint=checkpoint, checkpoint_every=every,
        )  # fmt: skip
        value = validation_sharpe(agent, *val_part, rl)
        log.info("rl.tune.trial number=%d sharpe=%.4f params=%s", trial.number, value, params)
        return value

    def progress(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if on_progress is not None:
            on_progress(len(study.trials), n_trials)

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one structured line per trial from us instead
    try:
        study = optuna.create_study(
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=seed_),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=n_startup_trials, n_warmup_steps=0),
        )
        study.optimize(objective, n_trials=n_trials, callbacks=[progress])
    finally:
        optuna.logging.set_verbosity(verbosity)
    return study


def tune(
    features: np.ndarray,
    close: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    rl: RLSettings,
    *,
    n_trials: int,
    timesteps: int,
    on_progress: Callable[[int, int], None] | None = None,
    seed: int | None = None,
    validation_fraction: float = 0.2,
) -> dict[str, Any]:
    """The best PPO hyperparameters found in `n_trials` trials of `timesteps` steps each (keys as `agents.train`'s
    `hyperparams`). Raises ValueError if every trial was pruned."""
    study = run_study(
        features, close, high, low, rl, n_trials=n_trials, timesteps=timesteps, on_progress=on_progress, seed=seed,
        validation_fraction=validation_fraction,
    )  # fmt: skip
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise ValueError(f"no trial of {n_trials} completed (all pruned); run more trials or more timesteps")
    best = study.best_trial
    log.info("rl.tune.done trials=%d completed=%d best_sharpe=%.4f best=%s", len(study.trials), len(done),
             best.value, best.params)  # fmt: skip
    return dict(best.params)
