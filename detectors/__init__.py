"""Person detectors and single-camera trackers, and the `Detections` type they exchange.

This package knows nothing of threads, queues, Kafka or Prometheus (see the README's Layout): it
turns images into `Detections` and `Detections` into tracked `Detections`.

    create_detector("onnx-yolo" | "ultralytics" | "openvino" | "hog", **options)
        .detect(frames)                                             -> [Detections]
    create_tracker("bytetrack" | "botsort", **options)
        .update(detections, frame)                                  -> Detections
"""

from __future__ import annotations

# The backends register themselves in `detectors.registry` when imported. Ultralytics checks the
# network, downloads missing weights and fonts on demand and unpickles .pt files with code
# execution: `safe_loading` sets YOLO_OFFLINE=1 and its restricted loading (no module here imports
# `ultralytics` at import time), and every Ultralytics load goes through it.
from detectors import (  # noqa: F401
    hog,
    onnx_yolo,
    openvino_ssd,
    safe_loading,
    trackers,
    ultralytics_yolo,
)
from detectors.base import Detector, DetectorError
from detectors.detections import Detections, check_array
from detectors.registry import create_detector, create_tracker, list_detectors, list_trackers
from detectors.trackers import CameraTrackers, Tracker

__all__ = [
    "CameraTrackers",
    "Detections",
    "Detector",
    "DetectorError",
    "Tracker",
    "check_array",
    "create_detector",
    "create_tracker",
    "list_detectors",
    "list_trackers",
]
