"""Exported YOLO detectors run through ONNX Runtime, batched.

    frames (B x (H, W, 3) BGR uint8)
      -> letterbox to (h, w), RGB, /255            (B, 3, h, w) float32
      -> onnxruntime session, first output         YOLOv5 (B, boxes, 5 + nc)   or
                                                   YOLOv8/11 (B, 4 + nc, boxes)
      -> boxes whose best class scores > confidence and is a configured class
      -> torchvision.ops.batched_nms over the whole batch (one group per image and class)
      -> boxes mapped back to each frame's pixels  list of B Detections

The two layouts differ in axis order and in the score: YOLOv5 heads emit an objectness that
multiplies the class scores (as in YOLOv5's own `non_max_suppression`), YOLOv8/11 heads emit class
scores only. Both put (cx, cy, w, h) in input pixels first. The layout is read from the output's
shape at load time, guided by the class names in Ultralytics' ONNX metadata when present; it can
also be forced with ``layout="yolov5"`` or ``"yolov8"``. Models exported end-to-end (NMS inside
the graph, e.g. YOLO26's default) are refused with a message saying how to export them instead.

Decoding follows Ultralytics' predictor (best class per box, strict ``> confidence``, class-aware
NMS, `max_detections` per image), so the same ONNX gives the same boxes here and in
`YOLO(path).predict(...)`; `tests/detectors/test_onnx_yolo.py` checks that.
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import onnxruntime as ort

from detectors.base import Detector, DetectorError, check_weights_path, detect_in_steps
from detectors.detections import Detections
from detectors.letterbox import Letterbox, letterbox
from detectors.registry import register_detector

__all__ = ["OnnxYoloDetector", "onnx_providers"]

logger = logging.getLogger(__name__)

Layout = Literal["auto", "yolov5", "yolov8"]
_LAYOUTS = ("auto", "yolov5", "yolov8")
_STRIDE = 32  # the largest YOLO stride: dynamic input sizes must be a multiple of it
_DEFAULT_SIZE = 640


def onnx_providers(device: str) -> list[str | tuple[str, dict]]:
    """ONNX Runtime execution providers for a torch-style device string.

    Args:
        device: ``"auto"`` (CUDA when ONNX Runtime has it, else CPU), ``"cpu"``, ``"cuda"`` or
            ``"cuda:N"``.

    Raises:
        DetectorError: CUDA asked for but this ONNX Runtime build has no CUDA provider.
    """
    available = ort.get_available_providers()
    if device == "cpu" or (device == "auto" and "CUDAExecutionProvider" not in available):
        return ["CPUExecutionProvider"]
    if device == "auto" or device.startswith("cuda"):
        if "CUDAExecutionProvider" not in available:
            raise DetectorError(
                f"device {device!r}: this onnxruntime build has no CUDAExecutionProvider "
                f"(available: {', '.join(available)}); install onnxruntime-gpu or use device=cpu"
            )
        index = int(device.partition(":")[2] or 0)
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    raise DetectorError(f"device {device!r}: expected auto, cpu, cuda or cuda:N")


@register_detector("onnx-yolo")
class OnnxYoloDetector(Detector):
    """A YOLO detector exported to ONNX (YOLOv5 or YOLOv8/11 head), run by ONNX Runtime.

    Args:
        weights: Path to the ``.onnx`` file. Input ``(N, 3, h, w)`` float32 RGB in [0, 1]; a
            static batch size is honoured by splitting batches.
        confidence: Keep boxes whose score is above this.
        iou: IoU above which NMS suppresses the lower-scored box of the same class.
        input_size: Square input side for models with dynamic height and width (default 640,
            a multiple of 32); must be unset or equal for models with a fixed input.
        classes: Class ids kept (COCO: 0 is person).
        max_detections: Most boxes kept per frame.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (ONNX Runtime provider).
        layout: ``auto`` (from the output shape and metadata), ``yolov5`` or ``yolov8``.

    Raises:
        FileNotFoundError: `weights` does not exist.
        DetectorError: Not a loadable ONNX model, not an image model, an output layout that is
            neither YOLOv5 nor YOLOv8/11, or an `input_size` the model cannot take.
    """

    name = "onnx-yolo"

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
        layout: Layout = "auto",
    ) -> None:
        if layout not in _LAYOUTS:
            raise DetectorError(f"layout {layout!r}: expected one of {', '.join(_LAYOUTS)}")
        self.path = check_weights_path(weights, suffixes=(".onnx",), backend=self.name)
        self.confidence = float(confidence)
        self.iou = float(iou)
        self.classes = tuple(int(c) for c in classes)
        self.max_detections = int(max_detections)
        self._session = self._open_session(onnx_providers(device))
        self._input = self._session.get_inputs()[0]
        self._output = self._session.get_outputs()[0].name  # YOLOv5 exports add raw grids after it
        self._batch, self.input_size = _input_geometry(self.path, self._input.shape, input_size)
        metadata = self._session.get_modelmeta().custom_metadata_map
        self.layout, self.num_classes = self._probe_layout(layout, metadata)
        if bad := [c for c in self.classes if not 0 <= c < self.num_classes]:
            raise DetectorError(
                f"{str(self.path)!r}: class ids {bad} are not among the model's "
                f"{self.num_classes} classes (0..{self.num_classes - 1})"
            )
        self.detect([np.zeros((*self.input_size, 3), np.uint8)])  # warm up, load NMS (torch)
        logger.info(
            "loaded %s: %s layout, %d classes, input %dx%d, providers %s",
            self.path,
            self.layout,
            self.num_classes,
            *self.input_size,
            ", ".join(self._session.get_providers()),
        )

    def _open_session(self, providers: list) -> ort.InferenceSession:
        try:
            return ort.InferenceSession(str(self.path), providers=providers)
        except Exception as e:  # ONNX Runtime raises its own Fail/InvalidProtobuf/InvalidGraph
            raise DetectorError(
                f"{str(self.path)!r}: not a loadable ONNX model ({type(e).__name__}: {e}); "
                f"expected a YOLO detector exported to ONNX"
            ) from e

    def _probe_layout(self, layout: Layout, metadata: dict[str, str]) -> tuple[str, int]:
        """Runs one blank batch and reads the layout and class count from the output shape."""
        if metadata.get("end2end", "False") == "True":
            raise DetectorError(
                f"{str(self.path)!r}: exported end-to-end (NMS inside the graph, output "
                f"(N, max_det, 6)); expected raw YOLO head outputs: export with end2end=False "
                f"(and nms=False), or load it with the 'ultralytics' detector"
            )
        names = ast.literal_eval(metadata["names"]) if "names" in metadata else None
        blank = np.zeros((self._batch or 1, 3, *self.input_size), np.float32)
        try:
            output = self._session.run([self._output], {self._input.name: blank})[0]
        except Exception as e:
            raise DetectorError(
                f"{str(self.path)!r}: running a blank (N, 3, {self.input_size[0]}, "
                f"{self.input_size[1]}) batch failed ({type(e).__name__}: {e}); expected a YOLO "
                f"detector taking (N, 3, h, w) float32 images"
            ) from e
        return _resolve_layout(self.path, output.shape, layout, len(names) if names else None)

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        return detect_in_steps(frames, self._batch, self._detect_batch)

    def _detect_batch(self, frames: list[np.ndarray]) -> list[Detections]:
        batch, placements = _preprocess(frames, self.input_size)
        if self._batch and len(frames) < self._batch:  # a static batch axis: pad with blanks
            pad = np.zeros((self._batch - len(frames), *batch.shape[1:]), batch.dtype)
            batch = np.concatenate([batch, pad])
        raw = self._session.run([self._output], {self._input.name: batch})[0][: len(frames)]
        image, xyxy, scores, class_ids = _candidates(
            raw, self.layout, confidence=self.confidence, classes=self.classes
        )
        keep = _batched_nms(image, xyxy, scores, class_ids, iou=self.iou)
        results = []
        for i, placement in enumerate(placements):
            rows = keep[image[keep] == i][: self.max_detections]
            results.append(
                Detections(
                    xyxy=placement.to_source(xyxy[rows]),
                    confidence=scores[rows],
                    class_id=class_ids[rows],
                    metadata={"image_size": placement.source_size},
                )
            )
        return results

    def close(self) -> None:
        self._session = None


def _input_geometry(
    path: Path, shape: Sequence[int | str | None], input_size: int | None
) -> tuple[int | None, tuple[int, int]]:
    """(static batch size or None, (h, w)) of the model input; checks `input_size` against it."""
    if len(shape) != 4 or shape[1] != 3:
        raise DetectorError(
            f"{str(path)!r}: input has shape {list(shape)}; expected (N, 3, h, w) images"
        )
    batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    height, width = shape[2], shape[3]
    if isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0:
        if input_size is not None and (input_size, input_size) != (height, width):
            raise DetectorError(
                f"{str(path)!r}: the model's input is fixed at {height}x{width}; input_size="
                f"{input_size} cannot be used (leave it unset, or export with dynamic=True)"
            )
        return batch, (height, width)
    size = _DEFAULT_SIZE if input_size is None else int(input_size)
    if size <= 0 or size % _STRIDE:
        raise DetectorError(f"input_size={input_size}: expected a positive multiple of {_STRIDE}")
    return batch, (size, size)


def _resolve_layout(
    path: Path, shape: tuple[int, ...], layout: Layout, num_classes: int | None
) -> tuple[str, int]:
    """Decides YOLOv5 vs YOLOv8/11 from the output shape; returns (layout, class count).

    A YOLOv8/11 output has fewer channels than boxes on its middle axis; a YOLOv5 output has them
    on its last axis. Class names in the metadata, when present, must agree with the count.
    """
    expected = (
        "expected a YOLOv5 layout (N, boxes, 5 + classes) or a YOLOv8/11 layout "
        "(N, 4 + classes, boxes)"
    )
    if len(shape) != 3:
        raise DetectorError(f"{str(path)!r}: first output has shape {tuple(shape)}; {expected}")
    _, rows, cols = shape
    fits = {
        "yolov8": rows >= 5 and (rows - 4 == num_classes if num_classes else rows < cols),
        "yolov5": cols >= 6 and (cols - 5 == num_classes if num_classes else cols < rows),
    }
    chosen = [name for name, ok in fits.items() if ok and layout in ("auto", name)]
    if not chosen:
        forced = "" if layout == "auto" else f" (layout={layout} was asked for)"
        known = f", and its metadata names {num_classes} classes" if num_classes else ""
        raise DetectorError(
            f"{str(path)!r}: first output has shape {tuple(shape)}{known}{forced}; {expected}"
        )
    name = chosen[0]
    return name, (rows - 4 if name == "yolov8" else cols - 5)


def _preprocess(
    frames: list[np.ndarray], size: tuple[int, int]
) -> tuple[np.ndarray, list[Letterbox]]:
    """(B, 3, h, w) float32 RGB in [0, 1], and each frame's placement."""
    boxed = [letterbox(frame, size=size) for frame in frames]
    # One OpenCV pass scales, swaps BGR to RGB and transposes to NCHW.
    batch = cv2.dnn.blobFromImages([image for image, _ in boxed], 1 / 255.0, swapRB=True)
    return batch, [placement for _, placement in boxed]


