"""`reidstream export` and `reidstream compile`: the files they write and the figures they print.

A small registered model (ResNet-18 C2D, 2-frame clips at the model's 256x128) keeps each run
to a second or two.
"""

from __future__ import annotations

import json
import re

import onnx
import pytest
import torch

from pipeline.cli import main
from reid_models import create_model, model_spec

PARITY = re.compile(
    r"parity vs PyTorch \((\d+) clips, (\w+)\): min cosine ([\d.]+), mean cosine ([\d.]+), "
    r"max abs ([\d.e+-]+)"
)


@pytest.mark.parametrize(
    ("fmt", "suffix", "engine"),
    [("onnx", ".onnx", "onnxruntime"), ("torchscript", ".ts", "torch")],
)
def test_export_writes_graph_sidecar_and_parity_line(tmp_path, capsys, fmt, suffix, engine):
    argv = ["export", "--model", "c2d_r18", "--format", fmt, "--out", str(tmp_path)]
    assert main([*argv, "--clip-len", "2", "--parity-clips", "2"]) == 0
    out = capsys.readouterr().out
    graph, sidecar = tmp_path / f"c2d_r18{suffix}", tmp_path / "c2d_r18.json"
    assert graph.is_file() and sidecar.is_file()
    assert f"wrote {graph}" in out and f"wrote {sidecar}" in out
    document = json.loads(sidecar.read_text())
    assert document["model_name"] == "c2d_r18" and document["clip_len"] == 2
    clips, used, min_cos, mean_cos, max_abs = PARITY.search(out).groups()
    assert (clips, used) == ("2", engine)
    assert 0.9999 < float(min_cos) <= float(mean_cos) <= 1.0 + 1e-6 and float(max_abs) < 1e-3


def test_exported_onnx_has_a_dynamic_batch_axis(tmp_path, capsys):
    assert main(["export", "--model", "c2d_r18", "--out", str(tmp_path), "--clip-len", "2"]) == 0
    dims = onnx.load(str(tmp_path / "c2d_r18.onnx")).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 2, 256, 128]


def test_export_of_an_unknown_model_is_a_usage_error(tmp_path, capsys):
    assert main(["export", "--model", "c2d_r51", "--out", str(tmp_path)]) == 2
    assert "c2d_r50" in capsys.readouterr().err  # the registry suggests close names
    assert list(tmp_path.iterdir()) == []


def test_compile_onnxruntime_writes_the_optimised_graph(tmp_path, capsys):
    argv = ["compile", "--engine", "onnxruntime", "--model", "c2d_r18", "--out", str(tmp_path)]
    assert main([*argv, "--clip-len", "2", "--log-level", "WARNING"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'c2d_r18.opt.onnx'}" in out
    min_cosine = float(re.search(r"min_cosine: ([\d.]+)", out).group(1))
    assert min_cosine > 0.9999
    assert (tmp_path / "c2d_r18.opt.json").is_file()


def test_compile_with_an_unknown_engine_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["compile", "--engine", "openvino", "--model", "c2d_r18"])
    assert "invalid choice" in capsys.readouterr().err


def test_export_of_a_checkpoint_alone_takes_its_model_spec(tmp_path, capsys):
    """``--checkpoint best.pt`` without ``--model``: name, width and input size from the file."""
    torch.manual_seed(0)
    trained = create_model("ap3d_r18", base_width=8)
    trained.pretrained_cfg = trained.pretrained_cfg.with_changes(
        input_size=(3, 64, 32), test_clip_len=2
    )
    checkpoint = tmp_path / "best.pt"
    spec = {"state_dict": trained.state_dict(), "model": model_spec(trained)}
    torch.save({"format": "reidstream.weights/1", **spec}, checkpoint)
    out = tmp_path / "out"
    argv = ["export", "--checkpoint", str(checkpoint), "--out", str(out), "--parity-clips", "2"]
    assert main(argv) == 0
    document = json.loads((out / "ap3d_r18.json").read_text())
    assert document["pretrained_cfg"]["input_size"] == [3, 64, 32]
    assert (document["clip_len"], document["embedding_dim"]) == (2, 64)
    assert float(PARITY.search(capsys.readouterr().out).group(3)) > 0.9999
    other = ["export", "--model", "c2d_r18", "--checkpoint", str(checkpoint), "--out", str(out)]
    assert main(other) == 2
    assert "set the model to 'ap3d_r18'" in capsys.readouterr().err


def test_export_without_model_or_checkpoint_is_a_usage_error(tmp_path, capsys):
    assert main(["export", "--out", str(tmp_path)]) == 2
    assert "give --model NAME, or a --checkpoint" in capsys.readouterr().err


def test_compile_of_a_checkpoint_alone_takes_its_model_spec(tmp_path, capsys):
    """``reidstream compile --checkpoint best.pt`` without ``--model``, as export takes it."""
    trained = create_model("ap3d_r18", base_width=8)
    trained.pretrained_cfg = trained.pretrained_cfg.with_changes(
        input_size=(3, 64, 32), test_clip_len=2
    )
    checkpoint = tmp_path / "best.pt"
    spec = {"state_dict": trained.state_dict(), "model": model_spec(trained)}
    torch.save({"format": "reidstream.weights/1", **spec}, checkpoint)
    argv = ["compile", "--engine", "onnxruntime", "--checkpoint", str(checkpoint)]
    assert main([*argv, "--out", str(tmp_path / "out"), "--clip-len", "2"]) == 0
    assert f"wrote {tmp_path / 'out' / 'ap3d_r18.opt.onnx'}" in capsys.readouterr().out
    assert main(["compile", "--engine", "onnxruntime", "--out", str(tmp_path)]) == 2
    assert "give --model NAME, or a --checkpoint" in capsys.readouterr().err
