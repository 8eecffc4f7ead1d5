"""`arb demo --metrics-port P`: Prometheus' view of a running stack, scraped over HTTP while the demo streams.

The connector series come from the worker processes (multiprocess files the parent merges), the coverage and
scanner series from the parent: one scrape shows both."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from .test_cli import three_venue_config

VENUES = ("binance", "kraken", "gate")
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> tuple[str, Samples]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return text, samples


def get(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), float("nan"))


def warm(samples: Samples) -> bool:
    """Every venue streaming into the grid and the scanner deciding on it."""
    return (
        all(get(samples, "arb_connector_up", venue=v) == 1 for v in VENUES)
        and get(samples, "arb_venues_connected") == len(VENUES)
        and get(samples, "arb_scanner_scan_seconds_count") > 0
    )


def test_metrics_of_a_streaming_demo_show_venues_coverage_and_the_scanner(tmp_path: Path) -> None:
    config = three_venue_config(tmp_path)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARB_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env |= {"ARB_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'ledger.db'}", "ARB_METRICS__HOST": "127.0.0.1"}
    args = ["demo", "--config", str(config), "--seconds", "30", "--json", "--metrics-port", str(port)]
    with (tmp_path / "out").open("w") as out, (tmp_path / "err").open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "arb", *args], stdout=out, stderr=err, env=env)  # noqa: S603
        try:
            text, samples = "", Samples()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                try:
                    text, samples = scrape(port)
                except OSError:
                    pass  # not listening yet
                if warm(samples):
                    break
                time.sleep(0.5)
            assert warm(samples), f"never warm; last scrape:\n{text[-3000:]}\nstderr:\n{(tmp_path / 'err').read_text()}"
            time.sleep(2)  # a little streaming on top of warm: the counters must keep moving
            text, later = scrape(port)
            time.sleep(0.5)  # a quote is counted when received, and written after its batch's short delay
            _, after = scrape(port)
        finally:
            proc.wait(timeout=90)
    assert proc.returncode == 0, (tmp_path / "err").read_text()

    types = re.findall(r"^# TYPE (\S+)", text, re.MULTILINE)
    assert len(types) == len(set(types)), "a family twice in one scrape: Prometheus rejects it"
    for v in VENUES:  # written by the connector workers, served by the parent
        assert get(later, "arb_connector_up", venue=v) == 1
        assert get(later, "arb_connector_quotes_total", venue=v) > get(samples, "arb_connector_quotes_total", venue=v)
        assert get(later, "arb_connector_messages_total", venue=v) > 0
        assert get(later, "arb_connector_latency_seconds_count", venue=v, stage="recv_to_grid") > 0
        assert get(later, "arb_connector_latency_seconds_count", venue=v, stage="exchange_to_recv") > 0
    quotes = sum(get(later, "arb_connector_quotes_total", venue=v) for v in VENUES)
    # every quote the connectors had counted is in the grid half a second later (the workers' writes, summed)
    assert get(after, "arb_grid_quotes_written_total") >= quotes
    assert get(later, "arb_venues_connected") == 3
    assert get(later, "arb_venues_required") == 15
    assert 100 <= get(later, "arb_instruments_covered") <= get(later, "arb_instruments_required")
    assert get(later, "arb_instruments_required") >= 300
    assert 0 <= get(later, "arb_grid_age_seconds") < 2
    assert get(later, "arb_grid_mirror_valid") == 1
    assert get(later, "arb_scanner_scan_seconds_count") > get(samples, "arb_scanner_scan_seconds_count")
    assert 0 < get(later, "arb_scanner_scan_seconds_sum") / get(later, "arb_scanner_scan_seconds_count") < 0.1
    opened = get(later, "arb_scanner_opportunities_total", kind="spot", event="opened")
    closed = get(later, "arb_scanner_opportunities_total", kind="spot", event="closed")
    # the scrape runs in another thread than the scanner: it may fall between two updates of one event
    assert abs(opened - closed - get(later, "arb_scanner_open_opportunities", kind="spot")) <= 1
    assert abs(get(later, "arb_scanner_net_edge_bps_count", kind="spot") - opened) <= 1

    report = json.loads((tmp_path / "out").read_text().strip().splitlines()[-1])
    assert report["venues_connected"] == 3
    assert f"metrics: http://127.0.0.1:{port}/metrics" in (tmp_path / "err").read_text()
    try:
        scrape(port)
        raise AssertionError("/metrics still answers after the demo ended")
    except OSError:
        pass
