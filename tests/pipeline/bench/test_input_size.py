"""`reidstream bench detector --input-sizes`: the matching behind its recall and precision, and
its rows (their timings are not checked: they depend on the machine)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.bench.input_size import match_counts
from pipeline.cli import main


def test_boxes_match_one_to_one_at_iou_half():
    reference = np.array([[0, 0, 10, 10], [100, 100, 110, 120]], np.float32)
    found = np.array(
        [
            [0, 0, 10, 10],  # the first, exactly
            [1, 0, 11, 10],  # a duplicate of it (IoU 0.82): the first is taken already
            [100, 100, 110, 110],  # half of the second (IoU 0.5): a match
        ],
        np.float32,
    )
    assert match_counts(reference, found) == 2
    assert match_counts(reference, found, iou=0.6) == 1
    assert match_counts(reference, found[1:2]) == 1
    assert match_counts(reference, found[:0]) == match_counts(reference[:0], found) == 0


def test_the_assignment_maximises_overlap_not_greedy_order():
    """Greedy matching, best IoU first, gives the wide box to A (0.75) and leaves the narrow
    one nothing (B: 0.21); the assignment gives it B (0.62) and the narrow one A (0.7)."""
    reference = np.array([[0, 0, 10, 10], [4, 0, 14, 10]], np.float32)  # A, B
    found = np.array([[1, 0, 12, 10], [0, 0, 7, 10]], np.float32)  # wide, narrow
    assert match_counts(reference, found) == 2
    assert match_counts(reference, found, iou=0.65) == 1  # the wide box's 0.62 no longer counts


@pytest.mark.slow
def test_prints_the_reference_and_one_row_per_size(yolov5n_onnx, pets_video, capsys):
    argv = ["--weights", str(yolov5n_onnx), "--video", str(pets_video), "--frames", "3"]
    assert main(["bench", "detector", *argv, "--input-sizes", "640,320"]) == 0
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| pets")]
    cells = [[cell.strip() for cell in line.split("|")[1:-1]] for line in table]
    assert [row[1:3] for row in cells] == [
        ["640 square", "640x640"],
        ["640", "640x480"],
        ["320", "320x256"],
    ]
    assert cells[0][5:] == ["1.000"] * 4  # the reference against itself
    assert all(float(row[3]) > 0 and 0 <= float(row[5]) <= 1 for row in cells)
