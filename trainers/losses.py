"""The papers' training losses and their weighted sum.

::

    TrainOutput ─ logits (one per classifier) ─▶ CrossEntropyLabelSmooth, mean ─┐ x w_ce
                └ features (B, D) ─┬─▶ TripletLoss (batch hard) ────────────────┼ x w_triplet ─▶ sum
                                   └─▶ OIMLoss (LUT) ───────────────────────────┘ x w_oim

- `CrossEntropyLabelSmooth`: Szegedy et al. 2016, as torchreid's ``CrossEntropyLabelSmooth``
  (targets ``(1 - eps) * onehot + eps / C``), which is exactly PyTorch's own
  ``F.cross_entropy(..., label_smoothing=eps)``; that is what runs. ``epsilon = 0`` is the plain
  cross-entropy of GLTR and M3D (both papers train with a "softmax loss" only, and so does their
  ``train.py``).
- `TripletLoss`: batch-hard triplet (Hermans et al. 2017), as AP3D's and torchreid's
  ``TripletLoss``: per anchor the farthest positive and the nearest negative,
  ``mean(max(0, d_ap - d_an + margin))``. ``euclidean`` is the plain distance (with the
  references' ``clamp(1e-12).sqrt()``); ``cosine`` is ``1 - cos`` (AP3D ranks by ``-cos``: the
  constant cancels in ``d_ap - d_an``). Unlike the references, the anchor is not its own positive
  and anchors without another positive or without a negative are left out of the mean (the
  references would use a distance-0 self-positive or fail on an empty minimum); with a P x K
  sampler (K >= 2, P >= 2) every anchor counts and the value is the references'. A batch with
  no usable anchor yields 0 (still attached to the graph) and a warning.
- `OIMLoss`: Online Instance Matching (Xiao et al., CVPR 2017), as 3D PersonVLAD trains
  (Wu et al. Sec. III-C, Eq. 6: tau = 0.1, no LUT momentum given) with open-reid's defaults: logits
  ``scalar * x @ LUTᵀ`` over the C identities, cross-entropy, and after each training forward
  ``LUT[y] <- m LUT[y] + (1 - m) x``, re-L2-normalised, sample by sample in batch order (open-reid's
  loop; repeated ids compound). τ = 0.1 is ``scalar = 10``; m = 0.5. The LUT is a buffer (zeros at
  start, as open-reid), so checkpoints carry it and no optimiser touches it; open-reid updates it in
  ``backward``, here it is updated right after the logits are formed (same values: the gradient uses
  the LUT the logits saw). Features are L2-normalised first, as OIM requires (PersonVLAD's already
  are). The unlabelled circular queue of the paper is not built: the training splits hold only
  labelled tracklets (ids relabelled 0..C-1; MARS's distractors and junk are test-only), so it would
  stay empty. Under data parallelism each process updates its own LUT copy.
- `ReIDLoss`: ``sum_k w_k * loss_k`` over the losses with a non-zero weight.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from reid_models import TrainOutput

__all__ = ["LOSSES", "CrossEntropyLabelSmooth", "OIMLoss", "ReIDLoss", "TripletLoss"]

logger = logging.getLogger(__name__)

LOSSES = ("ce", "triplet", "oim")
TRIPLET_DISTANCES = ("euclidean", "cosine")


class CrossEntropyLabelSmooth(nn.Module):
    """Cross-entropy against label-smoothed targets ``(1 - epsilon) * onehot + epsilon / C``.

    Args:
        num_classes: C, the number of training identities.
        epsilon: Smoothing mass in [0, 1).
    """

    def __init__(self, *, num_classes: int, epsilon: float = 0.1) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if not 0.0 <= epsilon < 1.0:
            raise ValueError(f"epsilon must be in [0, 1), got {epsilon}")
        self.num_classes = num_classes
        self.epsilon = epsilon

    def forward(self, logits: torch.Tensor, pids: torch.Tensor) -> torch.Tensor:
        """Args: logits (B, C), pids (B,) in [0, C). Returns: scalar mean over the batch."""
        if logits.dim() != 2 or logits.shape[1] != self.num_classes:
            raise ValueError(f"logits must be (B, {self.num_classes}), got {tuple(logits.shape)}")
        return F.cross_entropy(logits, pids, label_smoothing=self.epsilon)


def _pairwise(features: torch.Tensor, distance: str) -> torch.Tensor:
    """(B, B) distances within a batch, differentiable."""
    if distance == "cosine":
        x = F.normalize(features, dim=1)
        return 1.0 - x @ x.T
    sq = features.pow(2).sum(dim=1, keepdim=True)
    d2 = sq + sq.T - 2.0 * features @ features.T
    return d2.clamp(min=1e-12).sqrt()


class TripletLoss(nn.Module):
    """Batch-hard triplet loss (Hermans et al. 2017).

    Args:
        margin: Required gap between the hardest negative and the hardest positive.
        distance: ``euclidean`` or ``cosine`` (``1 - cos``).
    """

    def __init__(
        self, *, margin: float = 0.3, distance: Literal["euclidean", "cosine"] = "euclidean"
    ) -> None:
        super().__init__()
        if distance not in TRIPLET_DISTANCES:
            raise ValueError(f"distance must be one of {TRIPLET_DISTANCES}, got {distance!r}")
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        self.margin = margin
        self.distance = distance

    def forward(self, features: torch.Tensor, pids: torch.Tensor) -> torch.Tensor:
        """Args: features (B, D), pids (B,). Returns: scalar mean over the usable anchors."""
        if features.dim() != 2 or pids.shape != features.shape[:1]:
            raise ValueError(
                f"need features (B, D) and pids (B,), got {tuple(features.shape)}, "
                f"{tuple(pids.shape)}"
            )
        dist = _pairwise(features, self.distance)
        same = pids[:, None] == pids[None, :]
        eye = torch.eye(len(pids), dtype=torch.bool, device=pids.device)
        positive, negative = same & ~eye, ~same
        usable = positive.any(dim=1) & negative.any(dim=1)
        if not usable.any():
            logger.warning(
                "triplet loss: no anchor in this batch of %d has both a positive and a negative; "
                "use a P x K identity sampler with K >= 2",
                len(pids),
            )
            return features.sum() * 0.0
        hardest_pos = dist.masked_fill(~positive, float("-inf")).amax(dim=1)
        hardest_neg = dist.masked_fill(~negative, float("inf")).amin(dim=1)
        loss = F.relu(hardest_pos - hardest_neg + self.margin)
        return loss[usable].mean()


class OIMLoss(nn.Module):
    """Online Instance Matching loss over a momentum-updated lookup table of identity features.

    Args:
        num_features: D, the feature size.
        num_classes: C, the number of training identities (rows of the LUT).
        scalar: Inverse temperature 1/τ applied to the cosine logits (paper: τ = 0.1).
        momentum: Weight m of the old LUT row in the update.

    Buffers:
        lut: (C, D) unit (or, before an identity is first seen, zero) identity features.
    """

    lut: torch.Tensor

    def __init__(
        self, *, num_features: int, num_classes: int, scalar: float = 10.0, momentum: float = 0.5
    ) -> None:
        super().__init__()
        if num_features < 1 or num_classes < 1:
            raise ValueError(
                f"num_features and num_classes must be >= 1, got {num_features}, {num_classes}"
            )
        if scalar <= 0:
            raise ValueError(f"scalar must be > 0, got {scalar}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.scalar = scalar
        self.momentum = momentum
        self.register_buffer("lut", torch.zeros(num_classes, num_features))

    def forward(self, features: torch.Tensor, pids: torch.Tensor) -> torch.Tensor:
        """Args: features (B, D), pids (B,) in [0, C). Returns: scalar mean over the batch.

        In training mode the LUT rows of `pids` are updated after the logits are formed.
        """
        num_classes, dim = self.lut.shape
        if features.dim() != 2 or features.shape[1] != dim or pids.shape != features.shape[:1]:
            raise ValueError(
                f"need features (B, {dim}) and pids (B,), got {tuple(features.shape)}, "
                f"{tuple(pids.shape)}"
            )
        if pids.numel() and (int(pids.min()) < 0 or int(pids.max()) >= num_classes):
            raise ValueError(f"pids must lie in [0, {num_classes}), got {pids.tolist()}")
        x = F.normalize(features, dim=1)
        # A copy: the in-place update below must not change the tensor autograd saved.
        logits = self.scalar * x @ self.lut.clone().T
        loss = F.cross_entropy(logits, pids)
        if self.training:
            self._update(x.detach(), pids)
        return loss

    @torch.no_grad()
    def _update(self, x: torch.Tensor, pids: torch.Tensor) -> None:
        # Sample by sample, as open-reid: repeated ids in a batch compound (B is small).
        x = x.to(self.lut.dtype)
        for feat, pid in zip(x, pids.tolist(), strict=True):
            row = self.momentum * self.lut[pid] + (1.0 - self.momentum) * feat
            self.lut[pid] = F.normalize(row, dim=0)


class ReIDLoss(nn.Module):
    """Weighted sum of label-smoothed cross-entropy, batch-hard triplet and OIM.

    Args:
        num_classes: Training identities.
        feature_dim: Size of `TrainOutput.features` (for the OIM table).
        weights: ``{"ce": w, "triplet": w, "oim": w}``; a loss with weight 0 or absent is off.
        label_smoothing: Cross-entropy's epsilon.
        triplet_margin: Triplet margin.
        triplet_distance: ``euclidean`` or ``cosine``.
        oim_scalar: OIM inverse temperature.
        oim_momentum: OIM LUT momentum.
    """

    def __init__(
        self,
        *,
        num_classes: int,
        feature_dim: int,
        weights: Mapping[str, float],
        label_smoothing: float = 0.1,
        triplet_margin: float = 0.3,
        triplet_distance: str = "euclidean",
        oim_scalar: float = 10.0,
        oim_momentum: float = 0.5,
    ) -> None:
        super().__init__()
        unknown = sorted(set(weights) - set(LOSSES))
        if unknown:
            raise ValueError(f"unknown loss weights {unknown}; valid keys are {LOSSES}")
        if any(w < 0 for w in weights.values()):
            raise ValueError(f"loss weights must be >= 0, got {dict(weights)}")
        self.weights = {k: float(weights.get(k, 0.0)) for k in LOSSES}
        if not any(self.weights.values()):
            raise ValueError(
                f"at least one of {LOSSES} needs a positive weight, got {dict(weights)}"
            )
        self.ce = (
            CrossEntropyLabelSmooth(num_classes=num_classes, epsilon=label_smoothing)
            if self.weights["ce"]
            else None
        )
        self.triplet = (
            TripletLoss(margin=triplet_margin, distance=triplet_distance)  # type: ignore[arg-type]
            if self.weights["triplet"]
            else None
        )
        self.oim = (
            OIMLoss(
                num_features=feature_dim,
                num_classes=num_classes,
                scalar=oim_scalar,
                momentum=oim_momentum,
            )
            if self.weights["oim"]
            else None
        )

    def forward(
        self, output: TrainOutput, pids: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Args: output of a model in training mode, pids (B,) in [0, num_classes).

        Returns:
            (total, parts): the weighted sum to back-propagate, and the unweighted value of
            every loss (0.0 for those switched off) plus ``"total"``, as floats for logging.

        Raises:
            ValueError: When cross-entropy is on and the model produced no logits.
        """
        terms: dict[str, torch.Tensor] = {}
        if self.ce is not None:
            if not output.logits:
                raise ValueError("the 'ce' loss has a weight but the model returned no logits")
            terms["ce"] = torch.stack([self.ce(lg, pids) for lg in output.logits]).mean()
        if self.triplet is not None:
            terms["triplet"] = self.triplet(output.features, pids)
        if self.oim is not None:
            terms["oim"] = self.oim(output.features, pids)
        total = sum(self.weights[k] * v for k, v in terms.items())
        assert isinstance(total, torch.Tensor)
        parts = {k: float(terms[k].detach()) if k in terms else 0.0 for k in LOSSES}
        parts["total"] = float(total.detach())
        return total, parts
