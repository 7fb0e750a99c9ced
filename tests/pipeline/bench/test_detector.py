"""The benchmark runs end to end (its figures are not checked: they depend on the machine)."""

from __future__ import annotations

import pytest

from pipeline.bench.detector import main


@pytest.mark.slow
def test_prints_one_row_per_pipeline(yolov5n_onnx, pets_video, capsys):
    assert main(["--weights", str(yolov5n_onnx), "--video", str(pets_video), "--frames", "3"]) == 0
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| pets")]
    pipelines = [line.split("|")[2].strip() for line in table]
    assert pipelines == [
        "onnx-yolo + bytetrack",
        "ultralytics + bytetrack",
        "hog + bytetrack",
        "model.track (bytetrack)",
    ]
    for line in table:
        frames, fps = (cell.strip() for cell in line.split("|")[4:6])
        assert frames == "3" and float(fps) > 0
