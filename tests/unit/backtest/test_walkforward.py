"""Walk-forward: windows never let a test bar into training, and only out-of-sample bars reach the result."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from arb.backtest.walkforward import WalkForwardProgress, WalkForwardResult, walk_forward, windows_of
from arb.config import load_settings
from arb.config.schema import StrategySettings
from tests.support import random_bars

TIMESTEPS = 1_000


def settings(train: int = 300, test: int = 100, step: int | None = None) -> StrategySettings:
    base = load_settings(None).strategy
    return StrategySettings.model_validate(
        base.model_dump() | {"walk_forward": {"train_bars": train, "test_bars": test, "step_bars": step}}
    )


BARS = random_bars(600, seed=21, drift=0.0002)


@pytest.fixture(scope="module")
def progress() -> list[WalkForwardProgress]:
    return []


@pytest.fixture(scope="module")
def result(progress: list[WalkForwardProgress]) -> WalkForwardResult:
    return walk_forward(BARS, settings(), timesteps=TIMESTEPS, on_progress=progress.append)


def test_windows_tile_the_data_and_end_at_the_last_bar() -> None:
    assert windows_of(600, 300, 100, None) == [(0, 300, 400), (100, 400, 500), (200, 500, 600)]
    # 50 bars too many for whole windows: the OLDEST are left out, the newest always tested
    assert windows_of(650, 300, 100, None) == [(50, 350, 450), (150, 450, 550), (250, 550, 650)]
    # a step longer than the test window leaves untested gaps between windows, still ending at the last bar
    assert windows_of(650, 300, 100, 150) == [(100, 400, 500), (250, 550, 650)]


def test_the_default_budget_makes_six_windows_of_5000_bars() -> None:
    wf = load_settings(None).strategy.walk_forward

    assert len(windows_of(5_000, wf.train_bars, wf.test_bars, wf.step_bars)) == 6


def test_too_few_bars_for_one_window_is_an_error_naming_the_numbers() -> None:
    with pytest.raises(ValueError, match=r"train_bars \+ test_bars = 300 \+ 100 = 400 bars, got 399"):
        walk_forward(BARS.iloc[:399], settings(), timesteps=TIMESTEPS)


def test_overlapping_test_windows_are_refused() -> None:
    with pytest.raises(ValueError, match="step_bars=50 < test_bars=100"):
        walk_forward(BARS, settings(step=50), timesteps=TIMESTEPS)


def test_each_window_trains_before_it_tests_and_test_windows_do_not_overlap(result: WalkForwardResult) -> None:
    spans = [(w.train, w.test) for w in result.windows]

    assert spans == [((0, 300), (300, 400)), ((100, 400), (400, 500)), ((200, 500), (500, 600))]
    for w in result.windows:
        # the backtest starts at the last training close (its first position is held over the first test bar)
        assert (w.strategy.start, w.strategy.end) == (w.test[0] - 1, w.test[1])
        assert len(w.strategy.equity) == 100 + 1
        assert {(b.start, b.end) for b in w.baselines.values()} == {(w.strategy.start, w.strategy.end)}
        assert all(w.test[0] - 1 <= t.entry_bar and t.exit_bar < w.test[1] for t in w.strategy.trades)


def test_only_out_of_sample_bars_are_in_the_result(result: WalkForwardResult) -> None:
    pd.testing.assert_index_equal(result.ts, BARS.index[300:600], check_freq=False)
    for name, curve in result.curves.items():
        assert len(curve.equity) == len(curve.positions) == 300, name
    assert {m.bars for m in result.metrics.values()} == {300}
    doc = result.to_dict()
    assert (doc["period"]["start"], doc["period"]["bars"]) == (BARS.index[300].isoformat(), 300)
    assert [w["test"]["start"] for w in doc["windows"]] == [BARS.index[i].isoformat() for i in (300, 400, 500)]


def test_the_stitched_curve_compounds_the_windows(result: WalkForwardResult) -> None:
    growth = [w.strategy.equity[-1] / w.strategy.equity[0] for w in result.windows]
    curve = result.curves["strategy"]

    assert curve.equity[99] == pytest.approx(10_000.0 * growth[0])
    assert curve.equity[-1] == pytest.approx(10_000.0 * growth[0] * growth[1] * growth[2])
    assert result.metrics["strategy"].total_return == pytest.approx(growth[0] * growth[1] * growth[2] - 1.0)
    # scaled trade PnLs still add up to the curve
    assert curve.trade_pnls.sum() == pytest.approx(curve.equity[-1] - 10_000.0)


def test_baselines_run_over_the_same_out_of_sample_bars(result: WalkForwardResult) -> None:
    hold = result.curves["buy_and_hold"]

    # long all the time: exposed on every out-of-sample bar, one entry per window
    assert np.all(hold.positions == 1.0)
    assert len(hold.trade_pnls) == 3


def test_progress_reports_every_window_and_training_steps(
    result: WalkForwardResult, progress: list[WalkForwardProgress]
) -> None:
    phases = [(p.window, p.phase) for p in progress if p.phase != "train"]
    assert phases == [(0, "test"), (0, "done"), (1, "test"), (1, "done"), (2, "test"), (2, "done")]
    train = [p for p in progress if p.phase == "train"]
    assert {p.window for p in train} == {0, 1, 2}
    assert all(p.total == TIMESTEPS and p.windows == 3 for p in train)
    assert max(p.done for p in train if p.window == 0) >= TIMESTEPS


def test_bars_after_a_window_do_not_change_its_results(result: WalkForwardResult) -> None:
    # window 0 trains on [0, 300) and tests on [300, 400): bars from 400 on must not matter to it
    perturbed = BARS.copy()
    factor = np.random.default_rng(22).uniform(0.7, 1.3, size=(200, 1))
    perturbed.iloc[400:, :4] = perturbed.iloc[400:, :4].to_numpy() * factor
    perturbed["high"] = perturbed[["open", "high", "close"]].max(axis=1)
    perturbed["low"] = perturbed[["open", "low", "close"]].min(axis=1)

    other = walk_forward(perturbed, settings(), timesteps=TIMESTEPS)

    np.testing.assert_array_equal(other.windows[0].strategy.equity, result.windows[0].strategy.equity)
    assert other.windows[0].strategy.trades == result.windows[0].strategy.trades
    assert not np.array_equal(other.curves["buy_and_hold"].equity, result.curves["buy_and_hold"].equity)


def test_an_ensemble_alpha_below_one_walks_forward_the_blend_of_ppo_and_sac() -> None:
    strategy = settings()
    strategy = strategy.model_copy(update={"rl": strategy.rl.model_copy(update={"ensemble_alpha": 0.5})})
    seen: list[WalkForwardProgress] = []

    r = walk_forward(BARS.iloc[:400], strategy, timesteps=256, on_progress=seen.append)

    assert r.config["algo"] == "ppo+sac"
    train = [p for p in seen if p.phase == "train"]
    assert {p.total for p in train} == {512}  # both agents' steps, one progress scale
    assert train[-1].done == 512
    # the blended agent traded the test window
    assert r.windows[0].strategy.trades
