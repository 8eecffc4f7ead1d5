"""stable-baselines3 agents on generated data: a short PPO run whose saved model reloads to identical decisions,
DQN and SAC smoke runs, versioned directories that are never overwritten, and the PPO/SAC ensemble."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from arb.config.schema import RLSettings
from arb.strategy.rl import agents
from arb.strategy.rl.agents import Agent, Ensemble

RL = RLSettings(window=8, episode_bars=256, seed=7)
N_FEATURES = 6


def generated(n: int = 1200, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A GBM close with a little drift, highs/lows around it, and features that carry the last returns."""
    rng = np.random.default_rng(seed)
    ret = rng.normal(0.0002, 0.01, n)
    close = 100.0 * np.exp(np.cumsum(ret))
    features = rng.standard_normal((n, N_FEATURES)).astype(np.float32)
    features[:, 0] = (ret / 0.01).astype(np.float32)
    return features, close, close * 1.004, close * 0.996


DATA = generated()


@pytest.fixture(scope="module")
def ppo() -> tuple[Agent, float, list[tuple[int, int]]]:
    progress: list[tuple[int, int]] = []
    started = time.perf_counter()
    agent = agents.train(*DATA, RL, timesteps=3000, on_progress=lambda done, total: progress.append((done, total)))
    return agent, time.perf_counter() - started, progress


@pytest.fixture(scope="module")
def sac() -> Agent:
    return agents.train(*DATA, RL, algo="sac", timesteps=500)


def test_a_short_ppo_run_saves_and_reloads_to_identical_decisions(
    ppo: tuple[Agent, float, list[tuple[int, int]]], tmp_path: Path
) -> None:
    agent, seconds, _ = ppo
    assert seconds < 60.0, f"3,000 PPO steps took {seconds:.1f} s"
    features = DATA[0]
    path = agents.save(agent, tmp_path, meta={"data_from_ns": 0, "data_to_ns": 1})
    again = agents.load(path)
    positions = [-1.0, 0.0, 1.0]
    before = [agent.decide(features, t, positions[t % 3]) for t in range(300, 500)]
    after = [again.decide(features, t, positions[t % 3]) for t in range(300, 500)]
    assert after == before
    assert {d.target for d in before} <= {-1.0, 0.0, 1.0}
    # the confidence of a discrete PPO decision is the probability of the most probable of 3 actions
    assert all(1 / 3 <= d.confidence <= 1.0 for d in before)


def test_ppo_reports_progress_up_to_the_total(ppo: tuple[Agent, float, list[tuple[int, int]]]) -> None:
    _, _, progress = ppo
    done = [d for d, _ in progress]
    assert done == sorted(done)
    assert progress[-1] == (3000, 3000)
    assert len(progress) >= 50  # about every 1 %


def test_decide_is_deterministic_and_uses_only_bars_up_to_t(ppo: tuple[Agent, float, list[tuple[int, int]]]) -> None:
    agent, _, _ = ppo
    features = DATA[0]
    first = agent.decide(features, 400, 0.0)
    perturbed = features.copy()
    perturbed[401:] = 50.0
    assert agent.decide(perturbed, 400, 0.0) == first
    assert agent.decide(features, 400, 0.0) == first


def test_decide_refuses_features_of_another_width(ppo: tuple[Agent, float, list[tuple[int, int]]]) -> None:
    agent, _, _ = ppo
    with pytest.raises(ValueError, match="trained on 6"):
        agent.decide(np.zeros((100, 5), np.float32), 50, 0.0)


def test_saved_meta_records_the_run_and_the_callers_data_range(
    ppo: tuple[Agent, float, list[tuple[int, int]]], tmp_path: Path
) -> None:
    agent, _, _ = ppo
    names = [f"f{i}" for i in range(N_FEATURES)]
    path = agents.save(agent, tmp_path, meta={"feature_names": names, "data_from_ns": 5, "metrics": {"sharpe": 1.2}})
    assert path.name.startswith("ppo-")
    assert sorted(p.name for p in path.iterdir()) == ["meta.json", "model.zip", "vecnormalize.pkl"]
    meta = json.loads((path / "meta.json").read_text())
    assert (meta["algo"], meta["window"], meta["feature_shape"]) == ("ppo", 8, [8, N_FEATURES])
    assert meta["rl"]["episode_bars"] == 256
    assert (meta["feature_names"], meta["data_from_ns"], meta["metrics"]) == (names, 5, {"sharpe": 1.2})
    assert {"stable_baselines3", "torch"} <= set(meta["versions"])
    assert meta["timesteps"] == 3000


def test_save_refuses_to_overwrite_a_version(ppo: tuple[Agent, float, list[tuple[int, int]]], tmp_path: Path) -> None:
    agent, _, _ = ppo
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    first = agents.save(agent, tmp_path, meta={}, now=now)
    assert first.name.startswith("ppo-20250102T030405Z-")
    assert len(first.name.rsplit("-", 1)[1]) == 8
    with pytest.raises(FileExistsError):
        agents.save(agent, tmp_path, meta={}, now=now)
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no staging directory left behind


def test_save_refuses_meta_that_redefines_what_the_agent_records(
    ppo: tuple[Agent, float, list[tuple[int, int]]], tmp_path: Path
) -> None:
    agent, _, _ = ppo
    with pytest.raises(ValueError, match="algo"):
        agents.save(agent, tmp_path, meta={"algo": "dqn"})
    with pytest.raises(ValueError, match="feature_names"):
        agents.save(agent, tmp_path, meta={"feature_names": ["one"]})
    with pytest.raises(ValueError, match="JSON"):
        agents.save(agent, tmp_path, meta={"when": datetime.now(UTC)})
    assert list(tmp_path.iterdir()) == []


