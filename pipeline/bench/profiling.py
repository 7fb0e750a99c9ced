"""Measuring a running job: what each stage did, how full the queues were, what the process used.

    profiler = Profiler(clock=time.perf_counter)
    profiler.attach(job)        each stage reports every batch (start, seconds, items); the
                                detect stage also reports each frame's camera and detections,
                                the tracklet stage which clips close a tracklet, and the
                                publish stage each link's frame-to-link latency (capture of the
                                newest frame behind it -> serialised and taken by every sink;
                                Kafka's acknowledgement comes after)
    profiler.start(depths, cameras)
                                a sampler thread records every `interval_s`: queue depths,
                                per-camera frame and drop counters, process CPU time and RSS,
                                GPU memory and utilisation (when torch uses CUDA), and the
                                machine's 1-minute load average
    profiler.stop()
    profiler.report(t0, t1)     `Report`: the figures over the window [t0, t1] of `clock`

Links are split in two: those of clips cut while their person is in view, and those of a
tracklet's last clip, cut when the tracker has lost the person for `tracklets.lost_after_s`
(so at least that long after its newest frame); `frame_to_link_ms` is the first kind,
`closing_link_ms` the second.

The same recorder serves the baseline loop (`pipeline.bench.baseline`), which reports frames and
links through `frame_done` and `link_made` itself, so both are measured by one definition.

The load average (`os.getloadavg`, runnable processes of the whole machine) at the start and
at the end of the run tells a busy machine from a slow job: on a shared machine other users'
work takes cores from the run without showing in its own CPU time.

Percentiles are exact (numpy over every batch or link in the window), not histogram estimates;
the Prometheus histograms of `pipeline.monitoring.metrics` stay what a live site watches.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import psutil

from pipeline.messages.types import IdentityLink, TrackletClosed
from pipeline.stream.sources import CameraState
from pipeline.stream.types import Clip

__all__ = ["Profiler", "Report", "StageFigures", "keeps_up"]

#: Batch size histogram edges (items): powers of two, as
#: `pipeline.monitoring.metrics.BATCH_BUCKETS`.
BATCH_EDGES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@dataclass
class Sample:
    """One sampler tick."""

    t: float
    depths: dict[str, int]
    frames: dict[str, int]  # camera -> frames read from the source
    dropped: dict[str, int]  # camera -> frames dropped by the source's buffer
    cpu_s: float  # process user + system CPU seconds
    rss: int  # bytes
    gpu_util: float | None = None  # percent
    gpu_mem: int | None = None  # bytes allocated by torch
    load: float | None = None  # the machine's 1-minute load average


@dataclass
class StageFigures:
    """One stage over the window."""

    items_per_s: float
    busy: float  # fraction of the window the stage's thread spent processing
    batches: int
    batch_mean: float
    batch_histogram: dict[str, int]  # "<=edge" -> batches
    latency_ms: dict[str, float]  # p50, p95, p99 of the batch processing time
    queue_mean: float
    queue_max: int
    queue_growth: float  # mean depth of the window's last quarter minus its first quarter


@dataclass
class Report:
    """The figures of one run over its measured window (see `Profiler.report`)."""

    window_s: float
    cameras: int
    source_fps: float
    fps_per_camera: dict[str, float]
    frames_in: int
    frames_dropped: int
    detections: int
    links: int
    frame_to_link_ms: dict[str, float]  # links of clips cut while the person is in view
    closing_link_ms: dict[str, float]  # links of a tracklet's last clip (see the docstring)
    cpu_cores: float  # CPU seconds per second of the window
    us_per_detection: float | None  # process CPU time per detection
    us_per_frame: float | None  # process CPU time per frame processed
    rss_mb: float
    gpu_util: float | None
    gpu_mem_mb: float | None
    stages: dict[str, StageFigures] = field(default_factory=dict)
    queue_series: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    load_1min: tuple[float, float] | None = None  # the machine's load at the start, at the end

    @property
    def min_fps(self) -> float:
        return min(self.fps_per_camera.values(), default=0.0)

    @property
    def total_fps(self) -> float:
        return sum(self.fps_per_camera.values())

    @property
    def drop_fraction(self) -> float:
        return self.frames_dropped / self.frames_in if self.frames_in else 0.0

    def as_dict(self, *, series: bool = True) -> dict[str, Any]:
        out = asdict(self)
        out["min_fps"], out["total_fps"] = self.min_fps, self.total_fps
        out["drop_fraction"] = self.drop_fraction
        if not series:
            out.pop("queue_series"), out.pop("latencies_ms")
        return out


def keeps_up(report: Report, capacities: dict[str, int], *, fps_share: float = 0.95) -> str:
    """Why the run did not keep up with its cameras, or "" if it did.

    Keeping up: every camera processed at least `fps_share` of its frame rate, at most 1% of the
    frames were dropped, and no queue grew over the window (its mean depth in the last quarter
    exceeds the first quarter's by more than 2 items and 10% of its capacity).
    """
    why = []
    if report.min_fps < fps_share * report.source_fps:
        why.append(f"slowest camera {report.min_fps:.1f} of {report.source_fps:.1f} frames/s")
    if report.drop_fraction > 0.01:
        why.append(f"{100 * report.drop_fraction:.1f}% of frames dropped")
    for stage, figures in report.stages.items():
        if figures.queue_growth > max(2.0, 0.1 * capacities.get(stage, 0)):
            why.append(f"{stage} queue grew by {figures.queue_growth:.0f}")
    return "; ".join(why)


class Profiler:
    """Records one run (see the module docstring).

    Args:
        interval_s: Sampler period.
        clock: The clock of every record (`time.perf_counter`, as the stages time batches).
    """

    def __init__(self, *, interval_s: float = 0.2, clock: Callable[[], float] = time.perf_counter):
        self.interval_s, self.clock = interval_s, clock
        self.batches: dict[str, list[tuple[float, float, int]]] = {}  # (start, seconds, items)
        self.frames: list[tuple[float, str, int]] = []  # (done at, camera, detections)
        self.links: list[tuple[float, float, bool]] = []  # (made at, latency s, closing)
        self.closing_clips: set[tuple[str, float]] = set()  # (tracklet id, newest frame time)
        self.samples: list[Sample] = []
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._depths: Callable[[], dict[str, int]] = dict
        self._cameras: Callable[[], list[CameraState]] = list

    # ------------------------------------------------------------------------------ recording

    def attach(self, job: Any) -> None:
        """Hooks into a built `pipeline.stream.job.Job` (before it runs)."""
        for stage in job.stages:
            stage.observer = self.stage_batch

    def stage_batch(
        self, stage: str, start: float, seconds: float, batch: list, out: Sequence
    ) -> None:
        """A stage's observer: one processed batch (and, for detect, its frames)."""
        self.batches.setdefault(stage, []).append((start, seconds, len(batch)))
        if stage == "detect":
            done = start + seconds
            # A frame the detector skipped (detect.interval) has None: no detections of its own.
            self.frames += [(done, f.camera_id, len(found or ())) for f, found in out]
        elif stage == "tracklets":
            ended = {item.tracklet_id for item in out if isinstance(item, TrackletClosed)}
            self.closing_clips |= {
                (item.tracklet_id, float(item.timestamps[-1]))
                for item in out
                if isinstance(item, Clip) and item.tracklet_id in ended
            }
        elif stage == "publish":  # the batch has just been taken by every sink
            now = time.time()
            for item in batch:
                if isinstance(item, IdentityLink):
                    closing = (item.tracklet_id, item.end_time) in self.closing_clips
                    self.link_made(now - item.end_time, closing=closing)

    def frame_done(self, camera: str, detections: int) -> None:
        self.frames.append((self.clock(), camera, detections))

    def link_made(self, latency_s: float, *, closing: bool = False) -> None:
        self.links.append((self.clock(), latency_s, closing))

    def start(
        self,
        depths: Callable[[], dict[str, int]],
        cameras: Callable[[], list[CameraState]],
    ) -> None:
        """Starts sampling `depths()` (queue -> items waiting) and `cameras()`' counters."""
        self._depths, self._cameras = depths, cameras
        self._stop.clear()
        self.sample()
        self._thread = threading.Thread(target=self._sampler, name="profiler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()

    def _sampler(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> Sample:
        cpu = self._process.cpu_times()
        states = self._cameras()
        sample = Sample(
            t=self.clock(),
            depths=self._depths(),
            frames={s.camera_id: s.frames for s in states},
            dropped={s.camera_id: s.dropped for s in states},
            cpu_s=cpu.user + cpu.system,
            rss=self._process.memory_info().rss,
            load=_load(),
            **_gpu(),
        )
        self.samples.append(sample)
        return sample

    # ------------------------------------------------------------------------------ reporting

    def report(self, t0: float, t1: float, *, source_fps: float) -> Report:
        """The figures over [t0, t1] (times of `clock`); `source_fps` is the cameras' rate."""
        window = t1 - t0
        if window <= 0:
            raise ValueError(f"empty window [{t0}, {t1}]")
        first, last = self._sample_at(t0), self._sample_at(t1)
        cameras = sorted(last.frames)
        done = [(t, c, n) for t, c, n in self.frames if t0 <= t < t1]
        fps = {c: sum(1 for _, cam, _ in done if cam == c) / window for c in cameras}
        detections = sum(n for _, _, n in done)
        links = [(lat * 1000, closing) for t, lat, closing in self.links if t0 <= t < t1]
        latencies = [ms for ms, closing in links if not closing]
        cpu = last.cpu_s - first.cpu_s
        inside = [s for s in self.samples if t0 <= s.t <= t1]
        gpu_util = [s.gpu_util for s in inside if s.gpu_util is not None]
        gpu_mem = [s.gpu_mem for s in inside if s.gpu_mem is not None]
        return Report(
            window_s=round(window, 3),
            cameras=len(cameras),
            source_fps=source_fps,
            fps_per_camera=fps,
            frames_in=sum(last.frames.values()) - sum(first.frames.values()),
            frames_dropped=sum(last.dropped.values()) - sum(first.dropped.values()),
            detections=detections,
            links=len(links),
            frame_to_link_ms=_percentiles(latencies),
            closing_link_ms=_percentiles([ms for ms, closing in links if closing]),
            cpu_cores=cpu / window,
            us_per_detection=1e6 * cpu / detections if detections else None,
            us_per_frame=1e6 * cpu / len(done) if done else None,
            rss_mb=max((s.rss for s in inside), default=last.rss) / 2**20,
            gpu_util=float(np.mean(gpu_util)) if gpu_util else None,
            gpu_mem_mb=max(gpu_mem) / 2**20 if gpu_mem else None,
            stages={name: self._stage(name, t0, t1, inside) for name in self.batches},
            queue_series={
                q: [(round(s.t - t0, 3), s.depths[q]) for s in inside] for q in last.depths
            },
            latencies_ms=latencies,
            load_1min=_load_range(self.samples),
        )

    def _sample_at(self, t: float) -> Sample:
        """The last sample at or before `t` (the first one if none)."""
        before = [s for s in self.samples if s.t <= t]
        return before[-1] if before else self.samples[0]

    def _stage(self, name: str, t0: float, t1: float, inside: list[Sample]) -> StageFigures:
        records = [(s, d, n) for s, d, n in self.batches[name] if t0 <= s < t1]
        busy = sum(min(s + d, t1) - s for s, d, _ in records)
        sizes = np.array([n for _, _, n in records], dtype=float)
        depths = [s.depths.get(name, 0) for s in inside]
        quarter = max(len(depths) // 4, 1)
        growth = float(np.mean(depths[-quarter:]) - np.mean(depths[:quarter])) if depths else 0.0
        return StageFigures(
            items_per_s=float(sizes.sum()) / (t1 - t0),
            busy=busy / (t1 - t0),
            batches=len(records),
            batch_mean=float(sizes.mean()) if len(sizes) else 0.0,
            batch_histogram=_histogram(sizes),
            latency_ms=_percentiles([1000 * d for _, d, _ in records]),
            queue_mean=float(np.mean(depths)) if depths else 0.0,
            queue_max=max(depths, default=0),
            queue_growth=growth,
        )


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    if not len(values):
        return {}
    p = np.percentile(np.asarray(values, dtype=float), [50, 95, 99])
    return {"p50": float(p[0]), "p95": float(p[1]), "p99": float(p[2])}


def _histogram(sizes: np.ndarray) -> dict[str, int]:
    """Batches per size bucket "<=edge" (empty buckets left out)."""
    out: dict[str, int] = {}
    lower = 0
    for edge in BATCH_EDGES:
        n = int(((sizes > lower) & (sizes <= edge)).sum())
        if n:
            out[f"<={edge}"] = n
        lower = edge
    if n := int((sizes > BATCH_EDGES[-1]).sum()):
        out[f">{BATCH_EDGES[-1]}"] = n
    return out


def _load() -> float | None:
    """The machine's 1-minute load average (None where the system has none)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


class _Loaded(Protocol):
    """A reading that carries the machine's 1-minute load average (a `Sample`, a scrape)."""

    @property
    def load(self) -> float | None: ...


def _load_range(samples: Sequence[_Loaded]) -> tuple[float, float] | None:
    """The load average of the first and the last sample: at the run's start and its end."""
    if not samples or samples[0].load is None or samples[-1].load is None:
        return None
    return samples[0].load, samples[-1].load


def _gpu() -> dict[str, Any]:
    """GPU utilisation (percent, needs NVML) and torch's allocated memory, where CUDA is in use."""
    import torch

    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return {}
    try:
        util: float | None = float(torch.cuda.utilization())
    except Exception:  # no NVML (pynvml) here: memory only
        util = None
    return {"gpu_util": util, "gpu_mem": int(torch.cuda.memory_allocated())}
