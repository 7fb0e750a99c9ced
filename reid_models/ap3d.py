"""C2D, I3D, P3D and AP3D ResNets, with and without non-local blocks (Gu et al., ECCV 2020).

All share one shape (§4.1): a ResNet with the last stride removed, some bottlenecks' 3x3 conv
replaced by a temporal variant, spatial max pooling per frame, temporal average pooling, and a
BatchNorm neck whose output is at once the cosine-retrieval embedding, the triplet feature and the
classifier input. The paper (§4.2) does not say which feature the triplet loss sees; the official
code (github.com/guxinqian/AP3D, ``train.py``) feeds the post-BN feature to both losses.

    clip (B, 3, T, 256, 128) -> VideoResNet -> (B, 2048, T, 16, 8)
      -> max over H, W -> mean over T -> (B, 2048) -> BN neck -> embedding (B, 2048)

Which blocks: ResNet-50 layer2 {0, 2} and layer3 {0, 2, 4}, the official code's ``c3d_idx``
(``models/ResNet.py``) for §5.3's "one 2D block ... for every 2 residual blocks in stage2 and
stage3"; ResNet-18/34 the even blocks of layer2 and layer3 (2 and 5 blocks; §5.4 says only "half
of the residual blocks"), replacing BasicBlock's first 3x3. Non-local blocks (§5.3, Table 2)
follow layer2 {1, 3} and layer3 {1, 3, 5}, the code's ``nl_idx``, and, as in the code's
``models/NonLocal.py``, max-pool phi and g after their convs (this is what the Table 2 GFLOPs
count). `temporal_blocks=` overrides the placement for the Table 3 ablations.

Every builder also takes ``base_width=`` (`ResNetSpec.base_width`, default 64): the trunk's stem
width, the stages being base_width x (1, 2, 4, 8). It is not from the paper, whose networks are
the 64-wide torchvision ResNets: narrower ones (16, 32) are reidstream's small variants for CPU
demos and tests, with ~(base_width / 64)^2 of the parameters; the embedding is the trunk's
width (8 x base_width, x 4 for ResNet-50) and ImageNet weights do not fit them.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Literal

import torch

from reid_models._registry import register_model
from reid_models.base import ReIDModel, TrainOutput
from reid_models.layers.heads import BNNeckHead
from reid_models.layers.nonlocal_block import gradient_free_parameters
from reid_models.layers.temporal_conv import I3DConv, P3DConv, spatial_conv
from reid_models.pretrained import PretrainedCfg
from reid_models.resnet3d import ConvFactory, ResNetSpec, VideoResNet, conv_table

__all__ = ["AP3DResNet"]

AP3D_CFG = PretrainedCfg(
    paper="Gu et al., Appearance-Preserving 3D Convolution for Video-based Person Re-id, ECCV 2020",
    interpolation="bicubic",
    train_clip_len=4,
    train_sampling="stride",
    train_stride=8,
    test_clip_len=32,
    test_sampling="chunks",
    test_stride=32,
    aggregation="length_weighted_mean",
    embedding_dim=2048,
    distance="cosine",
)
_EVEN_BLOCKS_3_4_6 = ((2, 0), (2, 2), (3, 0), (3, 2), (3, 4))
HALF_OF_LAYER2_3 = {50: _EVEN_BLOCKS_3_4_6, 34: _EVEN_BLOCKS_3_4_6, 18: ((2, 0), (3, 0))}
NONLOCAL_AFTER = {2: frozenset({1, 3}), 3: frozenset({1, 3, 5})}
Kind = Literal["c2d", "i3d", "p3d"]


class AP3DResNet(ReIDModel):
    """A C2D/I3D/P3D/AP3D ResNet with the AP3D paper's pooling and BN-neck head.

    `forward_features`: (B, C, T, H, W) -> (B, C_feat, T, H/16, W/16) backbone map.
    `forward_head`: pools it (spatial max, temporal mean), then the BN neck.
    """

    def __init__(
        self, *, spec: ResNetSpec, num_classes: int, pretrained_cfg: PretrainedCfg
    ) -> None:
        super().__init__(pretrained_cfg=pretrained_cfg, num_classes=num_classes)
        self.backbone = VideoResNet(spec)
        # Without a temporal conv (C2D, NL-C2D: non-local attention is permutation-equivariant
        # and the pooling symmetric) frame order cannot change the embedding.
        self.order_sensitive = any(f is not spatial_conv for layer in spec.conv2 for f in layer)
        self.head = BNNeckHead(self.backbone.out_channels, num_classes)
        self.detached_parameters = gradient_free_parameters(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    @staticmethod
    def pool(x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, C): max over each frame's positions, then mean over frames."""
        return x.amax(dim=(3, 4)).mean(dim=2)

    def forward_head(
        self, x: torch.Tensor, *, pre_logits: bool = False
    ) -> torch.Tensor | TrainOutput:
        pooled = self.pool(x)
        return self.head.embedding(pooled) if pre_logits else self.head.train_output(pooled)


def _temporal_factory(
    kind: Kind, *, appearance_preserving: bool, variant: Literal["A", "B", "C"]
) -> ConvFactory:
    if kind == "i3d":
        return partial(I3DConv, appearance_preserving=appearance_preserving)
    if kind == "p3d":
        return partial(P3DConv, variant=variant, appearance_preserving=appearance_preserving)
    raise ValueError(f"no temporal conv for kind {kind!r}")


