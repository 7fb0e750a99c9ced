"""Multi-camera identity F1 (IDF1) of the pipeline's global ids against ground truth.

    ground truth: per camera, (frame, person id, box) rows
    hypothesis:   per camera, (frame, tracklet id, box) rows of every tracked box
                  + the global id each tracklet was linked to (its latest link)
      ─▶ one motmetrics accumulator over all cameras: camera c's frame f is frame
         c * 10**7 + f, so no two cameras share a frame (py-motmetrics#34's recipe for
         multi-camera metrics) and an id keeps one identity across cameras
      ─▶ IDF1 / IDP / IDR (Ristani et al. 2016): the best one-to-one matching of true and
         predicted ids over the whole sequence; a person split into two global ids, or two
         people merged into one, loses the frames of the smaller part

Boxes match at IoU >= 0.5. A tracked box whose tracklet was never linked (a tracklet too short to
embed) has no global id and is left out: the person it covers counts as missed.

The metric is `motmetrics`'; its `iou_matrix` calls `numpy.asfarray`, which NumPy 2 removed, so
the distances come from its `boxiou` directly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["IdentityScore", "mtmc_identity_score"]

#: Frames per camera in the merged sequence (more than any camera will have).
_CAMERA_STRIDE = 10**7

TruthRow = tuple[int, int, float, float, float, float]  # frame, person id, x1, y1, x2, y2
TrackRow = tuple[int, str, float, float, float, float]  # frame, tracklet id, x1, y1, x2, y2


@dataclass(frozen=True)
class IdentityScore:
    """Identity metrics over all cameras.

    Attributes:
        idf1: Identity F1, in [0, 1].
        idp: Identity precision.
        idr: Identity recall.
        true_ids: People in the ground truth.
        predicted_ids: Global ids in the hypothesis.
        true_boxes: Ground-truth boxes scored.
        predicted_boxes: Hypothesis boxes with a global id.
    """

    idf1: float
    idp: float
    idr: float
    true_ids: int
    predicted_ids: int
    true_boxes: int
    predicted_boxes: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _xywh(rows: Sequence[tuple]) -> np.ndarray:
    boxes = np.array([r[2:6] for r in rows], np.float64).reshape(-1, 4)
    boxes[:, 2:] -= boxes[:, :2]
    return boxes


def mtmc_identity_score(
    ground_truth: Mapping[str, Sequence[TruthRow]],
    tracks: Mapping[str, Sequence[TrackRow]],
    global_ids: Mapping[str, str],
    *,
    min_iou: float = 0.5,
) -> IdentityScore:
    """IDF1 of the global ids over every camera of `ground_truth`.

    Args:
        ground_truth: Camera -> rows (frame, person id, x1, y1, x2, y2).
        tracks: Camera -> rows (frame, tracklet id, x1, y1, x2, y2) of the tracked boxes.
        global_ids: Tracklet id -> the global id it was (last) linked to.
        min_iou: Least IoU for a tracked box to cover a true one.
    """
    import motmetrics as mm
    from motmetrics.distances import boxiou

    acc = mm.MOTAccumulator(auto_id=False)
    numbers: dict[str, int] = {}  # motmetrics stores ids as floats: global id -> a number
    hypothesis_boxes = 0
    for c, camera in enumerate(sorted(ground_truth)):
        truth_by_frame: dict[int, list[TruthRow]] = defaultdict(list)
        for row in ground_truth[camera]:
            truth_by_frame[row[0]].append(row)
        hyp_by_frame: dict[int, list[TrackRow]] = defaultdict(list)
        for row in tracks.get(camera, ()):
            if row[1] in global_ids:
                hyp_by_frame[row[0]].append(row)
        for frame in sorted(truth_by_frame.keys() | hyp_by_frame.keys()):
            truth, hyp = truth_by_frame.get(frame, []), hyp_by_frame.get(frame, [])
            hyp_ids = [numbers.setdefault(global_ids[r[1]], len(numbers)) for r in hyp]
            hypothesis_boxes += len(hyp)
            if truth and hyp:
                dist = 1.0 - boxiou(_xywh(truth)[:, None], _xywh(hyp)[None, :])
                dist = np.where(dist > 1.0 - min_iou, np.nan, dist)
            else:
                dist = np.empty((len(truth), len(hyp)))
            acc.update([r[1] for r in truth], hyp_ids, dist, frameid=c * _CAMERA_STRIDE + frame)
    summary = mm.metrics.create().compute(
        acc, metrics=["idf1", "idp", "idr", "num_unique_objects", "num_objects"], name="all"
    )
    row = summary.loc["all"]

    def value(name: str) -> float:
        v = float(row[name])
        return 0.0 if np.isnan(v) else v

    return IdentityScore(
        idf1=value("idf1"),
        idp=value("idp"),
        idr=value("idr"),
        true_ids=int(row["num_unique_objects"]),
        predicted_ids=len(numbers),
        true_boxes=int(row["num_objects"]),
        predicted_boxes=hypothesis_boxes,
    )
