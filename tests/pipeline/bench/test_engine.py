"""`deploy.benchmark` on a tiny CPU configuration: rows with positive figures, FLOPs counted as
`reid_models.summary` counts them, and combinations an engine cannot run reported, not fatal."""

from __future__ import annotations

import argparse
import json

import pytest

from pipeline.bench import engine as benchmark
from reid_models import create_model
from reid_models.summary import measure


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    benchmark.add_arguments(parser)
    return parser.parse_args(list(argv))


TINY = ("--models", "c2d_r18", "--clip-len", "2", "--size", "32x16", "--seconds", "0")


def test_tiny_cpu_benchmark_gives_positive_figures_and_reports_what_it_skipped():
    args = parse(
        *TINY, "--engines", "torch", "onnxruntime", "--precisions", "fp32", "bf16",
        "--batch-sizes", "1", "2", "--warmup", "1",
    )  # fmt: skip
    rows, skipped, peak = benchmark.run_benchmark(args)
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


def test_flops_per_clip_agree_with_the_model_summary():
    model = create_model("c2d_r18")
    cfg = model.pretrained_cfg
    flops = benchmark.flops_per_clip(model, clip_len=cfg.train_clip_len, size=cfg.input_size[1:])
    assert flops == pytest.approx(2e9 * measure("c2d_r18").gmac_all, rel=1e-9)


def test_run_prints_a_markdown_table_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = parse(*TINY, "--batch-sizes", "1", "--warmup", "0", "--json", str(out))
    assert benchmark.run(args) == 0
    printed = capsys.readouterr().out
    table = [line for line in printed.splitlines() if line.startswith("|")]
    assert table[0].startswith("| model | engine | precision | batch | clips/s")
    assert len(table) == 3 and "| c2d_r18 | torch | fp32 | 1 |" in table[2]
    document = json.loads(out.read_text())
    assert document["device"] == "cpu" and document["peak_bf16_flops"] is None
    assert document["rows"][0]["clips_per_s"] > 0


@pytest.mark.parametrize(("text", "size"), [("256x128", (256, 128)), ("64X32", (64, 32))])
def test_parse_size(text, size):
    assert benchmark.parse_size(text) == size


@pytest.mark.parametrize("text", ["256", "0x128", "axb"])
def test_parse_size_refuses_malformed_sizes(text):
    with pytest.raises(argparse.ArgumentTypeError, match="size"):
        benchmark.parse_size(text)
