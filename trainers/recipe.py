"""A training run from its recipe: `trainers.settings.TrainConfig` turned into the run's parts.

    TrainConfig ─▶ open_dataset ─▶ VideoDataset (num_classes = its training identities)
                ─▶ model_from_config (PretrainedCfg + data/eval overrides) ─▶ model
                ─▶ build_train_loader (P x K, clip sampling, augmentation)
                ─▶ ReIDLoss, build_optimizer, build_scheduler, evaluator
                ─▶ Trainer.fit ─▶ OUT/config.yaml, last.pt, best.pt, metrics.csv, tb/
                ─▶ OUT/metrics.json, cmc.png, results.md (trainers.run)

    evaluate_checkpoints(configs, states) ─▶ RankResult per checkpoint, or their mean over the
                                             identity splits (iLIDS-VID, PRID2011)

Under ``torchrun --nproc_per_node N`` every process runs `train`; the engine wraps the model in
DistributedDataParallel, and rank 0 evaluates and writes. Each rank also writes
``OUT/rank<r>.json`` with a checksum of its final parameters, so a run can show its replicas
agree. `reidstream train` and `reidstream eval` resolve the configuration and call this module.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from reid_models import WeightsError
from trainers.checkpoint import CheckpointError
from trainers.data import build_train_loader
from trainers.datasets import DatasetError, VideoDataset, create_dataset
from trainers.distributed import DistInfo, process_group, unwrap_model
from trainers.engine import Trainer
from trainers.evaluation import RankResult, mean_over_splits
from trainers.evaluator import evaluate_model
from trainers.losses import ReIDLoss
from trainers.optim import build_optimizer, build_scheduler
from trainers.run import AMP_DTYPES, EvalRecorder, RunMetrics, build_model, write_run_outputs
from trainers.seeding import seed_everything
from trainers.settings import TrainConfig

__all__ = [
    "SetupError",
    "dataset_label",
    "evaluate_checkpoints",
    "evaluator",
    "model_from_config",
    "open_dataset",
    "run_metrics",
    "train",
    "with_num_classes",
]

logger = logging.getLogger(__name__)

#: File `trainers.synthetic` writes at the root of every tree it generates.
SYNTHETIC_MANIFEST = "synthetic.json"


class SetupError(ValueError):
    """The run cannot start: a dataset, weights file, checkpoint or builder refused the
    configuration (the message says which)."""


def train(
    cfg: TrainConfig, *, record: Callable[[TrainConfig], Mapping[str, Any]]
) -> dict[str, Path]:
    """Trains and evaluates as `cfg` says; returns the paths rank 0 wrote (empty elsewhere).

    Args:
        cfg: The resolved recipe.
        record: Turns the configuration, once resolved (`model.num_classes` derived from the
            dataset), into the plain data every checkpoint stores (`reidstream eval` rebuilds
            the run from it): `pipeline.config.config_to_dict` for `reidstream train`.

    Raises:
        SetupError: The dataset, the weights or a builder refused the configuration.
    """
    device = None if cfg.train.device == "auto" else cfg.train.device
    with process_group(device=device) as dist_info:
        return _train(cfg, record, dist_info)


def _train(
    cfg: TrainConfig, record: Callable[[TrainConfig], Mapping[str, Any]], dist_info: DistInfo
) -> dict[str, Path]:
    seed_everything(cfg.train.seed)
    try:
        dataset = open_dataset(cfg)
        cfg = with_num_classes(cfg, dataset)
        model = model_from_config(cfg, pretrained=cfg.model.pretrained)
        recorder = EvalRecorder(evaluator(cfg, dataset, device=dist_info.device))
        trainer = _trainer(cfg, record, model, dataset, recorder, dist_info)
    except SetupError:
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
    record: Callable[[TrainConfig], Mapping[str, Any]],
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
        config=dict(record(cfg)),
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
        raise SetupError(
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


def evaluate_checkpoints(
    configs: Sequence[TrainConfig], states: Sequence[dict], *, all_splits: bool
) -> tuple[RankResult, RunMetrics]:
    """Evaluates each checkpoint (its state and resolved configuration) on its test split.

    iLIDS-VID and PRID2011 are reported as the mean over their 10 identity splits: a model
    trained on split k has seen the other splits' test identities, so each split needs its own
    checkpoint. With `all_splits` the checkpoints (one per split, each config naming its
    ``data.split_id``) are evaluated on their own splits and averaged.

    Returns:
        The result (or the mean over the splits) and the metrics record to write.

    Raises:
        SetupError: The checkpoints do not fit together, or a dataset cannot be read.
    """
    _check_splits(configs, all_splits=all_splits)
    try:
        results = [_evaluate(cfg, state) for cfg, state in zip(configs, states, strict=True)]
    except (DatasetError, FileNotFoundError, ValueError) as e:
        raise SetupError(str(e)) from e
    final = mean_over_splits([r for r, _ in results]) if len(results) > 1 else results[0][0]
    metrics = run_metrics(configs[0], results[0][1], final, None, epochs=states[0].get("epoch"))
    if len(results) > 1:
        metrics = dataclasses.replace(metrics, split_id=None)
    return final, metrics


def _check_splits(configs: Sequence[TrainConfig], *, all_splits: bool) -> None:
    if len(configs) == 1 and not all_splits:
        return
    if not all_splits:
        raise SetupError(f"{len(configs)} checkpoints given: pass --all-splits to average them")
    keys = {(c.model.name, str(c.model.overrides), c.data.name) for c in configs}
    if len(keys) > 1:
        raise SetupError(f"--all-splits needs one model and dataset; the checkpoints hold {keys}")
    splits = [c.data.split_id for c in configs]
    if len(set(splits)) != len(splits):
        raise SetupError(f"--all-splits needs one checkpoint per split, got split_ids {splits}")


def _evaluate(cfg: TrainConfig, state: dict) -> tuple[RankResult, VideoDataset]:
    dataset = open_dataset(cfg)
    logger.info("%s split %d of %d", cfg.data.name, dataset.split_id, dataset.num_splits)
    model = model_from_config(cfg, pretrained=None)
    model.load_state_dict(state["state_dict"])
    device = cfg.train.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return evaluator(cfg, dataset, device=device)(model), dataset
