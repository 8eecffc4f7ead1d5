"""The sentiment index S(t) of one asset: decayed, source-weighted headline scores, strictly causal.

    raw(t)      = Σ_i w_i · 0.5^((t − t_i)/h) · s_i        over items of the asset with t − L ≤ t_i ≤ t
    evidence(t) = Σ_i w_i · 0.5^((t − t_i)/h)
    S(t)        = raw(t) / max(evidence(t), 1)

w_i is the weight of the item's source (`strategy.sentiment.sources[].weight`), s_i its score in [-1, 1], h the
half-life and L the lookback. Why this normalisation and not a plain weighted mean or tanh:
- |raw| ≤ evidence, so S stays in [-1, 1] whatever the news volume (the RL observation and the blender expect that);
- with at most one fresh unit-weight item's worth of evidence, S is the decayed sum itself: one headline scored 0.8
  gives 0.8 now, 0.4 one half-life later, fading to 0 as it ages. A weighted mean would keep a lone stale headline at
  full strength until it fell out of the lookback and then jump to 0;
- once there is more evidence than that, S is the weighted mean score: fifty mildly positive headlines do not make
  an extreme reading, and a heavier source moves S more than a lighter one.

Causality: an item counts at t only if t_i ≤ t, so S at or before t does not depend on anything published after t.
Vectorised: items are sorted once and each time's window is found with `searchsorted`; the (time, item) pairs inside
the windows are expanded in chunks, so memory stays bounded however dense the news is.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

import numpy as np
import numpy.typing as npt

from arb.strategy.sentiment.items import NewsItem

_HOUR_NS = 3_600_000_000_000
_PAIRS_PER_CHUNK = 2_000_000
_TICKER = re.compile(r"^[A-Z0-9]{1,15}$")


def sentiment_index(
    items: Iterable[NewsItem],
    asset: str,
    times_ns: npt.ArrayLike,
    *,
    half_life_hours: float,
    lookback_hours: float,
    weights: Mapping[str, float],
) -> npt.NDArray[np.float64]:
    """S(t) for each of `times_ns` (UTC ns, int64 or datetime64; any order), in [-1, 1]; 0 where no item counts.

    Items must be scored (`Scorer.score_items`); an unscored item of the asset, a score outside [-1, 1], or a source
    missing from `weights` raises ValueError naming it rather than being silently counted as neutral.
    """
    if not _TICKER.match(asset):
        raise ValueError(f"asset {asset!r} is not an upper-case base currency like 'BTC' (not a symbol like BTC/USDT)")
    for name, value in (("half_life_hours", half_life_hours), ("lookback_hours", lookback_hours)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    times = _as_ns(times_ns)
    ts, weight, score = _asset_items(items, asset, weights)
    num = np.zeros(times.shape[0], dtype=np.float64)
    den = np.zeros(times.shape[0], dtype=np.float64)
    if ts.size == 0 or times.size == 0:
        return num
    lookback_ns = round(lookback_hours * _HOUR_NS)
    half_life_ns = half_life_hours * _HOUR_NS
    lo = np.searchsorted(ts, times - lookback_ns, side="left")
    hi = np.searchsorted(ts, times, side="right")
    counts = hi - lo
    ends = np.cumsum(counts)
    start = 0
    while start < times.size:
        base = ends[start - 1] if start else 0
        stop = max(int(np.searchsorted(ends, base + _PAIRS_PER_CHUNK, side="right")), start + 1)
        _accumulate(times, ts, weight, score, lo, counts, start, stop, half_life_ns, num, den)
        start = stop
    result: npt.NDArray[np.float64] = num / np.maximum(den, 1.0)
    return result


def _as_ns(times_ns: npt.ArrayLike) -> npt.NDArray[np.int64]:
    times = np.asarray(times_ns)
    if times.ndim != 1:
        raise ValueError(f"times_ns must be one-dimensional, got shape {times.shape}")
    if np.issubdtype(times.dtype, np.datetime64):
        if np.isnat(times).any():
            raise ValueError("times_ns contains NaT")
        return times.astype("datetime64[ns]").view(np.int64)
    if not np.issubdtype(times.dtype, np.integer) and times.size:
        raise ValueError(f"times_ns must be integer nanoseconds or datetime64, got dtype {times.dtype}")
    return times.astype(np.int64, copy=False)


def _asset_items(
    items: Iterable[NewsItem], asset: str, weights: Mapping[str, float]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    ts: list[int] = []
    weight: list[float] = []
    score: list[float] = []
    for item in items:
        if asset not in item.assets:
            continue
        if item.score is None:
            raise ValueError(f"item {item.title!r} of source {item.source} is not scored (use Scorer.score_items)")
        if not (math.isfinite(item.score) and -1.0 <= item.score <= 1.0):
            raise ValueError(f"item {item.title!r} of source {item.source} has score {item.score!r}, not in [-1, 1]")
        if item.source not in weights:
            raise ValueError(f"source {item.source!r} has no weight (known: {sorted(weights)})")
        w = weights[item.source]
        if not (math.isfinite(w) and w >= 0):
            raise ValueError(f"source {item.source!r} has weight {w!r}; weights must be finite and ≥ 0")
        ts.append(item.ts_ns)
        weight.append(w)
        score.append(item.score)
    order = np.argsort(np.asarray(ts, dtype=np.int64), kind="stable")
    return (
        np.asarray(ts, dtype=np.int64)[order],
        np.asarray(weight, dtype=np.float64)[order],
        np.asarray(score, dtype=np.float64)[order],
    )


def _accumulate(
    times: npt.NDArray[np.int64],
    ts: npt.NDArray[np.int64],
    weight: npt.NDArray[np.float64],
    score: npt.NDArray[np.float64],
    lo: npt.NDArray[np.intp],
    counts: npt.NDArray[np.intp],
    start: int,
    stop: int,
    half_life_ns: float,
    num: npt.NDArray[np.float64],
    den: npt.NDArray[np.float64],
) -> None:
    chunk_counts = counts[start:stop]
    total = int(chunk_counts.sum())
    if total == 0:
        return
    row = np.repeat(np.arange(stop - start), chunk_counts)
    first_pair = np.cumsum(chunk_counts) - chunk_counts
    item = lo[start:stop][row] + (np.arange(total) - first_pair[row])
    age_ns = (times[start:stop][row] - ts[item]).astype(np.float64)
    decayed = weight[item] * np.exp2(-age_ns / half_life_ns)
    num[start:stop] += np.bincount(row, weights=decayed * score[item], minlength=stop - start)
    den[start:stop] += np.bincount(row, weights=decayed, minlength=stop - start)
