"""Building blocks shared by the models."""

from __future__ import annotations

from reid_models.layers.apm import APM
from reid_models.layers.heads import BNNeckHead, BottleneckHead, EmbeddingHead
from reid_models.layers.init import keep_init
from reid_models.layers.nonlocal_block import NonLocalBlock
from reid_models.layers.temporal_conv import I3DConv, P3DConv

__all__ = [
    "APM",
    "BNNeckHead",
    "BottleneckHead",
    "EmbeddingHead",
    "I3DConv",
    "NonLocalBlock",
    "P3DConv",
    "keep_init",
]
