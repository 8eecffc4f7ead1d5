"""Parameter sweeps over a tape: every point replayed in worker processes, ranked by realized PnL; a bad point is
refused before anything runs.

The tape is written here: BTC/USD on binance and okx, two dislocations (okx's bid above binance's ask by 60 bps,
then by 35 bps, both venues charging 10 bps taker), so a 10 bps minimum edge trades both and a 20 bps one only the
first: the sweep must rank the lower threshold first, by the PnL the second dislocation adds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from arb.backtest.sweep import SweepPoint, apply_point, max_drawdown, points, run_sweep
from arb.backtest.tape import Manifest, TapeWriter
from arb.config import load_settings
from arb.model import Quote
from tests.support import MS, NS

MID = 65_000.0


def book(venue: str, ts: int, shift_bps: float) -> Quote:
    mid = MID * (1 + shift_bps / 1e4)
    bids = tuple((round(mid - 1 - k, 2), 0.5) for k in range(10))
    asks = tuple((round(mid + 1 + k, 2), 0.5) for k in range(10))
    return Quote(venue=venue, instrument="BTC/USD", bid=bids[0][0], bid_size=0.5, ask=asks[0][0], ask_size=0.5,
                 ts_exchange=ts - MS, ts_recv=ts, sequence=ts, bids=bids, asks=asks)  # fmt: skip


@pytest.fixture(scope="module")
def tape(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("sweep") / "tape"
    manifest = Manifest(venues=["binance", "okx"], instruments=["BTC/USD"], config_hash="synthetic",
                        started_ns=NS, ended_ns=0)  # fmt: skip
    writer = TapeWriter(directory, manifest, after_c=0)
    for k in range(1, 301):
        ts = NS + k * 50 * MS
        okx_shift = 60.0 if 60 <= k < 100 else 35.0 if 180 <= k < 220 else 0.0
        quotes = [book("binance", ts, 0.0), book("okx", ts, okx_shift)]
        writer.append(k, ts + MS, quotes)
    writer.close(NS + 16 * 10**9)
    return directory


def test_the_sweep_ranks_settings_by_the_pnl_they_realize(tape: Path) -> None:
    grid = points([0.001, 0.002], [0.0005], [1000.0, 500.0])

    results = run_sweep(tape, None, grid, workers=2)

    assert [r.rank for r in results] == [1, 2, 3, 4]
    assert {r.point for r in results} == set(grid)
    best, *_ = results
    assert best.point == SweepPoint(min_edge=0.001, max_slippage=0.0005, size=1000.0)
    by_point = {(r.point.min_edge, r.point.size): r for r in results}
    assert by_point[(0.001, 1000.0)].realized_pnl_usd > by_point[(0.002, 1000.0)].realized_pnl_usd > 0
    assert by_point[(0.001, 1000.0)].executed > by_point[(0.002, 1000.0)].executed > 0
    assert by_point[(0.001, 1000.0)].realized_pnl_usd > by_point[(0.001, 500.0)].realized_pnl_usd  # size matters
    assert [r.realized_pnl_usd for r in results] == sorted((r.realized_pnl_usd for r in results), reverse=True)


def test_a_point_the_schema_refuses_is_named_before_anything_runs(tape: Path) -> None:
    with pytest.raises(ValueError, match=r"size=-5\.0: max_order_notional_usd: Input should be greater than 0"):
        run_sweep(tape, None, points([0.001], [0.0005], [-5.0]))
    with pytest.raises(ValueError, match=r"min_edge=1\.5"):
        apply_point(load_settings(), SweepPoint(min_edge=1.5, max_slippage=0.0005, size=100.0))
    with pytest.raises(ValueError, match="size: give at least one value"):
        points([0.001], [0.001], [])


def test_max_drawdown_is_the_largest_fall_from_a_peak() -> None:
    assert max_drawdown([]) == 0.0
    assert max_drawdown([(1, 5.0), (2, 3.0), (3, 9.0), (4, 4.0), (5, 6.0)]) == 5.0
    assert max_drawdown([(1, -2.0)]) == 2.0
