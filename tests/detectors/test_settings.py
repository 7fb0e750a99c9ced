"""The detector and tracker sections: defaults from Ultralytics' own YAML, checks, and the
keyword arguments they give the factories."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from detectors import create_detector, create_tracker
from detectors.settings import DetectorConfig, TrackerConfig, TrackVideoConfig
from detectors.trackers import ultralytics_defaults


@pytest.mark.parametrize("name", ["bytetrack", "botsort"])
def test_tracker_defaults_are_ultralytics_own(name):
    """The section's defaults are read from Ultralytics' tracker YAML, as installed."""
    from ultralytics.utils import ROOT

    theirs = yaml.safe_load((ROOT / "cfg" / "trackers" / f"{name}.yaml").read_text())
    theirs.pop("tracker_type")
    assert ultralytics_defaults(name) == theirs
    defaults = dataclasses.asdict(TrackerConfig())
    if "model" in theirs:  # "auto": no ReID model file of its own
        assert theirs.pop("model") == "auto" and defaults["reid_model"] is None
    assert {k: defaults[k] for k in theirs} == theirs


def test_options_passed_to_the_factories():
    assert set(TrackerConfig().options(device="cpu")) == {
        "track_high_thresh",
        "track_low_thresh",
        "new_track_thresh",
        "track_buffer",
        "match_thresh",
        "fuse_score",
    }
    botsort = TrackerConfig(name="botsort").options(device="cpu")
    assert botsort["gmc_method"] == "sparseOptFlow" and botsort["device"] == "cpu"
    assert create_tracker("botsort", **botsort).options["gmc_method"] == "sparseOptFlow"
    detector = DetectorConfig(weights=Path("m.onnx"), intra_op_threads=1).options(device="cpu")
    assert detector["layout"] == "auto" and detector["classes"] == (0,)
    assert detector["intra_op_threads"] == 1
    hog = DetectorConfig(name="hog").options(device="cpu")
    assert "layout" not in hog and "intra_op_threads" not in hog
    openvino = DetectorConfig(name="openvino", openvino_person_label=0).options(device="cpu")
    assert openvino["person_label"] == 0 and "iou" not in openvino and "layout" not in openvino
    create_detector("hog", **hog).close()


@pytest.mark.parametrize(
    ("section", "kwargs", "message"),
    [
        (DetectorConfig, {"name": "yolo9000"}, "name = 'yolo9000': expected one of"),
        (DetectorConfig, {"name": "hog", "weights": Path("m.onnx")}, "takes no weights"),
        (DetectorConfig, {"classes": ()}, "at least one class id"),
        (TrackerConfig, {"name": "sort"}, "name = 'sort': expected one of"),
        (TrackerConfig, {"track_low_thresh": 0.5, "track_high_thresh": 0.4}, "must not exceed"),
        (TrackerConfig, {"with_reid": True}, "with_reid: needs name = 'botsort'"),
    ],
)
def test_sections_refuse_inconsistent_values(section, kwargs, message):
    with pytest.raises(ValueError, match=message):
        section(**kwargs)


def test_a_weighted_detector_says_it_needs_weights():
    assert DetectorConfig(name="hog").missing() == []
    assert "detector.weights" in DetectorConfig(name="onnx-yolo").missing()[0]
    assert ".xml" in DetectorConfig(name="openvino").missing()[0]


@pytest.mark.parametrize("section", [DetectorConfig, TrackerConfig, TrackVideoConfig])
def test_every_key_says_what_it_trades(section):
    for f in dataclasses.fields(section):
        assert len(f.metadata["help"]) > 20, f.name
