"""Runs a fixed-size YOLOv5 ONNX export at other input sizes: its head decoded in numpy.

A YOLOv5 export traced at, say, 640x640 bakes its head's grid and anchor tensors for that size
(the constants of the Add and Mul nodes after each level's Sigmoid), so the graph fails at any
other size although the network before them is fully convolutional. Such exports also list each
level's raw tensor, before the sigmoid, as an output. This keeps the graph up to those tensors
(`onnx.utils.Extractor`), makes the input's height and width symbolic, and decodes in numpy as
YOLOv5's `Detect` head (v6.0 and later) does:

    images (N, 3, h, w) --network--> level i: raw (N, na, h / s_i, w / s_i, 5 + nc)
    p = sigmoid(raw)
    xy = (2 p_xy - 0.5 + grid) * s_i        wh = (2 p_wh)^2 * anchor_i        rest = p
    rows, level by level, anchor-major:     (N, sum_i na * ny_i * nx_i, 5 + nc)

Nothing is assumed about the network: each level's stride is the native size over its grid, and
its anchors are solved from one run of the original graph (anchor = wh / (2 p_wh)^2). Before the
re-headed graph is used, the decode is checked against the graph's own output at its native size;
a graph without raw level outputs, or whose head decodes otherwise (YOLOv3-style exponentials,
another family), raises `DetectorError`. Written here because neither ONNX Runtime nor
Ultralytics re-sizes a traced YOLOv5 head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx.utils import Extractor
from scipy.special import expit, logit

from detectors.base import DetectorError

__all__ = ["Yolov5Head", "rehead_yolov5"]

#: Largest difference, in input pixels or probability, allowed between the numpy decode and the
#: graph's own at the native size (float32 arithmetic in another order differs by ~1e-4 px).
TOLERANCE = 1e-2


@dataclass(frozen=True, eq=False)
class Yolov5Head:
    """The decode of a YOLOv5 head, read from an export.

    Attributes:
        outputs: Names of the raw level outputs, in the order of the decoded rows.
        strides: Input pixels per grid cell of each level, e.g. (8, 16, 32).
        anchors: (levels, na, 2) anchor width and height of each level, in input pixels.
    """

    outputs: tuple[str, ...]
    strides: tuple[int, ...]
    anchors: np.ndarray

    @property
    def stride(self) -> int:
        """The largest stride: input sides must be a multiple of it."""
        return max(self.strides)

    def decode(
        self, levels: Sequence[np.ndarray], *, objectness_above: float | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Decoded rows of a batch, as the graph's `output` holds them.

        Args:
            levels: The raw level outputs, each (N, na, ny, nx, 5 + nc).
            objectness_above: Only rows whose objectness may exceed this (a cheap pre-filter on
                the raw logit; rows just below it can remain). None: every row.

        Returns:
            (K,) image index, (K,) row index into the graph's (N, rows, 5 + nc) output, and the
            (K, 5 + nc) decoded rows: cx, cy, w, h in input pixels, objectness, class scores.
            Ordered by image, then row.
        """
        # Sigmoid is monotonic: compare the logits, and take the sigmoid of the kept rows only.
        floor = -np.inf if objectness_above is None else logit(objectness_above) - 1e-3
        images, rows, decoded, offset = [], [], [], 0
        for raw, stride, anchors in zip(levels, self.strides, self.anchors, strict=True):
            _, na, ny, nx, _ = raw.shape
            image, a, y, x = np.nonzero(raw[..., 4] > floor)
            p = expit(raw[image, a, y, x])  # (K, 5 + nc)
            grid = np.stack([x, y], axis=-1).astype(np.float32) - 0.5
            xy = (p[:, :2] * 2 + grid) * np.float32(stride)
            wh = (p[:, 2:4] * 2) ** 2 * anchors[a]
            images.append(image)
            rows.append(offset + (a * ny + y) * nx + x)
            decoded.append(np.concatenate([xy, wh, p[:, 4:]], axis=-1))
            offset += na * ny * nx
        image, row = np.concatenate(images), np.concatenate(rows)
        order = np.lexsort((row, image))
        return image[order], row[order], np.concatenate(decoded)[order]


