"""`deploy.compile`: the per-frame conv rewrite keeps the function, the ONNX Runtime path writes
an optimised graph that still matches PyTorch, and targets that cannot run here say why."""

from __future__ import annotations

import importlib.util

import onnx
import pytest
import torch
from torch import nn

from deploy.compile import (
    FrameConv2d,
    compile_model,
    compile_onnxruntime,
    compile_tensorrt,
    frame_convs_as_2d,
)
from deploy.engines.base import BackendUnavailable, EngineError
from deploy.engines.onnxruntime_engine import OnnxRuntimeEngine
from deploy.export import parity, read_sidecar


@pytest.mark.parametrize("name", ["c2d_r18", "ap3d_r18"])
def test_frame_convs_as_2d_computes_the_same_embedding(small_model, name):
    model = small_model(name)
    x = torch.randn(2, 3, 4, 64, 32, generator=torch.Generator().manual_seed(0))
    keys = list(model.state_dict())
    temporal = sum(isinstance(m, nn.Conv3d) and m.kernel_size[0] > 1 for m in model.modules())
    with torch.no_grad():
        before = model(x)
        replaced = frame_convs_as_2d(model)
        after = model(x)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)
    assert replaced > 0 and sum(isinstance(m, FrameConv2d) for m in model.modules()) == replaced
    # Temporal kernels (P3D's 3x1x1, APM's) stay 3-D; parameters keep their names.
    assert sum(isinstance(m, nn.Conv3d) and m.kernel_size[0] > 1 for m in model.modules()) == (
        temporal
    )
    assert not any(isinstance(m, nn.Conv3d) and m.kernel_size[0] == 1 for m in model.modules())
    assert list(model.state_dict()) == keys


def test_frame_conv_is_a_view_in_channels_last_3d():
    conv = nn.Conv3d(8, 16, (1, 3, 3), (1, 2, 2), (0, 1, 1), bias=True)
    frame = FrameConv2d(conv)
    x = torch.randn(2, 8, 3, 10, 6).contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(frame(x), conv(x), rtol=1e-4, atol=1e-5)
    frames = x.transpose(1, 2).reshape(6, 8, 10, 6)
    assert frames.data_ptr() == x.data_ptr()  # no copy before the 2-D conv


def test_onnxruntime_compile_writes_an_optimised_graph_that_still_matches(
    small_model, clips, tmp_path
):
    model = small_model("ap3d_r18")
    result = compile_onnxruntime(model, model_name="ap3d_r18", out_dir=tmp_path, clip_len=4)
    plain, optimised = tmp_path / "ap3d_r18.onnx", tmp_path / "ap3d_r18.opt.onnx"
    assert result.path == optimised and optimised.is_file()
    assert read_sidecar(optimised).clip_len == 4
    nodes = {p: len(onnx.load(str(p)).graph.node) for p in (plain, optimised)}
    assert nodes[optimised] < nodes[plain]  # BatchNorms folded into the convolutions
    assert result.details["min_cosine"] > 0.9999
    with OnnxRuntimeEngine(optimised, max_batch=3) as engine:
        report = parity(model, engine, clips(3, 4, seed=5))
    assert report.min_cosine > 0.9999 and report.max_abs < 1e-3


def test_compile_model_refuses_unknown_targets(tmp_path):
    with pytest.raises(EngineError, match="onnxruntime"):
        compile_model("openvino", model_name="c2d_r18", out_dir=tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT present")
def test_tensorrt_compile_without_tensorrt_fails_before_exporting(small_model, tmp_path):
    with pytest.raises(BackendUnavailable, match="pip install tensorrt"):
        compile_tensorrt(
            small_model("c2d_r18"), model_name="c2d_r18", out_dir=tmp_path, cache_dir=tmp_path
        )
    assert list(tmp_path.iterdir()) == []
