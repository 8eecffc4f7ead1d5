"""Walk-forward evaluation: train on a window, trade the bars after it, slide, and report only what was out of sample.

    result = walk_forward(bars, settings.strategy, sentiment=s)
    result.to_dict()  # {"strategy": metrics, "baselines": {...}, "windows": [...], ...}

Windows (train_bars, test_bars, step_bars of `settings.strategy.walk_forward`) are anchored to the END of the data:
the last test window ends at the last bar, earlier ones start `step_bars` before each other, and whatever does not
fill a whole window is the OLDEST data, left unused. So the most recent market is always evaluated. Test windows must
not overlap (step_bars >= test_bars), or a bar would be counted twice in the out-of-sample result.

For window k, train = bars [s, s + train_bars), test = [a, a + test_bars) with a = s + train_bars:
- the agent (`rl.algo`, or `algo`; PPO and SAC blended by `agents.Ensemble` when `rl.ensemble_alpha` < 1, as the
  live signal would) is trained on the train slice only (`agents.train(features[s:a], close[s:a], ...)`), so no
  test bar's price reaches it, and its observation normalisation is fitted there (`arb.strategy.rl.agents` freezes
  it);
- the backtest (`arb.backtest.directional.run`, with the stops of `settings.strategy.risk`) runs from the close of
  bar a − 1 (its first decision: the position held over bar a) to the close of the last test bar, so the returns it
  earns are exactly those of the test bars. The agent reads `features` of the whole series at global bar indices:
  allowed only because every feature (indicators, S(t)) is causal (`arb.strategy.features` promises it and tests it
  with a look-ahead test): a feature at bar t is the same whether or not later bars exist;
- both baselines run over exactly the same range with the same costs.

Each window trades `rl.initial_equity` and starts flat (its agent enters, and pays for entering, on its own); an open
position is marked at the window's last close. The stitched out-of-sample curve compounds the windows' returns:
window k's curve scaled by the stitched equity at its start over `initial_equity` (trade PnLs scaled alike, so they
still add up to the curve). Overall metrics are computed on that curve; per-window metrics on each window's own run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from arb.backtest import metrics as metrics_mod
from arb.backtest.directional import BASELINES, BacktestResult, Decide, run, run_baselines
from arb.backtest.metrics import Metrics
from arb.config.schema import StrategySettings

log = logging.getLogger(__name__)

Phase = Literal["train", "test", "done"]
STOP_FIELDS = ("atr_stop_multiple", "take_profit_multiple", "trailing_stop_multiple")
COST_FIELDS = ("taker_fee", "slippage_bps", "slippage_ref_notional", "leverage", "maintenance_margin", "initial_equity")


@dataclass(frozen=True)
class WalkForwardProgress:
    window: int
    """0-based index of the window."""
    windows: int
    phase: Phase
    done: int
    """train: timesteps done; test/done: 0/1."""
    total: int


OnProgress = Callable[[WalkForwardProgress], None]


@dataclass(frozen=True)
class Window:
    index: int
    train: tuple[int, int]
    """[start, end) positional bar indices."""
    test: tuple[int, int]
    times: dict[str, str]
    """train_start, train_end, test_start, test_end: open times (UTC) of the first and last bar of each slice."""
    strategy: BacktestResult
    baselines: dict[str, BacktestResult]

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "train": {"start": self.times["train_start"], "end": self.times["train_end"], "bars": _n(self.train)},
            "test": {"start": self.times["test_start"], "end": self.times["test_end"], "bars": _n(self.test)},
            "strategy": self.strategy.metrics.to_dict(),
            "baselines": {k: v.metrics.to_dict() for k, v in sorted(self.baselines.items())},
        }


@dataclass(frozen=True)
class Curve:
    """A stitched out-of-sample curve: `equity[i]` is marked at the close of OOS bar `ts[i]`."""

    equity: np.ndarray
    positions: np.ndarray
    trade_pnls: np.ndarray


@dataclass(frozen=True)
class WalkForwardResult:
    windows: list[Window]
    ts: pd.DatetimeIndex
    """The out-of-sample bars, and only those, in order."""
    initial_equity: float
    curves: dict[str, Curve]
    """`strategy` and each baseline."""
    metrics: dict[str, Metrics]
    periods_per_year: float
    config: dict[str, Any]
    """What produced it: train/test/step bars, algo, timesteps, seed (deterministic: no wall-clock figures)."""

    def equity_with_start(self, name: str) -> np.ndarray:
        """The stitched curve with `initial_equity` in front (what the metrics are computed on)."""
        return np.concatenate([[self.initial_equity], self.curves[name].equity])

    def to_dict(self) -> dict[str, Any]:
        """The CLI's JSON: {"strategy": overall OOS metrics, "baselines": {...}} + per-window figures (the curves
        and trades are in `arb.backtest.strategy_report`'s report.json)."""
        return {
            "strategy": self.metrics["strategy"].to_dict(),
            "baselines": {k: self.metrics[k].to_dict() for k in BASELINES},
            "period": {"start": _iso(self.ts[0]), "end": _iso(self.ts[-1]), "bars": len(self.ts)},
            "config": self.config,
            "windows": [w.to_dict() for w in self.windows],
        }


