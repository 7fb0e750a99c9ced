"""Detect-then-track over a finite sequence of frames: the loop of `reidstream track` and of
`python -m detectors.benchmark`.

    frames --batch_size at a time--> detector.detect --one frame at a time, in order--> tracker
        -> (frame, tracked Detections) per frame, with the time spent in each stage

Batching only groups consecutive frames of one video for the detector; the tracker still sees
every frame in order. The streaming pipeline batches across cameras instead (`pipeline/`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from detectors.base import Detector
from detectors.detections import Detections
from detectors.trackers import Tracker

__all__ = ["StageTimes", "track_frames"]


@dataclass
class StageTimes:
    """Seconds spent per stage and frames seen; updated while `track_frames` runs."""

    frames: int = 0
    detections: int = 0
    detect_s: float = 0.0
    track_s: float = 0.0

    @property
    def total_s(self) -> float:
        return self.detect_s + self.track_s

    @property
    def fps(self) -> float:
        """Frames per second of detection plus tracking (decoding and writing excluded)."""
        return self.frames / self.total_s if self.total_s > 0 else 0.0


def track_frames(
    frames: Iterable[np.ndarray],
    *,
    detector: Detector,
    tracker: Tracker,
    batch_size: int = 1,
    times: StageTimes | None = None,
) -> Iterator[tuple[np.ndarray, Detections]]:
    """Detects and tracks each frame, yielding ``(frame, tracked detections)`` in order.

    Args:
        frames: (H, W, 3) uint8 BGR frames of one camera, in order.
        detector: Any `Detector`.
        tracker: One camera's `Tracker`; it sees every frame.
        batch_size: Frames per `detect` call.
        times: Filled with the time spent in each stage, if given.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: expected >= 1")
    times = times if times is not None else StageTimes()
    iterator = iter(frames)
    while batch := list(itertools.islice(iterator, batch_size)):
        start = time.perf_counter()
        detections = detector.detect(batch)
        times.detect_s += time.perf_counter() - start
        for frame, found in zip(batch, detections, strict=True):
            start = time.perf_counter()
            tracked = tracker.update(found, frame)
            times.track_s += time.perf_counter() - start
            times.frames += 1
            times.detections += len(found)
            yield frame, tracked
