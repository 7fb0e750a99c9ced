"""The matcher's gallery as data: what a restarted matcher needs to make the same decisions.

    GalleryState
      head          id prefix, next id number, stream time, model and embedding size
      tracklets     (camera id, tracklet id) -> TrackletState (running sum of its unit clip
                    vectors, span, open)
      identities    global id -> IdentityState (serial, row of the matrix, members in join order)

`Matcher.take_changes` returns the tracklets and identities that changed since its last call
(None for those that are gone), `pipeline.matching.changelog` keeps them in a compacted topic,
and `Matcher.load` rebuilds a gallery from the state read back. Members keep their order and
identities their rows, so that the rebuilt identity vectors are the same floats, summed in the
same order, and candidates come out of the matrix product in the same order: the decisions
after a restore are those the matcher would have made had it never stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["GalleryHead", "GalleryState", "IdentityState", "TrackletState"]


@dataclass(frozen=True)
class TrackletState:
    """One tracklet as the gallery holds it.

    Attributes:
        total: (D,) float32 sum of the tracklet's unit clip embeddings.
        open: No `TrackletClosed` yet: it may still be in view.
    """

    tracklet_id: str
    camera_id: str
    track_id: int
    start_time: float
    end_time: float
    total: np.ndarray
    open: bool


@dataclass(frozen=True)
class IdentityState:
    """One global identity: its creation serial, its row of the gallery matrix and its member
    tracklets, (camera id, tracklet id), in the order they joined (the order their vectors are
    summed in)."""

    global_id: str
    serial: int
    slot: int
    members: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class GalleryHead:
    """The gallery's scalars: how the next global id is made, the stream time, and the model
    its vectors come from (None before the first embedding)."""

    id_prefix: str
    next_id: int
    now: float
    model: str | None
    dim: int | None


@dataclass
class GalleryState:
    """A gallery (or the changes to one: a None value is a tracklet or identity that is gone)."""

    head: GalleryHead
    tracklets: dict[tuple[str, str], TrackletState | None] = field(default_factory=dict)
    identities: dict[str, IdentityState | None] = field(default_factory=dict)

    def __len__(self) -> int:
        """Tracklets and identities held (or changed)."""
        return len(self.tracklets) + len(self.identities)
