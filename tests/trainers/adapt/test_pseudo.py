"""Pseudo identities: strict mutual cross-camera pairs, never two people in one frame."""

from __future__ import annotations

import numpy as np

from trainers.adapt.pseudo import pseudo_identities


def _unit(*rows: list[float]) -> np.ndarray:
    x = np.asarray(rows, float)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_each_tracklet_is_its_own_identity_without_confident_pairs():
    emb = _unit([1, 0, 0], [0, 1, 0], [0, 0, 1])
    labels = pseudo_identities(emb, ["a", "a", "b"], [(0, 1), (2, 3), (0, 1)], threshold=0.9)
    assert labels.num_ids == 3 and labels.pairs == []


def test_mutual_nearest_neighbours_across_cameras_above_threshold_merge():
    emb = _unit([1, 0.05, 0], [0, 1, 0], [1, 0, 0.05], [0.05, 1, 0])
    labels = pseudo_identities(
        emb, ["a", "a", "b", "b"], [(0, 1), (0, 1), (5, 6), (5, 6)], threshold=0.9
    )
    assert labels.labels[0] == labels.labels[2] and labels.labels[1] == labels.labels[3]
    assert labels.labels[0] != labels.labels[1] and labels.num_ids == 2


def test_a_pair_below_the_threshold_or_not_mutual_stays_apart():
    # b0 is a's best match in camera b, but b0 prefers a1: a0-b0 is not mutual.
    emb = _unit([1, 0.6, 0], [1, 0.1, 0], [1, 0.05, 0])
    labels = pseudo_identities(emb, ["a", "a", "b"], [(0, 1), (5, 6), (9, 9)], threshold=0.5)
    assert labels.labels[1] == labels.labels[2] and labels.labels[0] != labels.labels[2]
    low = pseudo_identities(emb, ["a", "a", "b"], [(0, 1), (5, 6), (9, 9)], threshold=0.99999)
    assert low.num_ids == 3


def test_two_tracklets_of_one_camera_in_view_together_are_never_one_identity():
    # a0 and a1 overlap in time; each matches one of b0, b1, and c0 matches both b's.
    emb = _unit([1, 0, 0], [0, 1, 0], [1, 0.02, 0], [0.02, 1, 0], [1, 1, 0])
    cams = ["a", "a", "b", "b", "c"]
    spans = [(0, 5), (3, 8), (0, 5), (0, 5), (0, 9)]
    labels = pseudo_identities(emb, cams, spans, threshold=0.5)
    assert labels.labels[0] != labels.labels[1]
    for i in range(5):
        for j in range(i + 1, 5):
            same_moment = spans[i][0] <= spans[j][1] and spans[j][0] <= spans[i][1]
            if cams[i] == cams[j] and same_moment:
                assert labels.labels[i] != labels.labels[j]
