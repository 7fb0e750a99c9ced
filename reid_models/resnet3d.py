"""Video ResNet trunks in (B, C, T, H, W) layout whose state-dict keys are torchvision's.

Every 2D convolution of torchvision's ResNet-18/34/50 is a Conv3d with temporal kernel 1, so a
torchvision ImageNet state dict loads by name, and 3D variants are tables of conv factories, one per
residual block, as in torchvision's video ResNets (``models/video/resnet.py``): C2D, I3D, P3D, AP3D
and the non-local variants differ only in those tables. BatchNorm3d normalises over B*T*H*W, the
same statistics as a 2D ResNet run on (B*T, C, H, W), and as the official AP3D code, which reuses
the 2D BatchNorms on 5D tensors (github.com/guxinqian/AP3D, ``models/inflate.py``).

    stem:  conv1 t0x7x7 /(1, 2, 2) -> BN -> ReLU -> max-pool 1x3x3 /(1, 2, 2)
    layer1 [-> temporal max-pool 2 (I3D-NL's pool2)] -> layer2 -> layer3 -> layer4
    each layerN: blocks "0", "1", ... and optional "nonlocal<i>" after block i

Widths: the stem has `ResNetSpec.base_width` channels and the stages base_width x (1, 2, 4, 8)
(times 4 after a bottleneck). 64 is torchvision's ResNet, the one every paper here uses and the
only width ImageNet weights fit. ``base_width`` is not from the papers: narrower trunks (16, 32)
are a reidstream addition for CPU demos and tests; the blocks, temporal convs, APM and non-local
layers are the same modules at any width.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from reid_models.layers.init import has_kept_init
from reid_models.layers.nonlocal_block import NonLocalBlock
from reid_models.layers.temporal_conv import spatial_conv

__all__ = [
    "BasicBlock3d",
    "Bottleneck3d",
    "ConvFactory",
    "ResNetSpec",
    "VideoResNet",
    "conv_table",
    "pointwise_conv",
    "spatial_conv",
    "temporal_pointwise_conv",
]

#: Builds a conv: (in_ch, out_ch, *, stride) -> module mapping (B, C_in, T, H, W) to C_out.
ConvFactory = Callable[..., nn.Module]
LAYER_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3)}


def pointwise_conv(in_ch: int, out_ch: int, *, stride: int = 1) -> nn.Conv3d:
    return nn.Conv3d(in_ch, out_ch, 1, (1, stride, stride), bias=False)


def temporal_pointwise_conv(in_ch: int, out_ch: int, *, stride: int = 1) -> nn.Conv3d:
    """3x1x1 conv: I3D-NL's inflated ``branch2a`` (a 1x1 conv given a temporal extent)."""
    return nn.Conv3d(in_ch, out_ch, (3, 1, 1), (1, stride, stride), (1, 0, 0), bias=False)


class Bottleneck3d(nn.Module):
    """torchvision's Bottleneck (stride on the 3x3, "v1.5") with pluggable conv1 and conv2."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        *,
        stride: int,
        downsample: nn.Module | None,
        conv2: ConvFactory = spatial_conv,
        conv1: ConvFactory = pointwise_conv,
    ) -> None:
        super().__init__()
        self.conv1 = conv1(inplanes, planes)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = conv2(planes, planes, stride=stride)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = pointwise_conv(planes, planes * 4)
        self.bn3 = nn.BatchNorm3d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class BasicBlock3d(nn.Module):
    """torchvision's BasicBlock; the 3D factory replaces ``conv1``, the 3x3 that carries the
    stride, as the bottleneck's replaced ``conv2`` does. AP3D (Gu et al., ECCV 2020, §5.4,
    Table 4) replaces "half of the residual blocks" of ResNet-18/34 without saying which of the
    two 3x3 convs, and the official code builds only ResNet-50."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        *,
        stride: int,
        downsample: nn.Module | None,
        conv2: ConvFactory = spatial_conv,
        conv1: ConvFactory | None = None,
    ) -> None:
        super().__init__()
        if conv1 is not None:
            raise ValueError("BasicBlock3d has no 1x1 conv to replace")
        self.conv1 = conv2(inplanes, planes, stride=stride)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = spatial_conv(planes, planes)
        self.bn2 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


