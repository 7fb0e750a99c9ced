"""Single-camera trackers: Ultralytics' ByteTrack and BoT-SORT, used as libraries on any detector.

    Detections (one frame, any backend)
      -> ultralytics.engine.results.Boxes (x1, y1, x2, y2, conf, cls)  what Ultralytics expects
      -> BYTETracker / BOTSORT .update(boxes, frame)                    (M, 8) rows, each with the
                                                                       index of its detection
      -> the matched input rows, with tracker_id                       Detections

One tracker object is one camera's state (Kalman filters, lost tracks, the id counter); track ids
are counted per tracker and start at 1. `CameraTrackers` keeps one per camera id.

The boxes returned are the detector's boxes of the matched detections (not the Kalman filter's
smoothed ones, which Ultralytics' own `track()` returns): crops for ReID should show what was
seen in this frame, and the input's columns (confidence, class) pass through unchanged. Only
confirmed tracks matched in this frame are returned, as in Ultralytics.

BoT-SORT's global motion compensation needs the frame image: pass it as `update(..., frame=...)`;
without it GMC is skipped. Its optional appearance matching (`with_reid`) needs a ReID model file
that Ultralytics can load (`reid_model`); Ultralytics' ``model: auto`` (features taken from inside
a YOLO PyTorch model) does not apply to detections from other backends.

The options and their defaults are those of Ultralytics' `cfg/trackers/bytetrack.yaml` and
`botsort.yaml`, read from the installed Ultralytics (`ultralytics_defaults`): an option left at
None takes its value there, so the defaults have one source. Ultralytics' association calls
`lap.lapjv`, so the `lap` package must be installed.
"""

from __future__ import annotations

import abc
import functools
import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import numpy as np
import yaml

from detectors.base import DetectorError
from detectors.detections import Detections
from detectors.registry import register_tracker
from detectors.safe_loading import enable_safe_loading

__all__ = [
    "BotSortTracker",
    "ByteTrackTracker",
    "CameraTrackers",
    "Tracker",
    "ultralytics_defaults",
]

GmcMethod = Literal["sparseOptFlow", "orb", "sift", "ecc", "none"]
GMC_METHODS = ("sparseOptFlow", "orb", "sift", "ecc", "none")


@functools.cache
def ultralytics_defaults(name: Literal["bytetrack", "botsort"]) -> dict[str, Any]:
    """The options of Ultralytics' ``cfg/trackers/<name>.yaml``, as installed (without
    `tracker_type`; BoT-SORT's ``model: auto`` means no ReID model file).

    Read from the package's files without importing it (which would load torch).
    """
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the trackers need Ultralytics: pip install ultralytics-opencv-headless")
    path = Path(spec.submodule_search_locations[0]) / "cfg" / "trackers" / f"{name}.yaml"
    options = yaml.safe_load(path.read_text(encoding="utf-8"))
    options.pop("tracker_type", None)
    return options


def _with_defaults(name: Literal["bytetrack", "botsort"], given: dict[str, Any]) -> dict[str, Any]:
    """`given`, each None replaced by Ultralytics' default for `name`."""
    defaults = ultralytics_defaults(name)
    return {k: defaults[k] if v is None else v for k, v in given.items()}


class Tracker(abc.ABC):
    """One camera's tracker: `update` once per frame, in order; `reset` forgets every track."""

    name: str = "tracker"

    @abc.abstractmethod
    def update(self, detections: Detections, frame: np.ndarray | None = None) -> Detections:
        """Associates one frame's detections with the tracks.

        Args:
            detections: This frame's detections (may be empty; lost tracks still age).
            frame: The (H, W, 3) BGR frame, for trackers that look at pixels.

        Returns:
            The detections that belong to a confirmed track, with `tracker_id` set.
        """

    @abc.abstractmethod
    def predict(self, frame: np.ndarray | None = None) -> Detections:
        """Advances every track by one frame that the detector did not look at.

        The motion model moves each track as `update` would, without associating anything,
        so that the next `update` finds them where the people have walked to; no track is
        lost or confirmed by it. Call it once per skipped frame, in order with `update`.

        Args:
            frame: The skipped (H, W, 3) frame: its size clips the boxes to the image.

        Returns:
            The predicted boxes of the confirmed tracks, with `tracker_id` set, the
            confidence of each track's last detection and ``metadata["predicted"] = True``.
        """

    @abc.abstractmethod
    def reset(self) -> None:
        """Forgets every track; ids start at 1 again."""


