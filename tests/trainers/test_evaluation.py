"""CMC / mAP / mINP under the mars, ap3d and torchreid protocols, distances, split means and plots.

The tiny galleries below are ranked in gallery order (increasing distances), so every value can be
worked out by hand from the rules in `trainers.evaluation.rank`.
"""

from __future__ import annotations

import typing

import numpy as np
import pytest
import torch
from matplotlib.image import imread
from scipy.spatial.distance import cdist

from trainers.evaluation import (
    PROTOCOL_RULES,
    PROTOCOLS,
    ProtocolName,
    RankResult,
    evaluate_rank,
    mean_over_splits,
    pairwise_distance,
    plot_cmc,
    query_average_precision,
)
from trainers.evaluation import rank as rank_module

# Query: id 1, camera 0. Gallery in ranked order:
#   g0 id 1 cam 0  the query itself     mars, ap3d: junk      torchreid: junk
#   g1 id -1 cam 1 junk tracklet        mars, ap3d: junk      torchreid: negative
#   g2 id 0 cam 1  distractor           negative              negative
#   g3 id 1 cam 1                       good                  good
#   g4 id 2 cam 2                       negative              negative
#   g5 id 1 cam 2                       good                  good
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


def test_ap3d_rules_by_hand() -> None:
    r = _single("ap3d")
    # The same ranking as mars (g0, g1 junk): hits at 2 and 4; standard AP = mean of i / r_i.
    np.testing.assert_allclose(r.cmc, [0, 1, 1, 1, 1, 1])
    assert r.mAP == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert r.mINP == pytest.approx(2 / 4)
    # Same matrix, same CMC, and the trapezoid AP strictly below the standard one.
    mars = _single("mars")
    np.testing.assert_array_equal(mars.cmc, r.cmc)
    assert mars.mAP == pytest.approx(1 / 3) and mars.mAP < r.mAP


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


