"""Threshold calibration from a site's own footage: which similarities separate its people.

    each tracklet: clip embeddings (K, D), unit, with their capture times, frames and boxes
    different people: two tracklets of one camera with a box in the same frame (a tracker gives
      one person one box), unless their boxes overlap heavily there (a person split in two):
      cosine of their two clips nearest to the middle of the frames they share
    same person: one tracklet's first and last clip, at least min_gap_s apart
    proposal: the threshold that at most `target_false_merge` of the different-people
      similarities reach (their 1 - target quantile, rounded up to 0.001), with the expected
      split rate = the fraction of same-person similarities below it

No labels are needed: co-occurrence in one view is the negative evidence, continuity of one
track the positive. Both kinds of pair are within one camera; what that means for cross-camera
matching is in the README ("Calibrating matcher.threshold"). Numbers only (numpy): the job that
collects and embeds the tracklets is `pipeline.bench.calibrate`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "CalibrateConfig",
    "Calibration",
    "EmbeddedTracklet",
    "different_people",
    "propose_threshold",
    "same_person",
]


@dataclass(frozen=True)
class CalibrateConfig:
    """`reidstream calibrate`: proposing matcher.threshold from the site's own cameras."""

    duration_s: float = field(
        default=300.0,
        metadata={
            "gt": 0.0,
            "help": "Seconds of footage read per camera (capture time). Busier and longer "
            "footage gives more pairs; fewer than calibrate.min_pairs of either kind is warned "
            "about.",
        },
    )
    target_false_merge: float = field(
        default=0.01,
        metadata={
            "gt": 0.0,
            "lt": 1.0,
            "help": "Fraction of different-people pairs allowed at or above the proposed "
            "threshold. Lower: fewer false merges, more splits.",
        },
    )
    min_gap_s: float = field(
        default=2.0,
        metadata={
            "ge": 0.0,
            "help": "Least time between a tracklet's first and last clip for the pair to count "
            "as a same-person sample; close clips are near copies and would flatter the model.",
        },
    )
    max_iou: float = field(
        default=0.5,
        metadata={
            "ge": 0.0,
            "le": 1.0,
            "help": "Two co-occurring tracklets whose boxes overlap more than this (IoU) in a "
            "shared frame are left out of the different-people pairs: likely one person "
            "detected twice.",
        },
    )
    min_pairs: int = field(
        default=50,
        metadata={
            "ge": 1,
            "help": "Fewest pairs of each kind for the proposal to be trusted; below, it is "
            "still made but with a warning naming the counts.",
        },
    )


@dataclass(frozen=True)
class EmbeddedTracklet:
    """One tracklet's clips: unit embeddings (K, D) and the capture time of each clip's last
    crop (K,), in time order; its crops' frame indices (N,), capture times (N,) and boxes
    (N, 4) xyxy."""

    id: str
    camera: str
    embeddings: np.ndarray
    times: np.ndarray
    frames: np.ndarray
    timestamps: np.ndarray
    boxes: np.ndarray

    def __post_init__(self) -> None:
        k = len(self.times)
        if self.embeddings.ndim != 2 or len(self.embeddings) != k or k == 0:
            raise ValueError(
                f"{self.id}: embeddings (K, D) and times (K,) with K >= 1, got "
                f"{self.embeddings.shape} and {self.times.shape}"
            )
        n = len(self.frames)
        if self.boxes.shape != (n, 4) or self.timestamps.shape != (n,):
            raise ValueError(
                f"{self.id}: timestamps (N,) and boxes (N, 4) for N = {n} frames, got "
                f"{self.timestamps.shape} and {self.boxes.shape}"
            )


@dataclass(frozen=True)
class Calibration:
    """A proposed threshold and the evidence for it."""

    threshold: float
    target_false_merge: float
    false_merge_rate: float
    split_rate: float
    different: np.ndarray
    same: np.ndarray
    warnings: tuple[str, ...]

    def rates_at(self, threshold: float) -> dict[str, float | None]:
        """Fraction of different-people pairs at or above `threshold` (would merge) and of
        same-person pairs below it (would split); None without pairs."""
        return {
            "false_merge_rate": _mean(self.different >= threshold),
            "split_rate": _mean(self.same < threshold),
        }


