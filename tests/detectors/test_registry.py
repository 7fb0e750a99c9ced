"""The registries: every backend and tracker listed, unknown names and arguments explained."""

from __future__ import annotations

import pytest

from detectors import (
    Detector,
    Tracker,
    create_detector,
    create_tracker,
    list_detectors,
    list_trackers,
)
from detectors.registry import Registry


def test_builtin_names():
    assert list_detectors() == ["hog", "onnx-yolo", "openvino", "ultralytics"]
    assert list_trackers() == ["botsort", "bytetrack"]


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(
        ValueError, match="unknown detector 'yolo'; valid detectors: hog, onnx-yolo"
    ):
        create_detector("yolo")
    with pytest.raises(ValueError, match="unknown tracker 'sort'; valid trackers: botsort, byte"):
        create_tracker("sort")


def test_unknown_argument_lists_the_accepted_ones():
    with pytest.raises(TypeError, match=r"'hog' got unknown argument\(s\) conf; it takes: weights"):
        create_detector("hog", conf=0.5)
    with pytest.raises(TypeError, match=r"unknown argument.*gmc_method.*track_buffer"):
        create_tracker("bytetrack", gmc_method="orb")


@pytest.mark.parametrize("name", list_trackers())
def test_every_tracker_builds_with_defaults(name):
    tracker = create_tracker(name)
    assert isinstance(tracker, Tracker) and tracker.name == name


def test_hog_builds_without_weights():
    with create_detector("hog") as detector:
        assert isinstance(detector, Detector) and detector.name == "hog"


def test_duplicate_registration_is_refused():
    registry = Registry("thing")
    registry.register("a")(dict)
    with pytest.raises(ValueError, match="thing 'a' is already registered"):
        registry.register("a")(list)
