"""Clip sampling, the P x K sampler, clip transforms, the training loader and test features.

Tracklet ─ sampling (which frames) ─ clips (decode) ─ transforms ─▶ (3, T, H, W) float32
  training: TrainClipDataset + RandomIdentitySampler ─ build_train_loader
  testing:  every clip of every tracklet ─ extract_features ─▶ (N, D) embeddings
"""

from __future__ import annotations

from trainers.data.clips import TrainClipDataset, build_train_loader, read_frames
from trainers.data.features import extract_features
from trainers.data.samplers import RandomIdentitySampler
from trainers.data.sampling import loop_to_length, test_clip_indices, train_frame_indices
from trainers.data.transforms import ClipTransform

__all__ = [
    "ClipTransform",
    "RandomIdentitySampler",
    "TrainClipDataset",
    "build_train_loader",
    "extract_features",
    "loop_to_length",
    "read_frames",
    "test_clip_indices",
    "train_frame_indices",
]
