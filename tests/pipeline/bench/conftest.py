"""Hand-made points of `reidstream bench pipeline` for the summary, report and plot tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pipeline.bench.profiling import Report, StageFigures
from pipeline.bench.throughput import Point


def _report(
    fps: float,
    p50: float | None,
    *,
    p99: float | None = None,
    links: int = 0,
    cpu: float = 1.0,
    load: tuple[float, float] | None = None,
) -> Report:
    """A run whose two cameras processed `fps` frames/s together, with two stages at work."""
    latency = {} if p50 is None else {"p50": p50, "p95": p99 or p50, "p99": p99 or p50}
    stages = {
        name: StageFigures(fps, busy, 10, 1.0, {"<=1": 10}, {"p50": 1.0}, 1.0, 2, 0.0)
        for name, busy in (("detect", 0.5), ("embed", 0.2))
    }
    return Report(
        window_s=1.0,
        cameras=2,
        source_fps=10.0,
        fps_per_camera={"cam1": fps / 2, "cam2": fps / 2},
        frames_in=int(fps),
        frames_dropped=0,
        detections=0,
        links=links,
        frame_to_link_ms=latency,
        closing_link_ms={},
        cpu_cores=cpu,
        us_per_detection=None,
        us_per_frame=None,
        rss_mb=100.0,
        gpu_util=None,
        gpu_mem_mb=None,
        stages=stages,
        queue_series={"detect": [(0.0, 1), (0.5, 3), (1.0, 2)]},
        latencies_ms=[] if p50 is None else [p50 * 0.8, p50, p50 * 1.5],
        load_1min=load,
    )


@pytest.fixture
def make_point() -> Callable[..., Point]:
    """make_point(system, fps, p50=None, *, n=2, r=1, p99=, links=, cpu=, load=): a Point of
    `system` at n cameras in round r."""

    def make(
        system: str, fps: float, p50: float | None = None, *, n: int = 2, r: int = 1, **kw
    ) -> Point:
        return Point(system, n, _report(fps, p50, **kw), "", repeat=r)

    return make
