"""Several configurations of the job measured side by side, in repeated rounds, with their spread.

    configs = resolve_variants([("k3", ["detect.max_batch=3"])], load)
                                    label -> the job's configuration: the command's with the
                                    variant's KEY=VALUE overrides on top; every variant resolved
                                    (and every error found) before anything runs
    schedule(["baseline", "k3", "k3-320"], repeat=2)
                                    [(1, "baseline"), (1, "k3"), (1, "k3-320"),
                                     (2, "baseline"), (2, "k3"), (2, "k3-320")]
    measure(base, configs, plan, ...)
                                    the rounds at one camera count, or at each count of a sweep
    summarize(points)               per camera count and system: median [min, max] over the
                                    rounds, and ratios of the medians to the reference system

Speed-ups are reported as ratios measured side by side. On a shared machine other users' load
drifts over minutes, so the runs of one comparison are interleaved (baseline, v1, v2, baseline,
v1, v2, ...): a drift hits every system alike instead of the one that happened to run last, and
the median over the rounds, with the range beside it, shows how far one run can be trusted.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pipeline.bench.processes import measure_processes
from pipeline.bench.throughput import (
    Plan,
    Point,
    measure_baseline,
    measure_job,
    search_cameras,
)
from pipeline.config import ConfigError
from pipeline.settings import ReidstreamConfig

__all__ = [
    "BASELINE",
    "DEFAULT_LABEL",
    "Spread",
    "Summary",
    "measure",
    "resolve_variants",
    "schedule",
    "summarize",
]

#: The naive loop's name among the systems (`pipeline.bench.baseline`).
BASELINE = "baseline"
#: The job's name when no variant is given.
DEFAULT_LABEL = "reidstream"


def resolve_variants(
    variants: Sequence[tuple[str, Sequence[str]]],
    load: Callable[[Sequence[str]], ReidstreamConfig],
) -> dict[str, ReidstreamConfig]:
    """Label -> configuration of each variant, in the order given; without variants, the job
    as configured, labelled `DEFAULT_LABEL`.

    Args:
        variants: (label, KEY=VALUE overrides) pairs.
        load: The command's configuration with extra overrides applied last.

    Raises:
        ConfigError: A label given twice or named `BASELINE`, or a variant's overrides that do
            not resolve; every problem of every variant in one message.
    """
    if not variants:
        return {DEFAULT_LABEL: load(())}
    errors: list[str] = []
    configs: dict[str, ReidstreamConfig] = {}
    seen: set[str] = set()
    for label, overrides in variants:
        if label == BASELINE or label in seen:
            why = "names the naive loop" if label == BASELINE else "is given twice"
            errors.append(f"--variant {label}: the label {why}; give each variant its own")
            continue
        seen.add(label)
        try:
            configs[label] = load(overrides)
        except ConfigError as e:
            errors += [f"--variant {label}: {line}" for line in str(e).splitlines()]
    if errors:
        raise ConfigError("\n".join(errors))
    return configs


def schedule(systems: Sequence[str], repeat: int) -> list[tuple[int, str]]:
    """(round, system) in the order to run: every system once per round, rounds one after the
    other, so that the machine's drift hits all alike (module docstring)."""
    if repeat < 1:
        raise ValueError(f"repeat must be 1 or more, not {repeat}")
    return [(r, system) for r in range(1, repeat + 1) for system in systems]


