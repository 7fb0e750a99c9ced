"""The stream's sections: cameras, batching defaults per device."""

from __future__ import annotations

import pytest

from pipeline.stream.settings import (
    CameraConfig,
    DetectStageConfig,
    SourcesConfig,
    shared_clocks,
)


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


@pytest.mark.parametrize(
    ("start_time", "epoch"),
    [
        (None, None),
        (1714550400, 1714550400),
        ("1714550400.5", 1714550400.5),
        ("2024-05-01T08:00:00Z", 1714550400.0),
        ("2024-05-01T10:00:00+02:00", 1714550400.0),
    ],
)
def test_a_file_start_time_is_epoch_seconds_or_iso_with_its_offset(start_time, epoch):
    assert CameraConfig(id="c", uri="a.mp4", start_time=start_time).start_epoch == epoch


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"uri": "a.mp4", "start_time": "2024-05-01T10:00:00"}, "add its UTC offset"),
        ({"uri": "a.mp4", "start_time": "yesterday"}, "expected an ISO 8601 time"),
        ({"uri": "rtsp://h/s", "clock_offset_s": 3.0}, "only files take"),
        ({"uri": "webcam:0", "start_time": 0}, "only files take"),
    ],
)
def test_bad_start_times_and_clocks_on_live_sources_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CameraConfig(id="c", **kwargs)


def test_file_cameras_sharing_a_clock_are_found_unless_set_apart_or_overlapping():
    cams = [CameraConfig(id=c, uri=f"{c}.mp4") for c in ("a", "b", "c")]
    live = CameraConfig(id="live", uri="rtsp://h/s")
    assert shared_clocks([*cams, live]) == [["a", "b", "c"]]
    assert shared_clocks([*cams, live], [("a", "b")]) == [["a", "b", "c"]]  # c is not with them
    assert shared_clocks(cams, [("a", "b", "c")]) == []
    apart = [cams[0], CameraConfig(id="b", uri="b.mp4", clock_offset_s=60.0),
             CameraConfig(id="c", uri="c.mp4", start_time="2024-05-01T08:00:00Z")]  # fmt: skip
    assert shared_clocks(apart) == []
