"""The Ultralytics backend: .pt and exported .onnx through one code path, never downloading."""

from __future__ import annotations

import numpy as np
import pytest

from detectors import Detections, DetectorError, create_detector

EVERY_CLASS = tuple(range(80))


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any attempt to open a network connection (e.g. to fetch weights) fails the test."""
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError(f"a network connection was attempted: {args}")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_real_weights_find_people_like_the_onnx_runtime_backend(
    adapted_yolov5n, pets_frames, pets_detections
):
    """The real YOLOv5n, adapted for Ultralytics, gives the people `onnx-yolo` finds."""
    with create_detector("ultralytics", weights=adapted_yolov5n, confidence=0.1) as detector:
        found = detector.detect(pets_frames[:31:10])
    for ours, reference in zip(found, pets_detections[:31:10], strict=True):
        assert isinstance(ours, Detections) and ours.metadata["image_size"] == (360, 480)
        assert int((ours.confidence > 0.4).sum()) >= 3
        assert len(ours) == len(reference)
        np.testing.assert_allclose(ours.xyxy, reference.xyxy, atol=0.5)


def test_pt_and_its_onnx_export_give_the_same_boxes(yolov8n_pt, yolov8n_onnx, pets_frames):
    """Random weights score about 1e-4 (Ultralytics' head bias prior), hence the threshold."""
    options = {"confidence": 1e-5, "input_size": 320, "classes": EVERY_CLASS}
    with create_detector("ultralytics", weights=yolov8n_pt, **options) as detector:
        from_pt = detector.detect(pets_frames[:2])
    with create_detector("ultralytics", weights=yolov8n_onnx, **options) as detector:
        from_onnx = detector.detect(pets_frames[:2])
    for a, b in zip(from_pt, from_onnx, strict=True):
        assert len(a) == len(b) > 0
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=0.5)
        np.testing.assert_allclose(a.confidence, b.confidence, rtol=1e-3)


def test_the_class_filter_applies(yolov8n_pt, pets_frames):
    options = {"confidence": 1e-5, "input_size": 320}
    with create_detector("ultralytics", weights=yolov8n_pt, classes=EVERY_CLASS, **options) as d:
        everything = d.detect(pets_frames[:1])[0]
    with create_detector("ultralytics", weights=yolov8n_pt, classes=(3, 7), **options) as d:
        some = d.detect(pets_frames[:1])[0]
    assert set(some.class_id.tolist()) <= {3, 7}
    assert len(some) < len(everything)


def test_a_file_that_is_not_a_model(tmp_path):
    path = tmp_path / "weights.pt"
    path.write_bytes(b"\x00garbage, not a checkpoint")
    with pytest.raises(DetectorError) as error:
        create_detector("ultralytics", weights=path)
    assert str(path) in str(error.value)
    assert "expected an Ultralytics YOLO detection model (.pt, .onnx, .engine)" in str(error.value)


def test_an_onnx_without_ultralytics_metadata_is_sent_to_onnx_yolo(yolov5n_onnx):
    with pytest.raises(DetectorError, match=r"no Ultralytics metadata.*'onnx-yolo' detector"):
        create_detector("ultralytics", weights=yolov5n_onnx)


def test_an_engine_needs_tensorrt(tmp_path):
    """TensorRT cannot be installed here; an engine fails with the reason, before Ultralytics
    would try to pip-install it."""
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed here: engines load through Ultralytics")
    path = tmp_path / "yolo.engine"
    path.write_bytes(b"not an engine")
    with pytest.raises(DetectorError, match=r"yolo\.engine'.*needs the 'tensorrt' Python package"):
        create_detector("ultralytics", weights=path)


def test_missing_or_misnamed_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"yolov8n\.pt': weights file not found"):
        create_detector("ultralytics", weights=tmp_path / "yolov8n.pt")  # never downloaded
    with pytest.raises(DetectorError, match=r"expected a \.pt or \.onnx or \.engine file"):
        create_detector("ultralytics", weights=tmp_path / "yolov8n.tflite")
