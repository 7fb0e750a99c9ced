"""`reidstream train`: train a video ReID model from a recipe; evaluate it; record the results.

    --config FILE (trainers/configs/*.yaml) <- REIDSTREAM_TRAIN_* <- KEY=VALUE
      └─ TrainConfig ─▶ create_dataset ─▶ VideoDataset (num_classes = its training identities)
                     ─▶ build_model (PretrainedCfg + data/eval overrides) ─▶ model
                     ─▶ build_train_loader (P x K, clip sampling, augmentation)
                     ─▶ ReIDLoss, build_optimizer, build_scheduler, evaluate_model
                     ─▶ Trainer.fit ─▶ OUT/config.yaml, last.pt, best.pt, metrics.csv, tb/
                     ─▶ OUT/metrics.json, cmc.png, results.md (trainers.run)

Under ``torchrun --nproc_per_node N`` every process runs this command; the engine wraps the model
in DistributedDataParallel, and rank 0 evaluates and writes. Each rank also writes
``OUT/rank<r>.json`` with a checksum of its final parameters, so a run can show its replicas
agree.

Exit status: 0 done; 2 a configuration error or an unusable dataset / checkpoint.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

import torch

from pipeline.commands.common import add_config_arguments, setup_logging
from pipeline.config import ConfigError, config_to_dict, load_config
from pipeline.train_settings import ENV_PREFIX, TrainConfig
from reid_models import WeightsError
from trainers.checkpoint import CheckpointError
from trainers.data import build_train_loader
from trainers.datasets import DatasetError, VideoDataset, create_dataset
from trainers.distributed import DistInfo, init_distributed, unwrap_model
from trainers.engine import Trainer
from trainers.evaluator import evaluate_model
from trainers.losses import ReIDLoss
from trainers.optim import build_optimizer, build_scheduler
from trainers.run import AMP_DTYPES, EvalRecorder, RunMetrics, build_model, write_run_outputs
from trainers.seeding import seed_everything

__all__ = ["add_parser", "load_train_config", "run", "train"]

logger = logging.getLogger(__name__)

EXIT_USAGE = 2
#: File `trainers.synthetic` writes at the root of every tree it generates.
SYNTHETIC_MANIFEST = "synthetic.json"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a video ReID model from a recipe and evaluate it",
        description="Train the configured model on the configured dataset (recipes: "
        "trainers/configs/*.yaml), evaluate it on the test split and write OUT/config.yaml, "
        "last.pt, best.pt, metrics.csv, metrics.json, cmc.png and results.md "
        "(OUT = train.out_dir). Environment variables use the prefix REIDSTREAM_TRAIN_.",
    )
    parser.add_argument("--out", metavar="DIR", help="train.out_dir: folder for the outputs")
    add_config_arguments(parser)
    parser.set_defaults(run=run)


def load_train_config(
    path: str | Path | None, overrides: list[str], *, out: str | None = None
) -> TrainConfig:
    """Resolves the training configuration (defaults <- FILE <- environment <- overrides)."""
    flags = [f"train.out_dir={out}"] if out is not None else []
    return load_config(
        TrainConfig, path=path, overrides=[*flags, *overrides], env_prefix=ENV_PREFIX
    )


def run(args: argparse.Namespace) -> int:
    cfg = load_train_config(args.config, args.overrides, out=args.out)
    setup_logging(cfg.log_level)
    try:
        outputs = train(cfg)
    except SetupError as e:
        print(f"reidstream train: {e}", file=sys.stderr)
        return EXIT_USAGE
    for path in outputs.values():
        print(f"wrote {path}")
    return 0


class SetupError(ValueError):
    """The run cannot start: a dataset, weights file or builder refused the configuration."""


def train(cfg: TrainConfig) -> dict[str, Path]:
    """Trains and evaluates as `cfg` says; returns the paths rank 0 wrote (empty elsewhere)."""
    dist_info = init_distributed(device=None if cfg.train.device == "auto" else cfg.train.device)
    seed_everything(cfg.train.seed)
    try:
        dataset = open_dataset(cfg)
        cfg = with_num_classes(cfg, dataset)
        model = model_from_config(cfg, pretrained=cfg.model.pretrained)
        recorder = EvalRecorder(evaluator(cfg, dataset, device=dist_info.device))
        trainer = _trainer(cfg, model, dataset, recorder, dist_info)
    except ConfigError:
        raise
    except (DatasetError, CheckpointError, WeightsError, OSError, TypeError, ValueError) as e:
        raise SetupError(str(e)) from e
    trainer.fit()
    model = unwrap_model(model)
    if dist_info.distributed:
        _write_checksum(cfg.train.out_dir, model, dist_info)
    if not dist_info.is_main:
        return {}
    final = recorder.results[-1] if recorder.results else recorder(model)
    return write_run_outputs(
        cfg.train.out_dir,
        metrics=run_metrics(cfg, dataset, final, recorder.best, epochs=cfg.schedule.epochs),
        final=final,
        best=recorder.best,
    )


def _trainer(
    cfg: TrainConfig,
    model: torch.nn.Module,
    dataset: VideoDataset,
    recorder: EvalRecorder,
    dist_info: DistInfo,
) -> Trainer:
    optimizer = _optimizer(cfg, model)
    return Trainer(
        model=model,
        criterion=_criterion(cfg, model),
        optimizer=optimizer,
        scheduler=_scheduler(cfg, optimizer),
        train_loader=_loader(cfg, dataset, model, dist_info),
        out_dir=cfg.train.out_dir,
        epochs=cfg.schedule.epochs,
        evaluate=recorder,
        eval_every=cfg.train.eval_every,
        device=dist_info.device,
        amp_dtype=AMP_DTYPES[cfg.train.amp_dtype],
        grad_clip=cfg.train.grad_clip,
        config=config_to_dict(cfg),
        resume=cfg.train.resume,
        log_every=cfg.train.log_every,
        progress=cfg.train.progress,
        dist_info=dist_info,
    )


def open_dataset(cfg: TrainConfig) -> VideoDataset:
    return create_dataset(
        cfg.data.name, cfg.data.root, split_id=cfg.data.split_id, **cfg.data.options
    )


def with_num_classes(cfg: TrainConfig, dataset: VideoDataset) -> TrainConfig:
    """`cfg` with ``model.num_classes`` derived from the training split (checked if given)."""
    found = dataset.num_train_pids
    given = cfg.model.num_classes
    if given is not None and given < found:
        raise ConfigError(
            f"model.num_classes = {given}: the training split of {cfg.data.name!r} has {found} "
            f"identities; use null to derive it"
        )
    model = dataclasses.replace(cfg.model, num_classes=found if given is None else given)
    return dataclasses.replace(cfg, model=model)


def model_from_config(cfg: TrainConfig, *, pretrained: Path | None) -> torch.nn.Module:
    """The configured model with the data/eval overrides of its `PretrainedCfg` attached."""
    return build_model(
        cfg.model.name,
        num_classes=cfg.model.num_classes or 0,
        overrides=cfg.model.overrides,
        pretrained=pretrained,
        cfg_changes={
            "input_size": cfg.data.input_size,
            "clip_len": cfg.data.clip_len,
            "sampling": cfg.data.sampling,
            "stride": cfg.data.stride,
            "test_clip_len": cfg.eval.test_clip_len,
            "test_sampling": cfg.eval.test_sampling,
            "test_stride": cfg.eval.test_stride,
        },
    )


def evaluator(cfg: TrainConfig, dataset: VideoDataset, *, device: torch.device | str) -> Any:
    """model -> RankResult on the test split of `dataset`, as ``eval.*`` says."""

    def evaluate(model: torch.nn.Module) -> Any:
        model = unwrap_model(model)
        return evaluate_model(
            model,
            dataset,
            cfg=model.pretrained_cfg,
            batch_size=cfg.eval.batch_size,
            device=device,
            workers=cfg.eval.workers,
            protocol=cfg.eval.protocol,
            rerank=cfg.eval.rerank,
            amp_dtype=AMP_DTYPES[cfg.train.amp_dtype],
        )

    return evaluate


def run_metrics(
    cfg: TrainConfig, dataset: VideoDataset, final: Any, best: Any, *, epochs: int | None
) -> RunMetrics:
    return RunMetrics(
        model=cfg.model.name,
        overrides=cfg.model.overrides,
        dataset=dataset_label(cfg),
        split_id=dataset.split_id if dataset.num_splits > 1 else None,
        protocol=cfg.eval.protocol,
        rerank=cfg.eval.rerank,
        epochs=epochs,
        final=final.as_dict(),
        best=None if best is None else best.as_dict(),
    )


def dataset_label(cfg: TrainConfig) -> str:
    """The dataset's name in results: ``synthetic_<format>`` for a `trainers.synthetic` tree, so
    that synthetic runs are never set beside the papers' numbers on the real dataset."""
    synthetic = (Path(cfg.data.root) / SYNTHETIC_MANIFEST).is_file()
    return f"synthetic_{cfg.data.name}" if synthetic else cfg.data.name


