"""`reidstream bench interval`: predicted boxes scored against the every-frame tracks."""

from __future__ import annotations

import numpy as np

from detectors import Detections
from pipeline.bench.interval import prediction_overlap


def _walkers(index: int, jump: bool = False) -> Detections:
    """Two people walking right at 4 px/frame; with `jump`, the second one leaps 60 px at
    frame 13 (a turn the motion model cannot foresee)."""
    rows = [[20 + 4 * index, 40, 60 + 4 * index, 140]]
    x = 200 + 4 * index + (60 if jump and index >= 13 else 0)
    rows.append([x, 60, x + 40, 160])
    return Detections(
        xyxy=np.array(rows, np.float32),
        confidence=np.full(2, 0.9, np.float32),
        class_id=np.zeros(2, np.int64),
        metadata={"image_size": (240, 640)},
    )


FRAMES = [np.zeros((240, 640, 3), np.uint8)] * 30


def test_steady_walkers_are_predicted_where_they_are():
    figures = prediction_overlap(FRAMES, [_walkers(i) for i in range(30)], 3)
    assert figures.predicted == 2 * 20  # 20 skipped frames, two people
    assert figures.mean_iou > 0.9 and figures.at_50 == 1.0 and figures.uncovered == 0.0


def test_a_sudden_move_shows_as_low_overlap():
    steady = prediction_overlap(FRAMES, [_walkers(i) for i in range(30)], 5)
    jumping = prediction_overlap(FRAMES, [_walkers(i, jump=True) for i in range(30)], 5)
    assert jumping.mean_iou < steady.mean_iou
    assert jumping.uncovered > 0.0
    assert jumping.at_50 < steady.at_50
