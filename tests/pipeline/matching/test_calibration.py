"""The statistics of threshold calibration: which pairs count as different people or as one
person, and the threshold a target false-merge rate gives."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.matching.calibration import (
    EmbeddedTracklet,
    different_people,
    propose_threshold,
    same_person,
)


def _unit(*v: float) -> np.ndarray:
    x = np.asarray(v, float)
    return x / np.linalg.norm(x)


def _tracklet(name, camera, frames, x, embeddings, fps=10.0) -> EmbeddedTracklet:
    frames = np.asarray(frames)
    emb = np.stack(embeddings)
    return EmbeddedTracklet(
        id=name,
        camera=camera,
        embeddings=emb,
        times=np.linspace(frames[0], frames[-1], len(emb)) / fps,
        frames=frames,
        timestamps=frames / fps,
        boxes=np.array([[x, 10.0, x + 20.0, 80.0]] * len(frames)),
    )


def test_people_in_one_frame_of_one_camera_are_different_unless_their_boxes_coincide():
    a = _tracklet("a", "c1", range(0, 20), 0.0, [_unit(1, 0), _unit(1, 0.2)])
    b = _tracklet("b", "c1", range(10, 30), 100.0, [_unit(0, 1), _unit(0.6, 0.8)])
    twin = _tracklet("twin", "c1", range(5, 8), 2.0, [_unit(1, 0)])  # a's box, IoU 0.82
    later = _tracklet("later", "c1", range(40, 50), 100.0, [_unit(1, 1)])
    elsewhere = _tracklet("elsewhere", "c2", range(0, 30), 0.0, [_unit(1, 0)])
    pairs = different_people([a, b, twin, later, elsewhere], max_iou=0.5)
    assert [(p, q) for p, q, _ in pairs] == [("a", "b")]
    # Frames 10-19 shared; the middle (frame 15, 1.5 s) is nearest a's second clip (1.9 s)
    # and b's first (1.0 s).
    assert pairs[0][2] == pytest.approx(float(_unit(1, 0.2) @ _unit(0, 1)))
    assert len(different_people([a, twin], max_iou=0.9)) == 1


def test_same_person_pairs_are_first_and_last_clip_far_enough_apart():
    long = _tracklet("long", "c1", range(0, 40), 0.0, [_unit(1, 0), _unit(1, 1), _unit(0, 1)])
    short = _tracklet("short", "c1", range(0, 10), 0.0, [_unit(1, 0), _unit(0, 1)])
    single = _tracklet("single", "c1", range(0, 40), 0.0, [_unit(1, 0)])
    pairs = same_person([long, short, single], min_gap_s=2.0)
    assert pairs == [("long", pytest.approx(0.0, abs=1e-12))]


def test_the_threshold_lets_through_at_most_the_target_fraction_of_different_people():
    rng = np.random.default_rng(0)
    different = rng.uniform(0.0, 0.6, 1000)
    same = rng.uniform(0.4, 1.0, 500)
    result = propose_threshold(different, same, target=0.05, min_pairs=50)
    assert result.false_merge_rate <= 0.05
    assert result.false_merge_rate == np.mean(different >= result.threshold)
    assert np.mean(different >= result.threshold - 0.002) > 0.05  # and no higher than needed
    assert result.threshold == pytest.approx(0.57, abs=0.01)
    assert result.split_rate == pytest.approx((result.threshold - 0.4) / 0.6, abs=0.05)
    assert result.warnings == ()


def test_a_small_sample_is_proposed_with_a_warning_that_counts_the_pairs():
    result = propose_threshold([0.1, 0.3, 0.2], [0.9], target=0.01, min_pairs=50)
    assert result.threshold == 0.3 and result.split_rate == 0.0
    assert "3 different-people and 1 same-person pairs" in result.warnings[0]
    assert "highest different-people similarity seen" in result.warnings[1]


def test_no_different_people_pair_is_an_error():
    with pytest.raises(ValueError, match="no two tracklets were seen in one frame"):
        propose_threshold([], [0.9], target=0.01, min_pairs=1)
