"""`reidstream bench loader`: the loader's figures on a small MARS tree are positive and describe
the model's clips (never speed thresholds: the machines are shared), and a root that is not a MARS
tree is the user's error."""

from __future__ import annotations

import pytest

from pipeline.bench.loader import bench_loader
from pipeline.cli import main
from reid_models import create_model
from trainers.datasets import create_dataset
from trainers.synthetic.mars import generate_mars


@pytest.fixture(scope="module")
def mars_root(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("loader") / "mars"
    return generate_mars(root, num_train_ids=8, num_test_ids=2, tracklets_per_id=2, seed=0)


@pytest.mark.parametrize("workers", [0, 1])
def test_the_figures_are_positive_and_the_clips_are_the_models(mars_root, workers):
    cfg = create_model("c2d_r18").pretrained_cfg
    train = create_dataset("mars", mars_root).train
    figures = bench_loader(
        train, cfg, workers=workers, batch_size=8, num_instances=2, seconds=0.3,
        single_seconds=0.1,
    )  # fmt: skip
    assert figures.decode_fps > 0 and figures.single_process_cps > 0 and figures.loader_cps > 0
    assert figures.batches >= 1 and figures.seconds >= 0.3
    assert (figures.workers, figures.batch_size) == (workers, 8)
    assert figures.clip_shape == (cfg.input_size[0], cfg.train_clip_len, *cfg.input_size[1:])


@pytest.mark.slow
def test_the_command_prints_every_figure(mars_root, capsys):
    argv = ["--root", str(mars_root), "--model", "c2d_r18", "--workers", "1", "--batch", "8"]
    assert main(["bench", "loader", *argv, "--instances", "2", "--seconds", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "model c2d_r18: clips 3x" in out and "16 train tracklets" in out
    for figure in ("decode, 1 process:", "dataset, 1 process:", "loader, 1 workers, batch 8:"):
        assert figure in out


def test_a_root_that_is_not_a_mars_tree_exits_2(tmp_path, capsys):
    assert main(["bench", "loader", "--root", str(tmp_path / "nothing"), "--seconds", "0"]) == 2
    assert "nothing" in capsys.readouterr().err
