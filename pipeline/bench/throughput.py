"""How many cameras a machine takes: the job (and the naive baseline) on N live cameras.

    measure_job(cfg, plan, n)       the job on n cameras for warmup + duration seconds (a
                                    `label` names a configuration of it in the points)
    measure_baseline(cfg, plan, n)  `pipeline.bench.baseline.NaiveLoop` on the same n cameras
    sweep(cfg, plan)                n = start, 2*start, 4*start, ... until the job stops keeping
                                    up (or max_cameras), then bisection between the last n that
                                    kept up and the first that did not (`search_cameras`)

The cameras are a clip replayed as n live cameras (`plan.clip`: each copy paced at the file's
frame rate, looping, dropping its oldest frame when the pipeline falls behind, as a camera
would), or the synthetic scene with n cameras. Every figure comes from `pipeline.bench.profiling`
over the window after the warm-up; what "keeping up" means is `pipeline.bench.profiling.keeps_up`.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from pipeline.assemble import (
    build_detector,
    build_engine,
    build_job,
    build_sources,
    clip_geometry,
    crop_size,
    resolve_device,
)
from pipeline.bench.baseline import CameraBuffers, NaiveLoop
from pipeline.bench.nulls import NullDetector, NullEngine
from pipeline.bench.profiling import Profiler, Report, keeps_up
from pipeline.monitoring.metrics import PipelineMetrics
from pipeline.settings import ReidstreamConfig
from pipeline.stream.queues import FrameBuffer
from pipeline.stream.settings import CameraConfig

__all__ = ["Plan", "Point", "measure_baseline", "measure_job", "search_cameras", "sweep"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """What to measure and for how long.

    Attributes:
        clip: Video replayed as every camera; None for the synthetic scene.
        duration_s: Measured window per run.
        warmup_s: Run time before the window (model warm-up, queues filling).
        null_detector: People per frame of a `NullDetector` in place of the detector, or None.
        null_reid: A `NullEngine` in place of the ReID model.
        out_dir: Where each run writes its outputs.
        processes: Measure the job as a `reidstream run` process from outside
            (`pipeline.bench.processes`), as run.workers > 1 always is, so that process counts
            compare alike.
    """

    clip: Path | None = None
    duration_s: float = 20.0
    warmup_s: float = 5.0
    null_detector: int | None = None
    null_reid: bool = False
    out_dir: Path = Path("runs/bench-pipeline")
    processes: bool = False


@dataclass
class Point:
    """One run: the system, the number of cameras, its figures and whether it kept up."""

    system: str  # "baseline", or the job's label: "reidstream" or a configuration's name
    cameras: int
    report: Report
    why_not: str  # "" if it kept up
    repeat: int = 1  # which round of a repeated measurement (1, 2, ...)

    @property
    def kept_up(self) -> bool:
        return not self.why_not

    def as_dict(self, *, series: bool = True) -> dict[str, Any]:
        return {
            "system": self.system,
            "cameras": self.cameras,
            "repeat": self.repeat,
            "kept_up": self.kept_up,
            "why_not": self.why_not,
            **self.report.as_dict(series=series),
        }


def with_cameras(cfg: ReidstreamConfig, plan: Plan, n: int, system: str) -> ReidstreamConfig:
    """`cfg` with n live cameras (copies of the clip, or the synthetic scene's), running for the
    plan's time and writing under out_dir/<system>-<n>."""
    run = dataclasses.replace(
        cfg.run,
        max_duration_s=plan.warmup_s + plan.duration_s,
        out_dir=plan.out_dir / f"{system}-{n}",
    )
    cfg = dataclasses.replace(cfg, run=run)
    if plan.clip is None:
        if not 2 <= n <= 16:
            raise ValueError(f"the synthetic scene has 2 to 16 cameras, not {n}")
        scene = dataclasses.replace(
            cfg.synthetic,
            cameras=n,
            replay="native",
            only_cameras=(),
            detections=cfg.synthetic.detections if plan.null_detector is None else "detector",
            duration_s=max(cfg.synthetic.duration_s, plan.warmup_s + plan.duration_s + 5.0),
        )
        return dataclasses.replace(cfg, synthetic=scene, cameras=())
    cameras = tuple(
        CameraConfig(id=f"cam{i + 1}", uri=str(plan.clip), live=True, replay="native", loop=True)
        for i in range(n)
    )
    return dataclasses.replace(cfg, cameras=cameras)


def _parts(cfg: ReidstreamConfig, plan: Plan, *, detector: bool = True) -> tuple[Any, Any]:
    """(engine, detector) for one run: the configured ones or the plan's stand-ins; no
    detector without `detector` (the baseline's Ultralytics `track` brings its own)."""
    device = resolve_device(cfg.device)
    engine = build_engine(cfg, device)
    if plan.null_reid:
        null = NullEngine.like(engine)
        engine.close()
        engine = null
    if plan.null_detector is not None:
        return engine, NullDetector(plan.null_detector)
    return engine, build_detector(cfg, device) if detector else None


def _ultralytics_track_args(cfg: ReidstreamConfig, plan: Plan) -> dict[str, Any] | None:
    """Arguments of Ultralytics' `track` for the baseline when the job would run an Ultralytics
    detector (real cameras, or the scene without its own boxes); else None."""
    uses_detector = bool(cfg.cameras) or cfg.synthetic.detections == "detector"
    if cfg.detector.name != "ultralytics" or plan.null_detector is not None or not uses_detector:
        return None
    options = cfg.detector.options(device=resolve_device(cfg.device))
    return {
        "model": options["weights"],
        "conf": options["confidence"],
        "iou": options["iou"],
        "classes": list(options["classes"]),
        "verbose": False,
    }


def _measure(profiler: Profiler, plan: Plan, run: Any, stop: Any) -> tuple[float, float]:
    """Runs `run()` in a thread; returns the window [t0, t1] of the profiler's clock."""
    errors: list[BaseException] = []

    def main() -> None:
        try:
            run()
        except BaseException as e:  # re-raised in the caller's thread below
            errors.append(e)

    start = profiler.clock()
    thread = threading.Thread(target=main, name="bench-run", daemon=True)
    thread.start()
    t0, t1 = start + plan.warmup_s, start + plan.warmup_s + plan.duration_s
    while thread.is_alive() and profiler.clock() < t1:
        time.sleep(0.05)
    end = min(t1, profiler.clock())
    stop()
    thread.join()
    if errors:
        raise errors[0]
    if end <= t0:
        raise RuntimeError(f"the run ended within its {plan.warmup_s:.0f} s warm-up; see the log")
    return t0, end


def measure_job(cfg: ReidstreamConfig, plan: Plan, n: int, *, label: str = "reidstream") -> Point:
    """The job on n cameras (see the module docstring), its point and outputs named `label`."""
    cfg = with_cameras(cfg, plan, n, label)
    engine, detector = _parts(cfg, plan)
    metrics = PipelineMetrics(CollectorRegistry())
    job = build_job(cfg, metrics=metrics, engine=engine, detector=detector)
    profiler = Profiler()
    profiler.attach(job)
    profiler.start(
        depths=lambda: {s.name: len(s.inbox) for s in job.stages},
        cameras=lambda: [state for source in job.sources for state in source.states],
    )
    t0, t1 = _measure(profiler, plan, job.run, lambda: None)
    profiler.stop()
    report = profiler.report(t0, t1, source_fps=_source_fps(job.sources))
    capacities = {
        s.name: s.inbox.capacity * (n if isinstance(s.inbox, FrameBuffer) else 1)
        for s in job.stages
    }
    return Point(label, n, report, keeps_up(report, capacities))


def measure_baseline(cfg: ReidstreamConfig, plan: Plan, n: int) -> Point:
    """`pipeline.bench.baseline.NaiveLoop` on n cameras, the same input as `measure_job`."""
    cfg = with_cameras(cfg, plan, n, "baseline")
    ultralytics = _ultralytics_track_args(cfg, plan)
    engine, detector = _parts(cfg, plan, detector=ultralytics is None)
    clip_len, stride, _ = clip_geometry(cfg, engine)
    buffers = CameraBuffers(cfg.sources.buffer_frames)
    stop = threading.Event()
    sources = build_sources(cfg, buffers, PipelineMetrics(CollectorRegistry()), stop)  # type: ignore[arg-type]
    profiler = Profiler()
    out_dir = cfg.run.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    loop = NaiveLoop(
        sources=sources,
        buffers=buffers,
        detector=detector,
        ultralytics=ultralytics,
        tracker=(cfg.tracker.name, cfg.tracker.options(device=resolve_device(cfg.device))),
        engine=engine,
        clip_len=clip_len,
        stride=stride,
        crop_size=crop_size(cfg, engine),
        threshold=cfg.matcher.threshold,
        out_path=out_dir / "links.jsonl",
        profiler=profiler,
    )
    threads: list[threading.Thread] = []

    def run() -> None:
        threads.extend(loop.start())
        stop.wait()

    profiler.start(depths=loop.depths, cameras=loop.cameras)
    t0, t1 = _measure(profiler, plan, run, stop.set)
    loop.stop(threads)
    profiler.stop()
    engine.close()
    if detector is not None:
        detector.close()
    report = profiler.report(t0, t1, source_fps=_source_fps(sources))
    capacities = {"frames": cfg.sources.buffer_frames * n}
    why = keeps_up(report, capacities)
    if loop.errors:
        why = "; ".join(filter(None, [why, f"{loop.errors} frames failed"]))
    return Point("baseline", n, report, why)


def _source_fps(sources: list[Any]) -> float:
    rates = [s.nominal_fps for source in sources for s in source.states if s.nominal_fps]
    if not rates:
        raise RuntimeError("no camera delivered a frame; see the log for why")
    return min(rates)


def sweep(
    cfg: ReidstreamConfig,
    plan: Plan,
    *,
    start: int,
    max_cameras: int,
    baseline: bool,
    on_point: Any = None,
) -> list[Point]:
    """The job (and the baseline at the same n) at growing n, then bisection (module docstring).

    Returns:
        Every point measured, in the order run.
    """
    points: list[Point] = []

    def run(n: int) -> bool:
        measured = [measure_job(cfg, plan, n)]
        if baseline:
            measured.append(measure_baseline(cfg, plan, n))
        for point in measured:
            points.append(point)
            if on_point is not None:
                on_point(point)
        return measured[0].kept_up

    search_cameras(start, max_cameras, run)
    return points


def search_cameras(start: int, max_cameras: int, run: Callable[[int], bool]) -> int | None:
    """Calls `run(n)` (True: n cameras were kept up with) at n = start, 2*start, ... up to
    `max_cameras` until it returns False, then bisects between the last n kept up with and the
    first that was not. Returns the most cameras kept up with (None: not even `start`)."""
    good, bad, n = 0, None, start
    while n <= max_cameras:
        if not run(n):
            bad = n
            break
        good = n
        n = min(2 * n, max_cameras) if n < max_cameras else max_cameras + 1
    while bad is not None and bad - good > 1 and (mid := (good + bad) // 2) >= start:
        if run(mid):
            good = mid
        else:
            bad = mid
    return good or None


def largest_kept_up(points: list[Point], system: str) -> int | None:
    """The most cameras `system` kept up with among the points measured."""
    return max((p.cameras for p in points if p.system == system and p.kept_up), default=None)
