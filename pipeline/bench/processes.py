"""The job as `reidstream run run.workers=W` on n live cameras, measured from outside.

    measure_processes(cfg, plan, n, label)
      reidstream run --config <cfg with n copies of plan.clip as live, looping cameras>
        wait until every process serves /metrics and frames flow, then the warm-up
        scrape every process's /metrics and the CPU time of the whole process tree   (t0)
        wait plan.duration_s                                                          (t1)
        scrape again, SIGINT the job, read its links.jsonl
      frames/s per camera   = frames decoded - frames dropped, over [t0, t1] (the workers' counters)
      frame-to-link latency = a link's produced_at - its end_time, for links made in [t0, t1]; the
                              last link of each tracklet is counted apart (mostly its last clip's,
                              made once the tracker has lost the person for tracklets.lost_after_s)
      CPU cores, RSS        = the process tree: `run`, its workers and the local broker

The in-process measurement (`pipeline.bench.throughput.measure_job`) sees every batch; this one
sees only what a process publishes, and so is the one that compares process counts alike
(W = 1 included: the same `reidstream run`, measured the same way).
"""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import psutil
from prometheus_client.parser import text_string_to_metric_families

from pipeline.bench.profiling import Report, _load, _load_range, _percentiles
from pipeline.bench.throughput import Plan, Point, with_cameras
from pipeline.config import dump_config
from pipeline.demo.broker import free_port
from pipeline.settings import ReidstreamConfig

__all__ = ["measure_processes"]

REIDSTREAM = str(Path(sys.executable).with_name("reidstream"))


@dataclass(frozen=True)
class _Scrape:
    """Counters of every process at one moment."""

    wall: float
    frames: dict[str, float]  # camera -> frames decoded - frames dropped
    dropped: float
    frames_in: float
    cpu_s: float
    rss: int
    load: float | None  # the machine's 1-minute load average


def measure_processes(cfg: ReidstreamConfig, plan: Plan, n: int, label: str) -> Point:
    """`reidstream run` of `cfg` (its run.workers processes) on n copies of `plan.clip`, from
    outside (module docstring); the point is named `label`."""
    if plan.clip is None or plan.null_detector is not None or plan.null_reid:
        raise ValueError(
            "measuring processes needs a clip to replay (--clip) and the configured models "
            "(no --null-detector, --null-reid)"
        )
    port = free_port()
    cfg = with_cameras(cfg, plan, n, label)
    out_dir = cfg.run.out_dir
    run = dataclasses.replace(cfg.run, max_duration_s=None, record=False)
    metrics = dataclasses.replace(cfg.metrics, address=f"127.0.0.1:{port}")
    cfg = dataclasses.replace(cfg, run=run, metrics=metrics)
    workers = min(cfg.run.workers, n)
    ports = [port] if workers == 1 else [port + 1 + i for i in range(workers)]
    out_dir.mkdir(parents=True, exist_ok=True)
    config = out_dir / "bench-config.yaml"
    config.touch(mode=0o600)
    config.write_text(dump_config(cfg, redact=False), encoding="utf-8")
    command = [REIDSTREAM, "run", "--config", str(config)]
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "run.log").open("wb") as log:
        job = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_flowing(job, ports, timeout_s=180.0)
        time.sleep(plan.warmup_s)
        first = _scrape(job, ports)
        time.sleep(plan.duration_s)
        last = _scrape(job, ports)
    finally:
        job.send_signal(signal.SIGINT)
        try:
            job.wait(120)
        except subprocess.TimeoutExpired:
            job.kill()
    report = _report(first, last, out_dir / "links.jsonl", n, _clip_fps(plan.clip))
    why = []
    if report.min_fps < 0.95 * report.source_fps:
        why.append(f"slowest camera {report.min_fps:.1f} of {report.source_fps:.1f} frames/s")
    if report.drop_fraction > 0.01:
        why.append(f"{100 * report.drop_fraction:.1f}% of frames dropped")
    return Point(label, n, report, "; ".join(why))


def _clip_fps(clip: Path) -> float:
    capture = cv2.VideoCapture(str(clip))
    try:
        return float(capture.get(cv2.CAP_PROP_FPS)) or 25.0
    finally:
        capture.release()


def _metrics(port: int) -> list[Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return list(text_string_to_metric_families(response.read().decode()))


def _samples(families: list[Any], name: str) -> list[Any]:
    return [s for f in families for s in f.samples if s.name == name]


def _wait_flowing(job: subprocess.Popen, ports: list[int], *, timeout_s: float) -> None:
    """Until every worker serves /metrics and has detected a frame (the models are loaded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if job.poll() is not None:
            raise RuntimeError(f"reidstream run exited with {job.returncode}; see its run.log")
        try:
            batches = [
                sum(s.value for s in _samples(_metrics(p), "reidstream_batch_size_count")
                    if s.labels.get("stage") == "detect")
                for p in ports
            ]  # fmt: skip
            if all(b > 0 for b in batches):
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the workers did not process a frame within {timeout_s:.0f} s")


def _scrape(job: subprocess.Popen, ports: list[int]) -> _Scrape:
    frames: dict[str, float] = {}
    frames_in = dropped = 0.0
    for port in ports:
        families = _metrics(port)
        for s in _samples(families, "reidstream_frames_in_total"):
            frames[s.labels["camera"]] = frames.get(s.labels["camera"], 0.0) + s.value
            frames_in += s.value
        for s in _samples(families, "reidstream_frames_dropped_total"):
            frames[s.labels["camera"]] = frames.get(s.labels["camera"], 0.0) - s.value
            dropped += s.value
    tree = [psutil.Process(job.pid)]
    tree += tree[0].children(recursive=True)
    cpu_s = rss = 0
    for process in tree:
        try:
            times = process.cpu_times()
            cpu_s += times.user + times.system
            rss += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return _Scrape(time.time(), frames, dropped, frames_in, cpu_s, rss, _load())


def _report(first: _Scrape, last: _Scrape, links_path: Path, n: int, fps: float) -> Report:
    window = last.wall - first.wall
    per_camera = {c: (last.frames[c] - first.frames.get(c, 0.0)) / window for c in last.frames}
    links = [json.loads(line) for line in links_path.read_text().splitlines()] if (
        links_path.exists()
    ) else []  # fmt: skip
    in_window = [x for x in links if first.wall <= x["produced_at"] <= last.wall]
    final = {x["tracklet_id"]: x["event_id"] for x in links}  # each tracklet's last link
    ongoing = [1000 * (x["produced_at"] - x["end_time"]) for x in in_window
               if final[x["tracklet_id"]] != x["event_id"]]  # fmt: skip
    closing = [1000 * (x["produced_at"] - x["end_time"]) for x in in_window
               if final[x["tracklet_id"]] == x["event_id"]]  # fmt: skip
    frames = sum(per_camera.values()) * window
    cpu = last.cpu_s - first.cpu_s
    return Report(
        window_s=window,
        cameras=n,
        source_fps=fps,
        fps_per_camera=per_camera,
        frames_in=int(last.frames_in - first.frames_in),
        frames_dropped=int(last.dropped - first.dropped),
        detections=0,
        links=len(in_window),
        frame_to_link_ms=_percentiles(ongoing),
        closing_link_ms=_percentiles(closing),
        cpu_cores=cpu / window,
        us_per_detection=None,
        us_per_frame=1e6 * cpu / frames if frames else None,
        rss_mb=last.rss / 2**20,
        gpu_util=None,
        gpu_mem_mb=None,
        latencies_ms=ongoing,
        load_1min=_load_range([first, last]),
    )
