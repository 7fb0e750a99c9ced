"""`reidstream train`, `eval` and `results` on a tiny synthetic MARS-format dataset.

One 1-epoch run of c2d_r18 (64x32, T=4) is shared by the module: its checkpoint is evaluated
again, resumed, tabulated; broken configurations and inputs fail with exit status 2 and a message
naming the problem.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from pipeline.cli import main
from trainers.synthetic.mars import generate_mars

RECIPE = Path(__file__).resolve().parents[3] / "trainers" / "configs" / "synthetic_c2d.yaml"
TINY = [
    "schedule.epochs=1",
    "schedule.milestones=[1]",
    "data.batch_size=8",
    "data.instances_per_identity=2",
    "eval.test_clip_len=8",
]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "mars"
    return generate_mars(
        root,
        num_train_ids=8,
        num_test_ids=6,
        tracklets_per_id=3,
        frames_per_tracklet=8,
        size=(64, 32),
        seed=3,
    )


@pytest.fixture(scope="module")
def run_dir(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "c2d_r18"
    args = ["train", "--config", str(RECIPE), "--out", str(out), f"data.root={data_root}", *TINY]
    assert main(args) == 0
    return out


def _metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def test_train_writes_every_output(run_dir: Path) -> None:
    names = {p.name for p in run_dir.iterdir()}
    assert {"config.yaml", "last.pt", "best.pt", "metrics.csv", "metrics.json"} <= names
    assert {"cmc.png", "results.md"} <= names
    assert (run_dir / "cmc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = _metrics(run_dir)
    assert metrics["model"] == "c2d_r18" and metrics["dataset"] == "synthetic_mars"
    assert 0 < metrics["final"]["mAP"] <= 100
    stored = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert stored["model"]["num_classes"] == 8  # derived from the training identities
    assert stored["data"]["input_size"] == [64, 32]
    assert "| c2d_r18 | synthetic_mars |" in (run_dir / "results.md").read_text()


def test_eval_of_the_checkpoint_reproduces_the_final_metrics(run_dir: Path, tmp_path: Path) -> None:
    assert main(["eval", "--checkpoint", str(run_dir / "last.pt"), "--out", str(tmp_path)]) == 0
    again = _metrics(tmp_path)
    assert again["final"] == pytest.approx(_metrics(run_dir)["final"], abs=1e-6)
    assert again["epochs"] == 1


def test_eval_overrides_the_stored_configuration(run_dir: Path, tmp_path: Path) -> None:
    args = ["eval", "--checkpoint", str(run_dir / "best.pt"), "--out", str(tmp_path)]
    assert main([*args, "eval.protocol=torchreid"]) == 0
    assert _metrics(tmp_path)["protocol"] == "torchreid"


def test_resume_continues_from_the_checkpoint(run_dir: Path, data_root: Path, tmp_path) -> None:
    out = tmp_path / "resumed"
    shutil.copytree(run_dir, out)
    args = ["train", "--config", str(RECIPE), "--out", str(out), f"data.root={data_root}", *TINY]
    assert main([*args, f"train.resume={out / 'last.pt'}", "schedule.epochs=2"]) == 0
    rows = (out / "metrics.csv").read_text().strip().splitlines()
    assert len(rows) == 3  # header, epoch 1 from the first run, epoch 2 resumed
    assert _metrics(out)["epochs"] == 2


def test_results_puts_measured_beside_published(run_dir: Path, capsys) -> None:
    assert main(["results", "--runs", str(run_dir.parent)]) == 0
    table = capsys.readouterr().out
    published = next(line for line in table.splitlines() if "ResNet-18 C2D" in line)
    assert "| mars | ap3d |" in published and "86.90" in published and "79.00" in published
    measured = next(line for line in table.splitlines() if "synthetic_mars" in line)
    assert "| synthetic_mars | mars |" in measured  # the recipe's eval.protocol
    map_cell = f"{_metrics(run_dir)['final']['mAP']:.2f}"
    assert "c2d_r18" in measured and map_cell in measured


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["optim.lr=fast"], "optim.lr = 'fast'"),
        (["loss.tripplet=1"], "Did you mean 'loss.triplet'?"),
        (["model.num_classes=3"], "has 8 identities"),
        (["model.name=c2d_r19"], "c2d_r18"),
    ],
)
def test_broken_configuration_exits_2(data_root: Path, tmp_path, capsys, extra, message) -> None:
    args = ["train", "--config", str(RECIPE), "--out", str(tmp_path), f"data.root={data_root}"]
    assert main([*args, *TINY, *extra]) == 2
    assert message in capsys.readouterr().err


def test_missing_dataset_and_checkpoint_exit_2(tmp_path: Path, capsys) -> None:
    args = ["train", "--config", str(RECIPE), "--out", str(tmp_path)]
    assert main([*args, f"data.root={tmp_path / 'nowhere'}", *TINY]) == 2
    assert "reidstream train:" in capsys.readouterr().err
    assert main(["eval", "--checkpoint", str(tmp_path / "none.pt")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_eval_refuses_two_checkpoints_of_one_split(run_dir: Path, capsys) -> None:
    last = str(run_dir / "last.pt")
    assert main(["eval", "--checkpoint", last, last]) == 2
    assert "--all-splits" in capsys.readouterr().err
    assert main(["eval", "--all-splits", "--checkpoint", last, last]) == 2
    assert "one checkpoint per split" in capsys.readouterr().err
