"""CMC, mAP and mINP of a query-gallery distance matrix, under the official MARS protocol or
torchreid's.

::

    distmat (Q, G) ─stable argsort─▶ order ─▶ per query: good / junk / negative per gallery entry
         ─drop junk─▶ ranked 0/1 hits ─▶ CMC (first hit), AP (every hit), INP (last hit)

Protocols:

``mars`` reproduces the official MATLAB ``evaluation_mars.m`` + ``compute_AP.m``
(liangzheng06/MARS-evaluation; the same files ship with the GLTR and M3D code):

- good = same id and a different camera; junk = same id and the same camera (this removes the
  query itself, since the MARS gallery holds the queries) plus every gallery entry with id -1.
  Distractors (id 0) are ordinary negatives. Junk entries are taken out of the ranking.
- AP is the trapezoid rule of ``compute_AP.m``: walking the ranking without junk, at the n-th
  position ``ap += (recall - old_recall) * (old_precision + precision) / 2`` with
  ``old_precision`` starting at 1. Only hits raise recall, so with hit i (of ``ngood``) at
  position r_i (1-based)::

      AP = 1/ngood * sum_i ( (i-1)/(r_i-1) + i/r_i ) / 2,   (i-1)/(r_i-1) := 1 when r_i = 1

  which is above the standard AP whenever a hit is not at the top.
- CMC, mAP (and mINP) are averaged over **all** queries: ``compute_AP`` returns AP 0 and an all-0
  CMC for a query without a good match, and ``evaluation_mars.m`` divides by the number of queries.
  On MARS with the queries in the gallery no query lacks a match (140 of the 1980 do when the
  gallery excludes them, as torchreid's does), so this only matters elsewhere; such queries are
  logged and `RankResult.num_valid_queries` counts the others.

``torchreid`` reproduces ``torchreid.metrics.rank.eval_market1501`` (also AP3D's
``tools/eval_metrics.py`` and fast-reid's ``fastreid/evaluation/rank.py``): junk = same id and same
camera only (ids 0 and -1 are not special), AP = mean over hits of ``i / r_i``, and queries without
a good match are **skipped**: CMC, mAP and mINP are averaged over the valid queries only.

mINP (Ye et al., "Deep Learning for Person Re-identification: A Survey and Outlook", TPAMI 2021)
is, as in fast-reid, ``ngood / r_last`` with r_last the position of the hardest (last) hit in the
ranking without junk; under ``mars`` it uses the same ranking and the same averaging as mAP.

Ties: gallery entries at equal distance keep their gallery order (stable argsort), as MATLAB's
``sort`` does; torchreid's default quicksort does not promise an order, so the two can differ
only on exactly tied distances. The CMC is returned with `max_rank` entries even when the gallery
is shorter (torchreid truncates it there); past the last gallery entry it stays constant.

Hand-written over the sorted matrix in numpy (no library implements these two protocols),
vectorised over chunks of 512 queries so a (Q, G) ``int64`` order never exists in full (a
10k x 10k matrix needs about 250 MB of working memory).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["PROTOCOLS", "RankResult", "evaluate_rank", "mean_over_splits"]

logger = logging.getLogger(__name__)

PROTOCOLS = ("mars", "torchreid")
_REPORTED_RANKS = (1, 5, 10, 20)
_QUERY_CHUNK = 512


@dataclass(frozen=True, eq=False)
class RankResult:
    """Retrieval accuracy of one evaluation.

    Attributes:
        cmc: (max_rank,) float, ``cmc[k-1]`` = rank-k accuracy in [0, 1].
        mAP: Mean average precision in [0, 1].
        mINP: Mean inverse negative penalty in [0, 1].
        num_valid_queries: Queries with at least one good gallery match.
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid_queries: int

    def __post_init__(self) -> None:
        cmc = np.asarray(self.cmc, dtype=np.float64)
        if cmc.ndim != 1 or cmc.size == 0:
            raise ValueError(f"cmc must be a non-empty 1-D array, got shape {cmc.shape}")
        object.__setattr__(self, "cmc", cmc)

    def as_dict(self) -> dict[str, float]:
        """Rank-1/5/10/20 (those within the CMC's length), mAP and mINP, in percent."""
        ranks = [k for k in _REPORTED_RANKS if k <= len(self.cmc)]
        out = {f"rank{k}": 100.0 * float(self.cmc[k - 1]) for k in ranks}
        out["mAP"] = 100.0 * self.mAP
        out["mINP"] = 100.0 * self.mINP
        return out


def _check_inputs(distmat: np.ndarray, arrays: dict[str, np.ndarray]) -> None:
    if distmat.ndim != 2:
        raise ValueError(f"distmat must be (Q, G), got shape {distmat.shape}")
    num_q, num_g = distmat.shape
    for name, arr in arrays.items():
        expected = num_q if name.startswith("q_") else num_g
        if arr.shape != (expected,):
            raise ValueError(f"{name} must have shape ({expected},), got {arr.shape}")


