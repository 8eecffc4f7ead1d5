"""deploy/grafana: the three dashboards type-check against Grafana's own `Dashboard` type (npm @grafana/schema, tsc),
and every query in them and every alert expression in deploy/prometheus/rules.yml names only metrics arb exports.

The npm packages live in .cache/grafana-check/ (git-ignored), installed by `./run test` with `npm ci` from
deploy/grafana/check/package-lock.json; a test never reaches the registry itself, so without them the type check
skips and says why."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

import arb.ledger.metrics
import arb.metrics

ROOT = Path(__file__).resolve().parents[3]
GRAFANA = ROOT / "deploy" / "grafana"
CHECK = GRAFANA / "check"
DASHBOARDS = {p.stem: p for p in sorted((GRAFANA / "dashboards").glob("*.json"))}
RULES = ROOT / "deploy" / "prometheus" / "rules.yml"
CACHE = ROOT / ".cache" / "grafana-check"
TSC = CACHE / "node_modules" / ".bin" / "tsc"

# What the issue asks each dashboard to show (metric families, without the _bucket/_total... series suffixes).
REQUIRED = {
    "latency": {"arb_connector_latency_seconds", "arb_scanner_scan_seconds", "arb_executor_leg_latency_seconds"},
    "opportunities": {
        "arb_scanner_opportunities_total",
        "arb_scanner_net_edge_bps",
        "arb_executor_executions_total",
        "arb_executor_realized_pnl_usd",
    },
    "coverage": {
        "arb_venues_connected",
        "arb_connector_up",
        "arb_instruments_covered",
        "arb_instruments_required",
        "arb_connector_stale_seconds_total",
    },
}

# --- PromQL metric names -----------------------------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GRAFANA_VAR = re.compile(r"\$\{[^}]*\}|\$\w+")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w.])[A-Za-z_:][\w:]*")
_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(.*?)\s*,\s*\w+\s*\)\s*$")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers that are not functions, keywords, labels or numbers."""
    text = _STRING.sub('""', expr)
    text = _GRAFANA_VAR.sub("", text)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    names: set[str] = set()
    for found in _IDENT.finditer(text):
        rest = text[found.end() :].lstrip()
        if found.group() in _KEYWORDS or rest.startswith("(") or found.group().lower() in ("inf", "nan"):
            continue
        names.add(found.group())
    return names


def exported_series() -> set[str]:
    """Every series name arb's registered metrics can produce (a counter's _total, a histogram's _bucket...)."""
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created")}
    names: set[str] = set()
    for module in (arb.metrics, arb.ledger.metrics):
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase):
                for family in value.describe():
                    names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


def dashboard_queries(node: Any) -> Iterator[str]:
    """Every PromQL expression of a dashboard: panel targets (rows' nested panels too) and query variables."""
    if isinstance(node, dict):
        if isinstance(node.get("expr"), str):
            yield node["expr"]
        if node.get("type") == "query" and "query" in node:
            query = node["query"]["query"] if isinstance(node["query"], dict) else node["query"]
            found = _LABEL_VALUES.match(query)
            yield found.group(1) if found else query
        for value in node.values():
            yield from dashboard_queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from dashboard_queries(item)


def as_promql(query: str) -> str:
    """A dashboard query as Prometheus receives it from Grafana: variables replaced by typical values."""
    for var, value in (("$__rate_interval", "1m"), ("$__range", "1h"), ("$__interval", "15s")):
        query = query.replace(var, value)
    return _GRAFANA_VAR.sub(".*", query)  # $venue, $kind: every value (their allValue is .*)


def rule_expressions() -> list[str]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule["expr"] for group in doc["groups"] for rule in group["rules"]]


