"""Variants of the job side by side: resolving them, the interleaved order of the rounds, and the
median, range and ratios of the summary, from hand-made points (no job runs here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.bench.profiling import Report
from pipeline.bench.throughput import Plan, Point
from pipeline.bench.variants import (
    BASELINE,
    Spread,
    measure,
    resolve_variants,
    schedule,
    summarize,
)
from pipeline.config import ConfigError, load_config
from pipeline.settings import ReidstreamConfig


def _blank() -> Report:
    return Report(1.0, 2, 10.0, {}, 0, 0, 0, 0, {}, {}, 0.0, None, None, 0.0, None, None)


def load(extra):
    return load_config(ReidstreamConfig, environ={}, overrides=list(extra))


def test_variants_are_the_commands_configuration_with_their_overrides_on_top():
    configs = resolve_variants(
        [("b3", ["detect.max_batch=3"]), ("s4", ["detect.max_batch=3", "tracklets.stride=4"])],
        load,
    )
    assert list(configs) == ["b3", "s4"]
    default = load(())
    assert configs["b3"].detect.max_batch == 3
    assert configs["b3"].tracklets.stride == default.tracklets.stride
    assert (configs["s4"].detect.max_batch, configs["s4"].tracklets.stride) == (3, 4)


def test_without_variants_the_job_runs_as_configured_under_its_own_name():
    configs = resolve_variants([], load)
    assert list(configs) == ["reidstream"] and configs["reidstream"] == load(())


def test_every_bad_variant_is_reported_before_anything_runs():
    with pytest.raises(ConfigError) as error:
        resolve_variants(
            [
                ("a", ["detect.max_bach=3"]),
                ("b", ["detect.max_batch=0"]),
                ("a", ["detect.max_batch=2"]),
                (BASELINE, ["detect.max_batch=2"]),
            ],
            load,
        )
    text = str(error.value)
    assert "--variant a: unknown key 'detect.max_bach'" in text and "max_batch" in text
    assert "--variant b: detect.max_batch = '0'" in text
    assert "--variant a: the label is given twice" in text
    assert "--variant baseline: the label names the naive loop" in text


def test_rounds_are_interleaved():
    assert schedule(["baseline", "v1", "v2"], 2) == [
        (1, "baseline"), (1, "v1"), (1, "v2"), (2, "baseline"), (2, "v1"), (2, "v2"),
    ]  # fmt: skip
    assert schedule(["v1"], 1) == [(1, "v1")]
    with pytest.raises(ValueError, match="repeat"):
        schedule(["v1"], 0)


def test_measure_runs_the_set_interleaved_each_variant_on_its_own_configuration(monkeypatch):
    runs = []

    def job(cfg, plan, n, *, label):
        runs.append((label, n, cfg.detect.max_batch, plan.out_dir))
        return Point(label, n, _blank(), "")

    def naive(cfg, plan, n):
        runs.append((BASELINE, n, cfg.detect.max_batch, plan.out_dir))
        return Point(BASELINE, n, _blank(), "")

    monkeypatch.setattr("pipeline.bench.variants.measure_job", job)
    monkeypatch.setattr("pipeline.bench.variants.measure_baseline", naive)
    configs = resolve_variants(
        [("b3", ["detect.max_batch=3"]), ("b5", ["detect.max_batch=5"])], load
    )
    base = load(())
    points = measure(base, configs, Plan(out_dir=Path("out")), cameras=4, repeat=2)
    order = [(system, batch) for system, _, batch, _ in runs]
    once = [(BASELINE, base.detect.max_batch), ("b3", 3), ("b5", 5)]
    assert order == once + once
    assert [p.repeat for p in points] == [1, 1, 1, 2, 2, 2]
    assert {n for _, n, _, _ in runs} == {4}
    assert [d for *_, d in runs] == [Path("out/repeat-1")] * 3 + [Path("out/repeat-2")] * 3
    runs.clear()
    measure(base, configs, Plan(out_dir=Path("out")), cameras=4, baseline=False)
    assert [(s, d) for s, _, _, d in runs] == [("b3", Path("out")), ("b5", Path("out"))]


def test_a_sweep_of_variants_goes_on_while_any_variant_keeps_up(monkeypatch):
    limits = {"slow": 2, "fast": 5}

    def job(cfg, plan, n, *, label):
        return Point(label, n, _blank(), "" if n <= limits[label] else "behind")

    monkeypatch.setattr("pipeline.bench.variants.measure_job", job)
    configs = dict.fromkeys(limits, load(()))
    points = measure(load(()), configs, Plan(), cameras=1, most=16, baseline=False)
    assert sorted({p.cameras for p in points}) == [1, 2, 4, 5, 6, 8]
    assert max(p.cameras for p in points if p.system == "fast" and p.kept_up) == 5


def test_spread_is_the_median_and_range_of_the_values_that_exist():
    assert Spread.of([3.0, 1.0, 2.0, None]) == Spread(2.0, 1.0, 3.0)
    assert Spread.of([4.0, 1.0]) == Spread(2.5, 1.0, 4.0)
    assert Spread.of([None, None]) is None


def test_summary_medians_ranges_and_ratios_to_the_baseline(make_point):
    point = make_point
    points = [
        point(BASELINE, 10.0, 100.0, r=1, links=4),
        point("k3", 30.0, 50.0, r=1, links=6),
        point(BASELINE, 14.0, 120.0, r=2, links=6),
        point("k3", 24.0, 40.0, r=2, links=8),
        point(BASELINE, 12.0, 80.0, r=3, links=5),
        point("k3", 18.0, 60.0, r=3, links=7),
        point("k3", 5.0, n=4),  # another camera count: a table of its own
    ]
    rows = summarize(points)
    assert [(s.system, s.cameras) for s in rows] == [(BASELINE, 2), ("k3", 2), ("k3", 4)]
    base, k3, alone = rows
    assert base.fps == Spread(12.0, 10.0, 14.0) and base.p50 == Spread(100.0, 80.0, 120.0)
    assert k3.fps == Spread(24.0, 18.0, 30.0) and k3.links == Spread(7.0, 6.0, 8.0)
    assert k3.rounds == 3 and k3.kept_up == 3 and k3.reference == BASELINE
    assert k3.fps_ratio == pytest.approx(2.0) and k3.p50_ratio == pytest.approx(0.5)
    assert base.fps_ratio == pytest.approx(1.0)
    assert alone.reference == "k3" and alone.p50 is None and alone.p50_ratio is None


def test_without_a_baseline_ratios_are_to_the_first_variant(make_point):
    point = make_point
    rows = summarize([point("a", 10.0, 100.0), point("b", 15.0, 150.0)])
    assert [s.reference for s in rows] == ["a", "a"]
    assert rows[1].fps_ratio == pytest.approx(1.5) and rows[1].p50_ratio == pytest.approx(1.5)
