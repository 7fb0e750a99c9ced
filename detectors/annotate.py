"""Drawing tracked boxes on a frame, with Ultralytics' `Annotator` and colour palette.

Each track keeps one colour (Ultralytics' palette indexed by track id) and is labelled
``id <track> <confidence>``. Drawing is done with OpenCV (``pil=False``): the PIL path would look
for a font file and try to download it.
"""

from __future__ import annotations

import numpy as np

from detectors.detections import Detections

__all__ = ["draw_detections"]


def draw_detections(frame: np.ndarray, detections: Detections) -> np.ndarray:
    """A copy of `frame` with `detections` drawn on it.

    Args:
        frame: (H, W, 3) uint8 BGR image.
        detections: Boxes in `frame`'s pixels; labelled by track id when tracked, else by class.

    Returns:
        The annotated (H, W, 3) uint8 BGR image.
    """
    from ultralytics.utils.plotting import Annotator, colors  # imported here: it pulls in torch

    annotator = Annotator(np.ascontiguousarray(frame).copy(), pil=False)
    tracked = detections.tracker_id is not None
    keys = detections.tracker_id if tracked else detections.class_id
    for box, key, conf in zip(
        detections.xyxy.tolist(), keys.tolist(), detections.confidence.tolist(), strict=True
    ):
        label = f"{'id' if tracked else 'class'} {key} {conf:.2f}"
        annotator.box_label(box, label, color=colors(int(key), bgr=True))
    return annotator.result()
