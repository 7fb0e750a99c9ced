"""The builders of the job's parts from the root configuration."""

from __future__ import annotations

from pipeline.assemble import BUNDLED_REID_CHECKPOINT, build_engine, build_matcher, model_label
from pipeline.config import (
    load_config,
)
from pipeline.settings import ReidstreamConfig


def test_matcher_settings_reach_the_matcher():
    cfg = load_config(
        ReidstreamConfig,
        environ={},
        overrides=["matcher.silent_tracklet_s=5", "matcher.threshold=0.7", "matcher.nprobe=8"],
    )
    matcher = build_matcher(cfg)
    assert (matcher.silent_tracklet_s, matcher.threshold, matcher.nprobe) == (5.0, 0.7, 8)


def test_with_no_model_configured_the_bundled_one_embeds():
    """Nothing configured: the bundled demo model, rebuilt from its checkpoint's model spec."""
    cfg = ReidstreamConfig()
    engine = build_engine(cfg, "cpu")
    assert (engine.name, engine.device, engine.embedding_dim) == ("torch", "cpu", 128)
    assert engine.cfg.input_size == (3, 64, 32)
    assert model_label(cfg) == f"bundled:{BUNDLED_REID_CHECKPOINT.stem}"
