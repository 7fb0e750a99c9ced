"""3D ResNet-50 with non-local blocks for video ReID (Liao et al., ACCV 2018, arXiv 1807.05073).

The paper names neither kernel sizes nor strides, and its authors released no code. Its
description (a temporal 1D conv then a spatial 2D conv in the residual blocks, §3.1; 5 non-local
blocks "to every other residual block", following Wang et al., and a zero-gamma BN after W_z,
§4.2; 8 frames "randomly cropped out from 64 consecutive frames every eight frames", §4.2) is Wang
et al.'s Kinetics I3D-NL ResNet-50 "8x8" (facebookresearch/video-nonlocal-net,
``lib/models/resnet_video.py``), so we build exactly that:

    clip (B, 3, 8, 256, 128)
    conv1 5x7x7 /(1,2,2) -> max-pool 1x3x3 /(1,2,2)            (B, 64, 8, 64, 32)
    res2: 3 blocks, branch2a 3x1x1 in all                       (B, 256, 8, 64, 32)
    pool2: max 2x1x1 /(2,1,1)                                   (B, 256, 4, 64, 32)
    res3: 4 blocks, 3x1x1 in blocks 0, 2; NL after 1, 3         (B, 512, 4, 32, 16)
    res4: 6 blocks, 3x1x1 in blocks 0, 2, 4; NL after 1, 3, 5   (B, 1024, 4, 16, 8)
    res5: 3 blocks, 3x1x1 in block 1; last stride kept at 2     (B, 2048, 4, 8, 4)
    average over T, H, W -> FC 2048->512 -> BN -> LeakyReLU(0.1) = embedding (B, 512)
    train: -> Dropout(0.5) -> classifier (CE with label smoothing) + triplet on the 512-d feature

Choices where the paper is silent: the bottleneck is 512 wide (layumi's ClassBlock; §4.2 gives no
width); the triplet and the retrieval feature are its output before dropout ("the layer outputs
before final classification layer", §3.1), matched by Euclidean distance without normalisation (§3:
"L2 distance"); non-local blocks sub-sample as Wang et al.'s code does and do not scale (the paper's
Eq. 4 has no scale). From ImageNet, a 2D kernel inflates into the centre temporal slice so that the
network starts as its 2D source (on a static clip); the paper's "1/t rescale" is
``load_pretrained(model, path, inflate="mean")``. Kinetics I3D-NL checkpoints (Wang's Caffe2 or
mmaction2's) have this layout but other key names and need converting first.
"""

from __future__ import annotations

import torch

from reid_models._registry import register_model
from reid_models.base import ReIDModel, TrainOutput
from reid_models.layers.heads import BottleneckHead
from reid_models.layers.nonlocal_block import gradient_free_parameters
from reid_models.pretrained import PretrainedCfg
from reid_models.resnet3d import (
    ResNetSpec,
    VideoResNet,
    conv_table,
    pointwise_conv,
    temporal_pointwise_conv,
)

__all__ = ["I3DNonLocalResNet"]

I3D_NL_CFG = PretrainedCfg(
    paper="Liao et al., Video-based Person Re-identification via 3D Convolutional Networks "
    "and Non-local Attention, ACCV 2018",
    train_clip_len=8,
    train_sampling="stride",
    train_stride=8,
    test_clip_len=8,
    test_sampling="chunks",
    test_stride=8,
    aggregation="mean",
    embedding_dim=512,
    distance="euclidean",
    normalize_embedding=False,
)
#: (layer, block) whose 1x1 ``branch2a`` becomes 3x1x1: Wang et al.'s ((1,1,1), (1,0,1,0),
#: (1,0,1,0,1,0), (0,1,0)).
INFLATED_1X1 = ((1, 0), (1, 1), (1, 2), (2, 0), (2, 2), (3, 0), (3, 2), (3, 4), (4, 1))
NONLOCAL_AFTER = {2: frozenset({1, 3}), 3: frozenset({1, 3, 5})}


class I3DNonLocalResNet(ReIDModel):
    """I3D-NL ResNet-50 with the paper's FC-BN-LeakyReLU-Dropout bottleneck head.

    `forward_features`: (B, 3, T, H, W) -> (B, 2048, T/2, H/32, W/32).
    `forward_head`: global average over T, H, W, then the bottleneck (embedding 512).
    """

    min_clip_len = 2  # pool2 halves T

    def __init__(self, *, num_classes: int, bottleneck_dim: int = 512) -> None:
        spec = ResNetSpec(
            depth=50,
            conv1=conv_table(
                50, dict.fromkeys(INFLATED_1X1, temporal_pointwise_conv), pointwise_conv
            ),
            nonlocal_after=NONLOCAL_AFTER,
            last_stride=2,
            stem_temporal_kernel=5,
            temporal_pool="after_layer1",
        )
        cfg = I3D_NL_CFG.with_changes(embedding_dim=bottleneck_dim)
        super().__init__(pretrained_cfg=cfg, num_classes=num_classes)
        self.backbone = VideoResNet(spec)
        self.head = BottleneckHead(2048, num_classes, dim=bottleneck_dim)
        self.detached_parameters = gradient_free_parameters(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward_head(
        self, x: torch.Tensor, *, pre_logits: bool = False
    ) -> torch.Tensor | TrainOutput:
        pooled = x.mean(dim=(2, 3, 4))
        return self.head.embedding(pooled) if pre_logits else self.head.train_output(pooled)


@register_model
def i3d_nl_r50(*, num_classes: int = 0, bottleneck_dim: int = 512) -> I3DNonLocalResNet:
    """I3D ResNet-50 with 5 non-local blocks and a 512-d bottleneck (Liao et al. 2018)."""
    return I3DNonLocalResNet(num_classes=num_classes, bottleneck_dim=bottleneck_dim)
