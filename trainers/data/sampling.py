"""Which frames of a tracklet make a clip: one random clip for training, every clip for testing.

Training (`train_frame_indices`, one clip per draw, `PretrainedCfg.train_sampling`)::

    stride       n >= T*s : random start, T frames s apart        |x . . x . . x . . x . .|
                 T <= n   : T distinct random frames, sorted      |x x . . . x . x . . . .|
                 n < T    : T random frames with replacement, sorted
    consecutive  n >= T   : a random window of T adjacent frames  |. . x x x x . . . . . .|
                 n < T    : the tracklet looped: 0 1 .. n-1 0 1 ..

Testing (`test_clip_indices`, every clip of a tracklet, `PretrainedCfg.test_sampling`)::

    chunks            [0..T) [T..2T) ... [kT..n)     the last chunk shorter, never padded
    chunks_drop_last  [0..T) [T..2T) ... [(k-1)T..kT) the remainder dropped
    whole             [0..n)                         the tracklet as one clip
    sliding           [0..T) [s..s+T) [2s..2s+T) ... windows that fit; the tail is dropped

Choices between the papers and the official code:

- ``stride`` is AP3D's `TemporalRandomCrop` (guxinqian/AP3D ``transforms/temporal_transforms.py``;
  the paper's §5.2 says only "randomly sample 4 frames with a stride of 8 frames"): the strided
  branch needs ``n >= T * s`` although the clip spans only ``(T - 1) * s + 1`` frames, as in the
  code. I3D-NL shares it (`PretrainedCfg` docstring): Liao et al. (§4.2) take 8 frames "from 64
  consecutive frames every eight frames", say nothing of shorter tracklets and released no code;
  rather than shrink the stride, the AP3D rule also keeps every frame of a short tracklet
  reachable.
- ``consecutive`` is the GLTR/M3D loader (ljn114514/GLTR ``dataset.py``, ljn114514/M3D
  ``ResNet50-M3D/model/dataset.py``; both papers "sample T adjacent frames"): the start is uniform
  over every window, including the last one, which the code's ``int(random() * (n - T))`` never
  draws (a harmless off-by-one; the papers' "T adjacent frames" has no such gap). Short tracklets
  loop (``i % n``), as the code does.
- ``chunks`` is AP3D's ``test-all.py`` (§5.2: "split it into several 32-frame video clips"):
  32-frame chunks, the code's last one shorter and unpadded.
- ``chunks_drop_last`` is M3D's floor(n/T) clips ("For a sequence of length L, we can get
  floor(L/T) sampled inputs", Implementation Details); a tracklet shorter than T (PRID has 5-frame
  ones), which the paper does not cover, gives one looped clip, as the code loops in training.
- ``whole`` is GLTR's test (the code's ``ex_feat/ex.py`` feeds all frames; Eq. 4 averages over the
  sequence's own length): all frames as one sequence.
- ``sliding`` is PersonVLAD's 16-frame windows with an 8-frame overlap (Wu et al. Sec. IV-B(a)).
  The paper does not say what happens to a tail that no window reaches; these windows stop where
  the next would overrun, like ``chunks_drop_last``. A tracklet shorter than T, which the paper
  does not cover either, gives one looped clip.

Testing clips that a model cannot take (shorter than `ReIDModel.min_clip_len`) are looped by
`loop_to_length`, which `extract_features` applies.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "TEST_SAMPLINGS",
    "TRAIN_SAMPLINGS",
    "loop_to_length",
    "test_clip_indices",
    "train_frame_indices",
]

TRAIN_SAMPLINGS = ("stride", "consecutive")
TEST_SAMPLINGS = ("chunks", "chunks_drop_last", "whole", "sliding")


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")


def loop_to_length(indices: np.ndarray, length: int) -> np.ndarray:
    """Repeats `indices` cyclically until it holds `length` entries (unchanged if already long).

    Args:
        indices: (n,) frame indices, n >= 1.
        length: Wanted number of entries.

    Returns:
        (max(n, length),) int64: ``indices[i % n]`` for every i.
    """
    indices = np.asarray(indices, dtype=np.int64)
    if indices.size == 0:
        raise ValueError("cannot loop an empty clip")
    if indices.size >= length:
        return indices
    return indices[np.arange(length) % indices.size]


def train_frame_indices(
    num_frames: int, *, clip_len: int, sampling: str, stride: int, rng: np.random.Generator
) -> np.ndarray:
    """Draws the frames of one training clip.

    Args:
        num_frames: Frames in the tracklet (n).
        clip_len: Frames per clip (T).
        sampling: ``stride`` or ``consecutive`` (see the module docstring).
        stride: Frame step of ``stride`` sampling (s); ignored by ``consecutive``.
        rng: Source of randomness.

    Returns:
        (T,) int64 indices into the tracklet's frames, in temporal order.
    """
    _check_positive(num_frames=num_frames, clip_len=clip_len, stride=stride)
    if sampling == "stride":
        if num_frames >= clip_len * stride:
            start = int(rng.integers(0, num_frames - (clip_len - 1) * stride))
            return start + stride * np.arange(clip_len, dtype=np.int64)
        replace = num_frames < clip_len
        return np.sort(rng.choice(num_frames, size=clip_len, replace=replace)).astype(np.int64)
    if sampling == "consecutive":
        start = int(rng.integers(0, num_frames - clip_len + 1)) if num_frames >= clip_len else 0
        return (start + np.arange(clip_len, dtype=np.int64)) % num_frames
    raise ValueError(f"unknown train sampling {sampling!r}; choose one of {TRAIN_SAMPLINGS}")


def test_clip_indices(
    num_frames: int, *, clip_len: int, sampling: str, stride: int
) -> list[np.ndarray]:
    """Every test clip of a tracklet.

    Args:
        num_frames: Frames in the tracklet (n).
        clip_len: Frames per clip (T); ignored by ``whole``.
        sampling: ``chunks``, ``chunks_drop_last``, ``whole`` or ``sliding``.
        stride: Window step of ``sliding``; ignored by the others.

    Returns:
        One (T_i,) int64 array per clip, in temporal order; at least one clip.
    """
    _check_positive(num_frames=num_frames, clip_len=clip_len, stride=stride)
    frames = np.arange(num_frames, dtype=np.int64)
    if sampling == "whole":
        return [frames]
    if sampling == "chunks":
        return [frames[i : i + clip_len] for i in range(0, num_frames, clip_len)]
    if sampling in ("chunks_drop_last", "sliding"):
        if num_frames < clip_len:
            return [loop_to_length(frames, clip_len)]
        step = clip_len if sampling == "chunks_drop_last" else stride
        starts = range(0, num_frames - clip_len + 1, step)
        return [frames[i : i + clip_len] for i in starts]
    raise ValueError(f"unknown test sampling {sampling!r}; choose one of {TEST_SAMPLINGS}")


test_clip_indices.__test__ = False  # a library function whose name pytest would collect
