"""The stream's sections: cameras, batching defaults per device."""

from __future__ import annotations

import pytest

from pipeline.stream.settings import CameraConfig, DetectStageConfig, SourcesConfig


def test_detector_batch_defaults_to_the_device():
    detect = DetectStageConfig()
    assert detect.max_batch is None
    assert detect.batch_for("cpu") == 1 and detect.batch_for("cuda:0") == 8
    detect = DetectStageConfig(max_batch=4)
    assert detect.batch_for("cpu") == 4 and detect.batch_for("cuda") == 4


def test_a_camera_is_a_file_a_stream_or_a_webcam():
    door, hall = CameraConfig("door", "/v/door.mp4"), CameraConfig("hall", "rtsp://u:p@h/s")
    desk = CameraConfig("desk", "webcam:1")
    assert (door.kind, door.is_live, hall.kind, hall.is_live) == ("file", False, "stream", True)
    assert (desk.kind, desk.webcam_index, desk.is_live) == ("webcam", 1, True)
    assert CameraConfig("replayed", "/v/a.mp4", live=True).is_live


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"id": "", "uri": "x"}, "every camera needs an id"),
        ({"id": "a b", "uri": "x"}, "id = 'a b'"),
        ({"id": "a", "uri": ""}, "needs a uri"),
    ],
)
def test_a_camera_needs_an_id_and_a_uri(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CameraConfig(**kwargs)


def test_reconnection_backoff_is_bounded_above_its_start():
    with pytest.raises(ValueError, match=r"reconnect_max_s = 1\.0 must be at least"):
        SourcesConfig(reconnect_initial_s=2.0, reconnect_max_s=1.0)
