"""The pipeline's metrics: every family declared with its kind and labels, exposed as declared.

The expected table below is written out by hand on purpose: it is the contract the dashboards,
alerting rules and consumers of `/metrics` rely on, so a renamed metric or label fails here.
"""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.monitoring.metrics import METRICS, REGISTRY, MetricInfo, PipelineMetrics

#: family -> (kind, labels)
EXPECTED = {
    "reidstream_frames_in": ("counter", ("camera",)),
    "reidstream_frames_dropped": ("counter", ("camera",)),
    "reidstream_camera_connected": ("gauge", ("camera",)),
    "reidstream_camera_fps": ("gauge", ("camera",)),
    "reidstream_camera_reconnects": ("counter", ("camera",)),
    "reidstream_frames_rejected": ("counter", ("camera",)),
    "reidstream_crops_rejected": ("counter", ("camera", "reason")),
    "reidstream_queue_depth": ("gauge", ("stage",)),
    "reidstream_queue_capacity": ("gauge", ("stage",)),
    "reidstream_batch_size": ("histogram", ("stage",)),
    "reidstream_stage_latency_seconds": ("histogram", ("stage",)),
    "reidstream_stage_errors": ("counter", ("stage",)),
    "reidstream_frame_to_link_latency_seconds": ("histogram", ("camera",)),
    "reidstream_links_published": ("counter", ("sink",)),
    "reidstream_embeddings_published": ("counter", ("sink",)),
    "reidstream_publish_errors": ("counter", ("sink",)),
    "reidstream_messages_lost": ("counter", ("sink", "kind")),
    "reidstream_spool_messages": ("gauge", ()),
    "reidstream_spool_bytes": ("gauge", ()),
    "reidstream_nonfinite_embeddings": ("counter", ("camera",)),
    "reidstream_gallery_identities": ("gauge", ()),
    "reidstream_match_refusals": ("counter", ("reason",)),
    "reidstream_records_rejected": ("counter", ("consumer", "reason")),
    "reidstream_build": ("info", ()),
}


def touch_every_metric(metrics: PipelineMetrics) -> None:
    """Gives every family one sample; `.labels()` raises unless the label names are exact."""
    for family, info in metrics.declared.items():
        metric = metrics.metric(family)
        child = metric.labels(**{name: "x" for name in info.labels}) if info.labels else metric
        if info.kind == "counter":
            child.inc()
        elif info.kind == "gauge":
            child.set(3)
        elif info.kind == "histogram":
            child.observe(0.02)
        else:
            child.info({"version": "0"})


def exposition(registry: CollectorRegistry) -> dict[str, tuple[str, set[str]]]:
    """Family name -> (type, label names of its samples) parsed from the text exposition."""
    text = generate_latest(registry).decode()
    out = {}
    for family in text_string_to_metric_families(text):
        labels = {name for sample in family.samples for name in sample.labels} - {"le"}
        out[family.name] = (family.type, labels)
    return out


def test_fresh_registry_declares_every_metric_with_its_kind_and_labels():
    registry = CollectorRegistry()
    metrics = PipelineMetrics(registry)
    assert {name: (i.kind, i.labels) for name, i in metrics.declared.items()} == EXPECTED
    families = {family.name: family.type for family in registry.collect()}
    assert families == {name: kind for name, (kind, _) in EXPECTED.items()}


def test_exposition_matches_the_declarations():
    metrics = PipelineMetrics(CollectorRegistry())
    touch_every_metric(metrics)
    exposed = exposition(metrics.registry)
    # The text format has no `info` type (an Info is a gauge `x_info` whose labels are its keys)
    # and shows `_created` timestamps as gauges of their own.
    expected = {
        name: (kind, set(labels)) for name, (kind, labels) in EXPECTED.items() if kind != "info"
    }
    expected["reidstream_build_info"] = ("gauge", {"version"})
    assert {k: v for k, v in exposed.items() if not k.endswith("_created")} == expected


def test_series_names_are_exactly_the_exposed_series():
    metrics = PipelineMetrics(CollectorRegistry())
    touch_every_metric(metrics)
    lines = generate_latest(metrics.registry).decode().splitlines()
    exposed = {re.split(r"[{ ]", line)[0] for line in lines if not line.startswith("#")}
    assert set(metrics.series_names()) == exposed
    assert metrics.series_names()["reidstream_stage_latency_seconds_bucket"] == MetricInfo(
        "reidstream_stage_latency_seconds",
        "histogram",
        ("stage",),
        metrics.declared["reidstream_stage_latency_seconds"].help,
    )


def test_metric_lookup_names_the_declared_families():
    metrics = PipelineMetrics()
    assert metrics.metric("reidstream_frames_in") is metrics.frames_in
    with pytest.raises(KeyError, match="reidstream_frames_in"):
        metrics.metric("reidstream_frames_eaten")


def test_names_are_unique_prefixed_and_documented():
    metrics = PipelineMetrics()
    series = [s for info in metrics.declared.values() for s in info.series]
    assert len(series) == len(set(series))
    for name, info in metrics.declared.items():
        assert name.startswith("reidstream_")
        assert info.help.strip().endswith("."), name
    # Durations are in seconds (Prometheus base unit), named so.
    for name in metrics.declared:
        assert ("latency" not in name) or name.endswith("_seconds"), name


def test_a_second_declaration_on_one_registry_is_refused():
    registry = CollectorRegistry()
    PipelineMetrics(registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        PipelineMetrics(registry)


def test_registries_are_independent():
    a, b = PipelineMetrics(), PipelineMetrics()
    a.frames_in.labels(camera="c1").inc(5)
    assert a.registry.get_sample_value("reidstream_frames_in_total", {"camera": "c1"}) == 5
    assert b.registry.get_sample_value("reidstream_frames_in_total", {"camera": "c1"}) is None


def test_add_camera_creates_zero_series_and_remove_camera_drops_them():
    metrics = PipelineMetrics()
    metrics.add_camera("lobby")
    value = metrics.registry.get_sample_value
    assert value("reidstream_frames_in_total", {"camera": "lobby"}) == 0
    assert value("reidstream_frames_dropped_total", {"camera": "lobby"}) == 0
    assert value("reidstream_camera_connected", {"camera": "lobby"}) == 0
    assert value("reidstream_frame_to_link_latency_seconds_count", {"camera": "lobby"}) == 0
    metrics.remove_camera("lobby")
    metrics.remove_camera("never-added")
    text = generate_latest(metrics.registry).decode()
    assert 'camera="lobby"' not in text


def test_histograms_record_into_the_right_bucket():
    metrics = PipelineMetrics()
    metrics.stage_latency.labels(stage="embed").observe(0.02)
    metrics.batch_size.labels(stage="embed").observe(16)
    value = metrics.registry.get_sample_value
    bucket = "reidstream_stage_latency_seconds_bucket"
    assert value(bucket, {"stage": "embed", "le": "0.01"}) == 0
    assert value(bucket, {"stage": "embed", "le": "0.025"}) == 1
    assert value("reidstream_batch_size_bucket", {"stage": "embed", "le": "8.0"}) == 0
    assert value("reidstream_batch_size_bucket", {"stage": "embed", "le": "16.0"}) == 1
    assert value("reidstream_batch_size_sum", {"stage": "embed"}) == 16


def test_default_registry_serves_the_pipeline_and_the_process():
    names = {family.name for family in REGISTRY.collect()}
    assert set(EXPECTED) <= names
    assert {"process_cpu_seconds", "python_info"} <= names
    assert METRICS.registry is REGISTRY