def _mean(x: np.ndarray) -> float | None:
    return float(x.mean()) if x.size else None


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of two (N, 4) xyxy box arrays."""
    w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = w * h
    area = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area - inter, 1e-9)


def _nearest_clip(t: EmbeddedTracklet, time: float) -> np.ndarray:
    return t.embeddings[int(np.argmin(np.abs(t.times - time)))]


def _pair_similarity(a: EmbeddedTracklet, b: EmbeddedTracklet, max_iou: float) -> float | None:
    """Cosine of a's and b's clips nearest the middle of their shared frames; None where they
    share no frame or overlap more than `max_iou` in one."""
    shared, ia, ib = np.intersect1d(a.frames, b.frames, return_indices=True)
    if not shared.size or _iou(a.boxes[ia], b.boxes[ib]).max() > max_iou:
        return None
    time = a.timestamps[ia[len(ia) // 2]]
    return float(_nearest_clip(a, time) @ _nearest_clip(b, time))


def different_people(
    tracklets: Sequence[EmbeddedTracklet], *, max_iou: float
) -> list[tuple[str, str, float]]:
    """(tracklet, tracklet, cosine) for every pair of one camera seen in the same frame."""
    by_camera: dict[str, list[EmbeddedTracklet]] = defaultdict(list)
    for t in tracklets:
        by_camera[t.camera].append(t)
    pairs = []
    for group in by_camera.values():
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                if (s := _pair_similarity(a, b, max_iou)) is not None:
                    pairs.append((a.id, b.id, s))
    return pairs


def same_person(
    tracklets: Sequence[EmbeddedTracklet], *, min_gap_s: float
) -> list[tuple[str, float]]:
    """(tracklet, cosine of its first and last clip) for tracklets whose first and last clip
    are at least `min_gap_s` apart."""
    return [
        (t.id, float(t.embeddings[0] @ t.embeddings[-1]))
        for t in tracklets
        if len(t.times) >= 2 and t.times[-1] - t.times[0] >= min_gap_s
    ]


def propose_threshold(
    different: Sequence[float], same: Sequence[float], *, target: float, min_pairs: int
) -> Calibration:
    """The least threshold (to 0.001) that at most `target` of `different` reach.

    Raises:
        ValueError: No different-people pair at all: nothing to set a threshold against.
    """
    neg, pos = np.asarray(different, float), np.asarray(same, float)
    if not neg.size:
        raise ValueError(
            "no two tracklets were seen in one frame of one camera: no different-people pairs "
            "(calibrate on busier footage, or for longer: calibrate.duration_s)"
        )
    quantile = float(np.quantile(neg, 1.0 - target, method="higher"))
    # Rounded up, so that the rounding never lets more pairs through than the quantile does.
    threshold = min(math.ceil(quantile * 1000 - 1e-9) / 1000, 1.0)
    return Calibration(
        threshold=threshold,
        target_false_merge=target,
        false_merge_rate=float(np.mean(neg >= threshold)),
        split_rate=float(np.mean(pos < threshold)) if pos.size else float("nan"),
        different=neg,
        same=pos,
        warnings=_warnings(neg.size, pos.size, target, min_pairs),
    )


def _warnings(n_neg: int, n_pos: int, target: float, min_pairs: int) -> tuple[str, ...]:
    out = []
    if n_neg < min_pairs or n_pos < min_pairs:
        out.append(
            f"small sample: {n_neg} different-people and {n_pos} same-person pairs (fewer than "
            f"calibrate.min_pairs = {min_pairs}); the proposal is a rough guide only"
        )
    if target * n_neg < 1:
        out.append(
            f"target false-merge rate {target:g} is finer than one pair in {n_neg}: the "
            "proposal is the highest different-people similarity seen, not a measured quantile"
        )
    if not n_pos:
        out.append("no tracklet lasted calibrate.min_gap_s: the split rate is unknown")
    return tuple(out)
