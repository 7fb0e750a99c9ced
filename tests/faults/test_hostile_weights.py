"""Fault: a hostile `.pt` (a pickle whose loading would create a marker file) given to
`reidstream run` as the detector's weights and as BoT-SORT's appearance model.

Guarantee: refused at start with exit status 2 and an error naming the file; no code from it
runs (the marker is absent); no link is made (the table's counts are n/a).
"""

from __future__ import annotations

import pytest
import torch

from tests.detectors.test_safe_loading import _Payload
from tests.faults.harness import ROWS, Row, Site, kill

pytestmark = [pytest.mark.faults, pytest.mark.slow]

WAYS = {
    "detector weights": ["detector.name=ultralytics", "synthetic.detections=detector"],
    "tracker.reid_model": ["tracker.name=botsort", "tracker.with_reid=true"],
}
KEY = {"detector weights": "detector.weights", "tracker.reid_model": "tracker.reid_model"}


@pytest.mark.parametrize("way", WAYS)
def test_a_hostile_pt_is_refused_before_it_runs_code(tmp_path, way):
    marker, path = tmp_path / "MARKER", tmp_path / "hostile.pt"
    torch.save({"model": _Payload(marker), "epoch": 1, "train_args": {}}, path)
    site = Site("127.0.0.1:9", tmp_path)
    run = site.start("run", "run", "output.sinks=[jsonl]", *WAYS[way], f"{KEY[way]}={path}")
    try:
        status = run.wait(120)
    finally:
        kill(run)
    log = site.log("run").read_text()
    refused = status == 2 and "hostile.pt" in log and "Traceback" not in log
    ROWS.append(
        Row(
            f"hostile .pt as {way}: {'refused' if refused else 'NOT refused'}",
            None,
            None,
            None,
            None,
            None,
            None,
            "marker " + ("created" if marker.exists() else "absent"),
        )
    )
    assert not marker.exists()
    assert status == 2, log[-3000:]
    assert "hostile.pt" in log and "Traceback" not in log, log[-3000:]
    assert not site.made("run")
