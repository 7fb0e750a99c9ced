"""`reidstream bench engine` on a tiny CPU configuration: rows with positive figures, FLOPs counted
as `reid_models.summary` counts them, and combinations an engine cannot run reported, not fatal."""

from __future__ import annotations

import json

import pytest
import torch

from pipeline.bench import engine
from pipeline.cli import main
from reid_models import create_model
from reid_models.summary import measure

TINY = ("--models", "c2d_r18", "--clip-len", "2", "--size", "32x16", "--seconds", "0")


def test_tiny_cpu_benchmark_gives_positive_figures_and_reports_what_it_skipped():
    rows, skipped, peak = engine.run_benchmark(
        models=["c2d_r18"], engines=["torch", "onnxruntime"], precisions=["fp32", "bf16"],
        batch_sizes=[1, 2],
        settings=engine.EngineSettings(clip_len=2, size=(32, 16), seconds=0, warmup=1),
    )  # fmt: skip
    assert peak is None  # no GPU: no peak, no share of it
    combos = {(r.engine, r.precision, r.batch) for r in rows}
    assert combos == {
        ("torch", "fp32", 1), ("torch", "fp32", 2), ("torch", "bf16", 1), ("torch", "bf16", 2),
        ("onnxruntime", "fp32", 1), ("onnxruntime", "fp32", 2),
    }  # fmt: skip
    for r in rows:
        assert r.calls >= 3 and r.clips_per_s > 0 and 0 < r.p50_ms <= r.p99_ms
        assert r.gflop_per_clip > 0 and r.gflops > 0 and r.peak_fraction is None
        assert r.gflops == pytest.approx(r.clips_per_s * r.gflop_per_clip)
    assert len(skipped) == 2 and all("onnxruntime bf16" in s for s in skipped)


def test_the_random_init_is_the_same_every_run_and_leaves_the_callers_rng_alone():
    settings = engine.EngineSettings(size=(32, 16))
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    first = engine._build_model("c2d_r18", settings).state_dict()
    assert torch.equal(torch.rand(1), expected)
    second = engine._build_model("c2d_r18", settings).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_flops_per_clip_agree_with_the_model_summary():
    model = create_model("c2d_r18")
    cfg = model.pretrained_cfg
    flops = engine.flops_per_clip(model, clip_len=cfg.train_clip_len, size=cfg.input_size[1:])
    assert flops == pytest.approx(2e9 * measure("c2d_r18").gmac_all, rel=1e-9)


def test_the_command_prints_a_markdown_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["bench", "engine", *TINY, "--batch-sizes", "1", "--warmup", "0", "--json", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    table = [line for line in printed.splitlines() if line.startswith("|")]
    assert table[0].startswith("| model | engine | precision | batch | clips/s")
    assert len(table) == 3 and "| c2d_r18 | torch | fp32 | 1 |" in table[2]
    document = json.loads(out.read_text())
    assert document["device"] == "cpu" and document["peak_bf16_flops"] is None
    assert document["rows"][0]["clips_per_s"] > 0


def test_an_unknown_model_is_a_usage_error(capsys):
    assert main(["bench", "engine", "--models", "c2d_r1800", *TINY[2:]]) == 2
    assert "unknown model c2d_r1800" in capsys.readouterr().err


def test_an_image_model_file_runs_on_onnx_runtime_and_openvino_side_by_side(
    synthetic_osnet_onnx, tmp_path, capsys
):
    pytest.importorskip("openvino")
    out = tmp_path / "bench.json"
    argv = ["bench", "engine", "--models", str(synthetic_osnet_onnx), *TINY[2:5], "256x128"]
    argv += ["--seconds", "0", "--engines", "external-onnx", "openvino", "--batch-sizes", "1"]
    assert main([*argv, "--warmup", "0", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["engine"] for r in rows] == ["external-onnx", "openvino"]
    assert all(r["model"] == synthetic_osnet_onnx.name and r["clips_per_s"] > 0 for r in rows)
    assert not json.loads(out.read_text())["skipped"]


def test_a_missing_image_model_file_is_a_usage_error(tmp_path, capsys):
    argv = ["bench", "engine", "--models", str(tmp_path / "none.onnx"), *TINY[2:]]
    assert main(argv) == 2
    assert "not found" in capsys.readouterr().err
