"""The detect and track stages: which frames the detector sees, and what the skipped ones get."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from detectors import CameraTrackers, Detections, create_tracker
from detectors.base import Detector
from pipeline.monitoring.metrics import PipelineMetrics
from pipeline.stream.queues import FrameBuffer, StageQueue
from pipeline.stream.stages import DetectStage, TrackStage
from pipeline.stream.types import Frame


class Recording(Detector):
    """Finds one walker (4 px/frame) in every frame; remembers the frames it was called with."""

    def __init__(self) -> None:
        self.calls: list[list[tuple[int, int]]] = []  # per call: (height, frame value) per frame

    def detect(self, frames):
        self.calls.append([(int(f.shape[0]), int(f[0, 0, 0])) for f in frames])
        return [_walker(int(f[0, 0, 0])) for f in frames]


def _walker(index: int) -> Detections:
    x = 20.0 + 4 * index
    return Detections(
        xyxy=np.array([[x, 40.0, x + 30, 120.0]], np.float32),
        confidence=np.array([0.9], np.float32),
        class_id=np.zeros(1, np.int64),
        metadata={"image_size": (240, 320)},
    )


def frame(index: int, camera: str = "cam1", height: int = 240) -> Frame:
    image = np.full((height, 320, 3), index % 256, np.uint8)
    return Frame(camera, index, 1000.0 + index / 10, image)


def stage(detector: Detector | None, **kw) -> DetectStage:
    metrics = PipelineMetrics(CollectorRegistry())
    return DetectStage(
        detector, FrameBuffer(4), StageQueue("track", 8), metrics, max_batch=8, max_wait_s=0, **kw
    )


def test_the_detector_sees_every_kth_frame_of_each_camera():
    detector = Recording()
    detect = stage(detector, interval=3)
    frames = [frame(i, cam) for i in range(7) for cam in ("a", "b")]
    out = detect.process(frames)
    assert [(f.camera_id, f.index) for f, d in out if d is not None] == [
        ("a", 0), ("b", 0), ("a", 3), ("b", 3), ("a", 6), ("b", 6)
    ]  # fmt: skip
    assert [f for f, _ in out] == frames  # every frame goes on, in order
    assert detector.calls == [[(240, v) for v in (0, 0, 3, 3, 6, 6)]]  # one call per batch


def test_dropped_frames_do_not_count_and_a_restart_detects_at_once():
    detect = stage(Recording(), interval=3)
    seen = [f.index for f, d in detect.process([frame(i) for i in (0, 1, 5, 6, 7, 8, 12)]) if d]
    assert seen == [0, 6, 12]  # 2-4 and 9-11 dropped: every 3rd frame received is detected
    seen = [f.index for f, d in detect.process([frame(i) for i in (0, 1, 2, 3)]) if d]
    assert seen == [0, 3]  # the file looped (or the stream reopened): detect at once


def test_frames_with_their_own_boxes_follow_the_same_schedule():
    own = [Frame("a", i, 1000.0 + i, np.zeros((8, 8, 3), np.uint8), _walker(i)) for i in range(4)]
    out = stage(None, interval=2).process(own)
    assert all(out[i][1] is (own[i].detections if i % 2 == 0 else None) for i in range(4))


def test_cameras_with_their_own_input_size_get_their_own_detector():
    default, small = Recording(), Recording()
    detect = stage(default, camera_detectors={"b": small})
    detect.process([frame(0, "a"), frame(1, "b"), frame(2, "a"), frame(3, "b", height=120)])
    assert default.calls == [[(240, 0), (240, 2)]]
    assert small.calls == [[(240, 1), (120, 3)]]


def test_frames_without_boxes_and_no_detector_are_refused():
    with pytest.raises(RuntimeError, match="no detector configured"):
        stage(None).process([frame(0)])
    with pytest.raises(ValueError, match="interval"):
        stage(None, interval=0)


def test_skipped_frames_are_tracked_by_prediction():
    detect = stage(Recording(), interval=3)
    metrics = PipelineMetrics(CollectorRegistry())
    trackers = CameraTrackers(lambda: create_tracker("bytetrack"))
    track = TrackStage(trackers, StageQueue("t", 8), StageQueue("u", 8), metrics, lost_after_s=1)
    out = track.process(detect.process([frame(i) for i in range(30)]))
    assert len(out) == 30
    for f, tracked in out[6:]:  # confirmed, then followed through every skipped frame
        assert tracked.tracker_id.tolist() == [1], f.index
        assert bool(tracked.metadata.get("predicted")) == (f.index % 3 != 0)
        assert abs(tracked.xyxy[0, 0] - (20 + 4 * f.index)) < 4, f.index
