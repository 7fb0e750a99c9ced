"""The messages the pipeline publishes and consumes, as validated frozen dataclasses.

    EmbedStage -ClipEmbedding, TrackletClosed-> Matcher -IdentityLink-> Publisher -> Kafka / JSONL
    (a worker publishes ClipEmbedding and TrackletClosed; `reidstream matcher` consumes them)

They need numpy only, so a consumer can use this package without torch or OpenCV (the stream's
own types, `Frame` and `Clip`, are in `pipeline.stream.types`). Array fields are stored as
read-only views. Each check names the field, what was expected and what was given; the checks
below are shared with the stream's types.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "CAMERA_ID_PATTERN",
    "ClipEmbedding",
    "IdentityLink",
    "TrackletClosed",
    "check_camera_id",
    "check_camera_key",
    "check_finite",
    "check_integer",
    "check_text",
    "set_fields",
]

#: Camera ids appear in Kafka keys, metric labels and file names, so they are kept to a safe set.
CAMERA_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}")
CAMERA_ID_RULE = (
    "1-128 characters of letters, digits, '_', '.', '-' starting with a letter or digit"
)

# Namespaces of the deterministic event ids (uuid5) of identity links and clip embeddings.
_LINK_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://reidstream/identity_link")
_EMBEDDING_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://reidstream/tracklet_embedding")


def check_camera_id(owner: str, value: Any) -> str:
    """`owner.camera_id` of a message or a stream type, checked against `CAMERA_ID_PATTERN`."""
    if not isinstance(value, str) or not CAMERA_ID_PATTERN.fullmatch(value):
        raise ValueError(f"{owner}.camera_id: expected {CAMERA_ID_RULE}, got {value!r}")
    return value


def check_camera_key(key: str, value: str) -> None:
    """A camera id given in the configuration under `key`, checked the same way."""
    if not CAMERA_ID_PATTERN.fullmatch(value):
        raise ValueError(f"{key} = {value!r}: expected {CAMERA_ID_RULE}")


def check_integer(name: str, value: Any, *, minimum: int | None = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)


def check_finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value}")
    return float(value)


def check_text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name}: expected a non-empty string, got {value!r}")
    return value


def set_fields(obj: object, **values: Any) -> None:
    for name, value in values.items():
        object.__setattr__(obj, name, value)


def _embedding(name: str, value: Any) -> np.ndarray:
    """A (D,) float32 finite vector, as a read-only view (integers and floats are converted).

    `detectors.check_array`'s rules for this one column, with its messages: importing
    `detectors` would load OpenCV and torch, which a consumer of the messages must not need.
    """
    array = np.asarray(value)
    if array.dtype.kind not in "iuf":
        raise TypeError(f"{name}: expected dtype float32, got {array.dtype}")
    if array.ndim != 1:
        raise ValueError(f"{name}: expected shape (any,), got {array.shape}")
    array = array.astype(np.float32, copy=False).view()
    if not np.isfinite(array).all():
        bad = int(np.argwhere(~np.isfinite(array))[0][0])
        raise ValueError(f"{name}: expected finite values, got {array[bad]} at ({bad},)")
    array.flags.writeable = False
    return array


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
        embedding = _embedding("ClipEmbedding.embedding", self.embedding)
        if embedding.size == 0 or not np.any(embedding):
            raise ValueError(
                f"ClipEmbedding.embedding: expected a non-empty, non-zero vector, "
                f"got shape {embedding.shape} with norm {float(np.linalg.norm(embedding))}"
            )
        set_fields(
            self,
            camera_id=check_camera_id("ClipEmbedding", self.camera_id),
            track_id=check_integer("ClipEmbedding.track_id", self.track_id),
            tracklet_id=check_text("ClipEmbedding.tracklet_id", self.tracklet_id),
            start_frame=check_integer("ClipEmbedding.start_frame", self.start_frame),
            end_frame=check_integer("ClipEmbedding.end_frame", self.end_frame),
            start_time=check_finite("ClipEmbedding.start_time", self.start_time),
            end_time=check_finite("ClipEmbedding.end_time", self.end_time),
            embedding=embedding,
            model=check_text("ClipEmbedding.model", self.model),
            tracklet_start=check_finite(
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


@dataclass(frozen=True)
class TrackletClosed:
    """The end of a tracklet: its track was lost, its camera went silent, or the stream ended.

    Until it comes, the matcher treats the tracklet as still in view (one person cannot be
    elsewhere meanwhile); after it, as seen from its first to its last box.

    Attributes:
        camera_id: Camera of the tracklet.
        track_id: Single-camera track id.
        tracklet_id: The tracklet that ended.
        last_seen: Capture time of its last detected box.
    """

    camera_id: str
    track_id: int
    tracklet_id: str
    last_seen: float

    def __post_init__(self) -> None:
        set_fields(
            self,
            camera_id=check_camera_id("TrackletClosed", self.camera_id),
            track_id=check_integer("TrackletClosed.track_id", self.track_id),
            tracklet_id=check_text("TrackletClosed.tracklet_id", self.tracklet_id),
            last_seen=check_finite("TrackletClosed.last_seen", self.last_seen),
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
        best_similarity: Cosine similarity between the tracklet and the most similar identity
            other than the one it was in before this decision, whether it joined it or not
            (for a new identity: the best candidate, refused); None when the gallery held no
            other identity (or, with `matcher.index = faiss`, none above the threshold).
        best_candidate: The global id of that identity; None with `best_similarity`.
    """

    global_id: str
    camera_id: str
    track_id: int
    tracklet_id: str
    start_time: float
    end_time: float
    similarity: float | None = None
    best_similarity: float | None = None
    best_candidate: str | None = None

    def __post_init__(self) -> None:
        if (self.best_similarity is None) != (self.best_candidate is None):
            raise ValueError(
                "IdentityLink: expected best_similarity and best_candidate both set or both None, "
                f"got {self.best_similarity!r} and {self.best_candidate!r}"
            )
        set_fields(
            self,
            global_id=check_text("IdentityLink.global_id", self.global_id),
            camera_id=check_camera_id("IdentityLink", self.camera_id),
            track_id=check_integer("IdentityLink.track_id", self.track_id),
            tracklet_id=check_text("IdentityLink.tracklet_id", self.tracklet_id),
            start_time=check_finite("IdentityLink.start_time", self.start_time),
            end_time=check_finite("IdentityLink.end_time", self.end_time),
            similarity=_cosine("similarity", self.similarity),
            best_similarity=_cosine("best_similarity", self.best_similarity),
            best_candidate=None
            if self.best_candidate is None
            else check_text("IdentityLink.best_candidate", self.best_candidate),
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


def _cosine(name: str, value: float | None) -> float | None:
    """A link's cosine similarity: None, or finite and in [-1, 1]."""
    if value is None:
        return None
    value = check_finite(f"IdentityLink.{name}", value)
    if not -1.0 - 1e-6 <= value <= 1.0 + 1e-6:
        raise ValueError(f"IdentityLink.{name}: expected a value in [-1, 1], got {value}")
    return value
