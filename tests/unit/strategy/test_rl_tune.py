"""Optuna tuning of PPO on a held-out tail: a tiny study, its reports for the pruner, and the validation Sharpe."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import optuna
import pytest

from arb.config.schema import RLSettings
from arb.strategy.rl import tune
from arb.strategy.rl.agents import Decision

RL = RLSettings(window=4, episode_bars=128, seed=1)


def generated(n: int = 600, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    return rng.standard_normal((n, 5)).astype(np.float32), close, close * 1.004, close * 0.996


def test_a_tiny_study_returns_ppo_hyperparameters_within_the_search_space() -> None:
    progress: list[tuple[int, int]] = []
    best = tune.tune(*generated(), RL, n_trials=2, timesteps=256, on_progress=lambda d, t: progress.append((d, t)))
    assert set(best) == {"learning_rate", "n_steps", "gamma", "ent_coef"}
    assert 1e-5 <= best["learning_rate"] <= 1e-3
    assert best["n_steps"] in tune.N_STEPS
    assert 0.9 <= best["gamma"] <= 0.9999
    assert 1e-5 <= best["ent_coef"] <= 0.05
    assert progress == [(1, 2), (2, 2)]


def test_each_trial_reports_validation_sharpe_during_training_to_a_median_pruner() -> None:
    study = tune.run_study(*generated(), RL, n_trials=2, timesteps=200, reports=4)
    assert isinstance(study.pruner, optuna.pruners.MedianPruner)
    assert isinstance(study.sampler, optuna.samplers.TPESampler)
    for trial in study.trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert sorted(trial.intermediate_values) == [50, 100, 150, 200]
        assert all(math.isfinite(v) for v in trial.intermediate_values.values())


def test_the_same_seed_gives_the_same_study() -> None:
    a = tune.run_study(*generated(), RL, n_trials=2, timesteps=128, reports=1)
    b = tune.run_study(*generated(), RL, n_trials=2, timesteps=128, reports=1)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert [t.value for t in a.trials] == [t.value for t in b.trials]


def test_too_little_data_for_a_training_part_and_a_tail_is_refused() -> None:
    features, close, high, low = generated(n=6)
    with pytest.raises(ValueError, match="give more bars"):
        tune.tune(features, close, high, low, RL, n_trials=1, timesteps=64)


class _Always:
    """A policy that always asks for one target (not an RL agent: validation_sharpe only needs decide)."""

    continuous = False

    def __init__(self, target: float) -> None:
        self.target = target

    def decide(self, features: np.ndarray, t: int, position: float) -> Decision:
        return Decision(self.target, 1.0)


def test_validation_sharpe_of_always_long_is_that_of_the_price_less_the_entry_cost() -> None:
    rl = RLSettings(window=1, taker_fee=0.0005, slippage_bps=1.0, slippage_ref_notional=10_000.0, leverage=1.0)
    close = np.array([100.0, 101.0, 99.0, 102.0])
    features = np.zeros((4, 1), np.float32)
    agent: Any = _Always(1.0)
    # buy 100 units at 100 (cost 6): equity 10,094 at 101, 9,894 at 99, 10,194 at 102
    equity = np.array([10_000.0, 10_094.0, 9_894.0, 10_194.0])
    r = equity[1:] / equity[:-1] - 1.0
    expected = r.mean() / r.std() * math.sqrt(24 * 365)
    assert tune.validation_sharpe(agent, features, close, close, close, rl) == pytest.approx(expected)


def test_validation_sharpe_of_a_policy_that_never_trades_is_zero() -> None:
    agent: Any = _Always(0.0)
    features, close, high, low = generated(n=50)
    assert tune.validation_sharpe(agent, features, close, high, low, RL) == 0.0


def test_the_pruner_stops_trials_that_trail_the_median_of_completed_ones() -> None:
    study = tune.run_study(*generated(), RL, n_trials=5, timesteps=1024, reports=4, n_startup_trials=1)
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, "a seeded study of 5 trials on noise prunes some"
    for trial in pruned:
        step = max(trial.intermediate_values)
        assert step < 1024  # stopped before the end of its training
        earlier = [
            t.intermediate_values[step]
            for t in study.trials[: trial.number]
            if t.state == optuna.trial.TrialState.COMPLETE and step in t.intermediate_values
        ]
        assert trial.intermediate_values[step] < float(np.median(earlier))
