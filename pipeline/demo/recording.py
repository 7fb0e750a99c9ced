"""What a recorded run keeps: every tracked box, the links made, and a few frames per camera.

    tracklet stage ──on_update(frame, update)──▶ Recorder: box rows (camera, frame, tracklet, box)
                                                 + every `snapshot_every_s`, a small copy of the
                                                   frame with its boxes
    match stage ───on_links(links)─────────────▶ Recorder: tracklet -> latest global id
    end of run ──finish(out_dir)──▶ tracks.csv: camera, frame, time, track, tracklet, global id,
                                    box
                                    mosaic.png: cameras side by side at a few moments, every box
                                    labelled with its global id (one colour per global id)
                                    and, where the ground truth is known (the synthetic scene),
                                    the IDF1 of the global ids (`pipeline.demo.evaluation`)

The mosaic shows the moments with the most people in view; each row is one moment (the same
snapshot slot on every camera), each column one camera. Boxes whose tracklet never got a global
id are grey.
"""

from __future__ import annotations

import csv
import hashlib
import math
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pipeline.demo.evaluation import IdentityScore, mtmc_identity_score
from pipeline.messages.types import IdentityLink
from pipeline.stream.tracklets import TrackletUpdate
from pipeline.stream.types import Frame

#: Camera -> ground-truth rows (frame index, person id, x1, y1, x2, y2) of the people a run is
#: scored against, or None where the truth is unknown (real cameras).
GroundTruth = Callable[[], Mapping[str, list[tuple]] | None]

__all__ = ["Recorder", "draw_mosaic"]

_WIDTH = 320  # width of a camera's tile in the mosaic


@dataclass
class _Snapshot:
    camera_id: str
    slot: int
    image: np.ndarray  # downscaled BGR
    scale: float
    boxes: list[tuple[str, np.ndarray]]  # (tracklet id, xyxy in full-frame pixels)


class Recorder:
    """Collects a run's boxes, links and snapshots (thread-safe: two stages call it).

    Args:
        snapshot_every_s: Stream time between two snapshots of a camera.
        max_snapshots: Most snapshots kept per camera (the earliest are kept).
        truth: The ground truth to score the global ids against, asked for at the end.
    """

    def __init__(
        self,
        *,
        snapshot_every_s: float = 5.0,
        max_snapshots: int = 40,
        truth: GroundTruth | None = None,
    ) -> None:
        self.snapshot_every_s, self.max_snapshots = snapshot_every_s, max_snapshots
        self.truth = truth
        self.rows: dict[str, list[tuple[int, float, int, str, np.ndarray]]] = defaultdict(list)
        self.global_ids: dict[str, str] = {}
        self.links = 0
        self._snapshots: dict[str, dict[int, _Snapshot]] = defaultdict(dict)
        self._origin: float | None = None
        self._lock = threading.Lock()

    def on_update(self, frame: Frame, update: TrackletUpdate) -> None:
        camera = frame.camera_id
        rows = self.rows[camera]
        for tracklet_id, track_id, box in update.boxes:
            rows.append((frame.index, frame.timestamp, track_id, tracklet_id, box))
        with self._lock:
            if self._origin is None:
                self._origin = frame.timestamp
        slot = math.floor((frame.timestamp - self._origin) / self.snapshot_every_s)
        shots = self._snapshots[camera]
        if slot not in shots and len(shots) < self.max_snapshots:
            scale = _WIDTH / frame.width
            size = (_WIDTH, max(1, round(frame.height * scale)))
            image = cv2.resize(frame.image, size, interpolation=cv2.INTER_AREA)
            boxes = [(t, b) for t, _, b in update.boxes]
            shots[slot] = _Snapshot(camera, slot, image, scale, boxes)

    def on_links(self, links: Sequence[IdentityLink]) -> None:
        with self._lock:
            for link in links:
                self.global_ids[link.tracklet_id] = link.global_id
            self.links += len(links)

    def track_rows(self) -> dict[str, list[tuple[int, str, float, float, float, float]]]:
        """Camera -> (frame, tracklet id, x1, y1, x2, y2) of every tracked box."""
        return {
            camera: [(r[0], r[3], *map(float, r[4])) for r in rows]
            for camera, rows in self.rows.items()
        }

    def score(self, global_ids: Mapping[str, str] | None = None) -> IdentityScore | None:
        """IDF1 of `global_ids` (tracklet -> global id; default: the links recorded) against
        the ground truth; None where it is unknown."""
        truth = self.truth() if self.truth is not None else None
        if truth is None:
            return None
        ids = self.global_ids if global_ids is None else global_ids
        return mtmc_identity_score(truth, self.track_rows(), ids)

    def finish(
        self, out_dir: Path, camera_ids: Sequence[str]
    ) -> tuple[dict[str, str], dict[str, Any] | None]:
        """Writes tracks.csv and mosaic.png under `out_dir` and scores the run; returns
        (name -> path written, the score as a dict or None)."""
        outputs = {"tracks": str(self.write_tracks(out_dir / "tracks.csv"))}
        mosaic = self.write_mosaic(out_dir / "mosaic.png", camera_ids)
        if mosaic is not None:
            outputs["mosaic"] = str(mosaic)
        score = self.score()
        return outputs, None if score is None else score.as_dict()

    def write_tracks(self, path: Path) -> Path:
        with path.open("w", newline="") as f:
            out = csv.writer(f)
            out.writerow(
                [
                    "camera",
                    "frame",
                    "time",
                    "track_id",
                    "tracklet_id",
                    "global_id",
                    "x1",
                    "y1",
                    "x2",
                    "y2",
                ]
            )
            for camera in sorted(self.rows):
                for index, timestamp, track, tracklet, box in self.rows[camera]:
                    gid = self.global_ids.get(tracklet, "")
                    out.writerow(
                        [
                            camera,
                            index,
                            f"{timestamp:.3f}",
                            track,
                            tracklet,
                            gid,
                            *(f"{v:.1f}" for v in box),
                        ]
                    )
        return path

    def write_mosaic(self, path: Path, cameras: Sequence[str], *, rows: int = 4) -> Path | None:
        """Writes the mosaic PNG; None if no camera produced a snapshot."""
        image = draw_mosaic(
            self._snapshots, cameras, self.global_ids, rows=rows, every_s=self.snapshot_every_s
        )
        if image is None:
            return None
        if not cv2.imwrite(str(path), image):
            raise OSError(f"cannot write {path}")
        return path


