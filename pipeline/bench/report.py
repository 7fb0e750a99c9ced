"""`reidstream bench pipeline`: per-stage and end-to-end figures of the job on N live cameras.

    reidstream bench pipeline [--config FILE] [--clip VIDEO] [--cameras N] [--sweep]
        [--max-cameras M] [--duration S] [--warmup S] [--null-detector [--people K]]
        [--null-reid] [--no-baseline] [--variant LABEL:KEY=VALUE[,KEY=VALUE...] ...]
        [--repeat R] [--out DIR] [KEY=VALUE ...]

Runs the job (and, unless --no-baseline, the naive loop of `pipeline.bench.baseline` on the same
cameras) and writes to --out: report.json (every run's figures, the queue depths over time and
every latency), report.md (the tables below, also printed) and the plots of
`pipeline.bench.plots`. Each --variant is the job with its overrides on top of the command's
configuration, under its label; the set (baseline, then each variant) runs --repeat times,
interleaved (`pipeline.bench.variants`), and the summary gives per camera count the median and
range over the rounds and the ratios of the medians to the baseline (or, without it, to the first
variant). What is measured and how: `pipeline.bench.throughput` and `pipeline.bench.profiling`.

The configuration is the job's (`reidstream run`), with these defaults applied first: links go to
JSONL under --out (give output.sinks=[kafka] to include a broker), no metrics server, no
recording.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from pipeline.bench.plots import write_plots
from pipeline.bench.throughput import Plan, Point, largest_kept_up
from pipeline.bench.variants import BASELINE, Spread, Summary, measure, resolve_variants, summarize
from pipeline.config import ConfigError, dump_config, load_config
from pipeline.settings import ReidstreamConfig

__all__ = ["BENCH_DEFAULTS", "load_range", "machine", "markdown", "run", "write_plots"]

#: Applied before --config and the command line (see the module docstring).
BENCH_DEFAULTS = ["output.sinks=[jsonl]", "metrics.address=", "run.record=false"]


def run(
    *,
    config: Path | None = None,
    overrides: Sequence[str] = (),
    variants: Sequence[tuple[str, Sequence[str]]] = (),
    repeat: int = 1,
    clip: Path | None = None,
    cameras: int | None = None,
    sweep_cameras: bool = False,
    max_cameras: int | None = None,
    duration: float = 20.0,
    warmup: float = 5.0,
    null_detector: int | None = None,
    null_reid: bool = False,
    processes: bool = False,
    baseline: bool = True,
    out: Path = Path("runs/bench-pipeline"),
    command: str = "reidstream bench pipeline",
) -> list[Point]:
    """Measures the job (and the baseline) and writes the report, the tables and the plots to
    `out`; prints the tables. Returns the points measured.

    Args:
        config, overrides: The job's configuration file and KEY=VALUE overrides, applied after
            `BENCH_DEFAULTS`.
        variants: (label, KEY=VALUE overrides) of each configuration of the job to measure,
            applied after `overrides`; none: the job as configured, labelled "reidstream".
        repeat: Rounds of the whole set (baseline, then each variant), interleaved.
        clip: Video replayed as every camera (None: the synthetic scene).
        cameras: Cameras (the sweep's first point); default 1 for a clip, 2 for the scene.
        sweep_cameras: Find the most cameras kept up with, up to `max_cameras` (default 64; 16
            for the scene); the sweep goes on while any variant keeps up.
        null_detector: Boxes per frame of `pipeline.bench.nulls.NullDetector` (None: the
            configured detector).
        null_reid: Embeddings from `pipeline.bench.nulls.NullEngine` instead of a model.
        processes: Measure every variant as a `reidstream run` process from outside
            (`pipeline.bench.processes`); variants with run.workers > 1 always are.
        command: The command line, for the report.

    Raises:
        ConfigError: Before anything runs: a bad configuration or variant, a clip that is not
            a file, camera counts the synthetic scene lacks, or fewer than one round.
    """
    base, configs = _configs(config, overrides, variants, repeat)
    start, most = _camera_range(clip, cameras, max_cameras)
    plan = Plan(
        clip=clip, duration_s=duration, warmup_s=warmup, null_detector=null_detector,
        null_reid=null_reid, out_dir=out, processes=processes,
    )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    sweep_to = most if sweep_cameras else None
    points = measure(
        base, configs, plan, cameras=start, most=sweep_to, baseline=baseline, repeat=repeat,
        on_point=_progress,
    )  # fmt: skip
    document = _document(command, base, plan, points)
    document.update(variants={label: list(extra) for label, extra in variants}, repeat=repeat)
    _write_report(document, points, out)
    return points


def _configs(
    config: Path | None,
    overrides: Sequence[str],
    variants: Sequence[tuple[str, Sequence[str]]],
    repeat: int,
) -> tuple[ReidstreamConfig, dict[str, ReidstreamConfig]]:
    """(the command's configuration, label -> each variant's); ConfigError for any that does not
    resolve, or fewer than one round."""

    def load(extra: Sequence[str]) -> ReidstreamConfig:
        every = [*BENCH_DEFAULTS, *overrides, *extra]
        return load_config(ReidstreamConfig, path=config, overrides=every)

    base = load(())
    configs = resolve_variants(variants, load)
    if repeat < 1:
        raise ConfigError(f"--repeat {repeat}: give 1 or more rounds")
    return base, configs


def _document(
    command: str, cfg: ReidstreamConfig, plan: Plan, points: list[Point]
) -> dict[str, Any]:
    """report.json: what ran, where, on how loaded a machine, and every figure (the caller adds
    the variants' overrides and the rounds)."""
    systems = list(dict.fromkeys(p.system for p in points))
    return {
        "command": command,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_1min": load_range(points),
        "plan": {k: str(v) if isinstance(v, Path) else v for k, v in vars(plan).items()},
        "largest_kept_up": {s: largest_kept_up(points, s) for s in systems},
        "summary": [dataclasses.asdict(s) for s in summarize(points)],
        "points": [p.as_dict() for p in points],
        "config": dump_config(cfg),
    }


def load_range(points: Sequence[Point]) -> list[float] | None:
    """[lowest, highest] 1-minute load average seen at the start or end of any run (None: the
    system reports none)."""
    seen = [v for p in points if p.report.load_1min for v in p.report.load_1min]
    return [min(seen), max(seen)] if seen else None


def _camera_range(
    clip: Path | None, cameras: int | None, max_cameras: int | None
) -> tuple[int, int]:
    """(first, most) cameras; raises ConfigError for what the input cannot give."""
    if clip is not None and not clip.is_file():
        raise ConfigError(f"--clip {str(clip)!r}: no such file")
    synthetic = clip is None
    start = cameras or (2 if synthetic else 1)
    most = max_cameras or (16 if synthetic else 64)
    if synthetic and not 2 <= start <= most <= 16:
        raise ConfigError(
            "the synthetic scene has 2 to 16 cameras: use --cameras/--max-cameras "
            "in that range, or --clip"
        )
    return start, most


def _progress(point: Point) -> None:
    r = point.report
    state = "kept up" if point.kept_up else f"fell behind ({point.why_not})"
    print(
        f"  {point.system} x{point.cameras} (round {point.repeat}): {r.total_fps:.1f} frames/s, "
        f"p99 {r.frame_to_link_ms.get('p99', float('nan')):.0f} ms, {state}",
        file=sys.stderr,
        flush=True,
    )


def _write_report(document: dict[str, Any], points: list[Point], out: Path) -> None:
    """report.json, report.md and the plots in `out`; prints the tables."""
    (out / "report.json").write_text(json.dumps(document, indent=1, default=str) + "\n")
    text = markdown(document, points)
    (out / "report.md").write_text(text)
    write_plots(points, out)
    print(text)
    print(f"report, plots: {out}/")


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import torch

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
    }


# ------------------------------------------------------------------------------------ tables


def _f(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _spread(value: Spread | None, digits: int = 1) -> str:
    """The text "median [low-high]", or the median alone where the rounds agree as printed."""
    if value is None:
        return "-"
    median, low, high = (_f(v, digits) for v in (value.median, value.low, value.high))
    return median if low == high else f"{median} [{low}-{high}]"


def _range(values: Sequence[float] | None) -> str:
    return "-" if not values else f"{min(values):.2f}-{max(values):.2f}"


def _load(load: Sequence[float] | None) -> str:
    return "-" if not load else " → ".join(f"{v:.2f}" for v in load)


def markdown(document: dict[str, Any], points: list[Point]) -> str:
    """The report: the machine and its load, a summary per camera count (median and range over
    the rounds, ratios to the reference), every run, the stages of each job's largest run."""
    m = document["machine"]
    most = ", ".join(f"{s} {n}" for s, n in document["largest_kept_up"].items())
    lines = [
        f"`{document['command']}`  ",
        f"{document['date']}, {m['cpu']} ({m['cores']} cores, {m['memory_gb']} GB)"
        + (f", {m['gpu']}" if m["gpu"] else ", no GPU")
        + f"; 1-minute load average over the runs {_range(document['load_1min'])}"
        + f" on {m['cores']} cores",
        *_summary_tables(summarize(points)),
        "",
        "Every run:",
        "",
        *_runs_table(points),
        "",
        f"Most cameras kept up with: {most} (among the points measured).",
        *_stages_tables(points),
    ]
    return "\n".join(lines) + "\n"


def _summary_tables(summaries: list[Summary]) -> list[str]:
    """Per camera count: each system's median [min-max] over its rounds and the ratios of its
    medians to the reference's."""
    lines: list[str] = []
    for n in dict.fromkeys(s.cameras for s in summaries):
        rows = [s for s in summaries if s.cameras == n]
        ref = rows[0].reference
        lines += [
            "",
            f"{n} cameras, median [min-max] over the rounds; ratios of medians to {ref}:",
            "",
            "| system | kept up | frames/s (all cameras) | frames/s ratio | "
            "frame→link p50 ms | p50 ratio | p99 ms | CPU cores | links |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for s in rows:
            lines.append(
                f"| {s.system} | {s.kept_up}/{s.rounds} | {_spread(s.fps)} | "
                f"{_f(s.fps_ratio, 2)} | {_spread(s.p50, 0)} | {_f(s.p50_ratio, 2)} | "
                f"{_spread(s.p99, 0)} | {_spread(s.cpu_cores, 2)} | {_spread(s.links, 0)} |"
            )
    return lines


def _runs_table(points: list[Point]) -> list[str]:
    lines = [
        "| system | cameras | round | kept up | frames/s per camera (slowest / source) | "
        "dropped | frame→link p50 / p99 ms | last-clip links p50 ms | CPU cores | "
        "µs CPU per detection | RSS MB | GPU util / MB | load 1 min (start → end) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in points:
        r = p.report
        gpu = f"{_f(r.gpu_util, 0)}% / {_f(r.gpu_mem_mb, 0)}" if r.gpu_mem_mb else "-"
        lines.append(
            f"| {p.system} | {p.cameras} | {p.repeat} | "
            f"{'yes' if p.kept_up else 'no: ' + p.why_not} | "
            f"{_f(r.min_fps)} / {_f(r.source_fps)} | {100 * r.drop_fraction:.1f}% | "
            f"{_f(r.frame_to_link_ms.get('p50'), 0)} / {_f(r.frame_to_link_ms.get('p99'), 0)} | "
            f"{_f(r.closing_link_ms.get('p50'), 0)} | "
            f"{_f(r.cpu_cores, 2)} | {_f(r.us_per_detection, 0)} | {_f(r.rss_mb, 0)} | {gpu} | "
            f"{_load(r.load_1min)} |"
        )
    return lines


def _stages_tables(points: list[Point]) -> list[str]:
    """The stages of each job's run with the most cameras, its last round (no job, or one
    measured from outside its processes: no lines)."""
    lines: list[str] = []
    for system in dict.fromkeys(p.system for p in points if p.system != BASELINE):
        top = max((p for p in points if p.system == system), key=lambda p: (p.cameras, p.repeat))
        if not top.report.stages:  # measured from outside its processes: no stages seen
            continue
        lines += [
            "",
            f"Stages of {system} at {top.cameras} cameras (round {top.repeat}):",
            "",
            "| stage | items/s | busy | batches | mean batch | latency p50 / p95 / p99 ms | "
            "queue mean / max | queue growth |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, s in top.report.stages.items():
            lat = s.latency_ms
            lines.append(
                f"| {name} | {s.items_per_s:.1f} | {100 * s.busy:.0f}% | {s.batches} | "
                f"{s.batch_mean:.1f} | {_f(lat.get('p50'))} / {_f(lat.get('p95'))} / "
                f"{_f(lat.get('p99'))} | {s.queue_mean:.1f} / {s.queue_max} | "
                f"{s.queue_growth:+.1f} |"
            )
    return lines
