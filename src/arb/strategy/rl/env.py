"""`CryptoFuturesEnv`: a gymnasium environment of one leveraged linear perpetual traded on hourly bars.

Decision convention (the contract's): a step at bar t sees features of bars t−window+1..t, trades at close[t] to the
target it chooses, and holds that over bar t+1 (marked at close[t+1]). The money is `arb.strategy.rl.costs`, and the
book follows the same rules as the backtest (`arb.backtest.directional`), so what an agent learns here is what it is
judged on there:

- A target p (discrete: 0 short, 1 flat, 2 long -> -1, 0, +1; continuous: the action in [-1, 1]) is a position of
  notional p · leverage · equity, equity marked at close[t]. An unchanged target trades nothing: the quantity is held
  and its share of equity drifts with the price, as on an exchange. A changed target is one market order for the
  difference, paying taker fee + slippage (`costs.trade_cost`) on the traded notional; limit orders (maker fee) are
  not modelled, since hourly candles cannot say whether one would have filled. A flip's cost is split between the
  side it closes and the side it opens by quantity.
- Long and short are booked apart: realised price PnL, fees and slippage per side (`info`), with
  equity = initial + long_pnl + short_pnl + unrealized_pnl − fees_paid − slippage_paid.
- Liquidation: `costs.liquidation_price(avg entry, side, effective leverage, maintenance_margin)`, the effective
  leverage being the notional at the average entry over the account's cash (cross margin: the account is the
  margin). If bar t+1's adverse extreme (low for a long, high for a short) reaches it, the position is closed at that
  price (or at close[t] if that is already worse: hourly crypto bars open where the last one closed), paying taker
  costs; the account keeps what is left of the maintenance margin and the target becomes flat.
- The episode terminates when equity is <= 0 and is truncated after `episode_bars` steps.

Reward: `costs.reward` (formula in its docstring). The Sharpe-like term is an exponentially weighted mean / standard
deviation of the step returns with span `window` (the horizon the agent sees), clipped to [-1, 1].

Performance: a step is plain-float arithmetic on Python lists plus one slice of the contiguous float32 feature matrix
(`observation`), so one core runs tens of thousands of steps per second (`bench/strategy_env.py`).
"""

from __future__ import annotations

import math
from typing import Any, Final, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from arb.config.schema import RLSettings
from arb.strategy.rl import costs

__all__ = ["OBS_LIMIT", "CryptoFuturesEnv", "observation"]

OBS_LIMIT: Final = 1e6
"""Bound of the observation Box on each feature; features beyond it are refused (they are meant to be normalised)."""
SHARPE_CLIP: Final = 1.0
"""A per-bar Sharpe above 1 is noise, not skill; the clip stops a run of tiny equal returns from dominating."""
_TARGETS: Final = (-1.0, 0.0, 1.0)


def observation(features: np.ndarray, t: int, window: int, position: float) -> np.ndarray:
    """The agent's input at the close of bar t: features of bars t−window+1..t, flattened row by row, then the
    target position held, as float32. The only function that builds one (env, agents and live signals share it), so
    an agent never sees anything but bars <= t."""
    if features.ndim != 2:
        raise ValueError(f"features must be a 2-D (bars, features) array, got shape {features.shape}")
    if not (window - 1 <= t < features.shape[0]) or window < 1:
        raise ValueError(f"bar {t} has no window of {window} bars in features of {features.shape[0]} bars")
    if not -1.0 <= position <= 1.0:
        raise ValueError(f"position must be in [-1, 1], got {position}")
    out = np.empty(window * features.shape[1] + 1, dtype=np.float32)
    out[:-1] = features[t - window + 1 : t + 1].reshape(-1)
    out[-1] = position
    return out


def _series(name: str, values: np.ndarray, n: int) -> list[float]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"{name} has shape {arr.shape}; it must be ({n},), one value per feature row")
    if not (np.all(np.isfinite(arr)) and np.all(arr > 0)):
        raise ValueError(f"{name} must be finite and > 0 (bar {int(np.argmax(~(np.isfinite(arr) & (arr > 0))))})")
    return list(arr.tolist())


