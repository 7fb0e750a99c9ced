"""Test-time features equal a manual per-clip forward pass and aggregation, on real files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reid_models import create_model
from trainers.data import ClipTransform, extract_features, read_frames
from trainers.data.features import batch_by_length, plan_test_clips
from trainers.datasets.base import Tracklet

LENGTHS = (1, 5, 9, 4)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny forward passes: a second intra-op thread only adds contention on a shared CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tracklets(tmp_path_factory: pytest.TempPathFactory) -> list[Tracklet]:
    root = tmp_path_factory.mktemp("frames")
    rng = np.random.default_rng(0)
    out = []
    for k, n in enumerate(LENGTHS):
        paths = []
        for f in range(n):
            path = root / f"t{k}_f{f:03d}.png"
            cv2.imwrite(str(path), rng.integers(0, 256, (64, 32, 3), dtype=np.uint8))
            paths.append(str(path))
        out.append(Tracklet(tuple(paths), pid=k, camid=k % 2))
    return out


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("c2d_r18")
    # Give BN non-trivial running statistics so eval differs from an identity.
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, 4, 64, 32))
    return model.eval()


def _manual(model, tracklets, cfg, *, min_len: int = 1) -> torch.Tensor:
    transform = ClipTransform.from_cfg(cfg, train=False)
    rows = []
    for paths, _, _ in tracklets:
        n = len(paths)
        embeddings, weights = [], []
        step = cfg.test_clip_len if cfg.test_sampling.startswith("chunks") else cfg.test_stride
        if cfg.test_sampling == "whole":
            clips = [list(range(n))]
        elif cfg.test_sampling == "chunks":
            clips = [list(range(s, min(s + cfg.test_clip_len, n))) for s in range(0, n, step)]
        else:  # chunks_drop_last / sliding, with short tracklets looped
            starts = range(0, n - cfg.test_clip_len + 1, step)
            clips = [list(range(s, s + cfg.test_clip_len)) for s in starts]
            clips = clips or [[i % n for i in range(cfg.test_clip_len)]]
        for idx in clips:
            weights.append(len(idx) if cfg.aggregation == "length_weighted_mean" else 1)
            idx = [idx[i % len(idx)] for i in range(max(min_len, len(idx)))]
            frames = read_frames([paths[i] for i in idx])
            with torch.no_grad():
                embeddings.append(model(transform(frames)[None])[0].double())
        w = torch.tensor(weights, dtype=torch.float64)
        rows.append((torch.stack(embeddings) * w[:, None]).sum(0) / w.sum())
    features = torch.stack(rows).float()
    return F.normalize(features, dim=1) if cfg.normalize_embedding else features


@pytest.mark.parametrize(
    "changes",
    [
        {"test_sampling": "chunks", "aggregation": "length_weighted_mean"},
        {"test_sampling": "chunks_drop_last", "aggregation": "mean", "normalize_embedding": False},
        {"test_sampling": "sliding", "test_stride": 2, "aggregation": "mean"},
        {"test_sampling": "whole", "aggregation": "mean"},
    ],
)
def test_matches_manual_per_clip_forward_and_aggregation(model, tracklets, changes) -> None:
    cfg = model.pretrained_cfg.with_changes(input_size=(3, 64, 32), test_clip_len=4, **changes)
    got = extract_features(model, tracklets, cfg=cfg, batch_size=2, device="cpu")
    assert got.shape == (len(tracklets), 512) and got.dtype == torch.float32
    torch.testing.assert_close(got, _manual(model, tracklets, cfg), rtol=1e-4, atol=1e-5)
    assert not model.training


def test_clips_shorter_than_the_model_accepts_are_looped(model, tracklets) -> None:
    # A fixed-length model (M3D: min_clip_len = clip_len) gets every clip at that length.
    cfg = model.pretrained_cfg.with_changes(input_size=(3, 64, 32), test_clip_len=4)
    model.min_clip_len = 4
    try:
        got = extract_features(model, tracklets, cfg=cfg, batch_size=3, device="cpu", workers=2)
    finally:
        del model.min_clip_len
    torch.testing.assert_close(got, _manual(model, tracklets, cfg, min_len=4), rtol=1e-4, atol=1e-5)


def test_plan_and_batches() -> None:
    cfg = create_model("c2d_r18").pretrained_cfg.with_changes(test_clip_len=4)
    clips = plan_test_clips([1, 5, 9], cfg=cfg)
    assert [(c.tracklet, c.indices.tolist(), c.weight) for c in clips] == [
        (0, [0], 1.0),
        (1, [0, 1, 2, 3], 4.0),
        (1, [4], 1.0),
        (2, [0, 1, 2, 3], 4.0),
        (2, [4, 5, 6, 7], 4.0),
        (2, [8], 1.0),
    ]
    batches = batch_by_length(clips, max_frames=8)
    assert sorted(i for b in batches for i in b) == list(range(6))
    for batch in batches:
        assert len({clips[i].indices.size for i in batch}) == 1
        assert sum(clips[i].indices.size for i in batch) <= 8 or len(batch) == 1
    with pytest.raises(ValueError, match="aggregation"):
        plan_test_clips([3], cfg=cfg.with_changes(aggregation="max"))


def test_model_mode_is_restored(model, tracklets) -> None:
    cfg = model.pretrained_cfg.with_changes(input_size=(3, 64, 32), test_clip_len=4)
    model.train()
    try:
        extract_features(model, tracklets[:1], cfg=cfg, batch_size=1, device="cpu")
        assert model.training
    finally:
        model.eval()


def test_missing_frame_raises_naming_it(model, tmp_path: Path) -> None:
    cfg = model.pretrained_cfg.with_changes(input_size=(3, 64, 32), test_clip_len=4)
    gone = Tracklet((str(tmp_path / "gone.jpg"),), pid=1, camid=0)
    with pytest.raises(OSError, match=r"gone\.jpg"):
        extract_features(model, [gone], cfg=cfg, batch_size=1, device="cpu")


@pytest.mark.gpu
@pytest.mark.parametrize("amp_dtype", [None, torch.bfloat16])
def test_cuda_with_pinned_workers_matches_cpu(model, tracklets, amp_dtype) -> None:
    cfg = model.pretrained_cfg.with_changes(input_size=(3, 64, 32), test_clip_len=4)
    expected = extract_features(model, tracklets, cfg=cfg, batch_size=2, device="cpu")
    model.cuda()
    try:
        got = extract_features(
            model, tracklets, cfg=cfg, batch_size=2, device="cuda", workers=2, amp_dtype=amp_dtype
        )
    finally:
        model.cpu()
    assert got.device.type == "cpu" and got.dtype == torch.float32
    tol = 1e-3 if amp_dtype is None else 3e-2  # TF32 / bf16 matmuls
    torch.testing.assert_close(got, expected, rtol=tol, atol=tol)
