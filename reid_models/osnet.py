"""OSNet x0.25 run on clips frame by frame (C2D), and with AP3D's temporal kernels inserted.

The backbone is OSNet (Zhou et al., "Omni-Scale Feature Learning for Person Re-Identification",
ICCV 2019, §3; torchreid ``torchreid/models/osnet.py``, ``osnet_x0_25``): channels
[16, 64, 96, 128], two `OSBlock` per stage, each block a 1x1 reduction to a quarter of its
width, four Lite 3x3 streams of depth 1-4 (§3.2, Fig. 4) fused by one shared `ChannelGate`
(the unified aggregation gate, §3.2), a 1x1 expansion and a residual; a 7x7/2 stem with a 3x3/2
max pool, 1x1 conv + 2x2 average pool between stages 2-3 and 3-4, a 1x1 ``conv5``, global
average pooling and ``fc`` = Linear(128, 512) + BatchNorm1d + ReLU, whose output is the
embedding torchreid returns in eval mode. Module names are torchreid's, so that the names the
ONNX export kept (``conv2.0.conv2a.conv1.weight``, ``fc.0.weight``...) are this model's keys
under ``backbone.``.

    clip (B, 3, T, 256, 128) -> OSNetTrunk, every conv per frame -> (B, T, 512) frame features
      -> L2-normalise each frame -> mean over T -> embedding (B, 512)

**Identity BatchNorm.** The weights come from ``osnet_x0_25_msmt17.onnx``
(`reid_models.osnet_onnx`), an export in which every BatchNorm2d is folded into the preceding
conv: W' = W * g / sqrt(v + eps), b' = beta - m * g / sqrt(v + eps). The BN statistics are not
in the file, so the convs here carry that bias and there is no BatchNorm2d at all: the folded
conv *is* conv + BN with the BN's inference statistics. Fine-tuning then keeps exactly that
behaviour, which is also what site adaptation needs: its batches are a few clips of a few
identities, whose batch statistics would drift the running ones (and train/eval would disagree).
The one unfolded BN, ``fc.1`` (the ONNX keeps it as a BatchNormalization node), stays a
BatchNorm1d and is *frozen in eval mode*: `OSNetVideo.train` puts it back in eval after every
mode change (its affine weight and bias still train; its running statistics never move). A
randomly initialised model (no ONNX) is therefore a network without normalisation: He-initialised
by fan_in (`_init_params`), it runs, but it is meant to start from the ONNX weights.

The frame convs are `FrameConv` (a Conv2d folding T into the batch), so the ONNX's 4D kernels
load as they are and the frame model costs what the image model costs.

**Temporal insertion (ap3d_osnet_x0_25).** AP3D (Gu et al., ECCV 2020, §3) adds to a block's
conv S a temporal 3x1x1 conv T reading APM's aligned neighbours, wired as P3D-C:
``S(u) + T(APM(S(u)))`` with T zero-initialised (`reid_models.layers.temporal_conv.P3DConv`,
reused here). In OSNet, S is an `OSBlock`'s ``conv1`` 1x1 reduction (its folded BN included),
and the ReLU follows the sum, as AP3D's BN + ReLU follow its P3D conv. Placement: block 0 of
``conv3`` and ``conv4``, the analogue of AP3D's "half of the residual blocks" of layer2 and
layer3 for a two-block stage, the same blocks `reid_models.ap3d` picks for ResNet-18
(``temporal_blocks=`` overrides). APM's reduction is 4, not the paper's 16: the reduced widths
are 24 and 32 channels, which /16 would map to 1-2-dimensional embeddings whose cosine
similarity (Eq. 2) is only a sign; /4 gives 6 and 8, the 8 of AP3D on ResNet-18's layer2 (128
channels / 16). With the temporal kernels zero the model computes the frame model exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from reid_models._registry import register_model
from reid_models.base import ReIDModel, TrainOutput
from reid_models.layers.init import has_kept_init
from reid_models.layers.temporal_conv import P3DConv
from reid_models.pretrained import PretrainedCfg

__all__ = [
    "CHANNELS",
    "OSNET_CFG",
    "ChannelGate",
    "FrameConv",
    "OSBlock",
    "OSNetTrunk",
    "OSNetVideo",
    "frame_convs",
]

#: osnet_x0_25's stem and stage widths (torchreid ``osnet_x0_25``).
CHANNELS = (16, 64, 96, 128)
#: Blocks per stage conv2, conv3, conv4.
LAYERS = (2, 2, 2)
FEATURE_DIM = 512
#: Blocks that get AP3D's temporal kernel: (stage, block), stage 2-4 as in ``conv2``-``conv4``.
AP3D_BLOCKS = ((3, 0), (4, 0))
#: APM channel reduction in the OSNet blocks (see the module docstring).
APM_REDUCTION = 4

OSNET_CFG = PretrainedCfg(
    paper=(
        "Zhou et al., Omni-Scale Feature Learning for Person Re-Identification, ICCV 2019 "
        "(OSNet x0.25, MSMT17 weights); temporal kernels: Gu et al., Appearance-Preserving 3D "
        "Convolution for Video-based Person Re-id, ECCV 2020"
    ),
    input_size=(3, 256, 128),
    interpolation="bilinear",
    train_clip_len=4,
    train_sampling="stride",
    train_stride=8,
    test_clip_len=8,
    test_sampling="chunks",
    test_stride=8,
    aggregation="mean",
    embedding_dim=FEATURE_DIM,
    distance="cosine",
    normalize_embedding=True,
    source_format="osnet_onnx",
)

Factory = Callable[[int, int], nn.Module]


def per_frame(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Applies a 2D op to every frame of (B, C, T, H, W): T folded into the batch and back.

    The result is a (B, C', T, H', W') view of a (B*T, C', H', W') tensor, so the next
    `per_frame` folds it again without a copy.
    """
    b, c, t, h, w = x.shape
    out = fn(x.transpose(1, 2).reshape(b * t, c, h, w))
    return out.reshape(b, t, *out.shape[1:]).transpose(1, 2)


