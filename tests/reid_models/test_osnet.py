"""OSNet x0.25 clip models: parity with ONNX Runtime on real crops, the ONNX converter, the
frozen fc BatchNorm and the temporal kernels' training signal.

The parity tests need ``../shared/data`` (the OSNet ONNX and five Market-1501 crops) and skip,
saying so, without it; the others build the models with random weights at 64x32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from reid_models import WeightsError, convert_osnet_onnx, create_model, load_pretrained
from reid_models.osnet import OSNetVideo
from reid_models.pretrained import IMAGENET_MEAN, IMAGENET_STD

#: Real test material beside the project root, as in tests/conftest.py.
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
OSNET_MODELS = ("c2d_osnet_x0_25", "ap3d_osnet_x0_25")
#: Trunk tensors the ONNX keeps under their own names: 60 Lite 1x1 kernels, 6 gates x 4, fc.0
#: weight and bias, fc.1's four; every other one is a BN-folded conv placed by graph position.
BY_NAME, BY_POSITION = 90, 158


@pytest.fixture(scope="module")
def crops() -> torch.Tensor:
    """The five crops at 256x128, normalised as the model expects: (5, 3, 256, 128)."""
    files = sorted((SHARED_DATA / "reid_crops").glob("*.jpg"))
    if len(files) < 5:
        pytest.skip(f"real test material {SHARED_DATA / 'reid_crops'} is absent (see SOURCES.md)")
    pixels = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
    x = F.interpolate(x, size=(256, 128), mode="bilinear", align_corners=False)
    mean, std = torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)
    return (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)


def _clips(crops: torch.Tensor) -> torch.Tensor:
    """Six real clips, (6, 3, 8, 256, 128): each crop shifted by a few pixels and mirrored
    every other frame, and the five crops of five people in a row (plus the first again)."""
    clips = []
    for crop in crops:
        frames = []
        for k in range(8):
            frame = torch.roll(crop, shifts=(k - 4, 2 * (k % 3) - 2), dims=(1, 2))
            frames.append(frame.flip(2) if k % 2 else frame)
        clips.append(torch.stack(frames, dim=1))
    mixed = torch.cat([crops, crops, crops[:1]])[:8]
    clips.append(mixed.transpose(0, 1))
    return torch.stack(clips)


@pytest.fixture(scope="module")
def onnx_path() -> Path:
    path = SHARED_DATA / "models" / "osnet_x0_25_msmt17.onnx"
    if not path.is_file():
        pytest.skip(f"real test material {path} is absent (see SOURCES.md in shared/data)")
    return path


@pytest.fixture(scope="module")
def session(onnx_path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])


def _ort_frames(session: ort.InferenceSession, frames: torch.Tensor) -> np.ndarray:
    return session.run(None, {"images": frames.numpy()})[0]


def _ort_clip_embedding(session: ort.InferenceSession, clips: torch.Tensor) -> np.ndarray:
    """What deploy.engines.external computes: frames L2-normalised, mean over T, normalised."""
    b, c, t, h, w = clips.shape
    frames = _ort_frames(session, clips.transpose(1, 2).reshape(b * t, c, h, w)).reshape(b, t, -1)
    frames = frames / np.linalg.norm(frames, axis=2, keepdims=True)
    mean = frames.mean(axis=1)
    return mean / np.linalg.norm(mean, axis=1, keepdims=True)


@pytest.mark.parametrize("name", OSNET_MODELS)
def test_frame_features_equal_onnxruntime_on_real_crops(name, onnx_path, session, crops):
    model = create_model(name, pretrained=onnx_path).eval()
    expected = _ort_frames(session, crops)
    with torch.no_grad():
        got = model.forward_features(crops.unsqueeze(2))[:, 0].numpy()
        embedding = model(crops.unsqueeze(2)).numpy()  # T = 1: the unit frame feature
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    unit = expected / np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(embedding, unit, atol=1e-5)


@pytest.mark.parametrize("name", OSNET_MODELS)
def test_clip_embedding_equals_the_frame_averaged_onnx_model(name, onnx_path, session, crops):
    """With the temporal kernels at zero (as loaded), AP3D-OSNet is the frame model."""
    model = create_model(name, pretrained=onnx_path).eval()
    clips = _clips(crops)
    expected = _ort_clip_embedding(session, clips)
    with torch.no_grad():
        got = F.normalize(model(clips), dim=1).numpy()
    cosine = (got * expected).sum(axis=1)
    assert cosine.min() >= 0.9999, cosine
    assert len({tuple(np.round(e, 2)) for e in expected}) == len(expected)  # distinct clips


def test_converter_report_counts(onnx_path):
    state, report = convert_osnet_onnx(onnx_path)
    assert (len(report.by_name), len(report.by_position)) == (BY_NAME, BY_POSITION)
    assert report.unexpected == [] and report.conv_nodes == 187
    assert "conv2.0.conv2a.conv1.weight" in report.by_name
    assert "conv2.0.conv1.conv.bias" in report.by_position  # a folded BN's bias
    assert set(state) == set(create_model("c2d_osnet_x0_25").backbone.state_dict())


def test_loading_reports_the_new_temporal_parts_as_missing(onnx_path):
    report = load_pretrained(create_model("ap3d_osnet_x0_25", num_classes=3), onnx_path)
    new = [k for k in report.missing if k != "classifier.weight"]
    assert len(new) == 10 and all(".conv1.conv.apm." in k or "temporal" in k for k in new)
    assert sum(k.endswith("temporal.weight") for k in new) == 2
    assert report.inflated == [
        "backbone.conv3.0.conv1.conv.spatial.weight",
        "backbone.conv4.0.conv1.conv.spatial.weight",
    ]
    assert report.unexpected == [] and len(report.conversion.by_position) == BY_POSITION
    c2d = load_pretrained(create_model("c2d_osnet_x0_25"), onnx_path)
    assert (c2d.missing, c2d.inflated, len(c2d.loaded)) == ([], [], BY_NAME + BY_POSITION + 1)


@pytest.mark.parametrize(
    "content", [b"", b"not an onnx model at all", "half"], ids=["empty", "junk", "truncated"]
)
def test_a_damaged_onnx_file_is_a_weights_error(content, synthetic_osnet_onnx, tmp_path):
    if content == "half":  # the synthetic file: the same layout, and present without shared/data
        data = synthetic_osnet_onnx.read_bytes()
        content = data[: len(data) // 2]
    path = tmp_path / "osnet.onnx"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=r"osnet\.onnx (is not a readable|holds no) ONNX"):
        create_model("ap3d_osnet_x0_25", pretrained=path)


def test_another_architecture_is_a_weights_error():
    path = SHARED_DATA / "models" / "yolov5n_coco.onnx"
    if not path.is_file():
        pytest.skip(f"real test material {path} is absent (see SOURCES.md in shared/data)")
    expected = r"yolov5n_coco\.onnx: Conv node .* \(\(16, 3, 6, 6\).* has \(\(16, 3, 7, 7\)"
    with pytest.raises(WeightsError, match=expected):
        convert_osnet_onnx(path)


def test_an_onnx_file_is_refused_by_other_models(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"")
    with pytest.raises(WeightsError, match="loads only into models whose source format is osnet"):
        create_model("c2d_r18", pretrained=path)
    with pytest.raises(WeightsError, match=r"nope\.onnx does not exist"):
        convert_osnet_onnx(tmp_path / "nope.onnx")


def test_fc_batchnorm_stays_in_eval_mode_under_train():
    model = create_model("ap3d_osnet_x0_25", num_classes=4)
    bn = model.get_submodule(OSNetVideo.frozen_bn[0])
    assert isinstance(bn, torch.nn.BatchNorm1d)
    assert model.train() is model and model.training and not bn.training
    assert model.backbone.conv3.training
    before = bn.running_mean.clone(), bn.running_var.clone()
    model(torch.randn(2, 3, 4, 64, 32)).features.sum().backward()
    torch.testing.assert_close((bn.running_mean, bn.running_var), before, rtol=0, atol=0)
    assert bn.weight.grad is not None  # its affine part still trains
    model.eval()
    model.train(True)
    assert not bn.training


def _sgd_steps(model: OSNetVideo, steps: int = 3) -> None:
    gen = torch.Generator().manual_seed(7)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    model.train()
    for _ in range(steps):
        x = torch.randn(4, 3, 4, 64, 32, generator=gen)
        out = model(x)
        labels = torch.arange(4) % model.num_classes
        direction = torch.randn(out.features.shape, generator=gen)
        loss = F.cross_entropy(out.logits[0], labels) + (out.features * direction).mean()
        optimizer.zero_grad()
        loss.backward()
        yield model
        optimizer.step()


def _order_change(model: OSNetVideo) -> float:
    x = torch.randn(2, 3, 4, 64, 32, generator=torch.Generator().manual_seed(8))
    model.eval()
    with torch.no_grad():
        forward, backward = model(x), model(x.flip(2))
    return ((forward - backward).norm(dim=1) / forward.norm(dim=1)).max().item()


def test_sgd_moves_the_temporal_kernels_and_only_ap3d_learns_frame_order(onnx_path):
    """From the ONNX weights, as site adaptation starts (a randomly built OSNet has no
    normalisation and its activations are too large for plain SGD at a fixed rate)."""
    torch.manual_seed(0)
    ap3d = create_model("ap3d_osnet_x0_25", num_classes=4, pretrained=onnx_path)
    kernels = [ap3d.backbone.conv3[0].conv1.conv.temporal.weight]
    kernels.append(ap3d.backbone.conv4[0].conv1.conv.temporal.weight)
    assert all(k.count_nonzero() == 0 for k in kernels)
    assert _order_change(ap3d) < 1e-6  # zero kernels: the frame model
    for _ in _sgd_steps(ap3d):
        assert all(k.grad is not None and k.grad.count_nonzero() > 0 for k in kernels)
    assert all(k.count_nonzero() > 0 for k in kernels)
    assert _order_change(ap3d) > 1e-5  # ~5e-5 after three steps; c2d stays at ~5e-8
    torch.manual_seed(0)
    c2d = create_model("c2d_osnet_x0_25", num_classes=4, pretrained=onnx_path)
    for _ in _sgd_steps(c2d):
        pass
    assert _order_change(c2d) < 1e-6
