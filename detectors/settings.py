"""Configuration sections of the detector and the tracker (composed into the root schema by
`pipeline.settings`; see `pipeline.config` for how a schema loads).

    detector   which person detector runs on every frame, with which weights and thresholds
    tracker    the single-camera tracker (Ultralytics' ByteTrack or BoT-SORT) and its options
    track      `reidstream track`: detection and tracking of one video file

Plain frozen dataclasses: each leaf's `metadata` says what it does and what changing it trades.
The tracker's defaults are Ultralytics' own (`detectors.trackers.ultralytics_defaults`), read from
the installed package, so they have one source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from detectors.registry import list_detectors, list_trackers
from detectors.trackers import ultralytics_defaults

__all__ = ["DetectorConfig", "TrackVideoConfig", "TrackerConfig"]

#: Ultralytics' BoT-SORT options: ByteTrack's and its own (the two share their common defaults).
_ULTRALYTICS = ultralytics_defaults("botsort")

#: Detectors that load a weights file the user gives; the others need none.
_WEIGHTED_DETECTORS = ("onnx-yolo", "ultralytics", "openvino")
_EXAMPLE_WEIGHTS = {"openvino": "models/person-detection-retail-0013.xml"}


@dataclass(frozen=True)
class DetectorConfig:
    """The person detector run on every frame (see `detectors.create_detector`)."""

    name: str = field(
        default="onnx-yolo",
        metadata={
            "help": "Detector backend: 'onnx-yolo' (a YOLOv5 or YOLOv8/11 ONNX export run by ONNX "
            "Runtime), 'ultralytics' (any Ultralytics YOLO .pt, exported .onnx or TensorRT "
            ".engine), 'openvino' (an SSD person detector as OpenVINO IR .xml + .bin, e.g. "
            "Intel's person-detection-retail-0013, CPU; needs pip install "
            "'reidstream[openvino]') or 'hog' (OpenCV's HOG people detector: no weights, CPU, "
            "far less accurate)."
        },
    )
    weights: Path | None = field(
        default=None,
        metadata={
            "help": "Path to the detector's weights file; required by onnx-yolo, ultralytics and "
            "openvino (the .xml, its .bin beside it), refused by hog. Nothing is ever downloaded."
        },
    )
    confidence: float = field(
        default=0.1,
        metadata={
            "ge": 0.0,
            "le": 1.0,
            "help": "Boxes scoring at or below this are dropped. Keep it at or below "
            "tracker.track_low_thresh: ByteTrack's second association uses the low-score boxes to "
            "keep occluded people tracked.",
        },
    )
    iou: float = field(
        default=0.7,
        metadata={
            "gt": 0.0,
            "le": 1.0,
            "help": "NMS IoU threshold: of two same-class boxes overlapping more than this, the "
            "lower-scored is dropped. Lower merges people standing close; higher keeps duplicates. "
            "Not used by openvino, whose SSD graph does its own NMS.",
        },
    )
    input_size: int | None = field(
        default=None,
        metadata={
            "ge": 32,
            "help": "Network input side in pixels (YOLO: the longer side, a multiple of 32, "
            "default 640 or the export's fixed size; onnx-yolo pads each frame only to the next "
            "multiple of 32 and re-heads a fixed YOLOv5 export to take a size set here; HOG: "
            "longer side the frame is resized to, default 800; openvino: the model's fixed "
            "input, needed only if it is dynamic). Larger finds smaller people at quadratic "
            "cost.",
        },
    )
    classes: tuple[int, ...] = field(
        default=(0,),
        metadata={"ge": 0, "help": "Class ids kept (COCO: 0 = person). HOG knows person only."},
    )
    max_detections: int = field(
        default=300, metadata={"ge": 1, "help": "Most boxes kept per frame."}
    )
    onnx_layout: Literal["auto", "yolov5", "yolov8"] = field(
        default="auto",
        metadata={
            "help": "Output layout of an onnx-yolo model: 'auto' reads it from the output shape "
            "and the export's metadata; force 'yolov5' (N, boxes, 5+classes) or 'yolov8' (N, "
            "4+classes, boxes) if auto guesses wrong."
        },
    )

    intra_op_threads: int = field(
        default=0,
        metadata={
            "ge": 0,
            "help": "CPU threads of an onnx-yolo detector's ONNX Runtime session; 0 is ONNX "
            "Runtime's default, one per core. With run.workers > 1 every worker has its own "
            "detector: cores / workers each keeps them from oversubscribing the CPU.",
        },
    )
    openvino_person_label: int = field(
        default=1,
        metadata={
            "ge": 0,
            "help": "Label an openvino SSD model gives people in its output: 1 for Intel's "
            "person-detection-retail-0013 (0 is the background), 0 for person-detection-0200/"
            "0201/0202. Rows with other labels are dropped.",
        },
    )

    def __post_init__(self) -> None:
        if self.name not in list_detectors():
            raise ValueError(f"name = {self.name!r}: expected one of {', '.join(list_detectors())}")
        if self.name not in _WEIGHTED_DETECTORS and self.weights is not None:
            raise ValueError(
                f"weights = {str(self.weights)!r}: the {self.name!r} detector takes no weights"
            )
        if not self.classes:
            raise ValueError("classes: expected at least one class id, got none")

    def missing(self) -> list[str]:
        """What a command that runs the detector needs and this config lacks.

        Not checked on construction: every command shares the config, and only those that run
        the detector need its weights.
        """
        if self.name in _WEIGHTED_DETECTORS and self.weights is None:
            example = _EXAMPLE_WEIGHTS.get(self.name, "models/yolov5n_coco.onnx")
            return [
                f"detector.weights: the {self.name!r} detector needs a weights file, e.g. "
                f"detector.weights={example} (or --weights); none given"
            ]
        return []

    def options(self, *, device: str) -> dict[str, Any]:
        """Keyword arguments for `detectors.create_detector(self.name, ...)`."""
        options: dict[str, Any] = {
            "weights": self.weights,
            "confidence": self.confidence,
            "iou": self.iou,
            "input_size": self.input_size,
            "classes": self.classes,
            "max_detections": self.max_detections,
            "device": device,
        }
        if self.name == "onnx-yolo":
            options["layout"] = self.onnx_layout
            options["intra_op_threads"] = self.intra_op_threads
        if self.name == "openvino":  # NMS is inside the SSD graph
            del options["iou"]
            options["person_label"] = self.openvino_person_label
        return options


#: The options of Ultralytics' bytetrack.yaml; botsort.yaml has these and the BoT-SORT ones.
_BYTETRACK_KEYS = (
    "track_high_thresh",
    "track_low_thresh",
    "new_track_thresh",
    "track_buffer",
    "match_thresh",
    "fuse_score",
)


@dataclass(frozen=True)
class TrackerConfig:
    """The single-camera tracker, one state per camera (Ultralytics' ByteTrack or BoT-SORT).

    The defaults are read from Ultralytics' own `cfg/trackers/botsort.yaml` (whose ByteTrack
    options equal `bytetrack.yaml`'s): one source, however Ultralytics changes them.
    """

    name: str = field(
        default="bytetrack",
        metadata={
            "help": "Tracker: 'bytetrack' (motion only, fastest) or 'botsort' (adds camera-motion "
            "compensation and optional appearance matching)."
        },
    )
    track_high_thresh: float = field(
        default=_ULTRALYTICS["track_high_thresh"],
        metadata={
            "ge": 0.0,
            "le": 1.0,
            "help": "Boxes scoring at least this take part in the first association; raise for "
            "cleaner tracks, lower to keep more people.",
        },
    )
    track_low_thresh: float = field(
        default=_ULTRALYTICS["track_low_thresh"],
        metadata={
            "ge": 0.0,
            "le": 1.0,
            "help": "Boxes above this (below track_high_thresh) take part in the second, IoU-only "
            "association that keeps partly occluded people tracked.",
        },
    )
    new_track_thresh: float = field(
        default=_ULTRALYTICS["new_track_thresh"],
        metadata={
            "ge": 0.0,
            "le": 1.0,
            "help": "An unmatched box starts a new track only if it scores this much; higher means "
            "fewer false tracks, later starts.",
        },
    )
    track_buffer: int = field(
        default=_ULTRALYTICS["track_buffer"],
        metadata={
            "ge": 1,
            "help": "Frames a lost track is kept to be found again (30 = 3 s at 10 fps). Longer "
            "bridges longer occlusions but risks giving an old id to someone else.",
        },
    )
    match_thresh: float = field(
        default=_ULTRALYTICS["match_thresh"],
        metadata={
            "ge": 0.0,
            "le": 1.0,
            "help": "Largest association cost (1 - IoU, fused with the score) accepted; higher "
            "matches more loosely.",
        },
    )
    fuse_score: bool = field(
        default=_ULTRALYTICS["fuse_score"],
        metadata={"help": "Fuse the detection score into the IoU cost of the first association."},
    )
    gmc_method: Literal["sparseOptFlow", "orb", "sift", "ecc", "none"] = field(
        default=_ULTRALYTICS["gmc_method"],
        metadata={
            "help": "botsort only: global motion compensation between frames. Helps a moving or "
            "shaking camera; 'none' saves its CPU cost on fixed cameras."
        },
    )
    proximity_thresh: float = field(
        default=_ULTRALYTICS["proximity_thresh"],
        metadata={
            "ge": 0.0,
            "le": 1.0,
            "help": "botsort only: smallest IoU for a track and a box to be compared by "
            "appearance.",
        },
    )
    appearance_thresh: float = field(
        default=_ULTRALYTICS["appearance_thresh"],
        metadata={
            "ge": 0.0,
            "le": 1.0,
            "help": "botsort only: smallest appearance similarity accepted when with_reid is on; "
            "raise to avoid identity swaps.",
        },
    )
    with_reid: bool = field(
        default=_ULTRALYTICS["with_reid"],
        metadata={
            "help": "botsort only: also match by appearance, with tracker.reid_model (costs one "
            "ReID inference per box)."
        },
    )
    reid_model: Path | None = field(
        default=None,
        metadata={
            "help": "botsort only: ReID model file Ultralytics can load, required by with_reid."
        },
    )

    def __post_init__(self) -> None:
        if self.name not in list_trackers():
            raise ValueError(f"name = {self.name!r}: expected one of {', '.join(list_trackers())}")
        if self.track_low_thresh > self.track_high_thresh:
            raise ValueError(
                f"track_low_thresh = {self.track_low_thresh} must not exceed "
                f"track_high_thresh = {self.track_high_thresh}"
            )
        if self.with_reid and (self.name != "botsort" or self.reid_model is None):
            raise ValueError(
                "with_reid: needs name = 'botsort' and a tracker.reid_model file, got "
                f"name = {self.name!r}, reid_model = {self.reid_model!r}"
            )

    def options(self, *, device: str) -> dict[str, Any]:
        """Keyword arguments for `detectors.create_tracker(self.name, ...)`."""
        options = {key: getattr(self, key) for key in _BYTETRACK_KEYS}
        if self.name == "botsort":
            options |= {
                "gmc_method": self.gmc_method,
                "proximity_thresh": self.proximity_thresh,
                "appearance_thresh": self.appearance_thresh,
                "with_reid": self.with_reid,
                "reid_model": self.reid_model,
                "device": device,
            }
        return options


@dataclass(frozen=True)
class TrackVideoConfig:
    """Detection and tracking of one video file (`reidstream track`): batching and outputs."""

    out_dir: Path = field(
        default=Path("runs/track"),
        metadata={
            "help": "Folder for <video>.txt (MOTChallenge results), <video>.mp4 and "
            "<video>.config.yaml (this configuration, resolved)."
        },
    )
    save_video: bool = field(
        default=False, metadata={"help": "Also write the video with the tracks drawn on it."}
    )
    batch_size: int = field(
        default=1,
        metadata={
            "ge": 1,
            "le": 64,
            "help": "Consecutive frames per detector call. Larger batches pay off on a GPU; on a "
            "CPU they mostly add latency.",
        },
    )
    max_frames: int | None = field(
        default=None,
        metadata={"ge": 1, "help": "Stop after this many frames (default: the whole video)."},
    )