def _iso(ts: pd.Timestamp) -> str:
    return str(ts.isoformat())


def _n(span: tuple[int, int]) -> int:
    return span[1] - span[0]


def windows_of(n: int, train: int, test: int, step: int | None) -> list[tuple[int, int, int]]:
    """(train start, test start, test end) of every window over n bars, oldest first, the last ending at n."""
    step = test if step is None else step
    if step < test:
        raise ValueError(
            f"walk_forward.step_bars={step} < test_bars={test}: test windows would overlap and count bars twice"
        )
    if n < train + test:
        raise ValueError(
            f"walk-forward needs at least train_bars + test_bars = {train} + {test} = {train + test} bars, got {n}"
        )
    last = n - train - test
    return [(s, s + train, s + train + test) for s in range(last % step, last + 1, step)]


def _stitch(results: list[BacktestResult], initial: float) -> Curve:
    """Compound the windows: each window's curve (and trade PnLs) scaled by the stitched equity at its start."""
    equity, positions, pnls = [], [], []
    level = initial
    for r in results:
        scale = level / r.equity[0]
        equity.append(r.equity[1:] * scale)
        positions.append(r.positions[1:])
        pnls.append(np.array([t.pnl for t in r.trades], dtype=np.float64) * scale)
        level = float(equity[-1][-1])
    return Curve(np.concatenate(equity), np.concatenate(positions), np.concatenate(pnls))


def _agent_decide(agent: Any, features: np.ndarray) -> Decide:
    return lambda t, position: float(agent.decide(features, t, position).target)


def _algo_name(algo: str | None, strategy: StrategySettings) -> str:
    """What a window trains: `algo` if given, else the configured signal (`rl.algo`, or PPO+SAC blended when
    `rl.ensemble_alpha` < 1, as `agents.Ensemble` does live)."""
    if algo is not None:
        return algo
    return "ppo+sac" if strategy.rl.ensemble_alpha < 1.0 else strategy.rl.algo


Series4 = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
TrainProgress = Callable[[int, int], None]


def _train(name: str, data: Series4, strategy: StrategySettings, steps: int, on_progress: TrainProgress) -> Any:
    """The window's agent (anything with `decide(features, t, position) -> Decision`), trained on `data` only."""
    from arb.strategy.rl import agents

    rl = strategy.rl
    if name != "ppo+sac":
        return agents.train(*data, rl, algo=name, timesteps=steps, on_progress=on_progress)

    def half(offset: int) -> TrainProgress:
        return lambda done, total: on_progress(offset + done, 2 * total)

    ppo = agents.train(*data, rl, algo="ppo", timesteps=steps, on_progress=half(0))
    sac = agents.train(*data, rl, algo="sac", timesteps=steps, on_progress=half(steps))
    return agents.Ensemble(ppo, sac, rl.ensemble_alpha)


