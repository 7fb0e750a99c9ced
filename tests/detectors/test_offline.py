"""The detect-then-track loop and the drawing of tracks, on real PETS frames."""

from __future__ import annotations

import numpy as np
import pytest

from detectors import Detections, create_detector, create_tracker
from detectors.annotate import draw_detections
from detectors.offline import StageTimes, track_frames


@pytest.mark.parametrize("batch_size", [1, 3])
def test_every_frame_is_tracked_in_order(pets_frames, batch_size):
    frames = pets_frames[:7]
    times = StageTimes()
    with create_detector("hog") as detector:
        out = list(
            track_frames(
                frames,
                detector=detector,
                tracker=create_tracker("bytetrack"),
                batch_size=batch_size,
                times=times,
            )
        )
    assert [f is g for (f, _), g in zip(out, frames, strict=True)] == [True] * 7
    assert all(t.tracker_id is not None for _, t in out)
    assert times.frames == 7 and times.detections > 7 and times.fps > 0
    assert times.detect_s > times.track_s > 0


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError, match="batch_size=0: expected >= 1"):
        next(track_frames([], detector=None, tracker=None, batch_size=0))


def test_tracks_are_drawn_inside_their_boxes(pets_frames):
    frame = pets_frames[0]
    tracked = Detections(
        xyxy=np.array([[100, 100, 160, 220]], np.float32),
        confidence=np.array([0.8], np.float32),
        class_id=np.zeros(1, np.int64),
        tracker_id=np.array([5]),
    )
    drawn = draw_detections(frame, tracked)
    assert drawn.shape == frame.shape and drawn is not frame
    changed = np.argwhere((drawn != frame).any(axis=2))
    assert len(changed) > 100
    rows, columns = changed.T  # the box, and its label above it (wider than the box)
    assert rows.min() >= 80 and rows.max() <= 222 and columns.min() >= 98 and columns.max() < 260
    assert np.array_equal(frame, pets_frames[0])  # the input is left alone
