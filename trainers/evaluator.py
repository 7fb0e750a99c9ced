"""`evaluate_model`: a model and a dataset's query/gallery split in, CMC/mAP/mINP out.

    query, gallery tracklets
      └─ extract_features (cfg's test sampling, aggregation, normalisation) ─▶ (Q, D), (G, D)
      └─ pairwise_distance(metric=cfg.distance) ─▶ (Q, G)
           └─ rerank: re_ranking(q_g, q_q, g_g) on Euclidean distances
      └─ evaluate_rank(protocol) ─▶ RankResult

Features of a tracklet that is both a query and a gallery item (MARS's official gallery holds
its 1,980 queries) are extracted once: test features are deterministic in eval mode.
Re-ranking always works on plain Euclidean distances, the input its reference code assumes
(trainers/evaluation/rerank.py); on L2-normalised features these order pairs as the cosine
distance does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from reid_models.pretrained import PretrainedCfg
from trainers.data import extract_features
from trainers.evaluation import (
    ProtocolName,
    RankResult,
    evaluate_rank,
    pairwise_distance,
    re_ranking,
)

if TYPE_CHECKING:
    from trainers.datasets.base import Tracklet, VideoDataset

__all__ = ["evaluate_model", "query_gallery_features"]

logger = logging.getLogger(__name__)


def query_gallery_features(
    model: nn.Module,
    query: Sequence[Tracklet],
    gallery: Sequence[Tracklet],
    *,
    cfg: PretrainedCfg,
    batch_size: int,
    device: torch.device | str,
    workers: int = 0,
    amp_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(Q, D) and (G, D) float32 CPU features; shared tracklets are extracted once."""
    index: dict[tuple, int] = {}
    unique: list[Tracklet] = []
    positions: list[list[int]] = [[], []]
    for side, tracklets in enumerate((gallery, query)):
        for t in tracklets:
            key = (tuple(t[0]), t[1], t[2])
            if key not in index:
                index[key] = len(unique)
                unique.append(t)
            positions[side].append(index[key])
    features = extract_features(
        model,
        unique,
        cfg=cfg,
        batch_size=batch_size,
        device=device,
        workers=workers,
        amp_dtype=amp_dtype,
    )
    gallery_idx, query_idx = (torch.as_tensor(p, dtype=torch.long) for p in positions)
    return features[query_idx], features[gallery_idx]


def evaluate_model(
    model: nn.Module,
    dataset: VideoDataset,
    *,
    cfg: PretrainedCfg,
    batch_size: int,
    device: torch.device | str,
    workers: int = 0,
    protocol: ProtocolName = "mars",
    rerank: bool = False,
    rerank_k1: int = 20,
    rerank_k2: int = 6,
    rerank_lambda: float = 0.3,
    amp_dtype: torch.dtype | None = None,
) -> RankResult:
    """Ranks `dataset.gallery` for every `dataset.query` with `model`'s embeddings.

    Args:
        model: A `ReIDModel` (the unwrapped module of a DDP model).
        dataset: Supplies ``query`` and ``gallery`` tracklets (original pids and camids).
        cfg: The model's `PretrainedCfg` (test sampling, aggregation, distance).
        batch_size: Test clips per forward pass.
        device: Where the model runs.
        workers: Loader processes decoding test clips.
        protocol: ``mars`` (official MATLAB kit), ``ap3d`` (AP3D's ``eval_metrics``) or
            ``torchreid``; see `trainers.evaluation.rank`.
        rerank: Apply k-reciprocal re-ranking.
        rerank_k1: Its k-reciprocal neighbourhood size (paper: 20; must be < Q + G).
        rerank_k2: Its query-expansion neighbours (paper: 6).
        rerank_lambda: Weight of the original distance (paper: 0.3).
        amp_dtype: Autocast dtype for feature extraction, or None.

    Raises:
        ValueError: An empty query or gallery set.
    """
    if not dataset.query or not dataset.gallery:
        raise ValueError(
            f"dataset {dataset.name!r} has {len(dataset.query)} query and "
            f"{len(dataset.gallery)} gallery tracklets; both must be non-empty"
        )
    started = time.perf_counter()
    q_feat, g_feat = query_gallery_features(
        model,
        dataset.query,
        dataset.gallery,
        cfg=cfg,
        batch_size=batch_size,
        device=device,
        workers=workers,
        amp_dtype=amp_dtype,
    )
    extracted = time.perf_counter()
    if rerank:
        distmat = _reranked(q_feat, g_feat, k1=rerank_k1, k2=rerank_k2, lambda_value=rerank_lambda)
    else:
        distmat = pairwise_distance(q_feat, g_feat, metric=cfg.distance)
    result = _rank(distmat, dataset, protocol)
    _log_result(dataset, result, extracted - started, time.perf_counter() - extracted)
    return result


def _reranked(
    q_feat: torch.Tensor, g_feat: torch.Tensor, *, k1: int, k2: int, lambda_value: float
) -> np.ndarray:
    """k-reciprocal re-ranking of the plain Euclidean distances (see the module docstring)."""
    return re_ranking(
        pairwise_distance(q_feat, g_feat, metric="euclidean"),
        pairwise_distance(q_feat, q_feat, metric="euclidean"),
        pairwise_distance(g_feat, g_feat, metric="euclidean"),
        k1=k1,
        k2=k2,
        lambda_value=lambda_value,
    )


def _rank(distmat: np.ndarray, dataset: VideoDataset, protocol: ProtocolName) -> RankResult:
    """`evaluate_rank` with the pids and camids of `dataset`'s query and gallery."""
    return evaluate_rank(
        distmat,
        np.asarray([t[1] for t in dataset.query]),
        np.asarray([t[1] for t in dataset.gallery]),
        np.asarray([t[2] for t in dataset.query]),
        np.asarray([t[2] for t in dataset.gallery]),
        protocol=protocol,
    )


def _log_result(
    dataset: VideoDataset, result: RankResult, features_s: float, ranking_s: float
) -> None:
    """One log line per evaluation: sizes, the time of each half and the metrics."""
    logger.info(
        "%s split %d: %d queries x %d gallery, features %.1f s, ranking %.1f s: %s",
        dataset.name,
        dataset.split_id,
        len(dataset.query),
        len(dataset.gallery),
        features_s,
        ranking_s,
        {k: round(v, 2) for k, v in result.as_dict().items()},
    )
