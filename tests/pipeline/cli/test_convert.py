"""`reidstream convert`: an official checkpoint becomes a reidstream checkpoint that the serving
loader (`reidstream run`'s torch engine), `reidstream export` and `reidstream compile` take
without a model name."""

from __future__ import annotations

import re

import pytest
import torch

from deploy.engines.torch_engine import load_model
from pipeline.cli import main
from reid_models.convert import convert_official
from tests.reid_models.official_layouts import official_ap3d, official_gltr


@pytest.fixture(scope="module")
def converted_ap3d(tmp_path_factory) -> tuple[object, object]:
    """(official checkpoint file, reidstream convert's output) for ap3dres50."""
    folder = tmp_path_factory.mktemp("ap3d")
    official = folder / "checkpoint_ep240.pth.tar"
    torch.save(official_ap3d(nonlocal_blocks=False), official)
    out = folder / "ap3d_mars.pt"
    assert main(["convert", "ap3dres50", str(official), "--out", str(out)]) == 0
    return official, out


def test_convert_writes_a_checkpoint_the_run_loader_rebuilds(converted_ap3d, capsys):
    """load_model is what reid.engine=torch with reid.checkpoint=FILE and no reid.model runs."""
    _, out = converted_ap3d
    model = load_model(None, checkpoint=out)
    assert model.model_name == "ap3d_r50" and not model.training
    assert model.pretrained_cfg.interpolation == "bicubic"  # AP3D's, from the checkpoint's spec
    state = official_ap3d(nonlocal_blocks=False)["state_dict"]
    expected = state["module.layer3.4.conv2.temporal_conv3d.weight"]
    assert torch.equal(model.get_submodule("backbone.layer3.4.conv2.temporal").weight, expected)
    stored = torch.load(out, weights_only=True)
    assert stored["converted_from"]["layout"] == "ap3dres50"
    assert stored["state_dict"]["head.classifier.weight"].shape == (625, 2048)


def test_convert_prints_what_it_did(tmp_path, capsys):
    official = tmp_path / "resnet50_mars_00499.pth"
    torch.save(official_gltr(), official)
    out = tmp_path / "gltr.pt"
    assert main(["convert", "gltr", str(official), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"read {official}" in printed
    assert "folded Nonlocal_block0.g.bias and W.0.bias into tsa.W.1.running_mean" in printed
    assert re.search(rf"wrote {re.escape(str(out))} \(gltr_r50, .*'tsa': 'code'", printed)
    assert load_model(None, checkpoint=out).embedding_dim == 512


def test_a_file_of_another_layout_exits_2_and_writes_nothing(converted_ap3d, tmp_path, capsys):
    official, _ = converted_ap3d
    out = tmp_path / "gltr.pt"
    assert main(["convert", "gltr", str(official), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "not an official gltr checkpoint" in err and "layer2.0.conv2.APM" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_missing_file_exits_2(tmp_path, capsys):
    assert main(["convert", "m3d", str(tmp_path / "none.pth"), "--out", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_a_converted_checkpoint_exports_to_onnx_with_parity(converted_ap3d, tmp_path, capsys):
    _, out = converted_ap3d
    argv = ["export", "--checkpoint", str(out), "--out", str(tmp_path), "--clip-len", "2"]
    assert main([*argv, "--parity-clips", "1"]) == 0
    printed = capsys.readouterr().out
    assert (tmp_path / "ap3d_r50.onnx").is_file()
    min_cosine = float(re.search(r"min cosine ([\d.]+)", printed).group(1))
    assert min_cosine > 0.9999


@pytest.mark.slow
def test_a_converted_checkpoint_compiles_for_onnxruntime(converted_ap3d, tmp_path, capsys):
    """`compile` loads the checkpoint as `export` does; the TensorRT target takes the same ONNX
    graph (tests/deploy/test_tensorrt.py, where TensorRT is importable)."""
    _, out = converted_ap3d
    argv = ["compile", "--engine", "onnxruntime", "--checkpoint", str(out), "--clip-len", "2"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert (tmp_path / "ap3d_r50.opt.onnx").is_file()
    assert float(re.search(r"min_cosine: ([\d.]+)", printed).group(1)) > 0.9999


def test_conversion_agrees_with_the_file_route(converted_ap3d):
    official, out = converted_ap3d
    direct = convert_official("ap3dres50", [torch.load(official, weights_only=True)], ["x"])
    stored = torch.load(out, weights_only=True)["state_dict"]
    assert stored.keys() == direct.state_dict.keys()
    assert all(torch.equal(stored[k], direct.state_dict[k]) for k in stored)
