"""M3D's two layers: the multi-scale temporal residual (M3D layer) and the Residual Attention Layer.

Li et al., "Multi-scale 3D Convolution Network for Video Based Person Re-Identification", AAAI
2019, Eq. 4-12 ("Multi-scale 3D Convolution" and "Residual Attention Layer"). Both start as an
identity, so a temporal stream built with them computes its 2D source at initialisation, as the
paper intends ("M3D layer can be initialized by setting weights of temporal kernels to 0, which
equals to a 2D CNN layer"; "Through initializing all convolution layers as zero, we can get M =
1/2").

M3D layer (Eq. 4-6), the temporal half; S is the bottleneck's 3x3 conv + BN + ReLU before it:

    s = S(x) ──┬──────────────────────────────┐ (AvgPool (s_t,1,1) if temporally strided)
               ├─ T^(1): 3x1x1, dilation 1 ───┤
               ├─ T^(2): 3x1x1, dilation 2 ───(+)──▶ y = s + Σ_i T^(i)(s)
               └─ T^(n): 3x1x1, dilation n ───┘

Each T^(i) is linear and zero-initialised, as Eq. 5 writes it: the official code
(github.com/ljn114514/M3D, ``ResNet50-M3D/model/M3D.py``) puts BN + ReLU after a zero kernel, whose
output is then exactly 0 with ReLU'(0) = 0, so every branch gets exactly zero gradient for ever; a
linear zero kernel trains. Padding = dilation keeps T.

Residual Attention Layer (Eq. 7-12), y = x/2 + sigmoid(S_m * C_m * T_m) * x:

    x (B,C,T,H,W) ─ mean T ──── conv_s1 3x3 C->1 ─ BN ─ ReLU ─ conv_s2 1x1 1->1 ─▶ S_m (B,1,1,H,W)
                  ─ mean T,H,W ─ conv_c1 C->C/16 ─ BN ─ ReLU ─ conv_c2 C/16->C ─▶ C_m (B,C,1,1,1)
                  ─ mean C,H,W ─ conv_t1 T->2T ── BN ─ ReLU ─ conv_t2 2T->T ───▶ T_m (B,1,T,1,1)

Choices: conv_s1 is 3x3 and the temporal branch expands T -> 2T -> T, as the official code's
``Attention`` (``ResNet50-M3D_RAL/resnet.py``; the paper gives neither, and its r = 16 cannot
reduce T = 8); the order is conv -> BN -> ReLU -> conv as the paper's Fig. 5 caption ("ReLU and
Batch Normalisation (BN) layer are applied after each convolution layer"), with no activation
after the second conv (the code's ReLU on C_m is dropped, so each factor is signed and a zero
conv gives exactly 0); only the *first* present branch's last conv (conv_s2 for the full RAL) is
zero-initialised, the others are He-initialised: zero-initialising all three, as the paper and
the code do, makes every RAL gradient exactly zero for ever, since each factor's gradient is
proportional to the product of the other two. Written by hand: no library has these layers.
The channel and temporal branches batch-normalise one pooled vector per clip, so training needs
more than one clip per batch (as the head's BatchNorm1d does).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from reid_models.layers.init import keep_init

__all__ = ["RAL_BRANCHES", "MultiScaleTemporalConv", "ResidualAttention", "m3d_num_kernels"]

#: Branch letters of `ResidualAttention`: spatial, channel, temporal (Table 2's RAL(s/c/t)).
RAL_BRANCHES = "sct"


def m3d_num_kernels(frames: int) -> int:
    """Eq. 6: n = floor((T - 1) / 2) temporal kernels keep the receptive field within T frames."""
    if frames < 1:
        raise ValueError(f"the clip length T must be >= 1, got {frames}")
    return (frames - 1) // 2


class MultiScaleTemporalConv(nn.Module):
    """The temporal half of an M3D layer: ``s + Σ_i T^(i)(s)`` over dilations 1..n.

    Args:
        channels: C of the spatial conv's output (the bottleneck width).
        dilations: Temporal dilation of each 3x1x1 kernel; empty gives an identity (n = 0).
        temporal_stride: 2 halves T as the official code's stages 2-4 do; the identity path is
            then averaged over frame pairs (official code, ``ResNet50-M3D/model/M3D.py``).

    Shape:
        (B, C, T, H, W) -> (B, C, T / temporal_stride, H, W)
    """

    def __init__(
        self, channels: int, *, dilations: Sequence[int], temporal_stride: int = 1
    ) -> None:
        super().__init__()
        if any(d < 1 for d in dilations) or temporal_stride not in (1, 2):
            raise ValueError(
                f"dilations must be >= 1 and temporal_stride 1 or 2, got {tuple(dilations)} "
                f"and {temporal_stride}"
            )
        self.dilations = tuple(dilations)
        self.temporal_stride = temporal_stride
        self.convs = nn.ModuleList(
            nn.Conv3d(
                channels,
                channels,
                (3, 1, 1),
                stride=(temporal_stride, 1, 1),
                padding=(d, 0, 0),
                dilation=(d, 1, 1),
                bias=False,
            )
            for d in self.dilations
        )
        for conv in self.convs:
            nn.init.zeros_(conv.weight)
        keep_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.temporal_stride > 1:
            y = nn.functional.avg_pool3d(x, (self.temporal_stride, 1, 1))
        for conv in self.convs:
            y = y + conv(x)
        return y


def _branch(in_ch: int, mid_ch: int, out_ch: int, *, kernel: int = 1) -> nn.Sequential:
    """conv1 -> BN -> ReLU -> conv2 on a (B, in_ch, H, W) map; both convs He (fan_out) init."""
    convs = (
        nn.Conv2d(in_ch, mid_ch, kernel, padding=kernel // 2, bias=False),
        nn.Conv2d(mid_ch, out_ch, 1, bias=False),
    )
    for conv in convs:
        nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return nn.Sequential(convs[0], nn.BatchNorm2d(mid_ch), nn.ReLU(inplace=True), convs[1])


class ResidualAttention(nn.Module):
    """Residual Attention Layer: ``x / 2 + sigmoid(S_m * C_m * T_m) * x``, an identity at init.

    Args:
        channels: C of the input.
        frames: T of the input; the temporal branch is a T -> 2T -> T map, so T is fixed here.
        reduction: r of the channel branch (C -> C/r -> C).
        branches: Which of ``"s"``, ``"c"``, ``"t"`` to use (Table 2's RAL(s), RAL(c), RAL(t);
            ``"sct"`` is the full RAL). Absent branches are left out of the product.

    Shape:
        (B, C, T, H, W) -> (B, C, T, H, W); T must equal `frames`.
    """

    def __init__(
        self, channels: int, *, frames: int, reduction: int = 16, branches: str = RAL_BRANCHES
    ) -> None:
        super().__init__()
        if not branches or set(branches) - set(RAL_BRANCHES) or len(set(branches)) < len(branches):
            raise ValueError(
                f"RAL branches must be distinct letters of {RAL_BRANCHES!r}, got {branches!r}"
            )
        self.frames = frames
        self.branches = "".join(b for b in RAL_BRANCHES if b in branches)
        self.spatial = _branch(channels, 1, 1, kernel=3) if "s" in branches else None
        self.channel = (
            _branch(channels, max(1, channels // reduction), channels) if "c" in branches else None
        )
        self.temporal = _branch(frames, 2 * frames, frames) if "t" in branches else None
        # Zero the last conv of one branch only: M = sigmoid(0) = 1/2, y = x, and the zero factor
        # still gets the gradient C_m * T_m != 0 (zeroing all three would leave all at zero).
        first = {"s": self.spatial, "c": self.channel, "t": self.temporal}[self.branches[0]]
        nn.init.zeros_(first[-1].weight)
        keep_init(self)

    def mask_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The product S_m * C_m * T_m, broadcastable to `x` (B, C, T, H, W)."""
        if not torch.jit.is_tracing() and x.shape[2] != self.frames:
            raise ValueError(
                f"ResidualAttention was built for T={self.frames} frames (its temporal branch "
                f"maps {self.frames} -> {2 * self.frames} -> {self.frames}), got T={x.shape[2]}"
            )
        factors = []
        if self.spatial is not None:
            factors.append(self.spatial(x.mean(dim=2)).unsqueeze(2))  # (B, 1, 1, H, W)
        if self.channel is not None:
            pooled = x.mean(dim=(2, 3, 4), keepdim=True).squeeze(2)  # (B, C, 1, 1)
            factors.append(self.channel(pooled).unsqueeze(2))  # (B, C, 1, 1, 1)
        if self.temporal is not None:
            pooled = x.mean(dim=(1, 3, 4), keepdim=True).squeeze(1)  # (B, T, 1, 1)
            factors.append(self.temporal(pooled).unsqueeze(1))  # (B, 1, T, 1, 1)
        logits = factors[0]
        for factor in factors[1:]:
            logits = logits * factor
        return logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x + torch.sigmoid(self.mask_logits(x)) * x
