"""`replay` on a small hand-made tape: one dislocation on OKX's BTC/USD book that lasts 150 ms.

The scanner sees it open and close exactly when the tape says; with no latency the paper orders fill on the
dislocated book, with 200 ms they arrive after it closed and the realized edge falls; two replays give the same
report byte for byte; a tape without its chunks, or a bad latency, is refused naming what is wrong.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from arb.backtest.replay import SimClock, replay
from arb.backtest.report import report_document, write_reports
from arb.backtest.tape import CHUNKS, Manifest, TapeError, TapeWriter
from arb.config import Settings, load_settings
from arb.model import Quote
from tests.support import MS, NS

SHIFT_BPS = 60.0


def book(venue: str, mid: float, ts: int, seq: int) -> Quote:
    bids = tuple((round(mid * (1 - 1e-5 * (k + 1)), 2), 0.5) for k in range(5))
    asks = tuple((round(mid * (1 + 1e-5 * (k + 1)), 2), 0.5) for k in range(5))
    return Quote(venue=venue, instrument="BTC/USD", bid=bids[0][0], bid_size=0.5, ask=asks[0][0], ask_size=0.5,
                 ts_exchange=ts - MS, ts_recv=ts, sequence=seq, bids=bids, asks=asks)  # fmt: skip


def write_tape(directory: Path, settings: Settings) -> None:
    """Both venues at 65,000 every 50 ms for 1 s; OKX 60 bps higher from 300 ms to 450 ms."""
    from arb.backtest.tape import config_hash

    manifest = Manifest(venues=["binance", "okx"], instruments=["BTC/USD"], config_hash=config_hash(settings),
                        started_ns=NS, ended_ns=0)  # fmt: skip
    writer = TapeWriter(directory, manifest, after_c=0, chunk_entries=7)
    for c in range(1, 21):
        ts = NS + c * 50 * MS
        okx = 65_000.0 * (1 + SHIFT_BPS / 1e4) if 300 <= c * 50 < 450 else 65_000.0
        quotes = [book("binance", 65_000.0, ts, c), book("okx", okx, ts, c)]
        writer.append(c, ts + MS, quotes)
    writer.close(NS + 2 * 10**9)


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings()


@pytest.fixture
def tape(tmp_path: Path, settings: Settings) -> Path:
    write_tape(tmp_path / "tape", settings)
    return tmp_path / "tape"


async def test_the_dislocation_opens_one_opportunity_at_its_first_entry(tape: Path, settings: Settings) -> None:
    report = await replay(tape, settings, execute=False, traded_venues=["binance", "okx"])

    assert report.opportunities == 1
    assert report.closed == {"edge": 1}
    assert report.tape.replayed_quotes == 40
    assert report.tape.config_matches
    assert report.executed == 0


async def test_with_no_latency_the_orders_fill_on_the_dislocated_book(tape: Path, settings: Settings) -> None:
    report = await replay(tape, settings, latency_ms=0, traded_venues=["binance", "okx"])

    assert (report.executed, report.done) == (1, 1)
    assert report.fill_rate == 1.0
    assert report.realized_pnl_usd > 0
    assert report.edge_capture is not None
    assert report.edge_capture > 0.95
    assert len(report.pnl_curve) == 1


async def test_with_200_ms_the_orders_arrive_after_it_closed_and_the_edge_is_gone(
    tape: Path, settings: Settings
) -> None:
    fast = await replay(tape, settings, latency_ms=0, traded_venues=["binance", "okx"])
    slow = await replay(tape, settings, latency_ms=200, traded_venues=["binance", "okx"])

    assert slow.executed == 1
    assert slow.executions[0].ended_ns - slow.executions[0].started_ns >= 200 * MS
    assert slow.realized_edge_bps_mean is not None
    assert fast.realized_edge_bps_mean is not None
    assert slow.realized_edge_bps_mean < fast.realized_edge_bps_mean
    assert slow.realized_pnl_usd < fast.realized_pnl_usd


async def test_two_replays_write_identical_reports(tape: Path, settings: Settings, tmp_path: Path) -> None:
    a = await replay(tape, settings, latency_ms=200, traded_venues=["binance", "okx"])
    b = await replay(tape, settings, latency_ms=200, traded_venues=["binance", "okx"])

    pa, pb = write_reports(tmp_path / "a", [a]), write_reports(tmp_path / "b", [b])

    assert pa["json"].read_bytes() == pb["json"].read_bytes()
    assert "perf" not in report_document([a])
    assert "<svg" in pa["html"].read_text()


async def test_a_tape_missing_a_chunk_or_a_bad_latency_is_refused(tape: Path, settings: Settings) -> None:
    with pytest.raises(ValueError, match="latency_ms: not traded venues: kraken"):
        await replay(tape, settings, latency_ms={"kraken": 5.0}, traded_venues=["binance", "okx"])
    (tape / CHUNKS / "000000.zst").unlink()
    with pytest.raises(TapeError, match=r"missing chunk files 000000\.zst"):
        await replay(tape, settings)


async def test_the_clock_wakes_sleepers_in_deadline_order() -> None:
    import asyncio

    clock = SimClock(1_000)
    woke: list[tuple[str, int]] = []

    async def sleeper(name: str, s: float) -> None:
        await clock.sleep(s)
        woke.append((name, clock()))

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("b", 2e-6), ("a", 1e-6), ("c", 2e-6))]
    await asyncio.sleep(0)
    while (deadline := clock.next_deadline()) is not None:
        assert deadline >= clock()
        clock.fire_next()
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)

    assert woke == [("a", 2_000), ("b", 3_000), ("c", 3_000)]
