"""Exported YOLO detectors run through ONNX Runtime, batched.

    frames (B x (H, W, 3) BGR uint8)
      -> letterbox to (h, w), RGB, /255            (B, 3, h, w) float32
      -> onnxruntime session, first output         YOLOv5 (B, boxes, 5 + nc)   or
                                                   YOLOv8/11 (B, 4 + nc, boxes)
         (a re-headed YOLOv5: raw levels, decoded in numpy by `detectors.yolov5_head`)
      -> boxes whose best class scores > confidence and is a configured class
      -> torchvision.ops.batched_nms over the whole batch (one group per image and class)
      -> boxes mapped back to each frame's pixels  list of B Detections

The two layouts differ in axis order and in the score: YOLOv5 heads emit an objectness that
multiplies the class scores (as in YOLOv5's own `non_max_suppression`), YOLOv8/11 heads emit class
scores only. Both put (cx, cy, w, h) in input pixels first. The layout is read from the output's
shape at load time, guided by the class names in Ultralytics' ONNX metadata when present; it can
also be forced with ``layout="yolov5"`` or ``"yolov8"``. Models exported end-to-end (NMS inside
the graph, e.g. YOLO26's default) are refused with a message saying how to export them instead.

Input size: `input_size` is the longer side. A graph that takes any (h, w) (a dynamic export, or a
fixed YOLOv5 export re-headed by `detectors.yolov5_head` when `input_size` is set) gets each frame
padded only to the next multiple of the stride (``rect``: a 640x360 frame at 640 is a 384x640
input), and a batch of frames of different shapes one input holding them all. A fixed graph left
as exported (`input_size` unset) takes its own square.

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
from detectors.letterbox import Letterbox, letterbox, rect_shape
from detectors.registry import register_detector
from detectors.yolov5_head import rehead_yolov5

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
        input_size: Longer input side, a multiple of 32 (default: 640, or the export's fixed
            size). A fixed-size YOLOv5 export is re-headed to take it (fixed YOLOv8/11 exports
            cannot be: unset or equal to their size).
        classes: Class ids kept (COCO: 0 is person).
        max_detections: Most boxes kept per frame.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (ONNX Runtime provider).
        layout: ``auto`` (from the output shape and metadata), ``yolov5`` or ``yolov8``.
        rect: Pad each frame only to the next multiple of the stride when the graph takes any
            (h, w); False: always the `input_size` square (as Ultralytics' ``rect=False``).
        intra_op_threads: CPU threads of the session (0: ONNX Runtime's default, one per core).

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
        rect: bool = True,
        intra_op_threads: int = 0,
    ) -> None:
        if layout not in _LAYOUTS:
            raise DetectorError(f"layout {layout!r}: expected one of {', '.join(_LAYOUTS)}")
        self.path = check_weights_path(weights, suffixes=(".onnx",), backend=self.name)
        self.confidence = float(confidence)
        self.iou = float(iou)
        self.classes = tuple(int(c) for c in classes)
        self.max_detections = int(max_detections)
        if intra_op_threads < 0:
            raise DetectorError(f"intra_op_threads = {intra_op_threads}: expected 0 or more")
        self._options = ort.SessionOptions()
        self._options.intra_op_num_threads = int(intra_op_threads)
        providers = onnx_providers(device)
        self._session = self._open_session(str(self.path), providers)
        self._input = self._session.get_inputs()[0]
        self._output = self._session.get_outputs()[0].name  # YOLOv5 exports add raw grids after it
        self._batch, native = _input_geometry(self.path, self._input.shape)
        self.input_size = native or (_checked_size(input_size, _STRIDE),) * 2
        metadata = self._session.get_modelmeta().custom_metadata_map
        self.layout, self.num_classes = self._probe_layout(layout, metadata)
        self.rect, self._stride, self.head = bool(rect) and native is None, _STRIDE, None
        if native and input_size is not None and (rect or (input_size,) * 2 != native):
            self._rehead(native, input_size, providers)
            self.rect = bool(rect)
        if bad := [c for c in self.classes if not 0 <= c < self.num_classes]:
            raise DetectorError(
                f"{str(self.path)!r}: class ids {bad} are not among the model's "
                f"{self.num_classes} classes (0..{self.num_classes - 1})"
            )
        self.detect([np.zeros((*self.input_size, 3), np.uint8)])  # warm up, load NMS (torch)
        logger.info(
            "loaded %s: %s layout, %d classes, input %dx%d%s%s, providers %s",
            self.path,
            self.layout,
            self.num_classes,
            *self.input_size,
            " (longer side; padded to a multiple of the stride)" if self.rect else "",
            " re-headed" if self.head else "",
            ", ".join(self._session.get_providers()),
        )

    def _open_session(self, model: str | bytes, providers: list) -> ort.InferenceSession:
        try:
            return ort.InferenceSession(model, self._options, providers=providers)
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

    def _rehead(self, native: tuple[int, int], input_size: int, providers: list) -> None:
        """Swaps the session for one of the graph re-headed to take any (h, w), or refuses."""
        refusal = (
            f"{str(self.path)!r}: the model's input is fixed at {native[0]}x{native[1]}; "
            f"input_size={input_size} cannot be used"
        )
        how = "(leave it unset, or export with dynamic=True)"
        if self.layout != "yolov5":
            raise DetectorError(
                f"{refusal}: only fixed YOLOv5 exports are re-sized here, and this one has the "
                f"YOLOv8/11 layout {how}"
            )
        try:
            model, head = rehead_yolov5(self.path, self._session, native)
        except DetectorError as e:
            raise DetectorError(f"{refusal}: {e} {how}") from e
        self._stride, self.head = head.stride, head
        self.input_size = (_checked_size(input_size, head.stride),) * 2
        self._session = self._open_session(model, providers)
        blank = np.zeros((self._batch or 1, 3, *self.input_size), np.float32)
        try:
            self._session.run(list(head.outputs), {self._input.name: blank})
        except Exception as e:  # a size baked into the network itself, not only its head
            raise DetectorError(f"{refusal}: the re-headed graph fails ({e}) {how}") from e

    def detect(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        return detect_in_steps(frames, self._batch, self._detect_batch)

    def _detect_batch(self, frames: list[np.ndarray]) -> list[Detections]:
        batch, placements = _preprocess(frames, self.input_size[0], self._stride, rect=self.rect)
        if self._batch and len(frames) < self._batch:  # a static batch axis: pad with blanks
            pad = np.zeros((self._batch - len(frames), *batch.shape[1:]), batch.dtype)
            batch = np.concatenate([batch, pad])
        image, xyxy, scores, class_ids = self._candidates(batch, len(frames))
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

    def _candidates(
        self, batch: np.ndarray, count: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """`_candidates` of the first `count` images of `batch`, from the graph's decoded
        output or, re-headed, from its raw levels decoded here."""
        options = {"confidence": self.confidence, "classes": self.classes}
        if self.head is None:
            raw = self._session.run([self._output], {self._input.name: batch})[0][:count]
            return _candidates(raw, self.layout, **options)
        levels = self._session.run(list(self.head.outputs), {self._input.name: batch})
        levels = [level[:count] for level in levels]
        image, _, rows = self.head.decode(levels, objectness_above=self.confidence)
        return _scored(image, rows[:, :4], rows[:, 5:] * rows[:, 4:5], **options)

    def close(self) -> None:
        self._session = None


def _input_geometry(
    path: Path, shape: Sequence[int | str | None]
) -> tuple[int | None, tuple[int, int] | None]:
    """(static batch size or None, fixed (h, w) or None) of the model input."""
    if len(shape) != 4 or shape[1] != 3:
        raise DetectorError(
            f"{str(path)!r}: input has shape {list(shape)}; expected (N, 3, h, w) images"
        )
    batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
    height, width = shape[2], shape[3]
    if isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0:
        return batch, (height, width)
    return batch, None


def _checked_size(input_size: int | None, stride: int) -> int:
    """`input_size`, or the default, checked to be a positive multiple of `stride`."""
    size = _DEFAULT_SIZE if input_size is None else int(input_size)
    if size <= 0 or size % stride:
        raise DetectorError(f"input_size={input_size}: expected a positive multiple of {stride}")
    return size


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
    frames: list[np.ndarray], size: int, stride: int, *, rect: bool
) -> tuple[np.ndarray, list[Letterbox]]:
    """(B, 3, h, w) float32 RGB in [0, 1], and each frame's placement.

    Each frame is scaled to fit the `size` square; with `rect` the input is the least padded
    one holding every frame of the batch (sides multiples of `stride`), else the square.
    """
    square = (size, size)
    shape = square
    if rect:
        shapes = [rect_shape(frame.shape[:2], size, stride=stride) for frame in frames]
        shape = (max(h for h, _ in shapes), max(w for _, w in shapes))
    boxed = [letterbox(frame, size=shape, fit=square) for frame in frames]
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
    xywh = raw[image, anchor, :4]
    return _scored(image, xywh, class_scores, confidence=confidence, classes=classes)


def _scored(
    image: np.ndarray,
    xywh: np.ndarray,
    class_scores: np.ndarray,
    *,
    confidence: float,
    classes: Sequence[int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The boxes whose best class is one of `classes` and scores above `confidence`.

    Args:
        image: (K,) image index of each box.
        xywh: (K, 4) cx, cy, w, h in input pixels.
        class_scores: (K, nc) score of each class.

    Returns:
        As `_candidates`.
    """
    class_ids = class_scores.argmax(axis=-1)
    scores = class_scores[np.arange(len(class_ids)), class_ids]
    keep = (scores > confidence) & np.isin(class_ids, classes)
    image, class_ids, scores = image[keep], class_ids[keep], scores[keep]
    cx, cy, w, h = xywh[keep].T
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
