"""No weights file a user gives is unpickled with code execution, through any entry point.

The payload is a ``.pt`` whose unpickling opens (so creates) a marker file: the control test shows
that a plain ``torch.load`` does run it; every entry point must refuse it with a clear error and
leave no marker. A real Ultralytics ``.pt`` (random weights, `yolov8n_pt`) still loads.
"""

from __future__ import annotations

import builtins
import os
import subprocess
import sys
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


def test_reidstream_track_refuses_it_with_status_2(payload, tmp_path):
    path, marker = payload
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for _ in range(3):
        writer.write(np.zeros((48, 64, 3), np.uint8))
    writer.release()
    args = [sys.executable, "-m", "pipeline", "track", str(video), "--detector", "ultralytics"]
    done = subprocess.run(
        [*args, "--weights", str(path), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
    )
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
