"""Connector worker pieces that need no venue: the latency book and the spec a parent hands a worker."""

from __future__ import annotations

import subprocess
import sys
import time

from arb.connectors.worker import LatencyBook
from arb.model import LATENCY_EDGES_MS, latency_percentile_ms
from tests.support import quote


def test_the_latency_book_counts_exchange_to_grid_latency_per_venue() -> None:
    book = LatencyBook(["binance", "okx"])
    now = time.time_ns()
    batch = [quote("binance", sequence=k, ts_exchange=now - 3_000_000, ts_recv=now - 1_000_000) for k in range(99)] + [
        quote("binance", sequence=99, ts_exchange=now - 400_000_000, ts_recv=now - 1_000_000)
    ]

    book.on_written(batch)

    hist = book.hists["binance"]
    assert sum(hist) == 100
    assert sum(book.hists["okx"]) == 0
    # the bucket holding ~3 ms, or the next one when this process was descheduled for a moment under load
    assert 3.0 <= latency_percentile_ms(hist, 0.5) <= 3.0 * 1.25 * 1.25 + 0.01
    assert latency_percentile_ms(hist, 0.999) >= 400.0
    assert len(hist) == len(LATENCY_EDGES_MS) + 1


def test_a_worker_refuses_a_bad_spec_naming_the_field() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "arb.connectors.worker", '{"redis_url": "redis://127.0.0.1:1/0", "venues": "binance"}'],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert proc.returncode == 2
    assert "worker spec: Expected `array`, got `str` - at `$.venues`" in proc.stderr
