"""`reidstream train` under ``torchrun --nproc_per_node 2`` on the CPU (Gloo): the replicas agree.

Each rank writes ``rank<r>.json`` with a SHA-256 of its final parameters; DistributedDataParallel
all-reduces the gradients, so after one epoch on different batches the two hashes must be equal.
Rank 0 alone evaluates and writes the metrics.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from trainers.synthetic.mars import generate_mars

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "trainers" / "configs" / "synthetic_c2d.yaml"


@pytest.mark.slow
def test_two_cpu_ranks_train_identical_replicas(tmp_path: Path) -> None:
    data = generate_mars(
        tmp_path / "mars",
        num_train_ids=8,
        num_test_ids=4,
        tracklets_per_id=4,
        frames_per_tracklet=8,
        size=(64, 32),
        seed=5,
    )
    out = tmp_path / "run"
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    command = [
        torchrun,
        "--standalone",  # a free local port, no external rendezvous
        "--nproc_per_node",
        "2",
        "-m",
        "pipeline",
        "train",
        "--config",
        str(RECIPE),
        "--out",
        str(out),
        f"data.root={data}",
        "schedule.epochs=1",
        "schedule.milestones=[1]",
        "data.batch_size=4",
        "data.instances_per_identity=2",
        "eval.test_clip_len=8",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert ranks[0]["sha256"] == ranks[1]["sha256"]
    assert json.loads((out / "metrics.json").read_text())["final"]["mAP"] > 0
    assert (
        done.stdout.count("wrote ") == 3
    )  # rank 0 alone reports metrics.json, cmc.png, results.md
