"""`reidstream bench detector --input-sizes 640,480,416,320`: what a smaller detector input costs.

    reidstream bench detector --weights yolov5n_coco.onnx --video a.avi [--video b.mp4 ...] \\
        --input-sizes 640,480,416,320 [--frames 200]

For every video the same frames go through the ``onnx-yolo`` detector once per input:

    640 square   the reference: the export's own square input (``rect=False``)
    S            ``input_size=S``: the longer side S, padded only to the next multiple of 32
                 (a fixed YOLOv5 export re-headed to take it, `detectors.yolov5_head`)

one frame per call, as the CPU pipeline runs (``detect.max_batch`` 1), the inputs taking turns
frame by frame, each in turn first, so that the shared machine's load falls on all of them
alike. Each row gives the input shape, milliseconds per frame (the first frame left out: it sets
up the new shape), boxes per frame, and recall and precision against the reference's boxes at
IoU 0.5, one to one (`scipy.optimize.linear_sum_assignment` on the IoU), for the boxes the
tracker takes (score above 0.1) and for the confident ones (above 0.4). The reference is a
model, not ground truth: the columns say how much of what the full input finds a smaller one
still finds. Not a test: timings depend on the machine and its load.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from detectors import Detections, create_detector
from detectors.base import Detector
from detectors.letterbox import rect_shape
from detectors.video import VideoReader

__all__ = ["SizeRow", "match_counts", "measure_video", "run"]

#: The tracker's confidence threshold (`reidstream track`) and a confident box's.
THRESHOLDS = (0.1, 0.4)
IOU = 0.5
_REFERENCE = 640
_HEADER = ["video", "input", "shape (w x h)", "ms/frame", "boxes/frame"] + [
    f"{name} @{t}" for t in THRESHOLDS for name in ("recall", "precision")
]


@dataclass(frozen=True)
class SizeRow:
    """One input size on one video, against the reference input."""

    video: str
    input: str
    shape: str
    frames: int
    ms: float
    boxes_per_frame: float
    recall: tuple[float, ...]
    precision: tuple[float, ...]

    def cells(self) -> list[str]:
        scores = [
            f"{v:.3f}" for pair in zip(self.recall, self.precision, strict=True) for v in pair
        ]
        head = [self.video, self.input, self.shape, f"{self.ms:.1f}", f"{self.boxes_per_frame:.2f}"]
        return head + scores


def match_counts(reference: np.ndarray, found: np.ndarray, *, iou: float = IOU) -> int:
    """How many of `found` (M, 4) xyxy boxes match one of `reference` (N, 4) one to one, at
    IoU >= `iou`, in the assignment that maximises the total IoU."""
    if len(reference) == 0 or len(found) == 0:
        return 0
    overlap = _iou(reference, found)
    rows, cols = linear_sum_assignment(overlap, maximize=True)
    return int((overlap[rows, cols] >= iou).sum())


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M) IoU of xyxy boxes."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(axis=-1)
    area_a = (a[:, 2:] - a[:, :2]).prod(axis=-1)
    area_b = (b[:, 2:] - b[:, :2]).prod(axis=-1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def _scores(
    reference: Sequence[Detections], found: Sequence[Detections]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(recall per threshold, precision per threshold) of `found` against `reference`."""
    recall, precision = [], []
    for threshold in THRESHOLDS:
        matched = wanted = given = 0
        for ref, ours in zip(reference, found, strict=True):
            ref, ours = ref[ref.confidence > threshold], ours[ours.confidence > threshold]
            matched += match_counts(ref.xyxy, ours.xyxy)
            wanted, given = wanted + len(ref), given + len(ours)
        recall.append(matched / wanted if wanted else 1.0)
        precision.append(matched / given if given else 1.0)
    return tuple(recall), tuple(precision)


def _detectors(weights: Path, sizes: Sequence[int]) -> dict[str, Detector]:
    """The reference detector and one per size, by row label."""
    common = {"weights": weights, "confidence": THRESHOLDS[0], "iou": 0.7, "device": "cpu"}
    detectors = {
        f"{_REFERENCE} square": create_detector(
            "onnx-yolo", input_size=_REFERENCE, rect=False, **common
        )
    }
    for size in sizes:
        detectors[str(size)] = create_detector("onnx-yolo", input_size=size, **common)
    return detectors


def measure_video(video: Path, weights: Path, sizes: Sequence[int], frames: int) -> list[SizeRow]:
    """The rows of one video: the reference first, then each of `sizes`."""
    with VideoReader(video, max_frames=frames) as reader:
        images = list(reader)
    detectors = _detectors(weights, sizes)
    found: dict[str, list[Detections]] = {label: [] for label in detectors}
    seconds = dict.fromkeys(detectors, 0.0)
    labels = list(detectors)
    for i, image in enumerate(images):
        for label in labels[i % len(labels) :] + labels[: i % len(labels)]:  # each goes first
            start = time.perf_counter()
            found[label].extend(detectors[label].detect([image]))
            seconds[label] += (time.perf_counter() - start) if i else 0.0
    reference = found[f"{_REFERENCE} square"]
    rows = []
    for label, detector in detectors.items():
        h, w = detector.input_size
        if detector.rect:
            h, w = rect_shape(images[0].shape[:2], h)
        recall, precision = _scores(reference, found[label])
        rows.append(
            SizeRow(
                video=video.name,
                input=label,
                shape=f"{w}x{h}",
                frames=len(images),
                ms=1000 * seconds[label] / max(len(images) - 1, 1),
                boxes_per_frame=sum(len(d) for d in found[label]) / max(len(images), 1),
                recall=recall,
                precision=precision,
            )
        )
        detector.close()
    return rows


def print_table(rows: Sequence[SizeRow]) -> None:
    """Prints the rows as a Markdown table."""
    cells = [_HEADER, *(row.cells() for row in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(_HEADER))]
    for n, line in enumerate(cells):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


def run(
    *, weights: Path, videos: Sequence[Path], sizes: Sequence[int], frames: int = 200
) -> list[SizeRow]:
    """Measures `sizes` against the 640 square input on the first `frames` frames of each video;
    prints the table.

    Args:
        weights: A YOLO ONNX export (COCO): dynamic, or a fixed-size YOLOv5 one.
        videos: Video files, each measured on its own.
        sizes: Input sizes (the longer side), multiples of 32.
        frames: Frames per video.
    """
    print(
        f"{date.today().isoformat()}; CPU threads: {os.cpu_count()}; load average "
        f"{os.getloadavg()[0]:.2f} at start; {frames} frames per video, one per call"
    )
    rows = [row for video in videos for row in measure_video(video, weights, sizes, frames)]
    print(f"load average {os.getloadavg()[0]:.2f} at end\n")
    print_table(rows)
    return rows
