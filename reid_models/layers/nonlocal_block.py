"""Non-local block, embedded-Gaussian form (Wang et al. CVPR 2018), over all T*H*W positions.

    theta(x), phi(pool(x)), g(pool(x))   1x1x1 convs C -> C/2 with bias
    y = softmax_j(theta_i . phi_j) g_j   rows normalised over the keys j (Liao et al. ACCV 2018,
                                         Fig. 5; their Eq. 5 normalises over i, a typo)
    z = BN(W y) + x                      BN gamma and beta start at 0, so the block starts as x

Used by NL-AP3D (Gu et al. ECCV 2020, §5.3; official code github.com/guxinqian/AP3D,
``models/NonLocal.py``) and by I3D-NL (Liao et al. ACCV 2018, §3.2), which agree on this form:
sub-sampling of phi and g by a (1, 2, 2) max-pool (AP3D's code; for I3D-NL, Wang et al.'s code,
facebookresearch/video-nonlocal-net, as Liao et al. do not say), no 1/sqrt(d) scale (Liao et al.'s
Eq. 4 has none), He init (Liao et al. §3.2; AP3D's code draws N(0, sqrt(2/n))). They differ in
where the pool sits: Wang et al.'s code pools the input before the phi and g convs
(``pool_first=True``, 4x fewer MACs); AP3D's code pools their outputs (``pool_first=False``),
which is what its Table 2 GFLOPs count. Max-pooling does not commute with a conv, so the two
are different functions with the same parameters.
"""

from __future__ import annotations

import torch
from torch import nn

from reid_models.layers.init import keep_init

__all__ = ["NonLocalBlock", "gradient_free_parameters"]


class NonLocalBlock(nn.Module):
    """Embedded-Gaussian non-local block with a zero-initialised residual branch.

    Args:
        channels: C of the input.
        sub_sample: Max-pool phi and g by (1, 2, 2), quartering the keys.
        use_scale: Multiply the logits by (C/2)^-1/2 (Wang's released Kinetics config).
        pool_first: Pool before the phi and g convs (Wang) rather than after them (AP3D).

    Shape:
        (B, C, T, H, W) -> (B, C, T, H, W)
    """

    def __init__(
        self,
        channels: int,
        *,
        sub_sample: bool = True,
        use_scale: bool = False,
        pool_first: bool = True,
    ) -> None:
        super().__init__()
        self.pool_first = pool_first
        inner = channels // 2
        self.scale = inner**-0.5 if use_scale else 1.0
        self.theta = nn.Conv3d(channels, inner, 1)
        self.phi = nn.Conv3d(channels, inner, 1)
        self.g = nn.Conv3d(channels, inner, 1)
        self.pool = nn.MaxPool3d((1, 2, 2)) if sub_sample else nn.Identity()
        self.W = nn.Sequential(nn.Conv3d(inner, channels, 1), nn.BatchNorm3d(channels))
        for conv in (self.theta, self.phi, self.g, self.W[0]):
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        nn.init.zeros_(self.W[1].weight)
        nn.init.zeros_(self.W[1].bias)
        keep_init(self)

    #: Biases kept for parity with the official code and its parameter counts, but no loss can
    #: move them: the softmax over keys ignores phi's bias (it adds theta_i . b to every logit of
    #: row i), rows summing to 1 pass g's bias through as a constant, and the BatchNorm after W
    #: removes any constant, W's bias included.
    gradient_free = ("phi.bias", "g.bias", "W.0.bias")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t, h, w = x.shape
        query = self.theta(x).flatten(2).transpose(1, 2)  # (B, N, C/2)
        if self.pool_first:
            pooled = self.pool(x)
            key, value = self.phi(pooled), self.g(pooled)
        else:
            key, value = self.pool(self.phi(x)), self.pool(self.g(x))
        key = key.flatten(2)  # (B, C/2, M)
        value = value.flatten(2).transpose(1, 2)  # (B, M, C/2)
        attn = (query @ key * self.scale).softmax(dim=-1)
        y = (attn @ value).transpose(1, 2).reshape(b, -1, t, h, w)
        return x + self.W(y)


def gradient_free_parameters(model: nn.Module) -> tuple[str, ...]:
    """Names of the `NonLocalBlock.gradient_free` biases of every non-local block in `model`."""
    return tuple(
        f"{name}.{leaf}"
        for name, module in model.named_modules()
        if isinstance(module, NonLocalBlock)
        for leaf in module.gradient_free
    )