def _candidates(
    raw: np.ndarray, layout: str, *, confidence: float, classes: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Boxes of the batch scoring above `confidence` in one of `classes`.

    Args:
        raw: (B, A, 5 + nc) YOLOv5 or (B, 4 + nc, A) YOLOv8/11 head output.
        layout: ``"yolov5"`` or ``"yolov8"``.
        confidence: Score threshold (strict, as Ultralytics).
        classes: Class ids kept, after picking each box's best class (as Ultralytics).

    Returns:
        (K,) image index, (K, 4) xyxy in input pixels, (K,) score, (K,) int64 class id.
    """
    if layout == "yolov8":
        raw = raw.transpose(0, 2, 1)  # (B, A, 4 + nc), a view
        image, anchor = np.nonzero(raw[..., 4:].max(axis=-1) > confidence)
        class_scores = raw[image, anchor, 4:]
    else:
        # score = objectness x class probability <= objectness: filter on objectness first.
        image, anchor = np.nonzero(raw[..., 4] > confidence)
        class_scores = raw[image, anchor, 5:] * raw[image, anchor, 4:5]
    class_ids = class_scores.argmax(axis=-1)
    scores = class_scores[np.arange(len(class_ids)), class_ids]
    keep = (scores > confidence) & np.isin(class_ids, classes)
    image, anchor, class_ids, scores = image[keep], anchor[keep], class_ids[keep], scores[keep]
    cx, cy, w, h = raw[image, anchor, :4].T
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)
    return image, xyxy.astype(np.float32), scores.astype(np.float32), class_ids.astype(np.int64)


def _batched_nms(
    image: np.ndarray, xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, *, iou: float
) -> np.ndarray:
    """Indices of the boxes kept, best first: one NMS call for the whole batch."""
    # Imported here: torch takes seconds to import, and the CLI must start without it.
    import torch
    from torchvision.ops import batched_nms

    num_classes = int(class_ids.max(initial=0)) + 1
    groups = image * num_classes + class_ids  # class-aware, never across images
    keep = batched_nms(
        torch.from_numpy(xyxy), torch.from_numpy(scores), torch.from_numpy(groups), iou
    )
    return keep.numpy()
