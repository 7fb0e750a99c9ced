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
      ──▶ one IdentityLink per candidate (its global id, possibly changed, its similarity, and
          the similarity of the most similar other identity, joined or not)
      ──▶ one Decision per candidate (`pipeline.matching.decisions`): its `top_k` most similar
          other identities, each accepted or refused with the reason (threshold, same_camera,
          two_places, transit, deciding, margin, outscored), logged at DEBUG, to `on_decisions`
    identities unseen for ttl_s (stream time) are forgotten; beyond max_identities the one seen
    longest ago goes first

Identity vectors are kept as the first rows of one matrix, so a batch costs one matrix product
with the gallery (a view, never a copy) and O(batch) Python: the identities above threshold
come out of the product in one `np.nonzero`, and expiry and the bound pop identities from a heap
keyed by when each was last seen, instead of visiting every identity each batch
(`reidstream bench matcher` measures it). Stream time is the newest capture time seen, never the
wall clock, so that a replay decides exactly as the live run did.

With ``index="faiss"`` the identities above threshold are proposed by a FAISS inverted-file
index (`pipeline.matching.gallery.FaissCandidates`) instead of the product with every row; the
similarities of the proposals are then recomputed from the matrix, so the index only decides
which identities are looked at. It is approximate, and exact is the default: on the benchmark's
galleries (random embeddings, 2 CPU cores) the index was faster than the product only at 100k
identities and there found 60-77% of the identities above threshold; probing enough lists to
find them all made it as slow as the product, and each training stalled the matcher for 10-30 s.

