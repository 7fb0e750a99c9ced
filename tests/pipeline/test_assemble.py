"""The builders of the job's parts from the root configuration."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry

from pipeline.assemble import (
    BUNDLED_REID_CHECKPOINT,
    build_engine,
    build_matcher,
    model_label,
    warn_shared_clocks,
)
from pipeline.config import (
    load_config,
)
from pipeline.matching.decisions import read_decisions
from pipeline.messages.types import ClipEmbedding
from pipeline.monitoring.metrics import PipelineMetrics
from pipeline.settings import ReidstreamConfig


def test_matcher_settings_reach_the_matcher():
    cfg = load_config(
        ReidstreamConfig,
        environ={},
        overrides=["matcher.silent_tracklet_s=5", "matcher.threshold=0.7", "matcher.nprobe=8"],
    )
    matcher = build_matcher(cfg)
    assert (matcher.silent_tracklet_s, matcher.threshold, matcher.nprobe) == (5.0, 0.7, 8)


def test_the_matcher_counts_its_refusals_and_writes_its_decisions(tmp_path):
    cfg = load_config(
        ReidstreamConfig,
        environ={},
        overrides=[f"run.out_dir={tmp_path}", "run.decisions=true", "matcher.top_k=3"],
    )
    metrics = PipelineMetrics(CollectorRegistry())
    matcher = build_matcher(cfg, metrics)
    look = np.ones(8, np.float32) / np.sqrt(8)
    for camera in ("cam1", "cam2"):  # one look on two cameras at once: two places
        matcher.update([ClipEmbedding(camera, 1, f"{camera}.1", 0, 10, 0.0, 1.0, look, "m")])
    refusals = metrics.registry.get_sample_value
    assert refusals("reidstream_match_refusals_total", {"reason": "two_places"}) == 1
    assert refusals("reidstream_match_refusals_total", {"reason": "threshold"}) == 0
    decisions = list(read_decisions(tmp_path / "decisions.jsonl"))
    assert [d.outcome for d in decisions] == ["new", "new"]
    assert decisions[1].best.refused == "two_places" and matcher.top_k == 3


def test_with_no_model_configured_the_bundled_one_embeds():
    """Nothing configured: the bundled demo model, rebuilt from its checkpoint's model spec."""
    cfg = ReidstreamConfig()
    engine = build_engine(cfg, "cpu")
    assert (engine.name, engine.device, engine.embedding_dim) == ("torch", "cpu", 128)
    assert engine.cfg.input_size == (3, 64, 32)
    assert model_label(cfg) == f"bundled:{BUNDLED_REID_CHECKPOINT.stem}"


def test_run_warns_when_recordings_share_one_replay_clock(caplog):
    cameras = "cameras=[{id: a, uri: a.mp4}, {id: b, uri: b.mp4}]"
    cfg = load_config(ReidstreamConfig, environ={}, overrides=[cameras])
    assert warn_shared_clocks(cfg) == [["a", "b"]]
    assert "a, b: recordings replayed on one clock" in caplog.text
    offset = "cameras=[{id: a, uri: a.mp4}, {id: b, uri: b.mp4, clock_offset_s: 30}]"
    cfg = load_config(ReidstreamConfig, environ={}, overrides=[offset])
    assert warn_shared_clocks(cfg) == []
