"""Cleaning rules, loading OHLCV files of any shape, the store's file names, and the paging guards of the fetcher."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt_async
import numpy as np
import pandas as pd
import pytest

from arb.config import load_settings
from arb.strategy.candles import (
    MAD_TO_SIGMA,
    CandleStore,
    clean,
    default_assets,
    fetch_ohlcv_range,
    load_bars,
    venue_symbols,
)

H = pd.Timedelta(hours=1)
T0 = pd.Timestamp("2024-03-01 00:00", tz="UTC")


def raw_bars(closes: list[float], *, start: pd.Timestamp = T0, wick: float = 0.0) -> pd.DataFrame:
    """Bars opening at the previous close (the first at its own close), high/low `wick` beyond the body."""
    c = np.asarray(closes, dtype=float)
    o = np.r_[c[0], c[:-1]]
    idx = pd.DatetimeIndex([start + i * H for i in range(len(c))], name="ts")
    return pd.DataFrame(
        {
            "open": o,
            "high": np.maximum(o, c) * (1 + wick),
            "low": np.minimum(o, c) * (1 - wick),
            "close": c,
            "volume": np.arange(1.0, len(c) + 1),
        },
        index=idx,
    )


# --- clean ----------------------------------------------------------------------------------------------------------


def test_clean_fills_a_gap_with_flat_flagged_bars_at_the_previous_close() -> None:
    raw = raw_bars([100.0, 101.0, 103.0, 104.0, 105.0]).drop([T0 + H * 1, T0 + H * 2])  # 00:00, then 03:00, 04:00

    bars = clean(raw)

    assert list(bars.index) == [T0 + i * H for i in range(5)]
    assert bars["filled"].tolist() == [False, True, True, False, False]
    assert bars["clipped"].tolist() == [False] * 5
    for t in (T0 + H, T0 + 2 * H):
        assert bars.loc[t, ["open", "high", "low", "close", "volume"]].tolist() == [100.0, 100.0, 100.0, 100.0, 0.0]
    assert bars.loc[T0 + 3 * H, "close"] == 104.0
    assert str(bars.index.dtype) == "datetime64[ns, UTC]"
    assert bars.index.name == "ts"
    assert bars.dtypes.astype(str).tolist() == ["float64"] * 5 + ["bool", "bool"]


def test_clean_sorts_and_the_last_row_for_a_time_wins() -> None:
    raw = raw_bars([100.0, 101.0, 102.0])
    again = raw.iloc[[1]].assign(close=101.5, high=101.5)  # the same hour fetched again, later, corrected
    shuffled = pd.concat([raw.iloc[[2, 1]], again, raw.iloc[[0]]])

    bars = clean(shuffled)

    assert list(bars.index) == [T0, T0 + H, T0 + 2 * H]
    assert bars["close"].tolist() == [100.0, 101.5, 102.0]


def test_clean_reads_naive_times_as_utc_and_converts_other_zones() -> None:
    naive = raw_bars([100.0, 101.0])
    naive.index = naive.index.tz_localize(None)
    tokyo = raw_bars([100.0, 101.0])
    tokyo.index = tokyo.index.tz_convert("Asia/Tokyo")

    assert list(clean(naive).index) == [T0, T0 + H]
    assert list(clean(tokyo).index) == [T0, T0 + H]


def test_a_bar_whose_high_is_below_its_close_is_an_error_naming_its_time() -> None:
    raw = raw_bars([100.0, 101.0, 102.0])
    raw.loc[T0 + 2 * H, "high"] = 101.5  # close is 102

    with pytest.raises(ValueError, match=r"bar 2024-03-01T02:00:00\+00:00: high is below max\(open, close\)"):
        clean(raw)


def test_a_bar_whose_low_is_above_its_open_is_an_error_naming_its_time() -> None:
    raw = raw_bars([100.0, 101.0, 102.0])
    raw.loc[T0 + H, "low"] = 100.5  # open is 100

    with pytest.raises(ValueError, match=r"bar 2024-03-01T01:00:00\+00:00: low is above min\(open, close\)"):
        clean(raw)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("close", math.nan, "close = nan is not a finite price"),
        ("open", -1.0, "open = -1.0 is not a finite price"),
        ("low", 0.0, "low = 0.0 is not a finite price"),
        ("volume", -5.0, "volume = -5.0 is not a finite volume"),
        ("volume", math.inf, "volume = inf is not a finite volume"),
    ],
)
def test_a_bad_value_is_an_error_naming_the_time_and_column(column: str, value: float, message: str) -> None:
    raw = raw_bars([100.0, 101.0, 102.0])
    raw.loc[T0 + H, column] = value

    with pytest.raises(ValueError, match=rf"bar 2024-03-01T01:00:00\+00:00: {message}"):
        clean(raw)


def test_times_that_are_not_whole_hours_are_an_error() -> None:
    raw = raw_bars([100.0, 101.0])
    raw.index = raw.index + pd.Timedelta(minutes=30)

    with pytest.raises(ValueError, match=r"bar 2024-03-01T00:30:00\+00:00: time is not a whole hour"):
        clean(raw)


def test_daily_bars_are_refused_rather_than_filled_into_hours() -> None:
    raw = raw_bars([100.0, 101.0, 102.0])
    raw.index = pd.DatetimeIndex([T0, T0 + pd.Timedelta(days=1), T0 + pd.Timedelta(days=2)], name="ts")

    with pytest.raises(ValueError, match="bars are not hourly: the closest two are 1 days"):
        clean(raw)


def alternating(n: int, step: float = 0.01, start: float = 100.0) -> list[float]:
    """Closes whose log returns alternate +step, -step: every |return| is `step`, so the robust sigma is exact."""
    return [start * math.exp(step * (i % 2)) for i in range(n)]


def test_a_spike_is_clipped_to_spike_sigma_robust_sigmas_of_the_previous_close() -> None:
    closes = alternating(31)  # bars 0..30, |log return| = 0.01 each
    base = closes[30]
    closes += [base * math.exp(0.5), base * math.exp(0.01), base]  # bar 31 spikes, 32 comes back, 33 normal
    raw = raw_bars(closes)

    bars = clean(raw, spike_sigma=10.0)

    band = 10.0 * MAD_TO_SIGMA * 0.01  # median |r| over the bars before each of 31..33 is 0.01 (one spike is no median)
    spike = bars.iloc[31]
    assert spike["clipped"]
    assert spike["close"] == pytest.approx(base * math.exp(band), rel=1e-12)
    assert spike["high"] == pytest.approx(base * math.exp(band), rel=1e-12)
    assert (spike["open"], spike["low"]) == (base, base)  # inside the band: untouched
    # Bar 32 opened at the raw spike close: its open/high are pulled into the band around the clipped close.
    after = bars.iloc[32]
    assert after["clipped"]
    assert after["open"] == pytest.approx(base * math.exp(2 * band), rel=1e-12)
    assert after["high"] == pytest.approx(base * math.exp(2 * band), rel=1e-12)
    assert (after["low"], after["close"]) == (base * math.exp(0.01), base * math.exp(0.01))
    normal = bars.iloc[33]
    assert not normal["clipped"]
    assert normal[["open", "close"]].tolist() == [base * math.exp(0.01), base]
    assert bars["clipped"].sum() == 2
    assert bars["volume"].tolist() == raw["volume"].tolist()


def test_a_move_inside_the_band_is_left_alone() -> None:
    closes = alternating(31)
    closes.append(closes[-1] * math.exp(0.14))  # band is 0.14826

    bars = clean(raw_bars(closes))

    assert not bars["clipped"].any()
    assert bars["close"].iloc[-1] == closes[-1]


def test_no_spike_is_clipped_before_the_rule_has_24_returns_of_history() -> None:
    closes = alternating(20)
    closes.append(closes[-1] * math.exp(1.0))

    bars = clean(raw_bars(closes))

    assert not bars["clipped"].any()


def test_filled_bars_do_not_count_in_the_robust_sigma() -> None:
    # 30 real bars, a 100-hour gap, then a jump: had the gap's 100 zero returns counted, the median |r| would be 0 and
    # nothing could be judged a spike; without them the band is the real bars' 0.01 median.
    closes = alternating(30)
    last = closes[-1]
    jump = raw_bars([last * math.exp(0.2)], start=T0 + 130 * H)
    jump.iloc[0, jump.columns.get_loc("open")] = jump.iloc[0, jump.columns.get_loc("low")] = last

    bars = clean(pd.concat([raw_bars(closes), jump]))

    assert bars["filled"].sum() == 100
    assert bars["clipped"].tolist() == [False] * 130 + [True]
    assert bars["close"].iloc[130] == pytest.approx(last * math.exp(10 * MAD_TO_SIGMA * 0.01), rel=1e-12)


def test_spike_sigma_must_be_above_one() -> None:
    with pytest.raises(ValueError, match="spike_sigma"):
        clean(raw_bars([100.0, 101.0]), spike_sigma=1.0)


def test_clean_is_causal_a_cleaned_prefix_ignores_everything_after_it() -> None:
    rng = np.random.default_rng(3)
    closes = (100 * np.exp(np.cumsum(rng.normal(0, 0.01, 400)))).tolist()
    closes[200] *= 1.8  # a spike, so clipping is part of what must not change
    raw = raw_bars(closes, wick=0.002).drop([T0 + 50 * H, T0 + 51 * H, T0 + 300 * H])
    full = clean(raw)
    assert full["clipped"].any()
    assert full["filled"].sum() == 3

    for t in (60, 199, 200, 201, 320):
        cut = T0 + t * H
        later = raw.index > cut
        perturbed = raw.copy()
        factors = np.repeat(rng.uniform(0.5, 2.0, (int(later.sum()), 1)), 4, axis=1)
        perturbed.loc[later, ["open", "high", "low", "close"]] *= factors
        pd.testing.assert_frame_equal(clean(raw[~later]), full.loc[:cut])
        pd.testing.assert_frame_equal(clean(perturbed).loc[:cut], full.loc[:cut])


# --- load_bars ------------------------------------------------------------------------------------------------------


def test_load_bars_reads_an_fx_style_csv_without_volume(tmp_path: Path) -> None:
    path = tmp_path / "eurusd.csv"
    path.write_text(
        "Date,Open,High,Low,Close\n"
        "2024-03-01 00:00:00,1.0800,1.0812,1.0795,1.0810\n"
        "2024-03-01 01:00:00,1.0810,1.0815,1.0801,1.0805\n"
        "2024-03-01 03:00:00,1.0805,1.0830,1.0800,1.0825\n"
    )

    bars = load_bars(path)

    assert list(bars.index) == [T0, T0 + H, T0 + 2 * H, T0 + 3 * H]
    assert bars["close"].tolist() == [1.0810, 1.0805, 1.0805, 1.0825]
    assert bars["volume"].tolist() == [0.0] * 4
    assert bars["filled"].tolist() == [False, False, True, False]


def test_load_bars_reads_parquet_with_a_datetime_index_and_shouting_columns(tmp_path: Path) -> None:
    frame = raw_bars([100.0, 101.0, 102.0]).rename(columns=str.upper)
    frame.index = frame.index.tz_localize(None).rename("when")  # naive: UTC
    path = tmp_path / "btc.parquet"
    frame.to_parquet(path)

    bars = load_bars(path)

    assert list(bars.index) == [T0, T0 + H, T0 + 2 * H]
    assert bars["close"].tolist() == [100.0, 101.0, 102.0]
    assert bars["volume"].tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize(("scale", "column"), [(1, "timestamp"), (1_000, "open_time"), (1_000_000_000, "ts")])
def test_load_bars_reads_epoch_seconds_milliseconds_and_nanoseconds(tmp_path: Path, scale: int, column: str) -> None:
    t0 = int(T0.timestamp())
    rows = [(t0 + 3600 * i) * scale for i in range(3)]
    path = tmp_path / "bars.csv"
    path.write_text(
        f"{column},open,high,low,close,volume\n" + "".join(f"{t},10,11,9,10.5,{i}\n" for i, t in enumerate(rows))
    )

    bars = load_bars(path)

    assert list(bars.index) == [T0, T0 + H, T0 + 2 * H]
    assert bars["volume"].tolist() == [0.0, 1.0, 2.0]


def test_load_bars_joins_metatrader_date_and_time_columns_and_converts_offsets(tmp_path: Path) -> None:
    mt = tmp_path / "mt.csv"
    mt.write_text("Date,Time,Open,High,Low,Close,Volume\n2024.03.01,00:00,1,2,1,2,5\n2024.03.01,01:00,2,3,2,3,6\n")
    iso = tmp_path / "iso.csv"
    iso.write_text(
        "datetime,open,high,low,close\n2024-03-01T02:00:00+02:00,1,2,1,2\n2024-03-01T03:00:00+02:00,2,3,2,3\n"
    )

    assert list(load_bars(mt).index) == [T0, T0 + H]
    assert list(load_bars(iso).index) == [T0, T0 + H]


def test_load_bars_refuses_a_file_type_it_does_not_read(tmp_path: Path) -> None:
    path = tmp_path / "bars.json"
    path.write_text("[]")

    with pytest.raises(ValueError, match=r"unsupported file type '\.json'"):
        load_bars(path)


def test_load_bars_names_the_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("time,open,high,close\n2024-03-01 00:00,1,2,1.5\n")

    with pytest.raises(ValueError, match=r"bars\.csv: missing column\(s\) low"):
        load_bars(path)


def test_load_bars_without_any_time_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("open,high,low,close\n1,2,1,2\n")

    with pytest.raises(ValueError, match="no bar time"):
        load_bars(path)


def test_load_bars_names_the_file_of_a_bad_row(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("ts,open,high,low,close\n2024-03-01 00:00,1,0.5,1,1\n")

    with pytest.raises(ValueError, match=r"bad\.csv: bar 2024-03-01T00:00:00\+00:00: high is below"):
        load_bars(path)


# --- the store and the assets ---------------------------------------------------------------------------------------


def test_store_paths_are_safe_file_names_that_map_back_to_one_instrument(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)

    assert store.path("binance", "BTC/USD") == tmp_path / "binance" / "BTC%2FUSD.parquet"
    assert store.path("binance", "BTC/USD-PERP") != store.path("binance", "BTC-USD/PERP")
    assert store.path("..", "x").parent.parent == tmp_path  # never outside the root
    assert store.read("binance", "BTC/USD") is None
    with pytest.raises(ValueError, match="instrument must not be empty"):
        store.path("binance", "")


def test_default_assets_are_the_100_largest_crypto_spot_instruments_one_per_base() -> None:
    settings = load_settings(None)

    assets = default_assets(settings)

    assert len(assets) == 100
    assert assets[:3] == ["BTC/USD", "ETH/USD", "XRP/USD"]
    assert "HYPE/USD" not in assets  # not on the candle venue (binance)
    bases = [settings.instruments[a].base for a in assets]
    assert len(set(bases)) == 100
    assert all(settings.instruments[a].type == "spot" for a in assets)


def test_an_unknown_asset_or_one_the_venue_does_not_list_is_an_error_naming_it() -> None:
    settings = load_settings(None)

    assert venue_symbols(settings, ["BTC/USD"]) == {"BTC/USD": "BTC/USDT"}
    with pytest.raises(ValueError, match=r"'NOPE/USD' is not a configured instrument.*'HYPE/USD' is not listed on"):
        venue_symbols(settings, ["NOPE/USD", "HYPE/USD"])


# --- fetch guards (the paging itself runs against the local Binance venue: tests/integration/strategy) ------------


async def test_fetching_with_the_rate_limiter_off_is_refused_before_any_request() -> None:
    exchange = ccxt_async.binance({"enableRateLimit": False})
    try:
        with pytest.raises(ValueError, match="enableRateLimit"):
            await fetch_ohlcv_range(exchange, "BTC/USDT", 0, 3_600_000)
    finally:
        await exchange.close()


class _IgnoresSince:
    """A venue that answers every klines request with its latest candles whatever `since` says (some do). The local
    Binance venue honours `since`, so this one case needs a stand-in; the paging loop is what is under test."""

    enableRateLimit = True
    id = "ignores-since"

    def __init__(self, latest: list[list[float]]) -> None:
        self.latest = latest
        self.calls = 0

    def parse_timeframe(self, timeframe: str) -> int:
        return 3600

    async def fetch_ohlcv(self, symbol: str, timeframe: str, since: int, limit: int) -> list[list[float]]:
        self.calls += 1
        return self.latest


async def test_a_page_that_brings_nothing_new_ends_the_fetch_instead_of_looping() -> None:
    step = 3_600_000
    venue: Any = _IgnoresSince([[10 * step + i * step, 1, 1, 1, 1, 1] for i in range(5)])
    seen: list[tuple[int, int]] = []

    rows = await fetch_ohlcv_range(venue, "X/USDT", 0, 100 * step, limit=5, on_page=lambda a, b: seen.append((a, b)))

    assert [r[0] for r in rows] == [10 * step + i * step for i in range(5)]
    assert venue.calls == 2  # the second page repeats the first: stop
    assert seen == [(5, 100)]
