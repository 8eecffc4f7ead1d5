"""CryptoFuturesEnv: the money to the cent on hand series (long, short, flip, liquidation), the observation, the
reward of a step, gymnasium's own checker, determinism and bad input."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from arb.config.schema import RewardWeights, RLSettings
from arb.strategy.rl.env import CryptoFuturesEnv, observation

SHORT, FLAT, LONG = 0, 1, 2
RL = RLSettings(
    window=2, leverage=1.0, taker_fee=0.0005, slippage_bps=1.0, slippage_ref_notional=10_000.0,
    initial_equity=10_000.0, maintenance_margin=0.005,
)  # fmt: skip


def make_env(
    close: list[float],
    high: list[float] | None = None,
    low: list[float] | None = None,
    rl: RLSettings = RL,
    **kw: Any,
) -> CryptoFuturesEnv:
    n = len(close)
    features = np.arange(n * 2, dtype=np.float32).reshape(n, 2) / 100
    c = np.array(close)
    h = np.array(high) if high is not None else c
    lo = np.array(low) if low is not None else c
    env = CryptoFuturesEnv(features, c, h, lo, rl, random_start=False, **kw)
    env.reset(seed=0)
    return env


def generated(n: int = 600, k: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    return rng.standard_normal((n, k)).astype(np.float32), close, close * 1.004, close * 0.996


def test_a_long_pays_fee_and_slippage_then_is_marked_to_the_next_close() -> None:
    env = make_env([100.0, 100.0, 110.0, 99.0, 105.0])
    # at close[1] = 100: buy 10,000/100 = 100 units; fee 10,000*0.0005 = 5.00, slippage 1 bp = 1.00
    _, _, terminated, truncated, info = env.step(LONG)
    # marked at close[2] = 110: 10,000 - 6 + 100*(110-100) = 10,994.00
    assert info["equity"] == pytest.approx(10_994.00, abs=0.005)
    assert (info["fees_paid"], info["slippage_paid"]) == (pytest.approx(5.0), pytest.approx(1.0))
    assert (info["long_fees"], info["long_slippage"], info["short_fees"]) == (pytest.approx(5.0), pytest.approx(1.0), 0)
    assert info["unrealized_pnl"] == pytest.approx(1_000.0)
    assert info["position"] == 1.0
    assert (terminated, truncated) == (False, False)
    # an unchanged target trades nothing: marked at 99 -> 9,994 + 100*(99-100) = 9,894.00
    _, _, _, _, info = env.step(LONG)
    assert info["equity"] == pytest.approx(9_894.00, abs=0.005)
    assert info["traded_notional"] == 0.0
    assert info["fees_paid"] == pytest.approx(5.0)
    # flat at 99: sell 100 units = 9,900; fee 4.95; slippage 9,900*1e-4*sqrt(0.99) = 0.98504; realised -100
    _, _, terminated, truncated, info = env.step(FLAT)
    assert info["long_pnl"] == pytest.approx(-100.0)
    assert info["fees_paid"] == pytest.approx(9.95)
    assert info["slippage_paid"] == pytest.approx(1.0 + 0.98504, abs=1e-5)
    # 9,994 - 100 - 4.95 - 0.98504 = 9,888.06 whatever the last close (105) does
    assert info["equity"] == pytest.approx(9_888.06, abs=0.005)
    assert info["position"] == 0.0
    assert (terminated, truncated) == (False, True)  # 5 bars, window 2: decisions at bars 1, 2, 3


def test_a_short_gains_when_the_price_falls() -> None:
    env = make_env([100.0, 100.0, 90.0])
    _, _, _, _, info = env.step(SHORT)
    # sell 100 units at 100, costs 6; marked at 90: 9,994 + (-100)*(90-100) = 10,994.00
    assert info["equity"] == pytest.approx(10_994.00, abs=0.005)
    assert (info["short_fees"], info["short_slippage"], info["long_fees"]) == (
        pytest.approx(5.0),
        pytest.approx(1.0),
        0,
    )
    assert info["position"] == -1.0


def test_a_flip_is_one_order_whose_cost_is_split_between_the_sides_by_quantity() -> None:
    env = make_env([100.0, 100.0, 110.0, 99.0])
    env.step(SHORT)  # -100 units at 100, costs 6 -> cash 9,994; marked at 110: 8,994
    _, _, _, _, info = env.step(LONG)
    # equity 8,994 buys 8,994/110 = 81.763636 units long; the order is 181.763636 units = 19,994.00 notional
    # fee 9.997; slippage 19,994*1e-4*sqrt(1.9994) = 2.827169; the short's share is 100/181.763636 = 0.550165
    fee, slip, share = 9.997, 1.9994 * math.sqrt(1.9994), 100.0 / 181.763636
    assert info["short_pnl"] == pytest.approx(-1_000.0)  # -100 * (110 - 100)
    assert info["short_fees"] == pytest.approx(5.0 + fee * share, abs=1e-4)
    assert info["long_fees"] == pytest.approx(fee * (1 - share), abs=1e-4)
    assert info["fees_paid"] == pytest.approx(5.0 + fee)
    assert info["slippage_paid"] == pytest.approx(1.0 + slip)
    # cash 9,994 - 1,000 - 9.997 - 2.827169 = 8,981.175831; marked at 99: + 81.763636*(99-110) = -899.4
    assert info["equity"] == pytest.approx(8_981.175831 - 899.4, abs=0.005)
    assert info["equity"] == pytest.approx(8_081.78, abs=0.005)
    assert info["position"] == 1.0


def test_a_continuous_target_is_that_fraction_of_equity_times_leverage() -> None:
    env = make_env([100.0, 100.0, 110.0], rl=RL.model_copy(update={"leverage": 2.0}), continuous=True)
    _, _, _, _, info = env.step(np.array([0.25], dtype=np.float32))
    # 0.25 * 2 * 10,000 = 5,000 notional = 50 units; fee 2.50; slippage 5,000*1e-4*sqrt(0.5) = 0.353553
    assert info["traded_notional"] == pytest.approx(5_000.0)
    assert info["slippage_paid"] == pytest.approx(0.5 * math.sqrt(0.5))
    # 10,000 - 2.853553 + 50*10 = 10,497.15
    assert info["equity"] == pytest.approx(10_497.15, abs=0.005)
    assert info["position"] == 0.25


LEV3 = RL.model_copy(update={"leverage": 3.0})


def test_a_3x_long_is_liquidated_when_the_bar_low_crosses_its_liquidation_price() -> None:
    env = make_env(
        [100.0, 100.0, 95.0, 96.0], high=[100.0, 100.0, 100.0, 97.0], low=[100.0, 100.0, 60.0, 95.0], rl=LEV3
    )
    _, _, terminated, _, info = env.step(LONG)
    # buy 3*10,000/100 = 300 units = 30,000: fee 15, slippage 30,000*1e-4*sqrt(3) = 5.196152 -> cash 9,979.803848
    # effective leverage 30,000/9,979.803848; liquidation 100*(1 - 9,979.803848/30,000 + 0.005) = 67.233987
    liq = 100.0 * (1.0 - 9_979.803848 / 30_000.0 + 0.005)
    assert liq == pytest.approx(67.233987, abs=1e-6)
    # the low (60) crosses it: closed at 67.233987, realised 300*(liq-100) = -9,829.8039; exit costs on 20,170.196:
    # fee 10.085098, slippage 2.0170196*sqrt(2.0170196) = 2.864612
    exit_notional = 300.0 * liq
    exit_cost = exit_notional * 0.0005 + exit_notional * 1e-4 * math.sqrt(exit_notional / 10_000.0)
    assert info["liquidated"] is True
    assert info["long_pnl"] == pytest.approx(300.0 * (liq - 100.0))
    # the account keeps the maintenance margin (0.5 % of 30,000 = 150) less the exit costs: 137.05
    assert info["equity"] == pytest.approx(150.0 - exit_cost, abs=1e-6)
    assert info["equity"] == pytest.approx(137.05, abs=0.005)
    assert info["position"] == 0.0
    assert terminated is False
    # flat afterwards: the next bar changes nothing
    _, _, _, _, info = env.step(FLAT)
    assert info["equity"] == pytest.approx(137.05, abs=0.005)
    assert info["liquidated"] is False


def test_a_3x_short_is_liquidated_by_the_bar_high() -> None:
    env = make_env([100.0, 100.0, 105.0], high=[100.0, 100.0, 140.0], low=[100.0, 100.0, 99.0], rl=LEV3)
    _, _, _, _, info = env.step(SHORT)
    liq = 100.0 * (1.0 + 9_979.803848 / 30_000.0 - 0.005)  # 132.766013
    assert info["liquidated"] is True
    assert info["short_pnl"] == pytest.approx(-300.0 * (liq - 100.0))
    exit_notional = 300.0 * liq
    exit_cost = exit_notional * 0.0005 + exit_notional * 1e-4 * math.sqrt(exit_notional / 10_000.0)
    assert info["equity"] == pytest.approx(150.0 - exit_cost, abs=1e-6)


def test_a_3x_long_survives_a_low_above_its_liquidation_price() -> None:
    env = make_env([100.0, 100.0, 80.0], high=[100.0, 100.0, 100.0], low=[100.0, 100.0, 68.0], rl=LEV3)
    _, _, _, _, info = env.step(LONG)
    assert info["liquidated"] is False
    # 9,979.803848 + 300*(80-100) = 3,979.80
    assert info["equity"] == pytest.approx(3_979.80, abs=0.005)


def test_the_episode_terminates_when_liquidation_leaves_no_equity() -> None:
    # a maintenance margin of 0.01 % leaves 3.00 of 30,000, less than the exit costs (~13): the account is ruined
    rl = LEV3.model_copy(update={"maintenance_margin": 0.0001})
    env = make_env([100.0, 100.0, 95.0, 96.0], high=[100.0] * 4, low=[100.0, 100.0, 50.0, 95.0], rl=rl)
    _, reward, terminated, truncated, info = env.step(LONG)
    assert (terminated, truncated, info["liquidated"]) == (True, False, True)
    assert info["equity"] == 0.0
    assert float(reward) < -0.9  # the whole account lost: pnl fraction -1


def test_the_reward_of_a_step_follows_the_formula() -> None:
    weights = RewardWeights(alpha=1.0, beta=0.05, gamma=0.5, delta=0.01, early_drawdown=1.0, early_steps=48)
    rl = RL.model_copy(update={"window": 3, "reward": weights})
    env = make_env([100.0, 100.0, 100.0, 90.0, 99.0], rl=rl)
    _, reward, _, _, info = env.step(LONG)
    # pnl: (9,994 + 100*(90-100)) / 10,000 - 1 = -0.1006. EWMA span 3 (eta 0.5) after one return r: mean r/2,
    # variance r^2/2 - r^2/4 = r^2/4 -> Sharpe -1. Drawdown from the 10,000 peak grew by 0.1006, early step (weight
    # 1.5). Risk: 1 * 1x * |90/100 - 1| = 0.1.
    r = 8_994.0 / 10_000.0 - 1.0
    assert float(reward) == pytest.approx(r + 0.05 * -1.0 - 1.5 * 0.1006 - 0.01 * 0.1)
    _, reward, _, _, info = env.step(FLAT)
    # flat at 90: cost of selling 9,000: fee 4.5, slippage 0.9*sqrt(0.9) = 0.853815; equity 8,988.646185
    assert info["equity"] == pytest.approx(8_988.646185, abs=1e-6)
    r2 = 8_988.646185 / 8_994.0 - 1.0
    mean, sq = 0.5 * r + 0.5 * (r2 - 0.5 * r), 0.5 * r * r + 0.5 * (r2 * r2 - 0.5 * r * r)
    sharpe = max(-1.0, mean / math.sqrt(sq - mean * mean))
    grew = (1.0 - 8_988.646185 / 10_000.0) - 0.1006
    assert float(reward) == pytest.approx(r2 + 0.05 * sharpe - 1.5 * grew, rel=1e-6)


def test_equity_is_initial_plus_side_pnl_plus_unrealised_less_costs_on_a_random_run() -> None:
    features, close, high, low = generated()
    env = CryptoFuturesEnv(features, close, high, low, LEV3, episode_bars=500)
    env.reset(seed=3)
    rng = np.random.default_rng(3)
    while True:
        _, _, terminated, truncated, info = env.step(int(rng.integers(0, 3)))
        book = 10_000.0 + info["long_pnl"] + info["short_pnl"] + info["unrealized_pnl"]
        assert info["equity"] == pytest.approx(book - info["fees_paid"] - info["slippage_paid"], abs=1e-6)
        assert info["fees_paid"] == pytest.approx(info["long_fees"] + info["short_fees"])
        if terminated or truncated:
            break


def test_observation_is_the_window_of_features_flattened_then_the_position() -> None:
    features = np.arange(12, dtype=np.float32).reshape(6, 2)
    obs = observation(features, 3, 2, 0.5)
    assert obs.dtype == np.float32
    assert obs.tolist() == [4.0, 5.0, 6.0, 7.0, 0.5]


def test_observation_at_t_ignores_everything_after_t() -> None:
    features, *_ = generated(n=100)
    before = observation(features, 50, 24, -1.0)
    perturbed = features.copy()
    perturbed[51:] = 1e3
    assert np.array_equal(observation(perturbed, 50, 24, -1.0), before)


@pytest.mark.parametrize(("t", "window", "position"), [(0, 2, 0.0), (6, 2, 0.0), (3, 2, 1.5), (3, 0, 0.0)])
def test_observation_refuses_a_bar_without_a_full_window_or_a_bad_position(
    t: int, window: int, position: float
) -> None:
    with pytest.raises(ValueError, match=r"window|position"):
        observation(np.zeros((6, 2), np.float32), t, window, position)


def test_the_env_observation_is_built_by_observation_from_the_current_bar_and_position() -> None:
    features, close, high, low = generated()
    env = CryptoFuturesEnv(features, close, high, low, RLSettings(window=24))
    obs, _ = env.reset(seed=11)
    assert np.array_equal(obs, observation(features, env.t, 24, 0.0))
    obs, _, _, _, info = env.step(SHORT)
    assert np.array_equal(obs, observation(features, env.t, 24, info["position"]))
    assert obs.shape == env.observation_space.shape


@pytest.mark.parametrize("continuous", [False, True])
def test_gymnasium_check_env_passes(continuous: bool) -> None:
    features, close, high, low = generated()
    env = CryptoFuturesEnv(features, close, high, low, RLSettings(window=8, episode_bars=100), continuous=continuous)
    check_env(env, skip_render_check=True)  # the env declares no render modes


def _trajectory(seed: int) -> list[tuple[Any, ...]]:
    features, close, high, low = generated()
    env = CryptoFuturesEnv(features, close, high, low, RLSettings(window=8, episode_bars=50))
    obs, _ = env.reset(seed=seed)
    out: list[tuple[Any, ...]] = [(obs.tolist(), env.t)]
    for a in [2, 2, 0, 1, 0, 2] * 8:
        obs, r, term, trunc, info = env.step(a)
        out.append((obs.tolist(), float(r), term, trunc, info["equity"]))
    return out


def test_the_same_seed_gives_the_same_trajectory_and_another_seed_another_start() -> None:
    assert _trajectory(5) == _trajectory(5)
    assert _trajectory(5)[0][1] != _trajectory(6)[0][1]


def test_random_starts_stay_inside_the_data_and_episodes_truncate_at_episode_bars() -> None:
    features, close, high, low = generated(n=120)
    env = CryptoFuturesEnv(features, close, high, low, RLSettings(window=10, episode_bars=30))
    for seed in range(20):
        env.reset(seed=seed)
        assert 9 <= env.t <= 120 - 1 - 30
    steps = 0
    while True:
        _, _, terminated, truncated, _ = env.step(FLAT)
        steps += 1
        if terminated or truncated:
            break
    assert (steps, truncated) == (30, True)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(FLAT)


def test_episode_bars_is_capped_by_the_data() -> None:
    features, close, high, low = generated(n=40)
    env = CryptoFuturesEnv(features, close, high, low, RLSettings(window=10, episode_bars=720))
    assert env.episode_bars == 30


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f, c, h, lo: (f[:, :, None], c, h, lo), "features"),
        (lambda f, c, h, lo: (np.where(np.arange(len(f))[:, None] == 5, np.nan, f), c, h, lo), "non-finite"),
        (lambda f, c, h, lo: (f, c[:-1], h, lo), "close"),
        (lambda f, c, h, lo: (f, np.where(np.arange(len(c)) == 3, 0.0, c), h, lo), "close"),
        (lambda f, c, h, lo: (f, c, lo, h), "high < low"),
        (lambda f, c, h, lo: (f[:8], c[:8], h[:8], lo[:8]), "at least window"),
        (lambda f, c, h, lo: (f * 1e7, c, h, lo), "normalised"),
    ],
)
def test_bad_input_is_refused_with_a_message_naming_it(change: Any, message: str) -> None:
    features, close, high, low = generated(n=50)
    with pytest.raises(ValueError, match=message):
        CryptoFuturesEnv(*change(features, close, high, low), RLSettings(window=8))


def test_bad_actions_are_refused() -> None:
    env = make_env([100.0, 100.0, 110.0])
    with pytest.raises(ValueError, match="discrete action"):
        env.step(3)
    cont = make_env([100.0, 100.0, 110.0], continuous=True)
    with pytest.raises(ValueError, match="NaN"):
        cont.step(np.array([np.nan], dtype=np.float32))
