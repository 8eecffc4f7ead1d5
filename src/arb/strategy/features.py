"""Technical indicators of bars (`arb.strategy.candles`) and the agent's feature matrix.

Indicators come from the `ta` library (SMA, EMA, MACD, RSI, Bollinger Bands, ATR), not hand-rolled, so they are the
textbook definitions a user can check against any charting tool. The volume z-score is the one exception: it is a
plain rolling (v − mean) / std over `VOLUME_WINDOW` bars, which `ta` does not have.

Everything is causal: every indicator at bar t is computed from bars 0..t only (trailing rolling windows, forward
exponential averages, Wilder's ATR recursion), so truncating or changing the bars after t leaves row t bit-identical
(the look-ahead test checks exactly that). During an indicator's warm-up it is NaN.

The feature matrix is what the RL agent observes: stationary, scale-free numbers of similar size, so that one model
can trade assets at any price and volatility. Returns are in percent, per square root of their horizon (so 1, 4 and
24 bar returns have similar spread); distances between price and its moving averages are in ATRs divided by
√(window / 3), about the spread of a random walk's distance from its own trailing mean of that window, so on
ordinary data they stay within ±5; RSI and %B are centred on 0. Every feature is clipped to [−5, 5], float32, a
missing value (warm-up, a zero ATR) is 0, and the first `WARMUP_BARS` rows are all 0 so the agent never sees a
half-warmed row as information.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import pandas as pd
from ta.momentum import RSIIndicator
from ta.trend import MACD, EMAIndicator, SMAIndicator
from ta.volatility import AverageTrueRange, BollingerBands

SMA_FAST: Final = 10
SMA_SLOW: Final = 50
EMA_WINDOW: Final = 20
RSI_WINDOW: Final = 14
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
BB_WINDOW: Final = 20
BB_DEV: Final = 2
ATR_WINDOW: Final = 14
VOLUME_WINDOW: Final = 24
CLIP: Final = 5.0

INDICATORS: Final = (
    "sma_fast", "sma_slow", "ema", "rsi", "macd", "macd_signal", "macd_diff",
    "bb_high", "bb_low", "bb_pct", "atr", "volume_z",
)  # fmt: skip
FEATURE_NAMES: Final[tuple[str, ...]] = (
    "ret_1",  # 100·ln(c_t / c_t−1)
    "ret_4",  # 100·ln(c_t / c_t−4) / √4
    "ret_24",  # 100·ln(c_t / c_t−24) / √24
    "rsi",  # (rsi − 50) / 50
    "macd_diff",  # MACD histogram / ATR
    "bb_pct",  # %B − 0.5
    "atr_pct",  # 100·ATR / close
    "volume_z",  # volume z-score / 4
    "sma_cross",  # (sma_fast − sma_slow) / ATR / √(50 / 3)
    "close_sma_slow",  # (close − sma_slow) / ATR / √(50 / 3)
    "close_ema",  # (close − ema) / ATR / √(20 / 3)
    "sentiment",  # S(t), clipped to [−1, 1]
)
WARMUP_BARS: Final = SMA_SLOW
"""Rows before this have at least one indicator still warming up (the slow SMA is the longest: 50 bars, first
defined at row 49); `feature_matrix` zeroes them all."""


def indicators(bars: pd.DataFrame) -> pd.DataFrame:
    """The `INDICATORS` columns for every bar (same index as `bars`), NaN while warming up; causal."""
    missing = [c for c in ("high", "low", "close", "volume") if c not in bars.columns]
    if missing:
        raise ValueError(f"bars are missing the column(s) {', '.join(missing)}")
    close = bars["close"].astype(np.float64)
    high = bars["high"].astype(np.float64)
    low = bars["low"].astype(np.float64)
    volume = bars["volume"].astype(np.float64)
    macd = MACD(close, window_slow=MACD_SLOW, window_fast=MACD_FAST, window_sign=MACD_SIGNAL)
    bb = BollingerBands(close, window=BB_WINDOW, window_dev=BB_DEV)
    mean = volume.rolling(VOLUME_WINDOW, min_periods=VOLUME_WINDOW).mean()
    std = volume.rolling(VOLUME_WINDOW, min_periods=VOLUME_WINDOW).std()
    out = {
        "sma_fast": SMAIndicator(close, window=SMA_FAST).sma_indicator(),
        "sma_slow": SMAIndicator(close, window=SMA_SLOW).sma_indicator(),
        "ema": EMAIndicator(close, window=EMA_WINDOW).ema_indicator(),
        "rsi": RSIIndicator(close, window=RSI_WINDOW).rsi(),
        "macd": macd.macd(),
        "macd_signal": macd.macd_signal(),
        "macd_diff": macd.macd_diff(),
        "bb_high": bb.bollinger_hband(),
        "bb_low": bb.bollinger_lband(),
        "bb_pct": _finite(bb.bollinger_pband()),  # a flat window has no band: NaN, not ±inf
        "atr": _atr(high, low, close),
        "volume_z": (volume - mean) / std.where(std > 0),
    }
    return pd.DataFrame({k: np.asarray(out[k], dtype=np.float64) for k in INDICATORS}, index=bars.index)


def _atr(high: pd.Series, low: pd.Series, close: pd.Series) -> np.ndarray:
    """`ta`'s Wilder ATR, NaN (not `ta`'s 0) before its first value; `ta` cannot take fewer bars than the window."""
    atr = np.full(len(close), np.nan)
    if len(close) >= ATR_WINDOW:
        atr[ATR_WINDOW - 1 :] = (
            AverageTrueRange(high, low, close, window=ATR_WINDOW).average_true_range().to_numpy()[ATR_WINDOW - 1 :]
        )
    return atr


def _finite(series: pd.Series) -> np.ndarray:
    x: np.ndarray = np.array(series, dtype=np.float64)
    x[~np.isfinite(x)] = np.nan
    return x


def feature_matrix(
    bars: pd.DataFrame, sentiment: np.ndarray | None = None, *, ind: pd.DataFrame | None = None
) -> np.ndarray:
    """float32 array (len(bars), len(FEATURE_NAMES)), columns in `FEATURE_NAMES` order (module docstring).

    `sentiment`: S(t) per bar (`arb.strategy.sentiment.sentiment_index` at the bar times), or None for neutral.
    `ind`: `indicators(bars)` when the caller has it already (it is most of the cost: ~4 ms per 1,000 bars)."""
    n = len(bars)
    if sentiment is not None and np.shape(sentiment) != (n,):
        raise ValueError(f"sentiment must have one value per bar: shape {np.shape(sentiment)}, {n} bars")
    if ind is None:
        ind = indicators(bars)
    elif len(ind) != n:
        raise ValueError(f"ind has {len(ind)} rows for {n} bars")
    close = bars["close"].to_numpy(dtype=np.float64)
    atr = ind["atr"].to_numpy()
    log_close = np.log(close)
    cols = np.full((n, len(FEATURE_NAMES)), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        for j, lag in enumerate((1, 4, 24)):
            if n > lag:
                cols[lag:, j] = (log_close[lag:] - log_close[:-lag]) * (100.0 / math.sqrt(lag))
        cols[:, 3] = (ind["rsi"].to_numpy() - 50.0) / 50.0
        cols[:, 4] = ind["macd_diff"].to_numpy() / atr
        cols[:, 5] = ind["bb_pct"].to_numpy() - 0.5
        cols[:, 6] = 100.0 * atr / close
        cols[:, 7] = ind["volume_z"].to_numpy() / 4.0
        slow_atr = atr * math.sqrt(SMA_SLOW / 3)
        cols[:, 8] = (ind["sma_fast"].to_numpy() - ind["sma_slow"].to_numpy()) / slow_atr
        cols[:, 9] = (close - ind["sma_slow"].to_numpy()) / slow_atr
        cols[:, 10] = (close - ind["ema"].to_numpy()) / (atr * math.sqrt(EMA_WINDOW / 3))
    cols[:, 11] = 0.0 if sentiment is None else np.clip(np.asarray(sentiment, dtype=np.float64), -1.0, 1.0)
    cols[~np.isfinite(cols)] = 0.0
    np.clip(cols, -CLIP, CLIP, out=cols)
    cols[: min(WARMUP_BARS, n)] = 0.0
    return cols.astype(np.float32)
