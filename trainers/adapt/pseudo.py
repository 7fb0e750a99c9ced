"""Pseudo identities of unlabelled tracklets: tracklet association learning's labels.

    every tracklet is an identity of its own within its camera        (TAUDL, Li et al. ECCV
                                                                       2018, Sec. 3.1; UTAL, TPAMI
                                                                       2019, "per-camera tracklet
                                                                       discrimination")
    cross-camera pairs: tracklets a (camera i) and b (camera j != i) whose teacher embeddings
      are mutual nearest neighbours between the two cameras and at cosine >= threshold
      ─▶ one identity (union-find)                                    (TAUDL Sec. 3.2 / UTAL's
                                                                       cross-camera association,
                                                                       here decided by the teacher)
    never merged: two tracklets of one camera that are in view at the same time (one person is
      not twice in a frame); a pair whose union would do that is skipped

The threshold is meant to be strict: a wrong pair teaches the student to confuse two people,
a missing one only leaves a person split, which the distillation term and the cross-entropy of
each tracklet tolerate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["PseudoLabels", "pseudo_identities"]


@dataclass(frozen=True)
class PseudoLabels:
    """Attributes:
    labels: (N,) identity of each tracklet, 0..num_ids-1.
    pairs: (a, b, cosine) of every cross-camera pair that was merged.
    skipped: Pairs that passed the threshold but would put two tracklets of one camera that
        overlap in time into one identity.
    """

    labels: np.ndarray
    pairs: list[tuple[int, int, float]]
    skipped: int

    @property
    def num_ids(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0


def pseudo_identities(
    embeddings: np.ndarray,
    cameras: Sequence[str],
    spans: Sequence[tuple[float, float]],
    *,
    threshold: float,
) -> PseudoLabels:
    """Pseudo labels of N tracklets.

    Args:
        embeddings: (N, D) teacher embeddings (L2-normalised here).
        cameras: Camera of each tracklet.
        spans: (first, last) capture time of each tracklet.
        threshold: Least cosine for a cross-camera pair.
    """
    x = np.asarray(embeddings, np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    cams = np.asarray(cameras)
    n = len(x)
    parent = list(range(n))
    members = {i: [i] for i in range(n)}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    sim = x @ x.T
    candidates = []
    for cam_a in np.unique(cams):
        for cam_b in np.unique(cams):
            if cam_a >= cam_b:
                continue
            ia, ib = np.flatnonzero(cams == cam_a), np.flatnonzero(cams == cam_b)
            block = sim[np.ix_(ia, ib)]
            best_b, best_a = block.argmax(axis=1), block.argmax(axis=0)
            for r, c in enumerate(best_b):
                if best_a[c] == r and block[r, c] >= threshold:
                    candidates.append((float(block[r, c]), int(ia[r]), int(ib[c])))
    pairs, skipped = [], 0
    for cos, a, b in sorted(candidates, reverse=True):
        ra, rb = root(a), root(b)
        if ra == rb:
            continue
        if _conflict(members[ra], members[rb], cams, spans):
            skipped += 1
            continue
        parent[rb] = ra
        members[ra] += members.pop(rb)
        pairs.append((a, b, cos))
    roots = [root(i) for i in range(n)]
    _, labels = np.unique(roots, return_inverse=True)
    return PseudoLabels(labels.astype(np.int64), pairs, skipped)


def _conflict(
    one: list[int], other: list[int], cams: np.ndarray, spans: Sequence[tuple[float, float]]
) -> bool:
    """Whether some tracklet of `one` and some of `other` share a camera and a moment."""
    for i in one:
        for j in other:
            if cams[i] == cams[j] and spans[i][0] <= spans[j][1] and spans[j][0] <= spans[i][1]:
                return True
    return False
