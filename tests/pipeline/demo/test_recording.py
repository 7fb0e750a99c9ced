"""A recorded run: its tracks and mosaic, and its IDF1 only where the ground truth is known."""

from __future__ import annotations

import csv

import numpy as np

from pipeline.demo.recording import Recorder
from pipeline.messages.types import IdentityLink
from pipeline.stream.tracklets import TrackletUpdate
from pipeline.stream.types import Frame

BOX = np.array([10, 20, 50, 120], np.float32)


def _record(recorder: Recorder, frames: int = 3) -> None:
    for index in range(frames):
        frame = Frame("cam1", index, 1_700_000_000.0 + index, np.zeros((240, 320, 3), np.uint8))
        recorder.on_update(frame, TrackletUpdate(boxes=[("cam1.t1", 1, BOX)]))
    link = IdentityLink("g-1", "cam1", 1, "cam1.t1", 1_700_000_000.0, 1_700_000_002.0)
    recorder.on_links([link])


def test_without_ground_truth_a_run_is_recorded_but_not_scored(tmp_path):
    recorder = Recorder()
    _record(recorder)
    outputs, score = recorder.finish(tmp_path, ["cam1"])
    assert score is None and recorder.score() is None
    assert outputs == {
        "tracks": str(tmp_path / "tracks.csv"),
        "mosaic": str(tmp_path / "mosaic.png"),
    }
    rows = list(csv.DictReader((tmp_path / "tracks.csv").open()))
    assert [(r["frame"], r["tracklet_id"], r["global_id"]) for r in rows] == [
        ("0", "cam1.t1", "g-1"),
        ("1", "cam1.t1", "g-1"),
        ("2", "cam1.t1", "g-1"),
    ]
    assert (tmp_path / "mosaic.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_with_ground_truth_the_global_ids_are_scored(tmp_path):
    truth = {"cam1": [(i, 7, *map(float, BOX)) for i in range(3)]}
    recorder = Recorder(truth=lambda: truth)
    _record(recorder)
    _, score = recorder.finish(tmp_path, ["cam1"])
    assert score is not None and score["idf1"] == 1.0 and score["true_ids"] == 1
    # Global ids as a consumer received them: the name does not matter, a missing link does.
    renamed = recorder.score({"cam1.t1": "g-2"})
    assert renamed is not None and renamed.predicted_ids == 1 and renamed.idf1 == 1.0
    assert recorder.score({}).idf1 == 0.0