@dataclass(frozen=True)
class ResNetSpec:
    """What varies between the video ResNets.

    Attributes:
        depth: 18, 34 or 50.
        conv2: Per layer, per block: the factory of the replaceable 3x3 conv.
        conv1: Per layer, per block: the bottleneck's first 1x1 conv (ResNet-50 only).
        nonlocal_after: Per layer index (1-4): blocks followed by a non-local block.
        last_stride: Spatial stride of layer4 (1 keeps a 16x8 map at 256x128, the ReID habit).
        stem_temporal_kernel: Temporal extent of conv1 (I3D-NL: 5).
        temporal_pool: Where a (2, 1, 1) max-pool halves T; ``"after_layer1"`` is I3D-NL's pool2.
        nonlocal_pool_first: Non-local blocks pool before their phi/g convs (see NonLocalBlock).
        base_width: Channels of the stem; the stages have base_width x (1, 2, 4, 8). 64 is
            torchvision's layout (the papers' network, the width ImageNet weights fit); smaller
            widths are not from the papers (see the module docstring).
    """

    depth: Literal[18, 34, 50] = 50
    conv2: tuple[tuple[ConvFactory, ...], ...] | None = None
    conv1: tuple[tuple[ConvFactory, ...], ...] | None = None
    nonlocal_after: Mapping[int, frozenset[int]] = field(default_factory=dict)
    last_stride: int = 1
    stem_temporal_kernel: int = 1
    temporal_pool: Literal["none", "after_layer1"] = "none"
    nonlocal_pool_first: bool = True
    base_width: int = 64

    def __post_init__(self) -> None:
        if self.base_width < 1:
            raise ValueError(f"ResNetSpec.base_width must be >= 1, got {self.base_width}")

    @property
    def out_channels(self) -> int:
        """Channels of the trunk's output: 8 x base_width, x 4 after ResNet-50's bottlenecks."""
        return 8 * self.base_width * (Bottleneck3d.expansion if self.depth == 50 else 1)


def conv_table(
    depth: int, replace: Mapping[tuple[int, int], ConvFactory], default: ConvFactory
) -> tuple[tuple[ConvFactory, ...], ...]:
    """Per-block factories: `default` everywhere but at (layer 1-4, 0-based block) in `replace`."""
    blocks = LAYER_BLOCKS[depth]
    for layer, idx in replace:
        if not (1 <= layer <= 4 and 0 <= idx < blocks[layer - 1]):
            raise ValueError(f"block ({layer}, {idx}) is not in a ResNet-{depth} {blocks}")
    return tuple(
        tuple(replace.get((layer, i), default) for i in range(n))
        for layer, n in enumerate(blocks, start=1)
    )


class ResLayer(nn.Module):
    """Residual blocks named "0", "1", ... (torchvision's keys) and non-local blocks between."""

    def __init__(
        self, blocks: Sequence[nn.Module], nonlocal_after: frozenset[int], *, pool_first: bool
    ) -> None:
        super().__init__()
        # Children run in the order they are added (nn.Module keeps insertion order).
        for i, block in enumerate(blocks):
            self.add_module(str(i), block)
            if i in nonlocal_after:
                channels = _out_channels(block)
                self.add_module(f"nonlocal{i}", NonLocalBlock(channels, pool_first=pool_first))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.children():
            x = module(x)
        return x


def _out_channels(block: nn.Module) -> int:
    last_bn = block.bn3 if isinstance(block, Bottleneck3d) else block.bn2
    return last_bn.num_features


class VideoResNet(nn.Module):
    """A ResNet trunk for clips: (B, 3, T, H, W) -> (B, C, T', H / s, W / s).

    C is 8 x base_width x 4 (2048 for ResNet-50) or 8 x base_width (512 for 18/34), also
    `out_channels`; s is 16 with ``last_stride=1``, else 32; T' is T, or
    T // 2 with I3D-NL's temporal pool.
    """

    def __init__(self, spec: ResNetSpec) -> None:
        super().__init__()
        if spec.depth not in LAYER_BLOCKS:
            raise ValueError(f"depth must be one of {sorted(LAYER_BLOCKS)}, got {spec.depth}")
        self.spec = spec
        block = Bottleneck3d if spec.depth == 50 else BasicBlock3d
        width = spec.base_width
        self.out_channels = spec.out_channels
        t = spec.stem_temporal_kernel
        self.conv1 = nn.Conv3d(3, width, (t, 7, 7), (1, 2, 2), (t // 2, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))
        self.pool2 = nn.MaxPool3d((2, 1, 1)) if spec.temporal_pool == "after_layer1" else None
        conv2 = spec.conv2 or conv_table(spec.depth, {}, spatial_conv)
        conv1 = spec.conv1 if spec.depth == 50 else None
        inplanes = width
        for i, stride in enumerate((1, 2, 2, 2)):
            planes = width * 2**i
            stride = spec.last_stride if i == 3 else stride
            blocks = []
            for j, factory in enumerate(conv2[i]):
                extra = {"conv1": conv1[i][j]} if conv1 is not None else {}
                down = None
                if j == 0 and (stride != 1 or inplanes != planes * block.expansion):
                    down = nn.Sequential(
                        pointwise_conv(inplanes, planes * block.expansion, stride=stride),
                        nn.BatchNorm3d(planes * block.expansion),
                    )
                s = stride if j == 0 else 1
                blocks.append(
                    block(inplanes, planes, stride=s, downsample=down, conv2=factory, **extra)
                )
                inplanes = planes * block.expansion
            nl = frozenset(spec.nonlocal_after.get(i + 1, ()))
            self.add_module(
                f"layer{i + 1}", ResLayer(blocks, nl, pool_first=spec.nonlocal_pool_first)
            )
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if has_kept_init(m):
                continue
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def stages(self) -> tuple[ResLayer, ResLayer, ResLayer, ResLayer]:
        return (self.layer1, self.layer2, self.layer3, self.layer4)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer1(self.stem(x))
        if self.pool2 is not None:
            x = self.pool2(x)
        return self.layer4(self.layer3(self.layer2(x)))
