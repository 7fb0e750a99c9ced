"""SSD person detectors as OpenVINO IR (Intel's person-detection-retail-0013 and the like).

    frames (B x (H, W, 3) BGR uint8)
      -> resize to the model's (h, w), BGR kept, 0..255    (B', 3, h, w) float32
      -> openvino CompiledModel, DetectionOutput            (1, 1, N, 7)
         rows (image_id, label, conf, x_min, y_min, x_max, y_max), corners in 0..1
      -> rows up to the first image_id -1, label == person_label, conf > confidence
      -> corners times each frame's width and height        list of B Detections (class 0)

Intel's Open Model Zoo SSD detectors take the frame resized to the input (no letterbox) as BGR
pixels in 0..255 and end in a DetectionOutput layer: non-maximum suppression happens inside the
graph, so `detector.iou` does not apply. The layer writes its detections first and marks their
end with a row whose image_id is -1 (the rows after it are padding). person-detection-retail-0013
(input 1x3x320x544) calls person label 1 (0 is the background); person-detection-0200/0201/0202
call it 0, hence `person_label`. A graph with a fixed batch runs in steps of it, padded with
blanks. Models with a second input (person-detection-retail-0002's ``im_info``) are refused.

The runtime is the ``openvino`` package (``reidstream[openvino]``), imported only when this
detector is built.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from detectors.base import Detector, DetectorError, check_weights_path, detect_in_steps
from detectors.detections import Detections
from detectors.registry import register_detector

__all__ = ["INSTALL", "OpenVinoSsdDetector"]

logger = logging.getLogger(__name__)

INSTALL = "pip install 'reidstream[openvino]' (the openvino package)"
PERSON = 0  # the class id the project gives people (COCO's)
_ROW = 7  # image_id, label, conf, x_min, y_min, x_max, y_max


def _import_openvino() -> Any:
    """The `openvino` module, or a `DetectorError` saying how to install it."""
    try:
        import openvino
    except ImportError as err:
        raise DetectorError(
            f"the 'openvino' detector runs OpenVINO IR models (.xml + .bin) and needs the "
            f"openvino package: {INSTALL} ({err})"
        ) from err
    return openvino


@register_detector("openvino")
class OpenVinoSsdDetector(Detector):
    """An SSD detector as OpenVINO IR whose output is DetectionOutput (1, 1, N, 7), on the CPU.

    Args:
        weights: Path to the ``.xml`` file; its weights ``.bin`` lies beside it.
        confidence: Keep boxes whose confidence is above this.
        input_size: Must be unset or equal to a fixed square input; needed (the square side)
            when the graph's height and width are dynamic.
        classes: Must contain 0 (person), the only class reported.
        max_detections: Most boxes kept per frame, best first.
        device: Not used: OpenVINO's CPU plugin runs it whatever the device (a GPU device is
            logged; on a GPU machine it serves the other models).
        person_label: The label the model gives people (1 for person-detection-retail-0013).

    Raises:
        FileNotFoundError: `weights` does not exist.
        DetectorError: openvino is not installed; the ``.bin`` is missing; not an IR OpenVINO
            reads; not one (N, 3, h, w) input; an output other than (1, 1, N, 7).
    """

    name = "openvino"

    def __init__(
        self,
        *,
        weights: str | Path | None = None,
        confidence: float = 0.5,
        input_size: int | None = None,
        classes: Sequence[int] = (PERSON,),
        max_detections: int = 300,
        device: str = "auto",
        person_label: int = 1,
    ) -> None:
        if PERSON not in classes:
            raise DetectorError(
                f"classes={list(classes)}: the 'openvino' detector reports people only "
                f"(class {PERSON})"
            )
        if device not in ("auto", "cpu"):  # `device` is shared: the ReID model may use the GPU
            logger.info("the 'openvino' detector runs on the CPU; device %r is not used", device)
        self.path = check_weights_path(weights, suffixes=(".xml",), backend=self.name)
        self.confidence = float(confidence)
        self.max_detections = int(max_detections)
        self.person_label = int(person_label)
        model = self._read_model()
        self._batch, self.input_size = _input_geometry(self.path, model, input_size)
        _check_output(self.path, model)
        try:
            self.compiled = _import_openvino().Core().compile_model(model, "CPU")
        except Exception as e:  # openvino raises its own RuntimeError subclasses
            raise DetectorError(f"{str(self.path)!r}: OpenVINO cannot compile it: {e}") from e
        logger.info(
            "loaded %s: OpenVINO SSD, input %dx%d, batch %s, person label %d",
            self.path,
            *self.input_size,
            self._batch or "dynamic",
            self.person_label,
        )

    def _read_model(self) -> Any:
        weights = self.path.with_suffix(".bin")
        if not weights.is_file():
            raise DetectorError(
                f"{str(self.path)!r}: an OpenVINO IR needs its weights file {str(weights)!r}"
            )
        ov = _import_openvino()
        try:
            return ov.Core().read_model(str(self.path))
        except Exception as e:
            raise DetectorError(
                f"{str(self.path)!r}: OpenVINO cannot read it as an IR model: {e}"
            ) from e

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        return detect_in_steps(frames, self._batch, self._detect_batch)

    def _detect_batch(self, frames: list[np.ndarray]) -> list[Detections]:
        height, width = self.input_size
        # One OpenCV pass resizes (no letterbox, as Intel's demos) and transposes to NCHW,
        # keeping BGR and 0..255.
        batch = cv2.dnn.blobFromImages(frames, 1.0, (width, height), swapRB=False, crop=False)
        if self._batch and len(frames) < self._batch:  # a fixed batch axis: pad with blanks
            pad = np.zeros((self._batch - len(frames), *batch.shape[1:]), batch.dtype)
            batch = np.concatenate([batch, pad])
        output = self.compiled(batch)[0]
        if output.ndim != 4 or output.shape[:2] != (1, 1) or output.shape[3] != _ROW:
            raise DetectorError(
                f"{str(self.path)!r}: output has shape {output.shape}; expected SSD "
                f"DetectionOutput (1, 1, N, 7)"
            )
        rows = _detections_rows(output.reshape(-1, _ROW))
        rows = rows[(rows[:, 1] == self.person_label) & (rows[:, 2] > self.confidence)]
        return [self._frame_detections(rows[rows[:, 0] == i], f) for i, f in enumerate(frames)]

    def _frame_detections(self, rows: np.ndarray, frame: np.ndarray) -> Detections:
        """Detections of one frame from its rows: corners scaled from 0..1 to its pixels."""
        height, width = frame.shape[:2]
        rows = rows[np.argsort(-rows[:, 2], kind="stable")][: self.max_detections]
        scale = np.array([width, height, width, height], np.float32)
        xyxy = (rows[:, 3:7] * scale).clip(0, scale)
        return Detections(
            xyxy=xyxy.astype(np.float32),
            confidence=rows[:, 2].astype(np.float32),
            class_id=np.full(len(rows), PERSON, np.int64),
            metadata={"image_size": (height, width)},
        )

    def close(self) -> None:
        self.compiled = None


def _detections_rows(rows: np.ndarray) -> np.ndarray:
    """The rows before the first whose image_id is negative (DetectionOutput's end mark)."""
    ends = np.flatnonzero(rows[:, 0] < 0)
    return rows[: ends[0]] if len(ends) else rows


def _input_geometry(
    path: Path, model: Any, input_size: int | None
) -> tuple[int | None, tuple[int, int]]:
    """(fixed batch size or None, (h, w)) of the model's one (N, 3, h, w) input."""
    shapes = [i.partial_shape for i in model.inputs]
    if len(shapes) != 1 or not shapes[0].rank.is_static or shapes[0].rank.get_length() != 4:
        raise DetectorError(
            f"{str(path)!r}: inputs {[str(s) for s in shapes]}; expected one (N, 3, h, w) image "
            f"input, as person-detection-retail-0013's 1x3x320x544"
        )
    n, c, h, w = (d.get_length() if d.is_static else None for d in shapes[0])
    if c != 3:
        raise DetectorError(f"{str(path)!r}: input {shapes[0]}; expected 3 (BGR) channels")
    if h is None or w is None:
        if input_size is None:
            raise DetectorError(
                f"{str(path)!r}: input {shapes[0]} has a dynamic height or width; set "
                f"input_size (the square side the frames are resized to)"
            )
        return n, (int(input_size), int(input_size))
    if input_size is not None and (input_size, input_size) != (h, w):
        raise DetectorError(
            f"{str(path)!r}: the model's input is fixed at {h}x{w}; input_size={input_size} "
            f"cannot be used (leave it unset)"
        )
    return n, (h, w)


def _check_output(path: Path, model: Any) -> None:
    """Refuses a model whose first output is not DetectionOutput's (1, 1, N, 7)."""
    shape = model.outputs[0].partial_shape
    dims = [d.get_length() if d.is_static else None for d in shape] if shape.rank.is_static else []
    if len(dims) != 4 or dims[3] != _ROW or dims[0] not in (1, None) or dims[1] not in (1, None):
        raise DetectorError(
            f"{str(path)!r}: output has shape {shape}; expected SSD DetectionOutput "
            f"(1, 1, N, 7) rows (image_id, label, conf, x_min, y_min, x_max, y_max), as "
            f"person-detection-retail-0013's"
        )