class CryptoFuturesEnv(gym.Env[np.ndarray, Any]):
    """One perpetual, one account; the conventions are in the module docstring."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 - gymnasium's class attribute

    def __init__(
        self,
        features: np.ndarray,
        close: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        rl: RLSettings,
        *,
        continuous: bool = False,
        episode_bars: int | None = None,
        random_start: bool = True,
    ) -> None:
        feats = np.ascontiguousarray(features, dtype=np.float32)
        if feats.ndim != 2 or feats.shape[1] < 1:
            raise ValueError(f"features must be a (bars, features) array, got shape {np.shape(features)}")
        if not np.all(np.isfinite(feats)):
            raise ValueError(f"features have a non-finite value at row {int(np.argmax(~np.isfinite(feats).all(1)))}")
        if np.any(np.abs(feats) > OBS_LIMIT):
            raise ValueError(f"features exceed ±{OBS_LIMIT:g}; they must be normalised before the env sees them")
        n, k = int(feats.shape[0]), int(feats.shape[1])
        window = rl.window
        if n < window + 1:
            raise ValueError(f"{n} bars: the env needs at least window ({window}) + 1 bars")
        self._close = _series("close", close, n)
        self._high = _series("high", high, n)
        self._low = _series("low", low, n)
        if any(h < lo for h, lo in zip(self._high, self._low, strict=True)):
            raise ValueError("high < low in some bar")
        episode = rl.episode_bars if episode_bars is None else episode_bars
        if episode < 1:
            raise ValueError(f"episode_bars must be >= 1, got {episode}")
        self._features = feats
        self._rl = rl
        self._window = window
        self._episode = min(episode, n - window)
        self._random_start = random_start
        self._continuous = continuous
        self._eta = 2.0 / (window + 1.0)
        obs_low = np.full(window * k + 1, -OBS_LIMIT, dtype=np.float32)
        obs_high = np.full(window * k + 1, OBS_LIMIT, dtype=np.float32)
        obs_low[-1], obs_high[-1] = -1.0, 1.0
        self.observation_space = spaces.Box(obs_low, obs_high, dtype=np.float32)
        self.action_space: spaces.Space[Any] = (
            spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32) if continuous else spaces.Discrete(3)
        )
        self._reset_book(window - 1)

    @property
    def episode_bars(self) -> int:
        """Steps in one episode (the requested length, capped by the data)."""
        return self._episode

    @property
    def t(self) -> int:
        """The bar whose close the next step decides at."""
        return self._t

    def _reset_book(self, start: int) -> None:
        self._t = start
        self._steps = 0
        self._cash = self._rl.initial_equity
        self._qty = 0.0
        self._avg = 0.0
        self._liq = 0.0
        self._position = 0.0
        self._peak = self._rl.initial_equity
        self._dd = 0.0
        self._mean = 0.0
        self._sq = 0.0
        self._fees = 0.0
        self._slip = 0.0
        self._side_pnl = [0.0, 0.0]  # [long, short]
        self._side_fees = [0.0, 0.0]
        self._side_slip = [0.0, 0.0]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        n = len(self._close)
        start = self._window - 1
        if self._random_start:
            start = int(self.np_random.integers(start, n - self._episode))
        self._reset_book(start)
        obs = observation(self._features, start, self._window, 0.0)
        return obs, self._info(self._cash, 0.0, liquidated=False)

    def _target(self, action: Any) -> float:
        if self._continuous:
            a = float(action[0])
            if math.isnan(a):
                raise ValueError("continuous action is NaN")
            return min(1.0, max(-1.0, a))
        i = int(action)
        if i not in (0, 1, 2):
            raise ValueError(f"discrete action must be 0 (short), 1 (flat) or 2 (long), got {action!r}")
        return _TARGETS[i]

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        t = self._t
        if self._steps >= self._episode:
            raise RuntimeError("step() after the episode ended; call reset()")
        target = self._target(action)
        c0, c1 = self._close[t], self._close[t + 1]
        equity0 = self._cash + self._qty * (c0 - self._avg)
        traded = 0.0
        if target != self._position:
            traded = self._trade(target * self._rl.leverage * equity0 / c0, c0)
            self._position = target
        held = self._position
        liquidated = False
        if self._qty > 0.0 and self._low[t + 1] <= self._liq:
            self._liquidate(min(self._liq, c0))
            liquidated = True
        elif self._qty < 0.0 and self._high[t + 1] >= self._liq:
            self._liquidate(max(self._liq, c0))
            liquidated = True
        equity1 = self._cash + self._qty * (c1 - self._avg)
        terminated = equity1 <= 0.0
        equity1 = max(equity1, 0.0)

        ret = equity1 / equity0 - 1.0
        eta = self._eta
        self._mean += eta * (ret - self._mean)
        self._sq += eta * (ret * ret - self._sq)
        var = self._sq - self._mean * self._mean
        sharpe = self._mean / math.sqrt(var) if var > 1e-18 else 0.0
        sharpe = min(SHARPE_CLIP, max(-SHARPE_CLIP, sharpe))
        self._peak = max(self._peak, equity1)
        dd = 1.0 - equity1 / self._peak
        grew = max(0.0, dd - self._dd)
        self._dd = dd
        risk = abs(held) * self._rl.leverage * abs(c1 / c0 - 1.0)
        r = costs.reward(ret, sharpe, grew, risk, self._steps, self._rl.reward)

        self._t = t + 1
        self._steps += 1
        truncated = not terminated and self._steps >= self._episode
        obs = observation(self._features, self._t, self._window, self._position)
        info = self._info(equity1, traded, liquidated=liquidated)
        return obs, r, terminated, truncated, info

    def _info(self, equity: float, traded: float, *, liquidated: bool) -> dict[str, Any]:
        return {
            "t": self._t,
            "equity": equity,
            "position": self._position,
            "traded_notional": traded,
            "unrealized_pnl": self._qty * (self._close[self._t] - self._avg),
            "fees_paid": self._fees,
            "slippage_paid": self._slip,
            "long_pnl": self._side_pnl[0],
            "short_pnl": self._side_pnl[1],
            "long_fees": self._side_fees[0],
            "short_fees": self._side_fees[1],
            "long_slippage": self._side_slip[0],
            "short_slippage": self._side_slip[1],
            "liquidated": liquidated,
        }

    # --- the book ------------------------------------------------------------------------------------------------
    def _pay(self, notional: float, side: int, share: float = 1.0) -> None:
        """Book `share` of the taker costs of an order of `notional` to a side (+1 long, -1 short)."""
        order = abs(notional)
        f = costs.fee(order, self._rl.taker_fee) * share
        s = costs.slippage(order, self._rl.slippage_bps, self._rl.slippage_ref_notional) * share
        i = 0 if side > 0 else 1
        self._side_fees[i] += f
        self._side_slip[i] += s
        self._fees += f
        self._slip += s
        self._cash -= f + s

    def _realise(self, qty: float, price: float) -> None:
        """Close `qty` (same sign as the position) at `price` against the average entry."""
        pnl = qty * (price - self._avg)
        self._side_pnl[0 if qty > 0 else 1] += pnl
        self._cash += pnl

    def _trade(self, desired: float, price: float) -> float:
        """Move the quantity to `desired` at `price`; returns the traded notional (signed)."""
        qty = self._qty
        delta = desired - qty
        order = delta * price
        if qty == 0.0:
            self._pay(order, 1 if desired > 0 else -1)
            self._avg = price
        elif desired == 0.0 or (desired > 0.0) != (qty > 0.0):
            closing = abs(qty) / abs(delta)
            self._realise(qty, price)
            self._pay(order, 1 if qty > 0 else -1, closing)
            if desired != 0.0:
                self._pay(order, 1 if desired > 0 else -1, 1.0 - closing)
            self._avg = price if desired != 0.0 else 0.0
        else:
            if abs(desired) > abs(qty):
                self._avg = (abs(qty) * self._avg + abs(delta) * price) / abs(desired)
            else:
                self._realise(-delta, price)
            self._pay(order, 1 if qty > 0 else -1)
        self._qty = desired
        if desired != 0.0:
            side = 1 if desired > 0 else -1
            lev = abs(desired) * self._avg / self._cash if self._cash > 0.0 else math.inf
            self._liq = costs.liquidation_price(self._avg, side, lev, self._rl.maintenance_margin)
        return order

    def _liquidate(self, price: float) -> None:
        qty = self._qty
        self._realise(qty, price)
        self._pay(qty * price, 1 if qty > 0 else -1)
        self._qty = 0.0
        self._avg = 0.0
        self._position = 0.0
