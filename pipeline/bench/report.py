"""`reidstream bench pipeline`: per-stage and end-to-end figures of the job on N live cameras.

    reidstream bench pipeline [--config FILE] [--clip VIDEO] [--cameras N] [--sweep]
        [--max-cameras M] [--duration S] [--warmup S] [--null-detector [--people K]]
        [--null-reid] [--no-baseline] [--out DIR] [KEY=VALUE ...]

Runs the job (and, unless --no-baseline, the naive loop of `pipeline.bench.baseline` on the same
cameras) and writes to --out: report.json (every figure, the queue depths over time and every
latency), report.md (the tables below, also printed), throughput_vs_cameras.png, latency_cdf.png,
stage_breakdown.png and queue_depth.png. What is measured and how: `pipeline.bench.throughput`
and `pipeline.bench.profiling`.

The configuration is the job's (`reidstream run`), with these defaults applied first: links go to
JSONL under --out (give output.sinks=[kafka] to include a broker), no metrics server, no
recording.
"""

from __future__ import annotations

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

from pipeline.bench.throughput import (
    Plan,
    Point,
    largest_kept_up,
    measure_baseline,
    measure_job,
    sweep,
)
from pipeline.config import ConfigError, dump_config, load_config
from pipeline.settings import ReidstreamConfig

__all__ = ["BENCH_DEFAULTS", "machine", "markdown", "run", "write_plots"]

#: Applied before --config and the command line (see the module docstring).
BENCH_DEFAULTS = ["output.sinks=[jsonl]", "metrics.address=", "run.record=false"]


def run(
    *,
    config: Path | None = None,
    overrides: Sequence[str] = (),
    clip: Path | None = None,
    cameras: int | None = None,
    sweep_cameras: bool = False,
    max_cameras: int | None = None,
    duration: float = 20.0,
    warmup: float = 5.0,
    null_detector: int | None = None,
    null_reid: bool = False,
    baseline: bool = True,
    out: Path = Path("runs/bench-pipeline"),
    command: str = "reidstream bench pipeline",
) -> list[Point]:
    """Measures the job (and the baseline) and writes the report, the tables and the plots to
    `out`; prints the tables. Returns the points measured.

    Args:
        config, overrides: The job's configuration file and KEY=VALUE overrides, applied after
            `BENCH_DEFAULTS`.
        clip: Video replayed as every camera (None: the synthetic scene).
        cameras: Cameras (the sweep's first point); default 1 for a clip, 2 for the scene.
        sweep_cameras: Find the most cameras kept up with, up to `max_cameras` (default 64; 16
            for the scene).
        null_detector: Boxes per frame of `pipeline.bench.nulls.NullDetector` (None: the
            configured detector).
        null_reid: Embeddings from `pipeline.bench.nulls.NullEngine` instead of a model.
        command: The command line, for the report.

    Raises:
        ConfigError: A bad configuration, a clip that is not a file, or camera counts the
            synthetic scene does not have.
    """
    cfg = load_config(ReidstreamConfig, path=config, overrides=[*BENCH_DEFAULTS, *overrides])
    start, most = _camera_range(clip, cameras, max_cameras)
    plan = Plan(
        clip=clip,
        duration_s=duration,
        warmup_s=warmup,
        null_detector=null_detector,
        null_reid=null_reid,
        out_dir=out,
    )
    out.mkdir(parents=True, exist_ok=True)
    if sweep_cameras:
        points = sweep(
            cfg, plan, start=start, max_cameras=most, baseline=baseline, on_point=_progress
        )
    else:
        points = _measure_once(cfg, plan, start, baseline=baseline)
    _write_report(_document(command, cfg, plan, points), points, out)
    return points


def _measure_once(
    cfg: ReidstreamConfig, plan: Plan, cameras: int, *, baseline: bool
) -> list[Point]:
    """The job (and the baseline) on `cameras` cameras, each reported as it ends."""
    points = [measure_job(cfg, plan, cameras)]
    _progress(points[-1])
    if baseline:
        points.append(measure_baseline(cfg, plan, cameras))
        _progress(points[-1])
    return points


def _document(
    command: str, cfg: ReidstreamConfig, plan: Plan, points: list[Point]
) -> dict[str, Any]:
    """report.json: what ran, where, and every figure."""
    return {
        "command": command,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "plan": {k: str(v) if isinstance(v, Path) else v for k, v in vars(plan).items()},
        "largest_kept_up": {s: largest_kept_up(points, s) for s in ("reidstream", "baseline")},
        "points": [p.as_dict() for p in points],
        "config": dump_config(cfg),
    }


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
        f"  {point.system} x{point.cameras}: {r.total_fps:.1f} frames/s, "
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


def markdown(document: dict[str, Any], points: list[Point]) -> str:
    """The report's tables: runs, ratios against the baseline, stages of the largest run."""
    m = document["machine"]
    most = document["largest_kept_up"]
    lines = [
        f"`{document['command']}`  ",
        f"{document['date']}, {m['cpu']} ({m['cores']} cores, {m['memory_gb']} GB)"
        + (f", {m['gpu']}" if m["gpu"] else ", no GPU"),
        "",
        *_runs_table(points),
        "",
        f"Most cameras kept up with: reidstream {most['reidstream']}, "
        f"baseline {most['baseline']} (among the points measured).",
        *_ratios_table(points),
        *_stages_table(points),
    ]
    return "\n".join(lines) + "\n"


def _runs_table(points: list[Point]) -> list[str]:
    lines = [
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
    return lines


def _ratios_table(points: list[Point]) -> list[str]:
    """reidstream over the baseline at each camera count both ran (none: no lines)."""
    pairs = _pairs(points)
    if not pairs:
        return []
    lines = [
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
    return lines


def _stages_table(points: list[Point]) -> list[str]:
    """The stages of reidstream's run with the most cameras (none: no lines)."""
    ours = [p for p in points if p.system == "reidstream"]
    if not ours:
        return []
    top = max(ours, key=lambda p: p.cameras)
    lines = [
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
    return lines


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

    systems = {
        s: sorted((p for p in points if p.system == s), key=lambda p: p.cameras)
        for s in ("reidstream", "baseline")
    }
    return [
        _plot_throughput(points, systems, out / "throughput_vs_cameras.png"),
        _plot_latency_cdf(points, systems, out / "latency_cdf.png"),
        _plot_stage_breakdown(systems["reidstream"], out / "stage_breakdown.png"),
        _plot_queue_depth(systems["reidstream"], out / "queue_depth.png"),
    ]


def _plot_throughput(points: list[Point], systems: dict[str, list[Point]], path: Path) -> Path:
    import matplotlib.pyplot as plt

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
    return _save(fig, path)


def _plot_latency_cdf(points: list[Point], systems: dict[str, list[Point]], path: Path) -> Path:
    import matplotlib.pyplot as plt

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
    return _save(fig, path)


def _plot_stage_breakdown(runs: list[Point], path: Path) -> Path:
    """Stacked busy fractions of reidstream's stages per camera count (`runs`)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
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
    return _save(fig, path)


def _plot_queue_depth(runs: list[Point], path: Path) -> Path:
    """Queue depths over time in reidstream's run with the most cameras (the last of `runs`)."""
    import matplotlib.pyplot as plt

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
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
