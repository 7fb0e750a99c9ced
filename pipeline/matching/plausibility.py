"""What the matcher accepts from the embeddings topic beyond the schema: plausible values only.

    ClipEmbedding | TrackletClosed ─▶ Plausibility.check(item, clock)
      model and dimension  equal to the configured ones                  else wrong_model
      embedding length     1 +- norm_tolerance (workers send unit vectors) else implausible_value
      capture times        within [clock - max_behind_s, clock + max_ahead_s] else implausible_time
    clock = the later of the wall clock and the newest capture time the matcher matched

Anyone who can write to the topic can send a well-formed record; these checks keep such a record
from steering the gallery: an end time far in the future would move stream time on and expire
every identity, an embedding of another model sent first would decide the gallery's model, a
1e20 vector would overflow to a zero identity. The clock follows the wall clock so that the very
first record is checked too, and the matched stream time so that workers replaying files ahead of
the wall clock are not rejected for it.
"""

from __future__ import annotations

import logging

import numpy as np

from pipeline.messages.encoding import MessageError
from pipeline.messages.types import ClipEmbedding, TrackletClosed

__all__ = ["Plausibility"]

log = logging.getLogger(__name__)


class Plausibility:
    """The matcher's bounds on the records it matches.

    Args:
        model: The model name embeddings must carry.
        dim: Their size; None takes the size of the first embedding of `model` (logged).
        max_ahead_s: How far ahead of the clock a capture time may be.
        max_behind_s: How far behind it.
        norm_tolerance: How far from 1 an embedding's length may be.
    """

    def __init__(
        self,
        model: str,
        dim: int | None = None,
        *,
        max_ahead_s: float = 120.0,
        max_behind_s: float = 604_800.0,
        norm_tolerance: float = 0.01,
    ) -> None:
        self.model, self.dim = model, dim
        self.max_ahead_s, self.max_behind_s = max_ahead_s, max_behind_s
        self.norm_tolerance = norm_tolerance

    def check(self, item: ClipEmbedding | TrackletClosed, clock: float) -> None:
        """Raises `MessageError` (with its reason) unless `item` is plausible at `clock`."""
        if isinstance(item, TrackletClosed):
            self._check_times(clock, item.last_seen, item.last_seen)
            return
        self._check_model(item)
        norm = float(np.linalg.norm(item.embedding.astype(np.float64)))
        if not abs(norm - 1.0) <= self.norm_tolerance:
            raise MessageError(
                f"embedding of length {norm:.6g}: expected 1 +- {self.norm_tolerance} "
                f"(matcher.norm_tolerance)",
                reason="implausible_value",
            )
        self._check_times(clock, item.tracklet_start, item.end_time)
        if self.dim is None:
            self.dim = item.embedding.size
            log.info(
                "matcher: embeddings of %s are %d-d (from the first one; matcher.embedding_dim "
                "pins it)",
                self.model,
                self.dim,
            )

    def _check_model(self, item: ClipEmbedding) -> None:
        size = item.embedding.size
        if item.model != self.model or (self.dim is not None and size != self.dim):
            expected = f"{self.dim}-d" if self.dim is not None else "any size"
            raise MessageError(
                f"embedding of model {item.model!r} ({size}-d) from {item.camera_id}: the "
                f"matcher takes {self.model!r} ({expected}; matcher.model, "
                f"matcher.embedding_dim)",
                reason="wrong_model",
            )

    def _check_times(self, clock: float, first: float, last: float) -> None:
        low, high = clock - self.max_behind_s, clock + self.max_ahead_s
        if first < low or last > high:
            raise MessageError(
                f"capture times {first:.3f}..{last:.3f} outside [{low:.3f}, {high:.3f}]: more "
                f"than matcher.max_behind_s = {self.max_behind_s:g} behind or "
                f"matcher.max_ahead_s = {self.max_ahead_s:g} ahead of the matcher's clock "
                f"{clock:.3f}",
                reason="implausible_time",
            )