def _build(
    kind: Kind,
    *,
    depth: Literal[18, 34, 50] = 50,
    appearance_preserving: bool = False,
    nonlocal_blocks: bool = False,
    num_classes: int,
    variant: Literal["A", "B", "C"] = "C",
    temporal_blocks: Sequence[tuple[int, int]] | None = None,
    last_stride: int = 1,
    base_width: int = 64,
) -> AP3DResNet:
    replace: dict[tuple[int, int], ConvFactory] = {}
    if kind != "c2d":
        factory = _temporal_factory(
            kind, appearance_preserving=appearance_preserving, variant=variant
        )
        blocks = HALF_OF_LAYER2_3[depth] if temporal_blocks is None else temporal_blocks
        replace = {tuple(b): factory for b in blocks}
    spec = ResNetSpec(
        depth=depth,
        conv2=conv_table(depth, replace, spatial_conv),
        nonlocal_after=NONLOCAL_AFTER if nonlocal_blocks else {},
        nonlocal_pool_first=False,  # the official NonLocal.py pools phi and g after the conv
        last_stride=last_stride,
        base_width=base_width,
    )
    cfg = AP3D_CFG.with_changes(embedding_dim=spec.out_channels)
    return AP3DResNet(spec=spec, num_classes=num_classes, pretrained_cfg=cfg)


# --- ResNet-50 (Tables 1-3) ---------------------------------------------------------------------


@register_model
def c2d_r50(*, num_classes: int = 0, **kw) -> AP3DResNet:
    """C2D: frame ResNet-50, temporal average pooling only (23.51 M, Table 1)."""
    return _build("c2d", num_classes=num_classes, **kw)


@register_model
def i3d_r50(*, num_classes: int = 0, **kw) -> AP3DResNet:
    """I3D: 3x3x3 convs in 5 blocks of layer2/3, centre-slice inflated (27.64 M, Table 1)."""
    return _build("i3d", num_classes=num_classes, **kw)


@register_model
def p3d_r50(*, num_classes: int = 0, variant: Literal["A", "B", "C"] = "C", **kw) -> AP3DResNet:
    """P3D-A/B/C in 5 blocks of layer2/3 (24.20 M, Table 1); ``variant=`` picks the wiring."""
    return _build("p3d", num_classes=num_classes, variant=variant, **kw)


@register_model
def ap3d_r50(*, num_classes: int = 0, variant: Literal["A", "B", "C"] = "C", **kw) -> AP3DResNet:
    """AP3D = AP-P3D-C, the paper's default (24.24 M, Table 1); ``variant=`` gives AP-P3D-A/B."""
    return _build("p3d", num_classes=num_classes, variant=variant, appearance_preserving=True, **kw)


@register_model
def ap_i3d_r50(*, num_classes: int = 0, **kw) -> AP3DResNet:
    """AP-I3D: APM before each 3x3x3 conv (27.68 M, Table 1)."""
    return _build("i3d", num_classes=num_classes, appearance_preserving=True, **kw)


@register_model
def nl_c2d_r50(*, num_classes: int = 0, **kw) -> AP3DResNet:
    """NL: C2D with 5 non-local blocks (30.87 M, Table 2)."""
    return _build("c2d", num_classes=num_classes, nonlocal_blocks=True, **kw)


@register_model
def nl_p3d_r50(*, num_classes: int = 0, **kw) -> AP3DResNet:
    """NL-P3D: P3D-C with 5 non-local blocks (31.56 M, Table 2)."""
    return _build("p3d", num_classes=num_classes, nonlocal_blocks=True, **kw)


@register_model
def nl_ap3d_r50(*, num_classes: int = 0, **kw) -> AP3DResNet:
    """NL-AP3D: AP3D with 5 non-local blocks, the paper's best (31.60 M, Table 2)."""
    return _build(
        "p3d", num_classes=num_classes, appearance_preserving=True, nonlocal_blocks=True, **kw
    )


# --- ResNet-18/34 (Table 4) ---------------------------------------------------------------------


def _small(kind: Kind, depth: Literal[18, 34], ap: bool, num_classes: int, kw) -> AP3DResNet:
    return _build(kind, depth=depth, appearance_preserving=ap, num_classes=num_classes, **kw)


@register_model
def c2d_r18(*, num_classes: int = 0, **kw) -> AP3DResNet:
    """C2D on ResNet-18 (Table 4)."""
    return _small("c2d", 18, False, num_classes, kw)


@register_model
def p3d_r18(*, num_classes: int = 0, **kw) -> AP3DResNet:
    """P3D-C on ResNet-18, 2 blocks (Table 4)."""
    return _small("p3d", 18, False, num_classes, kw)


@register_model
def ap3d_r18(*, num_classes: int = 0, **kw) -> AP3DResNet:
    """AP3D on ResNet-18, 2 blocks (Table 4)."""
    return _small("p3d", 18, True, num_classes, kw)


@register_model
def c2d_r34(*, num_classes: int = 0, **kw) -> AP3DResNet:
    """C2D on ResNet-34 (Table 4)."""
    return _small("c2d", 34, False, num_classes, kw)


@register_model
def p3d_r34(*, num_classes: int = 0, **kw) -> AP3DResNet:
    """P3D-C on ResNet-34, 5 blocks (Table 4)."""
    return _small("p3d", 34, False, num_classes, kw)


@register_model
def ap3d_r34(*, num_classes: int = 0, **kw) -> AP3DResNet:
    """AP3D on ResNet-34, 5 blocks (Table 4)."""
    return _small("p3d", 34, True, num_classes, kw)
