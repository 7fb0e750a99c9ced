"""Optimizers and per-epoch learning-rate schedules for the five papers' recipes.

`build_optimizer` splits the parameters into a ``backbone`` group (the submodules named by
``model.pretrained_cfg.backbone_prefixes``, the ones that receive pretrained weights) and a
``head`` group (everything else), so that a recipe can give the pretrained part a different LR.
`build_scheduler` returns a torch scheduler stepped once at the *end* of every epoch: the LR of
epoch e (0-based) is the value after e steps.

    schedule            paper recipe it serves (paper section; official code)
    ------------------  ---------------------------------------------------------------------
    multistep / step    AP3D: Adam 3e-4, x0.1 every 60, 240 epochs (Gu et al. §5.2). The code
                        (guxinqian/AP3D ``train.py``) steps MultiStepLR [60, 120, 180] at the
                        start of each epoch, which PyTorch >= 1.1 shifts one epoch early;
                        stepping at the end decays after exactly 60, 120 and 180 epochs
    step                GLTR: SGD 0.01, x0.1 after 120 (Li et al. ICCV 2019, §4.2); momentum
                        0.9 and wd 5e-4, which the paper omits, from ljn114514/GLTR ``train.py``
    step                M3D: SGD 0.01, x0.1 at 300 of 400 (paper, Implementation Details) or
                        every 200 of 500 (code); the code's x10 LR on the new layers (``feat``,
                        ``feat_bn``, ``classifier`` in ljn114514/M3D ``ResNet50-M3D/train.py``)
                        is ``backbone_lr_mult=0.1`` with the head's LR as ``lr``
    exponential         I3D+NL: Adam 3e-4 constant, then exponential decay to x0.001 from epoch
                        150 to 300 (Liao et al. §4.2: "exponential decay with decay rate 0.001
                        at 150 epochs", read as Hermans et al.'s `adjust_lr_exp`, which
                        huanghoujing/person-reid-triplet-loss-baseline implements)
    step                PersonVLAD: Adam eps=1e-4, halve every 1K iterations (Wu et al.
                        Sec. III-C; gamma=0.5, the recipe converts iterations to epochs); step
                        1 trains only the head: ``backbone_lr_mult=0`` freezes the backbone
    warmup_multistep    the bag-of-tricks lineage: linear warm-up from ``warmup_factor`` times
                        the LR over ``warmup_epochs``, then x``gamma`` at absolute milestones
    cosine, constant    baselines

Every schedule is a torch scheduler (``StepLR``, ``MultiStepLR``, ``CosineAnnealingLR``,
``ConstantLR``, ``ExponentialLR`` inside ``SequentialLR``); a warm-up is ``LinearLR`` chained
multiplicatively (``ChainedScheduler``) with any of them, so milestones stay absolute epochs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import (
    ChainedScheduler,
    ConstantLR,
    CosineAnnealingLR,
    ExponentialLR,
    LinearLR,
    LRScheduler,
    MultiStepLR,
    SequentialLR,
    StepLR,
)

__all__ = ["OPTIMIZERS", "SCHEDULERS", "build_optimizer", "build_scheduler", "param_groups"]

OPTIMIZERS = ("adam", "sgd")
SCHEDULERS = ("step", "multistep", "warmup_multistep", "cosine", "constant", "exponential")


def param_groups(
    model: nn.Module, *, lr: float, backbone_lr_mult: float = 1.0
) -> list[dict[str, object]]:
    """The ``backbone`` and ``head`` parameter groups of `model` (empty groups left out).

    Args:
        model: A `ReIDModel` (its ``pretrained_cfg.backbone_prefixes`` name the backbone) or
            any module (then every parameter is ``head``).
        lr: The head's learning rate.
        backbone_lr_mult: The backbone's LR is ``lr * backbone_lr_mult``; 0 freezes the
            backbone (``requires_grad`` off, left out of the optimizer).

    Raises:
        ValueError: A multiplier other than 1 on a model whose backbone prefixes match no
            parameter, or a negative multiplier.
    """
    if backbone_lr_mult < 0:
        raise ValueError(f"backbone_lr_mult must be >= 0, got {backbone_lr_mult}")
    cfg = getattr(model, "pretrained_cfg", None)
    prefixes = tuple(f"{p}." for p in getattr(cfg, "backbone_prefixes", ()))
    backbone: list[nn.Parameter] = []
    head: list[nn.Parameter] = []
    for name, param in model.named_parameters():
        in_backbone = bool(prefixes) and name.startswith(prefixes)
        if in_backbone and backbone_lr_mult == 0:
            param.requires_grad_(False)
        if param.requires_grad:
            (backbone if in_backbone else head).append(param)
    if backbone_lr_mult != 1.0 and not backbone and backbone_lr_mult != 0:
        raise ValueError(
            f"backbone_lr_mult={backbone_lr_mult} but no parameter of {type(model).__name__} "
            f"starts with the backbone prefixes {[p[:-1] for p in prefixes]}"
        )
    groups: list[dict[str, object]] = []
    if backbone:
        groups.append({"name": "backbone", "params": backbone, "lr": lr * backbone_lr_mult})
    if head:
        groups.append({"name": "head", "params": head, "lr": lr})
    if not groups:
        raise ValueError(f"{type(model).__name__} has no trainable parameter")
    return groups


def build_optimizer(
    model: nn.Module,
    *,
    name: Literal["adam", "sgd"],
    lr: float,
    weight_decay: float,
    momentum: float = 0.9,
    backbone_lr_mult: float = 1.0,
    eps: float = 1e-8,
    betas: tuple[float, float] = (0.9, 0.999),
    nesterov: bool = False,
) -> Optimizer:
    """An Adam or SGD optimizer over `param_groups(model)`.

    Weight decay is coupled L2 on every parameter, BN included, as in the official code of
    AP3D (``train.py``: ``Adam(weight_decay=5e-4)``, not AdamW), GLTR and M3D (SGD
    ``weight_decay=5e-4``).

    Args:
        model: The (unwrapped) model.
        name: ``adam`` (AP3D, I3D+NL, PersonVLAD) or ``sgd`` (GLTR, M3D).
        lr: Head learning rate (and backbone's, unless `backbone_lr_mult` says otherwise).
        weight_decay: L2 coefficient.
        momentum: SGD momentum (ignored by Adam).
        backbone_lr_mult: See `param_groups`.
        eps: Adam's epsilon (PersonVLAD uses 1e-4, Wu et al. Sec. III-C).
        betas: Adam's betas.
        nesterov: SGD Nesterov momentum.
    """
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    groups = param_groups(model, lr=lr, backbone_lr_mult=backbone_lr_mult)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay, eps=eps, betas=betas)
    if name == "sgd":
        return torch.optim.SGD(
            groups, lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=nesterov
        )
    raise ValueError(f"unknown optimizer {name!r}; choose one of {OPTIMIZERS}")


def build_scheduler(
    optimizer: Optimizer,
    *,
    name: Literal["step", "multistep", "warmup_multistep", "cosine", "constant", "exponential"],
    epochs: int,
    milestones: Sequence[int] = (),
    step_size: int = 0,
    gamma: float = 0.1,
    warmup_epochs: int = 0,
    warmup_factor: float = 0.1,
    decay_start: int = 0,
) -> LRScheduler:
    """A per-epoch LR schedule; call ``step()`` once at the end of every epoch.

    Args:
        optimizer: Its groups' current LRs are the base LRs.
        name: ``step`` (x`gamma` every `step_size` epochs), ``multistep`` (x`gamma` at each of
            `milestones`), ``warmup_multistep`` (``multistep`` after a warm-up; needs
            `warmup_epochs` > 0), ``cosine`` (to 0 at `epochs`), ``constant``, or
            ``exponential`` (constant until epoch `decay_start`, then geometric decay reaching
            `gamma` times the base LR in the last epoch; I3D+NL uses ``decay_start=150``,
            ``gamma=0.001`` over 300 epochs: lr(e) = base * gamma ** ((e - 150) / 150) for the
            1-based epoch e >= 150).
        epochs: Total epochs of the run.
        milestones: Absolute epochs (0-based count of finished epochs) where ``multistep``
            decays: [60, 120, 180] runs epochs 0..59 at the base LR.
        step_size: Period of ``step``.
        gamma: Decay factor (``exponential``: the final factor).
        warmup_epochs: Linear warm-up length, applied on top of any schedule; 0 for none.
        warmup_factor: LR factor of the first warm-up epoch.
        decay_start: First 1-based epoch of the ``exponential`` decay, in [1, epochs).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if warmup_epochs < 0 or (name == "warmup_multistep" and warmup_epochs == 0):
        raise ValueError(f"warmup_epochs={warmup_epochs} is invalid for schedule {name!r}")
    main = _main_schedule(
        optimizer,
        name=name,
        epochs=epochs,
        milestones=milestones,
        step_size=step_size,
        gamma=gamma,
        decay_start=decay_start,
    )
    if warmup_epochs == 0:
        return main
    if not 0 < warmup_factor <= 1:
        raise ValueError(f"warmup_factor must be in (0, 1], got {warmup_factor}")
    warmup = LinearLR(optimizer, start_factor=warmup_factor, total_iters=warmup_epochs)
    return ChainedScheduler([warmup, main], optimizer=optimizer)


def _main_schedule(
    optimizer: Optimizer,
    *,
    name: str,
    epochs: int,
    milestones: Sequence[int],
    step_size: int,
    gamma: float,
    decay_start: int,
) -> LRScheduler:
    if name == "step":
        if step_size < 1:
            raise ValueError(f"schedule 'step' needs step_size >= 1, got {step_size}")
        return StepLR(optimizer, step_size=step_size, gamma=gamma)
    if name in ("multistep", "warmup_multistep"):
        if not milestones or list(milestones) != sorted(set(milestones)) or milestones[0] < 1:
            raise ValueError(
                f"schedule {name!r} needs increasing positive milestones, got {list(milestones)}"
            )
        return MultiStepLR(optimizer, milestones=list(milestones), gamma=gamma)
    if name == "cosine":
        return CosineAnnealingLR(optimizer, T_max=epochs)
    if name == "constant":
        return ConstantLR(optimizer, factor=1.0, total_iters=0)
    if name == "exponential":
        if not 1 <= decay_start < epochs or not 0 < gamma < 1:
            raise ValueError(
                f"schedule 'exponential' needs 1 <= decay_start < epochs={epochs} and "
                f"0 < gamma < 1, got decay_start={decay_start}, gamma={gamma}"
            )
        # Constant for the 0-based epochs < decay_start - 1, then one factor per epoch so that
        # the last epoch (epochs - 1) runs at base * gamma.
        per_epoch = gamma ** (1.0 / (epochs - decay_start))
        hold = ConstantLR(optimizer, factor=1.0, total_iters=0)
        decay = ExponentialLR(optimizer, gamma=per_epoch)
        if decay_start == 1:
            return decay
        return SequentialLR(optimizer, [hold, decay], milestones=[decay_start - 1])
    raise ValueError(f"unknown schedule {name!r}; choose one of {SCHEDULERS}")
