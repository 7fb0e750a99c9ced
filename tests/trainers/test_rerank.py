"""k-reciprocal re-ranking: equal to a direct loop over the reference maths, and its invariants."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from trainers.evaluation import evaluate_rank, re_ranking


def _loop_re_ranking(q_g, q_q, g_g, k1, k2, lam):
    """Zhong et al.'s re-ranking written as plain per-row loops (the reference's maths)."""
    full = np.block([[q_q, q_g], [q_g.T, g_g]]).astype(np.float64) ** 2
    full = full.astype(np.float32)
    m = (full / full.max(axis=0)).T  # row i = column i over its maximum
    n, num_q = m.shape[0], q_g.shape[0]
    rank = np.argsort(m, axis=1, kind="stable")

    def reciprocal(i, k):
        return {int(j) for j in rank[i, : k + 1] if i in rank[j, : k + 1]}

    v = np.zeros((n, n), dtype=np.float32)
    half = int(np.around(k1 / 2.0))
    for i in range(n):
        r = reciprocal(i, k1)
        expansion = set(r)
        for c in r:
            rc = reciprocal(c, half)
            if len(rc & r) > 2.0 / 3.0 * len(rc):
                expansion |= rc
        idx = np.array(sorted(expansion))
        w = np.exp(-m[i, idx])
        v[i, idx] = w / w.sum()
    if k2 != 1:
        v = np.stack([v[rank[i, :k2]].mean(axis=0) for i in range(n)])
    jac = np.zeros((num_q, n), dtype=np.float32)
    for i in range(num_q):
        s = sum(np.minimum(v[i, k], v[:, k]) for k in range(n))
        jac[i] = 1.0 - s / (2.0 - s)
    final = jac * (1 - lam) + m[:num_q] * lam
    return final[:, num_q:]


def _features(rng, num_ids, per_id, dim=8):
    centres = rng.normal(size=(num_ids, dim))
    pids = np.repeat(np.arange(num_ids), per_id)
    return centres[pids] + 0.6 * rng.normal(size=(len(pids), dim)), pids


@pytest.mark.parametrize(("k1", "k2", "lam"), [(6, 3, 0.3), (5, 1, 0.5), (4, 2, 0.0)])
def test_matches_loop_reference(k1: int, k2: int, lam: float) -> None:
    rng = np.random.default_rng(k1)
    qf = rng.normal(size=(7, 6))
    gf = rng.normal(size=(15, 6))
    q_g, q_q, g_g = cdist(qf, gf), cdist(qf, qf), cdist(gf, gf)
    got = re_ranking(q_g, q_q, g_g, k1=k1, k2=k2, lambda_value=lam)
    want = _loop_re_ranking(q_g, q_q, g_g, k1, k2, lam)
    assert got.shape == (7, 15) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_asymmetric_inputs_follow_the_column_normalisation() -> None:
    rng = np.random.default_rng(3)
    q_g = rng.uniform(0.5, 2.0, size=(4, 9))
    q_q = rng.uniform(0.5, 2.0, size=(4, 4))
    g_g = rng.uniform(0.5, 2.0, size=(9, 9))
    np.fill_diagonal(q_q, 0.0)
    np.fill_diagonal(g_g, 0.0)
    got = re_ranking(q_g, q_q, g_g, k1=4, k2=2, lambda_value=0.3)
    np.testing.assert_allclose(got, _loop_re_ranking(q_g, q_q, g_g, 4, 2, 0.3), rtol=1e-5)


def test_lambda_one_is_the_normalised_squared_distance() -> None:
    rng = np.random.default_rng(0)
    qf, gf = rng.normal(size=(3, 4)), rng.normal(size=(6, 4))
    q_g, q_q, g_g = cdist(qf, gf), cdist(qf, qf), cdist(gf, gf)
    got = re_ranking(q_g, q_q, g_g, k1=3, k2=2, lambda_value=1.0)
    row_max = np.maximum(q_q.max(axis=1), q_g.max(axis=1)) ** 2
    np.testing.assert_allclose(got, q_g**2 / row_max[:, None], rtol=1e-5)


def test_invariants_and_gain_on_clustered_data() -> None:
    rng = np.random.default_rng(1)
    feats, pids = _features(rng, num_ids=6, per_id=5)
    cams = np.tile(np.arange(5), 6)
    q_idx = np.arange(0, 30, 5)
    qf, q_pids, q_cams = feats[q_idx], pids[q_idx], cams[q_idx]
    q_g, q_q, g_g = cdist(qf, feats), cdist(qf, qf), cdist(feats, feats)
    got = re_ranking(q_g, q_q, g_g, k1=4, k2=2, lambda_value=0.3)
    assert np.all(np.isfinite(got))
    assert got.min() >= 0.0 and got.max() <= 1.0 + 1e-6  # Jaccard and normalised distance in [0, 1]
    # The query's own gallery copy stays its nearest neighbour.
    assert np.all(got.argmin(axis=1) == q_idx)
    base = evaluate_rank(q_g, q_pids, pids, q_cams, cams, max_rank=5)
    rr = evaluate_rank(got, q_pids, pids, q_cams, cams, max_rank=5)
    assert rr.mAP >= base.mAP - 1e-9
    # Permuting the gallery permutes the output columns.
    perm = rng.permutation(30)
    got_p = re_ranking(q_g[:, perm], q_q, g_g[np.ix_(perm, perm)], k1=4, k2=2)
    np.testing.assert_allclose(got_p, got[:, perm], rtol=1e-5, atol=1e-6)


def test_rejects_bad_arguments() -> None:
    d = np.ones((2, 3))
    with pytest.raises(ValueError, match="shapes disagree"):
        re_ranking(d, np.ones((3, 3)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="k1"):
        re_ranking(d, np.ones((2, 2)), np.ones((3, 3)), k1=5)
    with pytest.raises(ValueError, match="lambda_value"):
        re_ranking(d, np.ones((2, 2)), np.ones((3, 3)), k1=2, k2=2, lambda_value=1.5)
