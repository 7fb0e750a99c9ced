"""CMC, mAP and mINP of a query-gallery distance matrix, under the rules of the evaluation code a
paper scored with: the official MARS MATLAB kit (``mars``), AP3D's ``eval_metrics`` (``ap3d``) or
torchreid's (``torchreid``).

::

    distmat (Q, G) ─stable argsort─▶ order ─▶ per query: good / junk / negative per gallery entry
         ─drop junk─▶ ranked 0/1 hits ─▶ CMC (first hit), AP (every hit), INP (last hit)
         ─▶ per-query AP, NaN without a good match ─protocol's rule─▶ means over the queries

Protocols (``protocol=``), each the rules of one reference code; every recipe in
trainers/configs names the one its paper's code used (README, "Training and evaluation"):

=============  ===========================  ==========  ==================================
protocol       junk (out of the ranking)    AP          a query without a good match
=============  ===========================  ==========  ==================================
``mars``       same id and camera; id -1    trapezoid   scores 0 and counts in every mean
``ap3d``       same id and camera; id -1    standard    is left out of every mean
``torchreid``  same id and camera           standard    is left out of every mean
=============  ===========================  ==========  ==================================

Under all three, good = same id and another camera, and id 0 (MARS distractors) is an ordinary
negative. The query itself, when the gallery holds it (MARS, LS-VID, DukeMTMC-VideoReID), is
same-id same-camera junk.

``mars`` reproduces the official MATLAB kit, ``compute_AP.m`` with ``evaluation_mars.m``
(liangzheng06/MARS-evaluation; GLTR and M3D ship it in ``Mars_test/`` and score with it).
``ap3d`` reproduces ``tools/eval_metrics.py::evaluate`` of the official AP3D code
(guxinqian/AP3D) as its ``test-all.py`` calls it: its MARS loader drops the id -1 tracklets,
which for the ranking is the same as junking them here (`trainers.datasets.mars` keeps them, with
id -1), and it puts the queries in front of the gallery, which the official MARS reader already
does. ``torchreid`` reproduces ``torchreid.metrics.rank.eval_market1501`` (and fast-reid's
``fastreid/evaluation/rank.py``): id -1 is not special.

Average precision. With hit i (of ``ngood``) at position r_i (1-based) of the ranking without
junk, the standard AP (``ap3d``, ``torchreid``) is the mean precision at the hits::

    AP_std = 1/ngood * sum_i  i/r_i

``compute_AP.m`` (``mars``) walks the ranking with ``ap += (recall - old_recall) *
(old_precision + precision) / 2``, ``old_precision`` starting at 1; only hits raise recall, and
the precision just before hit i is (i-1)/(r_i-1), so::

    AP_trap = 1/ngood * sum_i  ( (i-1)/(r_i-1) + i/r_i ) / 2,    (i-1)/(r_i-1) := 1 when r_i = 1

The trapezoid AP is **never above** the standard AP. The i-th hit cannot stand before position
i, so r_i >= i, and (i-1)/(r_i-1) <= i/r_i  <=>  r_i (i-1) <= i (r_i-1)  <=>  i <= r_i: every
term of AP_trap is at most the matching term of AP_std. They are equal only when r_i = i for
every hit (no negative above any hit, AP 1); once a negative outranks a hit the trapezoid AP is
strictly lower: hits at 2 and 4 give AP_std = (1/2 + 2/4)/2 = 1/2 but AP_trap = ((0 + 1/2)/2 +
(1/3 + 2/4)/2)/2 = 1/3. So ``mars`` reports a lower mAP than ``ap3d`` on the same distance
matrix, with the same CMC.

A query without a good match. ``compute_AP.m`` then divides 0 by ``ngood = 0`` (its recall), so
it returns AP **NaN** and an all-0 CMC (0, not NaN, only when every gallery entry is junk and the
division is never reached); `query_average_precision` returns NaN for such a query too. What
happens next is the protocol's rule:

- ``mars`` counts it as 0 in CMC, mAP and mINP, averaged over all queries, as ``evaluation.m``
  does (the kit's variant with ``ap(isnan(ap)) = 0``, e.g. zhunzhong07/person-re-ranking). The
  ``evaluation_mars.m`` that GLTR ships has no such line: one such query makes its mAP NaN (its
  CMC counts the query as 0, like ours). GLTR's code therefore reports an mAP only for splits
  where every query has a match, and on those ``mars`` gives exactly its number; where its code
  would print NaN, ``mars`` gives a number, with the query counted as 0 and logged. On GLTR's
  and M3D's splits no query lacks a match: MARS with the queries in the gallery (none of the
  1980; 140 do when the gallery excludes them, as torchreid's does), iLIDS-VID and PRID2011 (the
  other camera of every test identity), and DukeMTMC-VideoReID, where GLTR's
  ``Duke_test/compute_AP.m`` returns 0 for such a query anyway.
- ``ap3d`` and ``torchreid`` leave it out: CMC, mAP and mINP are averaged over the valid queries
  (AP3D counts them as ``num_no_gt``); with no valid query at all there is nothing to average and
  `evaluate_rank` raises.

Either way such queries are logged, and `RankResult.num_valid_queries` counts the others.

mINP (Ye et al., "Deep Learning for Person Re-identification: A Survey and Outlook", TPAMI 2021)
is, as in fast-reid, ``ngood / r_last`` with r_last the position of the hardest (last) hit in the
ranking without junk; it uses the protocol's junk and averaging (AP3D's code has no mINP).

Ties: gallery entries at equal distance keep their gallery order (stable argsort), as MATLAB's
``sort`` does; numpy's default quicksort, which AP3D and torchreid use, does not promise an
order, so the protocols can differ from their code only on exactly tied distances. The CMC is
returned with `max_rank` entries even when the gallery is shorter (torchreid truncates it there);
past the last gallery entry it stays constant.

Hand-written over the sorted matrix in numpy (no library implements these protocols),
vectorised over chunks of 512 queries so a (Q, G) ``int64`` order never exists in full (a
10k x 10k matrix needs about 250 MB of working memory).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "PROTOCOLS",
    "PROTOCOL_RULES",
    "Protocol",
    "ProtocolName",
    "RankResult",
    "evaluate_rank",
    "mean_over_splits",
    "query_average_precision",
]

logger = logging.getLogger(__name__)

ProtocolName = Literal["mars", "ap3d", "torchreid"]
_REPORTED_RANKS = (1, 5, 10, 20)
_QUERY_CHUNK = 512


@dataclass(frozen=True)
class Protocol:
    """The rules of one reference evaluation code (see the module docstring's table).

    Attributes:
        name: The ``protocol=`` / ``eval.protocol`` name.
        junk_minus_one: Gallery entries with id -1 are junk (out of the ranking).
        trapezoid: AP by ``compute_AP.m``'s trapezoid rule, else the standard AP.
        no_match: A query without a good match scores 0 and counts in every mean (``"zero"``)
            or is left out of every mean (``"skip"``).
        source: The code whose numbers the protocol reproduces.
    """

    name: str
    junk_minus_one: bool
    trapezoid: bool
    no_match: Literal["zero", "skip"]
    source: str


#: Every protocol by name.
PROTOCOL_RULES: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol(
            "mars",
            junk_minus_one=True,
            trapezoid=True,
            no_match="zero",
            source="MARS MATLAB kit (liangzheng06/MARS-evaluation; GLTR's and M3D's Mars_test/): "
            "compute_AP.m's trapezoid AP, a query without a match counts 0 as in evaluation.m",
        ),
        Protocol(
            "ap3d",
            junk_minus_one=True,
            trapezoid=False,
            no_match="skip",
            source="AP3D's tools/eval_metrics.py (github.com/guxinqian/AP3D): standard AP, id -1 "
            "dropped by its loader, queries without a match skipped",
        ),
        Protocol(
            "torchreid",
            junk_minus_one=False,
            trapezoid=False,
            no_match="skip",
            source="torchreid.metrics.rank.eval_market1501: standard AP, id -1 not special, "
            "queries without a match skipped",
        ),
    )
}
PROTOCOLS: tuple[str, ...] = tuple(PROTOCOL_RULES)


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


def _rules(protocol: str) -> Protocol:
    try:
        return PROTOCOL_RULES[protocol]
    except KeyError:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}") from None


def _check_inputs(distmat: np.ndarray, q_pids, g_pids, q_camids, g_camids) -> dict[str, np.ndarray]:
    """The id and camera arrays, flattened, after checking their shapes against `distmat`'s."""
    if distmat.ndim != 2:
        raise ValueError(f"distmat must be (Q, G), got shape {distmat.shape}")
    num_q, num_g = distmat.shape
    arrays = {
        "q_pids": np.asarray(q_pids).ravel(),
        "g_pids": np.asarray(g_pids).ravel(),
        "q_camids": np.asarray(q_camids).ravel(),
        "g_camids": np.asarray(g_camids).ravel(),
    }
    for name, arr in arrays.items():
        expected = num_q if name.startswith("q_") else num_g
        if arr.shape != (expected,):
            raise ValueError(f"{name} must have shape ({expected},), got {arr.shape}")
    return arrays


def _chunk_stats(
    dist: np.ndarray,
    q_pids: np.ndarray,
    q_camids: np.ndarray,
    g_pids: np.ndarray,
    g_camids: np.ndarray,
    *,
    rules: Protocol,
    max_rank: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-query (cmc (c, max_rank), AP (c,), INP (c,), valid (c,)) for a chunk of queries;
    AP and INP are NaN for a query without a good match, as ``compute_AP.m``'s AP is."""
    order = np.argsort(dist, axis=1, kind="stable")
    pids, cams = g_pids[order], g_camids[order]
    same_id = pids == q_pids[:, None]
    junk = same_id & (cams == q_camids[:, None])
    if rules.junk_minus_one:
        junk |= pids == -1
    good = same_id & ~junk
    position = np.cumsum(~junk, axis=1)  # 1-based position in the ranking without junk
    hit = np.cumsum(good, axis=1)  # hits so far, i.e. i at a hit
    ngood = hit[:, -1]
    valid = ngood > 0
    rows = np.arange(len(dist))

    first = np.where(valid, position[rows, good.argmax(axis=1)], np.inf)
    cmc = (np.arange(1, max_rank + 1)[None, :] >= first[:, None]).astype(np.float64)

    precision = hit / np.maximum(position, 1)
    if rules.trapezoid:
        before = np.where(position > 1, (hit - 1) / np.maximum(position - 1, 1), 1.0)
        precision = (before + precision) / 2.0
    ap = np.where(good, precision, 0.0).sum(axis=1) / np.maximum(ngood, 1)

    last = good.shape[1] - 1 - good[:, ::-1].argmax(axis=1)
    inp = ngood / np.maximum(position[rows, last], 1)
    return cmc, np.where(valid, ap, np.nan), np.where(valid, inp, np.nan), valid


def _per_query(
    distmat: np.ndarray, arrays: dict[str, np.ndarray], rules: Protocol, max_rank: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`_chunk_stats` over chunks of `_QUERY_CHUNK` queries, concatenated."""
    parts = [
        _chunk_stats(
            distmat[s : s + _QUERY_CHUNK],
            arrays["q_pids"][s : s + _QUERY_CHUNK],
            arrays["q_camids"][s : s + _QUERY_CHUNK],
            arrays["g_pids"],
            arrays["g_camids"],
            rules=rules,
            max_rank=max_rank,
        )
        for s in range(0, distmat.shape[0], _QUERY_CHUNK)
    ]
    if not parts:
        empty = np.zeros(0)
        return np.zeros((0, max_rank)), empty, empty, np.zeros(0, dtype=bool)
    cmc, ap, inp, valid = (np.concatenate(p) for p in zip(*parts, strict=True))
    return cmc, ap, inp, valid


def query_average_precision(
    distmat: np.ndarray,
    q_pids: Sequence[int] | np.ndarray,
    g_pids: Sequence[int] | np.ndarray,
    q_camids: Sequence[int] | np.ndarray,
    g_camids: Sequence[int] | np.ndarray,
    *,
    protocol: ProtocolName = "mars",
) -> np.ndarray:
    """The AP of every query under `protocol`'s junk and AP rules, before any averaging.

    Args:
        distmat: (Q, G) distances (smaller = more similar).
        q_pids, g_pids, q_camids, g_camids: As for `evaluate_rank`.
        protocol: ``mars`` (trapezoid AP) or ``ap3d`` / ``torchreid`` (standard AP).

    Returns:
        (Q,) float64 APs in [0, 1]; **NaN** for a query without a good gallery match, as
        ``compute_AP.m`` returns (its recall divides by ``ngood = 0``). How such a query then
        counts is the protocol's rule, which `evaluate_rank` applies (module docstring).

    Raises:
        ValueError: On an unknown protocol or bad shapes.
    """
    rules = _rules(protocol)
    distmat = np.asarray(distmat)
    arrays = _check_inputs(distmat, q_pids, g_pids, q_camids, g_camids)
    return _per_query(distmat, arrays, rules, max_rank=1)[1]


def evaluate_rank(
    distmat: np.ndarray,
    q_pids: Sequence[int] | np.ndarray,
    g_pids: Sequence[int] | np.ndarray,
    q_camids: Sequence[int] | np.ndarray,
    g_camids: Sequence[int] | np.ndarray,
    *,
    protocol: ProtocolName = "mars",
    max_rank: int = 50,
) -> RankResult:
    """CMC, mAP and mINP of a distance matrix (smaller = more similar).

    Args:
        distmat: (Q, G) distances. Under ``mars`` and ``ap3d`` the gallery is expected to hold
            the queries (MARS, LS-VID); they are removed per query as same-id same-camera junk.
        q_pids: (Q,) query identities.
        g_pids: (G,) gallery identities; 0 are distractors, -1 junk under ``mars`` and ``ap3d``.
        q_camids: (Q,) query cameras.
        g_camids: (G,) gallery cameras.
        protocol: ``mars`` (official MATLAB kit), ``ap3d`` (AP3D's ``eval_metrics``) or
            ``torchreid``; see the module docstring.
        max_rank: Length of the returned CMC.

    Returns:
        The `RankResult`.

    Raises:
        ValueError: On an unknown protocol, bad shapes, ``max_rank < 1``, or, under a protocol
            that skips queries without a good match (``ap3d``, ``torchreid``), when no query
            has one.
    """
    rules = _rules(protocol)
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    distmat = np.asarray(distmat)
    arrays = _check_inputs(distmat, q_pids, g_pids, q_camids, g_camids)
    cmc, ap, inp, valid = _per_query(distmat, arrays, rules, max_rank)
    return _average(cmc, ap, inp, valid, rules=rules, max_rank=max_rank)


def _average(
    cmc: np.ndarray,
    ap: np.ndarray,
    inp: np.ndarray,
    valid: np.ndarray,
    *,
    rules: Protocol,
    max_rank: int,
) -> RankResult:
    """Per-query CMC rows, AP and INP (NaN without a good match) averaged by the protocol's rule:
    over all queries with such queries as 0 (``zero``), or over the valid ones only (``skip``)."""
    num_valid = int(valid.sum())
    if num_valid < len(valid):
        logger.warning(
            "%d of %d queries have no good gallery match; %s",
            len(valid) - num_valid,
            len(valid),
            f"they count as 0 ({rules.name} protocol, as evaluation.m)"
            if rules.no_match == "zero"
            else f"they are skipped ({rules.name} protocol)",
        )
    if rules.no_match == "skip":
        if num_valid == 0:
            raise ValueError(f"no query has a good gallery match ({rules.name} protocol)")
        cmc, ap, inp = cmc[valid], ap[valid], inp[valid]
    else:
        ap, inp = np.nan_to_num(ap, nan=0.0), np.nan_to_num(inp, nan=0.0)
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
