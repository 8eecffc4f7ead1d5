"""Performance figures of an equity curve, as a user compares a strategy with its baselines.

Every figure is defined here, once, so the backtest, the walk-forward and the report agree on what a number means.
Inputs: `equity` (account value at each bar close, `equity[0]` the starting capital before any trade), `positions`
(the signed position held over each bar, any scale; only "zero or not" matters) and `trade_pnls` (net PnL of each
closed trade, costs included). With r_i = equity[i] / equity[i-1] − 1 (i = 1 … n−1) the per-bar returns and
P = `periods_per_year` (8760 for hourly bars):

- total_return = equity[-1] / equity[0] − 1.
- cagr = (equity[-1] / equity[0]) ** (P / (n − 1)) − 1: the annualised (compounded) return. On a short window it
  extrapolates wildly (a 100-bar window is 1/88 of a year); None if it leaves the float range.
- annual_vol = std(r, ddof=1) · sqrt(P).
- sharpe = mean(r) / std(r, ddof=1) · sqrt(P), risk-free rate 0.
- sortino = mean(r) / DD · sqrt(P), DD = sqrt(mean(min(r, 0)²)) over ALL returns (the target-0 downside deviation
  of Sortino & Price, so a curve with rare losses is not flattered by dividing by few terms).
- max_drawdown = max_i (1 − equity[i] / max(equity[0..i])), a positive fraction (0.25 = 25 %).
- calmar = cagr / max_drawdown.
- win_rate = trades with pnl > 0 / closed trades.
- profit_factor = Σ positive trade pnls / |Σ negative trade pnls|.
- exposure = bars with a non-zero position / bars.

Zero denominators never raise and never produce inf/NaN (JSON cannot hold them): a ratio whose denominator is 0 is
0.0 when its numerator is 0 too (nothing happened: a flat curve, no trades) and None when it is not (unbounded: a
profit factor with no losing trade, a Sortino with no losing bar, a Calmar with no drawdown). Fewer than two returns:
std-based figures are 0.0. No closed trades: win_rate 0.0, profit_factor 0.0. A curve that reaches 0 (ruin) is
allowed; returns after it are 0 (nothing left to lose).
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
import numpy as np

HOURS_PER_YEAR = 8760.0


class Metrics(msgspec.Struct, frozen=True, kw_only=True):
    """See the module docstring for each formula; None marks an unbounded ratio (zero denominator)."""

    sharpe: float | None
    sortino: float | None
    calmar: float | None
    max_drawdown: float
    win_rate: float
    profit_factor: float | None
    total_return: float
    cagr: float | None
    annual_vol: float
    trades: int
    exposure: float
    bars: int
    """Returns (bars) the figures are over: len(equity) − 1."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = msgspec.to_builtins(self)
        return out


def _ratio(num: float, den: float) -> float | None:
    if den == 0.0:
        return 0.0 if num == 0.0 else None
    return num / den


def returns(equity: np.ndarray) -> np.ndarray:
    """Per-bar simple returns of an equity curve; 0 after the curve reached 0."""
    prev = equity[:-1]
    safe = np.where(prev > 0.0, prev, 1.0)
    out: np.ndarray = np.where(prev > 0.0, equity[1:] / safe - 1.0, 0.0)
    return out


def max_drawdown(equity: np.ndarray) -> float:
    peak = np.maximum.accumulate(equity)
    return float(np.max(1.0 - equity / peak)) if len(equity) else 0.0


def drawdown(equity: np.ndarray) -> np.ndarray:
    """1 − equity / running peak at each point (the report's drawdown panel)."""
    out: np.ndarray = 1.0 - equity / np.maximum.accumulate(equity)
    return out


def _check(equity: np.ndarray, trade_pnls: np.ndarray, periods_per_year: float) -> None:
    if equity.ndim != 1 or len(equity) == 0:
        raise ValueError(f"equity must be a non-empty 1-d array, got shape {equity.shape}")
    if not np.all(np.isfinite(equity)) or np.any(equity < 0.0):
        raise ValueError("equity must be finite and >= 0 at every bar")
    if equity[0] <= 0.0:
        raise ValueError(f"equity[0] (the starting capital) must be > 0, got {equity[0]}")
    if not np.all(np.isfinite(trade_pnls)):
        raise ValueError("trade_pnls must be finite")
    if not (math.isfinite(periods_per_year) and periods_per_year > 0):
        raise ValueError(f"periods_per_year must be a positive number, got {periods_per_year}")


def _cagr(growth: float, n: int, periods_per_year: float) -> float | None:
    if n == 0:
        return 0.0
    if growth == 0.0:
        return -1.0
    try:
        return math.expm1(math.log(growth) * periods_per_year / n)
    except OverflowError:
        return None


def compute(
    equity: np.ndarray,
    positions: np.ndarray,
    trade_pnls: np.ndarray,
    periods_per_year: float = HOURS_PER_YEAR,
) -> Metrics:
    """The figures of one equity curve (formulas and zero-denominator rules: module docstring)."""
    equity = np.asarray(equity, dtype=np.float64)
    positions = np.asarray(positions, dtype=np.float64)
    trade_pnls = np.asarray(trade_pnls, dtype=np.float64)
    _check(equity, trade_pnls, periods_per_year)
    r = returns(equity)
    n = len(r)
    scale = math.sqrt(periods_per_year)
    mean = float(np.mean(r)) if n else 0.0
    std = float(np.std(r, ddof=1)) if n >= 2 else 0.0
    downside = float(np.sqrt(np.mean(np.minimum(r, 0.0) ** 2))) if n else 0.0
    growth = float(equity[-1] / equity[0])
    cagr = _cagr(growth, n, periods_per_year)
    mdd = max_drawdown(equity)
    sharpe = _ratio(mean, std) if n >= 2 else 0.0
    sortino = _ratio(mean, downside)
    wins = trade_pnls[trade_pnls > 0.0]
    losses = trade_pnls[trade_pnls < 0.0]
    return Metrics(
        sharpe=None if sharpe is None else sharpe * scale,
        sortino=None if sortino is None else sortino * scale,
        calmar=None if cagr is None else _ratio(cagr, mdd),
        max_drawdown=mdd,
        win_rate=len(wins) / len(trade_pnls) if len(trade_pnls) else 0.0,
        profit_factor=_ratio(float(np.sum(wins)), float(-np.sum(losses))),
        total_return=growth - 1.0,
        cagr=cagr,
        annual_vol=std * scale,
        trades=len(trade_pnls),
        exposure=float(np.count_nonzero(positions)) / len(positions) if len(positions) else 0.0,
        bars=n,
    )
