"""MOTChallenge text files: tracking results out, and back in as `Detections` per frame.

One line per tracked box, comma-separated (MOT15/MOT16 2D format):

    frame, id, bb_left, bb_top, bb_width, bb_height, conf, x, y, z
    1,     3,  113.84,  274.5,  57.307,   130.05,    0.91, -1, -1, -1

Frames are numbered from 1. MOTChallenge coordinates count pixels from 1 (its devkit is MATLAB),
so the writer adds 1 to x1 and y1 and the reader subtracts it, as `motmetrics.io.loadtxt` does:
a file written here and read by motmetrics gives back this package's 0-based boxes. The world
coordinates x, y, z are -1 (2D tracking).

Written here because it is a few lines of formatting; evaluation itself is `motmetrics`'.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from detectors.closing import Closing
from detectors.detections import Detections

__all__ = ["MotWriter", "mot_lines", "read_mot", "write_mot"]

_SEPARATOR = re.compile(r"[,\s]+")


def mot_lines(frame_number: int, detections: Detections) -> list[str]:
    """The MOTChallenge lines of one frame's tracked detections.

    Args:
        frame_number: 1-based frame number.
        detections: Tracked detections (`tracker_id` set).

    Raises:
        ValueError: `frame_number` < 1 or the detections carry no `tracker_id`.
    """
    if frame_number < 1:
        raise ValueError(f"frame_number={frame_number}: MOTChallenge frames are numbered from 1")
    if detections.tracker_id is None:
        raise ValueError("detections: expected tracked detections (tracker_id set), got None")
    x1, y1, x2, y2 = detections.xyxy.astype(np.float64).T
    return [
        f"{frame_number},{track},{_num(left + 1)},{_num(top + 1)},{_num(w)},{_num(h)},"
        f"{_num(conf)},-1,-1,-1"
        for track, left, top, w, h, conf in zip(
            detections.tracker_id.tolist(),
            x1,
            y1,
            x2 - x1,
            y2 - y1,
            detections.confidence.astype(np.float64),
            strict=True,
        )
    ]


def _num(value: float) -> str:
    # Seven significant digits: about what the float32 columns of `Detections` hold.
    return f"{value:.7g}"


class MotWriter(Closing):
    """Appends frames of tracked detections to a MOTChallenge file.

    Args:
        path: The ``.txt`` file to write (created or truncated; its folder must exist).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file = self.path.open("w", encoding="ascii")

    def write(self, frame_number: int, detections: Detections) -> None:
        """Writes one frame's lines (nothing for an empty frame)."""
        for line in mot_lines(frame_number, detections):
            self._file.write(line + "\n")

    def close(self) -> None:
        self._file.close()


def write_mot(path: str | Path, frames: Mapping[int, Detections]) -> None:
    """Writes tracked detections by 1-based frame number, in frame order."""
    with MotWriter(path) as writer:
        for frame_number in sorted(frames):
            writer.write(frame_number, frames[frame_number])


def read_mot(path: str | Path) -> dict[int, Detections]:
    """Reads a MOTChallenge file (comma- or space-separated) into tracked detections per frame.

    Columns after the confidence are ignored; the class id is 0 for every box. Frames without
    lines are absent from the result.

    Raises:
        ValueError: A line that is not at least 7 numbers, naming the file and line.
    """
    path = Path(path)
    rows: dict[int, list[list[float]]] = {}
    with path.open(encoding="ascii") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            fields = _SEPARATOR.split(line.strip())
            try:
                values = [float(v) for v in fields[:7]]
            except ValueError:
                values = []
            if len(values) < 7:
                raise ValueError(
                    f"{str(path)!r} line {number}: expected at least 7 numbers "
                    f"(frame, id, x, y, w, h, conf), got {line.strip()!r}"
                )
            rows.setdefault(int(values[0]), []).append(values[1:7])
    return {frame: _to_detections(np.array(r, np.float64)) for frame, r in sorted(rows.items())}


def _to_detections(rows: np.ndarray) -> Detections:
    track, left, top, width, height, conf = rows.T
    x1, y1 = left - 1, top - 1
    return Detections(
        xyxy=np.stack([x1, y1, x1 + width, y1 + height], axis=1),
        confidence=conf,
        class_id=np.zeros(len(rows), np.int64),
        tracker_id=track.astype(np.int64),
    )
