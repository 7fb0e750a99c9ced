"""`reidstream bench interval`: where the tracker's predicted boxes are on the frames that
`detect.interval` skips, against the boxes of detecting every frame.

    reidstream bench interval --weights yolov5n_coco.onnx --video a.avi [--video b.mp4] \\
        [--frames 300] [--intervals 2,3,5]

For every video, on the same frames:

    reference   the detector on every frame, ByteTrack: the confirmed tracks' boxes
    interval k  the detector on every k-th frame, ByteTrack predicting the frames between
                (`Tracker.predict`, as the streaming job does); on those frames each predicted
                box is matched to the reference's boxes of the frame (Hungarian on IoU)

Reported per k, over the skipped frames: the mean IoU of the matched pairs, the share of
predicted boxes at IoU >= 0.5 and >= 0.7 to a reference box, and the share of reference boxes
no prediction covers at IoU >= 0.5 (people the detector would have found meanwhile). These say
how far a crop cut from a prediction would be from the person, which is why the job crops
detected frames only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torchvision.ops import box_iou

from detectors import Detections, create_detector, create_tracker
from detectors.video import VideoReader

__all__ = ["IntervalFigures", "prediction_overlap", "run"]


@dataclass(frozen=True)
class IntervalFigures:
    """Predicted boxes against the every-frame reference, over the skipped frames."""

    interval: int
    predicted: int  # predicted boxes
    mean_iou: float  # of the matched pairs
    at_50: float  # share of predicted boxes with IoU >= 0.5 to a reference box
    at_70: float
    uncovered: float  # share of reference boxes with no prediction at IoU >= 0.5


def prediction_overlap(
    frames: Sequence[np.ndarray], detections: Sequence[Detections], interval: int
) -> IntervalFigures:
    """The figures of one interval, from the detector's output on every frame."""
    reference, skipping = create_tracker("bytetrack"), create_tracker("bytetrack")
    ious: list[float] = []
    predicted = uncovered = total = 0
    for i, (frame, found) in enumerate(zip(frames, detections, strict=True)):
        truth = reference.update(found, frame)
        if i % interval == 0:
            skipping.update(found, frame)
            continue
        guess = skipping.predict(frame)
        pairs = _matched_ious(guess.xyxy, truth.xyxy)
        ious += pairs.tolist()
        predicted += len(guess)
        total += len(truth)
        uncovered += len(truth) - int((pairs >= 0.5).sum())
    matched = np.asarray(ious)
    return IntervalFigures(
        interval=interval,
        predicted=predicted,
        mean_iou=float(matched.mean()) if len(matched) else float("nan"),
        at_50=float((matched >= 0.5).sum() / predicted) if predicted else float("nan"),
        at_70=float((matched >= 0.7).sum() / predicted) if predicted else float("nan"),
        uncovered=uncovered / total if total else float("nan"),
    )


def _matched_ious(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of each pair of a one-to-one matching of boxes `a` to boxes `b` (IoU > 0 only)."""
    if not len(a) or not len(b):
        return np.empty(0)
    iou = box_iou(torch.tensor(a), torch.tensor(b)).numpy()
    rows, cols = linear_sum_assignment(-iou)
    pairs = iou[rows, cols]
    return pairs[pairs > 0]


def run(
    *, weights: Path, videos: Sequence[Path], frames: int, intervals: Sequence[int]
) -> list[tuple[str, IntervalFigures]]:
    """Prints the table for every video; returns its rows."""
    detector = create_detector("onnx-yolo", weights=weights, confidence=0.1, classes=(0,))
    print("| video | interval | predicted boxes | mean IoU | IoU >= 0.5 | IoU >= 0.7 | "
          "reference boxes not covered |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    rows = []
    for video in videos:
        images = list(VideoReader(video, max_frames=frames))
        found = [detector.detect([image])[0] for image in images]
        for k in intervals:
            r = prediction_overlap(images, found, k)
            rows.append((video.name, r))
            print(
                f"| {video.name} | {k} | {r.predicted} | {r.mean_iou:.3f} | "
                f"{100 * r.at_50:.1f}% | {100 * r.at_70:.1f}% | {100 * r.uncovered:.1f}% |"
            )
    detector.close()
    return rows
