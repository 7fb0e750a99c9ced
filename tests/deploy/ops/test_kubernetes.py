"""The Kubernetes resources, as `kubectl apply -k deploy/ops` applies them.

Kubernetes does not run here; kustomize does (`make test` fetches it into .venv/bin). These tests
check what `kustomize build deploy/ops` gives: the site ConfigMap generated from the site example
(verbatim, under a name with a hash of its content that every Deployment mounts), the
Deployments' probes, ports, images and GPU requests against pipeline.monitoring.metrics, and the
site configuration as each container loads it, with its REIDSTREAM_* environment, through the
real loader. The ServiceMonitor, applied on its own, is read from its file.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipeline.config import load_config
from pipeline.monitoring.metrics import LIVE_PATH, METRICS_PATH, METRICS_PORT, READY_PATH
from pipeline.settings import ReidstreamConfig

ROOT = Path(__file__).resolve().parents[3]
OPS = ROOT / "deploy" / "ops"
#: The site example the ConfigMap is generated from.
SITE_FILE = OPS / "site.yaml"
K8S = OPS / "k8s"
#: Generates the site ConfigMap from SITE_FILE and lists the resources of K8S that are applied.
KUSTOMIZATION = OPS / "kustomization.yaml"
#: The ConfigMap's name before kustomize appends the hash of its content.
SITE_CONFIGMAP = "reidstream-site"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


@pytest.fixture(scope="module")
def k8s_sources() -> list[dict[str, Any]]:
    """The Kubernetes manifests as written, before kustomize (the ServiceMonitor included)."""
    return [doc for path in sorted(K8S.glob("*.yaml")) for doc in yaml.safe_load_all(path.open())]


@functools.cache
def kustomize_output(kustomize: str, root: Path) -> str:
    """`kustomize build root` as YAML (built once per folder)."""
    result = subprocess.run(
        [kustomize, "build", str(root)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def kustomize_build(tool) -> Callable[..., list[dict[str, Any]]]:
    """`kustomize_build(root=OPS)`: the resources `kubectl apply -k root` applies, parsed afresh
    for each call so that a test may change them."""

    def build(root: Path = OPS) -> list[dict[str, Any]]:
        return [doc for doc in yaml.safe_load_all(kustomize_output(tool("kustomize"), root)) if doc]

    return build


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


def containers(deployment: Mapping[str, Any]) -> list[dict[str, Any]]:
    return deployment["spec"]["template"]["spec"]["containers"]


def container_environ(container: Mapping[str, Any], pod_name: str) -> dict[str, str]:
    """The container's environment as the kubelet would set it (fieldRefs resolved)."""
    env = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        else:
            assert item["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name", item
            env[item["name"]] = pod_name
    return env


def test_k8s_resources_and_namespace(k8s_sources, kustomize_build):
    applied = kustomize_build()
    kinds = ["Namespace", "ConfigMap", "PersistentVolumeClaim", "Deployment", "Deployment"]
    assert sorted(d["kind"] for d in applied) == sorted([*kinds, "Service"])
    (namespace,) = by_kind(applied, "Namespace")
    name = namespace["metadata"]["name"]
    kustomization = load_yaml(KUSTOMIZATION)
    assert kustomization["namespace"] == name
    on_disk = {p.relative_to(OPS).as_posix() for p in K8S.glob("*.yaml")}
    assert on_disk - set(kustomization["resources"]) == {"k8s/servicemonitor.yaml"}
    # The files name the namespace too, so that one applied on its own (the ServiceMonitor, which
    # needs the Prometheus Operator) lands in it.
    for doc in [*k8s_sources, *applied]:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == name, doc["kind"]


def site_configmap_problems(resources: list[dict[str, Any]], site: bytes) -> list[str]:
    """Why the applied `resources` do not carry `site` (the site file's bytes) as kustomize's
    configMapGenerator does: one ConfigMap, named with a hash of its content, holding the file
    verbatim, and mounted by every Deployment under that hashed name."""
    configmaps = by_kind(resources, "ConfigMap")
    if len(configmaps) != 1:
        return [f"{len(configmaps)} ConfigMaps; expected the one generated from the site file"]
    name = configmaps[0]["metadata"]["name"]
    problems = []
    if not re.fullmatch(rf"{SITE_CONFIGMAP}-[a-z0-9]{{10}}", name):
        problems.append(f"ConfigMap {name} is not {SITE_CONFIGMAP} with a content hash")
    if configmaps[0].get("data", {}).get(SITE_FILE.name, "").encode() != site:
        problems.append(f"ConfigMap {name}: {SITE_FILE.name} is not the site file byte for byte")
    for deployment in by_kind(resources, "Deployment"):
        volumes = deployment["spec"]["template"]["spec"].get("volumes", [])
        mounted = [v["configMap"]["name"] for v in volumes if "configMap" in v]
        if mounted != [name]:
            problems.append(f"{deployment['metadata']['name']} mounts ConfigMaps {mounted}")
    return problems


def test_configmap_is_generated_from_the_site_file_and_mounted_by_every_deployment(kustomize_build):
    assert site_configmap_problems(kustomize_build(), SITE_FILE.read_bytes()) == []


def test_generated_configmap_loads(kustomize_build, tmp_path):
    (configmap,) = by_kind(kustomize_build(), "ConfigMap")
    path = tmp_path / "site.yaml"
    path.write_text(configmap["data"]["site.yaml"])
    assert load_config(ReidstreamConfig, path=path, environ={}) == load_config(
        ReidstreamConfig, path=SITE_FILE, environ={}
    )


def test_configmap_check_finds_planted_faults(kustomize_build):
    resources = kustomize_build()
    (configmap,) = by_kind(resources, "ConfigMap")
    name = configmap["metadata"]["name"]
    configmap["data"]["site.yaml"] += "# edited in the cluster\n"
    (worker,) = [d for d in by_kind(resources, "Deployment") if "worker" in d["metadata"]["name"]]
    # What a Deployment applied without kustomize (kubectl apply -f) would mount.
    for volume in worker["spec"]["template"]["spec"]["volumes"]:
        if "configMap" in volume:
            volume["configMap"]["name"] = SITE_CONFIGMAP
    assert site_configmap_problems(resources, SITE_FILE.read_bytes()) == [
        f"ConfigMap {name}: site.yaml is not the site file byte for byte",
        f"{worker['metadata']['name']} mounts ConfigMaps ['{SITE_CONFIGMAP}']",
    ]
    resources.append({**configmap, "metadata": {"name": SITE_CONFIGMAP}})
    assert site_configmap_problems(resources, SITE_FILE.read_bytes()) == [
        "2 ConfigMaps; expected the one generated from the site file"
    ]


def test_a_changed_site_file_makes_a_new_configmap_that_the_deployments_mount(
    kustomize_build, tmp_path
):
    """The hash in the name is what rolls the pods when the site configuration changes."""
    ops = tmp_path / "ops"
    shutil.copytree(OPS, ops)
    site = ops / SITE_FILE.name
    site.write_text(site.read_text() + "# changed\n")
    before, after = kustomize_build(), kustomize_build(ops)
    assert site_configmap_problems(after, site.read_bytes()) == []
    (old,), (new,) = by_kind(before, "ConfigMap"), by_kind(after, "ConfigMap")
    assert new["metadata"]["name"] != old["metadata"]["name"]


@pytest.mark.parametrize("component", ["worker", "matcher"])
def test_k8s_deployment(kustomize_build, component):
    (deployment,) = [
        d
        for d in by_kind(kustomize_build(), "Deployment")
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == component
    ]
    template = deployment["spec"]["template"]
    labels = template["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (container,) = containers(deployment)
    (port,) = container["ports"]
    assert (port["name"], port["containerPort"]) == ("metrics", METRICS_PORT)
    # a camera outage fails readiness only: liveness on /readyz would restart-loop the pod
    paths = {"startupProbe": LIVE_PATH, "livenessProbe": LIVE_PATH, "readinessProbe": READY_PATH}
    for probe, path in paths.items():
        get = container[probe]["httpGet"]
        assert get["path"] == path and get["port"] in ("metrics", METRICS_PORT), probe
    annotations = template["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(METRICS_PORT)
    assert annotations["prometheus.io/path"] == METRICS_PATH
    gpus = container["resources"].get("requests", {}).get("nvidia.com/gpu")
    if component == "worker":
        assert gpus == container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert container["image"] == f"reidstream:{VERSION}-gpu"
    else:
        assert gpus is None and container["image"] == f"reidstream:{VERSION}-cpu"
    assert container["args"][0] == component
    assert template["spec"]["securityContext"]["runAsNonRoot"] is True


@pytest.mark.parametrize("component", ["worker", "matcher"])
def test_k8s_deployment_config_loads(kustomize_build, component, tmp_path):
    """The --config path is the mounted ConfigMap key; with the container's REIDSTREAM_*
    environment it loads through the real loader."""
    applied = kustomize_build()
    (deployment,) = [
        d for d in by_kind(applied, "Deployment") if component in d["metadata"]["name"]
    ]
    (configmap,) = by_kind(applied, "ConfigMap")
    (container,) = containers(deployment)
    config_path = Path(container["args"][container["args"].index("--config") + 1])
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    (mount,) = [m for m in container["volumeMounts"] if Path(m["mountPath"]) == config_path.parent]
    assert volumes[mount["name"]]["configMap"]["name"] == configmap["metadata"]["name"]
    site = tmp_path / config_path.name
    site.write_text(configmap["data"][config_path.name])
    pod_name = f"{deployment['metadata']['name']}-7d9c5b6f4-x2k8q"
    env = container_environ(container, pod_name)
    assert env and all(name.startswith("REIDSTREAM_") for name in env)
    cfg = load_config(ReidstreamConfig, path=site, environ=env)
    assert cfg.kafka.client_id == pod_name
    assert cfg.kafka.bootstrap_servers == (env["REIDSTREAM_KAFKA__BOOTSTRAP_SERVERS"],)
    assert cfg.metrics.address == f"0.0.0.0:{METRICS_PORT}"  # the kubelet probes the pod's IP


def test_k8s_metrics_service_reaches_every_pod(k8s_sources, kustomize_build):
    applied = kustomize_build()
    (service,) = by_kind(applied, "Service")
    assert service["spec"]["publishNotReadyAddresses"] is True  # scraped through outages
    selector = service["spec"]["selector"]
    deployments = by_kind(applied, "Deployment")
    assert len(deployments) == 2
    for deployment in deployments:
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), deployment["metadata"]["name"]
        ports = {p["name"]: p["containerPort"] for c in containers(deployment) for p in c["ports"]}
        for port in service["spec"]["ports"]:
            assert ports[port["targetPort"]] == port["port"] == METRICS_PORT
    (monitor,) = by_kind(k8s_sources, "ServiceMonitor")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {
        p["name"] for p in service["spec"]["ports"]
    }
    assert all(e["path"] == METRICS_PATH for e in monitor["spec"]["endpoints"])
