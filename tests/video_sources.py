"""Small video sources in every format a camera's `uri` takes, written where a test asks.

    write_mp4(path)                 MPEG-4 part 2 in MP4, through cv2.VideoWriter
    write_elementary(path)          raw H.264 (.264/.h264) or H.265 (.265/.h265) elementary
                                    stream, encoded by libx264/libx265 through PyAV (the `av` dev
                                    dependency: OpenCV's wheels carry no H.264/H.265 encoder);
                                    skips the test, saying why, where PyAV is missing
    write_images(folder)            numbered JPEGs, for folders, globs and %06d patterns

Every frame is a uniform gray whose level rises with the frame number, so a test can tell that
frames come in order: frame i has level `level(i)`.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

__all__ = ["SIZE", "level", "write_elementary", "write_images", "write_mp4"]

#: (width, height) of every written frame (even sides, as the H.264/H.265 encoders need).
SIZE = (96, 64)

_CODECS = {".264": "h264", ".h264": "h264", ".265": "hevc", ".h265": "hevc"}
_ENCODERS = {"h264": "libx264", "hevc": "libx265"}


def level(i: int) -> int:
    """The gray level of frame `i`."""
    return (20 + 12 * i) % 256


def _frame(i: int) -> np.ndarray:
    return np.full((SIZE[1], SIZE[0], 3), level(i), np.uint8)


def write_mp4(path: Path, frames: int = 12, fps: float = 10.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, SIZE)
    assert writer.isOpened(), f"cannot write {path}"
    for i in range(frames):
        writer.write(_frame(i))
    writer.release()
    return path


def write_elementary(path: Path, frames: int = 12, fps: int = 10) -> Path:
    """A raw elementary stream: no container, so no frame count or duration anywhere."""
    av = pytest.importorskip("av", reason="PyAV (dev dependency) writes raw H.264/H.265 streams")
    codec = _CODECS[path.suffix.lower()]
    with av.open(str(path), "w", format=codec) as container:
        stream = container.add_stream(_ENCODERS[codec], rate=fps)
        stream.width, stream.height, stream.pix_fmt = *SIZE, "yuv420p"
        if codec == "hevc":
            stream.options = {"x265-params": "log-level=error"}
        for i in range(frames):
            image = av.VideoFrame.from_ndarray(_frame(i), format="bgr24")
            for packet in stream.encode(image):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_images(folder: Path, frames: int = 6, suffix: str = ".jpg") -> Path:
    """`frames` images named 000000.jpg, 000001.jpg, ... in `folder` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(frames):
        cv2.imwrite(str(folder / f"{i:06d}{suffix}"), _frame(i))
    return folder
