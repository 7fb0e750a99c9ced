"""Two-stream M3D: a 2D ResNet-50 spatial stream and an M3D + RAL temporal stream (Li et al.,
"Multi-scale 3D Convolution Network for Video Based Person Re-Identification", AAAI 2019).

    clip (B, 3, 8, 256, 128)
     ├─ spatial.backbone: ResNet-50 per frame (C2D)                 (B, 2048, 8, 8, 4)
     │    mean over T, H, W -> FC 2048->128 = f_s                   (B, 128)
     └─ temporal.backbone: ResNet-50 + M3D + RAL                    (B, 2048, 8, 8, 4)
          stem -> layer1 (block 0: M3D) -> RAL -> layer2 (M3D) -> RAL
               -> layer3 (M3D) -> RAL -> layer4 (M3D)
          mean over T, H, W -> FC 2048->128 = f_t                   (B, 128)
     eval:  [l2norm(f_s), l2norm(f_t)]                              (B, 256), Euclidean
     train: per stream f -> BN1d -> ReLU -> Dropout(0.5) -> FC -> logits (CE each)

Choices between the paper and the official code, which differ in places (github.com/ljn114514/M3D,
``ResNet50-M3D/model/M3D.py`` and ``ResNet50-M3D_RAL/resnet.py``):

* Topology, ``m3d_r50`` (the paper's): M3D in the first bottleneck of each of the 4 stages ("4
  residual blocks at the beginning of each stage", Implementation Details), reading the 3x3 conv's
  output after its BN + ReLU (the code's slot; the paper does not say which conv is S), no
  temporal down-sampling, n = floor((T-1)/2) kernels with dilations 1..n in every M3D layer (Eq.
  6; n = 3 at T = 8). ``m3d_code_r50`` is the official code's topology: a 5th M3D layer on the
  stem (after conv1 + BN + ReLU, before the max-pool), temporal stride 2 in stages 2-4 with the
  spatial path and the shortcut averaged over frame pairs, n = log2(T_in) capped at 3 (the code
  has at most 3 kernels), RALs at T, T/2, T/4, T' = T/8 at the end.
* Both topologies fix the dilations and the RALs' T -> 2T -> T temporal branch at build time from
  ``clip_len`` (default 8, the paper's T). The model accepts exactly that T (`min_clip_len` is
  set to it, so the registry tests feed 8 frames) and raises `ValueError` on any other; build
  with ``clip_len=`` for another length. The spatial stream alone accepts any T.
* Temporal kernels are linear and zero-initialised, as Eq. 5 writes them; RAL zero-initialises
  conv_s2 only. See `reid_models.layers.m3d_layers` for why (the code's initialisation of both
  leaves them with exactly zero gradient). Both are identities at init, so each backbone
  computes its torchvision source on a static clip.
* Last stride 2 in both streams: the official head pools an 8x4 map at 256x128 (the paper gives
  no feature sizes).
* Head: the code's GAP -> FC 2048->128, test feature before the BN (the paper gives no
  dimensions); ``EmbeddingHead``.
* Fusion: each stream's 128-d feature is L2-normalised, then concatenated with equal weight (Eq. 1
  concatenates, with no weighting; the code's ``Mars_test/utils/process_box_feat.m`` normalises each
  stream's feature). The code normalises the *sequence* feature (mean of clip features, then L2); a
  model sees one clip, so it normalises per clip and the pipeline's mean + renormalisation of the
  256-d vector stands in for that.
* Training: the paper trains the streams separately with different recipes (Implementation Details:
  2D at LR 0.001 for 20 epochs on 128-image batches; 3D at LR 0.01 for 400 epochs on 24 clips). The
  streams share no parameter, so the sum of the two CEs on ``logits=(spatial, temporal)`` gives each
  stream exactly the gradient of its own CE: joint training differs only in the shared schedule and
  batches. ``stream="spatial"`` or ``"temporal"`` builds one stream, to train each with its own
  recipe (spatial: single frames, ``train_clip_len=1``) and fuse at test time.
* Pretraining: both backbones take the same torchvision ResNet-50 state dict
  (``backbone_prefixes``); the paper's chain ("Initialized on a good 2D CNN model"; the code loads
  its MARS fine-tuned ``ResNet50-2d.pth``) initialises the temporal stream from the 2D stream,
  which is a trainer's job (copy ``spatial`` into ``temporal``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from reid_models._registry import register_model
from reid_models.base import ReIDModel, TrainOutput
from reid_models.layers.heads import EmbeddingHead
from reid_models.layers.m3d_layers import (
    RAL_BRANCHES,
    MultiScaleTemporalConv,
    ResidualAttention,
    m3d_num_kernels,
)
from reid_models.pretrained import PretrainedCfg
from reid_models.resnet3d import Bottleneck3d, ResNetSpec, VideoResNet

__all__ = ["M3DBottleneck", "M3DPlan", "M3DResNet", "TwoStreamM3D"]

M3D_CFG = PretrainedCfg(
    paper="Li et al., Multi-scale 3D Convolution Network for Video Based Person "
    "Re-Identification, AAAI 2019",
    train_clip_len=8,
    train_sampling="consecutive",
    train_stride=1,
    test_clip_len=8,
    test_sampling="chunks_drop_last",
    test_stride=8,
    aggregation="mean",
    embedding_dim=256,
    distance="euclidean",
    normalize_embedding=True,
    backbone_prefixes=("spatial.backbone", "temporal.backbone"),
)
#: Both streams: ResNet-50, layer4 stride 2 (8x4 final map at 256x128, as the official head).
RESNET50 = ResNetSpec(depth=50, last_stride=2)
EMBEDDING_DIM = 128
STAGE_OUT = (256, 512, 1024)  # channels after layer1-3, where the RALs sit
Stream = Literal["both", "spatial", "temporal"]
Topology = Literal["paper", "code"]


@dataclass(frozen=True)
class M3DPlan:
    """Where the temporal stream's M3D kernels go; fixed by the clip length at build time.

    Attributes:
        clip_len: T of the input clip.
        stem_kernels: n of the stem's M3D layer (0: none).
        stage_kernels: n of the M3D layer in block 0 of layer1-4 (dilations 1..n).
        stage_strides: Temporal stride of those layers.
    """

    clip_len: int
    stem_kernels: int
    stage_kernels: tuple[int, int, int, int]
    stage_strides: tuple[int, int, int, int]

    @classmethod
    def paper(cls, clip_len: int) -> M3DPlan:
        """The paper's: 4 layers, T constant, n = floor((T-1)/2) (Eq. 6)."""
        n = m3d_num_kernels(clip_len)
        return cls(clip_len, 0, (n,) * 4, (1, 1, 1, 1))

    @classmethod
    def code(cls, clip_len: int) -> M3DPlan:
        """Official code: stem + 4 layers, T halved in stages 2-4, n = min(3, log2(T_in))."""
        if clip_len < 8 or clip_len % 8:
            raise ValueError(
                f"the code topology halves T three times; clip_len must be a multiple of 8, "
                f"got {clip_len}"
            )
        t_in = (clip_len, clip_len, clip_len // 2, clip_len // 4)
        kernels = tuple(min(3, t.bit_length() - 1) for t in t_in)
        return cls(clip_len, min(3, clip_len.bit_length() - 1), kernels, (1, 2, 2, 2))

    @property
    def stage_frames(self) -> tuple[int, int, int, int]:
        """T after each of layer1-4."""
        frames, t = [], self.clip_len
        for s in self.stage_strides:
            t //= s
            frames.append(t)
        return tuple(frames)


class M3DBottleneck(Bottleneck3d):
    """A torchvision bottleneck whose 3x3 conv (+ BN + ReLU) output gets the M3D residual.

    ``y = s + Σ_i T^(i)(s)`` with s = ReLU(BN(conv2(.))) feeds conv3 (the official code's
    ``ResNet50-M3D/model/M3D.py``; the paper does not say which conv is S). Its 2D
    parts keep torchvision's names; the temporal kernels are ``m3d.convs.<i>``.

    Shape:
        (B, C_in, T, H, W) -> (B, 4 * planes, T / temporal_stride, H / stride, W / stride)
    """

    def __init__(
        self,
        inplanes: int,
        planes: int,
        *,
        stride: int,
        downsample: nn.Module | None,
        dilations: Sequence[int],
        temporal_stride: int = 1,
    ) -> None:
        super().__init__(inplanes, planes, stride=stride, downsample=downsample)
        self.m3d = MultiScaleTemporalConv(
            planes, dilations=dilations, temporal_stride=temporal_stride
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        if self.m3d.temporal_stride > 1:  # the code averages the shortcut over frame pairs
            identity = F.avg_pool3d(identity, (self.m3d.temporal_stride, 1, 1))
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.m3d(self.relu(self.bn2(self.conv2(out))))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class M3DResNet(VideoResNet):
    """The temporal stream's trunk: ResNet-50 with M3D layers and RALs after layer1-3.

    Args:
        plan: Kernel counts and temporal strides (`M3DPlan.paper` or `M3DPlan.code`).
        ral_branches: RAL branches, ``"sct"`` (full RAL), one or two of them (Table 2's
            ablations), or ``""`` for M3D without RAL (Table 1).

    Shape:
        (B, 3, T, H, W) -> (B, 2048, T', H / 32, W / 32), T' = `plan.stage_frames[-1]`;
        T must be `plan.clip_len`.
    """

    def __init__(self, plan: M3DPlan, *, ral_branches: str = RAL_BRANCHES) -> None:
        super().__init__(RESNET50)
        self.plan = plan
        self.stem_m3d = None
        if plan.stem_kernels:
            dilations = range(1, plan.stem_kernels + 1)
            self.stem_m3d = MultiScaleTemporalConv(64, dilations=dilations)
        for stage, n, t_stride in zip(
            self.stages, plan.stage_kernels, plan.stage_strides, strict=True
        ):
            old = stage.get_submodule("0")
            block = M3DBottleneck(
                old.conv1.in_channels,
                old.conv1.out_channels,
                stride=old.conv2.stride[-1],
                downsample=old.downsample,
                dilations=range(1, n + 1),
                temporal_stride=t_stride,
            )
            setattr(stage, "0", block)
        frames = plan.stage_frames
        for i, channels in enumerate(STAGE_OUT):
            ral = None
            if ral_branches:
                ral = ResidualAttention(channels, frames=frames[i], branches=ral_branches)
            setattr(self, f"ral{i + 1}", ral)
        self._init_weights()  # the new blocks' 2D parts; temporal parts are keep_init-marked

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        if self.stem_m3d is not None:
            x = self.stem_m3d(x)
        return self.maxpool(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and x.shape[2] != self.plan.clip_len:
            raise ValueError(
                f"this M3D stream was built for clip_len={self.plan.clip_len} frames "
                f"(fixed dilations and RAL widths), got T={x.shape[2]}; build it with "
                f"clip_len={x.shape[2]} or feed {self.plan.clip_len}-frame clips"
            )
        x = self.stem(x)
        for stage, ral in zip(self.stages, (self.ral1, self.ral2, self.ral3, None), strict=True):
            x = stage(x)
            if ral is not None:
                x = ral(x)
        return x


class StreamHead(nn.Module):
    """One stream: a trunk, global average pooling over T, H, W, and the 128-d embedding head."""

    def __init__(self, backbone: VideoResNet, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = EmbeddingHead(backbone.out_channels, num_classes, dim=EMBEDDING_DIM)

    @staticmethod
    def pool(x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, C): the code's spatial GAP, then Eq. 2's temporal mean."""
        return x.mean(dim=(2, 3, 4))


class TwoStreamM3D(ReIDModel):
    """Spatial (C2D) and temporal (M3D + RAL) ResNet-50 streams, fused by concatenation.

    `forward_features`: (B, 3, T, H, W) -> {stream name: (B, 2048, T', H/32, W/32) map}.
    `forward_head`: per stream GAP -> FC 128; eval: concat of the L2-normalised 128-d features
    (256-d, or 128-d for one stream); train: ``TrainOutput(concat of the 128-d features,
    one logits tensor per stream)``.
    """

    #: The default build's clip length; each instance sets its own (1 for the spatial stream).
    min_clip_len = 8

    def __init__(
        self,
        *,
        spatial: VideoResNet | None,
        temporal: M3DResNet | None,
        num_classes: int,
        pretrained_cfg: PretrainedCfg,
    ) -> None:
        super().__init__(pretrained_cfg=pretrained_cfg, num_classes=num_classes)
        streams = {"spatial": spatial, "temporal": temporal}
        self.stream_names = tuple(name for name, trunk in streams.items() if trunk is not None)
        if not self.stream_names:
            raise ValueError("TwoStreamM3D needs at least one of spatial, temporal")
        for name in self.stream_names:
            self.add_module(name, StreamHead(streams[name], num_classes))
        self.clip_len = temporal.plan.clip_len if temporal is not None else None
        # The spatial stream alone is a frame-mean C2D: any T, blind to frame order.
        self.min_clip_len = self.clip_len or 1
        self.order_sensitive = temporal is not None

    def _streams(self) -> list[tuple[str, StreamHead]]:
        return [(name, self.get_submodule(name)) for name in self.stream_names]

    def check_input(self, x: torch.Tensor) -> None:
        super().check_input(x)
        if self.clip_len is not None and not torch.jit.is_tracing() and x.shape[2] != self.clip_len:
            raise ValueError(
                f"{type(self).__name__} was built for clip_len={self.clip_len} frames, got "
                f"T={x.shape[2]}; build it with clip_len={x.shape[2]} or feed "
                f"{self.clip_len}-frame clips"
            )

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: stream.backbone(x) for name, stream in self._streams()}

    def forward_head(
        self, x: dict[str, torch.Tensor], *, pre_logits: bool = False
    ) -> torch.Tensor | TrainOutput:
        pooled = {name: stream.pool(x[name]) for name, stream in self._streams()}
        if pre_logits:
            return torch.cat(
                [F.normalize(s.head.embedding(pooled[n]), dim=1) for n, s in self._streams()],
                dim=1,
            )
        outs = [stream.head.train_output(pooled[name]) for name, stream in self._streams()]
        features = torch.cat([out.features for out in outs], dim=1)
        return TrainOutput(features, tuple(lg for out in outs for lg in out.logits))


def _build(
    topology: Topology,
    *,
    num_classes: int,
    stream: Stream = "both",
    clip_len: int = 8,
    ral_branches: str = RAL_BRANCHES,
) -> TwoStreamM3D:
    if stream not in ("both", "spatial", "temporal"):
        raise ValueError(f"stream must be 'both', 'spatial' or 'temporal', got {stream!r}")
    plan = M3DPlan.code(clip_len) if topology == "code" else M3DPlan.paper(clip_len)
    spatial = VideoResNet(RESNET50) if stream != "temporal" else None
    temporal = M3DResNet(plan, ral_branches=ral_branches) if stream != "spatial" else None
    names = [n for n, s in (("spatial", spatial), ("temporal", temporal)) if s is not None]
    cfg = M3D_CFG.with_changes(
        # The 2D stream trains on single frames (Implementation Details: batches of 128 images).
        train_clip_len=1 if stream == "spatial" else clip_len,
        test_clip_len=clip_len,
        test_stride=clip_len,
        embedding_dim=EMBEDDING_DIM * len(names),
        backbone_prefixes=tuple(f"{n}.backbone" for n in names),
    )
    return TwoStreamM3D(
        spatial=spatial, temporal=temporal, num_classes=num_classes, pretrained_cfg=cfg
    )


@register_model
def m3d_r50(*, num_classes: int = 0, **kw) -> TwoStreamM3D:
    """Two-stream M3D, paper topology: 4 M3D layers (n = 3 at T = 8) + 3 RALs; 256-d.

    Overrides: ``stream="spatial"|"temporal"`` (one stream, 128-d), ``clip_len=`` (T the
    dilations and RALs are built for), ``ral_branches=`` (``"s"``, ``"c"``, ``"t"``, ``""``).
    """
    return _build("paper", num_classes=num_classes, **kw)


@register_model
def m3d_code_r50(*, num_classes: int = 0, **kw) -> TwoStreamM3D:
    """Two-stream M3D, official-code topology: stem + 4 M3D layers, temporal stride 2 in
    stages 2-4 (n = 3, 3, 3, 2, 1 at T = 8) + 3 RALs; 256-d. Overrides as `m3d_r50`."""
    return _build("code", num_classes=num_classes, **kw)
