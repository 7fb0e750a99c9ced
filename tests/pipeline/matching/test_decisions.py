"""The matcher's decisions: the best candidate of every link, why each candidate was refused,
the DEBUG log naming both tracklets, and decisions.jsonl read back for `reidstream explain`."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from pipeline.matching.decisions import (
    Candidate,
    Decision,
    DecisionLog,
    of_tracklet,
    read_decisions,
)
from pipeline.matching.matcher import Matcher, Transition
from pipeline.messages.types import ClipEmbedding, TrackletClosed

DIM = 32
PEOPLE = np.random.default_rng(0).standard_normal((4, DIM)).astype(np.float32)


def clip(person, camera: str, tracklet: str, start: float, end: float, *, seed: int = 0,
         noise: float = 0.05) -> ClipEmbedding:  # fmt: skip
    base = PEOPLE[person] if isinstance(person, int) else person
    vector = base / np.linalg.norm(base) + noise * np.random.default_rng(seed).standard_normal(DIM)
    return ClipEmbedding(camera, int(tracklet.rsplit("-", 1)[-1]), tracklet, int(start * 10),
                         int(end * 10), start, end, vector.astype(np.float32), "m")  # fmt: skip


class Collect:
    """The decisions the matcher hands over, batch by batch."""

    def __init__(self) -> None:
        self.batches: list[list[Decision]] = []

    def __call__(self, decisions: list[Decision]) -> None:
        self.batches.append(decisions)

    @property
    def last(self) -> Decision:
        return self.batches[-1][-1]


def matcher(**kw) -> tuple[Matcher, Collect]:
    collect = Collect()
    return Matcher(**({"threshold": 0.6, "id_prefix": "g", "on_decisions": collect} | kw)), collect


@pytest.mark.parametrize(("overlap", "outcome"), [((), "new"), ((("cam1", "cam2"),), "joined")])
def test_one_person_in_two_places_names_the_blocking_tracklet(overlap, outcome):
    m, seen = matcher(overlapping_cameras=overlap)
    (a,) = m.update([clip(0, "cam1", "t-1", 0, 5)])
    assert (a.best_similarity, a.best_candidate) == (None, None)  # an empty gallery
    (b,) = m.update([clip(0, "cam2", "t-2", 3, 8, seed=2)])
    decision = seen.last
    assert decision.outcome == outcome and decision.tracklet_id == "t-2"
    best = decision.best
    assert best is not None and best.global_id == a.global_id and best.similarity > 0.9
    # The link says how close the refused candidate came, also for a new identity.
    assert (b.best_candidate, b.best_similarity) == (a.global_id, best.similarity)
    if outcome == "new":
        assert b.is_new_identity and b.similarity is None
        assert (best.refused, best.blocker) == ("two_places", ("cam1", "t-1"))
    else:
        assert (best.refused, best.blocker) == (None, None)
        assert b.similarity == pytest.approx(best.similarity, abs=1e-5)


def test_same_camera_transit_and_threshold_refusals():
    m, seen = matcher(transitions=[Transition("cam1", "cam3", 0.5, 10.0)])
    m.update([clip(0, "cam1", "t-1", 0, 5)])
    m.update([clip(0, "cam1", "t-2", 3, 8, seed=2)])
    assert (seen.last.best.refused, seen.last.best.blocker) == ("same_camera", ("cam1", "t-1"))
    m.close([TrackletClosed("cam1", 1, "t-1", 5.0), TrackletClosed("cam1", 2, "t-2", 8.0)])
    m.update([clip(0, "cam3", "t-3", 60, 62, seed=3)])  # 52 s after t-2: beyond the window
    refused = {c.refused for c in seen.last.candidates}
    assert refused == {"transit"}
    (other,) = m.update([clip(1, "cam2", "t-4", 100, 101)])
    candidates = seen.last.candidates
    assert [c.refused for c in candidates] == ["threshold"] * len(candidates)
    assert other.best_similarity == candidates[0].similarity < 0.6
    sims = [c.similarity for c in candidates]
    assert sims == sorted(sims, reverse=True)


def test_a_contested_identity_is_refused_to_the_farther_tracklet_as_outscored():
    m, seen = matcher(threshold=0.5)
    (a,) = m.update([clip(0, "cam1", "t-1", 0, 2)])
    m.close([TrackletClosed("cam1", 1, "t-1", 2.0)])
    near, other = (PEOPLE[i] / np.linalg.norm(PEOPLE[i]) for i in (0, 1))
    m.update([clip(near + 0.3 * other, "cam2", "t-2", 5, 6, noise=0),
              clip(near + 0.8 * other, "cam3", "t-3", 5, 6, noise=0)])  # fmt: skip
    by_tracklet = {d.tracklet_id: d for d in seen.batches[-1]}
    assert by_tracklet["t-2"].outcome == "joined" and by_tracklet["t-2"].best.refused is None
    far = {c.global_id: c for c in by_tracklet["t-3"].candidates}
    assert by_tracklet["t-3"].outcome == "new" and far[a.global_id].refused == "outscored"


def test_top_k_bounds_the_candidates_of_a_decision():
    m, seen = matcher(top_k=2, threshold=0.99)
    for i in range(4):
        m.update([clip(i, f"cam{i}", f"t-{i + 1}", 10 * i, 10 * i + 1)])
    assert len(seen.last.candidates) == 2
    assert Matcher(top_k=0).top_k == 1  # the link's best candidate needs one


def test_refusals_are_logged_at_debug_with_both_tracklets(caplog):
    m, _ = matcher()
    m.update([clip(0, "cam1", "t-1", 0, 5)])
    with caplog.at_level(logging.DEBUG, logger="pipeline.matching.matcher"):
        m.update([clip(0, "cam2", "t-2", 3, 8, seed=2)])
    (line,) = [r.getMessage() for r in caplog.records if "not joined" in r.getMessage()]
    assert "cam2/t-2" in line and "two_places" in line and "cam1/t-1" in line


def test_decisions_round_trip_through_the_log_and_are_found_by_tracklet(tmp_path):
    m, seen = matcher()
    m.update([clip(0, "cam1", "t-1", 0, 5)])
    m.update([clip(0, "cam2", "t-2", 3, 8, seed=2)])
    log = DecisionLog(tmp_path / "run" / "decisions.jsonl")
    for batch in seen.batches:
        log.write(batch)
    back = list(read_decisions(log.path))
    assert back == [d for batch in seen.batches for d in batch] and log.written == 2
    assert [d.tracklet_id for d in of_tracklet(back, "t-2")] == ["t-2"]
    assert [d.tracklet_id for d in of_tracklet(back, "cam1/1")] == ["t-1"]
    assert of_tracklet(back, "cam2/1") == []


def test_a_refused_write_is_counted_and_logged_not_raised(tmp_path, caplog):
    blocked = tmp_path / "file"
    blocked.write_text("")
    log = DecisionLog(blocked / "decisions.jsonl")  # its folder is a file
    decision = Decision("cam1", "t-1", 1, 0.0, 1.0, "g-1", "new", None, 0.6)
    with caplog.at_level(logging.ERROR):
        log.write([decision])
    assert (log.written, log.lost) == (0, 1) and "1 decisions not written" in caplog.text


def test_a_bad_line_is_named_and_a_bad_reason_refused(tmp_path):
    path = tmp_path / "decisions.jsonl"
    path.write_text(json.dumps({"camera_id": "cam1"}) + "\n")
    with pytest.raises(ValueError, match=r"decisions\.jsonl:1"):
        list(read_decisions(path))
    with pytest.raises(ValueError, match="two_places"):
        Candidate("g-1", 0.5, "nearby")
