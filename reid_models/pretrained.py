"""`PretrainedCfg`: what a model expects of its input and what its embedding means.

Attached to every model as `model.pretrained_cfg`, frozen. The pipeline, the trainers and the
evaluator read clip length, sampling, preprocessing and distance from here instead of restating
them, so a model cannot be fed clips it was not built for.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "PretrainedCfg"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: How a training clip is drawn from a tracklet.
#: ``stride``: `train_clip_len` frames `train_stride` apart from a random start (AP3D, I3D-NL;
#: shorter tracklets fall back to sorted random frames). ``consecutive``: a random window of
#: `train_clip_len` adjacent frames, looping short tracklets (M3D, GLTR, PersonVLAD).
TrainSampling = Literal["stride", "consecutive"]
#: How a test tracklet becomes clips. ``chunks``: consecutive `test_clip_len` chunks, the last one
#: shorter (AP3D, I3D-NL). ``chunks_drop_last``: the same, dropping the remainder (M3D).
#: ``whole``: the whole tracklet as one clip (GLTR). ``sliding``: windows of `test_clip_len`
#: every `test_stride` frames (PersonVLAD).
TestSampling = Literal["chunks", "chunks_drop_last", "whole", "sliding"]
#: How clip embeddings become one tracklet embedding: plain mean, or mean weighted by clip length
#: (AP3D's frame-mean of features before the affine BN neck equals the latter).
Aggregation = Literal["mean", "length_weighted_mean"]


@dataclass(frozen=True)
class PretrainedCfg:
    """Input and output contract of one model.

    Attributes:
        paper: Short citation of the architecture's source.
        input_size: (C, H, W) of each frame.
        mean: Per-channel mean subtracted from RGB pixels scaled to [0, 1].
        std: Per-channel divisor applied after the mean.
        interpolation: Resize filter the model was trained with.
        train_clip_len: Frames per training clip.
        train_sampling: See `TrainSampling`.
        train_stride: Frame step of ``stride`` sampling.
        test_clip_len: Frames per test clip (the clip length the paper evaluates with).
        test_sampling: See `TestSampling`.
        test_stride: Window step of ``sliding`` test sampling.
        aggregation: See `Aggregation`.
        embedding_dim: Length of the retrieval embedding.
        distance: Metric the paper ranks with; ``euclidean`` models expect L2-normalised
            embeddings where `normalize_embedding` says so.
        normalize_embedding: The paper L2-normalises sequence embeddings before ranking.
        source_format: Format of the weight file `create_model(pretrained=...)` takes
            (``osnet_onnx``: torchreid's OSNet x0.25 exported to ONNX, `reid_models.osnet_onnx`).
        backbone_prefixes: Submodules that receive the source weights (two-stream models have two).
    """

    paper: str
    input_size: tuple[int, int, int] = (3, 256, 128)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: Literal["bilinear", "bicubic"] = "bilinear"
    train_clip_len: int = 4
    train_sampling: TrainSampling = "stride"
    train_stride: int = 8
    test_clip_len: int = 32
    test_sampling: TestSampling = "chunks"
    test_stride: int = 32
    aggregation: Aggregation = "mean"
    embedding_dim: int = 2048
    distance: Literal["cosine", "euclidean"] = "cosine"
    normalize_embedding: bool = True
    source_format: Literal["torchvision_resnet", "c3d", "osnet_onnx"] = "torchvision_resnet"
    backbone_prefixes: tuple[str, ...] = ("backbone",)

    def __post_init__(self) -> None:
        for name in ("train_clip_len", "train_stride", "test_clip_len", "test_stride"):
            if getattr(self, name) < 1:
                raise ValueError(f"PretrainedCfg.{name} must be >= 1, got {getattr(self, name)}")
        if len(self.input_size) != 3 or min(self.input_size) < 1:
            raise ValueError(f"PretrainedCfg.input_size must be (C, H, W), got {self.input_size}")

    def with_changes(self, **changes: object) -> PretrainedCfg:
        """A copy with some fields replaced (builders derive variants from a base config)."""
        return replace(self, **changes)
