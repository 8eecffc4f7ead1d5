"""The scanner against ground truth, end to end: local venues inject dislocations with exact bps, the real ccxt.pro
classes stream them into a real Redis grid, the scanner follows the mirror, and every event is scored against the
truth log (`arb.demo.measure_truth`, the short version of `./run bench truth`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from arb.demo import measure_truth


@pytest.mark.timeout(240)
async def test_the_scanner_reports_every_dislocation_above_the_threshold_and_nothing_below_it() -> None:
    run = await measure_truth(
        ("binance", "okx"), seconds=20.0, warmup_s=8.0, rate_per_min=150.0, console=Console(stderr=True, quiet=True)
    )

    r = run.report
    assert run.demo.venues_connected == 2
    assert r.above >= 8, r  # enough dislocations clear the threshold (net edges up to ~100 bps) to mean something
    assert r.below >= 5, r  # and enough stay under it (fees eat them) for precision to be tested
    assert r.missed == [], f"missed dislocations {r.missed} (truth and events in {run.work_dir})"
    assert r.recall == 1.0
    assert r.false_positives == 0, f"false positives {r.false_positive_ids} (see {run.work_dir})"
    assert r.precision == 1.0
    # detection is reported, not asserted tight (timing on a loaded CI box); it must land within the dislocation
    assert r.detection_latency_ms_max is not None
    assert r.detection_latency_ms_max < 500
    events = [json.loads(line) for line in (Path(run.work_dir) / "events.jsonl").read_text().splitlines()]
    assert {e["type"] for e in events} >= {"opened", "closed"}
