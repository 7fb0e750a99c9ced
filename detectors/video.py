"""Video files in and out, through OpenCV's FFmpeg backend.

`VideoReader` opens a file, checks that a first frame decodes (OpenCV "opens" many files it cannot
decode) and yields BGR frames; every failure names the file and what was expected.
`VideoWriter` writes an MP4 (``mp4v``) at the source's frame rate.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detectors.closing import Closing

__all__ = ["VideoError", "VideoInfo", "VideoReader", "VideoWriter"]

logger = logging.getLogger(__name__)


class VideoError(OSError):
    """A video file cannot be read or written."""


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video.

    Attributes:
        path: The file.
        width: Frame width in pixels.
        height: Frame height in pixels.
        fps: Frames per second (0 when the container does not say).
        frame_count: Number of frames the container announces (may be approximate; 0 if unknown).
    """

    path: Path
    width: int
    height: int
    fps: float
    frame_count: int


class VideoReader(Closing):
    """Reads the frames of a video file in order.

    Args:
        path: The video file.
        max_frames: Stop after this many frames (None: read to the end).

    Raises:
        FileNotFoundError: `path` does not exist.
        VideoError: It exists but no frame can be decoded from it.
    """

    def __init__(self, path: str | Path, *, max_frames: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{str(self.path)!r}: video file not found")
        self._capture = cv2.VideoCapture(str(self.path))
        if not self._capture.isOpened():
            raise VideoError(
                f"{str(self.path)!r}: cannot be opened as a video; expected a video file that "
                f"OpenCV's FFmpeg backend can demux (e.g. .mp4, .avi, .mkv)"
            )
        ok, first = self._capture.read()
        if not ok or first is None or first.size == 0:
            self._capture.release()
            raise VideoError(
                f"{str(self.path)!r}: opened, but no frame could be decoded; expected a video "
                f"with at least one frame in a codec OpenCV's FFmpeg build supports"
            )
        self._pending: np.ndarray | None = first
        self.max_frames = max_frames
        self.info = VideoInfo(
            path=self.path,
            width=first.shape[1],
            height=first.shape[0],
            fps=float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0),
            frame_count=int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0),
        )

    def __len__(self) -> int:
        """Frames this reader will yield, as far as the container tells."""
        count = self.info.frame_count
        return count if self.max_frames is None else min(count, self.max_frames)

    def __iter__(self) -> Iterator[np.ndarray]:
        """Yields (H, W, 3) uint8 BGR frames; may be iterated once."""
        read = 0
        while self.max_frames is None or read < self.max_frames:
            if self._pending is not None:
                frame, self._pending = self._pending, None
            else:
                ok, frame = self._capture.read()
                if not ok:
                    return
            read += 1
            yield frame

    def close(self) -> None:
        self._capture.release()


class VideoWriter(Closing):
    """Writes BGR frames of one size to an MP4 file.

    Args:
        path: The ``.mp4`` file to write (its folder must exist).
        fps: Frame rate stored in the file.
        size: (width, height) of every frame.

    Raises:
        VideoError: OpenCV cannot open the file for writing.
    """

    def __init__(self, path: str | Path, *, fps: float, size: tuple[int, int]) -> None:
        self.path = Path(path)
        self.size = size
        fourcc = cv2.VideoWriter_fourcc(*"mp4v")
        self._writer = cv2.VideoWriter(str(self.path), fourcc, fps or 25.0, size)
        if not self._writer.isOpened():
            raise VideoError(
                f"{str(self.path)!r}: cannot be opened for writing an mp4v MP4 of size {size}"
            )

    def write(self, frame: np.ndarray) -> None:
        """Appends one (height, width, 3) uint8 BGR frame."""
        if (frame.shape[1], frame.shape[0]) != self.size:
            raise VideoError(
                f"{str(self.path)!r}: frame of size {frame.shape[1]}x{frame.shape[0]}, expected "
                f"{self.size[0]}x{self.size[1]}"
            )
        self._writer.write(frame)

    def close(self) -> None:
        self._writer.release()
