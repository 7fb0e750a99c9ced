"""`Trainer`: the epoch loop every paper's recipe runs through.

    for epoch in start..epochs-1:
        sampler.set_epoch(epoch)
        for (clips (B, C, T, H, W), pids (B,), ...) in train_loader:
            autocast(amp_dtype): output = model(clips)            # TrainOutput
            total, parts = criterion(output as float32, pids)   # ReIDLoss
            non-finite on any rank? -> every rank skips the step (counted, logged)
            backward (GradScaler for fp16 on CUDA) -> clip_grad_norm_ -> optimizer.step
        scheduler.step()                                          # per-epoch schedules
        every `eval_every` epochs and at the end: evaluate(model) on rank 0 -> RankResult
        last.pt (full state), best.pt (best mAP), metrics.csv row, TensorBoard scalars

Exact resume: ``last.pt`` holds model, optimizer, scheduler, GradScaler, epoch, global step,
best metric and, per rank, the Python/NumPy/torch random states and any loader component's
``state_dict``; samplers are re-seeded by ``set_epoch``. Training k epochs, stopping and
resuming to N therefore gives the same parameters, bit for bit, as N epochs straight (on the
same device and kernels). Evaluation runs inside `preserved_rng`, so how often a run evaluates
does not change its training trajectory. Checkpoints are written at epoch ends only.

Losses are computed in float32 on the autocast output (triplet distances in bfloat16 lose the
small differences that batch-hard mining ranks). Distributed runs (torchrun, DDP) follow
`trainers.distributed`: only rank 0 writes or evaluates, and every decision that ends or skips
work is agreed by all ranks.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from reid_models.base import TrainOutput
from reid_models.spec import SPEC_KEY, model_spec
from trainers.checkpoint import (
    TRAIN_STATE_FORMAT,
    WEIGHTS_FORMAT,
    load_checkpoint,
    plain,
    save_checkpoint,
)
from trainers.distributed import (
    DistInfo,
    all_gather_object,
    all_mean,
    all_true,
    broadcast_object,
    current_dist_info,
    wrap_model,
)
from trainers.logs import MetricsCSV, open_tensorboard, progress_bar
from trainers.seeding import preserved_rng, rng_state, set_rng_state

__all__ = ["NonFiniteLossError", "Trainer"]

logger = logging.getLogger(__name__)

AMP_DTYPES = (None, torch.float16, torch.bfloat16)
#: DataLoader parts whose ``state_dict`` (when they have one) is saved for an exact resume.
_LOADER_PARTS = ("sampler", "batch_sampler", "dataset")


class NonFiniteLossError(RuntimeError):
    """Too many consecutive training steps had a non-finite loss."""


class Trainer:
    """Trains one model with one criterion; see the module docstring for the loop.

    Args:
        model: The unwrapped model; moved to `device`, wrapped in DDP when a process group of
            several ranks is initialised.
        criterion: ``criterion(output, pids) -> (total, parts)`` (`trainers.losses.ReIDLoss`).
        optimizer: Built on `model`'s parameters (`trainers.optim.build_optimizer`).
        scheduler: Stepped once per epoch (`trainers.optim.build_scheduler`).
        train_loader: Yields ``(clips, pids, ...)`` batches; its sampler's (or batch
            sampler's, or dataset's) ``set_epoch(epoch)`` is called before every epoch.
        out_dir: Receives ``last.pt``, ``best.pt``, ``metrics.csv``, ``config.yaml``, ``tb/``.
        epochs: Total epochs.
        evaluate: Maps the (eval-mode) model to a `RankResult` (or a mapping with ``mAP``);
            None trains without evaluation (no ``best.pt``).
        eval_every: Evaluate after every `eval_every` epochs; 0 only after the last one.
        device: Training device.
        amp_dtype: ``torch.bfloat16`` / ``torch.float16`` autocast, or None for float32.
            A GradScaler is used only for float16 on CUDA.
        grad_clip: Max global gradient norm (`clip_grad_norm_`), or None.
        config: The resolved configuration; stored in checkpoints and ``config.yaml``.
        model_spec: What rebuilds the model from a checkpoint alone (`reid_models.model_spec`),
            stored under ``"model"`` in ``last.pt`` and ``best.pt``; None takes
            ``model_spec(model)`` when `create_model` built the model (it then carries the
            ``pretrained_cfg`` attached at this point, e.g. by `trainers.run.build_model` with
            the run's input size and clip lengths), and stores none for other models.
        resume: A ``last.pt`` to continue from.
        log_every: Steps between TensorBoard step scalars.
        progress: Show a tqdm bar (rank 0, terminal only).
        max_nonfinite_steps: Consecutive non-finite losses tolerated before
            `NonFiniteLossError`.
        find_unused_parameters: DDP's option; None decides from ``model.detached_parameters``.
        dist_info: This process's place in the job; None reads the initialised process group.
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        criterion: nn.Module,
        optimizer: Optimizer,
        scheduler: LRScheduler,
        train_loader: Any,
        out_dir: Path,
        epochs: int,
        evaluate: Callable[[nn.Module], Any] | None,
        eval_every: int,
        device: torch.device | str,
        amp_dtype: torch.dtype | None,
        grad_clip: float | None,
        config: Mapping[str, Any],
        model_spec: Mapping[str, Any] | None = None,
        resume: Path | None = None,
        log_every: int = 20,
        progress: bool = True,
        max_nonfinite_steps: int = 10,
        find_unused_parameters: bool | None = None,
        dist_info: DistInfo | None = None,
    ) -> None:
        _validate(epochs, eval_every, log_every, amp_dtype, grad_clip, max_nonfinite_steps)
        self.device = torch.device(device)
        self.dist = dist_info or current_dist_info(self.device)
        self.model = model.to(self.device)
        self.criterion = criterion.to(self.device)
        self.train_model = wrap_model(
            self.model, self.dist, find_unused_parameters=find_unused_parameters
        )
        self.optimizer, self.scheduler, self.train_loader = optimizer, scheduler, train_loader
        self.out_dir, self.epochs, self.evaluate = Path(out_dir), epochs, evaluate
        self.eval_every, self.amp_dtype, self.grad_clip = eval_every, amp_dtype, grad_clip
        self.config = plain(config)
        self.model_spec = dict(model_spec) if model_spec is not None else _spec_of(model)
        self.resume = Path(resume) if resume is not None else None
        self.log_every, self.progress = log_every, progress
        self.max_nonfinite_steps = max_nonfinite_steps
        self.scaler = torch.amp.GradScaler(
            "cuda", enabled=amp_dtype == torch.float16 and self.device.type == "cuda"
        )
        self.epoch = 0  # finished epochs
        self.global_step = 0  # optimizer steps taken
        self.best_metric = -math.inf
        self.best_epoch = 0
        self.nonfinite_steps = 0  # skipped steps over the whole run
        self.last_metrics: dict[str, float] = {}
        self._consecutive_nonfinite = 0
        self._grads_checked = False
        self._tb = None

    # ------------------------------------------------------------------ the loop
    def fit(self) -> dict[str, float]:
        """Trains to `epochs` (from `resume` if given) and returns the final figures.

        Returns:
            ``epoch``, ``global_step``, ``best_epoch``, ``best_mAP`` (percent, NaN without
            evaluation), ``nonfinite_steps``, the last epoch's ``loss_<part>`` means and the
            last evaluation's metrics (percent).
        """
        resumed = self.resume is not None
        if resumed:
            self._load(self.resume)
        csv = self._open_records(resumed)
        train_stats: dict[str, float] = {}
        try:
            for epoch in range(self.epoch, self.epochs):
                started = time.perf_counter()
                lrs = {
                    g.get("name", str(i)): g["lr"]
                    for i, g in enumerate(self.optimizer.param_groups)
                }
                train_stats = self._train_epoch(epoch)
                self.scheduler.step()
                self.epoch = epoch + 1
                metrics = self._maybe_evaluate()
                self._save(metrics)
                train_stats["epoch_time_s"] = time.perf_counter() - started
                self._record(csv, lrs, train_stats, metrics)
        finally:
            if self._tb is not None:
                self._tb.close()
                self._tb = None
        return self._final(train_stats)

    def _open_records(self, resumed: bool) -> MetricsCSV | None:
        """``config.yaml``, the CSV and the TensorBoard writer (rank 0; None elsewhere)."""
        if not self.dist.is_main:
            return None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / "config.yaml").write_text(yaml.safe_dump(self.config, sort_keys=False))
        resume_epoch = self.epoch if resumed else None
        csv = MetricsCSV(self.out_dir / "metrics.csv", resume_epoch=resume_epoch)
        purge_step = self.global_step if resumed else None
        self._tb = open_tensorboard(self.out_dir / "tb", purge_step=purge_step)
        return csv

    @torch.enable_grad()  # whatever the caller's grad mode, training needs gradients
    def _train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the loader; returns the epoch means of the loss parts (all ranks)."""
        self.train_model.train()
        _set_epoch(self.train_loader, epoch)
        sums: dict[str, float] = {}
        steps = skipped = 0
        norms: list[float] = []
        total = len(self.train_loader) if hasattr(self.train_loader, "__len__") else None
        desc = f"epoch {epoch + 1}/{self.epochs}"
        with progress_bar(total, enabled=self.progress and self.dist.is_main, desc=desc) as bar:
            for batch in self.train_loader:
                bar.update(1)
                parts, grad_norm = self._train_step(batch, epoch)
                if parts is None:
                    skipped += 1
                    continue
                steps += 1
                for key, value in parts.items():
                    sums[key] = sums.get(key, 0.0) + value
                if grad_norm is not None:
                    norms.append(grad_norm)
                if self.global_step % self.log_every == 0:
                    self._log_step(parts, grad_norm)
                    bar.set_postfix(loss=f"{parts.get('total', math.nan):.4f}")
        stats = {f"loss_{k}": v / steps for k, v in sums.items()} if steps else {}
        if norms:
            stats["grad_norm"] = sum(norms) / len(norms)
        stats = all_mean(stats)
        stats["nonfinite_steps"] = skipped
        return stats

    def _train_step(self, batch: Any, epoch: int) -> tuple[dict[str, float] | None, float | None]:
        """Forward, loss, backward and update on one batch; (None, None) when skipped."""
        clips, pids = batch[0].to(self.device, non_blocking=True), batch[1].to(self.device)
        with torch.autocast(
            self.device.type, dtype=self.amp_dtype or torch.float32, enabled=bool(self.amp_dtype)
        ):
            output = self.train_model(clips)
        loss, parts = self.criterion(_as_float32(output), pids)
        if not all_true(bool(torch.isfinite(loss).item())):
            self._skip_nonfinite(loss, parts, epoch)
            return None, None
        self._consecutive_nonfinite = 0
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        grad_norm = None
        if self.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm=self.grad_clip))
        if not self._grads_checked:
            self._check_gradients()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.global_step += 1
        return {k: float(v) for k, v in parts.items()}, grad_norm

    def _skip_nonfinite(self, loss: torch.Tensor, parts: Mapping[str, Any], epoch: int) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.nonfinite_steps += 1
        self._consecutive_nonfinite += 1
        logger.warning(
            "non-finite loss on rank %d or another rank (this rank: %s, parts %s) in epoch %d "
            "after step %d: step skipped (%d in a row, %d in this run)",
            self.dist.rank,
            float(loss.detach()),
            {k: float(v) for k, v in parts.items()},
            epoch + 1,
            self.global_step,
            self._consecutive_nonfinite,
            self.nonfinite_steps,
        )
        if self._consecutive_nonfinite >= self.max_nonfinite_steps:
            raise NonFiniteLossError(
                f"{self._consecutive_nonfinite} consecutive training steps had a non-finite loss "
                f"(epoch {epoch + 1}, step {self.global_step}, max_nonfinite_steps="
                f"{self.max_nonfinite_steps}); lower the learning rate, enable grad_clip, or "
                f"check the data and amp_dtype"
            )

    def _check_gradients(self) -> None:
        """Warns once about trainable parameters no loss reached, beyond the declared ones."""
        self._grads_checked = True
        detached = set(getattr(self.model, "detached_parameters", ()))
        missing = [
            name
            for name, p in self.model.named_parameters()
            if p.requires_grad and p.grad is None and name not in detached
        ]
        if missing:
            logger.warning(
                "%d trainable parameters got no gradient in the first step (%s%s); they are "
                "not trained by this loss",
                len(missing),
                ", ".join(missing[:8]),
                ", ..." if len(missing) > 8 else "",
            )

    # ------------------------------------------------------------------ evaluation
    def _maybe_evaluate(self) -> dict[str, float]:
        due = self.epoch == self.epochs or (
            self.eval_every > 0 and self.epoch % self.eval_every == 0
        )
        if self.evaluate is None or not due:
            return {}
        metrics = None
        if self.dist.is_main:
            self.model.eval()
            with preserved_rng(), torch.no_grad():
                result = self.evaluate(self.model)
            self.model.train()
            metrics = dict(result.as_dict() if hasattr(result, "as_dict") else result)
            if "mAP" not in metrics:
                raise ValueError(f"evaluate returned {sorted(metrics)}, which lacks 'mAP'")
            metrics = {k: float(v) for k, v in metrics.items()}
            logger.info("epoch %d evaluation: %s", self.epoch, _fmt(metrics))
        metrics = broadcast_object(metrics)
        self.last_metrics = metrics
        return metrics

    # ------------------------------------------------------------------ checkpoints
    def _save(self, metrics: Mapping[str, float]) -> None:
        """Writes ``last.pt`` (and ``best.pt`` when the mAP improved) on rank 0."""
        improved = bool(metrics) and metrics["mAP"] > self.best_metric
        if improved:
            self.best_metric, self.best_epoch = metrics["mAP"], self.epoch
        per_rank = all_gather_object(
            {"rng": rng_state(), "loader": _loader_state(self.train_loader)}
        )
        if not self.dist.is_main:
            return
        weights = self.model.state_dict()
        save_checkpoint(
            self.out_dir / "last.pt",
            {
                "format": TRAIN_STATE_FORMAT,
                "state_dict": weights,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "epoch": self.epoch,
                "global_step": self.global_step,
                "best_metric": self.best_metric,
                "best_epoch": self.best_epoch,
                "sampler_epoch": self.epoch,
                "ranks": per_rank,
                "metrics": dict(metrics),
                "nonfinite_steps": self.nonfinite_steps,
                "config": self.config,
                **self._spec_entry(),
            },
        )
        if improved:
            save_checkpoint(
                self.out_dir / "best.pt",
                {
                    "format": WEIGHTS_FORMAT,
                    "state_dict": weights,
                    "epoch": self.epoch,
                    "metrics": dict(metrics),
                    "config": self.config,
                    **self._spec_entry(),
                },
            )
            logger.info("epoch %d: best mAP %.2f, wrote best.pt", self.epoch, self.best_metric)

    def _spec_entry(self) -> dict[str, Any]:
        return {} if self.model_spec is None else {SPEC_KEY: self.model_spec}

    def _load(self, path: Path) -> None:
        """Restores everything `_save` wrote; this rank's random state when it was saved."""
        state = load_checkpoint(path, expected_format=TRAIN_STATE_FORMAT)
        changed = _changed_keys(state["config"], self.config)
        if changed:
            logger.warning("resuming %s with a changed configuration: %s", path, changed[:10])
        self.model.load_state_dict(state["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.global_step = state["epoch"], state["global_step"]
        self.best_metric, self.best_epoch = state["best_metric"], state["best_epoch"]
        self.nonfinite_steps, self.last_metrics = state["nonfinite_steps"], state["metrics"]
        ranks = state["ranks"]
        if len(ranks) != self.dist.world_size:
            logger.warning(
                "%s was written by %d ranks, this run has %d: random streams and sampler "
                "order differ from an uninterrupted run",
                path,
                len(ranks),
                self.dist.world_size,
            )
        if self.dist.rank < len(ranks):
            set_rng_state(ranks[self.dist.rank]["rng"])
            _load_loader_state(self.train_loader, ranks[self.dist.rank]["loader"])
        logger.info("resumed from %s after epoch %d (step %d)", path, self.epoch, self.global_step)

    # ------------------------------------------------------------------ records
    def _log_step(self, parts: Mapping[str, float], grad_norm: float | None) -> None:
        if self._tb is None:
            return
        for key, value in parts.items():
            self._tb.add_scalar(f"train/{key}", value, self.global_step)
        if grad_norm is not None:
            self._tb.add_scalar("train/grad_norm", grad_norm, self.global_step)

    def _record(
        self,
        csv: MetricsCSV | None,
        lrs: Mapping[str, float],
        stats: Mapping[str, float],
        metrics: Mapping[str, float],
    ) -> None:
        """One CSV row, TensorBoard epoch scalars and a log line (rank 0)."""
        if not self.dist.is_main or csv is None:
            return
        lr = lrs.get("head", next(iter(lrs.values())))
        row = {"epoch": self.epoch, "step": self.global_step, "lr": lr, **stats, **metrics}
        parts = [k.removeprefix("loss_") for k in stats if k.startswith("loss_")]
        csv.append(row, loss_parts=parts)
        if self._tb is not None:
            for name, value in lrs.items():
                self._tb.add_scalar(f"lr/{name}", value, self.global_step)
            for key, value in stats.items():
                self._tb.add_scalar(f"epoch/{key}", value, self.global_step)
            for key, value in metrics.items():
                self._tb.add_scalar(f"eval/{key}", value, self.global_step)
            self._tb.flush()
        logger.info(
            "epoch %d/%d (step %d, lr %.3g): %s",
            self.epoch,
            self.epochs,
            self.global_step,
            lr,
            _fmt({**stats, **metrics}),
        )

    def _final(self, stats: Mapping[str, float]) -> dict[str, float]:
        best = self.best_metric if self.best_metric > -math.inf else math.nan
        return {
            "epoch": self.epoch,
            "global_step": self.global_step,
            "best_epoch": self.best_epoch,
            "best_mAP": best,
            "nonfinite_steps": self.nonfinite_steps,
            **{k: v for k, v in stats.items() if k.startswith("loss_")},
            **self.last_metrics,
        }


def _validate(
    epochs: int,
    eval_every: int,
    log_every: int,
    amp_dtype: torch.dtype | None,
    grad_clip: float | None,
    max_nonfinite_steps: int,
) -> None:
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if eval_every < 0:
        raise ValueError(
            f"eval_every must be >= 0 (0: only after the last epoch), got {eval_every}"
        )
    if log_every < 1:
        raise ValueError(f"log_every must be >= 1, got {log_every}")
    if amp_dtype not in AMP_DTYPES:
        raise ValueError(f"amp_dtype must be one of {AMP_DTYPES}, got {amp_dtype}")
    if grad_clip is not None and grad_clip <= 0:
        raise ValueError(f"grad_clip must be > 0 or None, got {grad_clip}")
    if max_nonfinite_steps < 1:
        raise ValueError(f"max_nonfinite_steps must be >= 1, got {max_nonfinite_steps}")


def _spec_of(model: nn.Module) -> dict[str, Any] | None:
    """`model_spec(model)` for a model `create_model` built; None (logged) for any other."""
    if getattr(model, "model_name", None) is None:
        logger.info(
            "%s was not built by create_model: checkpoints carry no model spec",
            type(model).__name__,
        )
        return None
    return model_spec(model)


def _as_float32(output: Any) -> Any:
    if isinstance(output, TrainOutput):
        return TrainOutput(output.features.float(), tuple(t.float() for t in output.logits))
    if isinstance(output, torch.Tensor):
        return output.float()
    return output


def _set_epoch(loader: Any, epoch: int) -> None:
    for part in _LOADER_PARTS:
        obj = getattr(loader, part, None)
        if hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)


def _loader_state(loader: Any) -> dict[str, Any]:
    return {
        part: obj.state_dict()
        for part in _LOADER_PARTS
        if hasattr(obj := getattr(loader, part, None), "state_dict")
        and hasattr(obj, "load_state_dict")
    }


def _load_loader_state(loader: Any, state: Mapping[str, Any]) -> None:
    for part, value in state.items():
        getattr(loader, part).load_state_dict(value)


def _changed_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain configurations."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new))
        return [c for k in keys for c in _changed_keys(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [prefix.rstrip(".")]


def _fmt(values: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in values.items())
