"""`reidstream bench`: every target's arguments, light to import, and each reaching its benchmark
with keyword arguments it accepts (the benchmarks themselves: tests/pipeline/bench)."""

from __future__ import annotations

import argparse
import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import bench, main

ROOT = Path(__file__).resolve().parents[3]

#: The module of `pipeline.bench` each target runs.
MODULES = {
    "loader": "loader",
    "engine": "engine",
    "detector": "detector",
    "interval": "interval",
    "temporal": "temporal",
    "models": "models",
    "pipeline": "report",
    "site": "site",
    "matcher": "matcher",
}


def test_every_target_is_listed_and_has_a_module():
    assert list(bench.TARGETS) == list(MODULES)


def test_help_of_bench_and_of_every_target_loads_neither_torch_nor_opencv():
    script = (
        "import sys\n"
        "from pipeline.cli import main\n"
        f"for argv in [['bench', '--help'], *(['bench', t, '--help'] for t in {list(MODULES)})]:\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted({'torch', 'cv2'} & set(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.splitlines()[-1] == "[]", out.stderr
    for target in MODULES:
        assert f"usage: reidstream bench {target} " in out.stdout


def test_written_out_choices_equal_their_source():
    from deploy.compile import COMPILE_TARGETS
    from deploy.engines.torch_engine import COMPILE_MODES
    from pipeline.cli import common, compile
    from pipeline.matching.matcher import INDEX_KINDS

    assert common.COMPILE_MODES == COMPILE_MODES
    assert compile.COMPILE_TARGETS == COMPILE_TARGETS
    assert bench.INDEX_KINDS == INDEX_KINDS


def test_no_target_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench"])
    assert exit_.value.code == 2 and "<target>" in capsys.readouterr().err


@pytest.mark.parametrize(("text", "size"), [("256x128", (256, 128)), ("64X32", (64, 32))])
def test_parse_size(text, size):
    assert bench.parse_size(text) == size


@pytest.mark.parametrize("text", ["256", "0x128", "axb"])
def test_parse_size_refuses_malformed_sizes(text):
    with pytest.raises(argparse.ArgumentTypeError, match="size"):
        bench.parse_size(text)


def _argv(target: str, tmp_path: Path) -> list[str]:
    """The fewest arguments `target` needs."""
    if target == "site":
        return ["--truth", str(tmp_path)]
    if target not in ("detector", "interval"):
        return []
    (tmp_path / "w.onnx").touch()
    (tmp_path / "v.avi").touch()
    return ["--weights", str(tmp_path / "w.onnx"), "--video", str(tmp_path / "v.avi")]


@pytest.mark.parametrize("target", list(MODULES))
def test_each_target_calls_its_benchmark_with_arguments_it_accepts(target, tmp_path, monkeypatch):
    module = importlib.import_module(f"pipeline.bench.{MODULES[target]}")
    signature = inspect.signature(module.run)
    calls = []

    def fake_run(*args, **kwargs):
        assert not args  # keyword arguments only, and no argparse.Namespace
        signature.bind(**kwargs)
        assert not any(isinstance(v, argparse.Namespace) for v in kwargs.values())
        calls.append(kwargs)
        return ["a row"]

    monkeypatch.setattr(module, "run", fake_run)
    assert main(["bench", target, *_argv(target, tmp_path)]) == 0
    assert len(calls) == 1
    parameters = {name for name, p in signature.parameters.items() if p.kind is p.KEYWORD_ONLY}
    assert set(calls[0]) == parameters  # every setting passed on explicitly


@pytest.mark.parametrize(
    ("text", "label", "overrides"),
    [
        ("k3:detect.max_batch=3", "k3", ["detect.max_batch=3"]),
        (
            "k3-320:detect.max_batch=3, tracklets.stride=4",
            "k3-320",
            ["detect.max_batch=3", "tracklets.stride=4"],
        ),
        # a value may hold commas: only a comma before the next KEY= separates overrides
        ("two:output.sinks=jsonl,kafka", "two", ["output.sinks=jsonl,kafka"]),
        ("two.b:output.sinks=[jsonl, kafka],run.record=false", "two.b",
         ["output.sinks=[jsonl, kafka]", "run.record=false"]),
    ],
)  # fmt: skip
def test_parse_variant(text, label, overrides):
    assert bench.parse_variant(text) == (label, overrides)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("k3", "expected LABEL:KEY=VALUE"),
        (":detect.max_batch=3", "expected LABEL:KEY=VALUE"),
        ("../up:detect.max_batch=3", "a label is letters"),
        ("k 3:detect.max_batch=3", "a label is letters"),
        ("k3:", "'' is not KEY=VALUE"),
        ("k3:detect.max_batch", "'detect.max_batch' is not KEY=VALUE"),
        ("k3:=3", "'=3' is not KEY=VALUE"),
    ],
)
def test_parse_variant_refuses_malformed_variants(text, why):
    with pytest.raises(argparse.ArgumentTypeError, match="variant") as error:
        bench.parse_variant(text)
    assert why in str(error.value)


def test_variants_and_rounds_reach_the_benchmark(monkeypatch):
    from pipeline.bench import report

    calls = []
    monkeypatch.setattr(report, "run", lambda **kwargs: calls.append(kwargs))
    argv = ["bench", "pipeline", "--variant", "a:detect.max_batch=2", "--variant", "b:x.y=1"]
    assert main([*argv, "--repeat", "3", "detect.max_wait_ms=1"]) == 0
    assert calls[0]["variants"] == [("a", ["detect.max_batch=2"]), ("b", ["x.y=1"])]
    assert calls[0]["repeat"] == 3 and calls[0]["overrides"] == ["detect.max_wait_ms=1"]


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (["--repeat", "0"], "expected a positive integer, got '0'"),
        (["--repeat", "two"], "expected a positive integer, got 'two'"),
        (["--variant", "x"], "variant 'x': expected LABEL:KEY=VALUE"),
    ],
)
def test_bad_variants_or_rounds_are_usage_errors(bad, why, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "pipeline", *bad])
    assert exit_.value.code == 2 and why in capsys.readouterr().err