def test_metric_names_are_read_from_promql_and_grafana_queries() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (venue, le) (rate(arb_x_seconds_bucket{stage="a", venue=~"$venue"}'
        "[$__rate_interval]))) > 0.1 and on() group_left max without (pid) (arb_y offset 5m) > 1e308"
        ' or vector(0) unless count(up{job="x"}) == bool Inf'
    )

    assert metric_names(expr) == {"arb_x_seconds_bucket", "arb_y", "up"}


def test_every_dashboard_query_and_alert_names_only_metrics_arb_exports() -> None:
    exported = exported_series()
    used: dict[str, set[str]] = {}
    for name, path in DASHBOARDS.items():
        queries = list(dashboard_queries(json.loads(path.read_text())))
        assert len(queries) >= 10, name
        for query in queries:
            for metric in metric_names(query):
                used.setdefault(metric, set()).add(f"dashboard {name}: {query}")
    for expr in rule_expressions():
        for metric in metric_names(expr):
            used.setdefault(metric, set()).add(f"rules.yml: {expr}")

    unknown = {metric: sorted(where) for metric, where in used.items() if metric not in exported}
    assert not unknown, f"queries name metrics arb does not export: {json.dumps(unknown, indent=2)}"
    assert all(metric.startswith("arb_") for metric in used)


def test_each_dashboard_shows_what_the_issue_asks_for() -> None:
    assert set(DASHBOARDS) == set(REQUIRED)
    for name, wanted in REQUIRED.items():
        queries = list(dashboard_queries(json.loads(DASHBOARDS[name].read_text())))
        families = {re.sub(r"_(bucket|count|sum)$", "", m) for q in queries for m in metric_names(q)}
        assert wanted <= families, f"{name} lacks {sorted(wanted - families)}"


def test_dashboards_use_the_provisioned_datasource_and_unique_ids() -> None:
    datasource = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (provisioned,) = datasource["datasources"]
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "arb.yml").read_text())["providers"][0]
    uids = set()
    for name, path in DASHBOARDS.items():
        board = json.loads(path.read_text())
        uids.add(board["uid"])
        (ds_var,) = (v for v in board["templating"]["list"] if v["type"] == "datasource")
        assert ds_var["current"]["value"] == provisioned["uid"], name
        panels = [*board["panels"], *(p for row in board["panels"] for p in row.get("panels", []))]
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids)), name
        for panel in panels:
            for target in panel.get("targets", []):
                assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, (name, panel["title"])
    assert len(uids) == len(DASHBOARDS)
    assert provisioned["type"] == "prometheus"
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"  # where deploy/compose.yaml mounts them


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not found: `./run test` installs Debian's prometheus package when run as root")
    # promtool parses queries as recording rules; a syntax error names the rule, i.e. the dashboard and query index.
    groups = [
        {"name": name, "rules": [{"record": f"dashboard:{name}:q{i}", "expr": as_promql(q)} for i, q in enumerate(qs)]}
        for name, path in DASHBOARDS.items()
        if (qs := list(dashboard_queries(json.loads(path.read_text()))))
    ]
    (tmp_path / "queries.yml").write_text(yaml.safe_dump({"groups": groups}))

    result = subprocess.run(  # noqa: S603 - fixed binary, our own files
        [promtool, "check", "rules", str(tmp_path / "queries.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {sum(len(g['rules']) for g in groups)} rules found" in result.stdout


# --- tsc against @grafana/schema ---------------------------------------------------------------------------------


def run_tsc(dashboards: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Type-check dashboards (name -> JSON text) with deploy/grafana/check; tsc's `NAME.dashboard.ts(L,C)` positions
    are rewritten to `NAME.json:L`, the line in the JSON file."""
    if shutil.which("node") is None:
        pytest.skip("node not found: the dashboard type check runs tsc (install Node.js and npm)")
    if not TSC.exists():
        pytest.skip(f"{TSC.relative_to(ROOT)} missing: `./run test` installs @grafana/schema and typescript (npm ci)")
    if (CACHE / "package-lock.json").read_text() != (CHECK / "package-lock.json").read_text():
        pytest.skip(f"{CACHE.relative_to(ROOT)} holds other package versions than the lock: `./run test` updates it")
    # Inside the cache, so that Node's module resolution finds its node_modules.
    work = Path(tempfile.mkdtemp(prefix="run-", dir=CACHE))
    try:
        shutil.copy(CHECK / "check.ts", work)
        shutil.copy(CHECK / "tsconfig.json", work)
        for name, text in dashboards.items():
            header = "import type { DashboardJson } from './check';\nexport const dashboard: DashboardJson =\n"
            (work / f"{name}.dashboard.ts").write_text(header + text.rstrip() + ";\n")
        result = subprocess.run(  # noqa: S603 - the pinned tsc, our own files
            [str(TSC), "-p", str(work / "tsconfig.json")], capture_output=True, text=True, timeout=120, check=False
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result.stdout = re.sub(
        r"(\w+)\.dashboard\.ts\((\d+),\d+\)", lambda m: f"{m.group(1)}.json:{int(m.group(2)) - 2}", result.stdout
    )
    return result


def test_dashboards_type_check_against_grafanas_dashboard_type() -> None:
    result = run_tsc({name: path.read_text() for name, path in DASHBOARDS.items()})

    assert result.returncode == 0, result.stdout + result.stderr


def test_type_check_rejects_dashboards_grafana_would_not_accept() -> None:
    def broken(change: Callable[[dict[str, Any]], object]) -> str:
        board = json.loads(DASHBOARDS["coverage"].read_text())
        change(board)
        return json.dumps(board, indent=2)

    def threshold_mode(mode: str) -> Callable[[dict[str, Any]], object]:
        return lambda b: b["panels"][1]["fieldConfig"]["defaults"]["thresholds"].update(mode=mode)

    result = run_tsc(
        {
            "bad_enum": broken(threshold_mode("absolut")),
            "no_y": broken(lambda b: b["panels"][2]["gridPos"].pop("y")),
            "unknown_key": broken(lambda b: b.update(refreshInterval="10s")),
        }
    )

    assert result.returncode != 0
    assert re.search(r"bad_enum\.json:\d+: error .*\"absolut\"", result.stdout), result.stdout
    assert re.search(r"no_y\.json:\d+: error .*Property 'y' is missing", result.stdout), result.stdout
    assert re.search(r"unknown_key\.json:\d+: error .*refreshInterval.* does not exist", result.stdout), result.stdout
