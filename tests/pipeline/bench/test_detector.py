"""`reidstream bench detector` runs end to end (its figures are not checked: they depend on the
machine)."""

from __future__ import annotations

import pytest

from pipeline.cli import main


@pytest.mark.slow
def test_prints_one_row_per_pipeline(yolov5n_onnx, pets_video, capsys):
    argv = ["--weights", str(yolov5n_onnx), "--video", str(pets_video), "--frames", "3"]
    assert main(["bench", "detector", *argv]) == 0
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


def test_a_missing_video_is_refused_before_anything_loads(yolov5n_onnx, tmp_path, capsys):
    argv = ["--weights", str(yolov5n_onnx), "--video", str(tmp_path / "none.avi")]
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "detector", *argv])
    assert exit_.value.code == 2
    assert "none.avi': no such file" in capsys.readouterr().err