class _UltralyticsTracker(Tracker):
    """Adapts one of Ultralytics' tracker classes to `Tracker`."""

    def __init__(self, options: dict[str, Any]) -> None:
        _check_thresholds(options)
        self._args = SimpleNamespace(tracker_type=self.name, **options)
        self._tracker = self._build(self._args)

    @staticmethod
    @abc.abstractmethod
    def _build(args: SimpleNamespace) -> Any: ...

    @property
    def options(self) -> dict[str, Any]:
        """The options given to Ultralytics, as in its tracker YAML."""
        return dict(vars(self._args))

    def update(self, detections: Detections, frame: np.ndarray | None = None) -> Detections:
        from ultralytics.engine.results import Boxes  # imported here: it pulls in torch

        if frame is not None and (frame.ndim != 3 or frame.shape[2] != 3 or frame.size == 0):
            raise ValueError(f"frame: expected an (H, W, 3) BGR image, got shape {frame.shape}")
        size = frame.shape[:2] if frame is not None else detections.metadata.get("image_size")
        data = np.concatenate(
            [detections.xyxy, detections.confidence[:, None], detections.class_id[:, None]],
            axis=1,
            dtype=np.float32,
        )
        tracks = self._tracker.update(Boxes(data, tuple(size or (1, 1))), frame)
        if len(tracks) == 0:
            return Detections.empty(tracked=True, metadata=detections.metadata)
        rows = tracks[:, 7].astype(np.int64)  # index of the matched input detection
        return Detections(  # one construction (one validation) per frame
            xyxy=detections.xyxy[rows],
            confidence=detections.confidence[rows],
            class_id=detections.class_id[rows],
            tracker_id=tracks[:, 4].astype(np.int64),
            metadata=detections.metadata,
        )

    def predict(self, frame: np.ndarray | None = None) -> Detections:
        from ultralytics.trackers.byte_tracker import joint_stracks, merge_track_pools

        tracker = self._tracker
        tracker.frame_id += 1  # a skipped frame ages lost tracks as `update` does
        tracker.multi_predict(joint_stracks(tracker.tracked_stracks, tracker.lost_stracks))
        removed: list[Any] = []
        tracker._remove_stale_lost(removed)  # lost for track_buffer frames: gone, as in update
        merge_track_pools(tracker, [], [], [], removed)
        metadata: dict[str, Any] = {"predicted": True}
        if frame is not None:
            metadata["image_size"] = frame.shape[:2]
        shown = [t for t in tracker.tracked_stracks if t.is_activated]
        if not shown:
            return Detections.empty(tracked=True, metadata=metadata)
        xyxy = np.array([t.xyxy for t in shown], np.float32)
        if frame is not None:
            h, w = frame.shape[:2]
            xyxy = np.clip(xyxy, 0, [w, h, w, h]).astype(np.float32)
        return Detections(
            xyxy=xyxy,
            confidence=np.array([t.score for t in shown], np.float32),
            class_id=np.array([int(t.cls) for t in shown], np.int64),
            tracker_id=np.array([t.track_id for t in shown], np.int64),
            metadata=metadata,
        )

    def reset(self) -> None:
        self._tracker.reset()


@register_tracker("bytetrack")
class ByteTrackTracker(_UltralyticsTracker):
    """ByteTrack (Zhang et al., ECCV 2022) as implemented by Ultralytics' `BYTETracker`.

    Every option left at None takes Ultralytics' default (`ultralytics_defaults("bytetrack")`).

    Args:
        track_high_thresh: Detections scoring at least this take part in the first association.
        track_low_thresh: Detections above this (and below the high threshold) take part in the
            second, IoU-only association that keeps occluded tracks alive.
        new_track_thresh: An unmatched detection starts a track only if it scores this much.
        track_buffer: Frames a lost track is kept for re-identification by motion.
        match_thresh: Largest association cost (1 - IoU, fused with score) accepted.
        fuse_score: Fuse the detection score into the IoU cost of the first association.
    """

    name = "bytetrack"

    def __init__(
        self,
        *,
        track_high_thresh: float | None = None,
        track_low_thresh: float | None = None,
        new_track_thresh: float | None = None,
        track_buffer: int | None = None,
        match_thresh: float | None = None,
        fuse_score: bool | None = None,
    ) -> None:
        super().__init__(
            _with_defaults(
                "bytetrack",
                {
                    "track_high_thresh": track_high_thresh,
                    "track_low_thresh": track_low_thresh,
                    "new_track_thresh": new_track_thresh,
                    "track_buffer": track_buffer,
                    "match_thresh": match_thresh,
                    "fuse_score": fuse_score,
                },
            )
        )

    @staticmethod
    def _build(args: SimpleNamespace) -> Any:
        from ultralytics.trackers.byte_tracker import BYTETracker

        return BYTETracker(args)


