"""The PNG plots of `reidstream bench pipeline` (matplotlib, drawn off-screen).

    throughput_vs_cameras.png   frames/s processed (all cameras) per system: at one camera count
                                bars, at several a line per system; median over the rounds with
                                the range as error bars, and the rate of every frame
    latency_vs_cameras.png      frame-to-link p50 and p99 the same way
    latency_cdf.png             the frame-to-link latencies of every round, per system and count
    stage_breakdown.png         busy share of each stage of each job (mean over the rounds)
    queue_depth.png             queue depths over time in each job's run with the most cameras

One camera count draws bars because a line through one point is an invisible dot. A job measured
from outside its processes (`--processes`, `run.workers` > 1) has no stages or queues to show:
the two last plots say so in its place.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.bench.throughput import Point
from pipeline.bench.variants import BASELINE, Spread, Summary, summarize

__all__ = ["write_plots"]

#: In place of the stages and queues of a job measured from outside its processes.
OUTSIDE = "measured from outside\nits processes: no\nstages or queues seen"


def write_plots(points: list[Point], out: Path) -> list[Path]:
    """Writes the plots of the module docstring into `out`; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")

    summaries = summarize(points)
    jobs = [s for s in dict.fromkeys(p.system for p in points) if s != BASELINE]
    if len({p.cameras for p in points}) == 1:
        throughput, latency = _bars_throughput, _bars_latency
    else:
        throughput, latency = _lines_throughput, _lines_latency
    return [
        throughput(summaries, points, out / "throughput_vs_cameras.png"),
        latency(summaries, out / "latency_vs_cameras.png"),
        _latency_cdf(points, out / "latency_cdf.png"),
        _stage_breakdown(points, jobs, out / "stage_breakdown.png"),
        _queue_depth(points, jobs, out / "queue_depth.png"),
    ]


def _error(spreads: list[Spread | None]) -> tuple[np.ndarray, np.ndarray]:
    """(medians, [below, above]) for `errorbar`/`bar`: the range around each median."""
    median = np.array([s.median if s else np.nan for s in spreads])
    low = np.array([s.low if s else np.nan for s in spreads])
    high = np.array([s.high if s else np.nan for s in spreads])
    return median, np.vstack([median - low, high - median])


def _rounds(summaries: list[Summary]) -> str:
    most = max((s.rounds for s in summaries), default=1)
    return "one run" if most == 1 else f"median and range over {most} rounds"


def _systems_axis(ax: Any, summaries: list[Summary], missing: list[bool]) -> None:
    """One tick per system, every one kept in view; "no links" over those without figures."""
    ax.set_xticks(np.arange(len(summaries)), [s.system for s in summaries])
    ax.set_xlim(-0.6, len(summaries) - 0.4)
    for x, gone in enumerate(missing):
        if gone:
            ax.text(x, 0, "no links", ha="center", va="bottom", color="grey")


def _bars_throughput(summaries: list[Summary], points: list[Point], path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 * len(summaries) + 2), 4))
    x = np.arange(len(summaries))
    median, error = _error([s.fps for s in summaries])
    bars = ax.bar(x, median, yerr=error, capsize=6, color=[f"C{i}" for i in x])
    ax.bar_label(bars, fmt="%.1f", label_type="center")
    n = summaries[0].cameras
    ax.axhline(n * points[0].report.source_fps, color="k", linestyle=":", label="every frame")
    _systems_axis(ax, summaries, [False] * len(summaries))
    ax.set(
        ylabel="frames/s processed (all cameras)",
        title=f"Throughput at {n} cameras\n({_rounds(summaries)})",
    )
    ax.legend(loc="best")
    return _save(fig, path)


def _bars_latency(summaries: list[Summary], path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(summaries) + 2), 4))
    x = np.arange(len(summaries))
    for offset, name in ((-0.2, "p50"), (0.2, "p99")):
        median, error = _error([getattr(s, name) for s in summaries])
        bars = ax.bar(x + offset, median, 0.4, yerr=error, capsize=5, label=name)
        ax.bar_label(bars, labels=[_f0(v) for v in median], label_type="center")
    _systems_axis(ax, summaries, [s.p50 is None for s in summaries])
    ax.set(
        ylabel="frame-to-link latency (ms)",
        title=f"Latency at {summaries[0].cameras} cameras\n({_rounds(summaries)})",
    )
    ax.legend()
    return _save(fig, path)


def _f0(value: float) -> str:
    return "" if np.isnan(value) else f"{value:.0f}"


def _by_system(summaries: list[Summary]) -> dict[str, list[Summary]]:
    out: dict[str, list[Summary]] = {}
    for s in summaries:
        out.setdefault(s.system, []).append(s)
    return out