def walk_forward(
    bars: pd.DataFrame,
    strategy: StrategySettings,
    *,
    sentiment: np.ndarray | None = None,
    algo: str | None = None,
    timesteps: int | None = None,
    on_progress: OnProgress | None = None,
) -> WalkForwardResult:
    """Train and test window by window (module docstring); `algo`/`timesteps` override `strategy.rl`'s."""
    from arb.strategy import features as features_mod

    wf, rl = strategy.walk_forward, strategy.rl
    spans = windows_of(len(bars), wf.train_bars, wf.test_bars, wf.step_bars)
    if sentiment is not None and len(sentiment) != len(bars):
        raise ValueError(f"sentiment has {len(sentiment)} values, the bars are {len(bars)}")
    features = features_mod.feature_matrix(bars, sentiment)
    close, high, low = (bars[c].to_numpy(dtype=np.float64) for c in ("close", "high", "low"))
    steps = rl.total_timesteps if timesteps is None else timesteps
    name = _algo_name(algo, strategy)
    emit = on_progress or (lambda p: None)
    windows: list[Window] = []
    for k, (s, a, b) in enumerate(spans):

        def train_progress(done: int, total: int, k: int = k) -> None:
            emit(WalkForwardProgress(k, len(spans), "train", done, total))

        started = time.perf_counter()
        agent = _train(name, (features[s:a], close[s:a], high[s:a], low[s:a]), strategy, steps, train_progress)
        train_s = time.perf_counter() - started
        emit(WalkForwardProgress(k, len(spans), "test", 0, 1))
        result = run(bars, _agent_decide(agent, features), rl, risk=strategy.risk, start=a - 1, end=b)
        idx = bars.index
        times = {"train_start": _iso(idx[s]), "train_end": _iso(idx[a - 1]), "test_start": _iso(idx[a])}
        times["test_end"] = _iso(idx[b - 1])
        windows.append(Window(k, (s, a), (a, b), times, result, run_baselines(bars, rl, start=a - 1, end=b)))
        log.info(
            "walkforward.window index=%d of=%d train=%s..%s test=%s..%s train_s=%.1f sharpe=%s total_return=%.4f",
            k, len(spans), times["train_start"], times["train_end"], times["test_start"], times["test_end"],
            train_s, result.metrics.sharpe, result.metrics.total_return,
        )  # fmt: skip
        emit(WalkForwardProgress(k, len(spans), "done", 1, 1))
    return _result(bars, windows, strategy, name, steps)


def _result(
    bars: pd.DataFrame, windows: list[Window], strategy: StrategySettings, algo: str, steps: int
) -> WalkForwardResult:
    rl, wf = strategy.rl, strategy.walk_forward
    ppy = windows[0].strategy.periods_per_year
    per_name = {"strategy": [w.strategy for w in windows]} | {n: [w.baselines[n] for w in windows] for n in BASELINES}
    curves = {name: _stitch(results, rl.initial_equity) for name, results in per_name.items()}
    metrics = {
        name: metrics_mod.compute(
            np.concatenate([[rl.initial_equity], c.equity]), c.positions, c.trade_pnls, periods_per_year=ppy
        )
        for name, c in curves.items()
    }
    oos = np.concatenate([np.arange(*w.test) for w in windows])
    config = {
        "train_bars": wf.train_bars,
        "test_bars": wf.test_bars,
        "step_bars": wf.step_bars or wf.test_bars,
        "algo": algo,
        "timesteps": steps,
        "seed": rl.seed,
        "windows": len(windows),
        "stops": {k: getattr(strategy.risk, k) for k in STOP_FIELDS},
        "costs": {k: getattr(rl, k) for k in COST_FIELDS},
    }
    return WalkForwardResult(
        windows, pd.DatetimeIndex(bars.index[oos]), rl.initial_equity, curves, metrics, ppy, config
    )