def rehead_yolov5(
    path: Path, session: ort.InferenceSession, native: tuple[int, int]
) -> tuple[bytes, Yolov5Head]:
    """The export at `path` re-headed to take any (h, w), and the decode of its head.

    Args:
        path: A YOLOv5 ONNX export whose first output is the decoded (N, rows, 5 + nc).
        session: An ONNX Runtime session of `path`.
        native: The (h, w) its input is fixed at.

    Returns:
        The serialized re-headed model (input (N, 3, h, w), outputs the raw levels) and its head.

    Raises:
        DetectorError: No raw level outputs, levels that do not tile the output, or a decode
            that does not reproduce the graph's output; the message says which.
    """
    batch = session.get_inputs()[0].shape[0]
    sample = np.random.default_rng(0).random((batch if isinstance(batch, int) else 2, 3, *native))
    outputs = session.run(None, {session.get_inputs()[0].name: sample.astype(np.float32)})
    names = [o.name for o in session.get_outputs()]
    decoded, levels, level_names = outputs[0], [], []
    for name, value in zip(names[1:], outputs[1:], strict=True):
        if value.ndim == 5 and value.shape[-1] == decoded.shape[-1]:
            levels.append(value)
            level_names.append(name)
    if not levels:
        raise DetectorError(
            f"it has no raw level outputs (N, anchors, ny, nx, {decoded.shape[-1]}) beside its "
            f"decoded output, outputs: {', '.join(names)}"
        )
    strides = _strides(levels, native, decoded.shape[1])
    head = Yolov5Head(tuple(level_names), strides, _solve_anchors(levels, decoded))
    _check(head, levels, decoded)
    return _symbolic_size_graph(path, session.get_inputs()[0].name, head.outputs), head


def _strides(levels: Sequence[np.ndarray], native: tuple[int, int], rows: int) -> tuple[int, ...]:
    """Each level's stride, from the native size over its grid; the levels must tile `rows`."""
    strides = []
    for level in levels:
        ny, nx = level.shape[2:4]
        stride = native[0] // ny
        if (ny * stride, nx * stride) != native:
            raise DetectorError(
                f"a raw level of shape {level.shape} is no grid of the {native[0]}x{native[1]} "
                f"input at one stride"
            )
        strides.append(stride)
    if sum(int(np.prod(level.shape[1:4])) for level in levels) != rows:
        shapes = ", ".join(str(level.shape) for level in levels)
        raise DetectorError(f"its raw levels {shapes} do not add up to the output's {rows} rows")
    return tuple(strides)


def _solve_anchors(levels: Sequence[np.ndarray], decoded: np.ndarray) -> np.ndarray:
    """(levels, na, 2) anchors in input pixels: the median of wh / (2 p_wh)^2 over the grid."""
    anchors, offset = [], 0
    for raw in levels:
        n, na, ny, nx, no = raw.shape
        out = decoded[:, offset : offset + na * ny * nx].reshape(n, na, ny, nx, no)
        scale = (expit(raw[..., 2:4].astype(np.float64)) * 2) ** 2
        anchors.append(np.median(out[..., 2:4] / scale, axis=(0, 2, 3)))
        offset += na * ny * nx
    return np.stack(anchors).astype(np.float32)


def _check(head: Yolov5Head, levels: Sequence[np.ndarray], decoded: np.ndarray) -> None:
    """Raises unless `head` decodes `levels` into the graph's own `decoded` output."""
    image, row, ours = head.decode(levels)
    difference = float(np.abs(ours - decoded[image, row]).max())
    if not difference <= TOLERANCE:  # also catches NaN
        raise DetectorError(
            f"decoding its raw levels as a YOLOv5 (v6+) head does not reproduce its output "
            f"(largest difference {difference:.3g}, allowed {TOLERANCE})"
        )


def _symbolic_size_graph(path: Path, image: str, outputs: Sequence[str]) -> bytes:
    """The graph from `image` to `outputs` only, its input height and width made symbolic."""
    graph = Extractor(onnx.load(str(path))).extract_model([image], list(outputs))
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    for axis, name in ((2, "height"), (3, "width")):
        dims[axis].Clear()
        dims[axis].dim_param = name
    # Shapes inferred at the native size would contradict the new ones: let the runtime infer.
    del graph.graph.value_info[:]
    for output in graph.graph.output:
        for axis in (2, 3):
            output.type.tensor_type.shape.dim[axis].Clear()
            output.type.tensor_type.shape.dim[axis].dim_param = f"{output.name}_{axis}"
    onnx.checker.check_model(graph)
    return graph.SerializeToString()