def _lines_throughput(summaries: list[Summary], points: list[Point], path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for system, rows in _by_system(summaries).items():
        median, error = _error([s.fps for s in rows])
        cameras = [s.cameras for s in rows]
        ax.errorbar(cameras, median, yerr=error, fmt="o-", capsize=4, label=system)
    n = sorted({p.cameras for p in points})
    ax.plot(n, [c * points[0].report.source_fps for c in n], "k:", label="every frame")
    _cameras_axis(ax, summaries)
    ax.set(
        ylabel="frames/s processed (all cameras)",
        title=f"Throughput against cameras\n({_rounds(summaries)})",
    )
    ax.legend()
    return _save(fig, path)


def _lines_latency(summaries: list[Summary], path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (system, rows) in enumerate(_by_system(summaries).items()):
        for name, style in (("p50", "o-"), ("p99", "s--")):
            known = [s for s in rows if getattr(s, name) is not None]
            if known:
                median, error = _error([getattr(s, name) for s in known])
                ax.errorbar(
                    [s.cameras for s in known], median, yerr=error, fmt=style, color=f"C{i}",
                    capsize=4, label=f"{system} {name}",
                )  # fmt: skip
    _cameras_axis(ax, summaries)
    ax.set(
        ylabel="frame-to-link latency (ms)",
        title=f"Latency against cameras\n({_rounds(summaries)})",
    )
    if ax.lines:
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, "no links in any run", ha="center", transform=ax.transAxes)
    return _save(fig, path)


def _cameras_axis(ax: Any, summaries: list[Summary]) -> None:
    """Camera counts on the x axis: the counts measured as ticks, never fractions."""
    counts = sorted({s.cameras for s in summaries})
    pad = 0.08 * (counts[-1] - counts[0]) or 0.5
    ax.set_xticks(counts)
    ax.set(xlabel="cameras", xlim=(counts[0] - pad, counts[-1] + pad))


def _latency_cdf(points: list[Point], path: Path) -> Path:
    """One line per system and camera count, the latencies of all its rounds together."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    systems = list(dict.fromkeys(p.system for p in points))
    counts = sorted({p.cameras for p in points})
    styles = ["-", "--", "-.", ":"]
    for i, system in enumerate(systems):
        for j, n in enumerate(counts):
            lists = [p.report.latencies_ms for p in points if (p.system, p.cameras) == (system, n)]
            values = np.sort(np.concatenate([[], *lists]))
            if len(values):
                ax.plot(
                    values, np.arange(1, len(values) + 1) / len(values), styles[j % len(styles)],
                    color=f"C{i}", label=f"{system} x{n}",
                )  # fmt: skip
    ax.set(
        xscale="log",
        xlabel="frame-to-link latency (ms)",
        ylabel="fraction of links",
        title="Frame-to-link latency CDF (clips cut in view)",
    )
    if ax.lines:
        ax.legend(fontsize="small")
    return _save(fig, path)


def _stage_breakdown(points: list[Point], jobs: list[str], path: Path) -> Path:
    """Stacked busy fractions of each job's stages per camera count, mean over the rounds."""
    import matplotlib.pyplot as plt

    keys = list(dict.fromkeys((p.system, p.cameras) for p in points if p.system in jobs))
    groups = [[p for p in points if (p.system, p.cameras) == key] for key in keys]
    names = [str(n) if len(jobs) == 1 else f"{system}\nx{n}" for system, n in keys]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(keys) + 2), 4))
    stages = list(dict.fromkeys(s for group in groups for p in group for s in p.report.stages))
    bottom = np.zeros(len(keys))
    for stage in stages:
        busy = np.array([np.mean([_busy(p, stage) for p in group]) for group in groups])
        ax.bar(range(len(keys)), busy, bottom=bottom, label=stage)
        bottom += busy
    for x, group in enumerate(groups):
        if not any(p.report.stages for p in group):
            ax.text(x, 0.02, OUTSIDE, ha="center", va="bottom", color="grey", fontsize="small")
    ax.set_xticks(range(len(keys)), names)
    ax.set(
        xlabel="cameras" if len(jobs) == 1 else "system, cameras",
        ylabel="busy fraction of each stage's thread (stacked)",
        title="Where the time goes (" + ", ".join(jobs) + ")",
        xlim=(-0.6, len(keys) - 0.4),
        ylim=(0, max(1.0, float(bottom.max(initial=0.0)) * 1.05)),
    )
    if stages:
        ax.legend(fontsize="small")
    return _save(fig, path)


def _busy(point: Point, stage: str) -> float:
    figures = point.report.stages.get(stage)
    return figures.busy if figures is not None else 0.0


def _queue_depth(points: list[Point], jobs: list[str], path: Path) -> Path:
    """Queue depths over time in each job's run with the most cameras (its last round)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        max(len(jobs), 1), 1, figsize=(6, 1 + 3 * max(len(jobs), 1)), sharex=True, squeeze=False
    )
    for ax, system in zip(axes[:, 0], jobs, strict=False):
        top = max((p for p in points if p.system == system), key=lambda p: (p.cameras, p.repeat))
        for queue, series in top.report.queue_series.items():
            if series:
                t, depth = zip(*series, strict=True)
                ax.plot(t, depth, label=queue)
        ax.set(title=f"Queue depth over time ({system}, {top.cameras} cameras)")
        ax.set(ylabel="items waiting")
        if ax.lines:
            ax.legend(fontsize="small")
        elif not top.report.queue_series:
            ax.text(0.5, 0.5, OUTSIDE, ha="center", va="center", transform=ax.transAxes)
    axes[-1, 0].set(xlabel="seconds into the measured window")
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
