"""Portfolio risk metrics: VaR (historical and Gaussian), max drawdown, capped Kelly fraction, exposure by venue/asset.

Reporting figures (API, CLI, sizing hints), not booked money: they are computed with numpy on float64 and returned as
floats. Every function validates its input and names the argument it refuses; none of them treats missing data as
zero (a position without a price is an error, not a worthless position).

Conventions: VaR is a positive number for a loss (the loss not exceeded with the given confidence), computed from a
series of per-period PnL (or returns; the unit in is the unit out). Historical VaR uses the empirical quantile without
interpolation (the smallest observation x with at least (1 - c) of the sample at or below it, numpy's
`inverted_cdf`), so it is always one of the observed outcomes; parametric VaR assumes a normal distribution with the
sample mean and the sample standard deviation (ddof=1): z_c × σ - μ.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from statistics import NormalDist

import msgspec
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def _series(values: Iterable[float] | FloatArray, name: str, *, min_len: int) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D series, got shape {arr.shape}")
    if arr.size < min_len:
        raise ValueError(f"{name}: needs at least {min_len} values, got {arr.size}")
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise ValueError(f"{name}[{bad}] is {arr[bad]}: every value must be finite")
    return arr


def _confidence(confidence: float) -> float:
    if not 0.5 < confidence < 1.0:
        raise ValueError(f"confidence: must be in (0.5, 1), got {confidence}")
    return confidence


def historical_var(pnl: Iterable[float] | FloatArray, confidence: float) -> float:
    """The loss not exceeded in `confidence` of the observed periods: -(empirical (1 - c) quantile of `pnl`)."""
    arr = _series(pnl, "pnl", min_len=1)
    # The k-th smallest outcome, k = ceil(n (1 - c)): numpy's `inverted_cdf`, but with the rank rounded first, since
    # 1 - 0.95 is 0.05000000000000004 in binary and would push k past the observation that is exactly 5 % in.
    k = max(math.ceil(round(arr.size * (1.0 - _confidence(confidence)), 9)), 1)
    return float(-np.partition(arr, k - 1)[k - 1])


def parametric_var(pnl: Iterable[float] | FloatArray, confidence: float) -> float:
    """Gaussian VaR: z_c × σ - μ, with μ, σ the sample mean and standard deviation (ddof=1) of `pnl`."""
    arr = _series(pnl, "pnl", min_len=2)
    z = NormalDist().inv_cdf(_confidence(confidence))
    return float(z * arr.std(ddof=1) - arr.mean())


class VaR(msgspec.Struct, frozen=True, kw_only=True):
    confidence: float
    historical: float
    parametric: float
    observations: int


def value_at_risk(pnl: Iterable[float] | FloatArray, confidences: Sequence[float] = (0.95, 0.99)) -> list[VaR]:
    """Both VaRs at each confidence level (`RiskSettings.var_confidence`)."""
    arr = _series(pnl, "pnl", min_len=2)
    return [
        VaR(confidence=c, historical=historical_var(arr, c), parametric=parametric_var(arr, c), observations=arr.size)
        for c in confidences
    ]


class Drawdown(msgspec.Struct, frozen=True, kw_only=True):
    """The largest peak-to-trough fall of an equity curve: as a fraction of the peak, in equity units, and where
    (indices into the curve). A curve that never falls has fraction 0 and peak == trough == 0."""

    fraction: float
    amount: float
    peak_index: int
    trough_index: int


def max_drawdown(equity: Iterable[float] | FloatArray) -> Drawdown:
    """Largest fall from a running peak, relative to that peak. Equity must stay positive (a fraction of a
    non-positive peak means nothing)."""
    arr = _series(equity, "equity", min_len=1)
    if not (arr > 0).all():
        bad = int(np.flatnonzero(arr <= 0)[0])
        raise ValueError(f"equity[{bad}] is {arr[bad]}: equity must be positive")
    peaks = np.maximum.accumulate(arr)
    falls = (peaks - arr) / peaks
    trough = int(np.argmax(falls))
    if falls[trough] <= 0.0:
        return Drawdown(fraction=0.0, amount=0.0, peak_index=0, trough_index=0)
    peak = int(np.flatnonzero(arr[: trough + 1] == peaks[trough])[-1])
    return Drawdown(
        fraction=float(falls[trough]), amount=float(peaks[trough] - arr[trough]), peak_index=peak, trough_index=trough
    )


def kelly_fraction(win_rate: float, payoff_ratio: float, *, cap: float) -> float:
    """Fraction of the bankroll to stake: full Kelly p - (1 - p) / b, floored at 0 (no edge: no bet) and capped at
    `cap` (`RiskSettings.kelly_fraction_cap`), because p and b are estimates and full Kelly on an overestimate
    overbets."""
    if not 0.0 <= win_rate <= 1.0:
        raise ValueError(f"win_rate: must be in [0, 1], got {win_rate}")
    if not (0.0 < payoff_ratio < math.inf):
        raise ValueError(
            f"payoff_ratio: must be a positive finite number (average win / average loss), got {payoff_ratio}"
        )
    if not 0.0 < cap <= 1.0:
        raise ValueError(f"cap: must be in (0, 1], got {cap}")
    full = win_rate - (1.0 - win_rate) / payoff_ratio
    return min(max(full, 0.0), cap)


class Exposure(msgspec.Struct, frozen=True, kw_only=True):
    """USD exposure of a set of positions. `by_asset`: signed net USD per asset over all venues (long > 0);
    `by_venue`: gross USD per venue (sum of |position value| there); `gross`: sum of |by_asset|; `net`: sum of
    by_asset."""

    by_asset: dict[str, float]
    by_venue: dict[str, float]
    gross: float
    net: float


def exposure(positions: Mapping[tuple[str, str], Decimal | float], prices_usd: Mapping[str, float]) -> Exposure:
    """Positions ((venue, asset) -> amount, short < 0) valued at `prices_usd` (asset -> USD price). An asset held
    without a price is an error naming it: unknown is never worth zero. Leave cash out of `positions` if it is not
    to count as exposure."""
    keys = list(positions)
    missing = sorted({asset for _, asset in keys if asset not in prices_usd})
    if missing:
        raise ValueError(f"prices_usd: no USD price for {', '.join(missing)}")
    venues = sorted({v for v, _ in keys})
    assets = sorted({a for _, a in keys})
    v_index = {v: i for i, v in enumerate(venues)}
    a_index = {a: i for i, a in enumerate(assets)}
    amounts = np.array([float(positions[k]) for k in keys], dtype=np.float64)
    prices = np.array([float(prices_usd[a]) for _, a in keys], dtype=np.float64)
    if not (np.isfinite(amounts).all() and np.isfinite(prices).all() and (prices >= 0).all()):
        raise ValueError("positions/prices_usd: amounts must be finite and prices finite and non-negative")
    values = amounts * prices
    v_idx = np.array([v_index[v] for v, _ in keys], dtype=np.int64)
    a_idx = np.array([a_index[a] for _, a in keys], dtype=np.int64)
    by_asset = np.bincount(a_idx, weights=values, minlength=len(assets)) if keys else np.zeros(0)
    by_venue = np.bincount(v_idx, weights=np.abs(values), minlength=len(venues)) if keys else np.zeros(0)
    return Exposure(
        by_asset={a: float(by_asset[i]) for i, a in enumerate(assets)},
        by_venue={v: float(by_venue[i]) for i, v in enumerate(venues)},
        gross=float(np.abs(by_asset).sum()),
        net=float(by_asset.sum()),
    )
