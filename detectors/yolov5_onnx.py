"""Adapts a YOLOv5 ONNX export so that Ultralytics' own `YOLO(path)` and `model.track()` run it.

Ultralytics reads ONNX files with its YOLOv8/11 head layout and its metadata. A YOLOv5 export
(ultralytics/yolov5's `export.py` or plain `torch.onnx`) has neither: its first output is
``(N, boxes, 5 + nc)`` with an objectness column. This appends four ONNX nodes to the graph and the
metadata Ultralytics looks for; the network itself is untouched:

    output (N, A, 5+nc) --Slice--> xywh (N, A, 4)
                        --Slice--> obj (N, A, 1) --Mul--> obj * cls (N, A, nc)
                        --Slice--> cls (N, A, nc) --^
    Concat(xywh, scores) --Transpose--> output0 (N, 4+nc, A)     + metadata names, stride, imgsz

The scores become objectness x class probability, which is what YOLOv5's own NMS ranks by, so the
adapted model detects exactly what the original does. reidstream uses it to run the one real COCO
detector available here (``yolov5n_coco.onnx``) through the ``ultralytics`` backend and through
Ultralytics' `model.track()` loop for the benchmark. Built with `onnx.helper`, ONNX's own graph API.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from detectors.base import DetectorError

__all__ = ["adapt_yolov5_onnx"]

_OUTPUT = "output0"


def adapt_yolov5_onnx(
    source: str | Path, target: str | Path, *, names: Mapping[int, str] | None = None
) -> Path:
    """Writes `target`: `source` with a YOLOv8-layout output and Ultralytics metadata.

    Args:
        source: YOLOv5 ONNX whose first output is (N, boxes, 5 + nc) and whose input has a fixed
            (h, w), e.g. ``(N, 3, 640, 640)``.
        target: Where to write the adapted model.
        names: Class names by id; default COCO's when the model has 80 classes, else ``class<i>``.

    Returns:
        `target` as a Path.

    Raises:
        DetectorError: `source` is not such a model; the message names it and what was expected.
    """
    source, target = Path(source), Path(target)
    try:
        model = onnx.load(str(source))
    except Exception as e:
        raise DetectorError(f"{str(source)!r}: not a loadable ONNX model ({e})") from e
    batch, height, width, num_classes = _geometry(source, model)
    _append_yolov8_head(model.graph, num_classes)
    metadata = {
        "description": f"YOLOv5 ONNX {source.name} adapted to the Ultralytics layout by reidstream",
        "task": "detect",
        "stride": "32",
        # Ultralytics runs batches in chunks of this size and pads short chunks up to it, so a
        # dynamic batch axis is declared as 1 (declaring it dynamic would also make Ultralytics
        # shrink the input below the fixed 640x640).
        "batch": str(batch or 1),
        "imgsz": str([height, width]),
        "names": str(dict(names) if names else _default_names(num_classes)),
        "channels": "3",
        "end2end": "False",
        "args": str({"dynamic": False, "nms": False}),
    }
    del model.metadata_props[:]
    onnx.helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(target))
    return target


def _append_yolov8_head(graph: onnx.GraphProto, num_classes: int) -> None:
    """Replaces the graph's outputs by `output0` (N, 4 + nc, A) computed from its first output."""
    raw = graph.output[0].name
    for name, value in {"v5_axis": [2], "v5_0": [0], "v5_4": [4], "v5_5": [5]}.items():
        graph.initializer.append(numpy_helper.from_array(np.array(value, np.int64), name))
    end = numpy_helper.from_array(np.array([5 + num_classes], np.int64), "v5_end")
    graph.initializer.append(end)
    graph.node.extend(
        [
            helper.make_node("Slice", [raw, "v5_0", "v5_4", "v5_axis"], ["v5_xywh"]),
            helper.make_node("Slice", [raw, "v5_4", "v5_5", "v5_axis"], ["v5_obj"]),
            helper.make_node("Slice", [raw, "v5_5", "v5_end", "v5_axis"], ["v5_cls"]),
            helper.make_node("Mul", ["v5_cls", "v5_obj"], ["v5_scores"]),
            helper.make_node("Concat", ["v5_xywh", "v5_scores"], ["v5_cat"], axis=2),
            helper.make_node("Transpose", ["v5_cat"], [_OUTPUT], perm=[0, 2, 1]),
        ]
    )
    del graph.output[:]
    graph.output.append(
        helper.make_tensor_value_info(_OUTPUT, TensorProto.FLOAT, ["batch", 4 + num_classes, "A"])
    )


def _geometry(path: Path, model: onnx.ModelProto) -> tuple[int, int, int, int]:
    """(static batch or 0, h, w, nc) of a YOLOv5 export, from its input and one blank run."""
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[1] != 3 or not dims[2] or not dims[3]:
        raise DetectorError(
            f"{str(path)!r}: input has dims {dims}; expected (N, 3, h, w) with a fixed h and w"
        )
    session_shape = _output_shape(path, dims[2], dims[3])
    if len(session_shape) != 3 or session_shape[2] < 6 or session_shape[2] >= session_shape[1]:
        raise DetectorError(
            f"{str(path)!r}: first output has shape {session_shape}; expected the YOLOv5 layout "
            f"(N, boxes, 5 + classes)"
        )
    return dims[0], dims[2], dims[3], session_shape[2] - 5


def _output_shape(path: Path, height: int, width: int) -> tuple[int, ...]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    blank = np.zeros((1, 3, height, width), np.float32)
    return tuple(session.run(None, {session.get_inputs()[0].name: blank})[0].shape)


def _default_names(num_classes: int) -> dict[int, str]:
    if num_classes == 80:
        from ultralytics.utils import ROOT, YAML  # imported here: it pulls in torch

        return dict(YAML.load(ROOT / "cfg" / "datasets" / "coco.yaml")["names"])
    return {i: f"class{i}" for i in range(num_classes)}