class FrameConv(nn.Conv2d):
    """A Conv2d applied to each frame: (B, C, T, H, W) -> (B, C', T, H', W')."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return per_frame(super().forward, x)


def _conv(
    in_ch: int, out_ch: int, kernel: int = 1, *, stride: int = 1, groups: int = 1, bias: bool = True
) -> FrameConv:
    return FrameConv(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=bias)


class ConvLayer(nn.Module):
    """conv (BN folded) + ReLU: torchreid's ``ConvLayer``, ``Conv1x1`` and, without the ReLU,
    ``Conv1x1Linear``; `conv` replaces the frame conv (a `P3DConv` in AP3D blocks)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int = 1,
        *,
        stride: int = 1,
        relu: bool = True,
        conv: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv = conv if conv is not None else _conv(in_ch, out_ch, kernel, stride=stride)
        self.relu = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x))


class LightConv3x3(nn.Module):
    """1x1 conv (no bias, no BN in torchreid) -> depthwise 3x3 (BN folded) -> ReLU (§3.1)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv1 = _conv(in_ch, out_ch, 1, bias=False)
        self.conv2 = _conv(out_ch, out_ch, 3, groups=out_ch)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.conv1(x)))


def _light_stream(channels: int, depth: int) -> nn.Module:
    """A stream of `depth` Lite 3x3 layers (receptive field 2 * depth + 1, §3.2)."""
    if depth == 1:
        return LightConv3x3(channels, channels)
    return nn.Sequential(*(LightConv3x3(channels, channels) for _ in range(depth)))


class ChannelGate(nn.Module):
    """The unified aggregation gate (§3.2, Eq. 3): per-frame global average pool, 1x1 fc1 with
    reduction 16, ReLU, 1x1 fc2, sigmoid; its output rescales the input's channels."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.fc1 = _conv(channels, max(1, channels // reduction))
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = _conv(max(1, channels // reduction), channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean(dim=(3, 4), keepdim=True)
        return x * torch.sigmoid(self.fc2(self.relu(self.fc1(pooled))))


class OSBlock(nn.Module):
    """Omni-scale residual block (§3.2, Fig. 4): x + conv3(sum_t gate(stream_t(conv1(x)))).

    Args:
        in_ch: Input channels.
        out_ch: Output channels; the streams run at ``out_ch // 4``.
        reduction_conv: Replacement for ``conv1``'s conv, given (in_ch, mid); None keeps the
            frame conv (AP3D blocks pass a `P3DConv` factory).
    """

    def __init__(self, in_ch: int, out_ch: int, *, reduction_conv: Factory | None = None) -> None:
        super().__init__()
        mid = out_ch // 4
        conv = reduction_conv(in_ch, mid) if reduction_conv is not None else None
        self.conv1 = ConvLayer(in_ch, mid, conv=conv)
        self.conv2a = _light_stream(mid, 1)
        self.conv2b = _light_stream(mid, 2)
        self.conv2c = _light_stream(mid, 3)
        self.conv2d = _light_stream(mid, 4)
        self.gate = ChannelGate(mid)
        self.conv3 = ConvLayer(mid, out_ch, relu=False)
        self.downsample = ConvLayer(in_ch, out_ch, relu=False) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.conv1(x)
        g = self.gate  # one gate shared by the four streams (§3.2)
        x2 = g(self.conv2a(x1)) + g(self.conv2b(x1)) + g(self.conv2c(x1)) + g(self.conv2d(x1))
        identity = self.downsample(x) if self.downsample is not None else x
        return F.relu(self.conv3(x2) + identity)


def ap3d_reduction_conv(in_ch: int, mid: int) -> P3DConv:
    """`OSBlock.conv1`'s 1x1 conv as AP-P3D-C: S(u) + T(APM(S(u))), T zero (module docstring)."""
    return P3DConv(
        in_ch,
        mid,
        variant="C",
        appearance_preserving=True,
        kernel=1,
        bias=True,
        apm_reduction=APM_REDUCTION,
    )


class OSNetTrunk(nn.Module):
    """OSNet x0.25 up to its ``fc``: (B, 3, T, H, W) -> (B, T, 512) per-frame features.

    Args:
        temporal_blocks: (stage, block) pairs whose ``conv1`` becomes `ap3d_reduction_conv`;
            empty for the frame model.
    """

    def __init__(self, temporal_blocks: Sequence[Sequence[int]] = ()) -> None:
        super().__init__()
        temporal = {tuple(b) for b in temporal_blocks}
        stages = {2, 3, 4}
        bad = [b for b in temporal if len(b) != 2 or b[0] not in stages or not 0 <= b[1] < 2]
        if bad:
            raise ValueError(f"temporal_blocks must be (stage 2-4, block 0-1) pairs, got {bad}")
        c = CHANNELS
        self.conv1 = ConvLayer(3, c[0], 7, stride=2)
        self.maxpool = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))
        self.conv2 = self._stage(2, c[0], c[1], temporal, transition=True)
        self.conv3 = self._stage(3, c[1], c[2], temporal, transition=True)
        self.conv4 = self._stage(4, c[2], c[3], temporal, transition=False)
        self.conv5 = ConvLayer(c[3], c[3])
        self.fc = nn.Sequential(nn.Linear(c[3], FEATURE_DIM), nn.BatchNorm1d(FEATURE_DIM))
        self.fc.append(nn.ReLU(inplace=True))
        _init_params(self)

    @staticmethod
    def _stage(
        stage: int, in_ch: int, out_ch: int, temporal: set[tuple[int, ...]], *, transition: bool
    ) -> nn.Sequential:
        """torchreid's ``_make_layer``: the blocks, then 1x1 conv + 2x2 average pool."""
        blocks = nn.Sequential()
        for i in range(LAYERS[stage - 2]):
            conv = ap3d_reduction_conv if (stage, i) in temporal else None
            blocks.append(OSBlock(in_ch if i == 0 else out_ch, out_ch, reduction_conv=conv))
        if transition:
            pool = nn.AvgPool3d((1, 2, 2), (1, 2, 2))
            blocks.append(nn.Sequential(ConvLayer(out_ch, out_ch), pool))
        return blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        x = self.conv5(self.conv4(self.conv3(self.conv2(x))))
        pooled = x.mean(dim=(3, 4)).transpose(1, 2)  # (B, T, C): global average pool per frame
        b, t, c = pooled.shape
        return self.fc(pooled.reshape(b * t, c)).reshape(b, t, -1)


