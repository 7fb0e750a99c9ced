"""OpenCV's HOG + linear SVM people detector: the fallback that needs no weights file.

    frame (H, W, 3) -> resize so the longer side is `input_size`
      -> cv2.HOGDescriptor.detectMultiScale (Dalal-Triggs default people SVM, 64x128 window)
      -> boxes shrunk to the person inside the window, scores tanh(SVM margin)
      -> cv2.dnn.NMSBoxes -> boxes mapped back to the frame

The default SVM finds people at least ~100 px tall in the resized image, hence the upscaling of
small frames (PETS 2009 at 480x360 needs about 800 px). HOG runs one frame at a time: OpenCV has no
batched HOG, so `detect` loops. Its confidence is a monotone map of the SVM margin into [0, 1) so
that confidence thresholds and ByteTrack's two score stages apply to it as to YOLO scores. It knows
one class only, person (COCO id 0).

OpenCV 5 removes the HOG people detector; the project pins ``opencv-python-headless<5``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from detectors.base import Detector, DetectorError, check_frames
from detectors.detections import Detections
from detectors.registry import register_detector

__all__ = ["HogDetector"]

PERSON = 0
_DEFAULT_SIZE = 800
# The default people SVM's 64x128 window holds the person in its centre; OpenCV's own sample
# (samples/python/peopledetect.py) shrinks the window by 15 % of its width and 5 % of its height
# on each side to get the person's box.
_SHRINK_W, _SHRINK_H = 0.15, 0.05


@register_detector("hog")
class HogDetector(Detector):
    """OpenCV's HOG people detector.

    Args:
        weights: Must be None: the SVM ships inside OpenCV.
        confidence: Keep boxes whose tanh(SVM margin) is above this.
        iou: IoU above which NMS suppresses the lower-scored of two boxes.
        input_size: Longer side, in pixels, that each frame is resized to before detection
            (default 800). Larger finds smaller people, at quadratic cost.
        classes: Must contain 0 (person), the only class HOG knows.
        max_detections: Most boxes kept per frame.
        device: Ignored except that it must not name a GPU: HOG runs on the CPU.
        win_stride: Step of the detection window in pixels; (8, 8) is OpenCV's default.
        scale: Ratio between pyramid levels; smaller is slower and finds more.

    Raises:
        DetectorError: Weights given, classes without person, or a GPU device.
    """

    name = "hog"

    def __init__(
        self,
        *,
        weights: str | Path | None = None,
        confidence: float = 0.0,
        iou: float = 0.5,
        input_size: int | None = None,
        classes: Sequence[int] = (PERSON,),
        max_detections: int = 300,
        device: str = "auto",
        win_stride: tuple[int, int] = (8, 8),
        scale: float = 1.05,
    ) -> None:
        if weights is not None and str(weights) != "":
            raise DetectorError(
                f"weights={str(weights)!r}: the 'hog' detector takes no weights (its SVM ships "
                f"with OpenCV); leave weights unset"
            )
        if PERSON not in classes:
            raise DetectorError(
                f"classes={list(classes)}: the 'hog' detector finds people only (class {PERSON})"
            )
        if device.startswith("cuda"):
            raise DetectorError(f"device {device!r}: the 'hog' detector runs on the CPU only")
        self.confidence = float(confidence)
        self.iou = float(iou)
        self.input_size = _DEFAULT_SIZE if input_size is None else int(input_size)
        if self.input_size < 128:
            raise DetectorError(f"input_size={input_size}: expected >= 128 (the HOG window)")
        self.max_detections = int(max_detections)
        self.win_stride = tuple(win_stride)
        self.scale = float(scale)
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        return [self._detect_one(frame) for frame in check_frames(frames)]

    def _detect_one(self, frame: np.ndarray) -> Detections:
        height, width = frame.shape[:2]
        gain = self.input_size / max(height, width)
        image = cv2.resize(frame, None, fx=gain, fy=gain) if gain != 1 else frame
        rects, margins = self._hog.detectMultiScale(
            image, winStride=self.win_stride, padding=(8, 8), scale=self.scale
        )
        metadata = {"image_size": (height, width)}
        if len(rects) == 0:
            return Detections.empty(metadata=metadata)
        rects = np.asarray(rects, np.float32).reshape(-1, 4)
        scores = np.tanh(np.asarray(margins, np.float32).reshape(-1).clip(min=0))
        keep = np.asarray(
            cv2.dnn.NMSBoxes(rects.tolist(), scores.tolist(), self.confidence, self.iou),
            np.int64,
        ).reshape(-1)
        keep = keep[scores[keep] > self.confidence][: self.max_detections]
        x, y, w, h = rects[keep].T
        dx, dy = _SHRINK_W * w, _SHRINK_H * h
        xyxy = np.stack([x + dx, y + dy, x + w - dx, y + h - dy], axis=1)
        xyxy = (xyxy / gain).clip(0, [width, height, width, height])
        return Detections(
            xyxy=xyxy,
            confidence=scores[keep],
            class_id=np.full(len(keep), PERSON, np.int64),
            metadata=metadata,
        )
