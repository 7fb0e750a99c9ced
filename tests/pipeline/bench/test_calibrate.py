"""`reidstream calibrate`: tracklets cut into the job's clips and embedded by the configured
engine, the proposal written with its plot; on the real store footage (skipped where it is
absent), the whole command with the false merges and splits of both thresholds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.bench.calibrate import calibrate_store, clip_windows, identity_errors
from pipeline.cli import main
from pipeline.config import ConfigError, load_config
from pipeline.settings import ReidstreamConfig
from tests.conftest import shared_file
from trainers.adapt.store import TrackletStore

TRUTH = Path(__file__).resolve().parents[2] / "data" / "store_identities"


def test_clip_windows_are_the_jobs_clips():
    assert clip_windows(3, 8, 8) == [range(3)]
    assert clip_windows(20, 8, 4) == [range(s, s + 8) for s in (0, 4, 8, 12)]
    assert clip_windows(21, 8, 8) == [range(0, 8), range(8, 16), range(13, 21)]


def _store(root: Path, people: dict[str, tuple[str, range, float]]) -> TrackletStore:
    """One tracklet per entry (camera, frames, box x), crops of one colour per person."""
    store = TrackletStore(root)
    rng = np.random.default_rng(0)
    for name, (camera, frames, x) in people.items():
        colour = rng.integers(0, 255, 3, dtype=np.uint8)
        n = len(frames)
        crops = np.broadcast_to(colour, (n, 256, 128, 3)).copy()
        crops[:, 100:] = rng.integers(0, 255, (n, 156, 128, 3), dtype=np.uint8)
        store.add(tracklet_id=name, camera=camera, track_id=len(store.tracklets),
                  frames=np.asarray(frames), timestamps=np.asarray(frames) / 10.0,
                  boxes=np.array([[x, 10, x + 40, 110]] * n, float), crops=crops)  # fmt: skip
    store.close({})
    return TrackletStore.open(root)


def test_calibrate_store_writes_the_proposal_and_the_plot(tmp_path, synthetic_osnet_onnx):
    cfg = load_config(
        ReidstreamConfig,
        environ={},
        overrides=["device=cpu", "reid.engine=external-onnx",
                   f"reid.onnx_path={synthetic_osnet_onnx}", "tracklets.clip_len=4",
                   "tracklets.stride=4", "calibrate.min_gap_s=1.0"],
    )  # fmt: skip
    store = _store(
        tmp_path / "tracklets",
        {
            "a": ("c1", range(0, 30), 0.0),
            "b": ("c1", range(10, 40), 200.0),
            "a-again": ("c1", range(2, 6), 4.0),  # a's box: one person split, not a pair
            "c": ("c2", range(0, 8), 0.0),  # alone on its camera and short: no pair
        },
    )
    report = calibrate_store(cfg, store, tmp_path)
    assert report["different_people"]["pairs"] == 1
    assert report["same_person"]["pairs"] == 2  # a and b last 3 s; a-again and c under 1 s
    assert report["clip_len"] == 4 and report["tracklets"] == 4
    assert report["proposed_threshold"] == pytest.approx(report["different_people"]["median"],
                                                         abs=0.001)  # fmt: skip
    assert "1 different-people and 2 same-person pairs" in report["warnings"][0]
    assert json.loads((tmp_path / "calibration.json").read_text()) == report
    png = (tmp_path / "calibration.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000


def test_calibrate_without_a_co_occurring_pair_says_so(tmp_path, synthetic_osnet_onnx):
    onnx = f"reid.onnx_path={synthetic_osnet_onnx}"
    overrides = ["device=cpu", "reid.engine=external-onnx", onnx]
    cfg = load_config(ReidstreamConfig, environ={}, overrides=overrides)
    store = _store(tmp_path / "tracklets", {"a": ("c1", range(0, 30), 0.0)})
    with pytest.raises(ConfigError, match="no different-people pairs"):
        calibrate_store(cfg, store, tmp_path)


def test_identity_errors_count_merged_ids_and_split_people(tmp_path):
    truth = {
        "c1": [(f, 1, 0, 0, 10, 10) for f in range(3)] + [(f, 2, 50, 0, 60, 10) for f in range(3)]
    }
    rows = ["camera,frame,time,track_id,tracklet_id,global_id,x1,y1,x2,y2"]
    for f in range(3):
        rows += [f"c1,{f},0,1,t1,g1,0,0,10,10", f"c1,{f},0,2,t2,g1,50,0,60,10"]
    rows += ["c1,2,0,3,t3,g2,50,0,60,10"]  # person 2 again, another id
    (tmp_path / "tracks.csv").write_text("\n".join(rows) + "\n")
    errors = identity_errors(tmp_path / "tracks.csv", truth)
    assert errors == {"merged_ids": 1, "split_people": 1, "extra_ids": 1,
                      "global_ids": 2, "people": 2}  # fmt: skip


@pytest.mark.slow
def test_calibrate_on_the_store_footage(tmp_path, osnet_onnx, yolov5n_onnx, capsys):
    cameras = "\n".join(
        f"  - {{id: store_cam{i}, uri: '{shared_file(f'video/store_cam{i}.mp4')}', replay: fast}}"
        for i in (1, 2)
    )
    site = tmp_path / "site.yaml"
    site.write_text(
        f"device: cpu\ncameras:\n{cameras}\n"
        f"detector: {{name: onnx-yolo, weights: '{yolov5n_onnx}'}}\n"
        f"reid: {{engine: external-onnx, onnx_path: '{osnet_onnx}', intra_op_threads: 1}}\n"
        "matcher: {threshold: 0.7}\n"
    )
    out = tmp_path / "cal"
    args = ["calibrate", "--config", str(site), "--out", str(out), "--truth", str(TRUTH),
            "--target-false-merge", "0.05", "calibrate.duration_s=10"]  # fmt: skip
    assert main(args) == 0
    report = json.loads((out / "calibration.json").read_text())
    assert report["target_false_merge"] == 0.05
    assert report["different_people"]["pairs"] >= 10 and report["same_person"]["pairs"] >= 3
    # OSNet separates the store's people: different people well below the same person.
    assert report["different_people"]["median"] < report["same_person"]["median"]
    assert 0.3 < report["proposed_threshold"] < 1.0
    assert [s["threshold"] for s in report["scored"]] == [0.7, report["proposed_threshold"]]
    assert all(s["people"] >= 5 for s in report["scored"])
    assert "proposed matcher.threshold=" in capsys.readouterr().out


def test_calibrate_without_cameras_is_a_usage_error(tmp_path, capsys):
    assert main(["calibrate", "--out", str(tmp_path)]) == 2
    assert "calibrate needs the site's cameras" in capsys.readouterr().err
