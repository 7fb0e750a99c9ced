"""Fixtures of the detector tests: real frames and detections, and models built here.

Real material (PETS 2009 frames, YOLOv5n COCO detections of them) is read once per session. The
Ultralytics models are built from Ultralytics' own architecture YAML with random weights (no
weights can be downloaded here) and saved or exported into the session's temporary folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detectors import Detections, create_detector
from detectors.video import VideoReader

#: PETS frames the tracking and detection tests share: 15 s at 10 fps.
PETS_FRAMES = 150


@pytest.fixture(scope="session")
def pets_frames(pets_video: Path) -> list[np.ndarray]:
    """The first `PETS_FRAMES` frames of PETS 2009 S2.L1 view 1, BGR."""
    with VideoReader(pets_video, max_frames=PETS_FRAMES) as reader:
        return list(reader)


@pytest.fixture(scope="session")
def pets_detections(yolov5n_onnx: Path, pets_frames: list[np.ndarray]) -> list[Detections]:
    """YOLOv5n (ONNX Runtime) people of every PETS frame, confidence > 0.1 as for tracking."""
    with create_detector("onnx-yolo", weights=yolov5n_onnx, confidence=0.1) as detector:
        return [
            d
            for i in range(0, len(pets_frames), 8)
            for d in detector.detect(pets_frames[i : i + 8])
        ]


@pytest.fixture(scope="session")
def yolov8n_pt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A YOLOv8n detection model (80 classes, random weights) saved as an Ultralytics ``.pt``."""
    import torch
    from ultralytics import YOLO

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("yolov8n") / "yolov8n_random.pt"
    YOLO("yolov8n.yaml").save(path)  # the architecture YAML ships inside the ultralytics wheel
    return path


@pytest.fixture(scope="session")
def yolov8n_onnx(yolov8n_pt: Path) -> Path:
    """`yolov8n_pt` exported by Ultralytics to ONNX: dynamic axes, YOLOv8 layout, metadata."""
    from ultralytics import YOLO

    # simplify=False: onnxslim is not installed and Ultralytics would try to pip-install it.
    exported = YOLO(yolov8n_pt).export(format="onnx", imgsz=320, dynamic=True, simplify=False)
    return Path(exported)


@pytest.fixture(scope="session")
def adapted_yolov5n(yolov5n_onnx: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real YOLOv5n with a YOLOv8-layout output and Ultralytics metadata."""
    from detectors.yolov5_onnx import adapt_yolov5_onnx

    return adapt_yolov5_onnx(yolov5n_onnx, tmp_path_factory.mktemp("adapted") / "yolov5n.onnx")


@pytest.fixture
def motmetrics_numpy2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lets motmetrics 1.4.0 compute IoU distances under NumPy 2.

    motmetrics 1.4.0, its latest release, calls `np.asfarray` in `distances.iou_matrix`; NumPy 2.0
    removed it, so motmetrics' own `test_motchallenge_files` fails here with AttributeError. This
    puts back the removed function (its NumPy 1 definition) for the test's duration only.
    """
    if not hasattr(np, "asfarray"):
        monkeypatch.setattr(
            np, "asfarray", lambda a, dtype=np.float64: np.asarray(a, dtype=dtype), raising=False
        )
