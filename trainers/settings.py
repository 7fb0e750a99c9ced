"""The configuration schema of `reidstream train` and `reidstream eval` (see `pipeline.config`).

    model     which network (registry name, builder overrides, initial weights)
    data      which dataset and how training clips are drawn, augmented and batched (P x K)
    loss      weights and constants of cross-entropy, batch-hard triplet and OIM
    optim     optimizer, learning rate, weight decay
    schedule  learning-rate schedule and number of epochs
    train     precision, clipping, seed, evaluation cadence, output folder, resume, device
    eval      test protocol, re-ranking, test clip sampling

Environment variables use the prefix ``REIDSTREAM_TRAIN_`` (e.g.
``REIDSTREAM_TRAIN_DATA__ROOT=/datasets``), so they never clash with the streaming commands'
``REIDSTREAM_*``. Clip length, sampling, stride and input size default to the model's
`PretrainedCfg` (what the paper trained with); set them here only to deviate, and the resolved
config written next to every run says what was used. The per-paper recipes live in
``trainers/configs/*.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "DataSettings",
    "EvalSettings",
    "LossSettings",
    "ModelSettings",
    "OptimSettings",
    "ScheduleSettings",
    "TrainConfig",
    "TrainSettings",
]

ENV_PREFIX = "REIDSTREAM_TRAIN_"


@dataclass(frozen=True)
class ModelSettings:
    """The network to train (see `reid_models.create_model`)."""

    name: str = field(
        default="c2d_r50",
        metadata={
            "help": "Registered model name (reid_models.list_models()). Deeper and temporal models "
            "cost more memory and time per clip."
        },
    )
    overrides: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": "Builder arguments, e.g. {variant: B} for p3d_r50 or {stream: temporal} for "
            "m3d_r50; they change the architecture, so a checkpoint only loads into the same "
            "overrides."
        },
    )
    pretrained: Path | None = field(
        default=None,
        metadata={
            "help": "Initial weights (a torchvision ResNet / C3D state dict, or a checkpoint of "
            "this model). None trains from random init: far lower accuracy on real data, fine on "
            "synthetic data."
        },
    )
    num_classes: int | None = field(
        default=None,
        metadata={
            "ge": 0,
            "help": "Classifier outputs. Null derives it from the training split's identity count "
            "(the resolved config records the number); set it only to match a checkpoint.",
        },
    )

    def __post_init__(self) -> None:
        from reid_models import is_model, list_models

        if not is_model(self.name):
            raise ValueError(f"name = {self.name!r}: expected one of {', '.join(list_models())}")


@dataclass(frozen=True)
class DataSettings:
    """The dataset and the training input pipeline (see `trainers.data.build_train_loader`)."""

    name: str = field(
        default="mars",
        metadata={
            "help": "Dataset reader: mars, ilidsvid, prid2011, dukemtmc_videoreid or lsvid (the "
            "synthetic generator writes MARS format, read with 'mars')."
        },
    )
    root: Path = field(
        default=Path("datasets/mars"),
        metadata={
            "help": "Folder holding the dataset in its official layout; nothing is downloaded."
        },
    )
    split_id: int = field(
        default=0,
        metadata={
            "ge": 0,
            "help": "Which of the 10 random identity splits (prid2011, ilidsvid); the others have "
            "one. Each split needs its own training run; `reidstream eval --all-splits` averages "
            "them.",
        },
    )
    options: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": "Extra reader options passed to create_dataset (e.g. dense training chunks); "
            "they change how many training units an epoch holds."
        },
    )
    input_size: tuple[int, int] | None = field(
        default=None,
        metadata={
            "ge": 8,
            "help": "(H, W) frames are resized to; null = the model's input_size (256x128 for "
            "most). Smaller is quadratically cheaper and less accurate.",
        },
    )
    clip_len: int | None = field(
        default=None,
        metadata={
            "ge": 1,
            "help": "Frames per training clip; null = the model's train_clip_len. Longer clips see "
            "more motion at proportional cost and fewer clips per batch in the same memory.",
        },
    )
    sampling: Literal["stride", "consecutive"] | None = field(
        default=None,
        metadata={
            "help": "How a training clip is drawn from a tracklet; null = the model's "
            "train_sampling ('stride': frames `stride` apart, 'consecutive': adjacent frames)."
        },
    )
    stride: int | None = field(
        default=None,
        metadata={
            "ge": 1,
            "help": "Frame step of 'stride' sampling; null = the model's train_stride. Larger "
            "spans more time per clip but makes neighbouring frames less alike.",
        },
    )
    batch_size: int = field(
        default=32,
        metadata={
            "ge": 1,
            "help": "Clips per batch in each process (under torchrun the global batch is this "
            "times the number of processes). Larger batches steady BatchNorm and give the triplet "
            "loss more negatives, at the cost of memory.",
        },
    )
    instances_per_identity: int = field(
        default=4,
        metadata={
            "ge": 0,
            "help": "K of the P x K sampler: clips per identity in a batch (P = batch_size / K), "
            "the triplet loss's positives. 0 draws tracklets at random without identity balance "
            "(GLTR, M3D, PersonVLAD, which use no triplet loss).",
        },
    )
    workers: int = field(
        default=4,
        metadata={
            "ge": 0,
            "help": "Loader worker processes decoding frames; 0 decodes in the training process "
            "(slower, simplest to debug).",
        },
    )
    flip: float = field(
        default=0.5,
        metadata={
            "ge": 0.0,
            "le": 1.0,
            "help": "Probability of a horizontal flip (one decision per clip).",
        },
    )
    random_erasing: float = field(
        default=0.0,
        metadata={
            "ge": 0.0,
            "le": 1.0,
            "help": "Probability of random erasing per clip; regularises against occlusion, none "
            "of the five papers uses it.",
        },
    )
    pad: int = field(
        default=0,
        metadata={
            "ge": 0,
            "help": "Pixels of padding before a random crop back to input size (0: no crop). A "
            "translation augmentation; the papers mostly use none.",
        },
    )

    def __post_init__(self) -> None:
        from trainers.datasets import list_datasets

        if self.name not in list_datasets():
            raise ValueError(f"name = {self.name!r}: expected one of {', '.join(list_datasets())}")


@dataclass(frozen=True)
class LossSettings:
    """The training objective (see `trainers.losses.ReIDLoss`); a weight of 0 drops a term."""

    ce: float = field(
        default=1.0,
        metadata={
            "ge": 0.0,
            "help": "Weight of identity cross-entropy (on every classifier of the model).",
        },
    )
    triplet: float = field(
        default=1.0,
        metadata={
            "ge": 0.0,
            "help": "Weight of the batch-hard triplet loss; needs data.instances_per_identity >= "
            "2.",
        },
    )
    oim: float = field(
        default=0.0,
        metadata={
            "ge": 0.0,
            "help": "Weight of the OIM loss (PersonVLAD's only loss; no classifier).",
        },
    )
    label_smoothing: float = field(
        default=0.0,
        metadata={
            "ge": 0.0,
            "lt": 1.0,
            "help": "Label-smoothing epsilon of the cross-entropy; 0.1 regularises an "
            "overconfident classifier, 0 is plain CE.",
        },
    )
    margin: float = field(
        default=0.3,
        metadata={
            "gt": 0.0,
            "help": "Triplet margin: larger pushes negatives further, harder to satisfy.",
        },
    )
    distance: Literal["euclidean", "cosine"] = field(
        default="euclidean",
        metadata={
            "help": "Distance of the triplet loss; 'cosine' matches a cosine-ranked embedding "
            "(AP3D)."
        },
    )
    oim_scalar: float = field(
        default=10.0,
        metadata={
            "gt": 0.0,
            "help": "OIM logit scale (1 / temperature): larger makes the softmax sharper.",
        },
    )
    oim_momentum: float = field(
        default=0.5,
        metadata={
            "ge": 0.0,
            "lt": 1.0,
            "help": "OIM lookup-table momentum: higher keeps identity prototypes steadier, slower "
            "to follow the network.",
        },
    )

    def __post_init__(self) -> None:
        if self.ce == 0 and self.triplet == 0 and self.oim == 0:
            raise ValueError("ce, triplet and oim are all 0: at least one loss must be weighted")


@dataclass(frozen=True)
class OptimSettings:
    """The optimizer (see `trainers.optim.build_optimizer`)."""

    name: Literal["adam", "sgd"] = field(
        default="adam", metadata={"help": "Optimizer: 'adam' or 'sgd'."}
    )
    lr: float = field(
        default=3e-4,
        metadata={
            "gt": 0.0,
            "help": "Base learning rate: higher learns faster and risks divergence.",
        },
    )
    weight_decay: float = field(
        default=5e-4,
        metadata={
            "ge": 0.0,
            "help": "Coupled L2 weight decay: more regularises, too much underfits.",
        },
    )
    momentum: float = field(
        default=0.9, metadata={"ge": 0.0, "lt": 1.0, "help": "SGD momentum (ignored by Adam)."}
    )
    backbone_lr_mult: float = field(
        default=1.0,
        metadata={
            "gt": 0.0,
            "help": "Learning-rate factor of the pretrained backbone relative to the new layers; "
            "below 1 protects pretrained features (M3D's code trains the head at 10x).",
        },
    )


@dataclass(frozen=True)
class ScheduleSettings:
    """The learning-rate schedule, stepped once per epoch (see `trainers.optim`)."""

    name: Literal["step", "multistep", "warmup_multistep", "cosine", "constant", "exponential"] = (
        field(
            default="multistep",
            metadata={
                "help": "Schedule shape; 'exponential' is constant until decay_start, then "
                "geometric down to gamma x lr at the last epoch (I3D+NL)."
            },
        )
    )
    epochs: int = field(
        default=240,
        metadata={
            "ge": 1,
            "help": "Training epochs: more fits better, up to overfitting, at linear cost.",
        },
    )
    milestones: tuple[int, ...] = field(
        default=(60, 120, 180),
        metadata={"ge": 1, "help": "Epochs after which (warmup_)multistep multiplies lr by gamma."},
    )
    step_size: int = field(
        default=0, metadata={"ge": 0, "help": "Period in epochs of the 'step' schedule."}
    )
    gamma: float = field(
        default=0.1, metadata={"gt": 0.0, "le": 1.0, "help": "Factor applied at each decay."}
    )
    decay_start: int = field(
        default=0,
        metadata={
            "ge": 0,
            "help": "First (1-based) epoch of the 'exponential' decay; earlier epochs keep lr.",
        },
    )
    warmup_epochs: int = field(
        default=0,
        metadata={
            "ge": 0,
            "help": "Epochs of linear warm-up (warmup_multistep); steadies early training.",
        },
    )
    warmup_factor: float = field(
        default=0.1,
        metadata={"gt": 0.0, "le": 1.0, "help": "Learning-rate fraction the warm-up starts from."},
    )

    def __post_init__(self) -> None:
        if list(self.milestones) != sorted(set(self.milestones)):
            raise ValueError(f"milestones = {list(self.milestones)}: expected increasing epochs")
        if self.name in ("multistep", "warmup_multistep") and not self.milestones:
            raise ValueError(f"milestones: name = {self.name!r} needs at least one epoch")
        if self.name == "exponential" and not 1 <= self.decay_start < self.epochs:
            raise ValueError(
                f"decay_start = {self.decay_start}: 'exponential' needs 1 <= decay_start < "
                f"epochs = {self.epochs}"
            )
        if self.name == "step" and self.step_size < 1:
            raise ValueError("step_size must be >= 1 with name = 'step'")


@dataclass(frozen=True)
class TrainSettings:
    """The training run itself (see `trainers.engine.Trainer`)."""

    amp_dtype: Literal["none", "float16", "bfloat16"] = field(
        default="none",
        metadata={
            "help": "Mixed precision on CUDA: bfloat16/float16 roughly halve memory and time; "
            "'none' trains in float32 (the only choice that helps on a CPU)."
        },
    )
    grad_clip: float | None = field(
        default=None,
        metadata={"gt": 0.0, "help": "Clip the gradient norm to this; null never clips."},
    )
    seed: int = field(
        default=1,
        metadata={"ge": 0, "help": "Seed of every random generator (model init, sampling)."},
    )
    eval_every: int = field(
        default=0,
        metadata={
            "ge": 0,
            "help": "Evaluate on the test split every N epochs and keep best.pt (0: only at the "
            "end). Each evaluation costs a pass over query and gallery.",
        },
    )
    log_every: int = field(
        default=20, metadata={"ge": 1, "help": "Iterations between loss log lines."}
    )
    out_dir: Path = field(
        default=Path("runs/train"),
        metadata={
            "help": "Folder for config.yaml, last.pt, best.pt, metrics.csv/json, cmc.png, "
            "results.md."
        },
    )
    resume: Path | None = field(
        default=None,
        metadata={"help": "Checkpoint to continue from (model, optimizer, schedule, epoch)."},
    )
    device: str = field(
        default="auto",
        metadata={
            "pattern": r"auto|cpu|cuda(:\d+)?",
            "help": "'auto' takes CUDA when present (under torchrun: the local rank's GPU), else "
            "CPU.",
        },
    )
    progress: bool = field(default=True, metadata={"help": "Show a progress bar per epoch."})


@dataclass(frozen=True)
class EvalSettings:
    """How the test split is embedded and ranked (see `trainers.evaluator.evaluate_model`)."""

    protocol: Literal["mars", "ap3d", "torchreid"] = field(
        default="mars",
        metadata={
            "help": "Scoring rules of the code a paper used (trainers/evaluation/rank.py): "
            "'mars': the MATLAB kit of MARS, GLTR and M3D (trapezoid AP, id -1 junk, a query "
            "without a match counts 0); 'ap3d': AP3D's eval_metrics (standard AP, id -1 junk, "
            "such queries skipped); 'torchreid': standard AP, id -1 not junk, skipped."
        },
    )
    rerank: bool = field(
        default=False,
        metadata={
            "help": "k-reciprocal re-ranking (k1=20, k2=6, lambda=0.3): higher mAP, quadratic "
            "memory in the gallery size."
        },
    )
    batch_size: int = field(
        default=16,
        metadata={
            "ge": 1,
            "help": "Test clips per forward pass; larger is faster, needs more memory.",
        },
    )
    workers: int = field(
        default=0, metadata={"ge": 0, "help": "Loader workers while extracting test features."}
    )
    test_clip_len: int | None = field(
        default=None,
        metadata={"ge": 1, "help": "Frames per test clip; null = the model's test_clip_len."},
    )
    test_sampling: Literal["chunks", "chunks_drop_last", "whole", "sliding"] | None = field(
        default=None,
        metadata={"help": "How a test tracklet becomes clips; null = the model's test_sampling."},
    )
    test_stride: int | None = field(
        default=None,
        metadata={
            "ge": 1,
            "help": "Window step of 'sliding' test sampling; null = the model's test_stride.",
        },
    )


@dataclass(frozen=True)
class TrainConfig:
    """Root of the `reidstream train` / `reidstream eval` configuration."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = field(
        default="INFO", metadata={"help": "Least severe log level printed."}
    )
    model: ModelSettings = field(default_factory=ModelSettings)
    data: DataSettings = field(default_factory=DataSettings)
    loss: LossSettings = field(default_factory=LossSettings)
    optim: OptimSettings = field(default_factory=OptimSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    train: TrainSettings = field(default_factory=TrainSettings)
    eval: EvalSettings = field(default_factory=EvalSettings)