@register_tracker("botsort")
class BotSortTracker(_UltralyticsTracker):
    """BoT-SORT (Aharon et al., 2022) as implemented by Ultralytics' `BOTSORT`.

    Every option left at None takes Ultralytics' default (`ultralytics_defaults("botsort")`).

    Args:
        track_high_thresh: As for ByteTrack.
        track_low_thresh: As for ByteTrack.
        new_track_thresh: As for ByteTrack.
        track_buffer: As for ByteTrack.
        match_thresh: As for ByteTrack.
        fuse_score: As for ByteTrack.
        gmc_method: Global motion compensation between frames (needs the frame in `update`):
            sparseOptFlow, orb, sift, ecc or none. Costs CPU; helps only a moving camera.
        proximity_thresh: Smallest IoU for a track and a detection to be compared by appearance.
        appearance_thresh: Smallest appearance similarity accepted (with `with_reid`).
        with_reid: Match by appearance too, with `reid_model`.
        reid_model: Path to a ReID model Ultralytics can load (.pt classifier or exported
            embedding model); required with `with_reid`.
        device: Device of the ReID model: auto, cpu, cuda or cuda:N.
    """

    name = "botsort"

    def __init__(
        self,
        *,
        track_high_thresh: float | None = None,
        track_low_thresh: float | None = None,
        new_track_thresh: float | None = None,
        track_buffer: int | None = None,
        match_thresh: float | None = None,
        fuse_score: bool | None = None,
        gmc_method: GmcMethod | None = None,
        proximity_thresh: float | None = None,
        appearance_thresh: float | None = None,
        with_reid: bool | None = None,
        reid_model: str | Path | None = None,
        device: str = "auto",
    ) -> None:
        options = _with_defaults(
            "botsort",
            {
                "track_high_thresh": track_high_thresh,
                "track_low_thresh": track_low_thresh,
                "new_track_thresh": new_track_thresh,
                "track_buffer": track_buffer,
                "match_thresh": match_thresh,
                "fuse_score": fuse_score,
                "gmc_method": gmc_method,
                "proximity_thresh": proximity_thresh,
                "appearance_thresh": appearance_thresh,
                "with_reid": with_reid,
            },
        )
        gmc_method, with_reid = options["gmc_method"], options["with_reid"]
        if gmc_method not in GMC_METHODS:
            raise ValueError(f"gmc_method {gmc_method!r}: expected one of {', '.join(GMC_METHODS)}")
        if with_reid and (reid_model is None or not Path(reid_model).is_file()):
            raise ValueError(
                f"with_reid=True needs reid_model: a path to a ReID model file, got "
                f"{reid_model!r} (Ultralytics' 'auto' features exist only inside its own YOLO "
                f"PyTorch models)"
            )
        super().__init__(
            options
            | {
                "model": str(reid_model) if reid_model is not None else "auto",
                "device": None if device == "auto" else device,
            }
        )

    @staticmethod
    def _build(args: SimpleNamespace) -> Any:
        from ultralytics.trackers.bot_sort import BOTSORT

        if not args.with_reid:
            return BOTSORT(args)
        enable_safe_loading()  # Ultralytics loads `reid_model` with YOLO(): restricted, no pickle
        try:
            return BOTSORT(args)
        except (TypeError, ValueError, OSError, RuntimeError) as e:
            raise DetectorError(
                f"tracker.reid_model {args.model!r}: cannot be loaded ({e}); expected a ReID "
                f"model Ultralytics loads in its restricted mode (.pt saved by Ultralytics, or "
                f"exported .onnx)"
            ) from e


def _check_thresholds(options: dict[str, Any]) -> None:
    for key in ("track_high_thresh", "track_low_thresh", "new_track_thresh", "match_thresh"):
        if not 0.0 <= options[key] <= 1.0:
            raise ValueError(f"{key}={options[key]!r}: expected a number in [0, 1]")
    if options["track_low_thresh"] > options["track_high_thresh"]:
        raise ValueError(
            f"track_low_thresh={options['track_low_thresh']} must not exceed "
            f"track_high_thresh={options['track_high_thresh']}"
        )
    if not (isinstance(options["track_buffer"], int) and options["track_buffer"] >= 1):
        raise ValueError(f"track_buffer={options['track_buffer']!r}: expected an integer >= 1")


class CameraTrackers:
    """One tracker state per camera, each created by `factory` on the camera's first frame.

    Args:
        factory: Zero-argument callable building a fresh `Tracker`, e.g.
            ``functools.partial(create_tracker, "bytetrack", track_buffer=60)``.
    """

    def __init__(self, factory: Callable[[], Tracker]) -> None:
        self._factory = factory
        self._trackers: dict[str, Tracker] = {}

    def update(
        self, camera_id: str, detections: Detections, frame: np.ndarray | None = None
    ) -> Detections:
        """Updates `camera_id`'s tracker with its next frame's detections."""
        tracker = self._trackers.get(camera_id)
        if tracker is None:
            tracker = self._trackers[camera_id] = self._factory()
        return tracker.update(detections, frame)

    def predict(self, camera_id: str, frame: np.ndarray | None = None) -> Detections:
        """Advances `camera_id`'s tracks by one frame the detector skipped (`Tracker.predict`)."""
        tracker = self._trackers.get(camera_id)
        if tracker is None:
            tracker = self._trackers[camera_id] = self._factory()
        return tracker.predict(frame)

    def reset(self, camera_id: str | None = None) -> None:
        """Forgets one camera's tracks (e.g. after its stream reconnects), or every camera's."""
        if camera_id is None:
            self._trackers.clear()
        else:
            self._trackers.pop(camera_id, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._trackers)

    def __len__(self) -> int:
        return len(self._trackers)
