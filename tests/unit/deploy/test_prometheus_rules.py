"""deploy/prometheus: the alert rules pass `promtool check rules` and their unit tests (`promtool test rules`), every
alert of the issue is there with a runbook whose `arb` commands exist, and the unit tests cover each alert firing (the
coverage alerts also resolving) and fail when a rule is broken.

promtool is the real binary (Debian's `prometheus` package, which `./run test` installs when run as root); without it
these tests skip and say why."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from arb.cli import app

ROOT = Path(__file__).resolve().parents[3]
PROM = ROOT / "deploy" / "prometheus"
RULES = PROM / "rules.yml"
UNIT_TESTS = sorted((PROM / "tests").glob("*.yml"))

ALERTS = {
    "VenueCoverageLow",
    "InstrumentCoverageLow",
    "VenueDown",
    "HighVenueLatency",
    "GridStale",
    "LowOpportunityRate",
    "ExecutionFailureRate",
    "KillSwitchEngaged",
    "ApiErrors",
}
COVERAGE_ALERTS = ("VenueCoverageLow", "InstrumentCoverageLow")

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not found: `./run test` installs Debian's prometheus package when run as root with apt-get",
)


def promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(  # noqa: S603 - fixed binary, our own files
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def rules() -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return {rule["alert"]: rule for group in doc["groups"] for rule in group["rules"]}


def rule_tests() -> list[dict[str, Any]]:
    """Every `alert_rule_test` entry of every unit test file."""
    return [
        check
        for path in UNIT_TESTS
        for case in yaml.safe_load(path.read_text())["tests"]
        for check in case.get("alert_rule_test", [])
    ]


@needs_promtool
def test_rules_file_passes_promtool_check() -> None:
    result = promtool("check", "rules", str(RULES))

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


@needs_promtool
def test_prometheus_config_passes_promtool_check_and_loads_the_rules() -> None:
    result = promtool("check", "config", str(PROM / "prometheus.yml"))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


@needs_promtool
def test_promtool_unit_tests_of_the_rules_pass() -> None:
    result = promtool("test", "rules", *(str(p) for p in UNIT_TESTS))

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(UNIT_TESTS)


@needs_promtool
@pytest.mark.parametrize(
    ("alert", "old", "new"),
    [
        ("VenueCoverageLow", "arb_venues_connected < arb_venues_required", "arb_venues_connected < 10"),
        ("InstrumentCoverageLow", "< 0.9", "< 0.8"),
        ("GridStale", "arb_grid_age_seconds > 10", "arb_grid_age_seconds > 60"),
    ],
)
def test_promtool_unit_tests_fail_when_an_alert_rule_is_broken(tmp_path: Path, alert: str, old: str, new: str) -> None:
    text = RULES.read_text()
    assert text.count(old) == 1
    (tmp_path / "rules.yml").write_text(text.replace(old, new))
    shutil.copytree(PROM / "tests", tmp_path / "tests")

    result = promtool("test", "rules", *(p.name for p in UNIT_TESTS), cwd=tmp_path / "tests")

    assert result.returncode != 0
    assert f"alertname: {alert}" in result.stdout + result.stderr


def test_rules_define_the_nine_alerts_with_severity_and_runbook() -> None:
    found = rules()

    assert set(found) == ALERTS
    for name, rule in found.items():
        assert rule["labels"]["severity"] in ("page", "warn"), name
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook"}, name
        assert "`arb " in annotations["runbook"], name
        assert len(annotations["runbook"].splitlines()) >= 5, name
    assert found["VenueCoverageLow"]["for"] == "2m"
    assert found["InstrumentCoverageLow"]["for"] == "2m"
    assert found["VenueDown"]["for"] == "1m"
    assert found["GridStale"]["for"] == "1m"
    assert "by (venue)" in found["VenueDown"]["expr"]
    assert "by (venue, le)" in found["HighVenueLatency"]["expr"]


def test_runbooks_name_only_arb_commands_that_exist() -> None:
    commands: dict[str, Any] = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    mentioned: set[tuple[str, str]] = set()
    for rule in rules().values():
        for found in re.finditer(r"`arb ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?", rule["annotations"]["runbook"]):
            mentioned.add((found.group(1), found.group(2) or ""))

    assert len(mentioned) >= 8  # venues, grid show, risk status, kill-switch on/off, positions, orders, scan, ...
    for command, sub in sorted(mentioned):
        assert command in commands, f"a runbook names `arb {command}`, which does not exist"
        subcommands = getattr(commands[command], "commands", None)  # a command group: the next word must be one
        if subcommands is not None:
            assert sub in subcommands, f"a runbook names `arb {command} {sub}`, which does not exist"


def test_unit_tests_cover_each_alert_firing_and_the_coverage_alerts_resolving() -> None:
    checks = rule_tests()
    fired = {c["alertname"] for c in checks if c.get("exp_alerts")}

    assert fired == ALERTS
    for alert in COVERAGE_ALERTS:
        times = sorted(
            (int(c["eval_time"].removesuffix("m")), bool(c.get("exp_alerts")))
            for c in checks
            if c["alertname"] == alert
        )
        first_firing = next(t for t, firing in times if firing)
        assert any(not firing for t, firing in times if t > first_firing), f"{alert}: no check that it resolves"
        assert any(not firing for t, firing in times if t < first_firing), f"{alert}: no check before it fires"
