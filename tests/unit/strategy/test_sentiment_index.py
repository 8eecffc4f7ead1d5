"""sentiment_index: exact decay, weights, lookback and causality, and agreement with a direct double loop."""

from __future__ import annotations

import time

import numpy as np
import pytest

from arb.strategy.sentiment import NewsItem, sentiment_index
from arb.strategy.sentiment import index as index_module

T0 = 1_700_000_000 * 10**9
HOUR = 3_600 * 10**9
WEIGHTS = {"wire": 1.0, "heavy": 2.0, "muted": 0.0}


def item(ts_ns: int, score: float, source: str = "wire", assets: tuple[str, ...] = ("BTC",)) -> NewsItem:
    return NewsItem(ts_ns=ts_ns, source=source, title="headline", assets=assets, score=score)


def index(items: list[NewsItem], times: list[int] | np.ndarray, *, lookback: float = 72.0) -> np.ndarray:
    return sentiment_index(
        items, "BTC", np.asarray(times, dtype=np.int64), half_life_hours=6.0, lookback_hours=lookback, weights=WEIGHTS
    )


def test_an_item_one_half_life_old_counts_half() -> None:
    s = index([item(T0, 0.8)], [T0, T0 + 6 * HOUR, T0 + 12 * HOUR])

    assert s.tolist() == [0.8, 0.4, 0.2]


def test_a_fresh_item_and_one_a_half_life_old_give_their_decay_weighted_mean() -> None:
    # raw = 1·1·0.8 + 1·0.5·(−0.4) = 0.6; evidence = 1 + 0.5 = 1.5 > 1, so S = 0.6 / 1.5 = 0.4
    s = index([item(T0 - 6 * HOUR, -0.4), item(T0, 0.8)], [T0])

    assert s[0] == pytest.approx(0.4, abs=1e-15)


def test_source_weights_scale_each_items_say() -> None:
    # raw = 2·0.9 + 1·(−0.3) + 0·(−1) = 1.5; evidence = 2 + 1 + 0 = 3; S = 0.5
    items = [item(T0, 0.9, "heavy"), item(T0, -0.3, "wire"), item(T0, -1.0, "muted")]

    assert index(items, [T0])[0] == pytest.approx(0.5, abs=1e-15)


def test_a_zero_weight_source_alone_gives_zero() -> None:
    assert index([item(T0, -1.0, "muted")], [T0]).tolist() == [0.0]


def test_a_heavy_source_alone_still_reads_its_own_score() -> None:
    # raw = 2·0.6 = 1.2, evidence = 2: S = 0.6 (weight is relative, it does not inflate one headline)
    assert index([item(T0, 0.6, "heavy")], [T0])[0] == pytest.approx(0.6, abs=1e-15)


def test_the_lookback_cuts_off_exactly_at_its_edge() -> None:
    s = index([item(T0, 0.8)], [T0 + 12 * HOUR, T0 + 12 * HOUR + 1], lookback=12.0)

    assert s.tolist() == [0.2, 0.0]  # age 12 h = 2 half-lives: 0.8 / 4; one ns later it no longer counts


def test_an_item_one_nanosecond_after_t_does_not_count_at_t() -> None:
    s = index([item(T0 + 1, 0.8)], [T0, T0 + 1])

    assert s.tolist() == [0.0, 0.8]


def test_perturbing_items_after_t_leaves_s_at_and_before_t_unchanged() -> None:
    rng = np.random.default_rng(8)
    times = T0 + np.arange(500, dtype=np.int64) * HOUR
    stamps = T0 + rng.integers(-100 * HOUR, 500 * HOUR, size=800)
    items = [item(int(ts), float(sc)) for ts, sc in zip(stamps, rng.uniform(-1, 1, size=800), strict=True)]
    cut = times[250]
    later = [x for x in items if x.ts_ns > cut]
    perturbed = (
        [x for x in items if x.ts_ns <= cut]
        + [item(x.ts_ns, -x.score if x.score is not None else 0.0) for x in later[::2]]
        + [item(int(cut) + 1, 1.0, "heavy"), item(int(times[-1]), -1.0)]
    )

    before, after = index(items, times), index(perturbed, times)

    assert np.array_equal(before[:251], after[:251])
    assert not np.array_equal(before[251:], after[251:])


