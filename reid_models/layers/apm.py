"""Appearance-Preserving Module (AP3D, Gu et al. ECCV 2020, §3.1-3.2, Eq. 1-4).

For every frame t (the *central* map c) and each neighbour n in {t-1, t+1}, APM reconstructs the
neighbour at the central map's positions, then gates it by Contrastive Attention:

    e = l2norm(g(x))                         g: 1x1 conv C -> C/16, shared by c and n (Eq. 2)
    A = softmax_j(s * e_c[i] . e_n[j])       over all H*W positions j of the neighbour (Eq. 1)
    y = A @ x_n                              full-C features of the neighbour (Eq. 1)
    z = sigmoid(w(theta(c) * phi(y))) * y    one gate per position (Eq. 3-4)

and returns the 3T frames [z(t0<-t-1), x_t0, z(t0<-t1), z(t1<-t0), x_t1, ...] for a 3D
convolution with temporal kernel 3 and temporal stride 3, which gives T frames back.

Choices: s = 4 multiplies the cosine (Eq. 2, "We set the scale factor to 4"; the official code,
github.com/guxinqian/AP3D ``models/AP3D.py``, calls it ``temperature`` but multiplies too); the T
axis is zero-padded (§3.1, "after padding zeros"), so a missing neighbour reconstructs to exactly
zero; theta/phi read detached inputs as the official code does, which the paper does not mention
(`detach_attention=False` ablates it); the softmax runs in float32 under autocast, for the
precision of the weights (s = 4 keeps the logits in [-4, 4], so overflow is no concern).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reid_models.layers.init import keep_init

__all__ = ["APM"]


class APM(nn.Module):
    """Appearance-Preserving Module.

    Args:
        channels: C of the input map.
        reduction: C / `reduction` channels for g, theta and phi (the paper's C/16).
        scale: The softmax scale factor s.
        detach_attention: Stop Contrastive Attention's gradient into the features, as the
            official code does.

    Shape:
        (B, C, T, H, W) -> (B, C, 3T, H, W)
    """

    def __init__(
        self,
        channels: int,
        *,
        reduction: int = 16,
        scale: float = 4.0,
        detach_attention: bool = True,
    ) -> None:
        super().__init__()
        inner = max(1, channels // reduction)
        self.scale = scale
        self.detach_attention = detach_attention
        self.semantic_mapping = nn.Conv2d(channels, inner, 1, bias=False)  # g
        self.x_mapping = nn.Conv2d(channels, inner, 1, bias=False)  # theta
        self.n_mapping = nn.Conv2d(channels, inner, 1, bias=False)  # phi
        self.contrastive_att = nn.Conv2d(inner, 1, 1, bias=False)  # w
        keep_init(self)  # PyTorch default init, as the official code (the paper gives none)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)
        emb = F.normalize(self.semantic_mapping(frames), dim=1).reshape(b, t, -1, h * w)
        feat = frames.reshape(b, t, c, h * w)
        # Neighbours t-1 and t+1, zero beyond the clip: (B, T, 2, *, HW).
        emb_n = torch.stack(_neighbours(emb), dim=2)
        feat_n = torch.stack(_neighbours(feat), dim=2)
        emb_c = emb.unsqueeze(2).expand_as(emb_n)
        with torch.autocast(device_type=x.device.type, enabled=False):
            logits = self.scale * emb_c.float().transpose(-1, -2) @ emb_n.float()
            attn = logits.softmax(dim=-1)  # (B, T, 2, HW_c, HW_n)
        recon = (feat_n @ attn.to(feat_n.dtype).transpose(-1, -2)).reshape(b * t * 2, c, h, w)
        centre = frames.unsqueeze(1).expand(b * t, 2, c, h, w).reshape(b * t * 2, c, h, w)
        gate = self._contrastive_attention(centre, recon)
        recon = (gate * recon).reshape(b, t, 2, c, h, w)
        out = torch.stack((recon[:, :, 0], x.transpose(1, 2), recon[:, :, 1]), dim=2)
        return out.reshape(b, 3 * t, c, h, w).transpose(1, 2)

    def _contrastive_attention(self, centre: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
        if self.detach_attention:
            centre, recon = centre.detach(), recon.detach()
        return torch.sigmoid(self.contrastive_att(self.x_mapping(centre) * self.n_mapping(recon)))


def _neighbours(seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(previous, next) of every step of `seq` (B, T, ...), zero-padded at the clip's ends."""
    pad = torch.zeros_like(seq[:, :1])
    return torch.cat((pad, seq[:, :-1]), dim=1), torch.cat((seq[:, 1:], pad), dim=1)
