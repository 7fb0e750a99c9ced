"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with k-reciprocal
Encoding", CVPR 2017), with the maths of the authors' Python code (zhunzhong07/person-re-ranking,
as copied into torchreid ``utils/rerank.py``), vectorised with sparse matrices.

::

    [q_q  q_g ]  square, divide column j by its max, transpose ─▶ M (N, N), N = Q + G
    [q_gᵀ g_g ]
    M ─stable argsort, top k1+1─▶ F (who is in whose top list)
      R  = F ∘ Fᵀ                         k1-reciprocal neighbours
      Rh = Fh ∘ Fhᵀ                       round(k1/2)-reciprocal neighbours
      E  = R(i) united with Rh(c) for c in R(i) with |Rh(c) & R(i)| > 2/3 |Rh(c)|
      V[i, j] = exp(-M[i, j]) / Σ_E(i) exp(-M[i, ·])   on E(i)
      V ← mean of V over the k2 nearest rows (query expansion, when k2 != 1)
      jaccard[q, g] = 1 - Σ min(V_q, V_g) / (2 - Σ min(V_q, V_g))
    final = (1 - λ) · jaccard + λ · M[:Q, Q:]

Reference details kept on purpose:

- The inputs are squared before use, so they should be plain Euclidean distances
  (`trainers.evaluation.distance`); the re-ranking then works on squared distances, the paper's
  Mahalanobis form. torchreid feeds it already-squared distances (a fourth power).
- M is normalised by the maximum of each column of the stacked matrix and then transposed, so
  row i of M is column i divided by its maximum (for symmetric inputs: each row by its maximum).
- ``round(k1/2)`` is numpy's round-half-to-even, as in the reference.

Deviation: neighbour lists come from a stable argsort (ties keep their index order); the
reference uses numpy's default sort, whose order among exact ties is unspecified.

Memory: the reference holds four dense (N, N) arrays (distances, ranks, V, expanded V): about
3.2 GB for MARS (N = 14,160). Here the dense state is the (Q, G) float32 result plus a row chunk
of M and its argsort (``_ROW_CHUNK x N``); the neighbour sets and V are sparse with about N·|E|
and N·k2·|E| entries (|E| ≈ k1 to 2·k1), and the Jaccard sums are accumulated in query chunks of
at most ``_PAIR_BUDGET`` (query, word, gallery) triples. Measured at MARS size (Q = 1,980,
G = 12,180, 128-d): about 210 MB above the three input matrices, 92 MB of it the result.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import sparse

__all__ = ["re_ranking"]

logger = logging.getLogger(__name__)

_ROW_CHUNK = 1024
_PAIR_BUDGET = 4_000_000


