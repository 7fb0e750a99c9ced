"""The ONNX Runtime YOLO backend on real footage, in both output layouts, and its errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from detectors import DetectorError, create_detector
from detectors.onnx_yolo import onnx_providers
from detectors.video import VideoReader


def _people(detections, confidence=0.4):
    return int((detections.confidence > confidence).sum())


@pytest.mark.slow
def test_finds_people_on_pets(pets_detections):
    """PETS S2.L1 has 5-8 walkers in view: YOLOv5n sees at least 3 on nearly every frame."""
    sampled = pets_detections[::10]
    counts = [_people(d) for d in sampled]
    assert sum(c >= 3 for c in counts) >= 0.8 * len(sampled), counts
    for d in sampled:
        assert set(d.class_id.tolist()) <= {0} and d.metadata["image_size"] == (360, 480)
        confident = d[d.confidence > 0.4]
        heights = confident.xyxy[:, 3] - confident.xyxy[:, 1]
        assert (heights > 20).all() and (heights < 200).all(), heights  # walkers, not the scene
        assert (d.xyxy >= 0).all() and (d.xyxy[:, [0, 2]] <= 480).all()
        assert (np.diff(d.confidence) <= 0).all()  # best first


@pytest.mark.slow
def test_finds_people_on_retail_cctv(yolov5n_onnx, retail_video):
    """The 1080p retail view has 5-8 shoppers: at least 3 on most of 7 sampled frames."""
    with VideoReader(retail_video) as reader:
        frames = [frame for i, frame in enumerate(reader) if i % 100 == 0]
    with create_detector("onnx-yolo", weights=yolov5n_onnx, confidence=0.1) as detector:
        found = detector.detect(frames)
    counts = [_people(d) for d in found]
    assert len(found) == 7 and sum(c >= 3 for c in counts) >= 5, counts
    assert all(d.metadata["image_size"] == (1080, 1920) for d in found)
    assert max(float(d.xyxy[:, 2].max()) for d in found) > 640  # mapped back to 1080p pixels


def test_a_batch_equals_frames_one_by_one(yolov5n_onnx, pets_frames, retail_video):
    with VideoReader(retail_video, max_frames=1) as reader:
        mixed = [pets_frames[0], next(iter(reader)), pets_frames[50]]  # sizes differ
    with create_detector("onnx-yolo", weights=yolov5n_onnx) as detector:
        batched = detector.detect(mixed)
        single = [detector.detect([frame])[0] for frame in mixed]
        assert detector.detect([]) == []
    for b, s in zip(batched, single, strict=True):
        assert len(b) == len(s) > 0
        np.testing.assert_allclose(b.xyxy, s.xyxy, atol=1e-2)
        np.testing.assert_allclose(b.confidence, s.confidence, atol=1e-5)


def test_yolov8_layout_of_the_same_network_finds_the_same_people(
    adapted_yolov5n, pets_frames, pets_detections
):
    """The adapted model is YOLOv5n with its output in the YOLOv8 layout (4 + 80, boxes)."""
    with create_detector("onnx-yolo", weights=adapted_yolov5n, confidence=0.1) as detector:
        assert (detector.layout, detector.num_classes) == ("yolov8", 80)
        found = detector.detect(pets_frames[:16:5])
    for ours, reference in zip(found, pets_detections[:16:5], strict=True):
        assert len(ours) == len(reference) > 0
        np.testing.assert_allclose(ours.xyxy, reference.xyxy, atol=1e-2)
        np.testing.assert_allclose(ours.confidence, reference.confidence, atol=1e-5)


def test_matches_ultralytics_predictions_on_the_same_onnx(adapted_yolov5n, pets_frames):
    from ultralytics import YOLO

    frames = pets_frames[:31:10]
    model = YOLO(str(adapted_yolov5n), task="detect")
    theirs = model.predict(frames, imgsz=640, conf=0.1, classes=[0], rect=False, verbose=False)
    with create_detector("onnx-yolo", weights=adapted_yolov5n, confidence=0.1) as detector:
        ours = detector.detect(frames)
    for mine, result in zip(ours, theirs, strict=True):
        boxes = result.boxes.cpu().numpy()
        assert len(mine) == len(boxes) > 3
        np.testing.assert_allclose(mine.xyxy, boxes.xyxy, atol=0.5)
        np.testing.assert_allclose(mine.confidence, boxes.conf, atol=1e-4)


@pytest.mark.parametrize("rect", [True, False])
def test_an_ultralytics_export_is_read_as_yolov8(yolov8n_onnx, pets_frames, rect):
    """A real Ultralytics export (random weights): layout and classes from shape and metadata,
    and the same boxes as Ultralytics' predictor at a threshold low enough to get some, with
    its minimal padding (rect: 320x240 for PETS) or its square input."""
    from ultralytics import YOLO

    every_class = list(range(80))
    options = {"confidence": 1e-5, "input_size": 320, "classes": every_class, "rect": rect}
    with create_detector("onnx-yolo", weights=yolov8n_onnx, **options) as detector:
        assert (detector.layout, detector.num_classes, detector.input_size, detector.rect) == (
            "yolov8",
            80,
            (320, 320),
            rect,
        )
        ours = detector.detect(pets_frames[:2])
    theirs = YOLO(str(yolov8n_onnx), task="detect").predict(
        pets_frames[:2], imgsz=320, conf=1e-5, rect=rect, verbose=False
    )
    for mine, result in zip(ours, theirs, strict=True):
        boxes = result.boxes.cpu().numpy()
        assert len(mine) == len(boxes) > 0
        np.testing.assert_allclose(mine.xyxy, boxes.xyxy, atol=0.5)


def test_a_static_batch_and_size_are_honoured(yolov8n_pt, pets_frames, tmp_path):
    from ultralytics import YOLO

    copy = tmp_path / "static.pt"  # the export lands beside the .pt: keep the shared one intact
    copy.write_bytes(yolov8n_pt.read_bytes())
    exported = Path(YOLO(copy).export(format="onnx", imgsz=256, batch=1, simplify=False))
    options = {"weights": exported, "confidence": 1e-5, "classes": range(80)}
    with create_detector("onnx-yolo", **options) as detector:
        assert detector.input_size == (256, 256)
        assert len(detector.detect(pets_frames[:3])) == 3  # run as three batches of one
    with pytest.raises(
        DetectorError, match=r"input is fixed at 256x256; input_size=320 .*YOLOv8/11 layout"
    ):
        create_detector("onnx-yolo", input_size=320, **options)


# ------------------------------------------------------------------------------------ bad input


class _Classifier(torch.nn.Module):
    def forward(self, x):
        return x.mean(dim=(2, 3)).repeat(1, 4)[:, :10]  # (N, 10)


class _Tiny3d(torch.nn.Module):
    def forward(self, x):
        return x[:, :, :3, 0]  # (N, 3, 3): too few channels for either layout


def _export(module: torch.nn.Module, path: Path) -> Path:
    torch.onnx.export(
        module,
        (torch.zeros(1, 3, 64, 64),),
        str(path),
        input_names=["images"],
        output_names=["output"],
        dynamo=False,
    )
    return path


@pytest.mark.parametrize(
    ("module", "shape"), [(_Classifier(), r"\(1, 10\)"), (_Tiny3d(), r"\(1, 3, 3\)")]
)
def test_an_unknown_output_layout_names_the_file_and_the_layouts(module, shape, tmp_path):
    path = _export(module, tmp_path / "not_yolo.onnx")
    with pytest.raises(DetectorError) as error:
        create_detector("onnx-yolo", weights=path, input_size=64)
    message = str(error.value)
    assert str(path) in message
    assert f"first output has shape {shape.replace(chr(92), '')}" in message
    assert "expected a YOLOv5 layout (N, boxes, 5 + classes) or a YOLOv8/11 layout" in message


def test_a_forced_layout_that_does_not_fit_is_refused(yolov5n_onnx):
    with pytest.raises(DetectorError, match=r"\(layout=yolov8 was asked for\)"):
        create_detector("onnx-yolo", weights=yolov5n_onnx, layout="yolov8")


def test_an_end_to_end_export_is_refused_with_the_way_out(adapted_yolov5n, tmp_path):
    model = onnx.load(str(adapted_yolov5n))
    onnx.helper.set_model_props(model, {"names": "{0: 'person'}", "end2end": "True"})
    onnx.save(model, str(tmp_path / "e2e.onnx"))
    with pytest.raises(DetectorError, match=r"exported end-to-end.*end2end=False"):
        create_detector("onnx-yolo", weights=tmp_path / "e2e.onnx")


def test_a_file_that_is_not_a_model(tmp_path):
    path = tmp_path / "weights.onnx"
    path.write_text("this is not a model\n")
    with pytest.raises(DetectorError) as error:
        create_detector("onnx-yolo", weights=path)
    assert str(path) in str(error.value)
    assert "not a loadable ONNX model" in str(error.value)
    assert "expected a YOLO detector exported to ONNX" in str(error.value)


def test_missing_or_misnamed_weights(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.onnx': weights file not found"):
        create_detector("onnx-yolo", weights=tmp_path / "missing.onnx")
    with pytest.raises(DetectorError, match=r"expected a \.onnx file, got suffix '\.pt'"):
        create_detector("onnx-yolo", weights=tmp_path / "model.pt")
    with pytest.raises(DetectorError, match="'onnx-yolo' needs weights"):
        create_detector("onnx-yolo")


def test_bad_options(yolov5n_onnx, yolov8n_onnx):
    with pytest.raises(DetectorError, match=r"class ids \[80\] are not among the model's 80"):
        create_detector("onnx-yolo", weights=yolov5n_onnx, classes=(0, 80))
    with pytest.raises(DetectorError, match="input_size=300: expected a positive multiple of 32"):
        create_detector("onnx-yolo", weights=yolov8n_onnx, input_size=300)
    with pytest.raises(DetectorError, match="layout 'v5': expected one of auto, yolov5, yolov8"):
        create_detector("onnx-yolo", weights=yolov5n_onnx, layout="v5")
    with pytest.raises(DetectorError, match="intra_op_threads = -1: expected 0 or more"):
        create_detector("onnx-yolo", weights=yolov5n_onnx, intra_op_threads=-1)


@pytest.mark.parametrize("input_size", [None, 320])  # 320: the re-headed graph's own session
def test_a_thread_count_reaches_the_session_and_finds_the_same(
    yolov5n_onnx, pets_frames, input_size
):
    options = {"weights": yolov5n_onnx, "input_size": input_size}
    with (
        create_detector("onnx-yolo", **options) as default,
        create_detector("onnx-yolo", intra_op_threads=1, **options) as one,
    ):
        assert one._session.get_session_options().intra_op_num_threads == 1
        assert default._session.get_session_options().intra_op_num_threads == 0
        a, b = default.detect(pets_frames[:2]), one.detect(pets_frames[:2])
    for x, y in zip(a, b, strict=True):
        np.testing.assert_allclose(x.xyxy, y.xyxy, atol=1e-2)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (np.zeros((0, 0, 3), np.uint8), "frame 1: expected a non-empty image, got shape (0, 0, 3)"),
        (np.zeros((48, 64), np.uint8), "frame 1: expected an (H, W, 3) uint8 BGR image, got shape"),
        (np.zeros((48, 64, 3), np.float32), "got shape (48, 64, 3) dtype float32"),
        (None, "frame 1: expected an (H, W, 3) uint8 BGR image, got NoneType"),
    ],
)
def test_bad_frames_are_named(yolov5n_onnx, pets_frames, frame, message):
    with (
        create_detector("onnx-yolo", weights=yolov5n_onnx) as detector,
        pytest.raises(DetectorError) as error,
    ):
        detector.detect([pets_frames[0], frame])
    assert message in str(error.value)


def test_providers_follow_the_device():
    assert onnx_providers("cpu") == ["CPUExecutionProvider"]
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        assert onnx_providers("auto") == ["CPUExecutionProvider"]
        with pytest.raises(DetectorError, match="no CUDAExecutionProvider"):
            onnx_providers("cuda:1")
    with pytest.raises(DetectorError, match="device 'tpu': expected auto, cpu, cuda or cuda:N"):
        onnx_providers("tpu")
