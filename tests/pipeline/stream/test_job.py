"""The streaming job end to end on the synthetic scene and on files: every stage for real, a
small ReID network so that the tests stay fast on two CPU cores."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import cv2
import numpy as np
from prometheus_client import CollectorRegistry

from pipeline.assemble import build_job
from pipeline.config import load_config
from pipeline.messages.encoding import (
    CLOSED_SCHEMA,
    EMBEDDING_SCHEMA,
    closed_from_dict,
    decode,
    embedding_from_dict,
    link_from_dict,
    validate,
)
from pipeline.monitoring.metrics import PipelineMetrics
from pipeline.settings import ReidstreamConfig
from pipeline.stream.job import Job

SCENE = [
    "synthetic.cameras=3",
    "synthetic.people=5",
    "synthetic.duration_s=45",
    "synthetic.fps=5",
    "synthetic.size=[180, 320]",
    "synthetic.replay=fast",
    "tracklets.clip_len=4",
    "tracklets.min_height=24",
    "metrics.address=",
    "output.sinks=[jsonl]",
]


def config(tmp_path, *overrides: str) -> ReidstreamConfig:
    return load_config(
        ReidstreamConfig, environ={}, overrides=[*SCENE, f"run.out_dir={tmp_path}", *overrides]
    )


def run_job(cfg: ReidstreamConfig, engine, role: str = "all", **kw):
    metrics = PipelineMetrics(CollectorRegistry())
    job = build_job(cfg, role=role, metrics=metrics, engine=engine, model_name="tiny-c2d")
    return job.run(**kw), metrics


def jsonl(path) -> list[dict]:
    return [decode(line) for line in path.read_bytes().splitlines()]


def test_synthetic_scene_runs_end_to_end_and_is_scored(tmp_path, tiny_engine_factory):
    cfg = config(tmp_path, "run.record=true", "kafka.sasl_plain_password=s3cret")
    summary, metrics = run_job(cfg, tiny_engine_factory())
    assert summary.stopped_by == "end of the sources"
    assert {c: s["frames"] for c, s in summary.cameras.items()} == dict.fromkeys(
        ("cam1", "cam2", "cam3"), 225
    )
    assert all(s["status"] == "ended" and s["dropped"] == 0 for s in summary.cameras.values())
    stages = summary.stages
    assert stages["detect"] == stages["track"] == stages["tracklets"] == 675
    assert stages["embed"] > 10 and stages["match"] == stages["embed"]  # every clip matched
    documents = jsonl(tmp_path / "links.jsonl")
    assert len(documents) == stages["publish"] > 0
    for document in documents:
        validate(document)
    links = [link_from_dict(d) for d in documents]
    assert {link.camera_id for link in links} == {"cam1", "cam2", "cam3"}
    # The recorded outputs: tracks, a mosaic, the identity score against the ground truth.
    assert set(summary.outputs) >= {"links", "tracks", "mosaic", "summary"}
    mosaic = cv2.imread(summary.outputs["mosaic"])
    assert mosaic.shape[1] == 3 * 322 and mosaic.shape[0] > 100
    score = summary.score
    assert 0.0 < score["idf1"] <= 1.0 and score["true_ids"] == 5
    latest = {link.tracklet_id: link.global_id for link in links}  # consumers keep the latest
    assert score["predicted_ids"] == len(set(latest.values()))
    assert json.loads((tmp_path / "summary.json").read_text())["score"] == score
    written = (tmp_path / "config.yaml").read_text()
    assert "s3cret" not in written and "<redacted>" in written
    value = metrics.registry.get_sample_value
    assert value("reidstream_frames_in_total", {"camera": "cam2"}) == 225
    assert value("reidstream_links_published_total", {"sink": "jsonl"}) == len(links)
    assert value("reidstream_batch_size_count", {"stage": "embed"}) >= 1
    assert value("reidstream_gallery_identities") == summary.identities > 0


def test_worker_publishes_clip_embeddings_keyed_by_camera(tmp_path, tiny_engine_factory):
    cfg = config(tmp_path, "synthetic.only_cameras=[cam2]")
    summary, _ = run_job(cfg, tiny_engine_factory(), role="worker")
    assert list(summary.cameras) == ["cam2"] and summary.identities is None
    documents = jsonl(tmp_path / "links.jsonl")
    embeddings = [embedding_from_dict(d) for d in documents if d["schema"] == EMBEDDING_SCHEMA]
    closed = [closed_from_dict(d) for d in documents if d["schema"] == CLOSED_SCHEMA]
    assert len(embeddings) + len(closed) == len(documents)
    assert len(embeddings) == summary.stages["embed"] - len(closed) > 0
    # Every tracklet ends once, after its last embedding.
    position = {d["event_id"]: i for i, d in enumerate(documents)}
    assert len({c.tracklet_id for c in closed}) == len(closed)
    for c in closed:
        mine = [position[e.event_id] for e in embeddings if e.tracklet_id == c.tracklet_id]
        assert all(p < position[c.event_id] for p in mine)
        assert all(e.end_time <= c.last_seen for e in embeddings if e.tracklet_id == c.tracklet_id)
    assert {e.tracklet_id for e in embeddings} <= {c.tracklet_id for c in closed}
    assert {e.camera_id for e in embeddings} == {"cam2"}
    assert all(e.embedding.shape == (64,) and e.model == "tiny-c2d" for e in embeddings)
    spans = [e.end_frame - e.start_frame for e in embeddings]
    assert spans.count(3) > len(spans) / 2  # mostly 4 consecutive frames (gates skip some)


def test_stop_drains_and_serves_metrics_and_health(tmp_path, tiny_engine_factory):
    cfg = config(tmp_path, "synthetic.replay=native", "metrics.address=127.0.0.1:0")
    reports = {}

    def probe(job: Job) -> None:
        def later() -> None:
            time.sleep(4.0)
            base = f"http://127.0.0.1:{job.server.port}"
            with urllib.request.urlopen(base + "/readyz") as r:
                reports["health"] = (r.status, json.loads(r.read()))
            with urllib.request.urlopen(base + "/livez") as r:
                reports["live"] = (r.status, json.loads(r.read()))
            with urllib.request.urlopen(base + "/metrics") as r:
                reports["metrics"] = r.read().decode()
            job.request_stop()

        threading.Thread(target=later, daemon=True).start()

    start = time.monotonic()
    summary, _ = run_job(cfg, tiny_engine_factory(), on_started=probe)
    assert time.monotonic() - start < 20
    assert summary.stopped_by == "stop requested"
    frames = [s["frames"] for s in summary.cameras.values()]
    assert all(15 <= f < 225 for f in frames)  # about 4 s at 5 fps, not the whole scene
    # Whatever was read went all the way through.
    assert summary.stages["tracklets"] == summary.stages["detect"] == sum(frames)
    status, health = reports["health"]
    assert status == 200 and health["status"] == "ok"
    assert reports["live"] == (200, {"status": "alive"})
    assert [c["status"] for c in health["cameras"]] == ["connected"] * 3
    assert set(health["stages"]) == {"detect", "track", "tracklets", "embed", "match", "publish"}
    assert all(s["alive"] for s in health["stages"].values())
    assert 'reidstream_frames_in_total{camera="cam1"}' in reports["metrics"]
    assert "reidstream_stage_latency_seconds_bucket" in reports["metrics"]


def write_video(path, frames: int, size=(180, 320), fps=10.0) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size[::-1])
    rng = np.random.default_rng(0)
    for i in range(frames):
        image = np.full((*size, 3), 90, np.uint8)
        x = 20 + 8 * i
        image[40:150, x : x + 40] = rng.integers(0, 255, 3)  # a block walking right
        writer.write(image)
    writer.release()


#: A stream nothing answers (port 9, discard), with credentials that must not be shown.
LOST_CAMERA = "rtsp://admin:hun/ter@2@127.0.0.1:9/none?token=t0ken"


def test_a_camera_that_never_opens_or_is_broken_does_not_stop_the_others(
    tmp_path, tiny_engine_factory, caplog
):
    good = tmp_path / "good.mp4"
    write_video(good, 30)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(2000))
    cameras = (
        f"cameras=[{{id: good, uri: '{good}', replay: fast}}, {{id: missing, uri: "
        f"'{tmp_path}/missing.mp4'}}, {{id: broken, uri: '{broken}'}},"
        f" {{id: lost, uri: '{LOST_CAMERA}', live: true}}]"
    )
    cfg = config(tmp_path, cameras, "detector.name=hog", "sources.max_reconnects=1",
                 "sources.reconnect_initial_s=0.1", "sources.open_timeout_s=2")  # fmt: skip
    summary, metrics = run_job(cfg, tiny_engine_factory())
    cams = summary.cameras
    assert (cams["good"]["status"], cams["good"]["frames"]) == ("ended", 30)
    assert cams["missing"]["status"] == cams["broken"]["status"] == "failed"
    assert cams["lost"]["status"] == "failed" and cams["lost"]["reconnects"] == 1
    assert "video file not found" in cams["missing"]["last_error"]
    assert summary.stages["detect"] == 30
    value = metrics.registry.get_sample_value
    assert value("reidstream_camera_reconnects_total", {"camera": "lost"}) == 1
    assert "giving up after 1 failed reconnections" in caplog.text
    # The lost camera's credentials are in none of the files or logs the run left.
    written = [(tmp_path / name).read_text() for name in ("summary.json", "config.yaml")]
    for text in [*written, caplog.text]:
        assert "hun/ter" not in text and "t0ken" not in text
        assert "rtsp://admin:***@127.0.0.1:9/none?token=***" in text


def test_nan_embeddings_are_dropped_and_counted(tmp_path, tiny_engine_factory):
    engine = tiny_engine_factory()
    original = engine._embed_batch

    def every_third_nan(clips):
        out = original(clips).clone()
        out[::3] = float("nan")  # as a broken fp16 engine or corrupt weights would
        return out

    engine._embed_batch = every_third_nan
    cfg = config(tmp_path, "synthetic.only_cameras=[cam1]")
    summary, metrics = run_job(cfg, engine, role="worker")
    nan = metrics.registry.get_sample_value(
        "reidstream_nonfinite_embeddings_total", {"camera": "cam1"}
    )
    documents = jsonl(tmp_path / "links.jsonl")
    written = sum(d["schema"] == EMBEDDING_SCHEMA for d in documents)
    clips = summary.stages["embed"] - (len(documents) - written)  # items in: clips and ends
    assert nan >= 1 and written == clips - nan
