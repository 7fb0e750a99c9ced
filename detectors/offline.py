"""Detect-then-track over a finite sequence of frames: the loop of `reidstream track` and of
`reidstream bench detector`.

    frames --batch_size at a time--> detector.detect --one frame at a time, in order--> tracker
        -> (frame, tracked Detections) per frame, with the time spent in each stage

    track_video(reader, detector, tracker, mot_path)  the same over any video source, writing
        the MOTChallenge results (and, if asked, the video with the tracks drawn); the progress
        bar counts frames against the source's length, or counts up where it has none

Batching only groups consecutive frames of one video for the detector; the tracker still sees
every frame in order. The streaming pipeline batches across cameras instead (`pipeline/`).
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from detectors.annotate import draw_detections
from detectors.base import Detector
from detectors.detections import Detections
from detectors.mot import MotWriter
from detectors.sources import source_name
from detectors.trackers import Tracker
from detectors.video import VideoReader, VideoWriter

__all__ = ["StageTimes", "TrackedVideo", "track_frames", "track_video"]


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


@dataclass(frozen=True)
class TrackedVideo:
    """What `track_video` did: stage times, wall time, distinct tracks and the files written."""

    times: StageTimes
    wall_s: float
    tracks: int
    outputs: list[Path]

    @property
    def fps(self) -> float:
        """Frames per second end to end (decoding and writing included)."""
        return self.times.frames / self.wall_s if self.wall_s > 0 else 0.0


def track_video(
    reader: VideoReader,
    *,
    detector: Detector,
    tracker: Tracker,
    mot_path: Path,
    video_path: Path | None = None,
    batch_size: int = 1,
    progress: bool = True,
) -> TrackedVideo:
    """Detects and tracks every frame of `reader`, writing MOTChallenge lines to `mot_path`
    (frames from 1) and, with `video_path`, the video with the tracks drawn.

    Args:
        reader: The open video; read to its end (or its `max_frames`).
        detector: Any `Detector`.
        tracker: A fresh `Tracker`.
        mot_path: Where the MOTChallenge results go.
        video_path: Where the annotated MP4 goes; None: not written.
        batch_size: Frames per `detect` call.
        progress: Show a progress bar on stderr.
    """
    times = StageTimes()
    track_ids: set[int] = set()
    start = time.perf_counter()
    with MotWriter(mot_path) as mot, _annotated_writer(reader, video_path) as annotated:
        bar = tqdm(
            total=len(reader) or None,
            unit="frame",
            desc=source_name(reader.source),
            disable=not progress,
        )
        with bar:
            loop = track_frames(
                reader, detector=detector, tracker=tracker, batch_size=batch_size, times=times
            )
            for number, (frame, tracked) in enumerate(loop, start=1):
                mot.write(number, tracked)
                track_ids.update(tracked.tracker_id.tolist())
                if annotated is not None:
                    annotated.write(draw_detections(frame, tracked))
                bar.update()
    outputs = [p for p in (mot_path, video_path) if p is not None]
    return TrackedVideo(times, time.perf_counter() - start, len(track_ids), outputs)


@contextlib.contextmanager
def _annotated_writer(reader: VideoReader, path: Path | None) -> Iterator[VideoWriter | None]:
    if path is None:
        yield None
        return
    info = reader.info
    with VideoWriter(path, fps=info.fps, size=(info.width, info.height)) as writer:
        yield writer
