"""`reidstream explain`: a run's decisions about one tracklet, in words."""

from __future__ import annotations

import json

import numpy as np

from pipeline.cli import main
from pipeline.matching.decisions import DecisionLog
from pipeline.matching.matcher import Matcher
from pipeline.messages.types import ClipEmbedding, TrackletClosed

LOOK = np.ones(8, np.float32) / np.sqrt(8)


def clip(camera: str, track: int, start: float, end: float) -> ClipEmbedding:
    return ClipEmbedding(camera, track, f"{camera}.{track}", int(start), int(end), start, end,
                         LOOK, "m")  # fmt: skip


def recorded_run(tmp_path):
    """One look on cam1, then on cam2 at the same time (refused), then on cam3 later (joined)."""
    log = DecisionLog(tmp_path / "decisions.jsonl")
    m = Matcher(threshold=0.7, id_prefix="g", on_decisions=log.write)
    m.update([clip("cam1", 1, 0, 5)])
    m.update([clip("cam2", 7, 3, 8)])
    m.close([TrackletClosed("cam1", 1, "cam1.1", 5.0), TrackletClosed("cam2", 7, "cam2.7", 8.0)])
    m.update([clip("cam3", 2, 20, 22)])
    return tmp_path


def test_explain_names_the_refusal_and_the_sighting_in_the_way(tmp_path, capsys):
    run_dir = recorded_run(tmp_path)
    assert main(["explain", str(run_dir), "cam2.7"]) == 0
    out = capsys.readouterr().out
    assert "tracklet cam2/cam2.7 (track 7): 1 decision(s)" in out
    assert "new    -> g-2" in out and "refused (two_places)" in out and "cam1/cam1.1" in out
    assert main(["explain", str(run_dir), "cam3/2", "--json"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    decision = json.loads(line)
    assert decision["outcome"] == "joined"
    assert [c["refused"] for c in decision["candidates"]] == [None, "outscored"]


def test_explain_without_decisions_or_tracklet_is_a_usage_error(tmp_path, capsys):
    assert main(["explain", str(tmp_path), "cam2.7"]) == 2
    assert "run.decisions=true" in capsys.readouterr().err
    run_dir = recorded_run(tmp_path)
    assert main(["explain", str(run_dir), "cam9.1"]) == 2
    assert "no decision about tracklet 'cam9.1'" in capsys.readouterr().err
