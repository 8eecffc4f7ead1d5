"""Indicators against `ta` and hand arithmetic, the feature matrix's shape and scaling, and the look-ahead test."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import ta

from arb.strategy.candles import clean
from arb.strategy.features import FEATURE_NAMES, INDICATORS, WARMUP_BARS, feature_matrix, indicators

H = pd.Timedelta(hours=1)
T0 = pd.Timestamp("2024-03-01 00:00", tz="UTC")


def flat_bars(closes: list[float] | np.ndarray, volume: list[float] | np.ndarray | None = None) -> pd.DataFrame:
    """Bars with open = high = low = close (what a hand computation wants)."""
    c = np.asarray(closes, dtype=float)
    v = np.ones(len(c)) if volume is None else np.asarray(volume, dtype=float)
    idx = pd.DatetimeIndex([T0 + i * H for i in range(len(c))], name="ts")
    return pd.DataFrame({"open": c, "high": c, "low": c, "close": c, "volume": v}, index=idx)


def random_raw(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    o = np.r_[c[0], c[:-1]]
    idx = pd.DatetimeIndex([T0 + i * H for i in range(n)], name="ts")
    return pd.DataFrame(
        {
            "open": o,
            "high": np.maximum(o, c) * (1 + rng.uniform(0, 0.004, n)),
            "low": np.minimum(o, c) * (1 - rng.uniform(0, 0.004, n)),
            "close": c,
            "volume": rng.lognormal(3, 0.5, n),
        },
        index=idx,
    )


def test_sma_is_the_plain_mean_of_the_last_10_and_50_closes() -> None:
    bars = flat_bars(np.arange(1.0, 61.0))  # closes 1..60

    ind = indicators(bars)

    assert ind["sma_fast"].iloc[:9].isna().all()
    assert ind["sma_fast"].iloc[9] == 5.5  # mean(1..10)
    assert ind["sma_fast"].iloc[59] == 55.5  # mean(51..60)
    assert ind["sma_slow"].iloc[:49].isna().all()
    assert ind["sma_slow"].iloc[49] == 25.5  # mean(1..50)
    assert ind["sma_slow"].iloc[59] == 35.5  # mean(11..60)


def test_rsi_matches_the_hand_computed_exponential_averages() -> None:
    # 12 rises of 1, then a fall of 2. ta's RSI: up/down moves (0 at bar 0) averaged with alpha = 1/14, adjust=False,
    # defined from bar 13: emaup = (1-a)(1 - (1-a)^12), emadown = 2a.
    closes = [100.0 + t for t in range(13)] + [110.0]
    a = 1 / 14
    up, down = (1 - a) * (1 - (1 - a) ** 12), 2 * a

    rsi = indicators(flat_bars(closes))["rsi"]

    assert rsi.iloc[:13].isna().all()
    assert rsi.iloc[13] == pytest.approx(100 - 100 / (1 + up / down), rel=1e-12)
    assert indicators(flat_bars(np.arange(100.0, 120.0)))["rsi"].iloc[-1] == 100.0  # only rises
    assert indicators(flat_bars(np.arange(120.0, 100.0, -1)))["rsi"].iloc[-1] == 0.0  # only falls


def test_volume_z_is_the_24_bar_rolling_z_score() -> None:
    ind = indicators(flat_bars(np.full(30, 100.0), volume=np.arange(1.0, 31.0)))

    assert ind["volume_z"].iloc[:23].isna().all()
    # volumes 1..24: mean 12.5, sample std sqrt(50)
    assert ind["volume_z"].iloc[23] == pytest.approx((24 - 12.5) / math.sqrt(50), rel=1e-12)
    flat = indicators(flat_bars(np.full(30, 100.0), volume=np.zeros(30)))["volume_z"]
    assert flat.isna().all()  # no spread: undefined, not ±inf


def test_indicators_are_exactly_what_ta_computes() -> None:
    bars = clean(random_raw(300, seed=1))
    c, h, lo = bars["close"], bars["high"], bars["low"]
    macd = ta.trend.MACD(c, window_slow=26, window_fast=12, window_sign=9)
    bb = ta.volatility.BollingerBands(c, window=20, window_dev=2)
    expected = {
        "sma_fast": ta.trend.SMAIndicator(c, window=10).sma_indicator(),
        "sma_slow": ta.trend.SMAIndicator(c, window=50).sma_indicator(),
        "ema": ta.trend.EMAIndicator(c, window=20).ema_indicator(),
        "rsi": ta.momentum.RSIIndicator(c, window=14).rsi(),
        "macd": macd.macd(),
        "macd_signal": macd.macd_signal(),
        "macd_diff": macd.macd_diff(),
        "bb_high": bb.bollinger_hband(),
        "bb_low": bb.bollinger_lband(),
        "bb_pct": bb.bollinger_pband(),
    }

    ind = indicators(bars)

    assert tuple(ind.columns) == INDICATORS
    for name, series in expected.items():
        np.testing.assert_array_equal(ind[name].to_numpy(), series.to_numpy(), err_msg=name)
    atr = ta.volatility.AverageTrueRange(h, lo, c, window=14).average_true_range().to_numpy()
    assert np.isnan(ind["atr"].to_numpy()[:13]).all()  # ta says 0 there; it is a warm-up, not a zero range
    np.testing.assert_array_equal(ind["atr"].to_numpy()[13:], atr[13:])


def test_indicators_of_fewer_bars_than_a_window_are_nan_not_an_error() -> None:
    ind = indicators(flat_bars([100.0, 101.0, 102.0]))

    assert len(ind) == 3
    assert ind[["sma_fast", "sma_slow", "atr", "volume_z", "macd"]].isna().all().all()


def test_feature_matrix_shape_scaling_and_warm_up() -> None:
    bars = clean(random_raw(400, seed=2))
    sentiment = np.linspace(-3, 3, 400)

    x = feature_matrix(bars, sentiment)
    ind = indicators(bars)

    assert x.dtype == np.float32
    assert x.shape == (400, len(FEATURE_NAMES))
    assert FEATURE_NAMES[-1] == "sentiment"
    assert not x[:WARMUP_BARS].any()
    assert np.isfinite(x).all()
    assert np.abs(x).max() <= 5.0
    c = bars["close"].to_numpy()
    t = 250
    col = {name: j for j, name in enumerate(FEATURE_NAMES)}
    assert x[t, col["ret_1"]] == np.float32(100 * math.log(c[t] / c[t - 1]))
    assert x[t, col["ret_24"]] == np.float32(100 * math.log(c[t] / c[t - 24]) / math.sqrt(24))
    assert x[t, col["rsi"]] == np.float32((ind["rsi"].iloc[t] - 50) / 50)
    assert x[t, col["atr_pct"]] == np.float32(100 * ind["atr"].iloc[t] / c[t])
    assert x[t, col["sentiment"]] == np.float32(sentiment[t])
    assert x[-1, col["sentiment"]] == 1.0  # 3 clipped to 1
    assert x[WARMUP_BARS, col["sentiment"]] == -1.0  # the first row after the warm-up is live (-2.25 clipped)
    # every feature moves on this data once warm (none is stuck at 0 or at a clip bound)
    assert (x[WARMUP_BARS:].std(axis=0) > 0.01).all()
    assert (np.abs(x[WARMUP_BARS:]) < 5.0).mean() > 0.99


def test_feature_matrix_without_sentiment_has_a_zero_sentiment_column_and_checks_its_length() -> None:
    bars = clean(random_raw(120, seed=3))

    assert not feature_matrix(bars)[:, -1].any()
    with pytest.raises(ValueError, match="one value per bar"):
        feature_matrix(bars, np.zeros(119))


def test_feature_matrix_of_a_flat_market_is_finite_with_no_signal_but_ta_s_rsi() -> None:
    x = feature_matrix(flat_bars(np.full(80, 100.0), volume=np.zeros(80)))

    assert np.isfinite(x).all()
    rsi = FEATURE_NAMES.index("rsi")
    assert not np.delete(x, rsi, axis=1).any()  # zero ATR, zero band width, zero volume spread: 0, not NaN/inf
    assert (x[WARMUP_BARS:, rsi] == 1.0).all()  # ta: no down move ever is RSI 100


def test_look_ahead_nothing_at_or_before_t_depends_on_bars_after_t() -> None:
    """THE look-ahead test: perturb every bar after t (prices and volume by random factors, sentiment too), or cut
    them off; every indicator, every feature row <= t must stay bit-identical, cleaning included."""
    rng = np.random.default_rng(11)
    n = 600
    raw = random_raw(n, seed=4)
    raw.loc[raw.index[300], ["high", "close"]] *= 1.5  # a spike, so clipping is in play
    raw = raw.drop(raw.index[[120, 121, 122, 400]])  # and gaps
    sentiment_of = pd.Series(rng.uniform(-1.2, 1.2, n), index=[T0 + i * H for i in range(n)])
    bars = clean(raw)
    assert bars["clipped"].any()
    assert bars["filled"].any()
    ind = indicators(bars)
    x = feature_matrix(bars, sentiment_of.loc[bars.index].to_numpy())

    for t in (WARMUP_BARS - 1, WARMUP_BARS, 121, 200, 299, 300, 301, 450, n - 2):
        cut = T0 + t * H
        after = raw.index > cut
        k = int(after.sum())
        perturbed = raw.copy()
        perturbed.loc[after, ["open", "high", "low", "close"]] *= np.repeat(rng.uniform(0.3, 3.0, (k, 1)), 4, axis=1)
        perturbed.loc[after, "volume"] *= rng.uniform(0.0, 5.0, k)
        noisy = sentiment_of.copy()
        noisy[noisy.index > cut] = rng.uniform(-5, 5, int((noisy.index > cut).sum()))

        # Cut inside a gap, the truncated data ends at the last real bar: the gap's flat bars only exist once a
        # later bar shows there was one (they carry no price from after t either way).
        for raw_variant, sent in ((perturbed, noisy), (raw[~after], sentiment_of)):
            b = clean(raw_variant)
            i2 = indicators(b)
            x2 = feature_matrix(b, sent.loc[b.index].to_numpy())
            rows = int((b.index <= cut).sum())
            last_real = raw.index[~after][-1]
            assert rows == (t + 1 if raw_variant is perturbed else len(bars.loc[:last_real]))
            pd.testing.assert_frame_equal(b.iloc[:rows], bars.iloc[:rows], check_exact=True)
            pd.testing.assert_frame_equal(i2.iloc[:rows], ind.iloc[:rows], check_exact=True)
            assert np.array_equal(x2[:rows], x[:rows]), f"feature rows <= {t} changed"
