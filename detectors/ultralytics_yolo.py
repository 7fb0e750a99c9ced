"""Any Ultralytics YOLO detection model a user gives: PyTorch ``.pt``, exported ``.onnx``, TensorRT
``.engine``, all through `ultralytics.YOLO` and its predictor (letterbox, inference, NMS).

    frames -> YOLO(weights).predict(frames, imgsz, conf, iou, classes, max_det)  -> Results
           -> Detections (boxes already in frame pixels)

Nothing is downloaded: the path must exist before Ultralytics sees it (a missing ``yolov8n.pt``
would otherwise be fetched from the network), and `detectors` sets ``YOLO_OFFLINE=1``. A ``.pt``
is read in Ultralytics' restricted mode, never unpickled with code execution
(`detectors.safe_loading`): a file holding anything but model classes is refused. The model is
run once on a blank frame at construction, so a file that is not a model fails here, with its
path, rather than on the first camera frame.

TensorRT engines load through the same `YOLO(path)` call (Ultralytics deserialises them itself);
they need the ``tensorrt`` package and a CUDA device, which are checked first so the error says so.
ONNX files without Ultralytics' metadata (e.g. YOLOv5's own exports) are refused: Ultralytics
would misread their output; use the ``onnx-yolo`` detector, or `detectors.yolov5_onnx` to adapt
them.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from detectors.base import Detector, DetectorError, check_frames, check_weights_path
from detectors.detections import Detections
from detectors.registry import register_detector
from detectors.safe_loading import SAFE_FORMATS, load_yolo

__all__ = ["UltralyticsYoloDetector"]

logger = logging.getLogger(__name__)

SUFFIXES = (".pt", ".onnx", ".engine")
_DEFAULT_SIZE = 640


@register_detector("ultralytics")
class UltralyticsYoloDetector(Detector):
    """An Ultralytics YOLO detection model (``.pt``, ``.onnx`` or TensorRT ``.engine``).

    Args:
        weights: Path to the model file.
        confidence: Keep boxes whose score is above this.
        iou: NMS IoU threshold.
        input_size: Inference size (default 640; exported models with a fixed size use theirs).
        classes: Class ids kept (COCO: 0 is person).
        max_detections: Most boxes kept per frame.
        device: ``auto`` (Ultralytics' choice: first CUDA device, else CPU), ``cpu``, ``cuda``
            or ``cuda:N``.

    Raises:
        FileNotFoundError: `weights` does not exist.
        DetectorError: Not a loadable detection model, or an engine without TensorRT/CUDA.
    """

    name = "ultralytics"

    def __init__(
        self,
        *,
        weights: str | Path | None = None,
        confidence: float = 0.25,
        iou: float = 0.7,
        input_size: int | None = None,
        classes: Sequence[int] = (0,),
        max_detections: int = 300,
        device: str = "auto",
    ) -> None:
        self.path = check_weights_path(weights, suffixes=SUFFIXES, backend=self.name)
        if self.path.suffix.lower() == ".engine":
            _check_tensorrt(self.path)
        if self.path.suffix.lower() == ".onnx":
            _check_ultralytics_onnx(self.path)
        self._predict_args: dict[str, Any] = {
            "imgsz": _DEFAULT_SIZE if input_size is None else int(input_size),
            "conf": float(confidence),
            "iou": float(iou),
            "classes": [int(c) for c in classes],
            "max_det": int(max_detections),
            "device": None if device == "auto" else device,
            # Always the full square input, never Ultralytics' minimal-padding `rect` (which
            # it applies to .pt only): the same model then gives the same boxes in every
            # format, and exports with a fixed size but a dynamic batch would reject `rect`.
            "rect": False,
            "verbose": False,
        }
        self._model = self._load()
        logger.info("loaded %s (%s)", self.path, self._predict_args)

    def _load(self) -> Any:
        expected = (
            f"expected an Ultralytics YOLO detection model ({', '.join(SUFFIXES)}) "
            f"saved or exported by Ultralytics"
        )
        try:
            model = load_yolo(self.path, task="detect")  # imports torch: seconds of start-up
            if model.task != "detect":
                raise DetectorError(f"{str(self.path)!r}: a '{model.task}' model; {expected}")
            model.predict(np.zeros((64, 64, 3), np.uint8), **self._predict_args)
        except DetectorError:
            raise
        except Exception as e:  # torch.load, ONNX Runtime and TensorRT each raise their own types
            safe = f"; .pt files load only in the restricted mode, else {SAFE_FORMATS}"
            raise DetectorError(
                f"{str(self.path)!r}: cannot be loaded ({type(e).__name__}: {e}); {expected}"
                + (safe if self.path.suffix.lower() == ".pt" else "")
            ) from e
        return model

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        frames = check_frames(frames)
        if not frames:
            return []
        results = self._model.predict(frames, **self._predict_args)
        return [_to_detections(result) for result in results]

    def close(self) -> None:
        self._model = None


def _to_detections(result: Any) -> Detections:
    boxes = result.boxes.cpu().numpy()
    return Detections(
        xyxy=boxes.xyxy,
        confidence=boxes.conf,
        class_id=boxes.cls.astype(np.int64),
        metadata={"image_size": tuple(int(s) for s in result.orig_shape)},
    )


def _check_tensorrt(path: Path) -> None:
    """Fails clearly, before Ultralytics tries to install anything, where engines cannot run."""
    if importlib.util.find_spec("tensorrt") is None:
        raise DetectorError(
            f"{str(path)!r}: a TensorRT engine needs the 'tensorrt' Python package and a CUDA "
            f"device; tensorrt is not installed here (pip install 'reidstream[tensorrt]' on a "
            f"CUDA machine, or use the .onnx export with the 'onnx-yolo' detector)"
        )
    import torch

    if not torch.cuda.is_available():
        raise DetectorError(f"{str(path)!r}: a TensorRT engine needs a CUDA device; none found")


def _check_ultralytics_onnx(path: Path) -> None:
    """Refuses ONNX files without Ultralytics' metadata, whose outputs Ultralytics would misread."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise DetectorError(
            f"{str(path)!r}: not a loadable ONNX model ({type(e).__name__}: {e}); expected a "
            f"YOLO detection model exported by Ultralytics"
        ) from e
    keys = {prop.key for prop in model.metadata_props}
    if not {"names", "stride"} <= keys:
        raise DetectorError(
            f"{str(path)!r}: has no Ultralytics metadata (names, stride), so it was not exported "
            f"by Ultralytics and its output layout is unknown to it; load it with the "
            f"'onnx-yolo' detector instead"
        )
