"""MOTChallenge files: our writer and reader against motmetrics' own reader and TUD results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from detectors import Detections
from detectors.mot import MotWriter, mot_lines, read_mot, write_mot

# The values motmetrics' own test suite expects for these sequences
# (motmetrics/tests/test_metrics.py::test_motchallenge_files, motmetrics 1.4.0), in its order:
# idf1, idp, idr, recall, precision, num_unique_objects, mostly_tracked, partially_tracked,
# mostly_lost, num_false_positives, num_misses, num_switches, num_fragmentations, mota, motp.
TUD_EXPECTED = {
    "TUD-Campus": [0.557659, 0.729730, 0.451253, 0.582173, 0.941441, 8, 1, 6, 1, 13, 150, 7, 7,
                   0.526462, 0.277201],
    "TUD-Stadtmitte": [0.644619, 0.819760, 0.531142, 0.608997, 0.939920, 10, 5, 4, 1, 45, 452, 7,
                       6, 0.564014, 0.345904],
}  # fmt: skip


def _tud(name: str) -> Path:
    import motmetrics

    return Path(motmetrics.__file__).parent / "data" / name


def _summary(pairs: dict[str, tuple[Path, Path]]) -> pd.DataFrame:
    import motmetrics as mm

    accumulators = [
        mm.utils.compare_to_groundtruth(mm.io.loadtxt(gt), mm.io.loadtxt(test), "iou", distth=0.5)
        for gt, test in pairs.values()
    ]
    host = mm.metrics.create()
    summary = host.compute_many(
        accumulators, metrics=mm.metrics.motchallenge_metrics, names=list(pairs)
    )
    return summary[mm.metrics.motchallenge_metrics[:15]]


@pytest.mark.usefixtures("motmetrics_numpy2")
def test_tud_metrics_match_motmetrics_and_survive_our_round_trip(tmp_path):
    """motmetrics on its shipped TUD files gives the values its tests expect, and so does the
    tracker output after going through our reader and writer."""
    original = {name: (_tud(name) / "gt.txt", _tud(name) / "test.txt") for name in TUD_EXPECTED}
    expected = pd.DataFrame(list(TUD_EXPECTED.values()), index=list(TUD_EXPECTED))
    np.testing.assert_allclose(_summary(original).to_numpy(float), expected, atol=1e-3)

    rewritten = {}
    for name, (gt, test) in original.items():
        ours = tmp_path / f"{name}.txt"
        write_mot(ours, read_mot(test))
        rewritten[name] = (gt, ours)
    np.testing.assert_allclose(_summary(rewritten).to_numpy(float), expected, atol=1e-3)


def test_round_trip_keeps_boxes_ids_and_frames(tmp_path):
    import motmetrics as mm

    source = _tud("TUD-Campus") / "test.txt"
    frames = read_mot(source)
    assert min(frames) == 1 and all(d.tracker_id is not None for d in frames.values())
    write_mot(tmp_path / "out.txt", frames)
    theirs, ours = mm.io.loadtxt(source), mm.io.loadtxt(tmp_path / "out.txt")
    assert list(theirs.index) == list(ours.index)  # (FrameId, Id) pairs, in order
    columns = ["X", "Y", "Width", "Height", "Confidence"]
    np.testing.assert_allclose(ours[columns], theirs[columns], atol=1e-3)


def test_lines_are_motchallenge_one_based(tmp_path):
    tracked = Detections(
        xyxy=np.array([[0.0, 10.0, 20.0, 50.0], [100.5, 0.0, 120.5, 30.0]], np.float32),
        confidence=np.array([0.9, 0.25], np.float32),
        class_id=np.zeros(2, np.int64),
        tracker_id=np.array([7, 12]),
    )
    assert mot_lines(3, tracked) == [
        "3,7,1,11,20,40,0.9,-1,-1,-1",
        "3,12,101.5,1,20,30,0.25,-1,-1,-1",
    ]
    with MotWriter(tmp_path / "a.txt") as writer:
        writer.write(1, tracked)
        writer.write(2, Detections.empty(tracked=True))
    back = read_mot(tmp_path / "a.txt")
    assert list(back) == [1]
    np.testing.assert_allclose(back[1].xyxy, tracked.xyxy)
    np.testing.assert_array_equal(back[1].tracker_id, tracked.tracker_id)


def test_bad_input_is_named(tmp_path):
    untracked = Detections.empty()
    with pytest.raises(ValueError, match="expected tracked detections"):
        mot_lines(1, untracked)
    with pytest.raises(ValueError, match="frame_number=0: MOTChallenge frames are numbered from 1"):
        mot_lines(0, Detections.empty(tracked=True))
    bad = tmp_path / "bad.txt"
    bad.write_text("1,1,10,10,5,5,1,-1,-1,-1\n2,1,ten,10,5,5\n")
    with pytest.raises(ValueError, match=r"bad\.txt' line 2: expected at least 7 numbers"):
        read_mot(bad)
