"""Every registered model: shapes, finiteness, gradient flow, determinism, frame order,
2D->3D inflation equivalence and ONNX parity.

Inputs are small (B=2, T=4 unless a model needs more, 64x32) so the module runs in minutes on two
CPU cores; the equivalences hold at any size.
"""

from __future__ import annotations

import copy
import functools
import io

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
import torchvision

from reid_models import TrainOutput, create_model, list_models, load_pretrained
from reid_models.base import ReIDModel

# The TorchScript-based exporter is the one that needs no extra package (the dynamo exporter wants
# onnxscript); its deprecation notice is not news here.
pytestmark = [
    pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export"),
    pytest.mark.filterwarnings("ignore:The feature will be removed"),
]
MODELS = list_models()
NUM_CLASSES = 5
REQUIRED = {
    "c2d_r50", "i3d_r50", "p3d_r50", "ap3d_r50", "ap_i3d_r50", "nl_ap3d_r50", "i3d_nl_r50",
    "m3d_r50", "gltr_r50", "personvlad_c3d", "c2d_r18", "ap3d_r18", "c2d_r34", "ap3d_r34",
}  # fmt: skip


def clip_batch(model: ReIDModel, batch: int = 2, *, seed: int = 0) -> torch.Tensor:
    t = max(4, model.min_clip_len)
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, model.pretrained_cfg.input_size[0], t, 64, 32, generator=gen)


@functools.cache
def _pristine(name: str) -> ReIDModel:
    torch.manual_seed(0)
    return create_model(name, num_classes=NUM_CLASSES)


def build(name: str) -> ReIDModel:
    """A fresh copy of the model (building a ResNet-50 costs more than copying one)."""
    return copy.deepcopy(_pristine(name))


def perturb_zero_init(model: ReIDModel) -> None:
    """Gives every all-zero parameter small random values, as the first updates would."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if p.count_nonzero() == 0:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)


def test_required_models_are_registered():
    assert set(MODELS) >= REQUIRED


def test_unknown_model_lists_the_registered_ones():
    with pytest.raises(KeyError, match=r"Did you mean ap3d_r50.*Registered: .*c2d_r50"):
        create_model("ap3d_r5")


@pytest.mark.parametrize("name", MODELS)
def test_eval_returns_the_embedding_and_train_the_loss_inputs(name):
    model = build(name)
    x = clip_batch(model)
    with torch.no_grad():
        embedding = model.eval()(x)
        out = model.train()(x)
    assert embedding.shape == (2, model.pretrained_cfg.embedding_dim)
    assert torch.isfinite(embedding).all()
    assert isinstance(out, TrainOutput)
    assert out.features.shape[0] == 2 and torch.isfinite(out.features).all()
    for logits in out.logits:
        assert logits.shape == (2, NUM_CLASSES) and torch.isfinite(logits).all()


@pytest.mark.parametrize("name", MODELS)
def test_retrieval_only_model_has_no_logits(name):
    model = create_model(name).train()
    x = clip_batch(model)
    with torch.no_grad():
        assert model(x).logits == ()


@pytest.mark.parametrize("name", MODELS)
def test_gradients_reach_every_trainable_parameter(name):
    model = build(name).train()
    perturb_zero_init(model)
    out = model(clip_batch(model))
    labels = torch.tensor([1, 3])
    # A fixed random direction: unlike |f|^2 it is not constant for L2-normalised features.
    direction = torch.randn(out.features.shape, generator=torch.Generator().manual_seed(5))
    ce = sum(F.cross_entropy(logits, labels) for logits in out.logits)
    loss = (out.features * direction).mean() + ce
    loss.backward()
    dead, moved = [], []
    for n, p in model.named_parameters():
        reached = p.grad is not None and p.grad.count_nonzero() > 0
        if n in model.detached_parameters:
            if reached and p.grad.abs().max() > 1e-6:  # beyond float round-off
                moved.append(n)
        elif p.requires_grad and not reached:
            dead.append(n)
    assert moved == []
    assert dead == []


@pytest.mark.parametrize("name", MODELS)
def test_eval_embedding_is_deterministic(name):
    model = build(name).eval()
    x = clip_batch(model)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x.clone()), rtol=0, atol=0)


@pytest.mark.parametrize("name", MODELS)
def test_frame_order_matters_only_for_temporal_models(name):
    model = build(name).eval()
    perturb_zero_init(model)
    x = clip_batch(model)
    with torch.no_grad():
        forward, backward = model(x), model(x.flip(2))
    change = ((forward - backward).norm(dim=1) / forward.norm(dim=1)).max().item()
    if model.order_sensitive:
        assert change > 1e-3, f"reversed clip changed the embedding by only {change:.2e}"
    else:
        assert change < 1e-5


def torchvision_trunk(depth: int, last_stride: int) -> torch.nn.Module:
    """A torchvision ResNet with non-trivial BN statistics, up to layer4."""
    tv = getattr(torchvision.models, f"resnet{depth}")()
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for m in tv.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
                m.weight.copy_(1 + torch.randn(m.num_features, generator=gen) * 0.1)
                m.bias.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
    first = tv.layer4[0]
    (first.conv2 if depth == 50 else first.conv1).stride = (last_stride, last_stride)
    first.downsample[0].stride = (last_stride, last_stride)
    return tv


INFLATABLE = [n for n in MODELS if build(n).pretrained_cfg.source_format == "torchvision_resnet"]


@pytest.mark.parametrize("name", INFLATABLE)
def test_inflated_backbone_equals_its_2d_source_on_a_static_clip(name, tmp_path):
    prefixes = _pristine(name).pretrained_cfg.backbone_prefixes
    for prefix in prefixes:
        spec = _pristine(name).get_submodule(prefix).spec
        tv = torchvision_trunk(spec.depth, spec.last_stride)
        path = tmp_path / f"resnet{spec.depth}.pth"
        torch.save(tv.state_dict(), path)
        model = build(name)
        load_pretrained(model, path)
        model.eval()
        trunk = torch.nn.Sequential(*list(tv.eval().children())[:-2])
        frame = torch.randn(2, 3, 64, 32, generator=torch.Generator().manual_seed(3))
        static = frame.unsqueeze(2).expand(-1, -1, max(4, model.min_clip_len), -1, -1)
        with torch.no_grad():
            expected = trunk(frame).unsqueeze(2)
            got = model.get_submodule(prefix)(static)
        assert got.shape[:2] == expected.shape[:2] and got.shape[3:] == expected.shape[3:]
        error = (got - expected).abs().max() / expected.abs().max()
        assert error < 1e-5, f"{prefix}: relative error {error:.2e}"


@pytest.mark.parametrize("name", MODELS)
def test_onnx_export_with_dynamic_batch_matches_pytorch(name):
    model = build(name).eval()
    perturb_zero_init(model)
    buffer = io.BytesIO()
    torch.onnx.export(
        model,
        (clip_batch(model, 2),),
        buffer,
        dynamo=False,
        opset_version=17,
        input_names=["clips"],
        output_names=["embedding"],
        dynamic_axes={"clips": {0: "batch"}, "embedding": {0: "batch"}},
    )
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    x = clip_batch(model, 3, seed=4)
    with torch.no_grad():
        expected = model(x).numpy()
    (got,) = session.run(None, {"clips": x.numpy()})
    cosine = (
        (got * expected).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
    )
    assert got.shape == expected.shape
    assert cosine.min() >= 0.9999
