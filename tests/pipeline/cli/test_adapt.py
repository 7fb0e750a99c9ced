"""`reidstream adapt` and `reidstream bench site` on the real store footage (skipped where it is
absent): collect, adapt, resume, and score against the hand-checked identities."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli import main
from tests.conftest import shared_file

pytestmark = pytest.mark.slow

TRUTH = Path(__file__).resolve().parents[2] / "data" / "store_identities"


def _site(tmp_path: Path, osnet: Path, yolo: Path) -> Path:
    cameras = "\n".join(
        f"  - {{id: store_cam{i}, uri: '{shared_file(f'video/store_cam{i}.mp4')}', replay: fast}}"
        for i in (1, 2)
    )
    path = tmp_path / "site.yaml"
    path.write_text(
        f"device: cpu\ncameras:\n{cameras}\n"
        f"detector: {{name: onnx-yolo, weights: '{yolo}'}}\n"
        f"reid: {{engine: external-onnx, onnx_path: '{osnet}', intra_op_threads: 1}}\n"
        "output: {sinks: [jsonl]}\nmetrics: {address: ''}\n"
        f"run: {{out_dir: '{tmp_path / 'run'}'}}\n"
    )
    return path


def test_adapt_collects_trains_and_resumes_on_real_footage(
    tmp_path, osnet_onnx, yolov5n_onnx, capsys
):
    site = _site(tmp_path, osnet_onnx, yolov5n_onnx)
    out = tmp_path / "adapt"
    args = ["adapt", "--config", str(site), "--out", str(out), "--no-progress",
            "adapt.duration_s=8", "adapt.epochs=1", "adapt.steps_per_epoch=1",
            "adapt.identities_per_batch=2", "adapt.holdout=0.5",
            f"adapt.truth={TRUTH}"]  # fmt: skip
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    collected = json.loads((out / "tracklets" / "complete.json").read_text())
    assert collected["cameras"] == ["store_cam1", "store_cam2"] and collected["tracklets"] > 2
    assert report["tracklets"]["collected"] == collected["tracklets"]
    assert report["pseudo_labels"]["pairs_checked"]["wrong"] == 0
    assert {"teacher", "adapted"} <= set(report["evaluation"])
    assert (out / "model.pt").is_file() and (out / "last.pt").is_file()
    # Run again with a second epoch: the collection is reused, training resumes.
    mtime = (out / "tracklets" / "tracklets.jsonl").stat().st_mtime
    assert main([*args, "adapt.epochs=2"]) == 0
    assert (out / "tracklets" / "tracklets.jsonl").stat().st_mtime == mtime
    report = json.loads((out / "report.json").read_text())
    assert [e["epoch"] for e in report["epochs"]] == [1, 2]
    assert "reid.checkpoint=" in capsys.readouterr().out


def test_adapt_without_a_teacher_or_cameras_is_a_usage_error(tmp_path, capsys):
    assert main(["adapt", "--out", str(tmp_path), "adapt.teacher=null"]) == 2
    assert "adapt.teacher" in capsys.readouterr().err


def test_bench_site_scores_the_configured_model_against_the_truth(
    tmp_path, osnet_onnx, yolov5n_onnx, capsys
):
    site = _site(tmp_path, osnet_onnx, yolov5n_onnx)
    out = tmp_path / "bench"
    assert main(["bench", "site", "--config", str(site), "--truth", str(TRUTH),
                 "--start-s", "19", "--out", str(out)]) == 0  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    (row,) = report["systems"]
    assert 0.0 <= row["idf1"] <= 1.0 and row["pairs"]["tracklets"] >= 1
    assert "| system | pair mAP |" in capsys.readouterr().out
