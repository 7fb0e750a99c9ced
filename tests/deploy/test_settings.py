"""The `reid` section: its defaults, its checks, and the options it gives each engine."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from deploy.engines import create_engine, engine_class
from deploy.export import export_onnx
from deploy.settings import ReidEngineConfig, TensorRTConfig


@pytest.fixture(scope="module")
def c2d_onnx(small_model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("c2d") / "c2d.onnx"
    return export_onnx(small_model("c2d_r18"), path, model_name="c2d_r18")


def test_defaults_and_the_options_each_engine_takes(c2d_onnx):
    cfg = ReidEngineConfig()
    assert (cfg.engine, cfg.model, cfg.precision, cfg.max_batch) == ("auto", None, "fp32", 32)
    assert cfg.tensorrt.min_batch <= cfg.tensorrt.opt_batch
    for name in ("torch", "onnxruntime", "external-onnx"):
        chosen = ReidEngineConfig(engine=name)
        create = inspect.signature(engine_class(name).create).parameters
        own = {k: v for k, v in chosen.options(device="cpu").items() if k not in create}
        # every option the section gives is one the engine's constructor takes
        inspect.signature(engine_class(name).__init__).bind_partial(None, **own)
    chosen = ReidEngineConfig(engine="onnxruntime", onnx_path=c2d_onnx, model="c2d_r18")
    assert chosen.missing() == []
    engine = create_engine(chosen.engine, **chosen.options(device="cpu"))
    assert engine.name == "onnxruntime" and engine.clip_len == 4


def test_the_default_checkpoint_applies_only_when_nothing_names_a_model():
    bundled = Path("bundled.pt")
    assert ReidEngineConfig().uses_bundled_model
    options = ReidEngineConfig().options(device="cpu", default_checkpoint=bundled)
    assert options["checkpoint"] == bundled and options["model"] is None
    named = ReidEngineConfig(model="c2d_r18", checkpoint=Path("mine.pt"))
    assert not named.uses_bundled_model
    assert named.options(device="cpu", default_checkpoint=bundled)["checkpoint"] == Path("mine.pt")
    assert ReidEngineConfig(device="cuda:1").options(device="cpu")["device"] == "cuda:1"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"engine": "tvm"}, "engine = 'tvm'"),
        ({"model": "ap3d"}, "model = 'ap3d'"),
        ({"engine": "torch", "precision": "int8"}, "precision = 'int8' needs engine = 'tensorrt'"),
    ],
)
def test_the_section_is_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ReidEngineConfig(**kwargs)


def test_the_tensorrt_profile_is_validated():
    with pytest.raises(ValueError, match="min_batch = 8 must not exceed opt_batch = 4"):
        TensorRTConfig(min_batch=8, opt_batch=4)
    with pytest.raises(ValueError, match="max_batch = 2 must be at least opt_batch = 16"):
        TensorRTConfig(max_batch=2)
    assert ReidEngineConfig(engine="tensorrt").missing() == [
        "reid.onnx_path: the 'tensorrt' engine needs an ONNX file; none given"
    ]
