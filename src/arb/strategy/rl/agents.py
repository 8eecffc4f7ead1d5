"""stable-baselines3 agents on `CryptoFuturesEnv`: train, decide, save and load versioned models, blend two.

    agent = train(features, close, high, low, settings.strategy.rl)          # PPO by default
    decision = agent.decide(features, t, position)                          # target in [-1, 1], confidence in [0, 1]
    path = save(agent, Path(rl.models_dir), meta={"feature_names": FEATURE_NAMES, ...})
    again = load(path)

Algorithms and env variants: PPO (default) trains on the action space `rl.action_space` says; DQN exists for discrete
actions only and SAC for continuous ones, so for those two the variant follows the algorithm whatever
`rl.action_space` says (and the log says so). Every run: one DummyVecEnv, VecMonitor (episode returns), VecNormalize
(observations and rewards normalised; its observation statistics are saved with the model and reused, frozen, by
`decide`), `torch.set_num_threads(1)`, `set_random_seed(seed)`, small MLPs (64×64) sized for CPU speed.

`decide` is deterministic: the most probable action (PPO discrete, confidence = its probability), the arg-max Q
(DQN, confidence = softmax of the Q values at it) or the mean action (SAC and continuous PPO, confidence = |target|).

A model version is a directory `<algo>-<YYYYmmddTHHMMSSZ>-<8 hex of config+data hash>/` holding model.zip,
vecnormalize.pkl and meta.json; versions are never overwritten. Loading unpickles files: load only model
directories you made.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import math
import os
import pickle  # only to name the error VecNormalize.load raises
import platform
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import gymnasium
import numpy as np
import stable_baselines3
import torch
from stable_baselines3 import DQN, PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.utils import set_random_seed
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor, VecNormalize

from arb.config.schema import RLSettings
from arb.strategy.rl.env import CryptoFuturesEnv, observation

__all__ = ["ALGOS", "Agent", "Decision", "Ensemble", "ModelFormatError", "load", "save", "train"]

log = logging.getLogger(__name__)

Algo = Literal["ppo", "dqn", "sac"]
ALGOS: Final[tuple[Algo, ...]] = ("ppo", "dqn", "sac")
_CLASSES: Final[dict[str, type[BaseAlgorithm]]] = {"ppo": PPO, "dqn": DQN, "sac": SAC}
_NET: Final = [64, 64]
_FILES: Final = ("model.zip", "vecnormalize.pkl", "meta.json")


def _defaults(algo: str, timesteps: int) -> dict[str, Any]:
    """Hyperparameters per algorithm, chosen for short CPU runs; `train(hyperparams=...)` overrides these keys."""
    starts = max(1, min(1000, timesteps // 10))
    buffer = min(50_000, timesteps)  # a replay buffer larger than the run only costs memory (obs_dim floats each)
    if algo == "ppo":
        return {"learning_rate": 3e-4, "n_steps": 512, "batch_size": 64, "n_epochs": 4, "gamma": 0.99,
                "gae_lambda": 0.95, "ent_coef": 0.01, "clip_range": 0.2}  # fmt: skip
    if algo == "dqn":
        return {"learning_rate": 5e-4, "buffer_size": buffer, "learning_starts": starts, "batch_size": 64,
                "gamma": 0.99, "train_freq": 4, "target_update_interval": 500, "exploration_fraction": 0.2,
                "exploration_final_eps": 0.05}  # fmt: skip
    return {"learning_rate": 3e-4, "buffer_size": buffer, "learning_starts": starts, "batch_size": 128, "gamma": 0.99,
            "tau": 0.005, "train_freq": 1, "gradient_steps": 1}  # fmt: skip


class ModelFormatError(ValueError):
    """A directory that is not a loadable model version (missing files, bad meta.json, another algorithm)."""


@dataclass(frozen=True, slots=True)
class Decision:
    target: float
    """Target position in [-1, 1] (fraction of equity × leverage; sign = side)."""
    confidence: float
    """In [0, 1]: how sure the agent is of this target (see the module docstring per algorithm)."""


class Agent:
    """A trained policy with the frozen observation statistics it was trained with."""

    def __init__(
        self,
        algo: Algo,
        model: BaseAlgorithm,
        vecnormalize: VecNormalize,
        *,
        rl: RLSettings,
        n_features: int,
        continuous: bool,
        timesteps: int,
        seed: int,
        hyperparams: Mapping[str, Any],
        data_hash: str,
        train_bars: int,
    ) -> None:
        self.algo: Algo = algo
        self.model = model
        self.vecnormalize = vecnormalize
        self.rl = rl
        self.window = rl.window
        self.n_features = n_features
        self.continuous = continuous
        self.timesteps = timesteps
        self.seed = seed
        self.hyperparams = dict(hyperparams)
        self.data_hash = data_hash
        self.train_bars = train_bars

    def decide(self, features: np.ndarray, t: int, position: float) -> Decision:
        """The target for bar t+1 from features of bars <= t and the target held now (deterministic)."""
        if features.ndim != 2 or features.shape[1] != self.n_features:
            raise ValueError(f"features have shape {features.shape}; this agent was trained on {self.n_features}")
        obs = observation(features, t, self.window, position)
        x = np.asarray(self.vecnormalize.normalize_obs(obs[None, :]), dtype=np.float32)
        with torch.no_grad():
            tensor = torch.as_tensor(x, device=self.model.device)
            if isinstance(self.model, DQN):
                return _discrete(torch.softmax(self.model.q_net(tensor)[0], dim=0).numpy())
            if isinstance(self.model, PPO) and not self.continuous:
                dist = self.model.policy.get_distribution(tensor).distribution
                if not isinstance(dist, torch.distributions.Categorical):
                    raise TypeError(f"a discrete PPO policy gave a {type(dist).__name__} distribution")
                return _discrete(dist.probs[0].numpy())
        action, _ = self.model.predict(x, deterministic=True)
        target = min(1.0, max(-1.0, float(np.asarray(action).reshape(-1)[0])))
        return Decision(target=target, confidence=abs(target))

    def frozen_copy(self) -> Agent:
        """This agent with a snapshot of the observation statistics (training goes on updating the original's)."""
        vn = copy.copy(self.vecnormalize)
        vn.obs_rms = copy.deepcopy(self.vecnormalize.obs_rms)
        vn.training = False
        out = copy.copy(self)
        out.vecnormalize = vn
        return out


def _discrete(p: np.ndarray) -> Decision:
    a = int(np.argmax(p))
    return Decision(target=float(a - 1), confidence=min(1.0, max(0.0, float(p[a]))))


class Ensemble:
    """target = α·ppo + (1−α)·sac, confidence blended the same way. α = 1 needs no SAC agent (pass None)."""

    def __init__(self, ppo: Agent, sac: Agent | None, alpha: float) -> None:
        if not (math.isfinite(alpha) and 0.0 <= alpha <= 1.0):
            raise ValueError(f"ensemble alpha must be in [0, 1], got {alpha}")
        if sac is None and alpha != 1.0:
            raise ValueError(f"ensemble alpha {alpha} < 1 needs a SAC agent")
        if sac is not None and sac.n_features != ppo.n_features:
            raise ValueError(f"agents disagree on features: ppo {ppo.n_features}, sac {sac.n_features}")
        self.ppo, self.sac, self.alpha = ppo, sac, alpha

    def decide(self, features: np.ndarray, t: int, position: float) -> Decision:
        a = self.ppo.decide(features, t, position)
        if self.sac is None:
            return a
        b = self.sac.decide(features, t, position)
        w = self.alpha
        target = min(1.0, max(-1.0, w * a.target + (1.0 - w) * b.target))
        return Decision(target=target, confidence=w * a.confidence + (1.0 - w) * b.confidence)


class _Progress(BaseCallback):
    def __init__(
        self,
        total: int,
        on_progress: Callable[[int, int], None] | None,
        on_checkpoint: Callable[[int], None] | None,
        checkpoint_every: int,
    ) -> None:
        super().__init__()
        self.total = total
        self.on_progress = on_progress
        self.on_checkpoint = on_checkpoint
        self.every = max(1, total // 100)
        self.next_progress = self.every
        self.checkpoint_every = checkpoint_every
        self.next_checkpoint = checkpoint_every

    def _on_step(self) -> bool:
        n = self.num_timesteps
        if self.on_progress is not None and n >= self.next_progress and n < self.total:
            self.on_progress(n, self.total)
            self.next_progress = (n // self.every + 1) * self.every
        if self.on_checkpoint is not None and self.next_checkpoint <= n <= self.total:
            self.next_checkpoint = (n // self.checkpoint_every + 1) * self.checkpoint_every
            self.on_checkpoint(n)
        return True


def _continuous_for(algo: Algo, rl: RLSettings) -> bool:
    wanted = rl.action_space == "continuous"
    chosen = {"ppo": wanted, "dqn": False, "sac": True}[algo]
    if chosen != wanted:
        log.info("rl.action_space algo=%s action_space=%s reason=algo_supports_only_this_variant", algo,
                 "continuous" if chosen else "discrete")  # fmt: skip
    return chosen


def data_hash(features: np.ndarray, close: np.ndarray, high: np.ndarray, low: np.ndarray) -> str:
    """sha256 of the training data as the env sees it (features float32, prices float64)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(features, dtype=np.float32).tobytes())
    for a in (close, high, low):
        h.update(np.ascontiguousarray(a, dtype=np.float64).tobytes())
    return h.hexdigest()


def train(
    features: np.ndarray,
    close: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    rl: RLSettings,
    *,
    algo: str | None = None,
    timesteps: int | None = None,
    seed: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    hyperparams: Mapping[str, Any] | None = None,
    on_checkpoint: Callable[[Agent, int], None] | None = None,
    checkpoint_every: int | None = None,
) -> Agent:
    """Train `algo` (default `rl.algo`) for `timesteps` (default `rl.total_timesteps`) steps on the series.

    `on_progress(done, total)` is called about every 1 % and once at the end. `on_checkpoint(agent, done)` (with
    `checkpoint_every` steps between calls) gets a frozen copy of the agent so far, for validation during training;
    an exception it raises (e.g. optuna's TrialPruned) stops the training and propagates.
    """
    name = rl.algo if algo is None else algo
    if name not in ALGOS:
        raise ValueError(f"unknown algo {name!r}; one of {', '.join(ALGOS)}")
    chosen: Algo = name
    total = rl.total_timesteps if timesteps is None else timesteps
    if total < 1:
        raise ValueError(f"timesteps must be >= 1, got {total}")
    seed_ = rl.seed if seed is None else seed
    params = _defaults(chosen, total)
    unknown = sorted(set(hyperparams or {}) - set(params))
    if unknown:
        raise ValueError(f"unknown {chosen} hyperparameter(s) {unknown}; known: {sorted(params)}")
    params.update(hyperparams or {})
    if on_checkpoint is not None and (checkpoint_every is None or checkpoint_every < 1):
        raise ValueError("on_checkpoint needs checkpoint_every >= 1")
    continuous = _continuous_for(chosen, rl)

    torch.set_num_threads(1)
    set_random_seed(seed_)
    feats = np.ascontiguousarray(features, dtype=np.float32)
    env = CryptoFuturesEnv(feats, close, high, low, rl, continuous=continuous, random_start=True)
    vec = DummyVecEnv([lambda: env])
    vec.seed(seed_)
    venv = VecNormalize(VecMonitor(vec), norm_obs=True, norm_reward=True, clip_obs=10.0, gamma=params["gamma"])
    model = _CLASSES[chosen](
        "MlpPolicy", venv, seed=seed_, device="cpu", verbose=0, policy_kwargs={"net_arch": list(_NET)}, **params
    )
    agent = Agent(
        chosen, model, venv, rl=rl, n_features=feats.shape[1], continuous=continuous, timesteps=total, seed=seed_,
        hyperparams=params, data_hash=data_hash(feats, close, high, low), train_bars=feats.shape[0],
    )  # fmt: skip

    checkpoint = None
    if on_checkpoint is not None:
        report = on_checkpoint

        def checkpoint(done: int) -> None:
            report(agent.frozen_copy(), done)

    callback = _Progress(total, on_progress, checkpoint, checkpoint_every or total)
    log.info("rl.train.start algo=%s continuous=%s timesteps=%d bars=%d seed=%d", chosen, continuous, total,
             feats.shape[0], seed_)  # fmt: skip
    started = time.perf_counter()
    model.learn(total_timesteps=total, callback=callback, progress_bar=False)
    venv.training = False
    log.info("rl.train.done algo=%s timesteps=%d seconds=%.2f", chosen, total, time.perf_counter() - started)
    if on_progress is not None:
        on_progress(total, total)
    return agent


# --- versions on disk -------------------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    return {"stable_baselines3": stable_baselines3.__version__, "torch": torch.__version__,
            "gymnasium": gymnasium.__version__, "numpy": np.__version__,
            "python": platform.python_version()}  # fmt: skip


def _own_meta(agent: Agent, created: datetime) -> dict[str, Any]:
    return {
        "format": 1,
        "algo": agent.algo,
        "action_space": "continuous" if agent.continuous else "discrete",
        "window": agent.window,
        "n_features": agent.n_features,
        "feature_shape": [agent.window, agent.n_features],
        "obs_dim": agent.window * agent.n_features + 1,
        "rl": agent.rl.model_dump(mode="json"),
        "hyperparams": agent.hyperparams,
        "timesteps": agent.timesteps,
        "seed": agent.seed,
        "data_hash": agent.data_hash,
        "train_bars": agent.train_bars,
        "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "versions": _versions(),
    }


def save(agent: Agent, root: Path | str, *, meta: Mapping[str, Any], now: datetime | None = None) -> Path:
    """Write a new version directory under `root` and return it. `meta` (data range, feature names, metrics...) is
    merged into meta.json; it may not redefine what the agent itself records (algo, rl, window...). Refuses to
    overwrite: a second save of the same config and data in the same second is a FileExistsError."""
    created = (now or datetime.now(UTC)).astimezone(UTC)
    own = _own_meta(agent, created)
    clash = sorted(set(meta) & set(own))
    if clash:
        raise ValueError(f"meta may not redefine {clash}: the agent records those itself")
    names = meta.get("feature_names")
    if names is not None and len(names) != agent.n_features:
        raise ValueError(f"meta feature_names has {len(names)} names; the agent has {agent.n_features} features")
    try:
        text = json.dumps({**own, **meta}, indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"meta is not JSON-serialisable: {exc}") from None
    fingerprint = json.dumps(
        {"algo": agent.algo, "rl": own["rl"], "hyperparams": agent.hyperparams, "timesteps": agent.timesteps,
         "seed": agent.seed}, sort_keys=True
    ) + agent.data_hash  # fmt: skip
    digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:8]
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{agent.algo}-{created.strftime('%Y%m%dT%H%M%SZ')}-{digest}"
    final.mkdir()  # claims the name; FileExistsError if this version exists
    staging: Path | None = None
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=root))
        agent.model.save(staging / "model.zip")
        agent.vecnormalize.save(str(staging / "vecnormalize.pkl"))
        (staging / "meta.json").write_text(text + "\n", encoding="utf-8")
        os.replace(staging, final)  # replaces the empty claimed directory: the version appears whole or not at all
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):
            final.rmdir()
        raise
    log.info("rl.model.saved path=%s algo=%s", final, agent.algo)
    return final


def load(path: Path | str, *, algo: str | None = None) -> Agent:
    """Load a version directory written by `save`. Refuses a directory without meta.json, with missing files, or
    whose algorithm differs from its name's prefix or from `algo` when given."""
    path = Path(path)
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        raise ModelFormatError(f"{path}: no meta.json, not a model version directory")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        recorded = meta["algo"]
        rl = RLSettings.model_validate(meta["rl"])
        n_features = int(meta["n_features"])
        continuous = meta["action_space"] == "continuous"
        timesteps, seed, train_bars = int(meta["timesteps"]), int(meta["seed"]), int(meta["train_bars"])
        hyperparams, digest = dict(meta.get("hyperparams", {})), str(meta["data_hash"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelFormatError(f"{meta_path}: unreadable ({exc})") from None
    if recorded not in ALGOS:
        raise ModelFormatError(f"{meta_path}: unknown algo {recorded!r}")
    prefix = path.name.split("-", 1)[0]
    if prefix in ALGOS and prefix != recorded:
        raise ModelFormatError(f"{path}: the directory name says {prefix}, meta.json says {recorded}")
    if algo is not None and algo != recorded:
        raise ModelFormatError(f"{path}: a {recorded} model, not {algo}")
    missing = [f for f in _FILES if not (path / f).is_file()]
    if missing:
        raise ModelFormatError(f"{path}: missing {missing}")
    torch.set_num_threads(1)
    try:
        model = _CLASSES[recorded].load(path / "model.zip", device="cpu")
    except (ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise ModelFormatError(f"{path / 'model.zip'}: not a {recorded} model ({exc})") from None
    obs_dim = rl.window * n_features + 1
    if model.observation_space.shape != (obs_dim,):
        raise ModelFormatError(f"{path}: model observations {model.observation_space.shape}, meta says ({obs_dim},)")
    ones = np.ones(rl.window + 1)
    zeros = np.zeros((rl.window + 1, n_features), np.float32)
    placeholder = CryptoFuturesEnv(zeros, ones, ones, ones, rl, continuous=continuous, random_start=False)
    try:
        vn = VecNormalize.load(str(path / "vecnormalize.pkl"), DummyVecEnv([lambda: placeholder]))
    except (ValueError, KeyError, EOFError, AttributeError, pickle.UnpicklingError) as exc:
        raise ModelFormatError(f"{path / 'vecnormalize.pkl'}: unreadable normalisation statistics ({exc})") from None
    vn.training = False
    return Agent(
        recorded, model, vn, rl=rl, n_features=n_features, continuous=continuous, timesteps=timesteps, seed=seed,
        hyperparams=hyperparams, data_hash=digest, train_bars=train_bars,
    )  # fmt: skip
