"""Every alerting rule fires on the metrics of each role it watches (`promtool test rules`).

A role exports only some of the declared metrics: a worker has cameras and publishes embeddings
but never links, a matcher has no camera and publishes links. An alert written for one role's
series can therefore never fire on another (the publish alert once joined errors to
`reidstream_links_published_total` with `and`, which a worker never has). Each case below gives
promtool the series a failing role exports, and promtool checks that the alert fires with the
expected labels; `ROLE_EXPORTS` keeps the cases to what each role exports.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipeline.monitoring.metrics import PipelineMetrics

RULES = Path(__file__).resolve().parents[3] / "deploy" / "ops" / "prometheus" / "rules.yml"

_CAMERA_SIDE = {
    "reidstream_frames_in_total", "reidstream_frames_dropped_total",
    "reidstream_frames_rejected_total", "reidstream_camera_connected", "reidstream_camera_fps",
    "reidstream_camera_reconnects_total", "reidstream_crops_rejected_total",
    "reidstream_nonfinite_embeddings_total", "reidstream_queue_depth",
    "reidstream_queue_capacity",
}  # fmt: skip
_EVERY_ROLE = {
    "up", "reidstream_build_info", "reidstream_batch_size_count", "reidstream_batch_size_bucket",
    "reidstream_stage_latency_seconds_bucket", "reidstream_stage_errors_total",
    "reidstream_publish_errors_total", "reidstream_spool_messages", "reidstream_spool_bytes",
    "reidstream_messages_lost_total",
}  # fmt: skip
_LINK_SIDE = {
    "reidstream_links_published_total", "reidstream_gallery_identities",
    "reidstream_frame_to_link_latency_seconds_bucket",
}  # fmt: skip
#: The series each role exports (from the code: the worker's sink sends embeddings and tracklet
#: ends, the matcher's links; only the job's sources create camera series).
ROLE_EXPORTS = {
    "worker": _EVERY_ROLE | _CAMERA_SIDE | {"reidstream_embeddings_published_total"},
    "matcher": _EVERY_ROLE | _LINK_SIDE | {"reidstream_records_rejected_total"},
    "run": _EVERY_ROLE | _CAMERA_SIDE | _LINK_SIDE,
}
#: The roles each alert watches.
ALERT_ROLES = {
    "ReidstreamCameraDisconnected": ("worker", "run"),
    "ReidstreamFramesDropped": ("worker", "run"),
    "ReidstreamFrameToLinkLatencyHigh": ("matcher", "run"),
    "ReidstreamPublishFailing": ("worker", "matcher", "run"),
    "ReidstreamSpoolGrowing": ("worker", "matcher", "run"),
    "ReidstreamNonFiniteEmbeddings": ("worker", "run"),
    "ReidstreamStageErrors": ("worker", "matcher", "run"),
    "ReidstreamMatcherNotMatching": ("matcher",),
    "ReidstreamDown": ("worker", "matcher", "run"),
    "ReidstreamMessagesLost": ("worker", "matcher", "run"),
    "ReidstreamRecordsRejected": ("matcher",),
}
EVAL = "25m"  # 30 one-minute samples: long enough for every rule's `for`


@dataclass(frozen=True)
class Case:
    """Series of a failing role, and the labels of the alert that must fire (None: none)."""

    alert: str
    role: str
    series: dict[str, str]
    labels: dict[str, str] | None = field(default_factory=dict)

    @property
    def instance(self) -> str:
        return f"{self.role}-1:9400"


def _s(name: str, role: str, **labels: str) -> str:
    labels = {"instance": f"{role}-1:9400", "job": "reidstream", **labels}
    return name + "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def _cases_for(role: str) -> list[Case]:
    inst = {"instance": f"{role}-1:9400"}
    job = {**inst, "job": "reidstream"}
    sink = "embeddings" if role == "worker" else "links"
    cases = [
        Case("ReidstreamPublishFailing", role,
             {_s("reidstream_publish_errors_total", role, sink="kafka"): "0+2x30"},
             {**inst, "sink": "kafka"}),
        Case("ReidstreamPublishFailing", role,  # errors, but deliveries go on: no alert
             {_s("reidstream_publish_errors_total", role, sink="kafka"): "0+2x30",
              _s(f"reidstream_{sink}_published_total", role, sink="kafka"): "0+50x30"},
             None),
        Case("ReidstreamSpoolGrowing", role,
             {_s("reidstream_spool_messages", role): "1000+50x30"}, job),
        Case("ReidstreamStageErrors", role,
             {_s("reidstream_stage_errors_total", role, stage="embed" if role == "worker"
                 else "match"): "0+1x30"},
             {**inst, "stage": "embed" if role == "worker" else "match"}),
        Case("ReidstreamDown", role, {_s("up", role): "1 0x29"}, job),
        Case("ReidstreamMessagesLost", role,
             {_s("reidstream_messages_lost_total", role, sink="kafka", kind=sink): "0+1x30"},
             {**job, "sink": "kafka", "kind": sink}),
    ]  # fmt: skip
    if role != "matcher":
        camera = {**job, "camera": "c1"}
        cases += [
            Case("ReidstreamCameraDisconnected", role,
                 {_s("reidstream_camera_connected", role, camera="c1"): "1 0x29"}, camera),
            Case("ReidstreamFramesDropped", role,
                 {_s("reidstream_frames_in_total", role, camera="c1"): "0+100x30",
                  _s("reidstream_frames_dropped_total", role, camera="c1"): "0+20x30"},
                 {**inst, "camera": "c1"}),
            Case("ReidstreamNonFiniteEmbeddings", role,
                 {_s("reidstream_nonfinite_embeddings_total", role, camera="c1"): "0+1x30"},
                 camera),
        ]  # fmt: skip
    if role != "worker":
        bucket = "reidstream_frame_to_link_latency_seconds_bucket"
        cases.append(
            Case("ReidstreamFrameToLinkLatencyHigh", role,
                 {_s(bucket, role, camera="c1", le="4"): "0x30",
                  _s(bucket, role, camera="c1", le="8"): "0+10x30",
                  _s(bucket, role, camera="c1", le="+Inf"): "0+10x30"}, inst),
        )  # fmt: skip
    return cases


#: The site-wide case: workers publish embeddings, the matcher matches none (then: some).
_NOT_MATCHING = {
    _s("reidstream_embeddings_published_total", "worker", sink="kafka"): "0+50x30",
    _s("reidstream_batch_size_count", "matcher", stage="match"): "7x30",
}
_REJECTED = _s("reidstream_records_rejected_total", "matcher", consumer="matcher", reason="schema")
CASES = [
    *(case for role in ("worker", "matcher", "run") for case in _cases_for(role)),
    Case("ReidstreamRecordsRejected", "matcher", {_REJECTED: "0+1x30"},
         {"instance": "matcher-1:9400", "consumer": "matcher", "reason": "schema"}),
    Case("ReidstreamRecordsRejected", "matcher", {_REJECTED: "3x30"}, None),  # none lately
    Case("ReidstreamMatcherNotMatching", "matcher", _NOT_MATCHING, {}),
    Case("ReidstreamMatcherNotMatching", "matcher",
         {**_NOT_MATCHING, _s("reidstream_batch_size_count", "matcher", stage="match"): "0+9x30"},
         None),
]  # fmt: skip


def _rules() -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def _expand(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*\$labels\.(\w+)\s*\}\}", lambda m: labels.get(m[1], ""), template)


def promtool_test_file(cases: list[Case], rules_file: Path) -> dict[str, Any]:
    """A `promtool test rules` document: one test group per case."""
    rules, tests = _rules(), []
    for case in cases:
        expected = []
        if case.labels is not None:
            rule = rules[case.alert]
            labels = {**case.labels, **rule.get("labels", {})}
            notes = {k: _expand(v, labels) for k, v in rule.get("annotations", {}).items()}
            expected = [{"exp_labels": labels, "exp_annotations": notes}]
        tests.append(
            {
                "name": f"{case.alert} on a {case.role}",
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in case.series.items()],
                "alert_rule_test": [
                    {"eval_time": EVAL, "alertname": case.alert, "exp_alerts": expected}
                ],
            }
        )
    return {"rule_files": [str(rules_file)], "evaluation_interval": "1m", "tests": tests}


def run_promtool(promtool: str, cases: list[Case], rules_file: Path, tmp: Path) -> tuple[int, str]:
    path = tmp / "rules_test.yml"
    path.write_text(yaml.safe_dump(promtool_test_file(cases, rules_file), sort_keys=False))
    result = subprocess.run(
        [promtool, "test", "rules", str(path)], capture_output=True, text=True, timeout=120
    )
    return result.returncode, result.stdout + result.stderr


def test_every_alert_fires_on_each_role_it_watches(tmp_path, tool):
    status, output = run_promtool(tool("promtool"), CASES, RULES, tmp_path)
    assert status == 0, output
    assert "SUCCESS" in output


def test_every_alert_has_a_firing_case_per_role():
    assert set(ALERT_ROLES) == set(_rules())
    firing = {(c.alert, c.role) for c in CASES if c.labels is not None}
    assert {(a, r) for a, roles in ALERT_ROLES.items() for r in roles} <= firing


def test_cases_use_only_what_their_roles_export():
    declared = PipelineMetrics().series_names()
    for case in CASES:
        for series in case.series:
            name, role = series.split("{")[0], re.search(r'instance="(\w+)-1', series)[1]
            assert name in ROLE_EXPORTS[role], (case.alert, series)
            assert name == "up" or name in declared, series


def test_an_alert_that_cannot_fire_on_a_worker_is_caught(tmp_path, tool):
    """The publish rule as it was: errors `and` no links, which a worker never exports."""
    rules = yaml.safe_load(RULES.read_text())
    for rule in rules["groups"][0]["rules"]:
        if rule["alert"] == "ReidstreamPublishFailing":
            rule["expr"] = (
                "rate(reidstream_publish_errors_total[5m]) > 0 "
                "and rate(reidstream_links_published_total[5m]) == 0"
            )
    planted = tmp_path / "rules.yml"
    planted.write_text(yaml.safe_dump(rules))
    worker = [c for c in CASES if c.alert == "ReidstreamPublishFailing" and c.role == "worker"]
    status, output = run_promtool(tool("promtool"), worker, planted, tmp_path)
    assert status != 0 and "ReidstreamPublishFailing" in output, output
