"""The external-onnx engine: a real image ReID model (OSNet-x0.25, MSMT17) on real Market-1501
crops, and small image models exported here to pin the per-frame averaging.

Measured with this OSNet on the five crops of ``shared/data/reid_crops`` (five identities):
pairwise cosine between people 0.31-0.62; a crop and its mirror image 0.981-0.996.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from deploy.engines import EngineError, create_engine, preprocess
from deploy.engines.external import ExternalOnnxEngine
from reid_models.pretrained import IMAGENET_MEAN, IMAGENET_STD

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*TorchScript-based ONNX export"),
    pytest.mark.filterwarnings("ignore:The feature will be removed"),
]


@pytest.fixture(scope="module")
def crops(reid_crop_files: list[Path]) -> np.ndarray:
    """The five Market-1501 crops, RGB, (5, 128, 64, 3) uint8, one identity each."""
    images = [cv2.imread(str(path)) for path in reid_crop_files]
    return np.stack([cv2.cvtColor(image, cv2.COLOR_BGR2RGB) for image in images])


@pytest.fixture(scope="module")
def osnet(osnet_onnx: Path) -> ExternalOnnxEngine:
    return create_engine("external-onnx", onnx_path=osnet_onnx, intra_op_threads=1)


def test_osnet_description_is_read_from_the_graph(osnet):
    assert osnet.cfg.input_size == (3, 256, 128)
    assert osnet.embedding_dim == 512
    assert (osnet.cfg.mean, osnet.cfg.std) == (IMAGENET_MEAN, IMAGENET_STD)
    assert osnet.clip_len is None and osnet.min_clip_len == 1


def test_osnet_tells_people_apart_and_ignores_a_mirror(osnet, crops):
    clips = crops[:, None]  # one-frame clips
    embedding = osnet.embed(clips)
    similarity = embedding @ embedding.T
    others = similarity[~np.eye(len(crops), dtype=bool)]
    assert others.max() < 0.75, similarity
    mirrored = osnet.embed(np.ascontiguousarray(clips[:, :, :, ::-1]))
    assert (embedding * mirrored).sum(axis=1).min() > 0.95


def test_osnet_matches_the_model_run_on_cv2_preprocessed_frames(osnet_onnx, osnet, crops):
    # Independent reference: cv2 resize (bilinear, half-pixel centres like torch), ImageNet norm.
    frames = np.stack([cv2.resize(c, (128, 256), interpolation=cv2.INTER_LINEAR) for c in crops])
    x = (frames / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    session = ort.InferenceSession(str(osnet_onnx), providers=["CPUExecutionProvider"])
    (reference,) = session.run(None, {"images": x.transpose(0, 3, 1, 2).astype(np.float32)})
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    got = osnet.embed(crops[:, None])
    assert (got * reference).sum(axis=1).min() > 0.999


def test_clip_embedding_is_the_mean_of_unit_frame_embeddings(osnet, crops):
    frames = osnet.embed(crops[:3, None])
    clip = osnet.embed(crops[None, :3])[0]
    expected = frames.mean(axis=0)
    np.testing.assert_allclose(clip, expected / np.linalg.norm(expected), atol=1e-5)


def test_overrides_change_the_preprocessing(osnet_onnx, osnet, crops):
    swapped = create_engine(
        "external-onnx", onnx_path=osnet_onnx, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)
    )
    assert swapped.cfg.mean == (0.5, 0.5, 0.5)
    cosine = (swapped.embed(crops[:, None]) * osnet.embed(crops[:, None])).sum(axis=1)
    assert cosine.min() < 0.9999
    with pytest.raises(EngineError, match="give cfg= or overrides"):
        ExternalOnnxEngine(osnet_onnx, cfg=osnet.cfg, mean=(0.5, 0.5, 0.5))
    with pytest.raises(EngineError, match="unknown option"):
        ExternalOnnxEngine(osnet_onnx, gamma=2.2)


class _TinyImageNet(nn.Module):
    """(N, 3, 16, 8) -> (N, 6): conv, ReLU, global pool."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 6, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x)).mean(dim=(2, 3)) + 0.1


def test_a_graph_with_a_fixed_batch_runs_frame_by_frame(tmp_path, clips):
    net = _TinyImageNet().eval()
    path = tmp_path / "tiny.onnx"
    torch.onnx.export(
        net, (torch.zeros(1, 3, 16, 8),), str(path), dynamo=False, input_names=["img"]
    )  # no dynamic axes: the graph takes exactly one frame
    engine = create_engine("external-onnx", onnx_path=path, max_batch=2)
    assert engine.cfg.input_size == (3, 16, 8) and engine.embedding_dim == 6
    batch = clips(3, 5, 32, 16, seed=4)
    x = preprocess(torch.from_numpy(batch), engine.cfg, device="cpu")
    with torch.no_grad():
        frames = net(x.transpose(1, 2).reshape(15, 3, 16, 8)).reshape(3, 5, 6)
    frames = torch.nn.functional.normalize(frames, dim=2).mean(dim=1)
    expected = torch.nn.functional.normalize(frames, dim=1).numpy()
    np.testing.assert_allclose(engine.embed(batch), expected, atol=1e-5)


def test_a_clip_model_is_not_an_image_model(tmp_path):
    class Clip(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(2, 3, 4))

    path = tmp_path / "clip.onnx"
    torch.onnx.export(Clip(), (torch.zeros(1, 3, 2, 4, 4),), str(path), dynamo=False)
    with pytest.raises(EngineError, match=r"one \(N, C, H, W\) input"):
        create_engine("external-onnx", onnx_path=path)
    with pytest.raises(EngineError, match="model= and checkpoint= belong to the torch engine"):
        create_engine("external-onnx", onnx_path=path, model="c2d_r18")