class _Stacked:
    """The (N, N) matrix ``[[q_q, q_g], [q_gᵀ, g_g]]`` read without building it."""

    def __init__(self, q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray) -> None:
        self.q_g, self.q_q, self.g_g = q_g, q_q, g_g
        self.num_q = q_g.shape[0]
        self.n = q_g.shape[0] + q_g.shape[1]

    def columns(self, start: int, stop: int) -> np.ndarray:
        """Columns [start, stop) as rows: (stop - start, N)."""
        q = self.num_q
        parts = []
        if start < q:
            hi = min(stop, q)
            parts.append(np.concatenate([self.q_q[:, start:hi].T, self.q_g[start:hi]], axis=1))
        if stop > q:
            lo = max(start, q) - q
            hi = stop - q
            parts.append(np.concatenate([self.q_g[:, lo:hi].T, self.g_g[:, lo:hi].T], axis=1))
        return np.concatenate(parts, axis=0)

    def entries(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Elements ``[rows[k], cols[k]]``."""
        q = self.num_q
        out = np.empty(len(rows), dtype=np.float32)
        rq, cq = rows < q, cols < q
        sel = rq & cq
        out[sel] = self.q_q[rows[sel], cols[sel]]
        sel = rq & ~cq
        out[sel] = self.q_g[rows[sel], cols[sel] - q]
        sel = ~rq & cq
        out[sel] = self.q_g[cols[sel], rows[sel] - q]
        sel = ~rq & ~cq
        out[sel] = self.g_g[rows[sel] - q, cols[sel] - q]
        return out


def _top_neighbours(stacked: _Stacked, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest of every row of M (stable order) and every row's normaliser. (N, k), (N,)."""
    n = stacked.n
    top = np.empty((n, k), dtype=np.int64)
    scale = np.empty(n, dtype=np.float32)
    for start in range(0, n, _ROW_CHUNK):
        stop = min(start + _ROW_CHUNK, n)
        block = np.square(stacked.columns(start, stop)).astype(np.float32)
        scale[start:stop] = block.max(axis=1)
        block /= scale[start:stop, None]
        top[start:stop] = np.argsort(block, axis=1, kind="stable")[:, :k]
    return top, scale


def _membership(top: np.ndarray, n: int) -> sparse.csr_matrix:
    """Boolean (N, N) matrix with True at [i, top[i, :]]."""
    rows = np.repeat(np.arange(n), top.shape[1])
    data = np.ones(rows.size, dtype=bool)
    return sparse.csr_matrix((data, (rows, top.ravel())), shape=(n, n))


def _expanded_neighbours(top: np.ndarray, k1: int) -> sparse.csr_matrix:
    """E(i) of every row as a boolean (N, N) sparse matrix."""
    n = top.shape[0]
    forward = _membership(top[:, : k1 + 1], n)
    recip = forward.multiply(forward.T).tocsr()
    half = int(np.around(k1 / 2.0))
    forward_h = _membership(top[:, : half + 1], n)
    recip_h = forward_h.multiply(forward_h.T).tocsr().astype(np.float64)
    # overlap[i, c] = |Rh(c) ∩ R(i)| for every c in R(i).
    overlap = recip.astype(np.float64) @ recip_h.T
    size_h = np.asarray(recip_h.sum(axis=1)).ravel()
    cand = recip.tocoo()
    ov = np.asarray(overlap[cand.row, cand.col]).ravel()
    keep = ov > 2.0 / 3.0 * size_h[cand.col]
    chosen = sparse.csr_matrix(
        (np.ones(keep.sum()), (cand.row[keep], cand.col[keep])), shape=(n, n)
    )
    expanded = recip.astype(np.float64) + chosen @ recip_h
    expanded.data[:] = 1.0
    return expanded.tocsr()


def _encode(
    stacked: _Stacked, top: np.ndarray, scale: np.ndarray, k1: int, k2: int
) -> sparse.csr_matrix:
    """The sparse k-reciprocal feature V (N, N), query-expanded over k2 neighbours."""
    expanded = _expanded_neighbours(top, k1).tocoo()
    rows, cols = expanded.row, expanded.col
    dist = np.square(stacked.entries(cols, rows)).astype(np.float32) / scale[rows]
    weight = np.exp(-dist)
    total = np.bincount(rows, weights=weight, minlength=stacked.n)
    v = sparse.csr_matrix(
        ((weight / total[rows]).astype(np.float32), (rows, cols)), shape=(stacked.n,) * 2
    )
    if k2 != 1:
        n = stacked.n
        qe_rows = np.repeat(np.arange(n), k2)
        average = sparse.csr_matrix(
            (np.full(qe_rows.size, 1.0 / k2, dtype=np.float32), (qe_rows, top[:, :k2].ravel())),
            shape=(n, n),
        )
        v = (average @ v).tocsr()
    v.eliminate_zeros()
    return v


def _jaccard(v: sparse.csr_matrix, num_q: int) -> np.ndarray:
    """1 - Σ min / (2 - Σ min) between every query row of V and every gallery row. (Q, G)."""
    n = v.shape[0]
    gallery_cols = v[num_q:].tocsc()  # column k: gallery rows j with V[j, k] != 0
    col_nnz = np.diff(gallery_cols.indptr)
    queries = v[:num_q].tocsr()
    pattern = queries.copy()
    pattern.data[:] = 1.0
    work = np.asarray(pattern @ col_nnz).ravel()  # (query, word, gallery) triples per query
    max_rows = max(1, _PAIR_BUDGET // max(1, n - num_q))  # bounds the dense (rows, G) sums
    out = np.empty((num_q, n - num_q), dtype=np.float32)
    start = 0
    while start < num_q:
        stop = start + max(1, int(np.searchsorted(np.cumsum(work[start:]), _PAIR_BUDGET)))
        stop = min(stop, num_q, start + max_rows)
        block = queries[start:stop].tocoo()
        counts = col_nnz[block.col]
        first = gallery_cols.indptr[block.col]
        entry = np.repeat(first - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        q_of = np.repeat(block.row, counts)
        mins = np.minimum(np.repeat(block.data, counts), gallery_cols.data[entry])
        flat = q_of * (n - num_q) + gallery_cols.indices[entry]
        sums = np.bincount(flat, weights=mins, minlength=(stop - start) * (n - num_q))
        sums = sums.reshape(stop - start, n - num_q).astype(np.float32)
        out[start:stop] = 1.0 - sums / (2.0 - sums)
        start = stop
    return out


def re_ranking(
    q_g: np.ndarray,
    q_q: np.ndarray,
    g_g: np.ndarray,
    *,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
) -> np.ndarray:
    """Re-ranked query-gallery distances (k-reciprocal encoding + Jaccard distance).

    Args:
        q_g: (Q, G) query-gallery distances (plain Euclidean; squared inside, as the reference).
        q_q: (Q, Q) query-query distances.
        g_g: (G, G) gallery-gallery distances.
        k1: Size of the k-reciprocal neighbourhood (paper: 20).
        k2: Neighbours averaged in the local query expansion; 1 disables it (paper: 6).
        lambda_value: Weight of the original distance in the final one (paper: 0.3).

    Returns:
        (Q, G) float32 re-ranked distances.

    Raises:
        ValueError: On inconsistent shapes or out-of-range parameters.
    """
    q_g, q_q, g_g = (np.asarray(a, dtype=np.float32) for a in (q_g, q_q, g_g))
    num_q, num_g = q_g.shape
    if q_q.shape != (num_q, num_q) or g_g.shape != (num_g, num_g):
        raise ValueError(
            f"shapes disagree: q_g {q_g.shape}, q_q {q_q.shape} (want {(num_q,) * 2}), "
            f"g_g {g_g.shape} (want {(num_g,) * 2})"
        )
    n = num_q + num_g
    if not 1 <= k1 < n or not 1 <= k2 <= n:
        raise ValueError(f"need 1 <= k1 < Q+G={n} and 1 <= k2 <= Q+G, got k1={k1}, k2={k2}")
    if not 0.0 <= lambda_value <= 1.0:
        raise ValueError(f"lambda_value must be in [0, 1], got {lambda_value}")
    stacked = _Stacked(q_g, q_q, g_g)
    top, scale = _top_neighbours(stacked, max(k1 + 1, k2))
    v = _encode(stacked, top, scale, k1, k2)
    jaccard = _jaccard(v, num_q)
    original = (np.square(q_g) / scale[:num_q, None]).astype(np.float32)
    return jaccard * (1.0 - lambda_value) + original * lambda_value
