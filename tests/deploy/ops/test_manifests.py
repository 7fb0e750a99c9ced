"""The container, compose, Prometheus and Grafana files of deploy/ops agree with each other and
with the code they deploy.

Docker does not run here, so these tests read the files and check the references between them:
the metrics port and health path (pipeline.monitoring.metrics) in the Dockerfiles, compose and
Prometheus; every metric a dashboard or alerting rule names is declared in
pipeline/monitoring/metrics.py; the site configuration loads through the real config loader as
compose and the images give it (file, command line). Prometheus' own checker, promtool, checks
its configuration as compose mounts it. The Kubernetes resources are checked in
test_kubernetes.py.

The checkers return lists of problems; the tests that plant a fault show that each can fail.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from pipeline.config import load_config
from pipeline.monitoring.metrics import (
    LIVE_PATH,
    METRICS_PATH,
    METRICS_PORT,
    MetricInfo,
    PipelineMetrics,
)
from pipeline.settings import ReidstreamConfig

ROOT = Path(__file__).resolve().parents[3]
#: Container, Prometheus, Grafana and Kubernetes files, apart from the engine code of deploy/.
OPS = ROOT / "deploy" / "ops"
COMPOSE_FILE = OPS / "compose.yaml"
#: The site example: compose mounts it, the images copy it, kustomize makes the ConfigMap of it.
SITE_FILE = OPS / "site.yaml"
DOCKER_DIR = OPS / "docker"
PROMETHEUS_DIR = OPS / "prometheus"
DASHBOARD_DIR = OPS / "grafana" / "dashboards"
#: The compose service that runs the pipeline, and the one that runs the broker.
PIPELINE_SERVICE, KAFKA_SERVICE = "reidstream", "kafka"
#: Labels Prometheus adds to every scraped series (target labels).
TARGET_LABELS = {"instance", "job"}
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE_FILE)


@pytest.fixture(scope="module")
def known_series() -> dict[str, MetricInfo]:
    return PipelineMetrics().series_names()


def mounts(service: Mapping[str, Any]) -> dict[str, str]:
    """Compose short-syntax volumes of a service: container path -> host path or volume name."""
    out = {}
    for spec in service.get("volumes", []):
        source, target = spec.split(":")[:2]
        out[target] = source
    return out


def bind_mounts(service: Mapping[str, Any]) -> dict[str, Path]:
    """The host files and folders a compose service mounts: container path -> host path.

    Compose resolves a relative host path against the compose file's folder, not the working
    directory; sources that are not paths are named volumes.
    """
    return {
        target: (COMPOSE_FILE.parent / source).resolve()
        for target, source in mounts(service).items()
        if source.startswith((".", "/"))
    }


def published(service: Mapping[str, Any]) -> dict[int, int]:
    """Compose `ports` of a service: container port -> host port."""
    out = {}
    for spec in map(str, service.get("ports", [])):
        parts = spec.split(":")  # [ip:]host:container, or container alone
        out[int(parts[-1])] = int(parts[-2] if len(parts) > 1 else parts[-1])
    return out


# ------------------------------------------------------------------------------------ parsing


def test_every_manifest_parses():
    files = [*sorted(OPS.rglob("*.yaml")), *sorted(OPS.rglob("*.yml"))]
    assert COMPOSE_FILE in files and SITE_FILE in files
    for path in files:
        docs = list(yaml.safe_load_all(path.read_text()))
        assert docs and all(doc is not None for doc in docs), path
    jsons = sorted(OPS.rglob("*.json"))
    assert DASHBOARD_DIR / "reidstream.json" in jsons
    for path in jsons:
        assert isinstance(json.loads(path.read_text()), dict), path


# ------------------------------------------------------------------------- PromQL references

_METRIC = re.compile(r"\breidstream_\w+")
_SELECTOR = re.compile(r"\b(reidstream_\w+)\s*\{([^}]*)\}")
_MATCHER = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")
_LABEL_VALUES = re.compile(r"label_values\(\s*(reidstream_\w+)\s*,\s*(\w+)\s*\)")


def promql_problems(exprs: Iterable[str], known: Mapping[str, MetricInfo]) -> list[str]:
    """Metrics not declared in pipeline/monitoring/metrics.py, and labels those metrics do not have.

    `known` maps every exposed series name (`x_total`, `x_bucket`, `x_sum`, ...) to its family.
    """
    problems = []
    for expr in exprs:
        names = set(_METRIC.findall(expr))
        problems += [f"{expr!r}: unknown metric {n}" for n in sorted(names - set(known))]
        allowed = TARGET_LABELS | {"le"}
        allowed |= {label for n in names & set(known) for label in known[n].labels}
        for name, body in _SELECTOR.findall(expr):
            if name in known:
                own = TARGET_LABELS | set(known[name].labels)
                own |= {"le"} if name.endswith("_bucket") else set()
                bad = sorted(set(_MATCHER.findall(body)) - own)
                problems += [f"{expr!r}: {name} has no label {label}" for label in bad]
        for group in _GROUPING.findall(expr):
            labels = {label.strip() for label in group.split(",") if label.strip()}
            problems += [f"{expr!r}: no metric has label {b}" for b in sorted(labels - allowed)]
        for name, label in _LABEL_VALUES.findall(expr):
            if name in known and label not in set(known[name].labels) | TARGET_LABELS:
                problems.append(f"{expr!r}: {name} has no label {label}")
    return problems


def dashboard_exprs(dashboard: Mapping[str, Any]) -> Iterator[str]:
    """Every PromQL expression of a Grafana dashboard: panel targets (rows too) and variables."""

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            yield target["expr"]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        yield query["query"] if isinstance(query, dict) else str(query or "")


def rule_exprs(rules: Mapping[str, Any]) -> Iterator[str]:
    for group in rules["groups"]:
        for rule in group["rules"]:
            yield str(rule["expr"])


def dashboards() -> list[Path]:
    return sorted(DASHBOARD_DIR.glob("*.json"))


@pytest.mark.parametrize("path", dashboards(), ids=lambda p: p.name)
def test_dashboard_metrics_exist(path, known_series):
    exprs = list(dashboard_exprs(json.loads(path.read_text())))
    assert exprs
    assert promql_problems(exprs, known_series) == []


def test_alerting_rules_metrics_exist(known_series):
    exprs = list(rule_exprs(load_yaml(PROMETHEUS_DIR / "rules.yml")))
    assert exprs
    assert promql_problems(exprs, known_series) == []


def test_metric_check_finds_a_planted_unknown_metric(known_series):
    dashboard = json.loads((DASHBOARD_DIR / "reidstream.json").read_text())
    dashboard["panels"][-1]["targets"].append(
        {"refId": "Z", "expr": "sum(rate(reidstream_frames_eaten_total[5m]))"}
    )
    dashboard["panels"].append(  # a counter has no _bucket series
        {"type": "row", "panels": [{"targets": [{"expr": "reidstream_frames_in_bucket"}]}]}
    )
    problems = promql_problems(dashboard_exprs(dashboard), known_series)
    assert problems == [
        "'sum(rate(reidstream_frames_eaten_total[5m]))': unknown metric "
        "reidstream_frames_eaten_total",
        "'reidstream_frames_in_bucket': unknown metric reidstream_frames_in_bucket",
    ]


def test_label_check_finds_planted_unknown_labels(known_series):
    exprs = [
        'sum by (gpu) (rate(reidstream_frames_in_total{stage="embed"}[1m]))',
        "label_values(reidstream_queue_depth, camera)",
        # Valid: a histogram's bucket has `le`; target labels exist on every series.
        "histogram_quantile(0.9, sum by (le, instance) (rate("
        'reidstream_stage_latency_seconds_bucket{stage="embed", le!="+Inf"}[1m])))',
    ]
    assert promql_problems(exprs, known_series) == [
        f"{exprs[0]!r}: reidstream_frames_in_total has no label stage",
        f"{exprs[0]!r}: no metric has label gpu",
        f"{exprs[1]!r}: reidstream_queue_depth has no label camera",
    ]


def test_dashboard_shows_every_pipeline_metric(known_series):
    text = " ".join(dashboard_exprs(json.loads((DASHBOARD_DIR / "reidstream.json").read_text())))
    used = {known_series[name].name for name in _METRIC.findall(text)}
    declared = {info.name for info in known_series.values() if info.kind != "info"}
    assert declared - used == set()
    for quantile in ("0.5", "0.99"):
        assert f"histogram_quantile({quantile}, sum by (stage, le) (rate(" in text
    assert "histogram_quantile(0.99, sum by (le) (rate(reidstream_frame_to_link" in text


# ------------------------------------------------------------------------------- Dockerfiles


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, buffer = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not buffer):
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        keyword, _, args = buffer.partition(" ")
        out.append((keyword.upper(), args.strip()))
        buffer = ""
    return out


def image_pin_problem(image: str) -> str | None:
    """Why `image` is not pinned to a fixed version, or None if it is."""
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    tag = last.partition(":")[2]
    if not tag:
        return f"{image}: no tag (means :latest)"
    if tag == "latest":
        return f"{image}: the :latest tag moves"
    return None


def dockerfile_problems(text: str, *, port: int) -> list[str]:
    """Unpinned base, missing EXPOSE/HEALTHCHECK of `port` or its bind to every interface, root
    user, wrong entrypoint."""
    instructions = dockerfile_instructions(text)
    problems, args = [], {}
    for keyword, rest in instructions:
        if keyword == "ARG" and "=" in rest:
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip()
        elif keyword == "FROM":
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m[1], m[0]), rest.split()[0])
            problems.append(image_pin_problem(image))
    found = dict(instructions)  # the last of each instruction counts
    exposed = {p.split("/")[0] for p in found.get("EXPOSE", "").split()}
    if str(port) not in exposed:
        problems.append(f"EXPOSE {found.get('EXPOSE')!r} lacks the metrics port {port}")
    if f":{port}{LIVE_PATH}" not in found.get("HEALTHCHECK", ""):
        problems.append(f"HEALTHCHECK does not request :{port}{LIVE_PATH}")
    env = [rest for keyword, rest in instructions if keyword == "ENV"]
    if f"REIDSTREAM_METRICS__ADDRESS=0.0.0.0:{port}" not in env:  # the default is loopback
        problems.append(f"ENV does not set REIDSTREAM_METRICS__ADDRESS=0.0.0.0:{port}")
    if found.get("USER", "root").split(":")[0] in ("root", "0"):
        problems.append(f"runs as root (USER {found.get('USER')!r})")
    entrypoint = json.loads(found.get("ENTRYPOINT", "[]"))
    if not entrypoint or entrypoint[-1] != "reidstream":
        problems.append(f"ENTRYPOINT {entrypoint!r} does not end in reidstream")
    return [p for p in problems if p]


def dockerfiles() -> list[Path]:
    return sorted(DOCKER_DIR.glob("Dockerfile*"))


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.name)
def test_dockerfile(path):
    assert dockerfile_problems(path.read_text(), port=METRICS_PORT) == []


def test_dockerfile_check_finds_planted_faults():
    planted = "\n".join(
        [
            "ARG BASE=nvcr.io/nvidia/pytorch:latest",
            "FROM ${BASE}",
            "FROM python",
            "EXPOSE 8080",
            'HEALTHCHECK CMD ["curl", "http://127.0.0.1:8080/healthz"]',
            'ENTRYPOINT ["python", "-m", "pipeline"]',
        ]
    )
    assert dockerfile_problems(planted, port=9400) == [
        "nvcr.io/nvidia/pytorch:latest: the :latest tag moves",
        "python: no tag (means :latest)",
        "EXPOSE '8080' lacks the metrics port 9400",
        "HEALTHCHECK does not request :9400/livez",
        "ENV does not set REIDSTREAM_METRICS__ADDRESS=0.0.0.0:9400",
        "runs as root (USER None)",
        "ENTRYPOINT ['python', '-m', 'pipeline'] does not end in reidstream",
    ]


def test_gpu_image_ships_tensorrt():
    text = (DOCKER_DIR / "Dockerfile.gpu").read_text()
    args = dict(i for i in dockerfile_instructions(text) if i[0] == "ARG")
    assert args["ARG"].startswith("BASE_IMAGE=nvcr.io/nvidia/pytorch:")
    assert "import cv2, tensorrt, torch_tensorrt" in text


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.name)
def test_image_default_config_is_the_site_example(path):
    """The --config file of the default command is copied in from the one site example."""
    instructions = dockerfile_instructions(path.read_text())
    command = json.loads(dict(instructions)["CMD"])
    config = command[command.index("--config") + 1]
    copied = [rest.split() for keyword, rest in instructions if keyword == "COPY"]
    (source,) = [words[0] for words in copied if words[-1] == config]
    assert (ROOT / source).resolve() == SITE_FILE  # relative to the build context, the root


def dockerignore_patterns(text: str) -> list[tuple[re.Pattern[str], bool]]:
    """The lines of a .dockerignore as (regex, is_exception), in file order."""
    table = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    out = []
    for line in map(str.strip, text.splitlines()):
        if not line or line.startswith("#"):
            continue
        pattern = line.removeprefix("!").strip("/")
        tokens = re.split(r"(\*\*/|\*\*|\*|\?|\[[^]]*\])", pattern)
        regex = "".join(
            table.get(tok, tok if tok.startswith("[") else re.escape(tok)) for tok in tokens
        )
        out.append((re.compile(regex), line.startswith("!")))
    return out


def dockerignored(path: str, patterns: list[tuple[re.Pattern[str], bool]]) -> bool:
    """Whether Docker leaves `path` (relative to the context, with /) out of the build context.

    As Docker's own matcher does: the last pattern that matches the path or one of its parent
    folders decides, so an exception (`!x`) re-admits what an earlier pattern excluded.
    """
    parts = path.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    ignored = False
    for regex, exception in patterns:
        if any(regex.fullmatch(candidate) for candidate in candidates):
            ignored = not exception
    return ignored


def test_dockerignore_keeps_what_the_build_copies_and_no_more():
    patterns = dockerignore_patterns((ROOT / ".dockerignore").read_text())
    for path in dockerfiles():
        for keyword, rest in dockerfile_instructions(path.read_text()):
            if keyword == "COPY" and not rest.startswith("--from"):
                for source in rest.split()[:-1]:
                    assert not dockerignored(source, patterns), (path.name, source)
    for package in ("reid_models", "detectors", "deploy", "trainers", "pipeline"):
        assert not dockerignored(f"{package}/__init__.py", patterns), package
    # Of deploy/ops only the site example enters the image; compose, Prometheus, Grafana and
    # Kubernetes files (and the test tools' script) stay out.
    ops_files = [p.relative_to(ROOT).as_posix() for p in OPS.rglob("*") if p.is_file()]
    assert [f for f in ops_files if not dockerignored(f, patterns)] == ["deploy/ops/site.yaml"]
    for path in ("tests/conftest.py", ".venv/bin/python", "runs/demo/links.jsonl"):
        assert dockerignored(path, patterns), path
    assert dockerignored("pipeline/__pycache__/cli.cpython-311.pyc", patterns)


def test_dockerignore_check_follows_dockers_order():
    patterns = dockerignore_patterns("*\n!deploy\ndeploy/ops\n!deploy/ops/site.yaml\n**/*.py[co]")
    assert not dockerignored("deploy/export.py", patterns)
    assert dockerignored("deploy/engines/base.pyc", patterns)
    assert dockerignored("deploy/ops/compose.yaml", patterns)
    assert not dockerignored("deploy/ops/site.yaml", patterns)
    assert dockerignored("README.md", patterns)
    # An exception before the exclusion it should undo is overridden by it.
    patterns = dockerignore_patterns("*\n!deploy\n!deploy/ops/site.yaml\ndeploy/ops")
    assert dockerignored("deploy/ops/site.yaml", patterns)


# ------------------------------------------------------------------------------------ compose


def test_compose_images_are_pinned(compose):
    for name, service in compose["services"].items():
        assert image_pin_problem(service["image"]) is None, name
    assert compose["services"][PIPELINE_SERVICE]["image"] == f"reidstream:{VERSION}-gpu"


def test_compose_bind_mounts_exist(compose):
    """Every host path compose mounts is in the repository (models/ is the operator's)."""
    for name, service in compose["services"].items():
        for target, source in bind_mounts(service).items():
            assert source.is_relative_to(ROOT), (name, target, source)
            assert source.exists() or target == "/models", (name, target, source)


def test_compose_runs_the_pipeline_on_a_gpu_with_the_site_config(compose):
    service = compose["services"][PIPELINE_SERVICE]
    context = (COMPOSE_FILE.parent / service["build"]["context"]).resolve()
    assert context == ROOT  # the .dockerignore there applies, and COPY paths are from the root
    assert (context / service["build"]["dockerfile"]).parent == DOCKER_DIR
    command = service["command"]
    assert command[:2] == ["run", "--config"]
    assert bind_mounts(service)[command[2]] == SITE_FILE
    assert bind_mounts(service)["/models"] == ROOT / "models"
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert published(service)[METRICS_PORT] == METRICS_PORT
    assert service["depends_on"][KAFKA_SERVICE]["condition"] == "service_healthy"
    site = load_yaml(SITE_FILE)
    # the published port reaches the endpoint only where it listens on every interface
    assert site["metrics"]["address"] == f"0.0.0.0:{METRICS_PORT}"
    cache = Path(site["reid"]["tensorrt"]["cache_dir"])
    assert any(cache.is_relative_to(target) for target in mounts(service))


def listener_map(value: str) -> dict[str, tuple[str, int]]:
    """'NAME://host:port,...' -> {NAME: (host, port)}."""
    out = {}
    for item in value.split(","):
        name, _, address = item.strip().partition("://")
        host, _, port = address.rpartition(":")
        out[name] = (host, int(port))
    return out


def test_compose_kafka_is_a_kraft_broker_the_pipeline_reaches(compose):
    service = compose["services"][KAFKA_SERVICE]
    env = {k: str(v) for k, v in service["environment"].items()}
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    listeners = listener_map(env["KAFKA_LISTENERS"])
    advertised = listener_map(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(
        item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert set(listeners) == set(protocols)
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    assert controller in listeners and controller not in advertised
    hostname = service.get("hostname", KAFKA_SERVICE)
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == (
        f"{env['KAFKA_NODE_ID']}@{hostname}:{listeners[controller][1]}"
    )
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    for name, (host, port) in advertised.items():
        assert listeners[name][1] == port, name
        if host not in (KAFKA_SERVICE, hostname):  # the host-facing listener is published
            assert published(service)[port] == port, name
    # The pipeline bootstraps from the in-network listener.
    site = load_config(ReidstreamConfig, path=SITE_FILE, environ={})
    in_network = {f"{h}:{p}" for h, p in advertised.values() if h == KAFKA_SERVICE}
    assert set(site.kafka.bootstrap_servers) <= in_network
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16
    assert env["KAFKA_LOG_DIRS"] in mounts(service)


def container_config_file(service: Mapping[str, Any]) -> PurePosixPath:
    """The --config.file= of the compose service of Prometheus, a path in its container."""
    (flag,) = [arg for arg in service["command"] if arg.startswith("--config.file=")]
    return PurePosixPath(flag.partition("=")[2])


def test_prometheus_scrapes_the_pipeline(compose):
    config = load_yaml(PROMETHEUS_DIR / "prometheus.yml")
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "reidstream"]
    assert job.get("metrics_path", "/metrics") == METRICS_PATH
    targets = [t for group in job["static_configs"] for t in group["targets"]]
    assert targets == [f"{PIPELINE_SERVICE}:{METRICS_PORT}"]
    service = compose["services"]["prometheus"]
    files = bind_mounts(service)
    config_file = container_config_file(service)
    assert files[str(config_file)] == PROMETHEUS_DIR / "prometheus.yml"
    for rule_file in config["rule_files"]:  # Prometheus resolves them from the config's folder
        assert files[str(config_file.parent / rule_file)].is_file(), rule_file


def test_a_missing_tool_fails_the_test_saying_how_to_get_it(tool):
    with pytest.raises(pytest.fail.Exception, match=r"`make test` installs it into \.venv/bin"):
        tool("reidstream-no-such-tool")


@pytest.fixture
def prometheus_container_files(compose, tmp_path) -> Path:
    """The files the Prometheus container sees, laid out under tmp_path; returns its config file.

    Every host file or folder the compose service binds is copied, unchanged, to its container
    path under tmp_path. Prometheus resolves the config's relative paths (rule_files) against
    the config file's folder, so promtool finds them here as Prometheus does in the container;
    an absolute container path such as /etc/prometheus/rules.yml would instead be looked up on
    this machine, which is why the config names its rules relatively.
    """
    service = compose["services"]["prometheus"]
    for target, source in bind_mounts(service).items():
        dest = tmp_path / target.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, dest)
        else:
            shutil.copyfile(source, dest)
    return tmp_path / str(container_config_file(service)).lstrip("/")


def promtool_check_config(promtool: str, config_file: Path, cwd: Path) -> tuple[int, str]:
    """`promtool check config`: its exit status and output (it reports on stdout and stderr).

    `cwd` is the root of the laid-out files, beside none of the files the config names, so that
    a path resolved against the working directory instead of the config's folder is not found.
    """
    result = subprocess.run(
        [promtool, "check", "config", str(config_file)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )
    return result.returncode, result.stdout + result.stderr


def test_promtool_accepts_the_config_as_compose_runs_it(prometheus_container_files, tmp_path, tool):
    """promtool is Debian bookworm's (2.42) and compose runs Prometheus 3.5; the configuration
    uses no field that changed between them, and both reject unknown fields."""
    status, output = promtool_check_config(
        tool("promtool"), prometheus_container_files, cwd=tmp_path
    )
    assert status == 0, output
    config = load_yaml(prometheus_container_files)
    rules = [load_yaml(prometheus_container_files.parent / f) for f in config["rule_files"]]
    assert f"SUCCESS: {len(config['rule_files'])} rule files found" in output
    n_rules = sum(len(group["rules"]) for r in rules for group in r["groups"])
    assert f"SUCCESS: {n_rules} rules found" in output


@pytest.mark.parametrize("fault", ["bad rule expression", "missing rule file"])
def test_promtool_check_finds_planted_faults(prometheus_container_files, tmp_path, tool, fault):
    (rule_file,) = load_yaml(prometheus_container_files)["rule_files"]
    rules_path = prometheus_container_files.parent / rule_file
    if fault == "missing rule file":
        rules_path.unlink()
        expected = "does not point to an existing file"
    else:
        rules = load_yaml(rules_path)
        rules["groups"][0]["rules"][0]["expr"] = "rate(reidstream_frames_in_total[5m]"
        rules_path.write_text(yaml.safe_dump(rules))
        expected = "could not parse expression"
    status, output = promtool_check_config(
        tool("promtool"), prometheus_container_files, cwd=tmp_path
    )
    assert status != 0 and expected in output, output


def test_grafana_provisions_the_datasource_and_dashboard(compose):
    service = compose["services"]["grafana"]
    files = bind_mounts(service)
    provisioning = files["/etc/grafana/provisioning"]
    (source,) = load_yaml(provisioning / "datasources" / "prometheus.yml")["datasources"]
    host, _, port = source["url"].removeprefix("http://").partition(":")
    assert host in compose["services"] and int(port) in published(compose["services"][host])
    (provider,) = load_yaml(provisioning / "dashboards" / "reidstream.yml")["providers"]
    assert files[provider["options"]["path"]] == DASHBOARD_DIR
    home = Path(service["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert (DASHBOARD_DIR / home.relative_to(provider["options"]["path"])).is_file()
    for path in dashboards():
        dashboard = json.loads(path.read_text())
        uids = {
            p["datasource"]["uid"]
            for p in dashboard["panels"] + dashboard["templating"]["list"]
            if "datasource" in p
        }
        assert uids == {source["uid"]}, path.name


# -------------------------------------------------------------------------- configuration


def test_site_config_loads():
    cfg = load_config(ReidstreamConfig, path=SITE_FILE, environ={})
    assert cfg.reid.engine == "tensorrt" and cfg.detector.missing() == []
    assert cfg.reid.missing() == []


def test_cpu_image_default_command_loads():
    text = (DOCKER_DIR / "Dockerfile.cpu").read_text()
    command = json.loads(dict(dockerfile_instructions(text))["CMD"])
    overrides = [item for item in command if "=" in item]
    cfg = load_config(ReidstreamConfig, path=SITE_FILE, environ={}, overrides=overrides)
    assert (cfg.device, cfg.reid.engine, cfg.reid.precision) == ("cpu", "onnxruntime", "fp32")
