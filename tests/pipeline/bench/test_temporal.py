"""`reidstream bench temporal` on the smallest run that trains: the chance level and one line per
model (figures are printed, not checked: one epoch on six identities learns little)."""

from __future__ import annotations

import re

import pytest

from pipeline.bench.temporal import CFG_CHANGES, chance_map
from pipeline.cli import main
from trainers.datasets import create_dataset
from trainers.synthetic.mars import generate_mars


@pytest.fixture(scope="module")
def motion_only(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("temporal") / "mars"
    generate_mars(
        root, num_train_ids=6, num_test_ids=6, tracklets_per_id=6, size=(64, 32),
        motion_only=True, group_size=3, seed=0,
    )  # fmt: skip
    return root


def test_chance_map_is_a_percentage_above_zero_and_repeatable(motion_only):
    dataset = create_dataset("mars", motion_only)
    chance = chance_map(dataset)
    assert 0 < chance < 100
    assert chance_map(dataset) == chance and chance_map(dataset, seed=1) != chance


def test_the_command_trains_each_model_and_prints_its_figures(motion_only, tmp_path, capsys):
    argv = ["--root", str(motion_only), "--epochs", "1", "--models", "c2d_r18", "--out"]
    assert main(["bench", "temporal", *argv, str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert (
        lines[0].startswith("motion-only synthetic MARS: 6 train ids") and "chance mAP" in lines[0]
    )
    recipe = f"T={CFG_CHANGES['clip_len']} {CFG_CHANGES['sampling']} {CFG_CHANGES['stride']}"
    assert re.match(
        rf"c2d_r18 +mAP +[\d.]+ +rank-1 +[\d.]+ +rank-5 +[\d.]+ +\(1 epochs, {recipe},", lines[1]
    )
    assert (tmp_path / "c2d_r18").is_dir()  # the checkpoints went to --out
