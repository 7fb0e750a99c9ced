"""Cross-camera matching: tracklet embeddings in, global identities (as identity links) out.

    ClipEmbedding batch ──▶ Matcher.update
      each tracklet's embedding = mean of its (unit) clip embeddings, renormalised
      candidates = the tracklets that got a clip in this batch
      identities = global ids, each the mean of its member tracklets' embeddings
      a tracklet is in view from its first box until its TrackletClosed (`close`) says when it
        was last seen: until then it may still be on camera
      score(candidate, identity) = cosine(tracklet, identity without the tracklet itself)
        allowed only if >= threshold and the constraints hold:
          * two tracklets overlapping in time on one camera are never one person
          * one person is never on two cameras at once, unless the cameras overlap
          * optional camera-to-camera transit windows for consecutive sightings
      Hungarian assignment (scipy.optimize.linear_sum_assignment) of candidates to
        [joinable identities ... | one private column per candidate]
        private column = stay in the current identity (score + switch_margin) or be a new person
        (score = threshold); a joinable identity takes at most one new member per batch
      ──▶ one IdentityLink per candidate (its global id, possibly changed, and its similarity)
    identities unseen for ttl_s (stream time) are forgotten; beyond max_identities the one seen
    longest ago goes first

Identity vectors are kept as rows of one matrix, so a batch costs one matrix product with the
gallery. Stream time is the newest capture time seen, never the wall clock, so that a replay
decides exactly as the live run did.

Hand-written: the assignment is scipy's; the gallery, its constraints and its expiry are the
domain logic of this pipeline and exist in no library used here.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from pipeline.types import ClipEmbedding, IdentityLink, TrackletClosed

__all__ = ["Matcher", "Transition"]

log = logging.getLogger(__name__)

_INFEASIBLE = 1e9


@dataclass(frozen=True)
class Transition:
    """Transit time window from one camera to another (see `MatcherConfig.transitions`)."""

    source: str
    target: str
    min_s: float
    max_s: float


@dataclass
class _Tracklet:
    tracklet_id: str
    camera_id: str
    track_id: int
    start_time: float
    end_time: float
    total: np.ndarray  # (D,) sum of unit clip embeddings
    global_id: str | None = None
    open: bool = True  # no TrackletClosed yet: it may still be in view

    @property
    def vector(self) -> np.ndarray:
        return self.total / max(float(np.linalg.norm(self.total)), 1e-12)


@dataclass
class _Identity:
    global_id: str
    slot: int
    members: dict[str, _Tracklet] = field(default_factory=dict)

    @property
    def last_seen(self) -> float:
        return max(m.end_time for m in self.members.values())


class _Rows:
    """Identity vectors (sums of member tracklet vectors) as rows of a growing matrix."""

    def __init__(self, dim: int) -> None:
        self.sums = np.zeros((16, dim), np.float32)
        self.norms = np.zeros(16, np.float32)
        self.active = np.zeros(16, bool)
        self._free: list[int] = list(range(15, -1, -1))

    def add(self) -> int:
        if not self._free:
            n = len(self.active)
            self.sums = np.concatenate([self.sums, np.zeros_like(self.sums)])
            self.norms = np.concatenate([self.norms, np.zeros(n, np.float32)])
            self.active = np.concatenate([self.active, np.zeros(n, bool)])
            self._free = list(range(2 * n - 1, n - 1, -1))
        slot = self._free.pop()
        self.active[slot] = True
        return slot

    def remove(self, slot: int) -> None:
        self.active[slot] = False
        self.sums[slot] = 0.0
        self.norms[slot] = 0.0
        self._free.append(slot)

    def set(self, slot: int, total: np.ndarray) -> None:
        self.sums[slot] = total
        self.norms[slot] = np.linalg.norm(total)


class Matcher:
    """The global identity gallery.

    Args:
        threshold: Least cosine similarity to join an identity.
        switch_margin: How much more similar another identity must be for a linked tracklet to
            move to it (and how far below `threshold` its own may fall before it leaves).
        ttl_s: Identities unseen this long (stream time) are forgotten.
        max_identities: Gallery bound; the identity seen longest ago is forgotten first.
        overlapping_cameras: Groups of cameras whose views overlap.
        transitions: Transit windows between cameras (each applies one way).
        id_prefix: Prefix of new global ids (default: random, so that two matcher runs never
            hand out the same id).
        silent_tracklet_s: A tracklet counts as in view until its `TrackletClosed` comes, but
            one that sent no clip for this long (stream time) counts as ended at its last clip
            (its worker may have died before closing it).
    """

    def __init__(
        self,
        *,
        threshold: float = 0.6,
        switch_margin: float = 0.05,
        ttl_s: float = 600.0,
        max_identities: int = 10_000,
        overlapping_cameras: Iterable[Iterable[str]] = (),
        transitions: Iterable[Transition] = (),
        id_prefix: str | None = None,
        silent_tracklet_s: float = 30.0,
    ) -> None:
        self.threshold, self.switch_margin = threshold, switch_margin
        self.silent_tracklet_s = silent_tracklet_s
        self.ttl_s, self.max_identities = ttl_s, max_identities
        self._overlap = {
            frozenset((a, b)) for group in overlapping_cameras for a in group for b in group
        }
        self._windows = {(t.source, t.target): (t.min_s, t.max_s) for t in transitions}
        self.id_prefix = id_prefix or uuid.uuid4().hex[:8]
        self._next_id = 1
        self._tracklets: dict[str, _Tracklet] = {}
        self._identities: dict[str, _Identity] = {}
        self._rows: _Rows | None = None
        self.model: str | None = None
        self.now = float("-inf")

    # ------------------------------------------------------------------------------ queries

    @property
    def identities(self) -> int:
        """Global identities in the gallery."""
        return len(self._identities)

    @property
    def dim(self) -> int | None:
        """Size of the gallery's embeddings (None before the first)."""
        return None if self._rows is None else self._rows.sums.shape[1]

    def compatible(self, embedding: ClipEmbedding) -> bool:
        """Whether `embedding` can be compared with the gallery's (same model and size)."""
        return self._rows is None or (embedding.model, embedding.embedding.size) == (
            self.model,
            self.dim,
        )

    def global_id_of(self, tracklet_id: str) -> str | None:
        tracklet = self._tracklets.get(tracklet_id)
        return None if tracklet is None else tracklet.global_id

    # ----------------------------------------------------------------------------- updating

    def update(self, embeddings: Sequence[ClipEmbedding]) -> list[IdentityLink]:
        """Adds clip embeddings; returns one link per tracklet they belong to.

        Raises:
            ValueError: An embedding of another model or size than the first one seen (the
                gallery never compares embeddings of different models).
        """
        if not embeddings:
            return []
        candidates = self._absorb(embeddings)
        self.now = max(self.now, *(t.end_time for t in candidates))
        self._expire(keep={t.tracklet_id for t in candidates})
        links = self._assign(candidates)
        self._bound(keep={t.global_id for t in candidates})
        return links

    def _absorb(self, embeddings: Sequence[ClipEmbedding]) -> list[_Tracklet]:
        """Adds each clip to its tracklet's running mean; the tracklets touched, in order."""
        touched: dict[str, _Tracklet] = {}
        for e in embeddings:
            self._check_model(e)
            vector = e.embedding / max(float(np.linalg.norm(e.embedding)), 1e-12)
            tracklet = self._tracklets.get(e.tracklet_id)
            if tracklet is None:
                tracklet = self._tracklets[e.tracklet_id] = _Tracklet(
                    e.tracklet_id,
                    e.camera_id,
                    e.track_id,
                    e.tracklet_start,
                    e.end_time,
                    vector.copy(),
                )
            else:
                tracklet.total = tracklet.total + vector
                tracklet.start_time = min(tracklet.start_time, e.tracklet_start)
                tracklet.end_time = max(tracklet.end_time, e.end_time)
            touched[e.tracklet_id] = tracklet
        for tracklet in touched.values():  # members' new vectors and spans count from now on
            if tracklet.global_id is not None:
                self._refresh(self._identities[tracklet.global_id])
        return list(touched.values())

    def _check_model(self, e: ClipEmbedding) -> None:
        if self._rows is None:
            self.model, self._rows = e.model, _Rows(e.embedding.size)
        elif not self.compatible(e):
            raise ValueError(
                f"embedding of model {e.model!r} ({e.embedding.size}-d) from {e.camera_id}: the "
                f"gallery holds {self.model!r} ({self._rows.sums.shape[1]}-d) embeddings, which "
                f"cannot be compared with it"
            )

    # --------------------------------------------------------------------------- assignment

    def _assign(self, candidates: list[_Tracklet]) -> list[IdentityLink]:
        assert self._rows is not None
        k = len(candidates)
        vectors = np.stack([t.vector for t in candidates])  # (k, D)
        active = np.flatnonzero(self._rows.active)
        norms = np.maximum(self._rows.norms[active], 1e-12)
        sims = vectors @ self._rows.sums[active].T / norms  # (k, identities)
        # An identity made only of this batch's candidates is being decided itself: joining it
        # could leave it empty under the joiner (two lone tracklets swapping ids).
        deciding = {t.tracklet_id for t in candidates}
        slot_to_id = {
            identity.slot: gid
            for gid, identity in self._identities.items()
            if identity.members.keys() - deciding
        }
        joins: list[tuple[int, str, float]] = []  # (row, global id, similarity)
        stays: list[bool] = []
        private = np.empty(k)
        for i, tracklet in enumerate(candidates):
            own = self._own_similarity(tracklet)
            stays.append(own is not None and own >= self.threshold - self.switch_margin)
            private[i] = own + self.switch_margin if stays[i] else self.threshold
            for c in np.flatnonzero(sims[i] >= self.threshold).tolist():
                gid = slot_to_id.get(int(active[c]))
                if gid not in (None, tracklet.global_id) and self._allowed(tracklet, gid):
                    joins.append((i, gid, float(sims[i, c])))
        columns = list(dict.fromkeys(gid for _, gid, _ in joins))
        index = {gid: c for c, gid in enumerate(columns)}
        scores = np.full((k, len(columns) + k), -_INFEASIBLE)
        for i, gid, similarity in joins:
            scores[i, index[gid]] = similarity
        scores[np.arange(k), len(columns) + np.arange(k)] = private
        links = []
        for i, c in zip(*linear_sum_assignment(-scores), strict=True):
            tracklet = candidates[i]
            if c < len(columns):
                self._move(tracklet, columns[c])  # joins another identity
            elif not stays[i] and (
                tracklet.global_id is None or self._own_similarity(tracklet) is not None
            ):  # a new person, or one that no longer looks like the others of its identity
                self._move(tracklet, self._new_identity())
            links.append(self._link(tracklet))
        return links

    def _own_similarity(self, tracklet: _Tracklet) -> float | None:
        """Cosine between the tracklet and its identity without it; None if it is alone."""
        if tracklet.global_id is None:
            return None
        identity = self._identities[tracklet.global_id]
        if len(identity.members) < 2:
            return None
        assert self._rows is not None
        rest = self._rows.sums[identity.slot] - tracklet.vector
        return float(rest @ tracklet.vector / max(float(np.linalg.norm(rest)), 1e-12))

    def _span(self, tracklet: _Tracklet) -> tuple[float, float]:
        """(first, last) capture time the tracklet may be in view: up to now while it is open."""
        end = tracklet.end_time
        if tracklet.open and self.now - end <= self.silent_tracklet_s:
            end = max(end, self.now)
        return tracklet.start_time, end

    def _allowed(self, tracklet: _Tracklet, global_id: str) -> bool:
        """Whether the constraints let `tracklet` be the person of `global_id`."""
        start, end = self._span(tracklet)
        before: tuple[float, _Tracklet] | None = None  # (end, sighting) just before
        after: tuple[float, _Tracklet] | None = None  # (start, sighting) just after
        for m in self._identities[global_id].members.values():
            if m.tracklet_id == tracklet.tracklet_id:
                continue
            m_start, m_end = self._span(m)
            if m_start <= end and start <= m_end:
                if m.camera_id == tracklet.camera_id:
                    return False  # two people on one camera at once
                if frozenset((m.camera_id, tracklet.camera_id)) not in self._overlap:
                    return False  # one person in two places at once
            elif m_end < start:
                before = max(before, (m_end, m), key=lambda x: x[0]) if before else (m_end, m)
            else:
                after = min(after, (m_start, m), key=lambda x: x[0]) if after else (m_start, m)
        if before is not None and not self._transit_ok(before[1], start - before[0], tracklet):
            return False
        return after is None or self._transit_ok(tracklet, after[0] - end, after[1])

    def _transit_ok(self, first: _Tracklet, gap: float, second: _Tracklet) -> bool:
        """Whether `gap` seconds from leaving `first`'s camera to `second`'s fits its window."""
        window = self._windows.get((first.camera_id, second.camera_id))
        if window is None or first.camera_id == second.camera_id:
            return True
        return window[0] <= gap <= window[1]

    def close(self, closed: Iterable[TrackletClosed]) -> None:
        """Tracklets that ended: from now on each counts as seen until its last box only."""
        for event in closed:
            tracklet = self._tracklets.get(event.tracklet_id)
            if tracklet is not None:  # None: it never produced a clip, or it expired
                tracklet.open = False
                tracklet.end_time = max(tracklet.end_time, event.last_seen)

    # ----------------------------------------------------------------------- bookkeeping

    def _new_identity(self) -> str:
        assert self._rows is not None
        gid = f"{self.id_prefix}-{self._next_id}"
        self._next_id += 1
        self._identities[gid] = _Identity(gid, self._rows.add())
        return gid

    def _move(self, tracklet: _Tracklet, global_id: str) -> None:
        if tracklet.global_id is not None:
            old = self._identities[tracklet.global_id]
            del old.members[tracklet.tracklet_id]
            self._refresh(old)
        tracklet.global_id = global_id
        identity = self._identities[global_id]
        identity.members[tracklet.tracklet_id] = tracklet
        self._refresh(identity)

    def _refresh(self, identity: _Identity) -> None:
        assert self._rows is not None
        if not identity.members:
            self._drop(identity)
            return
        total = np.sum([m.vector for m in identity.members.values()], axis=0)
        self._rows.set(identity.slot, total)

    def _drop(self, identity: _Identity) -> None:
        assert self._rows is not None
        self._rows.remove(identity.slot)
        del self._identities[identity.global_id]
        for tracklet_id in identity.members:
            self._tracklets.pop(tracklet_id, None)

    def _expire(self, *, keep: set[str]) -> None:
        horizon = self.now - self.ttl_s
        for identity in list(self._identities.values()):
            if identity.last_seen < horizon and not keep & identity.members.keys():
                log.debug(
                    "identity %s expired (last seen %.1f s ago)",
                    identity.global_id,
                    self.now - identity.last_seen,
                )
                self._drop(identity)

    def _bound(self, *, keep: set[str | None]) -> None:
        excess = len(self._identities) - self.max_identities
        if excess <= 0:
            return
        oldest = sorted(
            (i for i in self._identities.values() if i.global_id not in keep),
            key=lambda i: i.last_seen,
        )
        for identity in oldest[:excess]:
            self._drop(identity)
        log.info(
            "gallery full: forgot the %d identities seen longest ago", min(excess, len(oldest))
        )

    def _link(self, tracklet: _Tracklet) -> IdentityLink:
        assert tracklet.global_id is not None
        similarity = self._own_similarity(tracklet)
        return IdentityLink(
            global_id=tracklet.global_id,
            camera_id=tracklet.camera_id,
            track_id=tracklet.track_id,
            tracklet_id=tracklet.tracklet_id,
            start_time=tracklet.start_time,
            end_time=tracklet.end_time,
            similarity=None if similarity is None else float(np.clip(similarity, -1.0, 1.0)),
        )
