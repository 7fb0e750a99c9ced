"""What a source string names: a video file, a sequence of images, a network stream or a webcam.

    "clip.mp4", "cam.264", "cam.h265"           file     a container or a raw elementary stream
    "frames/%06d.jpg"                           file     an image pattern (FFmpeg's image2)
    "frames/", "frames/*.jpg"                   images   a folder or a glob, in name order
    "rtsp://...", "http://...", "srt://..."     stream   read through OpenCV's FFmpeg backend
    "webcam:0", "0"                             webcam   local capture device N

`reidstream track` and every camera of `reidstream run` read through this one classification
(and `detectors.video.open_capture`), so both take the same sources. Light to import (no OpenCV):
the configuration schema uses it to tell a camera's kind.
"""

from __future__ import annotations

import glob
import re
from pathlib import Path
from typing import Literal

__all__ = [
    "IMAGE_SUFFIXES",
    "STREAM_SCHEMES",
    "SourceKind",
    "image_files",
    "is_glob",
    "source_kind",
    "source_name",
    "webcam_index",
]

SourceKind = Literal["file", "images", "stream", "webcam"]

#: URI schemes OpenCV's FFmpeg backend reads as network streams.
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")

#: Image files a folder source reads (the formats `cv2.imread` decodes), lower case.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")

_WEBCAM = re.compile(r"(?:webcam:)?(\d+)")
_GLOB = re.compile(r"[*?\[]")


def webcam_index(uri: str) -> int | None:
    """N for ``webcam:N`` or a bare integer ``N``; None for any other source."""
    match = _WEBCAM.fullmatch(uri.strip())
    return int(match[1]) if match else None


def is_glob(uri: str) -> bool:
    """Whether `uri` is a shell-style pattern (``*``, ``?``, ``[...]``) rather than a path."""
    return bool(_GLOB.search(uri))


def source_kind(uri: str) -> SourceKind:
    """What `uri` names (see the module docstring). A path that exists is never a webcam."""
    if "://" in uri:
        scheme = uri.partition("://")[0].lower()
        if scheme in STREAM_SCHEMES:
            return "stream"
        if scheme == "file":
            uri = uri.partition("://")[2]
    if webcam_index(uri) is not None and not Path(uri).exists():
        return "webcam"
    if is_glob(uri) or Path(uri).is_dir():
        return "images"
    return "file"


def image_files(uri: str) -> list[Path]:
    """The images of a folder (those with an `IMAGE_SUFFIXES` suffix) or of a glob, sorted by
    name, which orders zero-padded frame numbers.

    Raises:
        FileNotFoundError: Nothing matches, naming the source and what was expected.
    """
    if is_glob(uri):
        files = [Path(p) for p in sorted(glob.glob(uri)) if Path(p).is_file()]
        expected = "files matching the pattern"
    else:
        folder = Path(uri)
        if not folder.is_dir():
            raise FileNotFoundError(f"{uri!r}: image folder not found")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        expected = f"image files ({', '.join(IMAGE_SUFFIXES)})"
    if not files:
        raise FileNotFoundError(f"{uri!r}: no images found; expected {expected}")
    return files


def source_name(uri: str) -> str:
    """A short file-name-safe name for outputs about `uri`: a file's stem, a folder's or a
    pattern's folder name, ``webcamN``, or a stream's host and path."""
    kind = source_kind(uri)
    if kind == "webcam":
        name = f"webcam{webcam_index(uri)}"
    elif kind == "stream":
        rest = uri.partition("://")[2].rpartition("@")[2]  # never a credential
        name = rest.split("?")[0].strip("/")
    elif kind == "images" and Path(uri).is_dir():
        name = Path(uri).resolve().name
    elif kind == "images" or "%" in Path(uri).name:
        name = Path(uri).resolve().parent.name
    else:
        name = Path(uri).stem
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_.") or "source"