Hand-written: the assignment is scipy's and the index FAISS's; the gallery, its constraints and
its expiry are the domain logic of this pipeline and exist in no library used here.
"""

from __future__ import annotations

import heapq
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.optimize import linear_sum_assignment

from pipeline.matching.decisions import Candidate, Decision, Outcome
from pipeline.matching.gallery import FaissCandidates, GalleryRows, import_faiss
from pipeline.matching.state import GalleryHead, GalleryState, IdentityState, TrackletState
from pipeline.messages.types import ClipEmbedding, IdentityLink, TrackletClosed

__all__ = ["INDEX_KINDS", "IndexKind", "Matcher", "Transition", "match_in_order"]

log = logging.getLogger(__name__)

_INFEASIBLE = 1e9

#: How the matcher finds the identities above threshold (see `Matcher`).
IndexKind = Literal["exact", "faiss"]
INDEX_KINDS: tuple[str, ...] = ("exact", "faiss")


@dataclass(frozen=True)
class Transition:
    """Transit time window from one camera to another (see `MatcherConfig.transitions`)."""

    source: str
    target: str
    min_s: float
    max_s: float


#: A tracklet's key in the gallery: (camera id, tracklet id). Tracklet ids are unique per worker
#: (its random prefix), and a camera belongs to one worker; keyed by camera too, a tracklet id
#: that another camera sends (by mistake or on purpose) is another tracklet, never this one.
_Key = tuple[str, str]


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
    def key(self) -> _Key:
        return self.camera_id, self.tracklet_id

    @property
    def vector(self) -> np.ndarray:
        return self.total / max(float(np.linalg.norm(self.total)), 1e-12)


@dataclass
class _Identity:
    global_id: str
    serial: int  # creation order: breaks ties between identities last seen at the same time
    members: dict[_Key, _Tracklet] = field(default_factory=dict)
    queued: float | None = None  # last_seen of its newest entry in the expiry heap

    @property
    def last_seen(self) -> float:
        return max(m.end_time for m in self.members.values())


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
        index: How the identities above `threshold` are found: ``"exact"``, the product with
            every identity; ``"faiss"``, proposed by a FAISS inverted-file index
            (`FaissCandidates`; approximate, needs ``pip install 'reidstream[faiss]'``).
        nprobe: ``index="faiss"``: the inverted lists searched per query, of 4 sqrt(n) (64 of
            1265 at 100k identities: 2.5x faster than the product, 60-77% recall on random
            embeddings). More finds more of the identities above threshold and costs more.
        top_k: Candidates kept per decision (the most similar identities other than the
            tracklet's own; at least 1, the one whose similarity every link carries).
        on_decisions: Called with the decisions of each batch (`pipeline.matching.decisions`:
            counted per refusal reason, written to decisions.jsonl).

    Raises:
        ValueError: An unknown `index`.
        ImportError: ``index="faiss"`` without FAISS installed.
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
        index: IndexKind = "exact",
        nprobe: int = 64,
        top_k: int = 5,
        on_decisions: Callable[[list[Decision]], None] | None = None,
    ) -> None:
        if index not in INDEX_KINDS:
            raise ValueError(f"index: expected one of {', '.join(INDEX_KINDS)}, got {index!r}")
        if index == "faiss":
            import_faiss()  # fail at construction, not at the first embedding
        self.index, self.nprobe = index, nprobe
        self.top_k, self.on_decisions = max(1, top_k), on_decisions
        self.threshold, self.switch_margin = threshold, switch_margin
        self.silent_tracklet_s = silent_tracklet_s
        self.ttl_s, self.max_identities = ttl_s, max_identities
        self._overlap = {
            frozenset((a, b)) for group in overlapping_cameras for a in group for b in group
        }
        self._windows = {(t.source, t.target): (t.min_s, t.max_s) for t in transitions}
        self.id_prefix = id_prefix or uuid.uuid4().hex[:8]
        self._next_id = 1
        self._tracklets: dict[_Key, _Tracklet] = {}
        self._identities: dict[str, _Identity] = {}
        self._rows: GalleryRows | None = None
        self._faiss: FaissCandidates | None = None
        # (last_seen, serial, global id), oldest first; entries whose identity is gone or was
        # seen since are stale and skipped when they come up (lazy deletion).
        self._seen: list[tuple[float, int, str]] = []
        self.model: str | None = None
        self.now = float("-inf")
        # Tracklets and identities changed since `take_changes` (None: not tracked).
        self._changed: tuple[set[str], set[str]] | None = None

    # ------------------------------------------------------------------------------ queries

    @property
    def identities(self) -> int:
        """Global identities in the gallery."""
        return len(self._identities)

    @property
    def dim(self) -> int | None:
        """Size of the gallery's embeddings (None before the first)."""
        return None if self._rows is None else self._rows.sums.shape[1]

    @property
    def search(self) -> str:
        """How the next batch finds its candidates: ``"faiss"`` once the index is trained
        (the gallery big enough), else ``"exact"``."""
        return "faiss" if self._faiss is not None and self._faiss.trained else "exact"

    @property
    def gallery_nbytes(self) -> int:
        """Memory of the identity vectors: the matrix, and the FAISS index where there is one."""
        if self._rows is None:
            return 0
        return self._rows.nbytes + (0 if self._faiss is None else self._faiss.nbytes)

    def similar(self, vectors: np.ndarray, *, exact: bool = False) -> list[dict[str, float]]:
        """The identities at least `threshold` similar to each vector, as the matcher finds them.

        No constraints are applied and nothing changes. `exact` compares with every identity
        even where an index is in use (the benchmark measures the index's recall against it).

        Args:
            vectors: (K, D) embeddings of the gallery's model; normalised here.
        """
        if self._rows is None or not len(self._rows):
            return [{} for _ in vectors]
        vectors = np.asarray(vectors, np.float32)
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        found: list[dict[str, float]] = [{} for _ in vectors]
        rows, slots, sims, _ = self._candidates(vectors, exact=exact)
        for row, slot, similarity in zip(rows, slots, sims, strict=True):
            found[row][self._rows.ids[slot]] = float(similarity)
        return found

    def compatible(self, embedding: ClipEmbedding) -> bool:
        """Whether `embedding` can be compared with the gallery's (same model and size)."""
        return self._rows is None or (embedding.model, embedding.embedding.size) == (
            self.model,
            self.dim,
        )

    def global_id_of(self, camera_id: str, tracklet_id: str) -> str | None:
        """The global id of a camera's tracklet; None if the gallery does not hold it."""
        tracklet = self._tracklets.get((camera_id, tracklet_id))
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
        self._expire(keep={t.key for t in candidates})
        links = self._assign(candidates)
        self._bound(keep={t.global_id for t in candidates})
        return links

    def enroll(self, embeddings: Sequence[ClipEmbedding]) -> str:
        """Adds one identity made of the tracklets of `embeddings`, without matching them.

        For a gallery seeded with people known beforehand (and the benchmark's galleries). The
        tracklets are open until `close` says otherwise, as those `update` sees.

        Raises:
            ValueError: A tracklet the gallery already holds, or an embedding of another model.
        """
        known = sorted({(e.camera_id, e.tracklet_id) for e in embeddings} & self._tracklets.keys())
        if known or not embeddings:
            raise ValueError(f"enroll: expected clips of new tracklets, got known ones {known}")
        tracklets = self._absorb(embeddings)
        self.now = max(self.now, *(t.end_time for t in tracklets))
        global_id = self._new_identity()
        for tracklet in tracklets:
            self._move(tracklet, global_id)
        return global_id

    def _absorb(self, embeddings: Sequence[ClipEmbedding]) -> list[_Tracklet]:
        """Adds each clip to its tracklet's running mean; the tracklets touched, in order."""
        touched: dict[_Key, _Tracklet] = {}
        for e in embeddings:
            self._check_model(e)
            vector = e.embedding / max(float(np.linalg.norm(e.embedding)), 1e-12)
            key = (e.camera_id, e.tracklet_id)
            tracklet = self._tracklets.get(key)
            if tracklet is None:
                tracklet = self._tracklets[key] = _Tracklet(
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
            touched[key] = tracklet
        self._note(tracklets=touched)
        for tracklet in touched.values():  # members' new vectors and spans count from now on
            if tracklet.global_id is not None:
                self._refresh(self._identities[tracklet.global_id])
        return list(touched.values())

    def _check_model(self, e: ClipEmbedding) -> None:
        if self._rows is None:
            self.model, self._rows = e.model, GalleryRows(e.embedding.size)
            if self.index == "faiss":
                self._faiss = FaissCandidates(self._rows, nprobe=self.nprobe)
        elif not self.compatible(e):
            raise ValueError(
                f"embedding of model {e.model!r} ({e.embedding.size}-d) from {e.camera_id}: the "
                f"gallery holds {self.model!r} ({self._rows.sums.shape[1]}-d) embeddings, which "
                f"cannot be compared with it"
            )

    # --------------------------------------------------------------------------- assignment

    def _assign(self, candidates: list[_Tracklet]) -> list[IdentityLink]:
        assert self._rows is not None
        vectors = np.stack([t.vector for t in candidates])  # (k, D)
        rows, slots, sims, ranked = self._candidates(vectors, top_k=self.top_k + 1)
        # Global ids now: a move below may drop an identity and change the slots.
        ranked_ids = [[(self._rows.ids[s], sim) for s, sim in row] for row in ranked]
        joins, refused = self._joins(candidates, rows, slots, sims)
        stays, private = self._private(candidates)
        chosen = self._solve(joins, private)
        similarity = {i: sim for i, gid, sim in joins if gid == chosen[i]}
        links, decisions = [], []
        for i, tracklet in enumerate(candidates):
            before = tracklet.global_id
            outcome = self._apply(tracklet, chosen[i], stays[i])
            options = [(g, s) for g, s in ranked_ids[i] if g != before][: self.top_k]
            if chosen[i] is not None and chosen[i] not in {g for g, _ in options}:
                options = sorted([*options, (chosen[i], similarity[i])], key=lambda o: -o[1])
            explained = self._explain(
                options, refused.get(i, {}), chosen[i], private[i] if stays[i] else None
            )
            decisions.append(self._decision(tracklet, outcome, explained))
            links.append(self._link(tracklet, explained[0] if explained else None))
        self._report(decisions)
        return links

    def _private(self, candidates: list[_Tracklet]) -> tuple[list[bool], np.ndarray]:
        """Whether each candidate may stay in its identity, and the score of its own option:
        staying (its similarity + switch_margin) or a new person (threshold)."""
        stays: list[bool] = []
        private = np.empty(len(candidates))
        for i, tracklet in enumerate(candidates):
            own = self._own_similarity(tracklet)
            stays.append(own is not None and own >= self.threshold - self.switch_margin)
            private[i] = own + self.switch_margin if stays[i] else self.threshold
        return stays, private

    @staticmethod
    def _solve(joins: list[tuple[int, str, float]], private: np.ndarray) -> list[str | None]:
        """The identity each candidate joins (None: it keeps its own option), by the Hungarian
        method over [joinable identities ... | one private column per candidate]."""
        k = len(private)
        columns = list(dict.fromkeys(gid for _, gid, _ in joins))
        index = {gid: c for c, gid in enumerate(columns)}
        scores = np.full((k, len(columns) + k), -_INFEASIBLE)
        for i, gid, similarity in joins:
            scores[i, index[gid]] = similarity
        scores[np.arange(k), len(columns) + np.arange(k)] = private
        chosen: list[str | None] = [None] * k
        for i, c in zip(*linear_sum_assignment(-scores), strict=True):
            if c < len(columns):
                chosen[i] = columns[c]
        return chosen

    def _apply(self, tracklet: _Tracklet, chosen: str | None, stays: bool) -> Outcome:
        """Moves the tracklet where the assignment put it; what became of it."""
        if chosen is not None:
            self._move(tracklet, chosen)  # joins another identity
            return "joined"
        if not stays and (tracklet.global_id is None or self._own_similarity(tracklet) is not None):
            # a new person, or one that no longer looks like the others of its identity
            self._move(tracklet, self._new_identity())
            return "new"
        return "stayed"

    def _explain(
        self,
        options: list[tuple[str, float]],
        refused: dict[str, tuple[str, _Tracklet | None]],
        chosen: str | None,
        stay_score: float | None,
    ) -> list[Candidate]:
        """The candidates of one decision, most similar first, each accepted or refused why."""
        explained = []
        for gid, similarity in options:
            reason, blocker = refused.get(gid, (None, None))
            if gid == chosen:
                reason = None
            elif similarity < self.threshold:
                reason = "threshold"
            elif reason is None:
                outscored = stay_score is None or similarity > stay_score
                reason = "outscored" if outscored else "margin"
            explained.append(
                Candidate(
                    gid,
                    float(np.clip(similarity, -1.0, 1.0)),
                    reason,
                    None if blocker is None else blocker.key,
                )
            )
        return explained

    def _decision(
        self, tracklet: _Tracklet, outcome: Outcome, candidates: list[Candidate]
    ) -> Decision:
        assert tracklet.global_id is not None
        return Decision(
            camera_id=tracklet.camera_id,
            tracklet_id=tracklet.tracklet_id,
            track_id=tracklet.track_id,
            start_time=tracklet.start_time,
            end_time=tracklet.end_time,
            global_id=tracklet.global_id,
            outcome=outcome,
            similarity=self._reported_similarity(tracklet),
            threshold=self.threshold,
            candidates=tuple(candidates),
        )

    def _report(self, decisions: list[Decision]) -> None:
        """Logs each refusal at DEBUG and hands the decisions to `on_decisions`."""
        if log.isEnabledFor(logging.DEBUG):
            for d in decisions:
                for c in d.candidates:
                    if c.refused is not None:
                        log.debug(
                            "tracklet %s/%s not joined to %s (similarity %.3f): %s%s",
                            d.camera_id,
                            d.tracklet_id,
                            c.global_id,
                            c.similarity,
                            c.refused,
                            "" if c.blocker is None else " with tracklet " + "/".join(c.blocker),
                        )
        if self.on_decisions is not None:
            self.on_decisions(decisions)

    def _joins(
        self,
        candidates: list[_Tracklet],
        rows: np.ndarray,
        slots: np.ndarray,
        sims: np.ndarray,
    ) -> tuple[list[tuple[int, str, float]], dict[int, dict[str, tuple[str, _Tracklet | None]]]]:
        """(candidate row, global id, similarity) of every identity a candidate may join, and
        for each candidate row the identities above threshold it may not join: global id ->
        (reason, the sighting that blocks it)."""
        assert self._rows is not None
        # An identity made only of this batch's candidates is being decided itself: joining it
        # could leave it empty under the joiner (two lone tracklets swapping ids).
        deciding = {t.key for t in candidates}
        joinable: dict[str, bool] = {}
        joins = []
        refused: dict[int, dict[str, tuple[str, _Tracklet | None]]] = {}
        for i, slot, similarity in zip(rows, slots, sims, strict=True):
            tracklet, gid = candidates[i], self._rows.ids[slot]
            if gid == tracklet.global_id:
                continue
            if gid not in joinable:
                joinable[gid] = bool(self._identities[gid].members.keys() - deciding)
            refusal = self._refusal(tracklet, gid) if joinable[gid] else ("deciding", None)
            if refusal is None:
                joins.append((int(i), gid, float(similarity)))
            else:
                refused.setdefault(int(i), {})[gid] = refusal
        return joins, refused

    def _candidates(
        self, vectors: np.ndarray, *, exact: bool = False, top_k: int = 0
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[list[tuple[int, float]]]]:
        """(query rows, identity slots, similarities) of the pairs at least `threshold` similar,
        in query order, from the index where there is one (and not `exact`); and for each query
        its `top_k` most similar identities, (slot, similarity) most similar first (with an
        index, only among the pairs it proposed)."""
        assert self._rows is not None
        if self._faiss is None or exact:
            sims = self._rows.similarities(vectors)
            rows, slots = np.nonzero(sims >= self.threshold)
            return rows, slots, sims[rows, slots], _top(sims, top_k)
        rows, slots = self._faiss.candidates(vectors, self.threshold)
        sims = self._rows.similarity_pairs(vectors[rows], slots)
        keep = sims >= self.threshold
        rows, slots, sims = rows[keep], slots[keep], sims[keep]
        ranked: list[list[tuple[int, float]]] = [[] for _ in vectors]
        for i, slot, similarity in zip(rows, slots, sims, strict=True):
            ranked[i].append((int(slot), float(similarity)))
        return rows, slots, sims, [sorted(r, key=lambda x: -x[1])[:top_k] for r in ranked]

    def _own_similarity(self, tracklet: _Tracklet) -> float | None:
        """Cosine between the tracklet and its identity without it; None if it is alone."""
        if tracklet.global_id is None:
            return None
        identity = self._identities[tracklet.global_id]
        if len(identity.members) < 2:
            return None
        assert self._rows is not None
        rest = self._rows.sums[self._rows.slot_of[identity.global_id]] - tracklet.vector
        return float(rest @ tracklet.vector / max(float(np.linalg.norm(rest)), 1e-12))

    def _reported_similarity(self, tracklet: _Tracklet) -> float | None:
        """`_own_similarity` as links and decisions report it: clipped to [-1, 1] (rounding)."""
        own = self._own_similarity(tracklet)
        return None if own is None else float(np.clip(own, -1.0, 1.0))

    def _span(self, tracklet: _Tracklet) -> tuple[float, float]:
        """(first, last) capture time the tracklet may be in view: up to now while it is open."""
        end = tracklet.end_time
        if tracklet.open and self.now - end <= self.silent_tracklet_s:
            end = max(end, self.now)
        return tracklet.start_time, end

    def _refusal(self, tracklet: _Tracklet, global_id: str) -> tuple[str, _Tracklet] | None:
        """Why the constraints do not let `tracklet` be the person of `global_id`, with the
        sighting that stands in the way; None when they do."""
        start, end = self._span(tracklet)
        before: tuple[float, _Tracklet] | None = None  # (end, sighting) just before
        after: tuple[float, _Tracklet] | None = None  # (start, sighting) just after
        for m in self._identities[global_id].members.values():
            if m is tracklet:
                continue
            m_start, m_end = self._span(m)
            if m_start <= end and start <= m_end:
                if m.camera_id == tracklet.camera_id:
                    return "same_camera", m  # two people on one camera at once
                if frozenset((m.camera_id, tracklet.camera_id)) not in self._overlap:
                    return "two_places", m  # one person in two places at once
            elif m_end < start:
                before = max(before, (m_end, m), key=lambda x: x[0]) if before else (m_end, m)
            else:
                after = min(after, (m_start, m), key=lambda x: x[0]) if after else (m_start, m)
        if before is not None and not self._transit_ok(before[1], start - before[0], tracklet):
            return "transit", before[1]
        if after is not None and not self._transit_ok(tracklet, after[0] - end, after[1]):
            return "transit", after[1]
        return None

    def _transit_ok(self, first: _Tracklet, gap: float, second: _Tracklet) -> bool:
        """Whether `gap` seconds from leaving `first`'s camera to `second`'s fits its window."""
        window = self._windows.get((first.camera_id, second.camera_id))
        if window is None or first.camera_id == second.camera_id:
            return True
        return window[0] <= gap <= window[1]

    def close(self, closed: Iterable[TrackletClosed]) -> None:
        """Tracklets that ended: from now on each counts as seen until its last box only."""
        for event in closed:
            tracklet = self._tracklets.get((event.camera_id, event.tracklet_id))
            if tracklet is not None:  # None: it never produced a clip, or it expired
                self._note(tracklets=[tracklet.key])
                tracklet.open = False
                tracklet.end_time = max(tracklet.end_time, event.last_seen)
                if tracklet.global_id is not None:
                    self._queue_expiry(self._identities[tracklet.global_id])

    # ------------------------------------------------------------------------ durable state

    def track_changes(self) -> None:
        """From now on, remember which tracklets and identities change, for `take_changes`."""
        self._changed = (set(), set())

    def take_changes(self) -> GalleryState:
        """The tracklets and identities changed since the last call (None for those that are
        gone) and the gallery's head; empty until `track_changes` is called."""
        tracklets, identities = self._changed or ((), ())
        changes = GalleryState(
            self._head(),
            {t: self._tracklet_state(t) for t in tracklets},
            {g: self._identity_state(g) for g in identities},
        )
        if self._changed is not None:
            self._changed = (set(), set())
        return changes

    def load(self, state: GalleryState) -> None:
        """Replaces the gallery with `state` (as `take_changes` gave it, folded together).

        Raises:
            ValueError: The state does not hold together (an identity's member is missing, a
                tracklet belongs to no identity, the rows are not 0..n-1).
        """
        head = state.head
        self.id_prefix, self._next_id, self.now = head.id_prefix, head.next_id, head.now
        self.model, self._rows, self._faiss = head.model, None, None
        if head.dim is not None:
            self._rows = GalleryRows(head.dim)
            if self.index == "faiss":  # trained again on the restored gallery when searched
                self._faiss = FaissCandidates(self._rows, nprobe=self.nprobe)
        self._tracklets = {
            (t.camera_id, t.tracklet_id): _tracklet_of(t) for t in state.tracklets.values()
        }
        self._identities, self._seen = {}, []
        identities = sorted(state.identities.values(), key=lambda i: i.slot)
        if [i.slot for i in identities] != list(range(len(identities))):
            raise ValueError(f"gallery rows: expected 0..{len(identities) - 1}, got others")
        for saved in identities:
            self._load_identity(saved)
        unowned = [t for t in self._tracklets.values() if t.global_id is None]
        if unowned:
            raise ValueError(f"tracklets of no identity: {[t.tracklet_id for t in unowned][:5]}")
        if self._changed is not None:
            self._changed = (set(), set())

    def _load_identity(self, saved: IdentityState) -> None:
        if self._rows is None:
            raise ValueError(f"identity {saved.global_id}: the gallery has no embedding size")
        identity = self._identities[saved.global_id] = _Identity(saved.global_id, saved.serial)
        self._rows.add(saved.global_id)
        for key in saved.members:
            tracklet = self._tracklets.get(key)
            if tracklet is None or tracklet.global_id is not None:
                raise ValueError(f"identity {saved.global_id}: member {'/'.join(key)} missing")
            tracklet.global_id = saved.global_id
            identity.members[key] = tracklet
        self._refresh(identity)

    def _note(
        self, *, tracklets: Iterable[tuple[str, str]] = (), identities: Iterable[str] = ()
    ) -> None:
        if self._changed is not None:
            self._changed[0].update(tracklets)
            self._changed[1].update(identities)

    def _head(self) -> GalleryHead:
        return GalleryHead(self.id_prefix, self._next_id, self.now, self.model, self.dim)

    def _tracklet_state(self, key: tuple[str, str]) -> TrackletState | None:
        t = self._tracklets.get(key)
        if t is None:
            return None
        return TrackletState(
            t.tracklet_id, t.camera_id, t.track_id, t.start_time, t.end_time, t.total, t.open
        )

    def _identity_state(self, global_id: str) -> IdentityState | None:
        identity = self._identities.get(global_id)
        if identity is None or self._rows is None:
            return None
        slot = self._rows.slot_of[global_id]
        return IdentityState(global_id, identity.serial, slot, tuple(identity.members))

    # ----------------------------------------------------------------------- bookkeeping

    def _new_identity(self) -> str:
        assert self._rows is not None
        gid = f"{self.id_prefix}-{self._next_id}"
        self._identities[gid] = _Identity(gid, self._next_id)
        self._next_id += 1
        self._rows.add(gid)
        return gid

    def _move(self, tracklet: _Tracklet, global_id: str) -> None:
        self._note(tracklets=[tracklet.key])
        if tracklet.global_id is not None:
            old = self._identities[tracklet.global_id]
            del old.members[tracklet.key]
            self._refresh(old)
        tracklet.global_id = global_id
        identity = self._identities[global_id]
        identity.members[tracklet.key] = tracklet
        self._refresh(identity)

    def _refresh(self, identity: _Identity) -> None:
        assert self._rows is not None
        self._note(identities=[identity.global_id])
        if not identity.members:
            self._drop(identity)
            return
        total = np.sum([m.vector for m in identity.members.values()], axis=0)
        self._rows.set(identity.global_id, total)
        if self._faiss is not None:
            self._faiss.changed(identity.global_id)
        self._queue_expiry(identity)

    def _drop(self, identity: _Identity) -> None:
        assert self._rows is not None
        # The last row moves into the dropped one's place: its identity's slot changes.
        self._note(identities=[identity.global_id, self._rows.ids[-1]], tracklets=identity.members)
        self._rows.remove(identity.global_id)
        if self._faiss is not None:
            self._faiss.changed(identity.global_id)
        del self._identities[identity.global_id]
        for key in identity.members:
            self._tracklets.pop(key, None)

    def _queue_expiry(self, identity: _Identity) -> None:
        """Puts the identity in the expiry heap under its current last_seen (if it changed)."""
        last_seen = identity.last_seen
        if identity.queued == last_seen:
            return
        identity.queued = last_seen
        heapq.heappush(self._seen, (last_seen, identity.serial, identity.global_id))
        if len(self._seen) > 2 * len(self._identities) + 16:  # mostly stale: rebuild it
            self._seen = [
                (i.queued, i.serial, g) for g, i in self._identities.items() if i.queued is not None
            ]
            heapq.heapify(self._seen)

    def _forget_oldest(
        self, *, spare: Callable[[_Identity], bool], before: float = np.inf, count: int = -1
    ) -> int:
        """Drops identities last seen before `before`, oldest first (then the first created), at
        most `count` of them (-1: no limit), sparing those `spare` says; returns how many."""
        spared, dropped = [], 0
        while self._seen and self._seen[0][0] < before and dropped != count:
            entry = heapq.heappop(self._seen)
            identity = self._identities.get(entry[2])
            if identity is None or identity.queued != entry[0]:
                continue  # stale: the identity is gone, or was seen since and queued again
            if spare(identity):
                spared.append(entry)
                continue
            log.debug("forgot identity %s (last seen %.1f s ago)", entry[2], self.now - entry[0])
            self._drop(identity)
            dropped += 1
        for entry in spared:
            heapq.heappush(self._seen, entry)
        return dropped

    def _expire(self, *, keep: set[str]) -> None:
        self._forget_oldest(
            spare=lambda identity: bool(keep & identity.members.keys()),
            before=self.now - self.ttl_s,
        )

    def _bound(self, *, keep: set[str | None]) -> None:
        excess = len(self._identities) - self.max_identities
        if excess <= 0:
            return
        dropped = self._forget_oldest(
            spare=lambda identity: identity.global_id in keep, count=excess
        )
        log.info("gallery full: forgot the %d identities seen longest ago", dropped)

    def _link(self, tracklet: _Tracklet, best: Candidate | None) -> IdentityLink:
        assert tracklet.global_id is not None
        return IdentityLink(
            global_id=tracklet.global_id,
            camera_id=tracklet.camera_id,
            track_id=tracklet.track_id,
            tracklet_id=tracklet.tracklet_id,
            start_time=tracklet.start_time,
            end_time=tracklet.end_time,
            similarity=self._reported_similarity(tracklet),
            best_similarity=None if best is None else best.similarity,
            best_candidate=None if best is None else best.global_id,
        )


def _top(sims: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
    """The `k` largest of each row of `sims` (K, n) as (column, value), largest first."""
    k = min(k, sims.shape[1])
    if k <= 0:
        return [[] for _ in sims]
    part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(sims, part, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    cols, values = np.take_along_axis(part, order, 1), np.take_along_axis(values, order, 1)
    return [
        list(zip(c.tolist(), v.tolist(), strict=True)) for c, v in zip(cols, values, strict=True)
    ]


def _tracklet_of(state: TrackletState) -> _Tracklet:
    total = np.asarray(state.total, np.float32)
    return _Tracklet(
        state.tracklet_id,
        state.camera_id,
        state.track_id,
        state.start_time,
        state.end_time,
        total,
        open=state.open,
    )


def match_in_order(
    matcher: Matcher, items: Sequence[ClipEmbedding | TrackletClosed]
) -> list[IdentityLink]:
    """Feeds embeddings and tracklet ends to the matcher in their order: runs of embeddings are
    matched together, each end applies where it stands."""
    links: list[IdentityLink] = []
    run: list[ClipEmbedding] = []
    for item in items:
        if isinstance(item, TrackletClosed):
            links += matcher.update(run)
            run = []
            matcher.close([item])
        else:
            run.append(item)
    return links + matcher.update(run)
