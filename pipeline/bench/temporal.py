"""`reidstream bench temporal`: does temporal modelling pay off? C2D against a temporal
ResNet-18 on motion-only identities.

    reidstream bench temporal [--root DIR] [--epochs 12] [--ids 24] [--models c2d_r18 ap3d_r18]
        [--clip-len 4] [--sampling stride|consecutive] [--stride 2] [--device cpu] [--workers 0]

    generate_mars(motion_only=True): people come in groups that look identical and differ only
    in walking cadence, which a bag of frames cannot see (trainers/synthetic/identities.py)
      └─ for each model: the recipe of trainers/configs/synthetic_*.yaml (ResNet-18, 64x32,
         T = 4, Adam, CE + cosine triplet), same seed, same data ─▶ mAP, rank-1

Prints one line per model and the chance level of that gallery (the mean mAP of random
distances). Figures only: nothing is asserted. The question is open, not settled: in the runs
recorded in the README (ResNet-18 from random initialisation, up to 30 epochs, T = 4 or 8), the
temporal models did NOT beat C2D on these identities. Every model reached the same mAP, and its
rank-1 stayed below the one-in-three of guessing within a group, so the models separate groups
by appearance and camera and have not learnt the cadence.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from trainers.data import build_train_loader
from trainers.datasets import VideoDataset, create_dataset
from trainers.engine import Trainer
from trainers.evaluation import RankResult, evaluate_rank
from trainers.evaluator import evaluate_model
from trainers.losses import ReIDLoss
from trainers.optim import build_optimizer, build_scheduler
from trainers.run import build_model
from trainers.seeding import seed_everything
from trainers.synthetic.mars import generate_mars

__all__ = ["CFG_CHANGES", "chance_map", "run", "train_one"]

logger = logging.getLogger(__name__)

#: The synthetic recipe (trainers/configs/synthetic_c2d.yaml) as library arguments.
CFG_CHANGES = {
    "input_size": (64, 32),
    "clip_len": 4,
    "sampling": "stride",
    "stride": 2,
    "test_clip_len": 16,
}
BATCH_SIZE, NUM_INSTANCES, LR = 16, 4, 1e-3


def chance_map(dataset: VideoDataset, *, repeats: int = 20, seed: int = 0) -> float:
    """Mean mAP (percent) of uniformly random distances on this query/gallery split."""
    rng = np.random.default_rng(seed)
    q_pids = np.array([t.pid for t in dataset.query])
    g_pids = np.array([t.pid for t in dataset.gallery])
    q_cams = np.array([t.camid for t in dataset.query])
    g_cams = np.array([t.camid for t in dataset.gallery])
    maps = []
    for _ in range(repeats):
        distmat = rng.random((len(q_pids), len(g_pids)), dtype=np.float32)
        maps.append(evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams).mAP)
    return 100 * float(np.mean(maps))


def train_one(
    name: str,
    dataset: VideoDataset,
    *,
    epochs: int,
    out_dir: Path,
    cfg_changes: dict,
    device: str = "cpu",
    workers: int = 0,
    seed: int = 1,
) -> RankResult:
    """Trains `name` with the synthetic recipe on `dataset`'s train split; evaluates on test."""
    seed_everything(seed)
    model = build_model(name, num_classes=dataset.num_train_pids, cfg_changes=cfg_changes)
    optimizer = build_optimizer(model, name="adam", lr=LR, weight_decay=5e-4)
    loader = build_train_loader(
        dataset.train,
        model.pretrained_cfg,
        batch_size=BATCH_SIZE,
        num_instances=NUM_INSTANCES,
        workers=workers,
        seed=seed,
        pad=0,
    )

    def evaluate(m: torch.nn.Module) -> RankResult:
        return evaluate_model(
            m, dataset, cfg=model.pretrained_cfg, batch_size=16, device=device, workers=workers
        )

    trainer = Trainer(
        model=model,
        criterion=ReIDLoss(
            num_classes=dataset.num_train_pids,
            feature_dim=model.embedding_dim,
            weights={"ce": 1.0, "triplet": 1.0},
            triplet_distance="cosine",
        ),
        optimizer=optimizer,
        scheduler=build_scheduler(
            optimizer, name="multistep", epochs=epochs, milestones=[max(1, 3 * epochs // 4)]
        ),
        train_loader=loader,
        out_dir=out_dir / name,
        epochs=epochs,
        evaluate=None,
        eval_every=0,
        device=device,
        amp_dtype=None,
        grad_clip=None,
        config={"model": name, "epochs": epochs, **cfg_changes},
        progress=False,
    )
    trainer.fit()
    model.eval()
    return evaluate(model)


def run(
    *,
    root: Path | None = None,
    epochs: int = 12,
    ids: int = 24,
    models: Sequence[str] = ("c2d_r18", "ap3d_r18"),
    out: Path | None = None,
    clip_len: int | None = None,
    sampling: str | None = None,
    stride: int | None = None,
    device: str = "cpu",
    workers: int = 0,
) -> dict[str, RankResult]:
    """Trains and evaluates each of `models` on the motion-only identities; prints a line per
    model after the dataset's chance level. Returns each model's result.

    Args:
        root: The dataset; generated there when it holds none (default: a temporary folder).
        ids: Train and test identities each, when the dataset is generated.
        out: Checkpoints folder (default: a temporary one).
        clip_len, sampling, stride: Training clips (default: the synthetic recipe's,
            `CFG_CHANGES`).
        workers: Loader processes.
    """
    recipe = {"clip_len": clip_len, "sampling": sampling, "stride": stride}
    cfg_changes = CFG_CHANGES | {k: v for k, v in recipe.items() if v is not None}
    clips = f"T={cfg_changes['clip_len']} {cfg_changes['sampling']} {cfg_changes['stride']}"
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        dataset = _motion_only_dataset(root or Path(tmp) / "mars", ids=ids)
        for name in models:
            started = time.perf_counter()
            results[name] = train_one(
                name,
                dataset,
                epochs=epochs,
                out_dir=out or Path(tmp),
                cfg_changes=cfg_changes,
                device=device,
                workers=workers,
            )
            figures = results[name].as_dict()
            print(
                f"{name:10s} mAP {figures['mAP']:6.2f}  rank-1 {figures['rank1']:6.2f}  "
                f"rank-5 {figures['rank5']:6.2f}  ({epochs} epochs, {clips}, "
                f"{time.perf_counter() - started:.0f} s on {device})"
            )
    return results


def _motion_only_dataset(root: Path, *, ids: int) -> VideoDataset:
    """The dataset at `root`, generated first where `root` holds none; prints its chance mAP."""
    if not (root / "info").is_dir():
        generate_mars(
            root,
            num_train_ids=ids,
            num_test_ids=ids,
            tracklets_per_id=6,
            size=(64, 32),
            motion_only=True,
            group_size=3,
            seed=0,
        )
    dataset = create_dataset("mars", root)
    print(
        f"motion-only synthetic MARS: {dataset.num_train_pids} train ids, "
        f"{len(dataset.query)} queries x {len(dataset.gallery)} gallery; chance mAP "
        f"{chance_map(dataset):.2f}"
    )
    return dataset
