"""The report of `reidstream bench pipeline` from hand-made points: the machine's load, the
summary per camera count, every run (the command itself: test_throughput.py)."""

from __future__ import annotations

from pipeline.bench.report import load_range, markdown


def _document(points, command="reidstream bench pipeline --repeat 3"):
    return {
        "command": command,
        "date": "2026-12-02T10:00:00+00:00",
        "machine": {"cpu": "Test CPU", "cores": 2, "memory_gb": 8.0, "gpu": None},
        "load_1min": load_range(points),
        "largest_kept_up": {"baseline": 2, "k3": 2},
    }


def test_the_load_average_of_every_run_and_its_range_are_reported(make_point):
    points = [
        make_point("baseline", 10.0, 100.0, load=(0.5, 1.25)),
        make_point("k3", 20.0, 50.0, load=(1.25, 3.0)),
        make_point("k3", 20.0, 50.0, r=2),  # a system without load averages
    ]
    assert load_range(points) == [0.5, 3.0]
    assert load_range(points[2:]) is None
    text = markdown(_document(points), points)
    assert "1-minute load average over the runs 0.50-3.00 on 2 cores" in text
    rows = [line for line in text.splitlines() if line.startswith("| k3 | 2 |")]
    assert rows[0].endswith("| 1.25 → 3.00 |") and rows[1].endswith("| - |")


def test_the_summary_gives_median_range_and_ratios_per_camera_count(make_point):
    points = [
        make_point("baseline", f, p, r=r, p99=2 * p, links=4)
        for r, (f, p) in enumerate([(10.0, 100.0), (14.0, 120.0), (12.0, 80.0)], 1)
    ] + [
        make_point("k3", f, p, r=r, p99=2 * p, links=6, cpu=c)
        for r, (f, p, c) in enumerate([(30.0, 50.0, 1.0), (24.0, 40.0, 1.5), (18.0, 60.0, 1.0)], 1)
    ]
    points.append(make_point("k3", 6.0, 300.0, n=4))
    text = markdown(_document(points), points)
    assert "2 cameras, median [min-max] over the rounds; ratios of medians to baseline:" in text
    assert "| baseline | 3/3 | 12.0 [10.0-14.0] | 1.00 | 100 [80-120] | 1.00 |" in text
    assert "| k3 | 3/3 | 24.0 [18.0-30.0] | 2.00 | 50 [40-60] | 0.50 | 100 [80-120] |" in text
    assert "1.00 [1.00-1.50] | 6 |" in text  # CPU cores vary, links do not
    assert "4 cameras, median [min-max] over the rounds; ratios of medians to k3:" in text
    assert "| k3 | 1/1 | 6.0 | 1.00 | 300 | 1.00 | 300 |" in text
    assert "Stages of k3 at 4 cameras (round 1):" in text
    assert "Stages of baseline" not in text
    assert "Most cameras kept up with: baseline 2, k3 2" in text