def _init_params(module: nn.Module) -> None:
    """torchreid's ``OSNet._init_params`` (N(0, 0.01) linears, zero biases, BN 1/0) except that
    convs are He-initialised by fan_in, not fan_out: torchreid's BNs renormalise every conv,
    these convs have none, and PyTorch counts a depthwise kernel's fan_out as C * 9 where one
    output reads 9 inputs, which would shrink each Lite 3x3 layer's output by ~sqrt(C) and leave
    the four streams (and a temporal kernel before them) silent. Modules that own their init
    (`keep_init`: temporal kernels, APM) are skipped."""
    for m in module.modules():
        if has_kept_init(m):
            continue
        if isinstance(m, nn.Conv2d | nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
        elif isinstance(m, nn.BatchNorm1d):
            nn.init.ones_(m.weight)
        else:
            continue
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def frame_convs(trunk: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    """The trunk's frame convs in registration (= forward) order, as the ONNX graph runs them;
    temporal kernels and APM (Conv3d, or inside a `P3DConv`) are left out."""
    skip = [f"{n}." for n, m in trunk.named_modules() if isinstance(m, P3DConv)]
    return [
        (n, m)
        for n, m in trunk.named_modules()
        if isinstance(m, nn.Conv2d) and not n.startswith(tuple(skip))
    ]


class OSNetVideo(ReIDModel):
    """OSNet x0.25 on clips: frame features, L2-normalised per frame, averaged over T.

    `forward_features`: (B, 3, T, H, W) -> (B, T, 512) per-frame ``fc`` outputs.
    `forward_head`: embedding = mean over T of the unit frame features (what
    `deploy.engines.external` computes from the ONNX; the engine normalises the mean). Training:
    `TrainOutput(features=embedding, logits=classifier(mean over T of the raw frame features))`;
    the classifier reads the raw features as torchreid's does (a unit-norm input would bound the
    logits to the classifier's row norms).

    The fc BatchNorm1d (``backbone.fc.1``) is frozen: `train` keeps it in eval mode.
    """

    #: Modules `train` keeps in eval mode (their running statistics never update).
    frozen_bn: tuple[str, ...] = ("backbone.fc.1",)

    def __init__(
        self,
        *,
        num_classes: int,
        pretrained_cfg: PretrainedCfg,
        temporal_blocks: Sequence[Sequence[int]] = (),
    ) -> None:
        super().__init__(pretrained_cfg=pretrained_cfg, num_classes=num_classes)
        self.backbone = OSNetTrunk(temporal_blocks)
        self.order_sensitive = len(temporal_blocks) > 0
        self.classifier = None
        if num_classes > 0:
            self.classifier = nn.Linear(FEATURE_DIM, num_classes, bias=False)
            nn.init.normal_(self.classifier.weight, 0, 0.01)
        self.train(self.training)

    def train(self, mode: bool = True) -> OSNetVideo:
        """Sets the mode, keeping the `frozen_bn` modules in eval (module docstring)."""
        super().train(mode)
        for name in self.frozen_bn:
            self.get_submodule(name).eval()
        return self

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward_head(
        self, x: torch.Tensor, *, pre_logits: bool = False
    ) -> torch.Tensor | TrainOutput:
        embedding = F.normalize(x, dim=2).mean(dim=1)
        if pre_logits:
            return embedding
        logits = () if self.classifier is None else (self.classifier(x.mean(dim=1)),)
        return TrainOutput(embedding, logits)


@register_model
def c2d_osnet_x0_25(*, num_classes: int = 0) -> OSNetVideo:
    """OSNet x0.25 per frame, temporal mean of unit frame features (the ONNX model as a clip
    model); loads ``osnet_x0_25_msmt17.onnx``."""
    return OSNetVideo(num_classes=num_classes, pretrained_cfg=OSNET_CFG)


@register_model
def ap3d_osnet_x0_25(
    *, num_classes: int = 0, temporal_blocks: Sequence[Sequence[int]] = AP3D_BLOCKS
) -> OSNetVideo:
    """OSNet x0.25 with AP3D's APM + zero-initialised 3x1x1 kernel after ``conv1`` of block 0 of
    conv3 and conv4 (module docstring); equals `c2d_osnet_x0_25` until the kernels train."""
    return OSNetVideo(
        num_classes=num_classes, pretrained_cfg=OSNET_CFG, temporal_blocks=temporal_blocks
    )