def _criterion(cfg: TrainConfig, model: torch.nn.Module) -> ReIDLoss:
    loss = cfg.loss
    return ReIDLoss(
        num_classes=cfg.model.num_classes or 0,
        feature_dim=model.embedding_dim,
        weights={"ce": loss.ce, "triplet": loss.triplet, "oim": loss.oim},
        label_smoothing=loss.label_smoothing,
        triplet_margin=loss.margin,
        triplet_distance=loss.distance,
        oim_scalar=loss.oim_scalar,
        oim_momentum=loss.oim_momentum,
    )


def _optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    o = cfg.optim
    return build_optimizer(
        model,
        name=o.name,
        lr=o.lr,
        weight_decay=o.weight_decay,
        momentum=o.momentum,
        backbone_lr_mult=o.backbone_lr_mult,
    )


def _scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer) -> Any:
    s = cfg.schedule
    return build_scheduler(
        optimizer,
        name=s.name,
        epochs=s.epochs,
        milestones=s.milestones,
        step_size=s.step_size,
        gamma=s.gamma,
        warmup_epochs=s.warmup_epochs,
        warmup_factor=s.warmup_factor,
        decay_start=s.decay_start,
    )


def _loader(
    cfg: TrainConfig, dataset: VideoDataset, model: torch.nn.Module, dist_info: DistInfo
) -> torch.utils.data.DataLoader:
    d = cfg.data
    return build_train_loader(
        dataset.train,
        model.pretrained_cfg,
        batch_size=d.batch_size,
        num_instances=d.instances_per_identity,
        workers=d.workers,
        seed=cfg.train.seed,
        flip=d.flip,
        random_erasing=d.random_erasing,
        pad=d.pad,
        rank=dist_info.rank,
        world_size=dist_info.world_size,
    )


def _write_checksum(out_dir: Path, model: torch.nn.Module, dist_info: DistInfo) -> Path:
    """OUT/rank<r>.json: a hash of this replica's parameters, to compare across ranks."""
    digest = hashlib.sha256()
    # Parameters only: DDP all-reduces gradients, so they must match; BatchNorm running
    # statistics come from each rank's own last batches.
    for name, tensor in sorted(model.named_parameters()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy())
    path = Path(out_dir) / f"rank{dist_info.rank}.json"
    record = {"rank": dist_info.rank, "world_size": dist_info.world_size}
    path.write_text(json.dumps({**record, "sha256": digest.hexdigest()}) + "\n", encoding="utf-8")
    return path
