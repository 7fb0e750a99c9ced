"""The openvino engine on small IR files written here with OpenVINO's own API, in the layout of
Intel's person-reidentification-retail models (1x3x256x128 BGR 0..255 in, 256-d out), and on the
real OSNet converted to IR, against ONNX Runtime on the real crops."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from deploy.engines import BackendUnavailable, EngineError, create_engine

ov = pytest.importorskip("openvino")

# ov.convert_model traces a torch module with torch.jit.trace.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.trace.*` is deprecated:FutureWarning")


class _IntelLikeReid(nn.Module):
    """BGR 0..255 pixels -> 256-d, normalising inside the graph as Intel's models do; its first
    conv weighs the channels differently, so feeding RGB instead of BGR changes the output."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d((4, 2)), nn.Flatten()
        )
        self.head = nn.Linear(64, 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features((x - 110.0) / 60.0))


def _save_ir(model: nn.Module, path: Path, shape: tuple[int, ...]) -> Path:
    converted = ov.convert_model(model.eval(), example_input=torch.zeros(shape), input=[shape])
    ov.save_model(converted, str(path), compress_to_fp16=False)
    assert path.with_suffix(".bin").is_file()
    return path


@pytest.fixture(scope="module")
def intel_like(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, nn.Module]:
    torch.manual_seed(0)
    model = _IntelLikeReid()
    path = tmp_path_factory.mktemp("ir") / "person-reidentification-retail-like.xml"
    return _save_ir(model, path, (1, 3, 256, 128)), model


def _reference(model: nn.Module, crops: np.ndarray) -> np.ndarray:
    """The model on (N, 256, 128, 3) RGB crops given as BGR 0..255, rows L2-normalised."""
    bgr = torch.from_numpy(np.ascontiguousarray(crops[..., ::-1])).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        out = model(bgr).numpy()
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_an_intel_layout_ir_embeds_bgr_raw_pixels_with_a_dynamic_batch(intel_like):
    path, model = intel_like
    crops = np.random.default_rng(0).integers(0, 256, (5, 256, 128, 3), dtype=np.uint8)
    with create_engine("openvino", onnx_path=path, max_batch=4) as engine:
        assert engine.cfg.input_size == (3, 256, 128) and engine.embedding_dim == 256
        assert engine._fixed_batch is None  # batch 1 in the file, made dynamic
        embedding = engine.embed(crops[:, None])
    expected = _reference(model, crops)
    assert np.abs(embedding - expected).max() < 1e-4
    as_rgb = _reference(model, np.ascontiguousarray(crops[..., ::-1]))
    assert np.abs(as_rgb - expected).max() > 1e-2  # the channel order is pinned by the test


def test_a_fixed_batch_and_several_frames_per_clip_give_the_same_mean(intel_like):
    path, model = intel_like
    crops = np.random.default_rng(1).integers(0, 256, (3, 2, 256, 128, 3), dtype=np.uint8)
    frames = _reference(model, crops.reshape(6, 256, 128, 3)).reshape(3, 2, -1).mean(axis=1)
    expected = frames / np.linalg.norm(frames, axis=1, keepdims=True)
    for fixed in (False, True):
        with create_engine("openvino", onnx_path=path, fixed_batch=fixed) as engine:
            assert (engine._fixed_batch == 1) is fixed
            assert np.abs(engine.embed(crops) - expected).max() < 1e-4


def test_auto_runs_an_ir_on_openvino_and_external_onnx_refuses_it_by_name(intel_like):
    path, _ = intel_like
    with create_engine("auto", onnx_path=path, intra_op_threads=1, compile=False) as engine:
        assert engine.name == "openvino"
    with pytest.raises(EngineError, match=r"OpenVINO IR.*reid.engine=openvino"):
        create_engine("external-onnx", onnx_path=path)


def test_an_ir_without_its_weights_is_refused(intel_like, tmp_path):
    path, _ = intel_like
    lone = tmp_path / path.name
    lone.write_bytes(path.read_bytes())
    with pytest.raises(EngineError, match=r"needs its weights .*\.bin"):
        create_engine("openvino", onnx_path=lone)


def test_without_openvino_the_refusal_names_the_extra(intel_like, monkeypatch):
    path, _ = intel_like
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a)
    )
    with pytest.raises(BackendUnavailable, match=r"reidstream\[openvino\]"):
        create_engine("openvino", onnx_path=path)
    monkeypatch.setitem(sys.modules, "openvino", None)  # `import openvino` raises ImportError
    from deploy.engines.openvino_engine import OpenVinoEngine

    with pytest.raises(BackendUnavailable, match=r"reidstream\[openvino\]"):
        OpenVinoEngine(path)


def test_real_osnet_as_ir_agrees_with_onnx_runtime_on_the_real_crops(
    osnet_onnx, reid_crop_files, tmp_path
):
    ir = tmp_path / "osnet_x0_25_msmt17.xml"
    ov.save_model(ov.convert_model(str(osnet_onnx)), str(ir), compress_to_fp16=False)
    crops = np.stack([cv2.imread(str(p))[..., ::-1] for p in reid_crop_files])[:, None]
    with create_engine("external-onnx", onnx_path=osnet_onnx, intra_op_threads=1) as ort:
        expected = ort.embed(crops)
        cfg = ort.cfg
    with create_engine("openvino", onnx_path=ir, color="rgb", cfg=cfg) as engine:
        got = engine.embed(crops)
    with create_engine("openvino", onnx_path=osnet_onnx) as from_onnx:  # torchreid defaults
        same_file = from_onnx.embed(crops)
    assert (got * expected).sum(axis=1).min() > 0.9999
    assert (same_file * expected).sum(axis=1).min() > 0.9999
    assert (expected @ expected.T)[~np.eye(len(crops), dtype=bool)].max() < 0.75  # not trivial
