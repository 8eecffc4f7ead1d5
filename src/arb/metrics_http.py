"""`/metrics` over HTTP for `arb demo`, `arb run` and `arb connect`: this process's metrics and its children's.

Why this shape: prometheus_client's multiprocess mode is chosen when prometheus_client is imported (it reads
`PROMETHEUS_MULTIPROC_DIR` then), and an `arb` process has imported it long before it knows whether metrics are
wanted. So the parent keeps its own metrics in memory (the default registry) and starts its children (the connector
workers) with `PROMETHEUS_MULTIPROC_DIR` pointing at a fresh directory (`MetricsServer.child_env`): they write their
samples there, and each scrape merges both into one exposition. A family both sides have is one family: counter and
histogram samples with the same labels are summed (processes count different events), a gauge series the parent sets
is the parent's value (the parent runs the scanner, the executor and the risk engine; its children only stream).

A process started with `PROMETHEUS_MULTIPROC_DIR` already set (a supervisor that manages the directory) is fully in
multiprocess mode: the exporter then reads that directory alone and its children inherit it.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable
from typing import Final
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

log = logging.getLogger(__name__)

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
_SUMMED: Final = frozenset({"counter", "histogram", "summary"})


class ParentAndChildren(Collector):
    """The parent's own registry merged with the children's multiprocess directory (see the module docstring)."""

    def __init__(self, directory: str, own: CollectorRegistry = REGISTRY) -> None:
        self.own = own
        self.children = MultiProcessCollector(None, directory)  # type: ignore[no-untyped-call]  # untyped upstream

    def collect(self) -> Iterable[Metric]:
        merged: dict[str, Metric] = {}
        for family in self.own.collect():
            merged[family.name] = family
        for family in self.children.collect():  # type: ignore[no-untyped-call]
            mine = merged.get(family.name)
            if mine is None:
                merged[family.name] = family
            elif mine.type == family.type:
                merged[family.name] = _merge(mine, family)
            else:  # pragma: no cover - one definition of every metric (arb.metrics): cannot differ
                log.error("metrics.type_mismatch name=%s own=%s children=%s", family.name, mine.type, family.type)
        return merged.values()


def _merge(own: Metric, children: Metric) -> Metric:
    out = Metric(own.name, own.documentation, own.type, own.unit)
    index: dict[tuple[str, frozenset[tuple[str, str]]], int] = {}
    samples: list[Sample] = []
    for s in own.samples:
        index[(s.name, frozenset(s.labels.items()))] = len(samples)
        samples.append(s)
    # prometheus_client leaves out `_sum` of a histogram with negative buckets in memory (OpenMetrics) but not in
    # its multiprocess files: a workers-only `_sum` would pass for the sum of every process's observations.
    no_sum = any(s.labels.get("le", "").startswith("-") for s in children.samples)
    for s in children.samples:
        at = index.get((s.name, frozenset(s.labels.items())))
        if no_sum and s.name == f"{own.name}_sum":
            continue
        if at is None:
            samples.append(s)
        elif own.type in _SUMMED and not s.name.endswith("_created"):
            samples[at] = samples[at]._replace(value=samples[at].value + s.value)
        # else: a gauge (or a creation time) the parent has: the parent's value stands
    out.samples = samples
    return out


class MetricsServer:
    """`with MetricsServer(port) as m:` serves `/metrics` on `host:port` and gives `m.child_env` for the children;
    port 0 is off (nothing served, an empty `child_env`), so callers need no branch of their own.

    A port already in use is a warning, not a failure: metrics are an aid, and a second `arb demo` on the same
    machine should still run (say `--metrics-port 0`, or another port, to silence it)."""

    def __init__(self, port: int, host: str = "0.0.0.0") -> None:  # noqa: S104 - Prometheus scrapes from outside
        if not 0 <= port <= 65535:
            raise ValueError(f"metrics port: {port} is not a TCP port (1..65535, or 0: off)")
        self.port = port
        self.host = host
        self.serving = False
        self._dir: str | None = None
        self._own_dir = False
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def child_env(self) -> dict[str, str]:
        """Environment for a child whose metrics belong in this process's `/metrics`. May be asked before entering
        (a child's environment is fixed when it is built); the directory lives until this server exits, whether or
        not its port could be bound, since a child cannot start without it."""
        return {MULTIPROC_ENV: self._directory()} if self.port else {}

    @property
    def summary(self) -> str:
        """One line for the user: where `/metrics` is, or why it is not served."""
        if self.serving:
            return f"metrics: http://{self.host}:{self.port}/metrics"
        if not self.port:
            return "metrics: off (--metrics-port 0)"
        return f"metrics: not served, port {self.port} unavailable (--metrics-port PORT, or 0 for off)"

    def _directory(self) -> str:
        if self._dir is None:
            inherited = os.environ.get(MULTIPROC_ENV)
            if inherited:
                self._dir, self._own_dir = inherited, False
            else:
                self._dir, self._own_dir = tempfile.mkdtemp(prefix="arb-metrics-"), True
        return self._dir

    def registry(self) -> CollectorRegistry:
        """What one scrape collects."""
        directory = self._directory()
        registry = CollectorRegistry(auto_describe=False)
        if self._own_dir:
            registry.register(ParentAndChildren(directory))
        else:
            MultiProcessCollector(registry, directory)  # type: ignore[no-untyped-call]
        return registry

    def __enter__(self) -> MetricsServer:
        if not self.port:
            return self
        try:
            self._server, self._thread = start_http_server(self.port, self.host, self.registry())
        except OSError as exc:
            log.warning("metrics.not_served host=%s port=%d error=%r", self.host, self.port, str(exc))
            return self
        self.serving = True
        log.info("metrics.serving url=http://%s:%d/metrics", self.host, self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        server = self._server
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.serving = False
        if self._own_dir and self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None
        self._server = self._thread = None
