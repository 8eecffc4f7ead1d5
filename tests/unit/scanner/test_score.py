"""Volatility from mids: the compiled per-step update agrees with the plain NumPy one it replaces on the hot path."""

from __future__ import annotations

import numpy as np

from arb.config.schema import ScannerSettings
from arb.scanner.score import Scoring

NS = 1_700_000_000_000_000_000


def test_observe_rows_matches_observe_mids_of_the_mean_usable_mid() -> None:
    rng = np.random.default_rng(7)
    n_rows, n_venues = 6, 4
    fast = Scoring(ScannerSettings(), [f"v{j}" for j in range(n_venues)], [50.0] * n_venues, n_rows)
    plain = Scoring(ScannerSettings(), [f"v{j}" for j in range(n_venues)], [50.0] * n_venues, n_rows)
    for step in range(40):
        bid = 100 * np.exp(rng.normal(0, 0.001, (n_rows, n_venues)).cumsum(axis=0))
        ask = bid * 1.0005
        usable = rng.random((n_rows, n_venues)) > 0.3
        usable[step % n_rows] = False  # a row with nothing usable is skipped
        rows = np.arange(n_rows) if step % 3 else np.array([1, 4])
        now = NS + step * 250_000_000
        fast.observe_rows(rows, bid, ask, usable, now)
        ok = usable[rows]
        n = ok.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mids = np.where(n > 0, np.where(ok, (bid[rows] + ask[rows]) / 2, 0.0).sum(axis=1) / n, np.nan)
        plain.observe_mids(rows, mids, now)

    assert np.allclose(fast.volatility_bps, plain.volatility_bps, rtol=1e-12, atol=0)
    assert (fast.volatility_bps > 0).all()
