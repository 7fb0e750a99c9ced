"""Engines: parity with eager fp32 for every registered model, preprocessing, the registry and
`auto`, checkpoints, errors, and the `reid` settings that build an engine.

Parity runs each model once per engine on the same clips (80x40 crops, resized to the models'
64x32 by each engine) and compares with the model run eagerly in fp32 on the CPU. A model and its
ONNX export are built once per model (module-scoped fixture) and shared by the engines' tests.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from deploy.engines import (
    BackendUnavailable,
    EngineError,
    NonFiniteEmbedding,
    available_engines,
    create_engine,
    engine_class,
    list_engines,
    preprocess,
)
from deploy.engines.onnxruntime_engine import OnnxRuntimeEngine
from deploy.engines.torch_engine import TorchEngine, load_checkpoint
from deploy.export import export_onnx, parity, write_sidecar
from reid_models import create_model, list_models, model_spec
from reid_models.base import ReIDModel
from reid_models.c3d import C3D_MEAN_RGB, C3D_STD
from reid_models.pretrained import IMAGENET_MEAN, IMAGENET_STD, PretrainedCfg

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*TorchScript-based ONNX export"),
    pytest.mark.filterwarnings("ignore:The feature will be removed"),
]

CPU_THREADS = 1  # the suite shares the machine; one thread per session is plenty at 64x32
ENGINE_BAR = 0.9999  # fp32 engines: cosine with eager fp32
LOW_PRECISION_BAR = 0.999  # fp16 / bf16 autocast on a GPU
HAS_CUDA_ORT = "CUDAExecutionProvider" in ort.get_available_providers()


@dataclasses.dataclass
class Case:
    """One model with its test clips and, once asked for, its ONNX export."""

    name: str
    model: ReIDModel
    clips: np.ndarray
    folder: Path
    _onnx: Path | None = None

    @property
    def onnx(self) -> Path:
        if self._onnx is None:
            self._onnx = export_onnx(
                self.model, self.folder / f"{self.name}.onnx", model_name=self.name
            )
        return self._onnx


@pytest.fixture(scope="module", params=list_models())
def case(request, small_model, clips, tmp_path_factory) -> Case:
    torch.set_num_threads(CPU_THREADS)
    model = small_model(request.param)
    t = model.pretrained_cfg.test_clip_len
    return Case(request.param, model, clips(3, t, seed=7), tmp_path_factory.mktemp(request.param))


def check(report, bar: float = ENGINE_BAR) -> None:
    assert report.min_cosine >= bar, report


# --------------------------------------------------------------------------- parity, every model


def test_torch_eager_fp32_matches_the_model(case):
    check(parity(case.model, TorchEngine(case.model, max_batch=2), case.clips))


def test_torch_channels_last_matches_the_model(case):
    engine = TorchEngine(case.model, max_batch=4, channels_last=True)
    check(parity(case.model, engine, case.clips))


def test_onnxruntime_cpu_matches_the_model(case):
    engine = create_engine(
        "onnxruntime",
        onnx_path=case.onnx,
        model=case.name,
        max_batch=2,
        intra_op_threads=CPU_THREADS,
    )
    assert engine.clip_len == case.model.pretrained_cfg.test_clip_len
    assert engine.embedding_dim == case.model.embedding_dim
    check(parity(case.model, engine, case.clips))


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_torch_cuda_low_precision_matches_the_model(case, precision):
    engine = TorchEngine(case.model, device="cuda", precision=precision, channels_last=True)
    check(parity(case.model, engine, case.clips), LOW_PRECISION_BAR)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA_ORT, reason="onnxruntime has no CUDAExecutionProvider")
def test_onnxruntime_cuda_with_io_binding_matches_the_model(case):
    engine = create_engine("onnxruntime", onnx_path=case.onnx, device="cuda")
    check(parity(case.model, engine, case.clips))


@pytest.mark.slow
@pytest.mark.parametrize(("name", "mode"), [("c2d_r18", "default"), ("ap3d_r18", "default")])
def test_torch_compile_matches_the_model(small_model, clips, name, mode):
    model = small_model(name)
    batch = clips(3, model.pretrained_cfg.test_clip_len, seed=3)
    engine = TorchEngine(model, max_batch=4, compile=True, compile_mode=mode)
    check(parity(model, engine, batch))  # 3 clips run padded to the bucket of 4


@pytest.mark.gpu
@pytest.mark.slow
def test_torch_compile_with_cuda_graphs_matches_the_model(small_model, clips):
    model = small_model("ap3d_r18")
    engine = TorchEngine(model, device="cuda", compile=True, compile_mode="reduce-overhead")
    for seed in (1, 2):  # the second call replays the captured graph
        check(parity(model, engine, clips(3, 4, seed=seed)))


# ---------------------------------------------------------------------------------- preprocessing


def test_preprocess_normalises_a_flat_image_to_the_cfg_values():
    cfg = PretrainedCfg(paper="test", input_size=(3, 16, 8))
    clips = torch.full((2, 3, 40, 20, 3), 0, dtype=torch.uint8)
    clips[..., 0], clips[..., 1], clips[..., 2] = 255, 128, 0
    x = preprocess(clips, cfg, device="cpu")
    assert x.shape == (2, 3, 3, 16, 8) and x.dtype == torch.float32
    expected = (np.array([255, 128, 0]) / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(x.mean(dim=(0, 2, 3, 4)).numpy(), expected, rtol=1e-5)
    assert x.std(dim=(0, 2, 3, 4)).max() < 1e-5


def test_preprocess_gives_c3d_models_0_255_pixels_minus_the_mean():
    cfg = PretrainedCfg(paper="test", input_size=(3, 8, 4), mean=C3D_MEAN_RGB, std=C3D_STD)
    clips = torch.full((1, 1, 8, 4, 3), 200, dtype=torch.uint8)
    x = preprocess(clips, cfg, device="cpu")
    expected = 200 - np.array(C3D_MEAN_RGB) * 255
    np.testing.assert_allclose(x[0, :, 0, 0, 0].numpy(), expected, rtol=1e-5)


def test_preprocess_antialiases_when_shrinking():
    # Alternating black and white columns, 3x narrower: plain bilinear sampling lands on whole
    # source columns (0, 1, 0, ...: stripes); an antialiased shrink averages them to grey.
    cfg = PretrainedCfg(paper="test", input_size=(3, 8, 8), mean=(0, 0, 0), std=(1, 1, 1))
    clips = torch.zeros((1, 1, 8, 24, 3), dtype=torch.uint8)
    clips[:, :, :, ::2] = 255
    x = preprocess(clips, cfg, device="cpu")
    np.testing.assert_allclose(x[..., 1:-1].numpy(), 0.5, atol=0.1)


def test_preprocess_keeps_frame_order_and_layout():
    cfg = PretrainedCfg(paper="test", input_size=(3, 4, 2), mean=(0, 0, 0), std=(1, 1, 1))
    clips = torch.zeros((2, 3, 4, 2, 3), dtype=torch.uint8)
    for b in range(2):
        for t in range(3):
            clips[b, t, ..., 1] = 10 * b + t  # green channel encodes (clip, frame)
    x = preprocess(clips, cfg, device="cpu")
    assert torch.equal(x[:, 1, :, 0, 0] * 255, torch.tensor([[0.0, 1, 2], [10, 11, 12]]))
    assert x[:, 0].abs().max() == 0 and x[:, 2].abs().max() == 0


# ------------------------------------------------------------------------------- engine behaviour


@pytest.fixture(scope="module")
def c2d(small_model) -> ReIDModel:
    return small_model("c2d_r18")


def test_batches_above_max_batch_are_split_without_changing_results(c2d, clips):
    batch = clips(5, 4, seed=1)
    whole = TorchEngine(c2d, max_batch=8).embed(batch)
    split = TorchEngine(c2d, max_batch=2).embed(batch)
    np.testing.assert_allclose(split, whole, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(whole, axis=1), 1.0, rtol=1e-5)
    assert whole.dtype == np.float32 and whole.shape == (5, c2d.embedding_dim)


def test_torch_tensor_input_and_any_crop_size(c2d, clips):
    engine = TorchEngine(c2d)
    small, large = clips(2, 4, 40, 20, seed=2), clips(2, 4, 200, 100, seed=2)
    np.testing.assert_allclose(engine.embed(torch.from_numpy(small)), engine.embed(small))
    assert engine.embed(large).shape == (2, c2d.embedding_dim)
    assert engine.embed(np.zeros((0, 4, 8, 4, 3), np.uint8)).shape == (0, c2d.embedding_dim)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((2, 4, 8, 4, 3), np.float32), "uint8"),
        (torch.zeros((2, 4, 8, 4, 3), dtype=torch.int64), "uint8"),
        (np.zeros((4, 8, 4, 3), np.uint8), r"\(B, T, H, W, 3\)"),
        (np.zeros((2, 4, 8, 4, 4), np.uint8), r"got \(2, 4, 8, 4, 4\)"),
        ([[0]], "numpy array or torch tensor"),
    ],
)
def test_wrong_input_is_refused_with_what_was_expected(c2d, bad, message):
    with pytest.raises(EngineError, match=message):
        TorchEngine(c2d).embed(bad)


def test_clip_length_contracts(small_model, case_free_onnx, clips):
    with pytest.raises(EngineError, match="at least T=16 frames, got T=8"):
        TorchEngine(small_model("personvlad_c3d")).embed(clips(1, 8))
    with pytest.raises(EngineError, match="exactly T=8 frames, got T=4"):
        TorchEngine(small_model("m3d_r50")).embed(clips(1, 4))
    engine = create_engine("onnxruntime", onnx_path=case_free_onnx, intra_op_threads=1)
    with pytest.raises(EngineError, match="exactly T=4 frames, got T=5"):
        engine.embed(clips(1, 5))


@pytest.fixture(scope="module")
def case_free_onnx(c2d, tmp_path_factory) -> Path:
    return export_onnx(c2d, tmp_path_factory.mktemp("c2d") / "c2d.onnx", model_name="c2d_r18")


def test_nan_rows_are_named_torch(log_mean_model):
    clips = np.full((5, 2, 8, 4, 3), 255, np.uint8)
    clips[[1, 3]] = 0  # below the mean pixel: log of a negative mean
    with pytest.raises(NonFiniteEmbedding, match=r"row\(s\) \[1, 3\] of 5") as info:
        TorchEngine(log_mean_model, max_batch=2).embed(clips)
    assert info.value.rows == (1, 3)
    # The other rows come with the error, normalised as embed returns them.
    rows = info.value.embeddings
    assert np.isnan(rows[[1, 3]]).any(axis=1).all()
    np.testing.assert_allclose(np.linalg.norm(rows[[0, 2, 4]], axis=1), 1.0, rtol=1e-5)


def test_nan_rows_are_named_onnxruntime(tmp_path):
    # A hand-built graph: embedding = Log(ReduceMean(clips over T, H, W)), (N, 3).
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["clips"], ["mean"], axes=[2, 3, 4], keepdims=0),
            helper.make_node("Log", ["mean"], ["embedding"]),
        ],
        "log_mean",
        [helper.make_tensor_value_info("clips", TensorProto.FLOAT, ["N", 3, 2, 8, 4])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 3])],
    )
    path = tmp_path / "log_mean.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    cfg = PretrainedCfg(paper="test", input_size=(3, 8, 4), embedding_dim=3)
    write_sidecar(path, model_name="log_mean", cfg=cfg, clip_len=2, embedding_dim=3)
    clips = np.full((3, 2, 8, 4, 3), 255, np.uint8)
    clips[2] = 0
    engine = OnnxRuntimeEngine(path, max_batch=2)
    with pytest.raises(NonFiniteEmbedding, match=r"row\(s\) \[2\] of 3") as info:
        engine.embed(clips)
    assert info.value.rows == (2,)
    assert np.isfinite(engine.embed(clips[:2])).all()


def test_corrupt_or_missing_onnx_is_an_engine_error(tmp_path, case_free_onnx):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(case_free_onnx.read_bytes()[:5000])
    with pytest.raises(EngineError, match=r"ONNX Runtime cannot load .*corrupt\.onnx"):
        create_engine("onnxruntime", onnx_path=corrupt)
    with pytest.raises(EngineError, match="does not exist"):
        create_engine("onnxruntime", onnx_path=tmp_path / "absent.onnx")
    lone = tmp_path / "lone.onnx"
    lone.write_bytes(case_free_onnx.read_bytes())
    with pytest.raises(EngineError, match=r"lone.json is missing"):
        create_engine("onnxruntime", onnx_path=lone)
    with pytest.raises(EngineError, match="exported from 'c2d_r18', but model='ap3d_r18'"):
        create_engine("onnxruntime", onnx_path=case_free_onnx, model="ap3d_r18")


# ------------------------------------------------------------------------------------ checkpoints


@pytest.mark.parametrize("layout", ["trainer", "state_dict", "plain_data_parallel"])
def test_checkpoint_layouts_load_into_a_fresh_model(small_model, clips, tmp_path, layout):
    trained = small_model("c2d_r18", seed=5)
    state = trained.state_dict()
    obj = {
        "trainer": {"model": state, "config": {"model": "c2d_r18", "lr": 3.5e-4}},
        "state_dict": {"state_dict": state},
        "plain_data_parallel": {f"module.{k}": v for k, v in state.items()},
    }[layout]
    torch.save(obj, tmp_path / "ckpt.pth")
    engine = create_engine("torch", model="c2d_r18", checkpoint=tmp_path / "ckpt.pth")
    engine.cfg = trained.pretrained_cfg  # the test's small input size
    check(parity(trained, engine, clips(2, 4)))


def test_checkpoint_with_a_classifier_loads_into_the_retrieval_model(small_model, tmp_path):
    with_classifier = small_model("c2d_r18", num_classes=7)
    torch.save({"model": with_classifier.state_dict()}, tmp_path / "ckpt.pth")
    load_checkpoint(small_model("c2d_r18", seed=9), tmp_path / "ckpt.pth")


def test_bad_checkpoints_are_engine_errors(small_model, tmp_path):
    with pytest.raises(EngineError, match=r"checkpoint .*absent.pth does not exist"):
        create_engine("torch", model="c2d_r18", checkpoint=tmp_path / "absent.pth")
    torch.save({"model": small_model("c2d_r18").state_dict()}, tmp_path / "c2d.pth")
    with pytest.raises(EngineError, match=r"lacks \d+ of the model's tensors"):
        create_engine("torch", model="ap3d_r18", checkpoint=tmp_path / "c2d.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a pickle")
    with pytest.raises(EngineError, match=r"not readable by torch\.load"):
        create_engine("torch", model="c2d_r18", checkpoint=tmp_path / "junk.pth")
    with pytest.raises(EngineError, match="unknown model 'c2d_r17'"):
        create_engine("torch", model="c2d_r17")


def _spec_checkpoint(model, path: Path, *, half: bool = False) -> Path:
    """`model` saved as ``reidstream train`` saves best.pt: weights, config and model spec."""
    state = model.state_dict()
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    spec = model_spec(model)
    torch.save({"format": "reidstream.weights/1", "state_dict": state, "model": spec}, path)
    return path


@pytest.fixture
def narrow_ap3d(small_model):
    """A narrow ap3d_r18 fed 64x32 crops and 4-frame test clips (the builder says 256x128, 32)."""
    model = small_model("ap3d_r18", seed=3, base_width=8)
    assert model.pretrained_cfg.input_size == (3, 64, 32)
    return model


@pytest.mark.parametrize("name", [None, "ap3d_r18"])
def test_a_checkpoint_with_a_model_spec_rebuilds_its_model(narrow_ap3d, clips, tmp_path, name):
    path = _spec_checkpoint(narrow_ap3d, tmp_path / "best.pt")
    engine = create_engine("torch", model=name, checkpoint=path, max_batch=2)
    assert engine.cfg == narrow_ap3d.pretrained_cfg  # fed as it was trained
    assert engine.model.model_overrides == {"base_width": 8}
    batch = clips(3, 4)
    reference = torch.nn.functional.normalize(
        narrow_ap3d(preprocess(torch.from_numpy(batch), narrow_ap3d.pretrained_cfg, device="cpu")),
        dim=1,
    )
    np.testing.assert_allclose(engine.embed(batch), reference.detach().numpy(), rtol=0, atol=1e-6)


def test_half_precision_checkpoint_runs_in_float32(narrow_ap3d, clips, tmp_path):
    path = _spec_checkpoint(narrow_ap3d, tmp_path / "half.pt", half=True)
    engine = create_engine("torch", checkpoint=path, max_batch=2)
    assert all(p.dtype == torch.float32 for p in engine.model.parameters())
    check(parity(narrow_ap3d, engine, clips(3, 4)), bar=0.999)


def test_a_checkpoint_of_another_model_or_width_is_refused(narrow_ap3d, tmp_path):
    path = _spec_checkpoint(narrow_ap3d, tmp_path / "best.pt")
    expected = (
        r"holds a 'ap3d_r18' model \(its model spec says so\), not 'c2d_r18': set the model "
        r"to 'ap3d_r18', or to none"
    )
    with pytest.raises(EngineError, match=expected):
        create_engine("torch", model="c2d_r18", checkpoint=path)
    with pytest.raises(EngineError, match=r"overrides \{'base_width': 16\} contradict them"):
        create_engine(
            "torch", model="ap3d_r18", checkpoint=path, model_overrides={"base_width": 16}
        )
    with pytest.raises(EngineError, match=expected):
        load_checkpoint(create_model("c2d_r18", base_width=8), path)


def test_a_checkpoint_without_a_spec_needs_the_models_name(narrow_ap3d, clips, tmp_path):
    """Checkpoints written before model specs load as before, given the name and overrides."""
    path = tmp_path / "old.pt"
    torch.save({"format": "reidstream.weights/1", "state_dict": narrow_ap3d.state_dict()}, path)
    with pytest.raises(EngineError, match=r"old\.pt carries no model spec .* registry name"):
        create_engine("torch", checkpoint=path)
    engine = create_engine(
        "torch", model="ap3d_r18", checkpoint=path, model_overrides={"base_width": 8}
    )
    assert engine.cfg.input_size == (3, 256, 128)  # the builder's: the file does not say
    engine.cfg = narrow_ap3d.pretrained_cfg
    check(parity(narrow_ap3d, engine, clips(2, 4)))


# ------------------------------------------------------------------------------- registry, auto


def test_registry_names_and_unknown_engine():
    assert list_engines() == [
        "auto",
        "torch",
        "onnxruntime",
        "tensorrt",
        "external-onnx",
        "openvino",
    ]
    with pytest.raises(EngineError, match=r"unknown engine 'tvm'.*onnxruntime"):
        create_engine("tvm", model="c2d_r18")


def test_available_engines_follow_the_auto_order():
    assert available_engines("cpu")[-2:] == ["onnxruntime", "torch"]
    cuda = available_engines("cuda")
    assert ("torch" in cuda) == torch.cuda.is_available()
    assert ("onnxruntime" in cuda) == HAS_CUDA_ORT
    order = ["tensorrt", "onnxruntime", "torch"]
    assert cuda == [name for name in order if name in cuda]


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("tensorrt") is not None, reason="TensorRT installed"
)
def test_tensorrt_without_tensorrt_says_how_to_install_it(case_free_onnx):
    with pytest.raises(BackendUnavailable, match="pip install tensorrt"):
        create_engine("tensorrt", onnx_path=case_free_onnx, device="cuda")
    with pytest.raises(BackendUnavailable, match="pip install tensorrt"):
        engine_class("tensorrt")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback of a CUDA-less host")
def test_cuda_without_cuda_is_backend_unavailable(c2d, case_free_onnx):
    with pytest.raises(BackendUnavailable, match="CUDA build of torch"):
        TorchEngine(c2d, device="cuda")
    if not HAS_CUDA_ORT:
        with pytest.raises(BackendUnavailable, match="onnxruntime-gpu"):
            create_engine("onnxruntime", onnx_path=case_free_onnx, device="cuda:0")


def test_auto_prefers_onnxruntime_then_torch_and_needs_inputs(case_free_onnx):
    with_onnx = create_engine(
        "auto", model="c2d_r18", onnx_path=case_free_onnx, compile=False, intra_op_threads=1
    )
    model_only = create_engine("auto", model="c2d_r18", intra_op_threads=1)
    if not torch.cuda.is_available():
        assert with_onnx.name == "onnxruntime" and with_onnx.device == "cpu"
        assert model_only.name == "torch"
        fallback = create_engine("auto", onnx_path=case_free_onnx, device="cuda")
        assert (fallback.name, fallback.device) == ("onnxruntime", "cpu")
    with pytest.raises(EngineError, match="found no usable engine"):
        create_engine("auto")


def test_torch_engine_refuses_what_it_cannot_run(c2d, case_free_onnx):
    with pytest.raises(EngineError, match="int8 needs the tensorrt engine"):
        TorchEngine(c2d, precision="int8")
    with pytest.raises(EngineError, match="compile_mode 'fast'"):
        TorchEngine(c2d, compile=True, compile_mode="fast")
    with pytest.raises(EngineError, match="not the ONNX file"):
        create_engine("torch", model="c2d_r18", onnx_path=case_free_onnx)
    with pytest.raises(EngineError, match="fp16 needs tensorrt_provider"):
        create_engine("onnxruntime", onnx_path=case_free_onnx, precision="fp16")


# -------------------------------------------------------------------------------------- settings
