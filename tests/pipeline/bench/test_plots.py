"""The plots of `reidstream bench pipeline`, from hand-made points: bars at one camera count,
lines at several, every file a readable PNG."""

from __future__ import annotations

import dataclasses
from unittest.mock import patch

import cv2
import numpy as np
import pytest
from matplotlib.axes import Axes

from pipeline.bench.plots import OUTSIDE, write_plots

NAMES = ["throughput_vs_cameras", "latency_vs_cameras", "latency_cdf", "stage_breakdown"]


def _coloured(path, bgr) -> int:
    """Pixels of the PNG within a few levels of one colour."""
    image = cv2.imread(str(path))
    assert image is not None and image.shape[0] > 100, path
    return int((np.abs(image.astype(int) - bgr).max(axis=2) <= 8).sum())


C0 = (180, 119, 31)  # matplotlib's first colour, BGR


@pytest.mark.parametrize("repeat", [1, 3])
def test_one_camera_count_draws_bars(make_point, tmp_path, repeat):
    points = [
        make_point(system, fps + r, 100.0 / fps, r=r)
        for r in range(1, repeat + 1)
        for system, fps in (("baseline", 12.0), ("k3", 20.0), ("k3-320", 24.0))
    ]
    points.append(make_point("idle", 1.0))  # no links: no latency bar
    paths = write_plots(points, tmp_path)
    assert [p.name for p in paths] == [f"{n}.png" for n in NAMES] + ["queue_depth.png"]
    for path in paths:
        assert cv2.imread(str(path)) is not None, path
    # the baseline's bar fills a column in the first colour; a line's lone marker would not
    assert _coloured(tmp_path / "throughput_vs_cameras.png", C0) > 3000


def test_several_camera_counts_draw_a_line_per_system(make_point, tmp_path):
    points = [
        make_point(system, n * fps, 10.0 * n, n=n, r=r)
        for n in (2, 4, 8)
        for r in (1, 2)
        for system, fps in (("baseline", 10.0), ("k3", 10.0 + r), ("k5", 12.0))
    ]
    paths = write_plots(points, tmp_path)
    assert len(paths) == 5
    throughput = _coloured(tmp_path / "throughput_vs_cameras.png", C0)
    assert 50 < throughput < 3000  # a line and markers, no bars
    for path in paths:
        assert cv2.imread(str(path)) is not None, path


def test_jobs_measured_from_outside_say_so_where_their_stages_would_be(make_point, tmp_path):
    outside = make_point("w2", 20.0, 50.0)
    outside = dataclasses.replace(
        outside, report=dataclasses.replace(outside.report, stages={}, queue_series={})
    )
    points = [make_point("baseline", 10.0, 80.0), make_point("k3", 18.0, 40.0), outside]
    with patch("matplotlib.axes.Axes.text", autospec=True, side_effect=Axes.text) as text:
        write_plots(points, tmp_path)
    said = [call.args[3] for call in text.call_args_list]
    assert said.count(OUTSIDE) == 2  # the stage bar of w2 and its queue panel; not k3's
    assert _coloured(tmp_path / "stage_breakdown.png", C0) > 1000  # k3's bars are drawn


@pytest.mark.parametrize("counts", [(2,), (2, 4)])
def test_runs_without_links_or_a_job_still_plot(make_point, tmp_path, counts):
    paths = write_plots([make_point("baseline", 10.0, n=n) for n in counts], tmp_path)
    for path in paths:
        assert cv2.imread(str(path)) is not None, path
