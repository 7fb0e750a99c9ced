"""Test-time features: every clip of every tracklet, batched across tracklets, then aggregated.

    tracklets ─ test_clip_indices (cfg.test_sampling, test_clip_len, test_stride) ─▶ clips
      └─ clips shorter than the model's `min_clip_len` looped to it (M3D, C3D)
      └─ grouped by length; a batch holds <= batch_size * cfg.test_clip_len frames (>= 1 clip)
      └─ decode + resize + normalise (`ClipTransform`, no augmentation) in loader workers
      └─ model.eval()(clips) ─▶ (B, D) clip embeddings
      └─ per tracklet: mean, or mean weighted by each clip's frame count (cfg.aggregation)
      └─ L2-normalised iff cfg.normalize_embedding ─▶ (N, D) float32 on the CPU

Clips of one tracklet may land in different batches and batches mix tracklets, so the GPU stays full
whatever the tracklet lengths; the per-tracklet sums are accumulated with ``index_add_``. A clip's
weight under ``length_weighted_mean`` is its frame count before looping, so AP3D's frame-mean over
all chunks (``test-all.py`` averages the per-frame features of all chunks, then applies the BN neck;
the paper's §5.2 says "averaged representation of all clips") is reproduced: its BN neck is affine
in eval mode and commutes with the weighted mean.

The frame budget per batch keeps ``whole`` tracklets (GLTR, up to 920 frames on MARS) from
being stacked `batch_size` deep; a clip longer than the budget runs alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
import torch.utils.data

from reid_models.base import ReIDModel
from reid_models.pretrained import PretrainedCfg
from trainers.data.clips import read_indexed_frames, worker_init
from trainers.data.sampling import loop_to_length, test_clip_indices
from trainers.data.transforms import ClipTransform

if TYPE_CHECKING:
    from trainers.datasets.base import Tracklet

__all__ = ["EvalClip", "EvalClipDataset", "extract_features", "plan_test_clips"]

AGGREGATIONS = ("mean", "length_weighted_mean")


@dataclass(frozen=True)
class EvalClip:
    """One test clip: which tracklet, which frames, and its weight in the aggregation."""

    tracklet: int
    indices: np.ndarray
    weight: float


def plan_test_clips(
    lengths: Sequence[int], *, cfg: PretrainedCfg, min_clip_len: int = 1
) -> list[EvalClip]:
    """Every test clip of tracklets of the given frame counts, in tracklet order."""
    if cfg.aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {cfg.aggregation!r}; choose one of {AGGREGATIONS}")
    clips = []
    for i, n in enumerate(lengths):
        for indices in test_clip_indices(
            n, clip_len=cfg.test_clip_len, sampling=cfg.test_sampling, stride=cfg.test_stride
        ):
            weight = float(indices.size) if cfg.aggregation == "length_weighted_mean" else 1.0
            clips.append(EvalClip(i, loop_to_length(indices, min_clip_len), weight))
    return clips


def batch_by_length(clips: Sequence[EvalClip], *, max_frames: int) -> list[list[int]]:
    """Clip ids grouped into batches of equal clip length and at most `max_frames` frames."""
    by_length: dict[int, list[int]] = {}
    for k, clip in enumerate(clips):
        by_length.setdefault(clip.indices.size, []).append(k)
    batches = []
    for length, ids in sorted(by_length.items()):
        per_batch = max(1, max_frames // length)
        batches.extend(ids[i : i + per_batch] for i in range(0, len(ids), per_batch))
    return batches


class EvalClipDataset(torch.utils.data.Dataset):
    """Item k: the (3, T, H, W) float32 clip ``clips[k]``, decoded and normalised."""

    def __init__(
        self, tracklets: Sequence[Tracklet], clips: Sequence[EvalClip], transform: ClipTransform
    ) -> None:
        self.paths = [t[0] for t in tracklets]
        self.clips = list(clips)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, k: int) -> torch.Tensor:
        clip = self.clips[k]
        frames = read_indexed_frames(
            self.paths[clip.tracklet],
            clip.indices,
            size=self.transform.size,
            interpolation=self.transform.interpolation,
        )
        return self.transform(frames)


@torch.no_grad()
def extract_features(
    model: ReIDModel,
    tracklets: Sequence[Tracklet],
    *,
    cfg: PretrainedCfg,
    batch_size: int,
    device: torch.device | str,
    workers: int = 0,
    amp_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Tracklet embeddings of `model` under the test protocol of `cfg`.

    Args:
        model: A `ReIDModel`; run in eval mode (its mode is restored afterwards).
        tracklets: Items unpacking to (frame_paths, pid, camid).
        cfg: Test sampling, clip length and stride, aggregation, normalisation and preprocessing.
        batch_size: Clips of `cfg.test_clip_len` frames per forward pass (a frame budget for
            clips of other lengths).
        device: Where the model runs.
        workers: Loader processes decoding clips.
        amp_dtype: Autocast dtype (e.g. ``torch.float16`` on CUDA), or None for full precision.

    Returns:
        (N, D) float32 CPU embeddings, one per tracklet, in input order.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = torch.device(device)
    min_len = int(getattr(model, "min_clip_len", 1) or 1)
    clips = plan_test_clips([len(t[0]) for t in tracklets], cfg=cfg, min_clip_len=min_len)
    batches = batch_by_length(clips, max_frames=batch_size * cfg.test_clip_len)
    dataset = EvalClipDataset(tracklets, clips, ClipTransform.from_cfg(cfg, train=False))
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        worker_init_fn=worker_init,
    )
    owners = torch.tensor([c.tracklet for c in clips], dtype=torch.int64)
    weights = torch.tensor([c.weight for c in clips], dtype=torch.float64)
    sums: torch.Tensor | None = None
    was_training = model.training
    model.eval()
    try:
        for ids, batch in zip(batches, loader, strict=True):
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                embeddings = model(batch.to(device, non_blocking=True))
            embeddings = embeddings.float().cpu().double()
            if sums is None:
                sums = torch.zeros(len(tracklets), embeddings.shape[1], dtype=torch.float64)
            ids = torch.as_tensor(ids)
            sums.index_add_(0, owners[ids], embeddings * weights[ids, None])
    finally:
        model.train(was_training)
    if sums is None:
        return torch.zeros(0, cfg.embedding_dim)
    totals = torch.zeros(len(tracklets), dtype=torch.float64).index_add_(0, owners, weights)
    features = (sums / totals[:, None]).float()
    return F.normalize(features, dim=1) if cfg.normalize_embedding else features
