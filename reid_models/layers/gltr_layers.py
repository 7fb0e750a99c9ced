"""GLTR's frame-feature aggregation layers (Li et al., ICCV 2019, §3.2-3.3).

    F (B, d, T) ─┬─ [identity]              (code variant only)
                 ├─ Conv1d k=3, dilation r1 ─┐
                 ├─ Conv1d k=3, dilation r2 ─┼─ concat ─▶ F' (B, N'd, T)       DTP (Eq. 5-6)
                 └─ Conv1d k=3, dilation r3 ─┘
    F' ─┬─ b(F') (keys, index s) ─┐
        ├─ c(F') (queries, t) ────┴─ M[s, t] = softmax_s <b_s, c_t>  (B, T, T)
        ├─ g(F') ───────────────── y = g(F') @ M ─▶ W ─┐
        └────────────────────────────────────────────── + ─▶ F''       TSA (Eq. 7)

Both keep the temporal length T, so they run on tracklets of any length. Written by hand: no
library ships these two blocks.

Choices (the paper, and the authors' code github.com/ljn114514/GLTR):
* DTP branches are ``Conv1d(d, d, 3, dilation=r, padding=r, bias=False)`` with centred taps
  {t-r, t, t+r} ("same" zero padding: §3.2 keeps "the temporal resolution", while Eq. 5's index
  t + r*i, i = 1..w, is one-sided as printed), initialised N(0, 0.001^2) as in the code's
  ``resnet.py``. The code's ``Conv2d(1, d, (3, d))`` branches are the same operator; its
  weight (d, 1, 3, d) maps to ours (d, d, 3) by ``w.squeeze(1).permute(0, 2, 1)``.
* TSA computes M[s, t] = <B_s, C_t> and normalises it with a softmax over the *source* frame s, so
  that every output frame's weights sum to 1 and Eq. (8)'s reading (M(s, t) is what frame s gives
  frame t) holds (§3.3). The paper's text does not say how M is normalised; the code's
  non-local block uses this softmax. No 1/sqrt(d) scale (neither source has one).
* ``variant="paper"`` (§3.3, Eq. 7): B and C are 1x1 conv -> BN -> ReLU, g a 1x1 conv, W a 1x1 conv
  whose weight and bias start at 0 (the paper's "W is initialized as 0"). B and C's convs have no
  bias because BN follows and would cancel it (a parameter that can never receive a gradient).
* ``variant="code"``: the authors' ``NonLocalBlock1D`` (``NonLocalBlock1D.py``): theta (our c), phi
  (our b) and g are plain 1x1 convs, W is a 1x1 conv followed by a BatchNorm1d whose gamma and
  beta start at 0. We drop three biases of that block that cannot affect training: phi's (the
  softmax over s is invariant to it) and g's and W's conv bias (the training-mode BN subtracts
  any per-channel constant). That is C/2 + C/2 + C = 2C parameters fewer than the authors'
  block (1,024 at C = 512) for the same trainable function.
* Other convs keep PyTorch's default initialisation, as the authors' non-local block does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from reid_models.layers.init import keep_init

__all__ = ["DilatedTemporalPyramid", "TSAVariant", "TemporalSelfAttention"]

TSAVariant = Literal["paper", "code"]


class DilatedTemporalPyramid(nn.Module):
    """Parallel dilated temporal convolutions, concatenated along channels (DTP, Eq. 5-6).

    Args:
        channels: d, the frame feature size; every branch maps d -> d.
        dilations: One branch per rate (the paper's r_n = 2^(n-1): (1, 2, 4); code: (1, 2, 3)).
        include_identity: Put F itself first in the concatenation, as the authors' code does.
        kernel_size: Temporal width w of every branch (odd, so the taps are centred).
        init_std: Standard deviation of the branches' normal initialisation.

    Shape:
        (B, d, T) -> (B, out_channels, T) with out_channels = d * (len(dilations) + identity)
    """

    def __init__(
        self,
        channels: int,
        *,
        dilations: Sequence[int] = (1, 2, 4),
        include_identity: bool = False,
        kernel_size: int = 3,
        init_std: float = 0.001,
    ) -> None:
        super().__init__()
        dilations = tuple(dilations)
        if any(not isinstance(r, int) or r < 1 for r in dilations):
            raise ValueError(f"dilations must be positive integers, got {dilations}")
        if not dilations and not include_identity:
            raise ValueError("DTP needs at least one dilation or include_identity=True")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 1, got {kernel_size}")
        self.dilations = dilations
        self.include_identity = include_identity
        self.out_channels = channels * (len(dilations) + int(include_identity))
        half = kernel_size // 2
        self.branches = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=r, padding=half * r, bias=False)
            for r in dilations
        )
        for conv in self.branches:
            nn.init.normal_(conv.weight, std=init_std)
        keep_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [x] if self.include_identity else []
        outs += [branch(x) for branch in self.branches]
        return torch.cat(outs, dim=1)


def _conv_bn_relu(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv1d(in_ch, out_ch, 1, bias=False), nn.BatchNorm1d(out_ch), nn.ReLU(inplace=True)
    )


class TemporalSelfAttention(nn.Module):
    """Temporal self-attention with a residual connection that is the identity at initialisation.

    Args:
        channels: C = Nd of the input F'.
        reduction: The paper's alpha; the inner width is C / alpha.
        variant: ``"paper"`` (BN + ReLU on B and C, zero-initialised W conv) or ``"code"`` (the
            authors' non-local block: plain B and C, BN with zero gamma/beta after W).

    Parameters, C = 384, alpha = 2 (paper): 4 * 384 * 192 = 294,912 weights + 768 BN + 192 (g
    bias) + 384 (W bias) = 296,256. C = 512 (code): 4 * 512 * 256 = 524,288 weights + 256 (theta
    bias) + 1,024 BN = 525,568 (the authors' block also has the inert phi, g and W-conv biases,
    1,024 more).

    Shape:
        (B, C, T) -> (B, C, T)
    """

    def __init__(self, channels: int, *, reduction: int = 2, variant: TSAVariant = "paper") -> None:
        super().__init__()
        if variant not in ("paper", "code"):
            raise ValueError(f"TSA variant must be 'paper' or 'code', got {variant!r}")
        if reduction < 1 or channels // reduction < 1:
            raise ValueError(
                f"reduction must be in [1, channels={channels}] so that the inner width "
                f"channels // reduction is >= 1, got {reduction}"
            )
        inner = channels // reduction
        self.variant = variant
        if variant == "paper":
            self.b = _conv_bn_relu(channels, inner)
            self.c = _conv_bn_relu(channels, inner)
            self.g = nn.Conv1d(channels, inner, 1)
            self.W = nn.Conv1d(inner, channels, 1)
            zeroed = self.W
        else:
            self.b = nn.Conv1d(channels, inner, 1, bias=False)  # the code's phi
            self.c = nn.Conv1d(channels, inner, 1)  # the code's theta
            self.g = nn.Conv1d(channels, inner, 1, bias=False)
            self.W = nn.Sequential(
                nn.Conv1d(inner, channels, 1, bias=False), nn.BatchNorm1d(channels)
            )
            zeroed = self.W[1]
        nn.init.zeros_(zeroed.weight)
        nn.init.zeros_(zeroed.bias)
        keep_init(self)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """The temporal attention mask M of `x` (B, C, T): (B, T, T), M[:, s, t], columns sum to 1.

        M[:, s, t] is the weight of source frame s in output frame t (GLTR §3.3, Eq. 8).
        """
        logits = self.b(x).transpose(1, 2) @ self.c(x)  # (B, S, T): <b_s, c_t>
        return logits.softmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.g(x) @ self.attention(x)  # (B, C/alpha, T): sum_s g_s M[s, t]
        return x + self.W(y)
