"""Video sources in, MP4 out, through OpenCV's FFmpeg backend.

    open_capture(source) -> Capture         any source `detectors.sources` names: a video file
                                            (raw .264/.h265 too), an image pattern, folder or glob,
                                            a network stream, a webcam
    VideoReader(source)                     the frames of one, in order, checked to decode
    VideoWriter(path, fps, size)            an MP4 (``mp4v``) at the source's frame rate

`Capture.frame_count` is None when the length is unknown: streams, webcams and raw elementary
streams, for which OpenCV reports a negative or absurd count. Every failure names the source and
what was expected. Folders and globs of images are read here with `cv2.imread` (OpenCV reads
only printf-style patterns as a sequence); the rest is `cv2.VideoCapture`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detectors.closing import Closing
from detectors.sources import image_files, source_kind, webcam_index

__all__ = [
    "Capture",
    "ImageSequence",
    "VideoError",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "open_capture",
]

logger = logging.getLogger(__name__)

#: A frame count above this is not a real one (OpenCV's guesses for raw streams and single images
#: are garbage of the order of 1e14-1e18): ten days at 100 frames/s.
_MAX_PLAUSIBLE_FRAMES = 100 * 86_400 * 10


class VideoError(OSError):
    """A video source cannot be read, or a video file cannot be written."""


class Capture(Closing):
    """An open source: `read()` as `cv2.VideoCapture`'s, and what the source says about itself.

    Attributes:
        source: The source as given.
        fps: Frames per second the source reports (0 if it does not).
        frame_count: Frames the source announces (may be approximate); None if unknown.
    """

    def __init__(self, source: str, capture: cv2.VideoCapture) -> None:
        self.source, self._capture = source, capture
        fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0 < fps < 1000 else 0.0
        count = capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0
        known = source_kind(source) == "file" and 0 < count <= _MAX_PLAUSIBLE_FRAMES
        self.frame_count: int | None = int(count) if known else None

    def read(self) -> tuple[bool, np.ndarray | None]:
        return self._capture.read()

    def close(self) -> None:
        self._capture.release()


class ImageSequence(Capture):
    """The images of a folder or a glob, in name order, decoded one by one.

    An image that does not decode is logged and skipped: one corrupt file does not end the
    sequence. The sequence has no frame rate of its own (`fps` 0 unless given).
    """

    def __init__(self, source: str, files: list[Path], fps: float = 0.0) -> None:
        self.source, self.files, self.fps = source, files, fps
        self.frame_count = len(files)
        self._next = 0

    def read(self) -> tuple[bool, np.ndarray | None]:
        while self._next < len(self.files):
            path = self.files[self._next]
            self._next += 1
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                return True, image
            logger.warning("%s: %s is not a readable image; skipped", self.source, path)
        return False, None

    def close(self) -> None:
        self._next = len(self.files)


def open_capture(
    source: str | Path,
    *,
    open_timeout_s: float | None = None,
    read_timeout_s: float | None = None,
) -> Capture:
    """Opens any source `detectors.sources.source_kind` names.

    Args:
        source: A video file, image pattern, folder or glob, stream URL, ``webcam:N`` or ``N``.
        open_timeout_s: Streams only: how long opening may take.
        read_timeout_s: Streams only: how long a read may wait for a frame.

    Raises:
        FileNotFoundError: A file, folder or glob that names nothing.
        VideoError: The source exists (or is a stream or webcam) but cannot be opened.
    """
    source = str(source)
    kind = source_kind(source)
    if kind == "images":
        return ImageSequence(source, image_files(source))
    if kind == "webcam":
        capture = cv2.VideoCapture(webcam_index(source))
        expected = "a local capture device with that index (see /dev/video*)"
    elif kind == "stream":
        params = []
        if open_timeout_s is not None:
            params += [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_timeout_s * 1000)]
        if read_timeout_s is not None:
            params += [cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout_s * 1000)]
        capture = cv2.VideoCapture(source, cv2.CAP_FFMPEG, params)
        expected = "a reachable stream that OpenCV's FFmpeg backend can read"
    else:
        if "%" not in Path(source).name and not Path(source).is_file():
            raise FileNotFoundError(f"{source!r}: video file not found")
        capture = cv2.VideoCapture(source, cv2.CAP_FFMPEG)
        expected = (
            "a video file that OpenCV's FFmpeg backend can demux (e.g. .mp4, .avi, .mkv, a raw "
            ".264/.h265 stream) or an image pattern such as frames/%06d.jpg"
        )
    if not capture.isOpened():
        capture.release()
        raise VideoError(f"{source!r}: cannot be opened as a video; expected {expected}")
    return Capture(source, capture)


@dataclass(frozen=True)
class VideoInfo:
    """What the source says about itself.

    Attributes:
        path: The source as given (a path, or a stream URL or webcam as a path-like string).
        width: Frame width in pixels.
        height: Frame height in pixels.
        fps: Frames per second (0 when the source does not say).
        frame_count: Number of frames the source announces (may be approximate; 0 if unknown:
            streams, webcams, raw elementary streams).
    """

    path: Path
    width: int
    height: int
    fps: float
    frame_count: int


class VideoReader(Closing):
    """Reads the frames of any source `open_capture` opens, in order.

    Args:
        source: A video file (raw .264/.h265 too), image pattern, folder or glob, stream URL,
            ``webcam:N`` or ``N``.
        max_frames: Stop after this many frames (None: read to the end).

    Raises:
        FileNotFoundError: A file, folder or glob that names nothing.
        VideoError: The source opens but no frame can be decoded from it, or does not open.
    """

    def __init__(self, source: str | Path, *, max_frames: int | None = None) -> None:
        self.source = str(source)
        self.path = Path(self.source)
        self._capture = open_capture(self.source)
        ok, first = self._capture.read()
        if not ok or first is None or first.size == 0:
            self._capture.close()
            raise VideoError(
                f"{self.source!r}: opened, but no frame could be decoded; expected a video "
                f"with at least one frame in a codec OpenCV's FFmpeg build supports"
            )
        self._pending: np.ndarray | None = first
        self.max_frames = max_frames
        self.info = VideoInfo(
            path=self.path,
            width=first.shape[1],
            height=first.shape[0],
            fps=self._capture.fps,
            frame_count=self._capture.frame_count or 0,
        )

    def __len__(self) -> int:
        """Frames this reader will yield, as far as the source tells; 0 if it does not."""
        count = self.info.frame_count
        return count if self.max_frames is None or not count else min(count, self.max_frames)

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
        self._capture.close()


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