def _chunk_stats(
    dist: np.ndarray,
    q_pids: np.ndarray,
    q_camids: np.ndarray,
    g_pids: np.ndarray,
    g_camids: np.ndarray,
    *,
    protocol: str,
    max_rank: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-query (cmc (c, max_rank), AP (c,), INP (c,), valid (c,)) for a chunk of queries."""
    order = np.argsort(dist, axis=1, kind="stable")
    pids, cams = g_pids[order], g_camids[order]
    same_id = pids == q_pids[:, None]
    junk = same_id & (cams == q_camids[:, None])
    if protocol == "mars":
        junk |= pids == -1
    good = same_id & ~junk
    position = np.cumsum(~junk, axis=1)  # 1-based position in the ranking without junk
    hit = np.cumsum(good, axis=1)  # hits so far, i.e. i at a hit
    ngood = hit[:, -1]
    valid = ngood > 0
    safe_ngood = np.maximum(ngood, 1)

    first = np.where(valid, position[np.arange(len(dist)), good.argmax(axis=1)], np.inf)
    cmc = (np.arange(1, max_rank + 1)[None, :] >= first[:, None]).astype(np.float64)

    precision = np.where(good, hit / np.maximum(position, 1), 0.0)
    if protocol == "mars":
        before = np.where(position > 1, (hit - 1) / np.maximum(position - 1, 1), 1.0)
        precision = np.where(good, (before + precision) / 2.0, 0.0)
    ap = precision.sum(axis=1) / safe_ngood

    last = good.shape[1] - 1 - good[:, ::-1].argmax(axis=1)
    inp = np.where(valid, ngood / position[np.arange(len(dist)), last], 0.0)
    return cmc, np.where(valid, ap, 0.0), inp, valid


def evaluate_rank(
    distmat: np.ndarray,
    q_pids: Sequence[int] | np.ndarray,
    g_pids: Sequence[int] | np.ndarray,
    q_camids: Sequence[int] | np.ndarray,
    g_camids: Sequence[int] | np.ndarray,
    *,
    protocol: Literal["mars", "torchreid"] = "mars",
    max_rank: int = 50,
) -> RankResult:
    """CMC, mAP and mINP of a distance matrix (smaller = more similar).

    Args:
        distmat: (Q, G) distances. Under ``mars`` the gallery is expected to hold the queries
            (MARS, LS-VID); they are removed per query as same-id same-camera junk.
        q_pids: (Q,) query identities.
        g_pids: (G,) gallery identities; under ``mars`` 0 are distractors, -1 junk.
        q_camids: (Q,) query cameras.
        g_camids: (G,) gallery cameras.
        protocol: ``mars`` (official MATLAB) or ``torchreid``; see the module docstring.
        max_rank: Length of the returned CMC.

    Returns:
        The `RankResult`.

    Raises:
        ValueError: On an unknown protocol, bad shapes, ``max_rank < 1``, or, under
            ``torchreid``, when no query has a good match.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    distmat = np.asarray(distmat)
    arrays = {
        "q_pids": np.asarray(q_pids).ravel(),
        "g_pids": np.asarray(g_pids).ravel(),
        "q_camids": np.asarray(q_camids).ravel(),
        "g_camids": np.asarray(g_camids).ravel(),
    }
    _check_inputs(distmat, arrays)
    parts = [
        _chunk_stats(
            distmat[s : s + _QUERY_CHUNK],
            arrays["q_pids"][s : s + _QUERY_CHUNK],
            arrays["q_camids"][s : s + _QUERY_CHUNK],
            arrays["g_pids"],
            arrays["g_camids"],
            protocol=protocol,
            max_rank=max_rank,
        )
        for s in range(0, distmat.shape[0], _QUERY_CHUNK)
    ]
    cmc, ap, inp, valid = (np.concatenate(p) for p in zip(*parts, strict=True))
    return _average(cmc, ap, inp, valid, protocol=protocol, max_rank=max_rank)


def _average(
    cmc: np.ndarray,
    ap: np.ndarray,
    inp: np.ndarray,
    valid: np.ndarray,
    *,
    protocol: Literal["mars", "torchreid"],
    max_rank: int,
) -> RankResult:
    """Per-query CMC rows, AP and INP averaged as `protocol` does with queries lacking a match:
    over all queries (``mars``: they count as 0) or over the valid ones only (``torchreid``)."""
    num_valid = int(valid.sum())
    if num_valid < len(valid):
        logger.warning(
            "%d of %d queries have no good gallery match; %s",
            len(valid) - num_valid,
            len(valid),
            "they count as 0 (mars protocol)" if protocol == "mars" else "they are skipped",
        )
    if protocol == "torchreid":
        if num_valid == 0:
            raise ValueError("no query has a good gallery match (torchreid protocol)")
        cmc, ap, inp = cmc[valid], ap[valid], inp[valid]
    if len(ap) == 0:
        return RankResult(np.zeros(max_rank), 0.0, 0.0, 0)
    return RankResult(cmc.mean(axis=0), float(ap.mean()), float(inp.mean()), num_valid)


def mean_over_splits(results: Sequence[RankResult]) -> RankResult:
    """Mean CMC, mAP and mINP over the splits of a multi-split protocol (iLIDS-VID, PRID2011).

    Args:
        results: One `RankResult` per split, all with the same CMC length.

    Returns:
        The split means; `num_valid_queries` is the total over the splits.

    Raises:
        ValueError: On an empty sequence or CMCs of different lengths.
    """
    if not results:
        raise ValueError("mean_over_splits needs at least one result")
    lengths = {len(r.cmc) for r in results}
    if len(lengths) != 1:
        raise ValueError(f"CMC lengths differ between splits: {sorted(lengths)}")
    return RankResult(
        cmc=np.mean([r.cmc for r in results], axis=0),
        mAP=float(np.mean([r.mAP for r in results])),
        mINP=float(np.mean([r.mINP for r in results])),
        num_valid_queries=sum(r.num_valid_queries for r in results),
    )
