"""CMC / mAP / mINP under the MARS and torchreid protocols, distances, split means and plots.

The tiny galleries below are ranked in gallery order (increasing distances), so every value can be
worked out by hand from the rules in `trainers.evaluation.rank`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.image import imread
from scipy.spatial.distance import cdist

from trainers.evaluation import (
    RankResult,
    evaluate_rank,
    mean_over_splits,
    pairwise_distance,
    plot_cmc,
)
from trainers.evaluation import rank as rank_module

# Query: id 1, camera 0. Gallery in ranked order:
#   g0 id 1 cam 0  the query itself     mars: junk      torchreid: junk
#   g1 id -1 cam 1 junk tracklet        mars: junk      torchreid: negative
#   g2 id 0 cam 1  distractor           negative        negative
#   g3 id 1 cam 1                       good            good
#   g4 id 2 cam 2                       negative        negative
#   g5 id 1 cam 2                       good            good
G_PIDS = np.array([1, -1, 0, 1, 2, 1])
G_CAMS = np.array([0, 1, 1, 1, 2, 2])
DIST = np.array([[0.0, 0.1, 0.2, 0.3, 0.4, 0.5]])


def _single(protocol: str, max_rank: int = 6) -> RankResult:
    return evaluate_rank(DIST, [1], G_PIDS, [0], G_CAMS, protocol=protocol, max_rank=max_rank)


def test_mars_rules_by_hand() -> None:
    r = _single("mars")
    # Without junk: g2 (1) g3 hit (2) g4 (3) g5 hit (4).
    np.testing.assert_allclose(r.cmc, [0, 1, 1, 1, 1, 1])
    # compute_AP.m trapezoid: hit 1 at 2: (0/1 + 1/2)/2; hit 2 at 4: (1/3 + 2/4)/2; over 2 goods.
    assert r.mAP == pytest.approx(((0 + 1 / 2) / 2 + (1 / 3 + 2 / 4) / 2) / 2)
    assert r.mAP == pytest.approx(1 / 3)
    assert r.mINP == pytest.approx(2 / 4)  # 2 goods, last one at position 4
    assert r.num_valid_queries == 1


def test_torchreid_rules_by_hand() -> None:
    r = _single("torchreid")
    # Only g0 removed: g1 (1) g2 (2) g3 hit (3) g4 (4) g5 hit (5).
    np.testing.assert_allclose(r.cmc, [0, 0, 1, 1, 1, 1])
    assert r.mAP == pytest.approx((1 / 3 + 2 / 5) / 2)
    assert r.mINP == pytest.approx(2 / 5)


def test_trapezoid_ap_equals_standard_when_hits_lead() -> None:
    dist = np.array([[0.1, 0.2, 0.3]])
    r = evaluate_rank(dist, [1], [1, 1, 2], [0], [1, 2, 1], max_rank=3)
    assert r.mAP == pytest.approx(1.0) and r.mINP == pytest.approx(1.0)
    # A hit at 1 then at 3: trapezoid (1 + 1)/2 and (1/2 + 2/3)/2, standard 1 and 2/3.
    r = evaluate_rank(dist, [1], [1, 2, 1], [0], [1, 1, 2], max_rank=3)
    assert r.mAP == pytest.approx((1.0 + (1 / 2 + 2 / 3) / 2) / 2)
    r = evaluate_rank(dist, [1], [1, 2, 1], [0], [1, 1, 2], protocol="torchreid", max_rank=3)
    assert r.mAP == pytest.approx((1.0 + 2 / 3) / 2)


def test_distractor_is_a_negative_and_minus_one_is_junk_under_mars() -> None:
    dist = np.array([[0.1, 0.2]])
    hit_second = evaluate_rank(dist, [5], [0, 5], [0], [1, 1], max_rank=2)
    np.testing.assert_allclose(hit_second.cmc, [0, 1])
    junk_first = evaluate_rank(dist, [5], [-1, 5], [0], [1, 1], max_rank=2)
    np.testing.assert_allclose(junk_first.cmc, [1, 1])
    assert junk_first.mAP == pytest.approx(1.0)
    as_torchreid = evaluate_rank(dist, [5], [-1, 5], [0], [1, 1], protocol="torchreid", max_rank=2)
    np.testing.assert_allclose(as_torchreid.cmc, [0, 1])


def test_same_id_same_camera_never_counts() -> None:
    # The only same-id entry shares the query's camera: no good match under either protocol.
    dist = np.array([[0.0, 0.1], [0.0, 0.5]])
    mars = evaluate_rank(dist, [1, 2], [1, 2], [0, 0], [0, 1], protocol="mars", max_rank=2)
    # Query 0 has no good match: mars counts it as 0 over both queries. Query 1 hits at 2:
    # trapezoid AP (0/1 + 1/2)/2, INP 1/2.
    np.testing.assert_allclose(mars.cmc, [0.0, 0.5])
    assert mars.mAP == pytest.approx((0.0 + (0 + 1 / 2) / 2) / 2)
    assert mars.mINP == pytest.approx((0.0 + 0.5) / 2)
    assert mars.num_valid_queries == 1
    tr = evaluate_rank(dist, [1, 2], [1, 2], [0, 0], [0, 1], protocol="torchreid", max_rank=2)
    np.testing.assert_allclose(tr.cmc, [0.0, 1.0])
    assert tr.mAP == pytest.approx(0.5) and tr.num_valid_queries == 1
    with pytest.raises(ValueError, match="no query has a good gallery match"):
        evaluate_rank(dist[:1], [1], [1, 2], [0], [0, 1], protocol="torchreid")


def test_ties_keep_gallery_order() -> None:
    dist = np.array([[0.5, 0.5]])
    neg_first = evaluate_rank(dist, [1], [2, 1], [0], [1, 1], max_rank=2)
    good_first = evaluate_rank(dist, [1], [1, 2], [0], [1, 1], max_rank=2)
    np.testing.assert_allclose(neg_first.cmc, [0, 1])
    np.testing.assert_allclose(good_first.cmc, [1, 1])


def test_cmc_is_padded_past_the_gallery_and_as_dict_in_percent() -> None:
    r = _single("mars", max_rank=25)
    assert r.cmc.shape == (25,) and np.all(r.cmc[1:] == 1.0)
    d = r.as_dict()
    assert d == pytest.approx(
        {"rank1": 0.0, "rank5": 100.0, "rank10": 100.0, "rank20": 100.0, "mAP": 100 / 3, "mINP": 50}
    )
    assert set(_single("mars", max_rank=6).as_dict()) == {"rank1", "rank5", "mAP", "mINP"}


def _loop_eval(distmat, q_pids, g_pids, q_cams, g_cams, protocol, max_rank):
    """Per-query loops after compute_AP.m (mars) and eval_market1501 + fast-reid mINP."""
    cmcs, aps, inps, valid = [], [], [], 0
    for i in range(len(q_pids)):
        order = np.argsort(distmat[i], kind="stable")
        pid, cam = g_pids[order], g_cams[order]
        junk = (pid == q_pids[i]) & (cam == q_cams[i])
        if protocol == "mars":
            junk |= pid == -1
        hits = (pid == q_pids[i])[~junk].astype(int)
        if hits.sum() == 0:
            if protocol == "mars":
                cmcs.append(np.zeros(max_rank))
                aps.append(0.0)
                inps.append(0.0)
            continue
        valid += 1
        cmc = np.minimum(np.cumsum(hits), 1)
        cmcs.append(np.concatenate([cmc, np.full(max_rank, cmc[-1])])[:max_rank])
        ap, old_recall, old_precision, found = 0.0, 0.0, 1.0, 0
        for n, h in enumerate(hits):
            found += h
            recall, precision = found / hits.sum(), found / (n + 1)
            if protocol == "mars":
                ap += (recall - old_recall) * (old_precision + precision) / 2
            else:
                ap += h * precision / hits.sum()
            old_recall, old_precision = recall, precision
        aps.append(ap)
        inps.append(hits.sum() / (np.flatnonzero(hits)[-1] + 1))
    return np.mean(cmcs, axis=0), np.mean(aps), np.mean(inps), valid


@pytest.mark.parametrize("protocol", ["mars", "torchreid"])
def test_vectorised_equals_per_query_loop(protocol: str, monkeypatch) -> None:
    monkeypatch.setattr(rank_module, "_QUERY_CHUNK", 7)  # several query chunks
    rng = np.random.default_rng(0)
    g_pids = rng.integers(-1, 8, size=60)
    g_cams = rng.integers(0, 3, size=60)
    q_idx = rng.choice(np.flatnonzero(g_pids > 0), size=25, replace=False)
    dist = np.round(rng.uniform(size=(25, 60)), 1)  # many exact ties
    dist[np.arange(25), q_idx] = 0.0
    args = (dist, g_pids[q_idx], g_pids, g_cams[q_idx], g_cams)
    got = evaluate_rank(*args, protocol=protocol, max_rank=70)
    cmc, m_ap, m_inp, valid = _loop_eval(*args, protocol=protocol, max_rank=70)
    np.testing.assert_allclose(got.cmc, cmc)
    assert got.mAP == pytest.approx(m_ap) and got.mINP == pytest.approx(m_inp)
    assert got.num_valid_queries == valid


def test_mean_over_splits_by_hand() -> None:
    a = RankResult(np.array([0.5, 1.0]), 0.2, 0.1, 3)
    b = RankResult(np.array([1.0, 1.0]), 0.4, 0.3, 5)
    m = mean_over_splits([a, b])
    np.testing.assert_allclose(m.cmc, [0.75, 1.0])
    assert (m.mAP, m.mINP, m.num_valid_queries) == pytest.approx((0.3, 0.2, 8))
    with pytest.raises(ValueError, match="at least one"):
        mean_over_splits([])
    with pytest.raises(ValueError, match="CMC lengths differ"):
        mean_over_splits([a, RankResult(np.ones(3), 0.1, 0.1, 1)])


def test_evaluate_rank_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="protocol must be one of"):
        evaluate_rank(DIST, [1], G_PIDS, [0], G_CAMS, protocol="market")
    with pytest.raises(ValueError, match=r"g_camids must have shape \(6,\)"):
        evaluate_rank(DIST, [1], G_PIDS, [0], G_CAMS[:5])
    with pytest.raises(ValueError, match="max_rank"):
        evaluate_rank(DIST, [1], G_PIDS, [0], G_CAMS, max_rank=0)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_pairwise_distance_chunked_equals_unchunked_and_scipy(metric: str) -> None:
    gen = torch.Generator().manual_seed(0)
    q, g = torch.randn(37, 16, generator=gen), torch.randn(29, 16, generator=gen)
    whole = pairwise_distance(q, g, metric=metric, chunk_size=4096)
    chunked = pairwise_distance(q, g, metric=metric, chunk_size=5)
    assert whole.shape == (37, 29) and whole.dtype == np.float32
    np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-5)
    want = cdist(q.double().numpy(), g.double().numpy(), metric=metric)
    np.testing.assert_allclose(whole, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(pairwise_distance(q.numpy(), g.numpy(), metric=metric), whole)


def test_pairwise_distance_rejects_bad_input() -> None:
    q = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="metric must be one of"):
        pairwise_distance(q, q, metric="manhattan")
    with pytest.raises(ValueError, match="feature sizes differ"):
        pairwise_distance(q, torch.zeros(2, 4), metric="cosine")
    with pytest.raises(ValueError, match="chunk_size"):
        pairwise_distance(q, q, metric="cosine", chunk_size=0)


def test_plot_cmc_writes_a_png(tmp_path) -> None:
    curves = {"ap3d": np.linspace(0.8, 1.0, 50), "gltr": np.linspace(0.7, 0.95, 10)}
    path = plot_cmc(curves, tmp_path / "plots" / "cmc.png", max_rank=20)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert imread(path).shape[:2] == (450, 600)
    with pytest.raises(ValueError, match="at least one curve"):
        plot_cmc({}, tmp_path / "x.png")
