"""Export: ONNX with a dynamic batch axis and the sidecar the engines read, the clip length a
model exports at, TorchScript, and `parity` (which must also see a mismatch)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from deploy.engines import EngineError, create_engine
from deploy.engines.torch_engine import TorchEngine, load_model
from deploy.export import (
    SIDECAR_SCHEMA,
    export_clip_len,
    export_onnx,
    export_torchscript,
    parity,
    read_sidecar,
    write_sidecar,
)
from reid_models import model_spec

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*TorchScript-based ONNX export"),
    pytest.mark.filterwarnings("ignore:The feature will be removed"),
]


@pytest.fixture(scope="module")
def ap3d(small_model):
    return small_model("ap3d_r18")


@pytest.fixture(scope="module")
def ap3d_onnx(ap3d, tmp_path_factory):
    return export_onnx(ap3d, tmp_path_factory.mktemp("ap3d") / "ap3d.onnx", model_name="ap3d_r18")


def test_onnx_graph_has_a_dynamic_batch_and_the_exported_clip_length(ap3d_onnx):
    graph = onnx.load(str(ap3d_onnx)).graph
    (clips,), (embedding,) = graph.input, graph.output
    dims = [d.dim_param or d.dim_value for d in clips.type.tensor_type.shape.dim]
    assert (clips.name, dims) == ("clips", ["batch", 3, 4, 64, 32])
    out = [d.dim_param or d.dim_value for d in embedding.type.tensor_type.shape.dim]
    assert (embedding.name, out) == ("embedding", ["batch", 512])


def test_sidecar_round_trips_the_pretrained_cfg(ap3d, ap3d_onnx):
    document = json.loads(ap3d_onnx.with_suffix(".json").read_text())
    assert document["schema"] == SIDECAR_SCHEMA
    sidecar = read_sidecar(ap3d_onnx)
    assert sidecar.cfg == ap3d.pretrained_cfg
    assert (sidecar.model_name, sidecar.clip_len, sidecar.embedding_dim) == ("ap3d_r18", 4, 512)
    assert (sidecar.input_name, sidecar.output_name) == ("clips", "embedding")


def test_graph_runs_any_batch_size(ap3d, ap3d_onnx, clips):
    engine = create_engine("onnxruntime", onnx_path=ap3d_onnx, max_batch=5, intra_op_threads=1)
    for batch in (1, 5):
        assert parity(ap3d, engine, clips(batch, 4, seed=batch)).min_cosine >= 0.9999


def test_bad_sidecars_are_engine_errors(tmp_path, ap3d):
    path = tmp_path / "model.onnx"
    with pytest.raises(EngineError, match=r"model.json is missing"):
        read_sidecar(path)
    write_sidecar(path, model_name="x", cfg=ap3d.pretrained_cfg, clip_len=4, embedding_dim=512)
    document = json.loads(path.with_suffix(".json").read_text())
    path.with_suffix(".json").write_text(json.dumps(document | {"schema": "other/9"}))
    with pytest.raises(EngineError, match="schema 'other/9'"):
        read_sidecar(path)
    del document["clip_len"]
    path.with_suffix(".json").write_text(json.dumps(document))
    with pytest.raises(EngineError, match="not a valid engine sidecar: 'clip_len'"):
        read_sidecar(path)


def test_clip_length_at_export(small_model):
    m3d = small_model("m3d_r50", clip_len=16)  # built for T=16: its temporal stream takes 16 only
    assert export_clip_len(m3d) == 16
    with pytest.raises(EngineError, match="built for clip_len=16 and exports at that length"):
        export_clip_len(m3d, 8)
    assert export_clip_len(small_model("m3d_r50", stream="spatial"), 3) == 3  # any T
    ap3d = small_model("ap3d_r18")
    ap3d.pretrained_cfg = ap3d.pretrained_cfg.with_changes(test_clip_len=6)
    assert (export_clip_len(ap3d), export_clip_len(ap3d, 2)) == (6, 2)
    with pytest.raises(EngineError, match="shorter than PersonVLAD's minimum of 16 frames"):
        export_clip_len(small_model("personvlad_c3d"), 8)


def test_m3d_exports_at_its_build_length(small_model, clips, tmp_path):
    m3d = small_model("m3d_r50")  # built for T=8
    m3d.pretrained_cfg = m3d.pretrained_cfg.with_changes(test_clip_len=4)  # ignored: T is fixed
    path = export_onnx(m3d, tmp_path / "m3d.onnx", model_name="m3d_r50")
    assert read_sidecar(path).clip_len == 8
    engine = create_engine("onnxruntime", onnx_path=path, intra_op_threads=1)
    assert engine.clip_len == 8
    assert parity(m3d, engine, clips(2, 8)).min_cosine >= 0.9999


def test_torchscript_export_runs_in_the_torch_engine(ap3d, clips, tmp_path):
    path = export_torchscript(ap3d, tmp_path / "ap3d.pt", model_name="ap3d_r18")
    engine = create_engine("torch", checkpoint=path, max_batch=2)
    assert isinstance(engine, TorchEngine) and engine.clip_len == 4
    assert engine.cfg == ap3d.pretrained_cfg
    assert parity(ap3d, engine, clips(3, 4)).min_cosine >= 0.9999


def test_parity_reports_a_different_model(small_model, clips):
    batch = clips(2, 4)
    report = parity(
        small_model("c2d_r18", seed=0), TorchEngine(small_model("c2d_r18", seed=1)), batch
    )
    assert report.min_cosine < 0.99 and report.max_abs > 0.01
    same = parity(small_model("c2d_r18"), TorchEngine(small_model("c2d_r18")), batch)
    assert same.min_cosine > 0.99999 and same.max_abs < 1e-5
    assert np.isclose(same.mean_cosine, 1.0, atol=1e-5)


def test_export_of_a_checkpoint_carries_its_trained_cfg(small_model, clips, tmp_path):
    """A model built from a checkpoint's spec exports with the cfg it was trained with."""
    trained = small_model("ap3d_r18", seed=4, base_width=8)
    checkpoint = tmp_path / "best.pt"
    state = {"state_dict": trained.state_dict(), "model": model_spec(trained)}
    torch.save({"format": "reidstream.weights/1", **state}, checkpoint)
    model = load_model(checkpoint=checkpoint)
    path = export_onnx(model, tmp_path / "ap3d.onnx", model_name=model.model_name)
    sidecar = read_sidecar(path)
    assert sidecar.cfg == trained.pretrained_cfg and sidecar.cfg.input_size == (3, 64, 32)
    assert sidecar.model_name == "ap3d_r18" and sidecar.embedding_dim == 64
    assert sidecar.clip_len == trained.pretrained_cfg.test_clip_len
    engine = create_engine("onnxruntime", onnx_path=path, max_batch=2)
    assert parity(trained, engine, clips(2, sidecar.clip_len)).min_cosine >= 0.9999
