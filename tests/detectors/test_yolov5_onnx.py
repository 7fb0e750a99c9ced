"""Adapting a YOLOv5 export for Ultralytics: output layout, metadata, refusal of other models."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from detectors import DetectorError
from detectors.yolov5_onnx import adapt_yolov5_onnx


def test_adapted_output_is_the_yolov8_layout_of_the_same_scores(yolov5n_onnx, adapted_yolov5n):
    rng = np.random.default_rng(0)
    batch = rng.random((2, 3, 640, 640), np.float32)
    original = ort.InferenceSession(str(yolov5n_onnx), providers=["CPUExecutionProvider"])
    adapted = ort.InferenceSession(str(adapted_yolov5n), providers=["CPUExecutionProvider"])
    (raw,) = original.run(["output"], {"images": batch})
    (out,) = adapted.run(None, {"images": batch})
    assert raw.shape == (2, 25200, 85) and out.shape == (2, 84, 25200)
    np.testing.assert_allclose(out[:, :4], raw[..., :4].transpose(0, 2, 1), rtol=1e-5)
    scores = raw[..., 5:] * raw[..., 4:5]
    np.testing.assert_allclose(out[:, 4:], scores.transpose(0, 2, 1), rtol=1e-5, atol=1e-7)

    metadata = {p.key: p.value for p in onnx.load(str(adapted_yolov5n)).metadata_props}
    assert metadata["task"] == "detect" and metadata["imgsz"] == "[640, 640]"
    assert "0: 'person'" in metadata["names"]


def test_a_model_of_another_layout_is_refused(adapted_yolov5n, tmp_path):
    with pytest.raises(DetectorError, match=r"shape \(1, 84, 25200\); expected the YOLOv5 layout"):
        adapt_yolov5_onnx(adapted_yolov5n, tmp_path / "twice.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x01garbage")
    with pytest.raises(DetectorError, match=r"garbage\.onnx': not a loadable ONNX model"):
        adapt_yolov5_onnx(garbage, tmp_path / "out.onnx")
