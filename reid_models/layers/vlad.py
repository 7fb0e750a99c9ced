"""Soft-assignment VLAD with decoupled assignment and residual parameters (NetVLAD / ActionVLAD).

The aggregation layer of 3D PersonVLAD (Wu et al., TNNLS 2019, Sec. III-B, Eq. 4-5). For N sets of M
local descriptors x_m in R^D and K cluster centres ("person words"):

    x_m  <- x_m / ||x_m||                               input L2 norm (ActionVLAD's code)
    a_mk  = softmax_k(w_k . x_m + z_k)                  soft assignment (Eq. 5)
    V[k]  = sum_m a_mk (x_m - c_k)                      residuals to the centres, (K, D)
    V[k] <- V[k] / max(||V[k]||, eps)                   intra-normalisation, per cluster
    v     = flatten(V) / ||flatten(V)||                 (K * D,), cluster-major: v[k*D + j]

Decoupled (Sec. III-C: the centres of the assignment and of the residual are separate parameters):
w (K, D), z (K) and c (K, D) are three independent trainable tensors; they start tied, w_k = 2
alpha c_k and z_k = -alpha ||c_k||^2, which makes a_mk exactly the softmax of -alpha ||x_m - c_k||^2
(Eq. 4; the ||x_m||^2 term cancels). With alpha = 1000 (Sec. III-C) the assignment is almost hard.

The centres start as random unit vectors, a placeholder: the trainer sets them with `init_centres`
from k-means on descriptors prepared by `normalize_input` (the paper says only "initialize and fix";
ActionVLAD runs k-means on the pretrained network's features). The k-means itself is not here. The
eps in both normalisations (1e-12, TensorFlow's l2_normalize default, which ActionVLAD uses) keeps
clusters without mass at zero instead of dividing by 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reid_models.layers.init import keep_init

__all__ = ["SoftVLAD"]


class SoftVLAD(nn.Module):
    """NetVLAD-style aggregation of a set of descriptors into one L2-normalised vector.

    Args:
        num_clusters: K.
        dim: D, the descriptor size.
        alpha: Assignment sharpness used to derive w and z from the centres.
        normalize_input: L2-normalise each descriptor before assignment and residuals.
        eps: Floor of the norms in the input, intra- and global normalisation.

    Attributes:
        centres: c (K, D), the residual anchors.
        assign_weight: w (K, D).
        assign_bias: z (K,).

    Shape:
        (N, M, D) -> (N, K * D), unit L2 norm.
    """

    def __init__(
        self,
        *,
        num_clusters: int = 64,
        dim: int = 256,
        alpha: float = 1000.0,
        normalize_input: bool = True,
        eps: float = 1e-12,
    ) -> None:
        super().__init__()
        if num_clusters < 1 or dim < 1 or alpha <= 0:
            raise ValueError(
                f"SoftVLAD needs num_clusters >= 1, dim >= 1 and alpha > 0, got "
                f"num_clusters={num_clusters}, dim={dim}, alpha={alpha}"
            )
        self.num_clusters = num_clusters
        self.dim = dim
        self.alpha = float(alpha)
        self.l2_input = normalize_input
        self.eps = eps
        self.centres = nn.Parameter(torch.empty(num_clusters, dim))
        self.assign_weight = nn.Parameter(torch.empty(num_clusters, dim))
        self.assign_bias = nn.Parameter(torch.empty(num_clusters))
        self._tie(F.normalize(torch.randn(num_clusters, dim), dim=1))
        keep_init(self)

    @property
    def output_dim(self) -> int:
        return self.num_clusters * self.dim

    @torch.no_grad()
    def init_centres(self, centres: torch.Tensor) -> None:
        """Sets c to `centres` and re-ties the assignment: w = 2 alpha c, z = -alpha ||c||^2.

        Args:
            centres: (K, D), e.g. k-means centroids of `normalize_input` descriptors.

        Raises:
            ValueError: Wrong shape, or non-finite values.
        """
        expected = (self.num_clusters, self.dim)
        if tuple(centres.shape) != expected or not torch.isfinite(centres).all():
            raise ValueError(
                f"centres must be a finite {expected} tensor (num_clusters, dim), "
                f"got {tuple(centres.shape)}"
            )
        self._tie(centres)

    @torch.no_grad()
    def _tie(self, centres: torch.Tensor) -> None:
        c = centres.to(self.centres)
        self.centres.copy_(c)
        self.assign_weight.copy_(2 * self.alpha * c)
        self.assign_bias.copy_(-self.alpha * c.pow(2).sum(dim=1))

    def normalize_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the layer clusters: (..., D) descriptors, L2-normalised if so configured."""
        return F.normalize(x, dim=-1, eps=self.eps) if self.l2_input else x

    def soft_assign(self, x: torch.Tensor) -> torch.Tensor:
        """(N, M, D) prepared descriptors -> (N, M, K) assignment weights, rows summing to 1."""
        return (x @ self.assign_weight.t() + self.assign_bias).softmax(dim=-1)

    def residuals(self, x: torch.Tensor) -> torch.Tensor:
        """(N, M, D) raw descriptors -> (N, K, D) V before any normalisation (Eq. 5)."""
        x = self.normalize_input(x)
        a = self.soft_assign(x)  # (N, M, K)
        # sum_m a_mk (x_m - c_k) = (a^T x)_k - (sum_m a_mk) c_k, without an (N, M, K, D) tensor.
        return a.transpose(1, 2) @ x - a.sum(dim=1).unsqueeze(-1) * self.centres

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and (x.dim() != 3 or x.shape[-1] != self.dim):
            raise ValueError(
                f"SoftVLAD expects (N, M, {self.dim}) descriptors, got {tuple(x.shape)}"
            )
        v = F.normalize(self.residuals(x), dim=-1, eps=self.eps)  # intra-normalisation
        return F.normalize(v.flatten(1), dim=1, eps=self.eps)
