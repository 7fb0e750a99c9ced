"""Which frames make a clip, per sampling mode, on hand-worked tracklet lengths."""

from __future__ import annotations

import numpy as np
import pytest

from trainers.data import sampling


def _train(n: int, **kw) -> np.ndarray:
    kw.setdefault("rng", np.random.default_rng(0))
    return sampling.train_frame_indices(n, **kw)


def _test(n: int, **kw) -> list[list[int]]:
    return [c.tolist() for c in sampling.test_clip_indices(n, **kw)]


@pytest.mark.parametrize("seed", range(20))
def test_stride_long_tracklet_takes_frames_stride_apart_within_range(seed: int) -> None:
    rng = np.random.default_rng(seed)
    idx = _train(40, clip_len=4, sampling="stride", stride=8, rng=rng)
    assert np.all(np.diff(idx) == 8)
    # AP3D: start in [0, n - (T-1)*s - 1] = [0, 15]
    assert 0 <= idx[0] <= 15 and idx[-1] <= 39


def test_stride_reaches_every_start_including_the_last() -> None:
    rng = np.random.default_rng(1)
    starts = {
        int(_train(32, clip_len=4, sampling="stride", stride=8, rng=rng)[0]) for _ in range(400)
    }
    assert starts == set(range(8))  # n = T*s = 32 is the strided branch: starts 0..7


def test_stride_below_t_times_s_draws_distinct_sorted_frames() -> None:
    # n = 31 < 4*8: AP3D falls back to 4 distinct random frames, sorted.
    rng = np.random.default_rng(2)
    for _ in range(50):
        idx = _train(31, clip_len=4, sampling="stride", stride=8, rng=rng)
        assert len(set(idx.tolist())) == 4 and np.all(np.diff(idx) > 0) and idx.max() < 31


def test_stride_exact_clip_len_takes_every_frame() -> None:
    assert _train(4, clip_len=4, sampling="stride", stride=8).tolist() == [0, 1, 2, 3]


def test_stride_shorter_than_clip_repeats_sorted_frames() -> None:
    rng = np.random.default_rng(3)
    for _ in range(50):
        idx = _train(2, clip_len=4, sampling="stride", stride=8, rng=rng)
        assert idx.shape == (4,) and np.all(np.diff(idx) >= 0) and set(idx.tolist()) <= {0, 1}


def test_consecutive_window_covers_every_start() -> None:
    rng = np.random.default_rng(4)
    starts = set()
    for _ in range(300):
        idx = _train(10, clip_len=8, sampling="consecutive", stride=1, rng=rng)
        assert np.all(np.diff(idx) == 1)
        starts.add(int(idx[0]))
    assert starts == {0, 1, 2}


@pytest.mark.parametrize(
    ("n", "expected"),
    [(8, [0, 1, 2, 3, 4, 5, 6, 7]), (3, [0, 1, 2, 0, 1, 2, 0, 1]), (1, [0] * 8)],
)
def test_consecutive_short_tracklet_loops(n: int, expected: list[int]) -> None:
    assert _train(n, clip_len=8, sampling="consecutive", stride=1).tolist() == expected


def test_train_sampling_is_reproducible_for_a_seed() -> None:
    a = [_train(50, clip_len=4, sampling="stride", stride=8, rng=np.random.default_rng(7))]
    b = [_train(50, clip_len=4, sampling="stride", stride=8, rng=np.random.default_rng(7))]
    assert a[0].tolist() == b[0].tolist()


def test_chunks_keep_a_shorter_last_chunk() -> None:
    assert _test(7, clip_len=3, sampling="chunks", stride=3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert _test(6, clip_len=3, sampling="chunks", stride=3) == [[0, 1, 2], [3, 4, 5]]
    assert _test(2, clip_len=3, sampling="chunks", stride=3) == [[0, 1]]


def test_chunks_drop_last_drops_the_remainder_and_loops_short_tracklets() -> None:
    assert _test(7, clip_len=3, sampling="chunks_drop_last", stride=3) == [[0, 1, 2], [3, 4, 5]]
    assert _test(3, clip_len=3, sampling="chunks_drop_last", stride=3) == [[0, 1, 2]]
    assert _test(2, clip_len=5, sampling="chunks_drop_last", stride=5) == [[0, 1, 0, 1, 0]]


def test_whole_is_one_clip_of_every_frame() -> None:
    assert _test(5, clip_len=16, sampling="whole", stride=16) == [[0, 1, 2, 3, 4]]


def test_sliding_windows_overlap_by_clip_len_minus_stride() -> None:
    # PersonVLAD: 16-frame windows every 8 frames; n=40 -> starts 0, 8, 16, 24.
    clips = sampling.test_clip_indices(40, clip_len=16, sampling="sliding", stride=8)
    assert [int(c[0]) for c in clips] == [0, 8, 16, 24]
    assert all(c.tolist() == list(range(c[0], c[0] + 16)) for c in clips)
    assert _test(5, clip_len=4, sampling="sliding", stride=2) == [[0, 1, 2, 3]]
    assert _test(3, clip_len=4, sampling="sliding", stride=2) == [[0, 1, 2, 0]]


def test_loop_to_length() -> None:
    assert sampling.loop_to_length(np.array([4, 5]), 5).tolist() == [4, 5, 4, 5, 4]
    assert sampling.loop_to_length(np.array([4, 5, 6]), 2).tolist() == [4, 5, 6]


@pytest.mark.parametrize(
    "call",
    [
        lambda: _train(5, clip_len=4, sampling="evenly", stride=1),
        lambda: _test(5, clip_len=4, sampling="dense", stride=1),
        lambda: _train(0, clip_len=4, sampling="stride", stride=8),
        lambda: _test(5, clip_len=0, sampling="chunks", stride=1),
    ],
)
def test_bad_arguments_raise_naming_the_value(call) -> None:
    with pytest.raises(ValueError, match=r"evenly|dense|num_frames|clip_len"):
        call()
