"""Replacements for a bottleneck's 3x3 spatial conv: I3D, P3D-A/B/C and their AP3D versions.

Wiring and initialisation follow the official AP3D code (github.com/guxinqian/AP3D,
``models/AP3D.py``): the paper (Gu et al., ECCV 2020, §3.4) shows the wiring only in its Fig. 5
and says nothing of initialisation. Only the 3x3 conv is replaced; the block's BN and ReLU stay
after it, and nothing is inserted between the spatial and the temporal kernel (unlike the original
P3D blocks). Every variant computes exactly its 2D source at initialisation, so training starts
from the pretrained C2D network:

    variant       out = ...                       temporal weights start as
    I3D           Conv3x3x3(u)                    centre slice = 2D kernel, others 0 (by loading)
    P3D-A         T(S(u))                         identity on the centre tap
    P3D-B         S(u) + T(u)                     zero
    P3D-C         S(u) + T(S(u))                  zero
    AP-*          T reads APM(.) with temporal stride 3 instead of its input with padding 1

S is the pretrained 1x3x3 conv (``spatial``, where a 2D weight loads); T is a 3x1x1 conv.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from reid_models.layers.apm import APM
from reid_models.layers.init import keep_init

__all__ = ["I3DConv", "P3DConv", "spatial_conv"]


def spatial_conv(
    in_ch: int, out_ch: int, *, stride: int = 1, kernel: int = 3, bias: bool = False
) -> nn.Conv3d:
    """A 2D k x k convolution applied to every frame, as a (1, k, k) Conv3d."""
    pad = kernel // 2
    return nn.Conv3d(
        in_ch, out_ch, (1, kernel, kernel), (1, stride, stride), (0, pad, pad), bias=bias
    )


def _temporal_conv(
    in_ch: int, out_ch: int, *, stride: int, appearance_preserving: bool
) -> nn.Conv3d:
    # With APM the input has 3T frames [prev, centre, next]; stride 3 and no padding give T back.
    t_stride, t_pad = (3, 0) if appearance_preserving else (1, 1)
    return nn.Conv3d(
        in_ch, out_ch, (3, 1, 1), (t_stride, stride, stride), (t_pad, 0, 0), bias=False
    )


class I3DConv(nn.Module):
    """A 3x3x3 convolution, optionally reading APM's aligned neighbours (AP-I3D).

    The 3x3x3 kernel lives in ``conv``; a 2D 3x3 weight inflates into its centre slice.

    Shape:
        (B, C_in, T, H, W) -> (B, C_out, T, H / stride, W / stride)
    """

    pretrained_conv = "conv"

    def __init__(
        self, in_ch: int, out_ch: int, *, stride: int = 1, appearance_preserving: bool = False
    ) -> None:
        super().__init__()
        self.apm = APM(in_ch) if appearance_preserving else None
        t_stride, t_pad = (3, 0) if appearance_preserving else (1, 1)
        self.conv = nn.Conv3d(
            in_ch, out_ch, (3, 3, 3), (t_stride, stride, stride), (t_pad, 1, 1), bias=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.apm(x) if self.apm is not None else x)


class P3DConv(nn.Module):
    """Pseudo-3D factorisation S (1x3x3) + T (3x1x1) of a 3x3 conv, wired as A, B or C.

    Args:
        in_ch: Input channels of the replaced conv.
        out_ch: Output channels.
        stride: Spatial stride of the replaced conv.
        variant: ``"A"`` serial, ``"B"`` parallel, ``"C"`` serial with a residual.
        appearance_preserving: Put APM before T (AP-P3D; ``variant="C"`` is the paper's AP3D).
        kernel: Spatial size of S (3 in the ResNets; 1 where a 1x1 conv is factorised, as in
            `reid_models.osnet`).
        bias: Give S a bias (a conv with its BatchNorm folded in, `reid_models.osnet`).
        apm_reduction: APM's channel reduction (`APM`'s ``reduction``; the paper's 16).

    Shape:
        (B, C_in, T, H, W) -> (B, C_out, T, H / stride, W / stride)
    """

    pretrained_conv = "spatial"

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        *,
        stride: int = 1,
        variant: Literal["A", "B", "C"] = "C",
        appearance_preserving: bool = False,
        kernel: int = 3,
        bias: bool = False,
        apm_reduction: int = 16,
    ) -> None:
        super().__init__()
        if variant not in ("A", "B", "C"):
            raise ValueError(f"P3D variant must be 'A', 'B' or 'C', got {variant!r}")
        self.variant = variant
        self.spatial = spatial_conv(in_ch, out_ch, stride=stride, kernel=kernel, bias=bias)
        t_in, t_stride = (in_ch, stride) if variant == "B" else (out_ch, 1)
        self.apm = APM(t_in, reduction=apm_reduction) if appearance_preserving else None
        self.temporal = _temporal_conv(
            t_in, out_ch, stride=t_stride, appearance_preserving=appearance_preserving
        )
        with torch.no_grad():
            self.temporal.weight.zero_()
            if variant == "A":  # identity on the centre tap: T(S(u)) == S(u)
                centre = self.temporal.weight[:, :, 1, 0, 0]
                centre.copy_(torch.eye(out_ch, dtype=centre.dtype))
        keep_init(self.temporal)

    def _t(self, x: torch.Tensor) -> torch.Tensor:
        return self.temporal(self.apm(x) if self.apm is not None else x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.variant == "B":
            return self.spatial(x) + self._t(x)
        v = self.spatial(x)
        return self._t(v) if self.variant == "A" else v + self._t(v)
