"""No weights file a user gives is unpickled with code execution, through any entry point.

The payload is a ``.pt`` whose unpickling opens (so creates) a marker file: the control test shows
that a plain ``torch.load`` does run it; every entry point must refuse it with a clear error and
leave no marker. A real Ultralytics ``.pt`` (random weights, `yolov8n_pt`) still loads.
"""

from __future__ import annotations

import builtins
import os
import socket
import subprocess
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from detectors import DetectorError, create_detector, create_tracker


class _Payload:
    """Unpickling it calls ``open(marker, "w")``: the marker appears if code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.open, (str(self.marker), "w"))


@pytest.fixture
def payload(tmp_path: Path) -> tuple[Path, Path]:
    """(a hostile ``.pt`` shaped like an Ultralytics checkpoint, the marker it would create)."""
    marker = tmp_path / "MARKER"
    path = tmp_path / "hostile.pt"
    torch.save({"model": _Payload(marker), "epoch": 1, "train_args": {}}, path)
    assert not marker.exists()
    return path, marker


def test_the_payload_runs_code_when_unpickled_the_unsafe_way(payload):
    path, marker = payload
    torch.load(path, weights_only=False)  # what Ultralytics' default loader does
    assert marker.exists()


def test_the_ultralytics_detector_refuses_it_and_names_the_safe_formats(payload):
    path, marker = payload
    with pytest.raises(DetectorError, match="ONNX") as caught:
        create_detector("ultralytics", weights=path)
    assert str(path) in str(caught.value)
    assert not marker.exists()


def test_botsort_refuses_it_as_its_appearance_model(payload):
    path, marker = payload
    with pytest.raises(Exception, match="outside the supported"):
        create_tracker("botsort", with_reid=True, reid_model=path)
    assert not marker.exists()


@pytest.mark.parametrize("load", ["reid_weights", "torch_engine", "checkpoint"])
def test_the_reid_and_training_loaders_refuse_it(payload, load):
    path, marker = payload
    if load == "reid_weights":
        from reid_models.weights import read_weights_file

        call = lambda: read_weights_file(path)  # noqa: E731
    elif load == "torch_engine":
        from deploy.engines import create_engine

        call = lambda: create_engine("torch", checkpoint=path)  # noqa: E731
    else:
        from trainers.checkpoint import load_checkpoint

        call = lambda: load_checkpoint(path)  # noqa: E731
    with pytest.raises(Exception, match=str(path.name)):
        call()
    assert not marker.exists()


def _track_with_ultralytics(weights: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    """`reidstream track` of a three-frame video with the ultralytics detector and `weights`."""
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for _ in range(3):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    args = [sys.executable, "-m", "pipeline", "track", str(video), "--detector", "ultralytics"]
    return subprocess.run(
        [*args, "--weights", str(weights), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )


def test_reidstream_track_refuses_it_with_status_2(payload, tmp_path):
    path, marker = payload
    done = _track_with_ultralytics(path, tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "ONNX" in done.stderr and "hostile.pt" in done.stderr
    assert not marker.exists()


def test_a_real_ultralytics_checkpoint_still_loads(yolov8n_pt):
    with create_detector("ultralytics", weights=yolov8n_pt, input_size=64) as detector:
        assert len(detector.detect([np.zeros((48, 64, 3), np.uint8)])) == 1


def test_ultralytics_never_goes_online_even_when_told_to():
    code = (
        "import os; import detectors; from ultralytics.utils import is_online; "
        "from ultralytics.nn import tasks; "
        "print(os.environ['YOLO_OFFLINE'], is_online(), tasks.torch_safe_load.__defaults__)"
    )
    env = {**os.environ, "YOLO_OFFLINE": "0", "ULTRALYTICS_SAFE_LOAD": "0"}
    env["PYTHONPATH"] = str(Path(__file__).parents[2])
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.stdout.split()[:2] == ["1", "False"], done.stderr[-2000:]


# --------------------------------------------------- files Ultralytics would rename or cannot read


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection or Ultralytics download in the test fails loudly."""
    from ultralytics.utils import downloads

    def refuse(*args, **kwargs):
        raise AssertionError(f"network used: {args} {kwargs}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    for name in ("safe_download", "get_github_assets", "is_url"):
        monkeypatch.setattr(downloads, name, refuse)
    monkeypatch.setenv("YOLO_OFFLINE", "1")


@pytest.mark.parametrize("name", ["yolov5n.pt", "yolov3-tiny.pt"])
def test_a_pt_named_as_ultralytics_renames_is_loaded_from_the_file_given(
    name, yolov8n_pt, tmp_path_factory, no_network
):
    from ultralytics.utils.checks import check_yolov5u_filename

    path = tmp_path_factory.mktemp("w") / name
    path.write_bytes(yolov8n_pt.read_bytes())
    renamed = check_yolov5u_filename(str(path), verbose=False)
    assert renamed != str(path) and not Path(renamed).exists()  # Ultralytics would download it
    with create_detector("ultralytics", weights=path, input_size=64) as detector:
        assert len(detector.detect([np.zeros((48, 64, 3), np.uint8)])) == 1


def _yolov5_repository_checkpoint(path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A ``.pt`` as YOLOv5's train.py saves it: {"model": models.yolo.Model, ...}, torch's zip.

    ``models.yolo`` exists only while saving, so nothing can unpickle the file afterwards.
    """
    package, module = types.ModuleType("models"), types.ModuleType("models.yolo")
    model_class = type("Model", (torch.nn.Module,), {"__module__": "models.yolo"})
    module.Model, package.yolo = model_class, module
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "models", package)
        patch.setitem(sys.modules, "models.yolo", module)
        torch.save({"epoch": -1, "model": model_class(), "optimizer": None}, path)
    assert "models.yolo" not in sys.modules
    return path


def test_pickled_classes_reads_the_class_paths_without_loading(tmp_path, monkeypatch, yolov8n_pt):
    from detectors.safe_loading import pickled_classes

    path = _yolov5_repository_checkpoint(tmp_path / "best.pt", monkeypatch)
    assert "models.yolo.Model" in pickled_classes(path)
    assert "ultralytics.nn.tasks.DetectionModel" in pickled_classes(yolov8n_pt)
    assert not any(c.startswith("models.") for c in pickled_classes(yolov8n_pt))


def test_a_yolov5_repository_checkpoint_gets_how_to_export_it(tmp_path, monkeypatch, no_network):
    path = _yolov5_repository_checkpoint(tmp_path / "yolov5n.pt", monkeypatch)
    with pytest.raises(DetectorError, match="original YOLOv5") as caught:
        create_detector("ultralytics", weights=path)
    message = str(caught.value)
    assert "export.py" in message and "--include onnx" in message and "onnx-yolo" in message
    assert "models.yolo.Model" in message and str(path) in message
    assert "models" not in sys.modules


def test_reidstream_track_gives_the_export_advice_for_a_yolov5_checkpoint(tmp_path, monkeypatch):
    path = _yolov5_repository_checkpoint(tmp_path / "yolov5s.pt", monkeypatch)
    done = _track_with_ultralytics(path, tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "export.py" in done.stderr and "onnx-yolo" in done.stderr, done.stderr[-2000:]
    assert "yolov5nu" not in done.stderr + done.stdout
