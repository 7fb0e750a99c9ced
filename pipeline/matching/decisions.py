"""Why the matcher linked a tracklet where it did: its decisions, their candidates, and the
`decisions.jsonl` a run keeps of them.

    Matcher.update ──▶ one Decision per tracklet of the batch
      outcome: joined (another identity) | stayed (in its own) | new (a new global id)
      candidates: the `top_k` identities most similar to the tracklet (its own excluded), each
        accepted (the one it joined) or refused for one of REFUSAL_REASONS
    ──▶ counted per reason (reidstream_match_refusals_total), logged at DEBUG, and, when the run
        asks for it, appended to decisions.jsonl (`DecisionLog`) for `reidstream explain`

The reasons, in the order the matcher checks them:

    threshold    cosine similarity below matcher.threshold
    same_camera  a tracklet of the identity overlaps this one in time on the same camera
    two_places   one overlaps it in time on another camera that is not listed with this one in
                 matcher.overlapping_cameras (one person is never in two places at once)
    transit      the gap to the identity's sighting just before or after does not fit the
                 configured transit window (matcher.transitions)
    deciding     the identity is made only of tracklets decided in the same batch
    margin       the tracklet stays in its own identity: the candidate is not more similar by
                 matcher.switch_margin
    outscored    allowed, but the assignment gave the tracklet a better option, or the identity
                 to another tracklet of the batch (an identity takes one new member per batch)

Hand-written: the records are this pipeline's own; JSON Lines is written with `json`.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "DECISIONS_FILE",
    "OUTCOMES",
    "REASON_TEXT",
    "REFUSAL_REASONS",
    "Candidate",
    "Decision",
    "DecisionLog",
    "Outcome",
    "count_refusals",
    "describe",
    "of_tracklet",
    "read_decisions",
]

log = logging.getLogger(__name__)

#: Name of the decisions file in a run's folder.
DECISIONS_FILE = "decisions.jsonl"
#: Why a candidate identity was refused (see the module docstring).
REFUSAL_REASONS = (
    "threshold",
    "same_camera",
    "two_places",
    "transit",
    "deciding",
    "margin",
    "outscored",
)
#: What each refusal means, as `reidstream explain` prints it ({blocker}: the sighting in the way).
REASON_TEXT = {
    "threshold": "similarity below matcher.threshold {threshold:.2f}",
    "same_camera": "{blocker} was on the same camera at the same time",
    "two_places": "{blocker} was in view at the same time, on a camera not listed with this one "
    "in matcher.overlapping_cameras (recordings sharing one replay clock? set the cameras' "
    "start_time or clock_offset_s)",
    "transit": "the time to or from {blocker} does not fit the matcher.transitions window",
    "deciding": "the identity is made only of tracklets decided in the same batch",
    "margin": "the tracklet stays in its own identity: not more similar by matcher.switch_margin",
    "outscored": "the assignment gave the tracklet a better option, or the identity to another "
    "tracklet of the batch",
}
#: What became of the tracklet.
OUTCOMES = ("joined", "stayed", "new")

Outcome = Literal["joined", "stayed", "new"]


@dataclass(frozen=True)
class Candidate:
    """One identity the tracklet was compared with.

    Attributes:
        global_id: The identity.
        similarity: Cosine similarity between the tracklet and the identity.
        refused: Why the tracklet did not join it (one of `REFUSAL_REASONS`); None: it joined.
        blocker: (camera id, tracklet id) of the identity's sighting a constraint refers to
            (same_camera, two_places, transit); None for the other reasons.
    """

    global_id: str
    similarity: float
    refused: str | None = None
    blocker: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        if self.refused is not None and self.refused not in REFUSAL_REASONS:
            raise ValueError(
                f"Candidate.refused: expected one of {', '.join(REFUSAL_REASONS)}, "
                f"got {self.refused!r}"
            )


@dataclass(frozen=True)
class Decision:
    """One decision about one tracklet (one per tracklet per matched batch).

    Attributes:
        camera_id: Camera of the tracklet.
        tracklet_id: The tracklet.
        track_id: Its single-camera track id.
        start_time: Capture time of its first box.
        end_time: Capture time of the newest frame the decision rests on.
        global_id: The identity it is in after the decision.
        outcome: joined (another identity), stayed (in its own) or new (a new global id).
        similarity: Cosine to its identity without itself; None when it is alone in it.
        threshold: The matcher's threshold when it decided.
        candidates: The most similar other identities, most similar first.
    """

    camera_id: str
    tracklet_id: str
    track_id: int
    start_time: float
    end_time: float
    global_id: str
    outcome: Outcome
    similarity: float | None
    threshold: float
    candidates: tuple[Candidate, ...] = ()

    @property
    def best(self) -> Candidate | None:
        """The most similar candidate, None when there was none."""
        return self.candidates[0] if self.candidates else None

    def as_dict(self) -> dict[str, Any]:
        """The decision as a JSON-ready dict (one line of decisions.jsonl)."""
        document = asdict(self)
        document["candidates"] = [
            {**asdict(c), "blocker": None if c.blocker is None else list(c.blocker)}
            for c in self.candidates
        ]
        return document

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> Decision:
        """The decision `as_dict` wrote.

        Raises:
            ValueError: A field is missing or of the wrong kind.
        """
        try:
            candidates = tuple(
                Candidate(
                    c["global_id"],
                    float(c["similarity"]),
                    c["refused"],
                    None if c["blocker"] is None else (c["blocker"][0], c["blocker"][1]),
                )
                for c in document["candidates"]
            )
            return cls(**{**document, "candidates": candidates})
        except (KeyError, TypeError, IndexError) as e:
            raise ValueError(f"not a decision record: {e!r}") from e


class DecisionLog:
    """Appends decisions to a JSON Lines file (`DECISIONS_FILE` in the run's folder).

    The file is opened for each batch and closed again, so it needs no lifecycle and a crash
    loses at most the batch being written. A write the disk refuses is logged at ERROR with
    the number of decisions lost and counted in `lost`; matching goes on.

    Args:
        path: The file; its folder is created.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.written = 0
        self.lost = 0

    def write(self, decisions: Sequence[Decision]) -> None:
        if not decisions:
            return
        text = "".join(json.dumps(d.as_dict(), separators=(",", ":")) + "\n" for d in decisions)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(text)
        except OSError as e:
            self.lost += len(decisions)
            log.error("%s: %d decisions not written (%s)", self.path, len(decisions), e)
            return
        self.written += len(decisions)


def describe(decision: Decision) -> list[str]:
    """The decision in words: a heading line, then one line per candidate."""
    d = decision
    when = datetime.fromtimestamp(d.end_time, UTC).isoformat(timespec="milliseconds")
    own = "alone in it" if d.similarity is None else f"similarity {d.similarity:.3f}"
    lines = [f"{when}  {d.outcome:<6} -> {d.global_id} ({own}; threshold {d.threshold:.2f})"]
    if not d.candidates:
        lines.append("    no other identity to compare with")
    for c in d.candidates:
        if c.refused is None:
            verdict = "accepted: joined it"
        else:
            blocker = "another sighting" if c.blocker is None else "/".join(c.blocker)
            text = REASON_TEXT[c.refused].format(blocker=blocker, threshold=d.threshold)
            verdict = f"refused ({c.refused}): {text}"
        lines.append(f"    {c.global_id:<16} {c.similarity:6.3f}  {verdict}")
    return lines


def count_refusals(decisions: Iterable[Decision]) -> dict[str, int]:
    """How many candidates of `decisions` were refused for each reason (only those that occur)."""
    return dict(Counter(c.refused for d in decisions for c in d.candidates if c.refused))


def read_decisions(path: Path) -> Iterator[Decision]:
    """The decisions of a decisions.jsonl, in the order they were made.

    Raises:
        ValueError: A line that is not a decision record (named by its line number).
    """
    with Path(path).open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield Decision.from_dict(json.loads(line))
            except ValueError as e:  # json.JSONDecodeError is one
                raise ValueError(f"{path}:{number}: {e}") from e


def of_tracklet(decisions: Iterable[Decision], tracklet: str) -> list[Decision]:
    """The decisions about `tracklet`: a tracklet id, or CAMERA/TRACK_ID."""
    camera, _, track = tracklet.rpartition("/")
    return [
        d
        for d in decisions
        if d.tracklet_id == tracklet
        or (camera and d.camera_id == camera and track.isdigit() and d.track_id == int(track))
    ]