def measure(
    base: ReidstreamConfig,
    configs: dict[str, ReidstreamConfig],
    plan: Plan,
    *,
    cameras: int,
    most: int | None = None,
    baseline: bool = True,
    repeat: int = 1,
    on_point: Callable[[Point], None] | None = None,
) -> list[Point]:
    """The baseline (on `base`, unless not `baseline`) and each configuration, in `repeat`
    interleaved rounds, at `cameras` cameras; with `most`, at the camera counts of a sweep up to
    `most` (`pipeline.bench.throughput.search_cameras`), which goes on while any variant keeps
    up in any round.

    Returns:
        Every point measured, in the order run; a repeated run's outputs are under
        plan.out_dir/repeat-<round>.
    """
    systems = [*([BASELINE] if baseline else []), *configs]
    points: list[Point] = []

    def at(n: int) -> bool:
        measured = []
        for r, system in schedule(systems, repeat):
            round_plan = plan if repeat == 1 else _in_round(plan, r)
            if system == BASELINE:
                point = measure_baseline(base, round_plan, n)
            elif plan.processes or configs[system].run.workers > 1:
                point = measure_processes(configs[system], round_plan, n, system)
            else:
                point = measure_job(configs[system], round_plan, n, label=system)
            point.repeat = r
            measured.append(point)
            if on_point is not None:
                on_point(point)
        points.extend(measured)
        return any(p.kept_up for p in measured if p.system != BASELINE)

    if most is None:
        at(cameras)
    else:
        search_cameras(cameras, most, at)
    return points


def _in_round(plan: Plan, r: int) -> Plan:
    return dataclasses.replace(plan, out_dir=plan.out_dir / f"repeat-{r}")


# ------------------------------------------------------------------------------------ summary


@dataclass(frozen=True)
class Spread:
    """A figure over the rounds: the median and the range."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float | None]) -> Spread | None:
        """The spread of the values that exist (None: none does)."""
        known = [float(v) for v in values if v is not None]
        if not known:
            return None
        return cls(statistics.median(known), min(known), max(known))


@dataclass(frozen=True)
class Summary:
    """One system at one camera count over its rounds.

    Attributes:
        fps: Frames/s processed, all cameras together.
        p50, p99: Frame-to-link latency percentiles of each round, ms.
        fps_ratio, p50_ratio: This system's median over the reference's (`reference`: the
            baseline where it ran, else the first variant); None where either is missing.
    """

    system: str
    cameras: int
    rounds: int
    kept_up: int  # rounds that kept up
    fps: Spread
    p50: Spread | None
    p99: Spread | None
    cpu_cores: Spread
    links: Spread
    reference: str
    fps_ratio: float | None
    p50_ratio: float | None


def summarize(points: Sequence[Point]) -> list[Summary]:
    """Per camera count (ascending) and system (in the order first run): see `Summary`."""
    out = []
    for n in sorted({p.cameras for p in points}):
        runs: dict[str, list[Point]] = {}
        for p in points:
            if p.cameras == n:
                runs.setdefault(p.system, []).append(p)
        reference = BASELINE if BASELINE in runs else next(iter(runs))
        figures = {system: _figures(group) for system, group in runs.items()}
        ref_fps, ref_p50 = figures[reference][0], figures[reference][1]
        for system, group in runs.items():
            fps, p50, p99, cpu, links = figures[system]
            out.append(
                Summary(
                    system=system,
                    cameras=n,
                    rounds=len(group),
                    kept_up=sum(p.kept_up for p in group),
                    fps=fps,
                    p50=p50,
                    p99=p99,
                    cpu_cores=cpu,
                    links=links,
                    reference=reference,
                    fps_ratio=_ratio(fps, ref_fps),
                    p50_ratio=_ratio(p50, ref_p50),
                )
            )
    return out


def _figures(group: list[Point]) -> tuple[Spread, Spread | None, Spread | None, Spread, Spread]:
    """(frames/s, p50, p99, CPU cores, links) of one system's rounds."""
    reports = [p.report for p in group]
    return (
        _every([r.total_fps for r in reports]),
        Spread.of([r.frame_to_link_ms.get("p50") for r in reports]),
        Spread.of([r.frame_to_link_ms.get("p99") for r in reports]),
        _every([r.cpu_cores for r in reports]),
        _every([float(r.links) for r in reports]),
    )


def _every(values: list[float]) -> Spread:
    """The spread of a figure every run has."""
    spread = Spread.of(values)
    if spread is None:
        raise ValueError("no runs to summarise")
    return spread


def _ratio(a: Spread | None, b: Spread | None) -> float | None:
    return a.median / b.median if a is not None and b is not None and b.median else None
