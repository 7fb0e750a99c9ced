"""Identity ground truth of real footage, read from a folder, and tracklets named by it.

    FOLDER/<camera>.txt   frame,person_id,x1,y1,x2,y2   (frame 0-based, as `Frame.index`)
      ─▶ read_identity_truth(FOLDER) -> camera -> [TruthRow]   (what `mtmc_identity_score` takes)
    one camera's tracked boxes [TrackRow] + its [TruthRow]
      ─▶ assign_identities -> tracklet id -> the person it follows (majority of IoU matches)

The files are made by hand (`tests/data/store_identities/README.md`); lines that are blank or
start with '#' are skipped. Only NumPy is needed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.demo.evaluation import TrackRow, TruthRow

__all__ = ["assign_identities", "read_identity_truth"]


def _parse_line(text: str, where: str) -> TruthRow:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 6:
        raise ValueError(f"{where}: expected 6 fields (frame,person_id,x1,y1,x2,y2), got {text!r}")
    try:
        frame, person = int(parts[0]), int(parts[1])
        x1, y1, x2, y2 = (float(p) for p in parts[2:])
    except ValueError:
        raise ValueError(f"{where}: not numbers: {text!r}") from None
    if frame < 0:
        raise ValueError(f"{where}: frame {frame} is negative")
    if person <= 0:
        raise ValueError(f"{where}: person id {person} is not positive")
    if not all(np.isfinite((x1, y1, x2, y2))) or x2 <= x1 or y2 <= y1:
        raise ValueError(f"{where}: box {(x1, y1, x2, y2)} is empty or not finite")
    return frame, person, x1, y1, x2, y2


def read_identity_truth(folder: str | Path) -> dict[str, list[TruthRow]]:
    """Camera id (the file stem) -> rows (frame, person id, x1, y1, x2, y2) of every ``*.txt``
    in `folder`, in file order.

    Raises:
        FileNotFoundError: `folder` is not a folder or holds no ``.txt`` file.
        ValueError: A malformed line (the message names the file and line number).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")
    paths = sorted(folder.glob("*.txt"))
    if not paths:
        raise FileNotFoundError(f"{folder}: no <camera>.txt truth files")
    truth: dict[str, list[TruthRow]] = {}
    for path in paths:
        rows: list[TruthRow] = []
        with path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                text = line.strip()
                if text and not text.startswith("#"):
                    rows.append(_parse_line(text, f"{path}:{number}"))
        truth[path.stem] = rows
    return truth


def _iou(boxes: np.ndarray, box: np.ndarray) -> np.ndarray:
    """IoU of each xyxy row of `boxes` with `box`."""
    lo, hi = np.maximum(boxes[:, :2], box[:2]), np.minimum(boxes[:, 2:], box[2:])
    inter = np.prod(np.clip(hi - lo, 0.0, None), axis=1)
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    union = areas + np.prod(box[2:] - box[:2]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def assign_identities(
    track_rows: Sequence[TrackRow],
    truth: Sequence[TruthRow],
    *,
    min_iou: float = 0.5,
) -> dict[str, int | None]:
    """The person each tracklet of one camera follows.

    Each tracked box is matched to the truth box of its frame with the best IoU, if that IoU is
    at least `min_iou`; a tracklet gets the person most of its boxes matched (ties: the smaller
    id), or None when fewer than half of its boxes matched anyone.

    Args:
        track_rows: (frame, tracklet id, x1, y1, x2, y2) of one camera's tracked boxes.
        truth: (frame, person id, x1, y1, x2, y2) of the same camera (`read_identity_truth`).
        min_iou: Least IoU for a tracked box to count as covering a person.
    """
    by_frame: dict[int, list[TruthRow]] = defaultdict(list)
    for row in truth:
        by_frame[row[0]].append(row)
    arrays = {
        f: (np.array([r[2:6] for r in rows], np.float64), [r[1] for r in rows])
        for f, rows in by_frame.items()
    }
    votes: dict[str, Counter[int]] = defaultdict(Counter)
    boxes: Counter[str] = Counter()
    for frame, tracklet, *box in track_rows:
        boxes[tracklet] += 1
        if frame not in arrays:
            continue
        true_boxes, people = arrays[frame]
        ious = _iou(true_boxes, np.asarray(box, np.float64))
        best = int(np.argmax(ious))
        if ious[best] >= min_iou:
            votes[tracklet][people[best]] += 1
    result: dict[str, int | None] = {}
    for tracklet, total in boxes.items():
        counts = votes.get(tracklet)
        if not counts or 2 * sum(counts.values()) < total:
            result[tracklet] = None
        else:
            result[tracklet] = min(counts, key=lambda p: (-counts[p], p))
    return result
