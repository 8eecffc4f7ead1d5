"""deploy/compose.yaml passes the real compose-spec schema (check-jsonschema) and runs what docs/deploy.md says:
each arb process its own service, with healthchecks, ordered start-up and no secret inline; its mounts, Prometheus
targets and Grafana provisioning point at things that exist. The image (deploy/docker/Dockerfile) cannot be built here
(no container engine), so it is checked by parsing: two stages, a non-root user, no secret, sources in the context.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.deploy.test_k8s import DOCS, REGIONS, ROOT, build, connector_venues, tool

DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
LIVE = DEPLOY / "compose.live.yaml"
DOCKERFILE = DEPLOY / "docker" / "Dockerfile"
ARB_SERVICES = {"connector-asia", "connector-eu", "connector-us", "trader", "api"}
SECRETISH = re.compile(r"(API_KEY|SECRET|PASSWORD|DATABASE_URL|TOKEN)", re.IGNORECASE)


def compose(path: Path = COMPOSE) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def services() -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose()["services"]
    return result


@pytest.mark.parametrize("path", [COMPOSE, LIVE], ids=lambda p: p.name)
def test_compose_files_pass_the_compose_spec_schema(path: Path) -> None:
    done = subprocess.run(  # noqa: S603 - fixed arguments, our own files
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr


def test_each_arb_process_is_its_own_service_with_its_command() -> None:
    svc = services()

    assert {"redis", "postgres", "prometheus", "grafana"} | ARB_SERVICES == set(svc)
    assert svc["trader"]["command"] == ["run", "--market", "venues", "--connectors", "external"]
    assert svc["api"]["command"] == ["serve", "--host", "0.0.0.0", "--port", "8000"]  # noqa: S104 - in a container
    for region in REGIONS:
        command = svc[f"connector-{region}"]["command"]
        assert command[:2] == ["connect", "--venues"]


def test_compose_connectors_split_the_venues_as_the_k8s_overlays_do() -> None:
    svc = services()
    for region in REGIONS:
        venues = svc[f"connector-{region}"]["command"][2].split(",")
        assert sorted(venues) == sorted(connector_venues(build(f"overlays/{region}"))), region


def test_live_override_switches_only_the_trader_to_real_orders() -> None:
    live = compose(LIVE)["services"]

    assert set(live) == {"trader"}
    assert live["trader"]["command"] == ["run", "--live", "--connectors", "external"]
    assert live["trader"]["environment"] == {"ARB_MODE": "live"}


def test_every_service_has_a_healthcheck_and_waits_for_its_stores() -> None:
    svc = services()
    for name, spec in svc.items():
        assert spec["healthcheck"]["test"], name
    for name in ARB_SERVICES:
        assert svc[name]["depends_on"]["redis"] == {"condition": "service_healthy"}, name
        port = 8000 if name == "api" else 9464
        assert f"http://127.0.0.1:{port}/metrics" in " ".join(svc[name]["healthcheck"]["test"]), name
    for name in ("trader", "api"):
        assert svc[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}, name
    assert svc["grafana"]["depends_on"]["prometheus"] == {"condition": "service_healthy"}


def test_no_secret_is_written_in_the_compose_file() -> None:
    for name, spec in services().items():
        environment = spec.get("environment", {})
        assert isinstance(environment, dict), name
        for key, value in environment.items():
            assert not SECRETISH.search(key), f"{name}: {key} belongs in an env file"
            assert "@" not in str(value), f"{name}: {key} carries credentials"
    for name, spec in compose(LIVE)["services"].items():
        assert not any(SECRETISH.search(k) for k in spec.get("environment", {})), name


def test_venue_keys_reach_only_the_processes_that_need_them() -> None:
    svc = services()

    assert svc["trader"]["env_file"] == ["env/arb.env", "env/venue-keys.env"]
    assert svc["api"]["env_file"] == ["env/arb.env"]  # the API never holds an exchange key
    for region in REGIONS:
        assert svc[f"connector-{region}"]["env_file"] == ["env/venue-read-keys.env"]


def test_every_env_file_has_an_example_and_the_real_ones_are_git_ignored() -> None:
    files = {f for spec in services().values() for f in spec.get("env_file", [])}
    for f in files:
        example = DEPLOY / "env.example" / Path(f).name
        assert f.startswith("env/"), f
        assert example.is_file(), f
        for line in example.read_text().splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.partition("=")
                if SECRETISH.search(key):
                    assert value == "" or "CHANGE-ME" in value, f"{example.name}: {key} holds a value"
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "deploy/env/venue-keys.env"],  # noqa: S607 - read-only git
        cwd=ROOT, timeout=30, check=False,
    )  # fmt: skip
    assert ignored.returncode == 0, "deploy/env/ must be git-ignored: it holds the real secrets"


def bind_mounts() -> list[tuple[str, str, str]]:
    mounts = []
    for name, spec in services().items():
        for volume in spec.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                mounts.append((name, source, target))
    return mounts


def test_every_mounted_path_exists_in_the_repository() -> None:
    mounts = bind_mounts()

    assert {s for _, s, _ in mounts} >= {"./prometheus/prometheus.yml", "./prometheus/rules.yml"}
    for name, source, _ in mounts:
        assert (DEPLOY / source).exists(), f"{name} mounts {source}, which is not in deploy/"


def test_prometheus_scrapes_the_compose_services_on_their_metrics_ports() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    svc = services()
    targets = {t for job in config["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]}

    assert {t.split(":")[0] for t in targets} >= ARB_SERVICES
    for target in targets:
        host, port = target.split(":")
        assert host in svc or host in ("localhost", "127.0.0.1"), target
        if host in ARB_SERVICES:
            assert int(port) == (8000 if host == "api" else 9464), target
    for rule_file in config.get("rule_files", []):  # relative to the config file, mounted beside it
        assert any(t == f"/etc/prometheus/{rule_file}" for n, _, t in bind_mounts() if n == "prometheus"), rule_file


def test_grafana_provisioning_points_at_the_mounted_dashboards_and_prometheus() -> None:
    mounts = {source: target for name, source, target in bind_mounts() if name == "grafana"}
    provisioning = DEPLOY / "grafana" / "provisioning"
    docs = [yaml.safe_load(p.read_text()) for p in sorted(provisioning.rglob("*.y*ml"))]

    providers = [p for d in docs for p in (d or {}).get("providers", [])]
    datasources = [s for d in docs for s in (d or {}).get("datasources", [])]
    assert providers, "deploy/grafana/provisioning has no dashboard provider"
    assert datasources, "deploy/grafana/provisioning has no datasource"
    for provider in providers:
        assert provider["options"]["path"].startswith(mounts["./grafana/dashboards"]), provider
    for source in datasources:
        if source.get("type") == "prometheus":
            assert source["url"] == "http://prometheus:9090", source


def test_docs_name_every_compose_service() -> None:
    text = DOCS.read_text()
    for name in services():
        assert f"`{name}`" in text, name
    assert "compose.live.yaml" in text


# --- the image ----------------------------------------------------------------------------------------------------


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile: comments dropped, backslash continuations joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, args = line.partition(" ")
        out.append((keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return out


def stages() -> dict[str, list[tuple[str, str]]]:
    result: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for keyword, args in instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+)\s+AS\s+(\S+)", args, re.IGNORECASE)
            assert match, f"every stage is named: FROM {args}"
            current = result.setdefault(match.group(2), [])
        current.append((keyword, args))
    return result


def test_dockerfile_builds_in_a_builder_stage_and_runs_a_slim_non_root_runtime() -> None:
    found = stages()

    assert list(found) == ["builder", "runtime"]
    runtime = found["runtime"]
    assert "slim" in runtime[0][1]
    assert ("COPY", "--from=builder /opt/arb /opt/arb") in runtime
    users = [args for keyword, args in runtime if keyword == "USER"]
    assert users, "the runtime stage sets a USER"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert dict(runtime)["ENTRYPOINT"] == '["arb"]'
    assert not any(k == "RUN" and "apt-get install" in a for k, a in runtime)  # compilers stay in the builder


def test_dockerfile_holds_no_secret() -> None:
    for keyword, args in instructions(DOCKERFILE.read_text()):
        if keyword in ("ENV", "ARG"):
            names = re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", args) or [args.split("=")[0]]
            assert not any(SECRETISH.search(n) for n in names), f"{keyword} {args}"


def dockerignore_keeps(path: str) -> bool:
    """Docker's rule: the last matching pattern wins, `!` re-includes (enough of it for our file)."""
    kept = True
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*", "[^/]*")
        if re.fullmatch(regex + "(/.*)?", path):
            kept = negate
    return kept


def test_dockerfile_copies_the_project_from_a_context_that_has_it() -> None:
    copies = [shlex.split(a) for k, a in instructions(DOCKERFILE.read_text()) if k == "COPY"]
    sources = [s for parts in copies if not parts[0].startswith("--from") for s in parts[:-1]]

    assert set(sources) == {"pyproject.toml", "README.md", "src"}
    for source in sources:
        assert (ROOT / source).exists(), source
        assert dockerignore_keeps(source), f".dockerignore drops {source}"
    assert dockerignore_keeps("src/arb/cli.py")
    for private in ("deploy/env/venue-keys.env", ".venv/bin/python", ".git/config", "arb.db"):
        assert not dockerignore_keeps(private), private
