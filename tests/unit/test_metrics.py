"""The metric catalogue (names, labels, docs/metrics.md) and the exporter that merges a parent's and its children's
series (real prometheus_client multiprocess files written by a real child process, scraped over HTTP)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

import arb.ledger.metrics
import arb.metrics
from arb.metrics_http import MULTIPROC_ENV, MetricsServer
from arb.risk import DenyReason, MemoryEventSink, MemoryStateStore, RiskEngine, TradingState

from .risk.support import SETTINGS, context, order

DOC = Path(__file__).parents[2] / "docs" / "metrics.md"
# Every label arb uses: each has a closed value set (configured venues, enum members, route templates). A symbol,
# instrument or id label would make the series count grow with the universe or with traffic.
BOUNDED_LABELS = {
    "venue", "stage", "reason", "cause", "kind", "event", "outcome", "state", "route", "method", "status", "type",
    "operation",
}  # fmt: skip


def metrics() -> list[MetricWrapperBase]:
    return [
        v for mod in (arb.metrics, arb.ledger.metrics) for v in vars(mod).values() if isinstance(v, MetricWrapperBase)
    ]


def exposed_name(m: MetricWrapperBase) -> str:
    return f"{m._name}_total" if m._type == "counter" else m._name


def documented_names() -> set[str]:
    return set(re.findall(r"^\| `(arb_[a-z0-9_]+)` \|", DOC.read_text(), re.MULTILINE))


def test_every_metric_is_documented_and_every_documented_metric_exists() -> None:
    in_code = {exposed_name(m) for m in metrics()}

    assert in_code - documented_names() == set(), "add these to docs/metrics.md"
    assert documented_names() - in_code == set(), "docs/metrics.md names metrics arb does not export"


def test_the_contract_metrics_exist_with_their_labels() -> None:
    labels = {exposed_name(m): m._labelnames for m in metrics()}

    assert labels["arb_venues_connected"] == labels["arb_instruments_covered"] == ()
    assert labels["arb_scanner_opportunities_total"] == ("kind", "event")
    assert labels["arb_executor_executions_total"] == ("outcome",)
    assert labels["arb_risk_trading_state"] == ("state",)
    assert labels["arb_api_requests_total"] == ("route", "method", "status")
    assert labels["arb_api_request_seconds"] == ("route", "method")


def test_names_are_prefixed_and_labels_bounded() -> None:
    for m in metrics():
        assert m._name.startswith("arb_"), m._name
        assert set(m._labelnames) <= BOUNDED_LABELS, (m._name, m._labelnames)
        if m._type == "gauge":  # how a parent's /metrics combines its workers' values must be chosen, not "all"
            assert getattr(m, "_multiprocess_mode", "all") != "all", m._name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        body: bytes = r.read()
        return body.decode()


CHILD = """
from arb.metrics import CONNECTOR_QUOTES, CONNECTOR_UP, GRID_QUOTES_WRITTEN
CONNECTOR_QUOTES.labels("child-only").inc(7)
CONNECTOR_UP.labels("child-only").set(1)
GRID_QUOTES_WRITTEN.inc(7)
"""


def test_the_exporter_serves_the_parents_series_and_its_childrens_as_one_family_each() -> None:
    own_before = REGISTRY.get_sample_value("arb_grid_quotes_written_total") or 0.0
    arb.metrics.GRID_QUOTES_WRITTEN.inc(3)  # this process's own series, in memory
    port = free_port()

    with MetricsServer(port, "127.0.0.1") as server:
        assert server.serving, server.summary
        env = {k: v for k, v in os.environ.items() if k != MULTIPROC_ENV} | server.child_env
        subprocess.run([sys.executable, "-c", CHILD], env=env, check=True, timeout=60)  # noqa: S603
        text = scrape(port)
        directory = server.child_env[MULTIPROC_ENV]
    assert not Path(directory).exists()  # the workers' files go with the run

    types = re.findall(r"^# TYPE (\S+)", text, re.MULTILINE)
    assert len(types) == len(set(types)), "a family appears twice: Prometheus would reject the scrape"
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("arb_grid_quotes_written_total", ())] == own_before + 3 + 7  # parent's and child's, summed
    assert samples[("arb_connector_quotes_total", (("venue", "child-only"),))] == 7  # a venue only the child has
    assert samples[("arb_connector_up", (("venue", "child-only"),))] == 1
    assert samples[("arb_risk_kill_switch", ())] in (0, 1)  # the parent's own gauges are there too
    assert ("process_cpu_seconds_total", ()) in samples
    # negative buckets: prometheus_client has no `_sum` for it in memory, so a workers-only one must not show either
    assert ("arb_executor_slippage_bps_count", ()) in samples
    assert ("arb_executor_slippage_bps_sum", ()) not in samples


def test_a_port_in_use_is_reported_not_raised() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with MetricsServer(port, "127.0.0.1") as server:
            assert not server.serving
            assert f"port {port} unavailable" in server.summary


def test_port_zero_is_off() -> None:
    with MetricsServer(0) as server:
        assert not server.serving
        assert server.child_env == {}


def value(name: str, **labels: str) -> float:
    got = REGISTRY.get_sample_value(name, labels)
    assert got is not None, (name, labels)
    return got


async def test_the_risk_engine_exports_its_state_the_kill_switch_and_its_denials() -> None:
    denied_before = value("arb_risk_denials_total", reason="halted")

    async with RiskEngine(SETTINGS, MemoryStateStore(), MemoryEventSink()) as risk:
        active = (value("arb_risk_trading_state", state="active"), value("arb_risk_kill_switch"))
        await risk.set_state(TradingState.HALTED, reason="operator test", actor="ops")
        risk.check(order(), context())
        halted = (
            value("arb_risk_trading_state", state="halted"),
            value("arb_risk_trading_state", state="active"),
            value("arb_risk_kill_switch"),
        )
        await risk.set_state(TradingState.ACTIVE, reason="resume", actor="ops")
        resumed = value("arb_risk_kill_switch")

    assert active == (1, 0)
    assert halted == (1, 0, 1)
    assert resumed == 0
    assert value("arb_risk_denials_total", reason="halted") == denied_before + 1
    assert value("arb_risk_denials_total", reason=DenyReason.DAILY_LOSS.value) >= 0  # every reason has a series
