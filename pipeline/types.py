"""The messages passed between the pipeline's stages, as validated frozen dataclasses.

    CameraSource -Frame-> DetectStage -Detections-> TrackletBuilder -Clip, TrackletClosed->
      EmbedStage -ClipEmbedding, TrackletClosed-> Matcher -IdentityLink-> Publisher

`Detections` belongs to `detectors` (detectors and trackers produce it without knowing the
pipeline); the others are the pipeline's own. Images are BGR, in OpenCV's channel order, as
decoded; the ReID engines convert to the model's order. Array fields are stored as read-only views,
so a stage cannot edit what another stage still holds. Each check names the field, what was
expected and what was given.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors import Detections, check_array

__all__ = [
    "CAMERA_ID_PATTERN",
    "Clip",
    "ClipEmbedding",
    "Frame",
    "IdentityLink",
    "TrackletClosed",
]

#: Camera ids appear in Kafka keys, metric labels and file names, so they are kept to a safe set.
CAMERA_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")

# Namespaces of the deterministic event ids (uuid5) of identity links and clip embeddings.
_LINK_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://reidstream/identity_link")
_EMBEDDING_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://reidstream/tracklet_embedding")


def _camera_id(owner: str, value: Any) -> str:
    if not isinstance(value, str) or not CAMERA_ID_PATTERN.fullmatch(value):
        raise ValueError(
            f"{owner}.camera_id: expected 1-128 characters of letters, digits, '_', '.', '-' "
            f"starting with a letter or digit, got {value!r}"
        )
    return value


def _integer(name: str, value: Any, *, minimum: int | None = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)


def _finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value}")
    return float(value)


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name}: expected a non-empty string, got {value!r}")
    return value


def _set(obj: object, **values: Any) -> None:
    for name, value in values.items():
        object.__setattr__(obj, name, value)


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
        _set(
            self,
            camera_id=_camera_id("Frame", self.camera_id),
            index=_integer("Frame.index", self.index),
            timestamp=_finite("Frame.timestamp", self.timestamp),
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
        start = _finite("Clip.tracklet_start", start)
        if start > timestamps[0]:
            raise ValueError(
                f"Clip.tracklet_start: expected at most the first timestamp {timestamps[0]}, "
                f"got {start}"
            )
        _set(
            self,
            camera_id=_camera_id("Clip", self.camera_id),
            track_id=_integer("Clip.track_id", self.track_id),
            tracklet_id=_text("Clip.tracklet_id", self.tracklet_id),
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


@dataclass(frozen=True, eq=False)
class ClipEmbedding:
    """The ReID model's embedding of one `Clip`.

    Attributes:
        camera_id: Camera of the clip.
        track_id: Single-camera track id of the clip.
        tracklet_id: Tracklet of the clip.
        start_frame: Index of the clip's first frame.
        end_frame: Index of the clip's last frame (inclusive).
        start_time: Capture time of the first frame, in seconds.
        end_time: Capture time of the last frame, in seconds.
        embedding: (D,) float32 finite, non-zero vector.
        model: Name of the model that produced it; embeddings of different models are never
            compared.
        tracklet_start: Capture time of the tracklet's first tracked box; None: `start_time`.
    """

    camera_id: str
    track_id: int
    tracklet_id: str
    start_frame: int
    end_frame: int
    start_time: float
    end_time: float
    embedding: np.ndarray
    model: str
    tracklet_start: float | None = None

    def __post_init__(self) -> None:
        embedding = check_array(
            "ClipEmbedding.embedding", self.embedding, shape=(None,), dtype=np.float32, finite=True
        )
        if embedding.size == 0 or not np.any(embedding):
            raise ValueError(
                f"ClipEmbedding.embedding: expected a non-empty, non-zero vector, "
                f"got shape {embedding.shape} with norm {float(np.linalg.norm(embedding))}"
            )
        _set(
            self,
            camera_id=_camera_id("ClipEmbedding", self.camera_id),
            track_id=_integer("ClipEmbedding.track_id", self.track_id),
            tracklet_id=_text("ClipEmbedding.tracklet_id", self.tracklet_id),
            start_frame=_integer("ClipEmbedding.start_frame", self.start_frame),
            end_frame=_integer("ClipEmbedding.end_frame", self.end_frame),
            start_time=_finite("ClipEmbedding.start_time", self.start_time),
            end_time=_finite("ClipEmbedding.end_time", self.end_time),
            embedding=embedding,
            model=_text("ClipEmbedding.model", self.model),
            tracklet_start=_finite(
                "ClipEmbedding.tracklet_start",
                self.start_time if self.tracklet_start is None else self.tracklet_start,
            ),
        )
        if self.tracklet_start > self.start_time:
            raise ValueError(
                f"ClipEmbedding.tracklet_start: expected at most start_time {self.start_time}, "
                f"got {self.tracklet_start}"
            )
        if self.end_frame < self.start_frame or self.end_time < self.start_time:
            raise ValueError(
                f"ClipEmbedding: expected start <= end, got frames {self.start_frame}..."
                f"{self.end_frame} and times {self.start_time}...{self.end_time}"
            )

    @property
    def event_id(self) -> str:
        """Deterministic id of this clip's embedding (its tracklet and frame span)."""
        name = f"{self.tracklet_id}\x1f{self.start_frame}\x1f{self.end_frame}"
        return str(uuid.uuid5(_EMBEDDING_NAMESPACE, name))

    @classmethod
    def from_clip(cls, clip: Clip, embedding: np.ndarray, *, model: str) -> ClipEmbedding:
        """The embedding of `clip`, carrying the clip's identity and time span."""
        return cls(
            camera_id=clip.camera_id,
            track_id=clip.track_id,
            tracklet_id=clip.tracklet_id,
            start_frame=int(clip.frame_indices[0]),
            end_frame=int(clip.frame_indices[-1]),
            start_time=clip.start_time,
            end_time=clip.end_time,
            embedding=embedding,
            model=model,
            tracklet_start=clip.tracklet_start,
        )


