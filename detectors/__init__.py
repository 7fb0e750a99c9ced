"""Person detectors and single-camera trackers, and the `Detections` type they exchange.

This package knows nothing of threads, queues, Kafka or Prometheus (see DESIGN.md): it turns
images into `Detections` and `Detections` into tracked `Detections`.
"""

from __future__ import annotations

import os

# Ultralytics checks the network and downloads missing weights and fonts on demand; reidstream
# loads only the weights it is given. Set before any `ultralytics` import; an explicit setting wins.
os.environ.setdefault("YOLO_OFFLINE", "1")

from detectors.detections import Detections, check_array

__all__ = ["Detections", "check_array"]
