"""The one detector interface: a batch of BGR frames in, one `Detections` per frame out.

    frames: list of (H, W, 3) uint8 BGR images (sizes may differ)
        -> Detector.detect(frames)
        -> list of Detections, one per frame, in the same order; boxes in that frame's pixels,
           only the configured classes, confidence above the threshold,
           metadata {"image_size": (H, W)}

Every backend (`detectors.onnx_yolo`, `detectors.ultralytics_yolo`, `detectors.openvino_ssd`,
`detectors.hog`) subclasses `Detector` and is registered by name in `detectors.registry`. A
detector owns its runtime session; `close()` releases it, and the detector is a context manager.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from detectors.closing import Closing
from detectors.detections import Detections

__all__ = ["Detector", "DetectorError", "check_frames", "check_weights_path"]


class DetectorError(ValueError):
    """A detector cannot be built or run: bad weights, bad model layout or a bad frame."""


class Detector(Closing, abc.ABC):
    """A batched person detector.

    Attributes:
        name: Registry name of the backend, used in log lines.
    """

    name: str = "detector"

    @abc.abstractmethod
    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        """Detects objects in a batch of frames.

        Args:
            frames: (H, W, 3) uint8 BGR images; sizes may differ within a batch.

        Returns:
            One `Detections` per frame, in order, with ``metadata["image_size"] == (H, W)``.

        Raises:
            DetectorError: A frame is empty or not an (H, W, 3) uint8 image.
        """


def check_frames(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Validates a batch of frames and returns them as a list.

    Raises:
        DetectorError: Naming the index of the first bad frame, what was expected and what was
            given (an empty frame is the usual result of a failed video read).
    """
    if isinstance(frames, np.ndarray):
        raise DetectorError(
            f"detect(frames): expected a list of (H, W, 3) uint8 images, got one array of shape "
            f"{frames.shape}; wrap a single frame in a list"
        )
    checked = []
    for i, frame in enumerate(frames):
        if not isinstance(frame, np.ndarray):
            raise DetectorError(
                f"frame {i}: expected an (H, W, 3) uint8 BGR image, got {type(frame).__name__}"
            )
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise DetectorError(
                f"frame {i}: expected an (H, W, 3) uint8 BGR image, got shape {frame.shape} "
                f"dtype {frame.dtype}"
            )
        if frame.size == 0:
            raise DetectorError(
                f"frame {i}: expected a non-empty image, got shape {frame.shape} (an empty frame "
                f"usually means a failed video read)"
            )
        checked.append(frame)
    return checked


def detect_in_steps(
    frames: Sequence[np.ndarray],
    batch: int | None,
    detect_batch: Callable[[list[np.ndarray]], list[Detections]],
) -> list[Detections]:
    """`detect_batch` over checked `frames`, `batch` at a time (a graph's fixed batch size), or
    all in one call when `batch` is None or 0 (a dynamic batch axis)."""
    frames = check_frames(frames)
    step = batch or max(len(frames), 1)
    results: list[Detections] = []
    for start in range(0, len(frames), step):
        results.extend(detect_batch(frames[start : start + step]))
    return results


def check_weights_path(
    weights: str | Path | None, *, suffixes: Sequence[str], backend: str
) -> Path:
    """Resolves a weights path that must exist and have one of `suffixes`.

    Raises:
        DetectorError: No path given, or a suffix not in `suffixes`.
        FileNotFoundError: The file does not exist (nothing is ever downloaded).
    """
    if weights is None or str(weights) == "":
        raise DetectorError(
            f"detector '{backend}' needs weights: a path to a {' or '.join(suffixes)} file "
            f"(nothing is downloaded)"
        )
    path = Path(weights).expanduser()
    if path.suffix.lower() not in suffixes:
        raise DetectorError(
            f"{str(path)!r}: detector '{backend}' expected a {' or '.join(suffixes)} file, "
            f"got suffix {path.suffix or '(none)'!r}"
        )
    if not path.is_file():
        raise FileNotFoundError(
            f"{str(path)!r}: weights file not found (detector '{backend}' loads only local files)"
        )
    return path
