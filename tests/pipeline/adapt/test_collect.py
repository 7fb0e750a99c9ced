"""Collecting a site's tracklets: the crops of the job's clips, for the first duration_s of each
camera, and a stop once every camera is past it."""

from __future__ import annotations

import numpy as np
import pytest

from detectors import Detections
from pipeline.adapt import TrackletCollector, collect, offline_config
from pipeline.config import ConfigError, load_config
from pipeline.settings import ReidstreamConfig
from pipeline.stream.tracklets import TrackletBuilder
from pipeline.stream.types import Frame
from trainers.adapt.store import TrackletStore


def _frame(camera: str, index: int) -> Frame:
    return Frame(camera, index, 100.0 + index / 10, np.full((120, 160, 3), index, np.uint8))


def _tracked() -> Detections:
    return Detections(
        xyxy=np.array([[40.0, 20.0, 70.0, 100.0]], np.float32),
        confidence=np.array([0.9], np.float32),
        class_id=np.zeros(1, np.int64),
        tracker_id=np.array([3], np.int64),
    )


def test_the_collector_keeps_each_crop_once_within_the_duration_then_stops(tmp_path):
    builder = TrackletBuilder(clip_len=4, stride=2, min_frames=2, crop_size=(32, 16))
    stops = []
    store = TrackletStore(tmp_path)
    collector = TrackletCollector(store, 1.0, ["a", "b"], stop=lambda: stops.append(1))
    for i in range(20):  # 2 s of 10 fps on camera a, 0.5 s on camera b
        collector.on_update(_frame("a", i), builder.update(_frame("a", i), _tracked()))
        if i < 5:
            collector.on_update(_frame("b", i), builder.update(_frame("b", i), _tracked()))
    assert not stops  # camera b never got past 1 s
    collector.on_update(_frame("b", 30), builder.update(_frame("b", 30), _tracked()))
    assert stops
    store.close({})
    by_camera = {t.camera: t for t in TrackletStore.open(tmp_path)}
    # Camera a: frames 0..10 are within 1.0 s; clips complete at frames 3, 5, 7, 9.
    assert by_camera["a"].frames == list(range(10))
    assert by_camera["b"].frames == [0, 1, 2, 3]
    assert collector.crops == 14


def test_collect_needs_cameras(tmp_path):
    cfg = load_config(ReidstreamConfig, environ={})
    with pytest.raises(ConfigError, match="cameras"):
        collect(cfg, tmp_path / "tracklets")


def test_offline_config_sends_links_to_a_file_only(tmp_path):
    cfg = load_config(ReidstreamConfig, environ={}, overrides=["output.sinks=[kafka]"])
    quiet = offline_config(cfg, tmp_path, record=True)
    assert quiet.output.sinks == ("jsonl",) and quiet.output.jsonl_path == tmp_path / "links.jsonl"
    assert quiet.metrics.address == "" and quiet.run.record and quiet.run.out_dir == tmp_path
