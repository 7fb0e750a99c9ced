"""3D PersonVLAD (Wu, Wang, Shao, Wang): C3D, soft part attention and a VLAD over the parts.

    clip (N, 3, 16, 180, 90), 0-255 minus the Sports-1M mean
      -> C3D conv1 .. pool5 (`backbone`)                      F (N, 512, 1, 6, 3)
      -> B = 6 detectors: Conv3d(512, 6, 1) + sigmoid         M (N, 6, 1, 6, 3)
      -> f_b = ReLU(FC_b(mean_{l,x,y} F * M_b)), unshared     (N, 6, 256)
      -> SoftVLAD, K = 64: L2 in, soft-assign, residuals, intra-norm, flatten, L2
                                                              v (N, 16384), unit norm

`v` is both the retrieval embedding (Euclidean distance, Sec. IV-A) and the feature of the OIM loss
(Sec. III-C, Eq. 6), which lives in the trainers with its look-up table: there is no classifier,
so `TrainOutput.logits` is always empty and `num_classes` is accepted but unused. (Step 1 of
Sec. III-C's recipe "only train[s] the classifier", which OIM does not have; a 625-way softmax for
that step would be one reading, but OIM replaces ActionVLAD's trained classifier, so we keep the
paper's single loss.)

Choices (3D PersonVLAD, Wu et al., TNNLS 2019; no code was released):
* Backbone: Sec. III-A's text describes 5 convs (64/128/256/256/256), Fig. 2's caption the real
  C3D's 8, and Sec. III-C initialises "all the 3D convolutions" from C3D on Sports-1M, weights that
  exist only for the 8-conv net. Option B, the real C3D with its Sports-1M weights, by default;
  ``backbone="A"`` builds the 5-conv net of Sec. III-A, which takes conv1, conv2, conv3a, conv3b
  from a C3D file and keeps conv5 random (see `reid_models.c3d`).
* pool5 keeps C3D's (0, 1, 1) padding: a 6x3 map at 180x90 (the paper does not give it).
* Portrait input H = 180, W = 90: Sec. III-C writes "90 x 180", as it writes box sizes W x H
  elsewhere (Table I: 64 x 128, 128 x 256), and pedestrian boxes are tall. Pixels as the C3D
  checkpoint expects (the paper states none), 0-255 minus the Sports-1M per-channel mean (see
  `reid_models.c3d` for the channel order).
* VLAD over the B pooled part descriptors, the literal Eq. 3-5, which sum over b = 1..B; the dense
  variant over all attended locations, which the prose's "entire video" suggests, is not
  implemented.
* One Linear(C_pool5 -> 256) + ReLU per part: Sec. III-B(a) puts an unshared FC + ReLU on each
  branch without a width, and the 16,384-d descriptor with K = 64 fixes D = 256.
* alpha = 1000 (Sec. III-C); descriptors L2-normalised before the VLAD, as ActionVLAD's code
  (rohitgirdhar/ActionVLAD) does: alpha = 1000 only makes sense on unit-norm inputs; centres from
  k-means (the paper says only "initialize and fix"; ActionVLAD uses k-means), set by the trainer
  through `PersonVLAD.vlad.init_centres` on `local_descriptors`.
* The part module uses PyTorch's default initialisation ("random initialized", Sec. III-C).

Parameters (the paper prints none; counted from the layer sizes): conv 27,655,936 + detectors
3,078 + FCs 787,968 + VLAD 32,832 = 28,479,814 (Option B); Option A 5,080,134.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from reid_models._registry import register_model
from reid_models.base import ReIDModel, TrainOutput
from reid_models.c3d import C3D, C3D_MEAN_RGB, C3D_MIN_CLIP_LEN, C3D_STD
from reid_models.layers.vlad import SoftVLAD
from reid_models.pretrained import PretrainedCfg

__all__ = ["PartAlignment", "PersonVLAD"]

PERSONVLAD_CFG = PretrainedCfg(
    paper=(
        "Wu, Wang, Shao, Wang, 3D PersonVLAD: Learning Deep Global Representations for "
        "Video-based Person Re-identification"
    ),
    input_size=(3, 180, 90),
    mean=C3D_MEAN_RGB,
    std=C3D_STD,
    train_clip_len=16,
    train_sampling="consecutive",
    train_stride=1,
    test_clip_len=16,
    test_sampling="sliding",
    test_stride=8,
    aggregation="mean",
    embedding_dim=16384,
    distance="euclidean",
    normalize_embedding=True,
    source_format="c3d",
    backbone_prefixes=("backbone",),
)


class PartAlignment(nn.Module):
    """B soft part detectors on the pool5 cube, each with its own FC (Sec. III-B, Eq. 1-2).

        F (N, C, L, H, W) -> Conv3d(C, B, 1) -> sigmoid -> M (N, B, L, H, W)
        pooled_b = mean_{l,x,y} F * M_b                  (N, B, C), global average pooling
        f_b = ReLU(FC_b(pooled_b))                       (N, B, D), FCs not shared

    Args:
        in_channels: C of the pool5 cube.
        num_parts: B.
        dim: D of each part descriptor.

    Shape:
        (N, C, L, H, W) -> (N, B, D)
    """

    def __init__(self, in_channels: int, *, num_parts: int = 6, dim: int = 256) -> None:
        super().__init__()
        if num_parts < 1 or dim < 1:
            raise ValueError(f"need num_parts >= 1 and dim >= 1, got {num_parts} and {dim}")
        self.detector = nn.Conv3d(in_channels, num_parts, 1)
        self.fc = nn.ModuleList(nn.Linear(in_channels, dim) for _ in range(num_parts))

    def maps(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, L, H, W) -> the attention maps M (N, B, L, H, W) in (0, 1) (Fig. 8)."""
        return torch.sigmoid(self.detector(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.maps(x).flatten(2)  # (N, B, S)
        # mean over S of F * M_b, for all b at once, without B copies of the cube: (N, B, C).
        pooled = maps @ x.flatten(2).transpose(1, 2) / maps.shape[-1]
        return torch.stack([F.relu(fc(pooled[:, b])) for b, fc in enumerate(self.fc)], dim=1)


class PersonVLAD(ReIDModel):
    """C3D trunk, part alignment and SoftVLAD; see the module docstring.

    `forward_features`: (N, 3, T, H, W), T >= 16 -> pool5 cube (N, C5, T/16, H/16+1, W/16+1).
    `forward_head`: -> v (N, K * D), unit norm; in training `TrainOutput(v, ())` for OIM.

    Args:
        backbone: C3D ``"B"`` (real C3D, pool5 512) or ``"A"`` (5 convs, pool5 256).
        num_parts: B part detectors.
        part_dim: D of each part descriptor.
        num_clusters: K person words.
        alpha: Initial assignment sharpness.
        num_classes: Unused; OIM's look-up table is in the trainer.
        pretrained_cfg: Its `embedding_dim` must be K * D.
    """

    min_clip_len = C3D_MIN_CLIP_LEN
    order_sensitive = True

    def __init__(
        self,
        *,
        backbone: Literal["A", "B"] = "B",
        num_parts: int = 6,
        part_dim: int = 256,
        num_clusters: int = 64,
        alpha: float = 1000.0,
        num_classes: int,
        pretrained_cfg: PretrainedCfg,
    ) -> None:
        super().__init__(pretrained_cfg=pretrained_cfg, num_classes=num_classes)
        if pretrained_cfg.embedding_dim != num_clusters * part_dim:
            raise ValueError(
                f"embedding_dim {pretrained_cfg.embedding_dim} must equal num_clusters * "
                f"part_dim = {num_clusters} * {part_dim}"
            )
        self.backbone = C3D(variant=backbone)
        self.parts = PartAlignment(self.backbone.out_channels, num_parts=num_parts, dim=part_dim)
        self.vlad = SoftVLAD(num_clusters=num_clusters, dim=part_dim, alpha=alpha)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def local_descriptors(self, x: torch.Tensor) -> torch.Tensor:
        """Clips (N, 3, T, H, W) -> (N, B, D): what the VLAD clusters, for the k-means init."""
        return self.vlad.normalize_input(self.parts(self.forward_features(x)))

    def forward_head(
        self, x: torch.Tensor, *, pre_logits: bool = False
    ) -> torch.Tensor | TrainOutput:
        v = self.vlad(self.parts(x))
        return v if pre_logits else TrainOutput(v, ())


@register_model
def personvlad_c3d(
    *,
    num_classes: int = 0,
    backbone: Literal["A", "B"] = "B",
    num_parts: int = 6,
    part_dim: int = 256,
    num_clusters: int = 64,
    alpha: float = 1000.0,
) -> PersonVLAD:
    """3D PersonVLAD on C3D (28.48 M with ``backbone="B"``, 5.08 M with ``"A"``).

    Weights: a C3D state dict (DavideA/c3d-pytorch keys) via ``create_model(pretrained=...)``.
    """
    cfg = PERSONVLAD_CFG.with_changes(embedding_dim=num_clusters * part_dim)
    return PersonVLAD(
        backbone=backbone,
        num_parts=num_parts,
        part_dim=part_dim,
        num_clusters=num_clusters,
        alpha=alpha,
        num_classes=num_classes,
        pretrained_cfg=cfg,
    )