@dataclass(frozen=True)
class TrackletClosed:
    """The end of a tracklet: its track was lost, its camera went silent, or the stream ended.

    Until it comes, the matcher treats the tracklet as still in view (one person cannot be
    elsewhere meanwhile); after it, as seen from its first to its last box.

    Attributes:
        camera_id: Camera of the tracklet.
        track_id: Single-camera track id.
        tracklet_id: The tracklet that ended.
        last_seen: Capture time of its last tracked box.
    """

    camera_id: str
    track_id: int
    tracklet_id: str
    last_seen: float

    def __post_init__(self) -> None:
        _set(
            self,
            camera_id=_camera_id("TrackletClosed", self.camera_id),
            track_id=_integer("TrackletClosed.track_id", self.track_id),
            tracklet_id=_text("TrackletClosed.tracklet_id", self.tracklet_id),
            last_seen=_finite("TrackletClosed.last_seen", self.last_seen),
        )

    @property
    def event_id(self) -> str:
        """Deterministic id of this event (the tracklet ends once)."""
        return str(uuid.uuid5(_EMBEDDING_NAMESPACE, f"{self.tracklet_id}\x1fclosed"))


@dataclass(frozen=True)
class IdentityLink:
    """The matcher's decision that a tracklet is a global identity, as published to consumers.

    A tracklet is linked again as it grows, each time with a later `end_time`; consumers keep the
    latest link per `tracklet_id`. Delivery is at-least-once: `event_id` is derived from the
    link's content, so a re-sent link has the same id and consumers can drop duplicates.

    Attributes:
        global_id: Cross-camera identity.
        camera_id: Camera of the tracklet.
        track_id: Single-camera track id of the tracklet.
        tracklet_id: The tracklet linked.
        start_time: First capture time of the tracklet, in seconds since the Unix epoch.
        end_time: Last capture time the decision rests on.
        similarity: Cosine similarity between the tracklet and the identity it was matched to, in
            [-1, 1]; None when no identity matched and `global_id` is new.
    """

    global_id: str
    camera_id: str
    track_id: int
    tracklet_id: str
    start_time: float
    end_time: float
    similarity: float | None = None

    def __post_init__(self) -> None:
        similarity = self.similarity
        if similarity is not None:
            similarity = _finite("IdentityLink.similarity", similarity)
            if not -1.0 - 1e-6 <= similarity <= 1.0 + 1e-6:
                raise ValueError(
                    f"IdentityLink.similarity: expected a value in [-1, 1], got {similarity}"
                )
        _set(
            self,
            global_id=_text("IdentityLink.global_id", self.global_id),
            camera_id=_camera_id("IdentityLink", self.camera_id),
            track_id=_integer("IdentityLink.track_id", self.track_id),
            tracklet_id=_text("IdentityLink.tracklet_id", self.tracklet_id),
            start_time=_finite("IdentityLink.start_time", self.start_time),
            end_time=_finite("IdentityLink.end_time", self.end_time),
            similarity=similarity,
        )
        if self.end_time < self.start_time:
            raise ValueError(
                f"IdentityLink: expected start_time <= end_time, "
                f"got {self.start_time} > {self.end_time}"
            )

    @property
    def is_new_identity(self) -> bool:
        """Whether this link opened `global_id` rather than matched an existing identity."""
        return self.similarity is None

    @property
    def event_id(self) -> str:
        """Deterministic id of this link: the same decision always has the same id."""
        name = f"{self.global_id}\x1f{self.tracklet_id}\x1f{self.start_time!r}\x1f{self.end_time!r}"
        return str(uuid.uuid5(_LINK_NAMESPACE, name))
