"""`arb backtest arbitrage` on a tape `arb record --demo` just made (one 30 s recording shared by the module).

Round trip: every opportunity the live scanner opened while recording is opened by the replay with the same id and
the same net edge (measured: all of them, edges bit-identical, because the replay steps the scanner after every feed
entry on the same books and the id comes from the quotes' receive times; the live scanner coalescing entries did not
change any opening on the recordings measured, so the test asserts the exact bound). The report accounts for every
injected dislocation. Determinism: two replays write identical report.json. Latency: 200 ms realizes less edge per
execution than 0 ms and the report shows both side by side.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .test_cli import arb

RECORD_S = 30


@pytest.fixture(scope="module")
def tape(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("backtest") / "tape"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARB_")}
    proc = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "arb", "record", "--demo", "--out", str(out), "--seconds", str(RECORD_S), "--json"],
        capture_output=True, text=True, timeout=180, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def backtest(tape: Path) -> tuple[dict[str, Any], Path]:
    out = tape.parent / "report"
    proc = arb("backtest", "arbitrage", "--data", str(tape), "--latency-ms", "0", "--latency-ms", "200",
               "--out", str(out), "--json", timeout=240)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), out


@pytest.mark.timeout(400)
def test_the_replay_opens_every_live_opportunity_with_the_same_id_and_edge(
    tape: Path, backtest: tuple[dict[str, Any], Path]
) -> None:
    summary, out = backtest
    report = json.loads((out / "report.json").read_text())["runs"][0]
    live = [json.loads(line) for line in (tape / "live_events.jsonl").read_text().splitlines() if line]
    live_opened = {e["opportunity"]["id"]: e["opportunity"]["net_edge"] for e in live if e["type"] == "opened"}

    assert live_opened, "the recording saw no opportunity"
    assert report["live"]["live_opened"] == len(live_opened)
    assert report["live"]["missing"] == []
    assert report["live"]["found"] == len(live_opened)
    assert report["live"]["same_edge"] == len(live_opened)
    assert report["live"]["max_rel_edge_diff"] <= 1e-9
    # stepping where the live scanner stepped (the tape's live steps), the replay opens nothing live did not
    assert report["live"]["replay_only"] == 0
    assert summary["opportunities"] == len(live_opened)
    assert {"opportunities", "executed", "realized_pnl", "quotes_per_s"} <= summary.keys()


def test_the_report_accounts_for_every_injected_dislocation(tape: Path, backtest: tuple[dict[str, Any], Path]) -> None:
    _, out = backtest
    truth = json.loads((out / "report.json").read_text())["runs"][0]["truth"]
    injected = {json.loads(line)["id"] for line in (tape / "truth.jsonl").read_text().splitlines() if line}

    assert {d["id"] for d in truth["dislocations"]} == injected
    assert sum(truth["by_status"].values()) == truth["injected"] == len(injected)
    assert set(truth["by_status"]) <= {"detected", "below_threshold", "borderline", "no_sizeable_pair",
                                       "outside_tape", "missed"}  # fmt: skip
    assert truth["by_status"].get("detected", 0) > 0


def test_200_ms_of_latency_realizes_less_edge_and_the_report_shows_both(
    backtest: tuple[dict[str, Any], Path],
) -> None:
    summary, out = backtest
    fast, slow = summary["latencies"]
    html = (out / "report.html").read_text()

    assert (fast["latency_ms"], slow["latency_ms"]) == (0.0, 200.0)
    assert fast["executed"] > 0
    assert slow["executed"] > 0
    # each trade realizes less of its predicted edge (the mean realized edge alone also moves with the mix of
    # trades: 200 ms spreads orders out, so fewer are denied by the order-rate limit and others get executed)
    assert slow["edge_lost_bps"] > fast["edge_lost_bps"]
    assert slow["edge_capture"] < fast["edge_capture"]
    assert "Latency sensitivity" in html
    assert "<svg" in html
    assert "Latency 200 ms" in html


def test_two_replays_write_byte_identical_reports(tape: Path, backtest: tuple[dict[str, Any], Path]) -> None:
    _, first = backtest
    again = tape.parent / "again"
    proc = arb("backtest", "arbitrage", "--data", str(tape), "--latency-ms", "0", "--latency-ms", "200",
               "--out", str(again), "--json", timeout=240)  # fmt: skip

    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (again / "report.json").read_bytes() == (first / "report.json").read_bytes()


def test_a_missing_tape_is_refused_by_name(tmp_path: Path) -> None:
    proc = arb("backtest", "arbitrage", "--data", str(tmp_path / "nowhere"))

    assert proc.returncode == 2
    assert "nowhere: no such directory" in proc.stderr


def test_a_sweep_ranks_the_settings_by_realized_pnl(tape: Path) -> None:
    proc = arb("backtest", "sweep", "--data", str(tape), "--min-edge", "0.001,0.003", "--size", "1000", "--json",
               "--workers", "2", timeout=300)  # fmt: skip

    rows = json.loads(proc.stdout)
    assert proc.returncode == 0, proc.stderr
    assert [r["rank"] for r in rows] == [1, 2]
    assert rows[0]["realized_pnl_usd"] >= rows[1]["realized_pnl_usd"]
    by_edge = {r["point"]["min_edge"]: r for r in rows}
    assert by_edge[0.001]["opportunities"] > by_edge[0.003]["opportunities"]  # a higher bar finds fewer
    assert "sweep: 2/2" in proc.stderr


def test_a_sweep_refuses_a_value_the_settings_refuse(tape: Path) -> None:
    proc = arb("backtest", "sweep", "--data", str(tape), "--size", "-3")

    assert proc.returncode == 2
    assert "size=-3.0: max_order_notional_usd" in proc.stderr