def test_items_of_other_assets_do_not_count() -> None:
    items = [item(T0, 0.8, assets=("ETH",)), item(T0, -0.4, assets=("BTC", "ETH"))]

    assert index(items, [T0]).tolist() == [-0.4]


def test_times_may_be_unsorted_or_datetime64() -> None:
    items = [item(T0, 0.8)]
    stamps = np.array([T0 + 12 * HOUR, T0, T0 + 6 * HOUR], dtype=np.int64)

    assert index(items, stamps).tolist() == [0.2, 0.8, 0.4]
    as_datetimes = stamps.astype("datetime64[ns]")
    assert sentiment_index(
        items, "BTC", as_datetimes, half_life_hours=6, lookback_hours=72, weights=WEIGHTS
    ).tolist() == [0.2, 0.8, 0.4]


@pytest.mark.parametrize("pairs_per_chunk", [2_000_000, 7])  # one chunk, and many (a time's window never split)
def test_matches_a_direct_double_loop_on_random_news(monkeypatch: pytest.MonkeyPatch, pairs_per_chunk: int) -> None:
    monkeypatch.setattr(index_module, "_PAIRS_PER_CHUNK", pairs_per_chunk)
    rng = np.random.default_rng(1)
    times = T0 + rng.integers(0, 300 * HOUR, size=200)
    sources = ["wire", "heavy", "muted"]
    items = [
        item(int(T0 + rng.integers(-80 * HOUR, 300 * HOUR)), float(rng.uniform(-1, 1)), sources[int(rng.integers(3))])
        for _ in range(400)
    ]
    expected = []
    for t in times:
        raw = evidence = 0.0
        for x in items:
            if t - 30 * HOUR <= x.ts_ns <= t:
                decay = WEIGHTS[x.source] * 0.5 ** ((t - x.ts_ns) / (6 * HOUR))
                raw += decay * (x.score or 0.0)
                evidence += decay
        expected.append(raw / max(evidence, 1.0))

    s = index(items, times, lookback=30.0)

    np.testing.assert_allclose(s, expected, rtol=1e-12, atol=1e-14)
    assert np.all(np.abs(s) <= 1.0)


def test_five_thousand_hourly_times_over_three_thousand_items_is_fast() -> None:
    rng = np.random.default_rng(5)
    times = T0 + np.arange(5_000, dtype=np.int64) * HOUR
    stamps = T0 + rng.integers(-72 * HOUR, 5_000 * HOUR, size=3_000)
    items = [item(int(ts), float(sc)) for ts, sc in zip(stamps, rng.uniform(-1, 1, size=3_000), strict=True)]

    start = time.perf_counter()
    s = index(items, times)
    elapsed = time.perf_counter() - start

    print(f"sentiment_index 5000 times x 3000 items: {elapsed * 1e3:.1f} ms")
    assert s.shape == (5_000,)
    assert elapsed < 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"asset": "BTC/USDT"}, "not an upper-case base currency"),
        ({"half_life_hours": 0.0}, "half_life_hours must be a positive"),
        ({"lookback_hours": float("nan")}, "lookback_hours must be a positive"),
        ({"weights": {"heavy": 1.0}}, "source 'wire' has no weight"),
        ({"weights": {"wire": -1.0}}, "weights must be finite and ≥ 0"),
        ({"times_ns": np.zeros((2, 2), dtype=np.int64)}, "one-dimensional"),
        ({"times_ns": np.array([1.5])}, "integer nanoseconds or datetime64"),
    ],
)
def test_bad_arguments_are_refused_naming_the_problem(kwargs: dict[str, object], message: str) -> None:
    call: dict[str, object] = {
        "items": [item(T0, 0.5)],
        "asset": "BTC",
        "times_ns": np.array([T0]),
        "half_life_hours": 6.0,
        "lookback_hours": 72.0,
        "weights": WEIGHTS,
    }
    call.update(kwargs)

    with pytest.raises(ValueError, match=message):
        sentiment_index(**call)  # type: ignore[arg-type]


def test_an_unscored_item_is_an_error_not_a_neutral_reading() -> None:
    unscored = NewsItem(ts_ns=T0, source="wire", title="Bitcoin surges", assets=("BTC",))

    with pytest.raises(ValueError, match="not scored"):
        index([unscored], [T0])


def test_no_items_give_zero() -> None:
    assert index([], [T0, T0 + HOUR]).tolist() == [0.0, 0.0]
