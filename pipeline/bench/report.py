"""`reidstream bench pipeline`: per-stage and end-to-end figures of the job on N live cameras.

    reidstream bench pipeline [--config FILE] [--clip VIDEO] [--cameras N] [--sweep]
        [--max-cameras M] [--duration S] [--warmup S] [--null-detector [--people K]]
        [--null-reid] [--no-baseline] [--out DIR] [KEY=VALUE ...]

Runs the job (and, unless --no-baseline, the naive loop of `pipeline.baseline` on the same
cameras) and writes to --out: report.json (every figure, the queue depths over time and every
latency), report.md (the tables below, also printed), throughput_vs_cameras.png, latency_cdf.png,
stage_breakdown.png and queue_depth.png. What is measured and how: `pipeline.throughput` and
`pipeline.profiling`.

The configuration is the job's (`reidstream run`), with these defaults applied first: links go to
JSONL under --out (give output.sinks=[kafka] to include a broker), no metrics server, no
recording.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from pipeline.bench.throughput import (
    Plan,
    Point,
    largest_kept_up,
    measure_baseline,
    measure_job,
    sweep,
)
from pipeline.cli.common import add_config_arguments, setup_logging
from pipeline.config import ConfigError, dump_config, load_config
from pipeline.settings import ReidstreamConfig

__all__ = ["add_parser", "markdown", "write_plots"]

#: Applied before --config and the command line (see the module docstring).
BENCH_DEFAULTS = ["output.sinks=[jsonl]", "metrics.address=", "run.record=false"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pipeline",
        help="the job on N live cameras: per-stage load, frames/s, frame-to-link latency, "
        "the most cameras kept up with, against a naive baseline",
        description="Replay a clip as N live cameras (or run the synthetic scene with N cameras) "
        "through the job and report, per stage, items/s, busy fraction, batch sizes, latency "
        "and queue depth, and end to end, frames/s per camera, drops, frame-to-link latency, "
        "CPU, RSS and GPU use; with --sweep, the most cameras it keeps up with. The naive "
        "baseline (one loop per camera, one ReID call per clip) runs on the same cameras.",
    )
    add_config_arguments(parser)
    parser.add_argument(
        "--clip", type=Path, help="video replayed as every camera (default: the synthetic scene)"
    )
    parser.add_argument(
        "--cameras",
        type=int,
        help="cameras (the sweep's first point); default 1 for a clip, 2 for the synthetic scene",
    )
    parser.add_argument("--sweep", action="store_true", help="find the most cameras kept up with")
    parser.add_argument("--max-cameras", type=int, help="sweep bound (default 64; 16 synthetic)")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument(
        "--null-detector",
        action="store_true",
        help="boxes without a detector (pipeline.nulls.NullDetector)",
    )
    parser.add_argument("--people", type=int, default=8, help="boxes per frame of --null-detector")
    parser.add_argument(
        "--null-reid",
        action="store_true",
        help="embeddings without a model (pipeline.nulls.NullEngine)",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the naive baseline")
    parser.add_argument(
        "--out", type=Path, default=Path("runs/bench-pipeline"), help="output folder"
    )
    parser.add_argument("--log-level", default="WARNING", help="logging level")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    cfg = load_config(
        ReidstreamConfig, path=args.config, overrides=[*BENCH_DEFAULTS, *args.overrides]
    )
    if args.clip is not None and not args.clip.is_file():
        raise ConfigError(f"--clip {str(args.clip)!r}: no such file")
    synthetic = args.clip is None
    start = args.cameras or (2 if synthetic else 1)
    max_cameras = args.max_cameras or (16 if synthetic else 64)
    if synthetic and not 2 <= start <= max_cameras <= 16:
        raise ConfigError(
            "the synthetic scene has 2 to 16 cameras: use --cameras/--max-cameras "
            "in that range, or --clip"
        )
    plan = Plan(
        clip=args.clip,
        duration_s=args.duration,
        warmup_s=args.warmup,
        null_detector=args.people if args.null_detector else None,
        null_reid=args.null_reid,
        out_dir=args.out,
    )
    args.out.mkdir(parents=True, exist_ok=True)

    def progress(point: Point) -> None:
        r = point.report
        state = "kept up" if point.kept_up else f"fell behind ({point.why_not})"
        print(
            f"  {point.system} x{point.cameras}: {r.total_fps:.1f} frames/s, "
            f"p99 {r.frame_to_link_ms.get('p99', float('nan')):.0f} ms, {state}",
            file=sys.stderr,
            flush=True,
        )

    if args.sweep:
        points = sweep(
            cfg,
            plan,
            start=start,
            max_cameras=max_cameras,
            baseline=not args.no_baseline,
            on_point=progress,
        )
    else:
        points = [measure_job(cfg, plan, start)]
        progress(points[0])
        if not args.no_baseline:
            points.append(measure_baseline(cfg, plan, start))
            progress(points[1])
    document = {
        "command": shlex.join(["reidstream", *args.argv]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "plan": {k: str(v) if isinstance(v, Path) else v for k, v in vars(plan).items()},
        "largest_kept_up": {
            system: largest_kept_up(points, system) for system in ("reidstream", "baseline")
        },
        "points": [p.as_dict() for p in points],
        "config": dump_config(cfg),
    }
    (args.out / "report.json").write_text(json.dumps(document, indent=1, default=str) + "\n")
    text = markdown(document, points)
    (args.out / "report.md").write_text(text)
    write_plots(points, args.out)
    print(text)
    print(f"report, plots: {args.out}/")
    return 0


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


def markdown(document: dict[str, Any], points: list[Point]) -> str:
    """The report's tables: runs, ratios against the baseline, stages of the largest run."""
    m = document["machine"]
    lines = [
        f"`{document['command']}`  ",
        f"{document['date']}, {m['cpu']} ({m['cores']} cores, {m['memory_gb']} GB)"
        + (f", {m['gpu']}" if m["gpu"] else ", no GPU"),
        "",
        "| system | cameras | kept up | frames/s per camera (slowest / source) | dropped | "
        "frame→link p50 / p99 ms | last-clip links p50 ms | CPU cores | µs CPU per detection | "
        "RSS MB | GPU util / MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in points:
        r = p.report
        gpu = f"{_f(r.gpu_util, 0)}% / {_f(r.gpu_mem_mb, 0)}" if r.gpu_mem_mb else "-"
        lines.append(
            f"| {p.system} | {p.cameras} | {'yes' if p.kept_up else 'no: ' + p.why_not} | "
            f"{_f(r.min_fps)} / {_f(r.source_fps)} | {100 * r.drop_fraction:.1f}% | "
            f"{_f(r.frame_to_link_ms.get('p50'), 0)} / {_f(r.frame_to_link_ms.get('p99'), 0)} | "
            f"{_f(r.closing_link_ms.get('p50'), 0)} | "
            f"{_f(r.cpu_cores, 2)} | {_f(r.us_per_detection, 0)} | {_f(r.rss_mb, 0)} | {gpu} |"
        )
    most = document["largest_kept_up"]
    lines += [
        "",
        f"Most cameras kept up with: reidstream {most['reidstream']}, "
        f"baseline {most['baseline']} (among the points measured).",
    ]
    pairs = _pairs(points)
    if pairs:
        lines += [
            "",
            "reidstream / baseline, same cameras, same run:",
            "",
            "| cameras | frames/s processed | ratio | frame→link p50 ratio | p99 ratio |",
            "|---|---|---|---|---|",
        ]
        for n, ours, theirs in pairs:
            a, b = ours.report, theirs.report
            lines.append(
                f"| {n} | {a.total_fps:.1f} vs {b.total_fps:.1f} | "
                f"{_ratio(a.total_fps, b.total_fps)} | "
                f"{_ratio(a.frame_to_link_ms.get('p50'), b.frame_to_link_ms.get('p50'))} | "
                f"{_ratio(a.frame_to_link_ms.get('p99'), b.frame_to_link_ms.get('p99'))} |"
            )
    ours = [p for p in points if p.system == "reidstream"]
    if ours:
        top = max(ours, key=lambda p: p.cameras)
        lines += [
            "",
            f"Stages of reidstream at {top.cameras} cameras:",
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
    return "\n".join(lines) + "\n"


def _pairs(points: list[Point]) -> list[tuple[int, Point, Point]]:
    by = {(p.system, p.cameras): p for p in points}
    return [
        (n, by[("reidstream", n)], by[("baseline", n)])
        for n in sorted({p.cameras for p in points})
        if ("reidstream", n) in by and ("baseline", n) in by
    ]


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if not a or not b else f"{a / b:.2f}"


# ------------------------------------------------------------------------------------- plots


def write_plots(points: list[Point], out: Path) -> list[Path]:
    """throughput_vs_cameras, latency_cdf, stage_breakdown and queue_depth PNGs in `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    systems = {
        s: sorted((p for p in points if p.system == s), key=lambda p: p.cameras)
        for s in ("reidstream", "baseline")
    }

    fig, ax = plt.subplots(figsize=(6, 4))
    for system, runs in systems.items():
        if runs:
            ax.plot(
                [p.cameras for p in runs], [p.report.total_fps for p in runs], "o-", label=system
            )
    if points:
        n = sorted({p.cameras for p in points})
        ax.plot(n, [c * points[0].report.source_fps for c in n], "k:", label="every frame")
    ax.set(
        xlabel="cameras",
        ylabel="frames/s processed (all cameras)",
        title="Throughput against cameras",
    )
    ax.legend()
    paths.append(_save(fig, out / "throughput_vs_cameras.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    colour = {n: f"C{i}" for i, n in enumerate(sorted({p.cameras for p in points}))}
    for system, style in (("reidstream", "-"), ("baseline", "--")):
        for p in systems[system]:
            values = np.sort(p.report.latencies_ms)
            if len(values):
                ax.plot(
                    values,
                    np.arange(1, len(values) + 1) / len(values),
                    style,
                    color=colour[p.cameras],
                    label=f"{system} x{p.cameras}",
                )
    ax.set(
        xscale="log",
        xlabel="frame-to-link latency (ms)",
        ylabel="fraction of links",
        title="Frame-to-link latency CDF (clips cut in view)",
    )
    ax.legend(fontsize="small")
    paths.append(_save(fig, out / "latency_cdf.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    runs = systems["reidstream"]
    stages = list(dict.fromkeys(s for p in runs for s in p.report.stages))
    bottom = np.zeros(len(runs))
    for stage in stages:
        busy = np.array(
            [p.report.stages[stage].busy if stage in p.report.stages else 0.0 for p in runs]
        )
        ax.bar([str(p.cameras) for p in runs], busy, bottom=bottom, label=stage)
        bottom += busy
    ax.set(
        xlabel="cameras",
        ylabel="busy fraction of each stage's thread (stacked)",
        title="Where the time goes (reidstream)",
    )
    ax.legend(fontsize="small")
    paths.append(_save(fig, out / "stage_breakdown.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    if runs:
        top = runs[-1]
        for queue, series in top.report.queue_series.items():
            if series:
                t, depth = zip(*series, strict=True)
                ax.plot(t, depth, label=queue)
        ax.set(title=f"Queue depth over time (reidstream, {top.cameras} cameras)")
    ax.set(xlabel="seconds into the measured window", ylabel="items waiting")
    ax.legend(fontsize="small")
    paths.append(_save(fig, out / "queue_depth.png"))
    return paths


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