# Three queries against one gallery (g6 added), each row ranked in the order of its distances:
#   q0 id 1 cam 0: g0 g1 g2 g3 g4 g5 g6   as `_single`: hits at 2 and 4 without junk (mars, ap3d),
#                                         at 3 and 5 under torchreid (g1 id -1 a negative there)
#   q1 id 2 cam 0: its only same-id entry g4 shares its camera: no good match under any protocol
#   q2 id 3 cam 0: g6 first: a hit at 1, AP 1 under every protocol
THREE_G_PIDS = np.array([1, -1, 0, 1, 2, 1, 3])
THREE_G_CAMS = np.array([0, 1, 1, 1, 0, 2, 1])
THREE_DIST = np.array(
    [
        [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
        [0.5, 0.1, 0.2, 0.3, 0.0, 0.4, 0.6],
        [0.6, 0.1, 0.2, 0.3, 0.4, 0.5, 0.0],
    ]
)
THREE = (THREE_DIST, [1, 2, 3], THREE_G_PIDS, [0, 0, 0], THREE_G_CAMS)


def test_query_without_a_match_has_ap_nan_under_every_protocol() -> None:
    want = {"mars": 1 / 3, "ap3d": 1 / 2, "torchreid": (1 / 3 + 2 / 5) / 2}
    for protocol in PROTOCOLS:
        ap = query_average_precision(*THREE, protocol=protocol)
        assert ap.shape == (3,) and np.isnan(ap[1]), protocol
        assert ap[[0, 2]] == pytest.approx([want[protocol], 1.0]), protocol


def test_each_protocol_averages_junk_and_no_match_queries_by_hand() -> None:
    mars = evaluate_rank(*THREE, protocol="mars", max_rank=3)
    # q1 counts as 0 over all three queries (evaluation.m: NaN -> 0).
    np.testing.assert_allclose(mars.cmc, [1 / 3, 2 / 3, 2 / 3])
    assert mars.mAP == pytest.approx((1 / 3 + 0 + 1) / 3)
    assert mars.mINP == pytest.approx((2 / 4 + 0 + 1) / 3)
    ap3d = evaluate_rank(*THREE, protocol="ap3d", max_rank=3)
    # q1 is skipped: means over q0 and q2; the standard AP of q0 is 1/2.
    np.testing.assert_allclose(ap3d.cmc, [1 / 2, 1, 1])
    assert ap3d.mAP == pytest.approx((1 / 2 + 1) / 2)
    assert ap3d.mINP == pytest.approx((2 / 4 + 1) / 2)
    torchreid = evaluate_rank(*THREE, protocol="torchreid", max_rank=3)
    # g1 (id -1) is a negative: q0's hits move to 3 and 5.
    np.testing.assert_allclose(torchreid.cmc, [1 / 2, 1 / 2, 1])
    assert torchreid.mAP == pytest.approx(((1 / 3 + 2 / 5) / 2 + 1) / 2)
    assert torchreid.mINP == pytest.approx((2 / 5 + 1) / 2)
    assert mars.num_valid_queries == ap3d.num_valid_queries == torchreid.num_valid_queries == 2


def test_no_valid_query_raises_only_where_queries_are_skipped() -> None:
    q1 = (THREE_DIST[1:2], [2], THREE_G_PIDS, [0], THREE_G_CAMS)
    mars = evaluate_rank(*q1, protocol="mars", max_rank=2)
    assert mars.mAP == 0.0 and mars.num_valid_queries == 0
    np.testing.assert_array_equal(mars.cmc, [0, 0])
    for protocol in ("ap3d", "torchreid"):
        with pytest.raises(ValueError, match=f"no query has a good gallery match \\({protocol}"):
            evaluate_rank(*q1, protocol=protocol)


def test_mars_and_ap3d_differ_only_in_map_when_every_query_has_a_match() -> None:
    rng = np.random.default_rng(3)
    g_pids = np.repeat(np.arange(1, 21), 6)  # 20 ids x 6 tracklets, cameras 0..5
    g_cams = np.tile(np.arange(6), 20)
    q_idx = np.arange(0, 120, 6)  # one query per id, camera 0, in the gallery
    dist = rng.uniform(size=(20, 120)) + 0.6 * (g_pids[None, :] != g_pids[q_idx, None])
    args = (dist, g_pids[q_idx], g_pids, g_cams[q_idx], g_cams)
    mars = evaluate_rank(*args, protocol="mars", max_rank=20)
    ap3d = evaluate_rank(*args, protocol="ap3d", max_rank=20)
    np.testing.assert_array_equal(mars.cmc, ap3d.cmc)
    assert mars.num_valid_queries == ap3d.num_valid_queries == 20
    assert 0 < ap3d.mAP - mars.mAP < 0.1, (mars.mAP, ap3d.mAP)


def test_protocol_names_agree() -> None:
    assert typing.get_args(ProtocolName) == PROTOCOLS == tuple(PROTOCOL_RULES)


def _hits_lead(hits: np.ndarray) -> bool:
    """True when no negative stands above any hit (the ranking starts with all its hits)."""
    return bool(np.all(hits[: hits.sum()]))


def test_trapezoid_ap_is_never_above_the_standard_ap_over_random_rankings() -> None:
    """``mars`` and ``ap3d`` share their junk rules, so they rank alike and differ only in the
    AP: the trapezoid one never exceeds the standard one, and equals it only when hits lead."""
    rng = np.random.default_rng(7)
    for trial in range(300):
        size = int(rng.integers(1, 30))
        g_pids = rng.choice([-1, 0, 1, 1, 2], size=size)
        g_cams = rng.integers(0, 3, size=size)
        dist = rng.permutation(size)[None, :].astype(np.float64)
        trap = query_average_precision(dist, [1], g_pids, [0], g_cams, protocol="mars")[0]
        std = query_average_precision(dist, [1], g_pids, [0], g_cams, protocol="ap3d")[0]
        order = np.argsort(dist[0])
        keep = (g_pids[order] != -1) & ~((g_pids[order] == 1) & (g_cams[order] == 0))
        hits = (g_pids[order] == 1)[keep]
        if not hits.any():
            assert np.isnan(trap) and np.isnan(std), trial
            continue
        assert trap <= std + 1e-12, (trial, trap, std)
        assert np.isclose(trap, std) == _hits_lead(hits), (trial, hits, trap, std)


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


def _compute_ap_m(
    good: np.ndarray, junk: np.ndarray, index: np.ndarray
) -> tuple[float, np.ndarray]:
    """MARS kit ``compute_AP.m``, line by line (0-based indices; float division as MATLAB's)."""
    cmc = np.zeros(len(index))
    ngood = np.float64(len(good))
    old_recall, old_precision, ap, intersect, j, good_now, njunk = 0.0, 1.0, 0.0, 0, 0, 0, 0
    for n, item in enumerate(index):
        flag = item in good
        if flag:
            cmc[n - njunk :] = 1
            good_now += 1
        if item in junk:
            njunk += 1
            continue
        intersect += flag
        with np.errstate(invalid="ignore"):
            recall = intersect / ngood  # 0/0 = NaN without a good match, as in MATLAB
        precision = intersect / (j + 1)
        ap += (recall - old_recall) * (old_precision + precision) / 2
        old_recall, old_precision, j = recall, precision, j + 1
        if good_now == ngood:
            break
    return ap, cmc


def test_compute_ap_m_returns_nan_without_a_good_match() -> None:
    ap, cmc = _compute_ap_m(np.array([], dtype=int), np.array([0]), np.array([0, 1, 2]))
    assert np.isnan(ap) and not cmc.any()
    ap, _ = _compute_ap_m(np.array([3, 5]), np.array([0, 1]), np.arange(6))  # `_single`'s query
    assert ap == pytest.approx(1 / 3)


def _loop_eval(distmat, q_pids, g_pids, q_cams, g_cams, protocol, max_rank):
    """Per-query loops: ``compute_AP.m`` + evaluation.m (mars), AP3D's eval_metrics (ap3d),
    eval_market1501 (torchreid), and fast-reid's mINP."""
    cmcs, aps, inps, valid = [], [], [], 0
    for i in range(len(q_pids)):
        order = np.argsort(distmat[i], kind="stable")
        pid, cam = g_pids[order], g_cams[order]
        junk = (pid == q_pids[i]) & (cam == q_cams[i])
        if protocol in ("mars", "ap3d"):
            junk |= pid == -1
        hits = (pid == q_pids[i])[~junk].astype(int)
        if protocol == "mars":
            good_idx = order[(pid == q_pids[i]) & ~junk]
            ap, _ = _compute_ap_m(good_idx, order[junk], order)
            if np.isnan(ap):  # evaluation.m: ap(isnan(ap)) = 0, over all queries
                cmcs.append(np.zeros(max_rank))
                aps.append(0.0)
                inps.append(0.0)
                continue
        if hits.sum() == 0:  # ap3d, torchreid: skipped
            continue
        valid += 1
        cmc = np.minimum(np.cumsum(hits), 1)
        cmcs.append(np.concatenate([cmc, np.full(max_rank, cmc[-1])])[:max_rank])
        if protocol != "mars":
            ranks = np.flatnonzero(hits) + 1
            ap = float(np.mean(np.arange(1, len(ranks) + 1) / ranks))
        aps.append(ap)
        inps.append(hits.sum() / (np.flatnonzero(hits)[-1] + 1))
    return np.mean(cmcs, axis=0), np.mean(aps), np.mean(inps), valid


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_vectorised_equals_per_query_loop(protocol: str, monkeypatch) -> None:
    monkeypatch.setattr(rank_module, "_QUERY_CHUNK", 7)  # several query chunks
    rng = np.random.default_rng(0)
    g_pids = rng.integers(-1, 8, size=60)
    g_cams = rng.integers(0, 3, size=60)
    q_idx = rng.choice(np.flatnonzero(g_pids > 0), size=25, replace=False)
    dist = np.round(rng.uniform(size=(28, 60)), 1)  # many exact ties
    dist[np.arange(25), q_idx] = 0.0
    q_pids = np.concatenate([g_pids[q_idx], [99, 99, 99]])  # 3 queries not in the gallery
    q_cams = np.concatenate([g_cams[q_idx], [0, 1, 2]])
    args = (dist, q_pids, g_pids, q_cams, g_cams)
    got = evaluate_rank(*args, protocol=protocol, max_rank=70)
    cmc, m_ap, m_inp, valid = _loop_eval(*args, protocol=protocol, max_rank=70)
    np.testing.assert_allclose(got.cmc, cmc)
    assert got.mAP == pytest.approx(m_ap) and got.mINP == pytest.approx(m_inp)
    assert got.num_valid_queries == valid
    assert valid <= 25, "the draw should hold queries without a good match"


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
