"""The stream's own types: a camera's `Frame` and a tracked person's `Clip`.

    CameraSource -Frame-> DetectStage -Detections-> TrackletBuilder -Clip-> EmbedStage

`Detections` belongs to `detectors` (detectors and trackers produce it without knowing the
pipeline); what leaves the stream (`ClipEmbedding`, `TrackletClosed`, `IdentityLink`) is in
`pipeline.messages.types`. Images are BGR, in OpenCV's channel order, as decoded; the ReID engines
convert to the model's order. Array fields are stored as read-only views, so a stage cannot edit
what another stage still holds. Each check names the field, what was expected and what was given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from detectors import Detections, check_array
from pipeline.messages.types import (
    ClipEmbedding,
    check_camera_id,
    check_finite,
    check_integer,
    check_text,
    set_fields,
)

__all__ = ["Clip", "Frame"]


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded image of one camera.

    Attributes:
        camera_id: Camera the frame comes from (see `CAMERA_ID_PATTERN`).
        index: 0-based position of the frame in the camera's stream.
        timestamp: Capture time in seconds since the Unix epoch (for a file: its start time plus
            the frame's presentation time).
        image: (H, W, 3) uint8 BGR image.
        detections: People the source itself reports in this frame (the synthetic scene's
            noisy ground truth), used instead of running the detector; None for cameras.
    """

    camera_id: str
    index: int
    timestamp: float
    image: np.ndarray
    detections: Detections | None = None

    def __post_init__(self) -> None:
        set_fields(
            self,
            camera_id=check_camera_id("Frame", self.camera_id),
            index=check_integer("Frame.index", self.index),
            timestamp=check_finite("Frame.timestamp", self.timestamp),
            image=check_array("Frame.image", self.image, shape=(None, None, 3), dtype=np.uint8),
        )
        if self.image.shape[0] == 0 or self.image.shape[1] == 0:
            raise ValueError(
                f"Frame.image: expected a non-empty image, got shape {self.image.shape}"
            )
        if self.detections is not None and not isinstance(self.detections, Detections):
            raise TypeError(
                f"Frame.detections: expected Detections or None, got "
                f"{type(self.detections).__name__}"
            )

    @property
    def height(self) -> int:
        return self.image.shape[0]

    @property
    def width(self) -> int:
        return self.image.shape[1]


@dataclass(frozen=True, eq=False)
class Clip:
    """`T` consecutive crops of one tracked person, the input of the ReID model.

    Attributes:
        camera_id: Camera of the track.
        track_id: The single-camera tracker's id of the person.
        tracklet_id: Unique id of the tracklet (one uninterrupted stretch of a track) the clip
            belongs to; every clip of a tracklet carries the same id.
        frame_indices: (T,) int64 frame index of each crop, non-decreasing: a crop repeats
            (with its index) where a tracklet shorter than T is looped to T frames.
        timestamps: (T,) float64 capture times in seconds, non-decreasing.
        boxes: (T, 4) float32 xyxy boxes of the crops in frame pixels.
        crops: (T, H, W, 3) uint8 BGR crops, resized to one size.
        tracklet_start: Capture time of the tracklet's first tracked box (which may precede
            its first crop); None: the clip's first timestamp.
    """

    camera_id: str
    track_id: int
    tracklet_id: str
    frame_indices: np.ndarray
    timestamps: np.ndarray
    boxes: np.ndarray
    crops: np.ndarray
    tracklet_start: float | None = None

    def __post_init__(self) -> None:
        crops = check_array("Clip.crops", self.crops, shape=(None, None, None, 3), dtype=np.uint8)
        t = len(crops)
        if t == 0 or crops.shape[1] == 0 or crops.shape[2] == 0:
            raise ValueError(f"Clip.crops: expected at least one non-empty crop, got {crops.shape}")
        frame_indices = check_array(
            "Clip.frame_indices", self.frame_indices, shape=(t,), dtype=np.int64
        )
        timestamps = check_array(
            "Clip.timestamps", self.timestamps, shape=(t,), dtype=np.float64, finite=True
        )
        boxes = check_array("Clip.boxes", self.boxes, shape=(t, 4), dtype=np.float32, finite=True)
        if (np.diff(frame_indices) < 0).any() or frame_indices[0] < 0:
            raise ValueError(
                f"Clip.frame_indices: expected non-decreasing indices >= 0, "
                f"got {frame_indices.tolist()}"
            )
        if (np.diff(timestamps) < 0).any():
            raise ValueError(
                f"Clip.timestamps: expected non-decreasing times, got {timestamps.tolist()}"
            )
        start = timestamps[0] if self.tracklet_start is None else self.tracklet_start
        start = check_finite("Clip.tracklet_start", start)
        if start > timestamps[0]:
            raise ValueError(
                f"Clip.tracklet_start: expected at most the first timestamp {timestamps[0]}, "
                f"got {start}"
            )
        set_fields(
            self,
            camera_id=check_camera_id("Clip", self.camera_id),
            track_id=check_integer("Clip.track_id", self.track_id),
            tracklet_id=check_text("Clip.tracklet_id", self.tracklet_id),
            frame_indices=frame_indices,
            timestamps=timestamps,
            boxes=boxes,
            crops=crops,
            tracklet_start=start,
        )

    def __len__(self) -> int:
        return len(self.crops)

    @property
    def start_time(self) -> float:
        return float(self.timestamps[0])

    @property
    def end_time(self) -> float:
        return float(self.timestamps[-1])

    def to_embedding(self, embedding: np.ndarray, *, model: str) -> ClipEmbedding:
        """The message carrying this clip's `embedding` (D,), its identity and its time span."""
        return ClipEmbedding(
            camera_id=self.camera_id,
            track_id=self.track_id,
            tracklet_id=self.tracklet_id,
            start_frame=int(self.frame_indices[0]),
            end_frame=int(self.frame_indices[-1]),
            start_time=self.start_time,
            end_time=self.end_time,
            embedding=embedding,
            model=model,
            tracklet_start=self.tracklet_start,
        )
