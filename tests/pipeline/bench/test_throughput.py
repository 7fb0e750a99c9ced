"""`reidstream bench pipeline` and what it is made of: the job and the baseline measured on the
same live cameras, the sweep's search, the report's tables and plots. Figures are checked for
what they must be whatever the machine's speed; no timing is asserted."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.bench.baseline import CameraBuffers
from pipeline.bench.profiling import Report
from pipeline.bench.throughput import (
    Plan,
    Point,
    largest_kept_up,
    measure_baseline,
    measure_job,
    sweep,
)
from pipeline.cli import main
from pipeline.config import load_config
from pipeline.settings import ReidstreamConfig
from pipeline.stream.types import Frame

SCENE = [
    "synthetic.people=6",
    "synthetic.duration_s=20",
    "synthetic.size=[180, 320]",
    "tracklets.clip_len=4",
    "tracklets.min_height=24",
    "metrics.address=",
    "output.sinks=[jsonl]",
]


def config(*overrides: str) -> ReidstreamConfig:
    return load_config(ReidstreamConfig, environ={}, overrides=[*SCENE, *overrides])


def test_job_and_baseline_are_measured_on_the_same_live_cameras(tmp_path):
    cfg = config()
    plan = Plan(duration_s=3.0, warmup_s=1.0, null_reid=True, out_dir=tmp_path)
    ours = measure_job(cfg, plan, 2)
    theirs = measure_baseline(cfg, plan, 2)
    for point in (ours, theirs):
        r = point.report
        assert point.cameras == 2 and r.cameras == 2 and r.source_fps == 10.0
        assert set(r.fps_per_camera) == {"cam1", "cam2"}
        assert r.frames_in > 0 and 0 <= r.frames_dropped <= r.frames_in
        assert r.detections > 0 and r.cpu_cores > 0 and r.rss_mb > 0
        assert r.window_s == pytest.approx(3.0, abs=0.2)
        assert r.links >= len(r.latencies_ms)  # and the links of tracklets' last clips
        assert all(lat > 0 for lat in r.latencies_ms)  # links come after their frames
    stages = ours.report.stages
    assert list(stages) == ["detect", "track", "tracklets", "embed", "match", "publish"]
    assert stages["detect"].items_per_s > 0 and stages["detect"].batches > 0
    assert set(ours.report.queue_series) == set(stages)
    assert (tmp_path / "reidstream-2" / "links.jsonl").exists()
    assert (tmp_path / "baseline-2" / "links.jsonl").exists()


def test_a_clip_is_replayed_as_live_cameras_through_the_null_models(tmp_path):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 15, (320, 180))
    rng = np.random.default_rng(0)
    for _ in range(10):  # shorter than the run: the cameras loop it
        writer.write(rng.integers(0, 255, (180, 320, 3), dtype=np.uint8))
    writer.release()
    plan = Plan(
        clip=video,
        duration_s=2.0,
        warmup_s=1.0,
        null_detector=3,
        null_reid=True,
        out_dir=tmp_path,
    )
    point = measure_job(config(), plan, 3)
    r = point.report
    assert r.cameras == 3 and r.source_fps == 15.0
    assert r.frames_in > 30  # more than the clip holds: it looped
    frames = sum(r.fps_per_camera.values()) * r.window_s  # processed in the window
    assert r.detections == pytest.approx(3 * frames)
    assert r.us_per_detection is not None and r.us_per_detection > 0


def _point(system: str, n: int, kept_up: bool) -> Point:
    report = Report(
        window_s=1.0,
        cameras=n,
        source_fps=10.0,
        fps_per_camera={},
        frames_in=0,
        frames_dropped=0,
        detections=0,
        links=0,
        frame_to_link_ms={},
        closing_link_ms={},
        cpu_cores=0.0,
        us_per_detection=None,
        us_per_frame=None,
        rss_mb=0.0,
        gpu_util=None,
        gpu_mem_mb=None,
    )
    return Point(system, n, report, "" if kept_up else "too slow")


def test_sweep_doubles_then_bisects(monkeypatch):
    runs = []

    def fake(system, limit):
        def measure(cfg, plan, n):
            runs.append((system, n))
            return _point(system, n, n <= limit)

        return measure

    monkeypatch.setattr("pipeline.bench.throughput.measure_job", fake("reidstream", 5))
    monkeypatch.setattr("pipeline.bench.throughput.measure_baseline", fake("baseline", 2))
    points = sweep(None, Plan(), start=1, max_cameras=64, baseline=True)  # type: ignore[arg-type]
    assert [n for s, n in runs if s == "reidstream"] == [1, 2, 4, 8, 6, 5]
    assert [n for s, n in runs if s == "baseline"] == [1, 2, 4, 8, 6, 5]
    assert largest_kept_up(points, "reidstream") == 5
    assert largest_kept_up(points, "baseline") == 2
    runs.clear()
    monkeypatch.setattr("pipeline.bench.throughput.measure_job", fake("reidstream", 100))
    sweep(None, Plan(), start=2, max_cameras=6, baseline=False)  # type: ignore[arg-type]
    assert runs == [("reidstream", 2), ("reidstream", 4), ("reidstream", 6)]  # all kept up
    runs.clear()
    monkeypatch.setattr("pipeline.bench.throughput.measure_job", fake("reidstream", 0))
    points = sweep(None, Plan(), start=1, max_cameras=8, baseline=False)  # type: ignore[arg-type]
    assert runs == [("reidstream", 1)] and largest_kept_up(points, "reidstream") is None


def test_camera_buffers_keep_each_cameras_frames_apart():
    buffers = CameraBuffers(2)
    for camera in ("a", "b"):
        buffers.add_camera(camera)
    image = np.zeros((2, 2, 3), np.uint8)
    for i in range(3):
        buffers.put(Frame("a", i, float(i), image), live=True)
    assert buffers.put(Frame("b", 0, 0.0, image), live=True) is None
    assert len(buffers) == 3  # a's first frame was dropped: 2 of a, 1 of b
    assert [f.index for f in buffers.buffers["a"].take_batch(5, 0.0)] == [1, 2]
    buffers.end_camera("b")
    assert [f.camera_id for f in buffers.buffers["b"].take_batch(5, 0.0)] == ["b"]
    assert buffers.buffers["b"].take_batch(5, 0.0) is None


def test_the_command_writes_tables_json_and_plots(tmp_path, capsys):
    out = tmp_path / "bench"
    code = main(
        [
            *["bench", "pipeline", "--duration", "2", "--warmup", "1", "--null-reid", "--out"],
            str(out),
            *SCENE,
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| reidstream | 2 | 1 |" in printed and "| baseline | 2 | 1 |" in printed
    assert "2 cameras, median [min-max] over the rounds; ratios of medians to baseline" in printed
    assert "Stages of reidstream at 2 cameras (round 1)" in printed
    report = json.loads((out / "report.json").read_text())
    assert [p["system"] for p in report["points"]] == ["baseline", "reidstream"]
    assert report["machine"]["cores"] >= 1 and report["command"].startswith("reidstream bench")
    assert report["points"][0]["stages"] == {}  # the baseline has no stages
    assert report["points"][1]["stages"]["embed"]["batch_histogram"] is not None
    low, high = report["load_1min"]
    assert 0 <= low <= high and all(len(p["load_1min"]) == 2 for p in report["points"])
    assert [s["system"] for s in report["summary"]] == ["baseline", "reidstream"]
    assert (out / "report.md").read_text() in printed
    for name in PLOTS:
        image = cv2.imread(str(out / f"{name}.png"))
        assert image is not None and image.shape[0] > 100, name


PLOTS = ("throughput_vs_cameras", "latency_vs_cameras", "latency_cdf", "stage_breakdown")


@pytest.mark.slow
def test_variants_run_side_by_side_in_interleaved_rounds(tmp_path, capsys):
    out = tmp_path / "bench"
    code = main(
        [
            *["bench", "pipeline", "--duration", "1.5", "--warmup", "1", "--null-reid"],
            *["--variant", "b1:detect.max_batch=1", "--variant", "s2:tracklets.stride=2"],
            *["--repeat", "2", "--out", str(out), *SCENE],
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    runs = [(p["system"], p["repeat"]) for p in report["points"]]
    assert runs == [(s, r) for r in (1, 2) for s in ("baseline", "b1", "s2")]
    assert report["variants"] == {"b1": ["detect.max_batch=1"], "s2": ["tracklets.stride=2"]}
    assert report["repeat"] == 2
    b1 = next(s for s in report["summary"] if s["system"] == "b1")
    assert b1["rounds"] == 2 and b1["reference"] == "baseline" and b1["fps_ratio"] > 0
    assert (out / "repeat-2" / "s2-2" / "links.jsonl").exists()
    printed = capsys.readouterr().out
    assert "Stages of b1 at 2 cameras (round 2)" in printed
    assert "Stages of s2 at 2 cameras (round 2)" in printed
    for name in PLOTS:
        assert cv2.imread(str(out / f"{name}.png")) is not None, name


def test_the_command_refuses_what_it_cannot_run(tmp_path, capsys):
    assert main(["bench", "pipeline", "--clip", str(tmp_path / "none.mp4")]) != 0
    assert "no such file" in capsys.readouterr().err
    assert main(["bench", "pipeline", "--cameras", "20"]) != 0
    assert "2 to 16 cameras" in capsys.readouterr().err
    out = tmp_path / "bench"
    bad = ["--variant", "a:detect.max_bach=2", "--variant", "b:detect.max_batch=0"]
    assert main(["bench", "pipeline", *bad, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--variant a: unknown key 'detect.max_bach'" in err and "--variant b:" in err
    assert not out.exists()  # refused before anything ran


def test_the_baseline_runs_ultralytics_track_only_where_the_job_would_run_its_detector():
    from pipeline.bench.throughput import _ultralytics_track_args, with_cameras

    cfg = config("detector.name=ultralytics", "detector.weights=yolo11n.pt")
    plan = Plan(clip=Path("clip.mp4"))
    args = _ultralytics_track_args(with_cameras(cfg, plan, 2, "baseline"), plan)
    assert args is not None and str(args["model"]) == "yolo11n.pt" and args["classes"] == [0]
    assert _ultralytics_track_args(cfg, Plan()) is None  # the scene brings its own boxes
    nulls = Plan(clip=Path("clip.mp4"), null_detector=4)
    assert _ultralytics_track_args(with_cameras(cfg, nulls, 2, "baseline"), nulls) is None