def _colour(global_id: str) -> tuple[int, int, int]:
    digest = hashlib.sha1(global_id.encode()).digest()
    hue = digest[0] * 180 // 256
    hsv = np.uint8([[[hue, 200, 255]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def _short(global_id: str) -> str:
    """The readable part of a global id ('3f9a1c2e-17' -> '17')."""
    return global_id.rsplit("-", 1)[-1]


def draw_mosaic(
    snapshots: dict[str, dict[int, _Snapshot]],
    cameras: Sequence[str],
    global_ids: dict[str, str],
    *,
    rows: int = 4,
    every_s: float = 1.0,
) -> np.ndarray | None:
    """Cameras (columns) at the `rows` moments with the most boxes, labelled by global id.

    `every_s` is the stream time between snapshot slots (for the time labels)."""
    slots = sorted({s for shots in snapshots.values() for s in shots})
    if not slots:
        return None
    busy = sorted(
        slots,
        key=lambda s: (
            -sum(len(snapshots[c][s].boxes) for c in cameras if s in snapshots.get(c, {}))
        ),
    )
    chosen = sorted(busy[:rows])
    tile_h = max(s.image.shape[0] for shots in snapshots.values() for s in shots.values())
    grid = []
    for slot in chosen:
        tiles = []
        for camera in cameras:
            shot = snapshots.get(camera, {}).get(slot)
            tile = np.zeros((tile_h, _WIDTH, 3), np.uint8)
            if shot is not None:
                tile[: shot.image.shape[0]] = _draw(shot, global_ids)
            label = f"{camera}  t={slot * every_s:.0f} s"
            cv2.putText(
                tile,
                label,
                (4, tile_h - 6),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.4,
                (255, 255, 255),
                1,
                cv2.LINE_AA,
            )
            tiles.append(cv2.copyMakeBorder(tile, 1, 1, 1, 1, cv2.BORDER_CONSTANT))
        grid.append(np.hstack(tiles))
    return np.vstack(grid)


def _draw(shot: _Snapshot, global_ids: dict[str, str]) -> np.ndarray:
    image = shot.image.copy()
    for tracklet_id, box in shot.boxes:
        gid = global_ids.get(tracklet_id)
        colour = _colour(gid) if gid else (128, 128, 128)
        x1, y1, x2, y2 = (round(float(v) * shot.scale) for v in box)
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, 2)
        text = f"#{_short(gid)}" if gid else "?"
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        cv2.rectangle(image, (x1, max(y1 - th - 4, 0)), (x1 + tw + 4, max(y1, th + 4)), colour, -1)
        cv2.putText(
            image,
            text,
            (x1 + 2, max(y1 - 3, th + 1)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    return image
