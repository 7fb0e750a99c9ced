"""End to end: `reidstream train` with the synthetic recipe learns to re-identify.

c2d_r18 at 64x32, T = 4, from random init, 12 epochs on a synthetic MARS-format dataset (24
train ids, 16 test ids, 6 tracklets each, 16 frames) takes a few CPU minutes. Chance is measured
on the same query/gallery split as the mean mAP of random distances (6.1 % for this seed: 51
queries against 102 gallery tracklets, a few true matches each); the trained model must clear it
by `MARGIN` mAP points, a bar the run reaches with a wide margin.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.bench.temporal import chance_map
from pipeline.cli import main
from trainers.datasets import create_dataset
from trainers.synthetic.mars import generate_mars

RECIPE = Path(__file__).resolve().parents[2] / "trainers" / "configs" / "synthetic_c2d.yaml"
#: mAP points above chance the trained model must reach.
MARGIN = 30.0


@pytest.mark.slow
def test_synthetic_c2d_training_far_above_chance(tmp_path: Path) -> None:
    root = generate_mars(
        tmp_path / "mars",
        num_train_ids=24,
        num_test_ids=16,
        tracklets_per_id=6,
        size=(64, 32),
        seed=0,
    )
    chance = chance_map(create_dataset("mars", root))
    out = tmp_path / "run"
    assert main(["train", "--config", str(RECIPE), "--out", str(out), f"data.root={root}"]) == 0
    final = json.loads((out / "metrics.json").read_text())["final"]
    assert final["mAP"] > chance + MARGIN, (final, chance)
    assert final["rank1"] > final["mAP"] / 2
