"""A site's tracklets on disk: what `reidstream adapt` collects and trains on.

    DIR/tracklets.jsonl   one line per tracklet: {"id", "camera", "track_id", "frames": [...],
                          "timestamps": [...], "boxes": [[x1, y1, x2, y2], ...]}
    DIR/crops/<n>/<frame>.jpg   its crops (BGR JPEG, quality 95, at the crop size the job cut)
    DIR/complete.json     written last: the collection finished (what was run, when)

A tracklet's crops are those that passed the job's quality gates, as the streaming job cut
them (`pipeline.stream.tracklets`), so training sees exactly the crops inference will see. The
folder is plain files a person can open and check; nothing in it is unpickled.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

__all__ = ["StoreError", "StoredTracklet", "TrackletStore"]

_INDEX, _COMPLETE, _CROPS = "tracklets.jsonl", "complete.json", "crops"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


class StoreError(ValueError):
    """A tracklet folder is missing, incomplete or malformed."""


@dataclass
class StoredTracklet:
    """One tracklet: its crops' frame indices, capture times and boxes, in frame order."""

    id: str
    camera: str
    track_id: int
    frames: list[int] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)
    boxes: list[list[float]] = field(default_factory=list)
    folder: str = ""

    @property
    def start(self) -> float:
        return self.timestamps[0]

    def __len__(self) -> int:
        return len(self.frames)


class TrackletStore:
    """Writes (`add`, `close`) or reads (`open`, `crops`) a tracklet folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tracklets: dict[str, StoredTracklet] = {}

    # ---------------------------------------------------------------------------- writing

    def add(
        self,
        *,
        tracklet_id: str,
        camera: str,
        track_id: int,
        frames: np.ndarray,
        timestamps: np.ndarray,
        boxes: np.ndarray,
        crops: np.ndarray,
    ) -> int:
        """Adds the crops of one clip (frames already stored are skipped); returns how many
        were new."""
        tracklet = self.tracklets.get(tracklet_id)
        if tracklet is None:
            folder = f"{len(self.tracklets):06d}_{_SAFE.sub('_', tracklet_id)}"
            tracklet = StoredTracklet(tracklet_id, camera, int(track_id), folder=folder)
            self.tracklets[tracklet_id] = tracklet
            (self.root / _CROPS / folder).mkdir(parents=True, exist_ok=True)
        known, new = set(tracklet.frames), 0
        for index, t, box, crop in zip(frames, timestamps, boxes, crops, strict=True):
            if int(index) in known:
                continue
            known.add(int(index))
            path = self.root / _CROPS / tracklet.folder / f"{int(index):08d}.jpg"
            ok, data = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 95])
            if not ok:
                raise StoreError(f"cannot encode a crop of {tracklet_id} as JPEG")
            path.write_bytes(data.tobytes())
            tracklet.frames.append(int(index))
            tracklet.timestamps.append(float(t))
            tracklet.boxes.append([round(float(v), 1) for v in box])
            new += 1
        return new

    def close(self, about: dict[str, Any]) -> None:
        """Writes the index in frame order, then the completion marker."""
        self.root.mkdir(parents=True, exist_ok=True)
        lines = []
        for t in self.tracklets.values():
            order = np.argsort(t.frames, kind="stable")
            t.frames = [t.frames[i] for i in order]
            t.timestamps = [t.timestamps[i] for i in order]
            t.boxes = [t.boxes[i] for i in order]
            lines.append(json.dumps(t.__dict__))
        (self.root / _INDEX).write_text("".join(f"{line}\n" for line in lines))
        (self.root / _COMPLETE).write_text(json.dumps(about, indent=2, default=str) + "\n")

    # ---------------------------------------------------------------------------- reading

    @property
    def complete(self) -> bool:
        return (self.root / _COMPLETE).is_file() and (self.root / _INDEX).is_file()

    @classmethod
    def open(cls, root: Path) -> TrackletStore:
        """Reads a finished folder.

        Raises:
            StoreError: No completion marker, or a malformed index line (file and line named).
        """
        store = cls(root)
        if not store.complete:
            raise StoreError(f"{root}: no finished tracklet collection (no {_COMPLETE})")
        index = store.root / _INDEX
        for number, line in enumerate(index.read_text().splitlines(), 1):
            try:
                tracklet = StoredTracklet(**json.loads(line))
                _check(tracklet)
            except (TypeError, ValueError) as err:
                raise StoreError(f"{index}:{number}: malformed tracklet: {err}") from err
            store.tracklets[tracklet.id] = tracklet
        return store

    def crops(self, tracklet: StoredTracklet, positions: list[int] | None = None) -> np.ndarray:
        """(T, H, W, 3) uint8 RGB crops of `tracklet` (all, or those at `positions`).

        Raises:
            StoreError: A crop file is missing or does not decode.
        """
        positions = list(range(len(tracklet))) if positions is None else positions
        out = []
        for p in positions:
            path = self.root / _CROPS / tracklet.folder / f"{tracklet.frames[p]:08d}.jpg"
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise StoreError(f"{path}: missing or not a JPEG image")
            out.append(image[:, :, ::-1])
        return np.ascontiguousarray(np.stack(out))

    def __iter__(self) -> Iterator[StoredTracklet]:
        return iter(self.tracklets.values())

    def __len__(self) -> int:
        return len(self.tracklets)


def _check(t: StoredTracklet) -> None:
    n = len(t.frames)
    if not n or len(t.timestamps) != n or len(t.boxes) != n:
        raise ValueError(f"{t.id}: frames, timestamps and boxes must be equally long and not empty")
    if not all(isinstance(b, list) and len(b) == 4 for b in t.boxes):
        raise ValueError(f"{t.id}: every box must be [x1, y1, x2, y2]")
    if not np.isfinite(np.asarray(t.timestamps, float)).all():
        raise ValueError(f"{t.id}: timestamps must be finite")
    if "/" in t.folder or t.folder.startswith("."):
        raise ValueError(f"{t.id}: folder {t.folder!r} must be a plain name inside crops/")
