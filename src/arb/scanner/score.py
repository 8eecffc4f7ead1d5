"""The priority score's factors: order latency per venue, venue reliability, short-term volatility, age decay.

priority = expected_profit × liquidity_score / (execution_time × risk_factor)   (DESIGN, spec formula)
  expected_profit = net_edge × notional × decay, decay = 2^-((oldest quote age + execution time) / half-life):
                    an edge seen on an old quote, or on a slow venue, is less likely to still be there when we arrive
  liquidity_score = size / target size (the per-trade notional limit at the buy price), at most 1
  execution_time  = the slower leg's order/ack latency (legs fire concurrently), an EWMA seeded from config
  risk_factor     = (1 + penalty × incidents of both venues in the window) × (1 + volatility / reference volatility)

Why these are state kept here and not in the kernel: they change on their own clock (an ack, a reconnect, a price
move), while the kernel is a pure function of books and costs.
"""

from __future__ import annotations

import collections
import math
from typing import TYPE_CHECKING, NamedTuple

import numba
import numpy as np
import numpy.typing as npt

from arb.model import VenueHealth

if TYPE_CHECKING:
    from arb.config.schema import ScannerSettings

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

NS_PER_S = 1_000_000_000


class Factors(NamedTuple):
    decay: float
    expected_profit: float
    liquidity_score: float
    execution_time_s: float
    risk_factor: float
    priority: float


def incidents(h: VenueHealth) -> int:
    """Everything a venue's feed counts that makes its next order less likely to go as planned."""
    return h.reconnects + h.gaps + h.resyncs + h.stalls + sum(h.rejected.values())


class Scoring:
    """Per-venue latency EWMAs and incident counts, per-instrument volatility; `factors()` combines them."""

    def __init__(self, settings: ScannerSettings, venues: tuple[str, ...], latency_ms: list[float], n_rows: int):
        self._s = settings
        self._venue_index = {v: j for j, v in enumerate(venues)}
        self.latency_s: FloatArray = np.asarray(latency_ms, np.float64) / 1000.0
        self.incidents: FloatArray = np.zeros(len(venues))
        self._incident_log: list[collections.deque[tuple[int, int]]] = [collections.deque() for _ in venues]
        self.volatility_bps: FloatArray = np.zeros(n_rows)
        """Per instrument: EWMA standard deviation of its mid's log return, in bps per sqrt(second)."""
        self._var = np.zeros(n_rows)
        self._last_mid = np.full(n_rows, np.nan)
        self._last_ns = np.zeros(n_rows, np.int64)

    def record_latency(self, venue: str, latency_ms: float) -> None:
        """One measured order -> ack latency (the executor reports them)."""
        if not (math.isfinite(latency_ms) and latency_ms > 0):
            raise ValueError(f"latency of {venue} must be a positive number of ms, got {latency_ms!r}")
        j = self._venue_index[venue]
        a = self._s.latency_ewma_alpha
        self.latency_s[j] = (1 - a) * self.latency_s[j] + a * latency_ms / 1000.0

    def observe_health(self, health: dict[str, VenueHealth], now_ns: int) -> None:
        """Count each venue's incidents over the reliability window (from its feed counters' increase)."""
        horizon = now_ns - int(self._s.reliability_window_s * NS_PER_S)
        for venue, h in health.items():
            j = self._venue_index.get(venue)
            if j is None:
                continue
            log = self._incident_log[j]
            total = incidents(h)
            if log and total < log[-1][1]:  # the worker restarted and its counters with it
                log.clear()
            log.append((now_ns, total))
            while len(log) > 1 and log[1][0] <= horizon:
                log.popleft()
            self.incidents[j] = total - log[0][1]

    def observe_rows(self, rows: IntArray, bid: FloatArray, ask: FloatArray, usable: BoolArray, now_ns: int) -> None:
        """`observe_mids` of `rows`, each row's mid being the mean mid of its usable cells (the scanner's per-step
        call, compiled: on a step of a few rows the NumPy version is all per-call overhead)."""
        _observe_rows(rows, bid, ask, usable, now_ns, self._last_mid, self._last_ns, self._var, self.volatility_bps,
                      math.log(2) / self._s.volatility_half_life_s)  # fmt: skip

    def observe_mids(self, rows: IntArray, mids: FloatArray, now_ns: int) -> None:
        """Update the volatility of `rows` from their current mid prices (NaN mids are skipped)."""
        last, last_ns = self._last_mid[rows], self._last_ns[rows]
        with np.errstate(invalid="ignore", divide="ignore"):
            dt = (now_ns - last_ns) / NS_PER_S
            ret = np.log(mids / last)
            ok = np.isfinite(ret) & (dt > 0)
            keep = np.exp(-dt * math.log(2) / self._s.volatility_half_life_s)
            var = np.where(ok, keep * self._var[rows] + (1 - keep) * ret * ret / np.where(dt > 0, dt, 1.0), np.nan)
        upd = rows[ok]
        self._var[upd] = var[ok]
        self.volatility_bps[upd] = np.sqrt(var[ok]) * 1e4
        seen = rows[np.isfinite(mids)]
        self._last_mid[seen] = mids[np.isfinite(mids)]
        self._last_ns[seen] = now_ns

    def factors(
        self, row: int, buy: int, sell: int, net: float, notional: float, size: float, best_ask: float,
        usd_per_quote: float, oldest_age_ms: float,
    ) -> Factors:  # fmt: skip
        s = self._s
        exec_s = max(float(self.latency_s[buy]), float(self.latency_s[sell]))
        decay = 2.0 ** (-(max(oldest_age_ms, 0.0) + exec_s * 1000.0) / s.edge_half_life_ms)
        expected = net * notional * decay
        target = s.max_trade_notional_usd / usd_per_quote / best_ask
        liquidity = min(1.0, size / target) if target > 0 else 0.0
        reliability = 1.0 + s.incident_penalty * float(self.incidents[buy] + self.incidents[sell])
        risk = reliability * (1.0 + float(self.volatility_bps[row]) / s.volatility_reference_bps)
        priority = expected * liquidity / (exec_s * risk)
        return Factors(decay, expected, liquidity, exec_s, risk, priority)


@numba.njit(cache=True, nogil=True)
def _observe_rows(
    rows: IntArray, bid: FloatArray, ask: FloatArray, usable: BoolArray, now_ns: int, last_mid: FloatArray,
    last_ns: IntArray, var: FloatArray, vol_bps: FloatArray, decay_per_s: float,
) -> None:  # fmt: skip
    """`Scoring.observe_mids` fed with each row's mean usable mid, row by row."""
    for i in rows:
        total, n = 0.0, 0
        for j in range(bid.shape[1]):
            if usable[i, j]:
                total += (bid[i, j] + ask[i, j]) / 2
                n += 1
        if n == 0:
            continue
        mid = total / n
        if not math.isfinite(mid):
            continue
        dt = (now_ns - last_ns[i]) / NS_PER_S
        last = last_mid[i]
        if dt > 0 and last == last and last != 0.0:
            ret = math.log(mid / last) if mid > 0 and last > 0 else math.nan
            if math.isfinite(ret):
                keep = math.exp(-dt * decay_per_s)
                var[i] = keep * var[i] + (1 - keep) * ret * ret / dt
                vol_bps[i] = math.sqrt(var[i]) * 1e4
        last_mid[i] = mid
        last_ns[i] = now_ns