def test_load_refuses_a_directory_without_meta_or_of_another_algo(
    ppo: tuple[Agent, float, list[tuple[int, int]]], tmp_path: Path
) -> None:
    agent, _, _ = ppo
    with pytest.raises(agents.ModelFormatError, match=r"no meta\.json"):
        agents.load(tmp_path)
    path = agents.save(agent, tmp_path / "models", meta={})
    with pytest.raises(agents.ModelFormatError, match="a ppo model, not sac"):
        agents.load(path, algo="sac")
    renamed = path.rename(path.with_name("sac-" + path.name.split("-", 1)[1]))
    with pytest.raises(agents.ModelFormatError, match=r"name says sac, meta\.json says ppo"):
        agents.load(renamed)
    ok = renamed.rename(path)
    (ok / "model.zip").write_bytes(b"not a zip")
    with pytest.raises(agents.ModelFormatError, match="not a ppo model"):
        agents.load(ok)
    (ok / "model.zip").unlink()
    with pytest.raises(agents.ModelFormatError, match="missing"):
        agents.load(ok)


def test_the_same_seed_trains_the_same_policy() -> None:
    a = agents.train(*DATA, RL, timesteps=600, seed=3)
    b = agents.train(*DATA, RL, timesteps=600, seed=3)
    features = DATA[0]
    assert [a.decide(features, t, 0.0) for t in range(100, 160)] == [
        b.decide(features, t, 0.0) for t in range(100, 160)
    ]


def test_dqn_trains_on_the_discrete_env_and_reloads(tmp_path: Path) -> None:
    rl = RL.model_copy(update={"action_space": "continuous"})  # DQN is discrete whatever the settings say
    agent = agents.train(*DATA, rl, algo="dqn", timesteps=500)
    assert (agent.algo, agent.continuous) == ("dqn", False)
    features = DATA[0]
    decisions = [agent.decide(features, t, 0.0) for t in range(100, 150)]
    assert {d.target for d in decisions} <= {-1.0, 0.0, 1.0}
    assert all(1 / 3 <= d.confidence <= 1.0 for d in decisions)  # softmax of the Q values at the arg-max
    again = agents.load(agents.save(agent, tmp_path, meta={}), algo="dqn")
    assert [again.decide(features, t, 0.0) for t in range(100, 150)] == decisions


def test_sac_trains_on_the_continuous_env_and_its_confidence_is_the_size(sac: Agent, tmp_path: Path) -> None:
    assert (sac.algo, sac.continuous) == ("sac", True)  # RL says discrete; SAC needs the continuous variant
    features = DATA[0]
    decisions = [sac.decide(features, t, 0.5) for t in range(100, 150)]
    assert all(-1.0 <= d.target <= 1.0 and d.confidence == abs(d.target) for d in decisions)
    assert len({d.target for d in decisions}) > 1
    again = agents.load(agents.save(sac, tmp_path, meta={}))
    assert [again.decide(features, t, 0.5) for t in range(100, 150)] == decisions


def test_the_ensemble_blends_targets_and_confidences(
    ppo: tuple[Agent, float, list[tuple[int, int]]], sac: Agent
) -> None:
    agent, _, _ = ppo
    features = DATA[0]
    blend = Ensemble(agent, sac, 0.75)
    for t in range(200, 220):
        a, b = agent.decide(features, t, 0.0), sac.decide(features, t, 0.0)
        d = blend.decide(features, t, 0.0)
        assert d.target == pytest.approx(0.75 * a.target + 0.25 * b.target)
        assert d.confidence == pytest.approx(0.75 * a.confidence + 0.25 * b.confidence)
    assert Ensemble(agent, None, 1.0).decide(features, 200, 0.0) == agent.decide(features, 200, 0.0)


def test_the_ensemble_refuses_a_bad_alpha_or_a_missing_sac(ppo: tuple[Agent, float, list[tuple[int, int]]]) -> None:
    agent, _, _ = ppo
    with pytest.raises(ValueError, match="alpha"):
        Ensemble(agent, agent, 1.5)
    with pytest.raises(ValueError, match="needs a SAC agent"):
        Ensemble(agent, None, 0.5)


def test_train_refuses_an_unknown_algo_or_hyperparameter() -> None:
    with pytest.raises(ValueError, match="unknown algo"):
        agents.train(*DATA, RL, algo="a2c", timesteps=10)
    with pytest.raises(ValueError, match="n_stepz"):
        agents.train(*DATA, RL, timesteps=10, hyperparams={"n_stepz": 64})


def test_ppo_learns_to_trade_a_planted_edge_out_of_sample() -> None:
    """A feature that tells the sign of the next bar's return: a policy that learnt anything follows it."""
    from arb.strategy.rl.tune import validation_sharpe

    n, split = 2000, 1500
    rng = np.random.default_rng(0)
    ret = rng.normal(0.0, 0.01, n)
    close = 100.0 * np.exp(np.cumsum(ret))
    features = rng.standard_normal((n, 4)).astype(np.float32)
    features[:-1, 0] = np.sign(ret[1:])
    high, low = close * 1.004, close * 0.996
    rl = RLSettings(window=2, episode_bars=256, taker_fee=0.0002, slippage_bps=0.5)
    agent = agents.train(features[:split], close[:split], high[:split], low[:split], rl, timesteps=4000)
    lo = split - rl.window
    sharpe = validation_sharpe(agent, features[lo:], close[lo:], high[lo:], low[lo:], rl)
    assert sharpe > 50.0  # annualised; a coin flip pays costs and sits near or below 0
