"""Configuration section of `reidstream adapt` (`adapt.*`, composed into the root schema by
`pipeline.settings`; see `pipeline.config` for how a schema loads).

The site's cameras, detector, tracker and tracklet gates come from the same file's other
sections, so the tracklets adaptation trains on are cut exactly as `reidstream run` cuts them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from reid_models import list_models

__all__ = ["AdaptConfig"]


@dataclass(frozen=True)
class AdaptConfig:
    """Unsupervised adaptation of a temporal ReID model to a site's own footage."""

    model: str = field(
        default="ap3d_osnet_x0_25",
        metadata={
            "help": "The student: a registered model whose weights load from the teacher's ONNX "
            "file (ap3d_osnet_x0_25: AP3D's temporal kernels on OSNet; c2d_osnet_x0_25: frames "
            "only, for comparison)."
        },
    )
    teacher: Path | None = field(
        default=None,
        metadata={
            "help": "OSNet x0.25 ONNX file (torchreid's export): the student's initial weights "
            "and the teacher of the pseudo pairs and the distillation. Default: reid.onnx_path."
        },
    )
    duration_s: float = field(
        default=600.0,
        metadata={
            "gt": 0.0,
            "help": "Seconds of footage read per camera (capture time, not wall time). More "
            "footage gives more people and steadier pseudo labels; collection runs the detector "
            "on all of it.",
        },
    )
    min_crops: int = field(
        default=8,
        metadata={
            "ge": 2,
            "help": "Fewest gated crops for a tracklet to be trained on; shorter ones are too "
            "brief to be trusted as one person's.",
        },
    )
    holdout: float = field(
        default=0.2,
        metadata={
            "ge": 0.0,
            "lt": 1.0,
            "help": "Fraction of the tracklets, the latest to start, kept out of training and used "
            "for the report's evaluation. 0 trains on everything and evaluates on nothing.",
        },
    )
    pair_threshold: float = field(
        default=0.8,
        metadata={
            "gt": 0.0,
            "le": 1.0,
            "help": "Least teacher cosine for two tracklets of different cameras (also mutual "
            "nearest neighbours) to become one pseudo identity. Higher: fewer, surer pairs.",
        },
    )
    epochs: int = field(
        default=3,
        metadata={"ge": 1, "help": "Epochs; a checkpoint is written after each (resumable)."},
    )
    steps_per_epoch: int = field(
        default=40, metadata={"ge": 1, "help": "Optimiser steps per epoch."}
    )
    identities_per_batch: int = field(
        default=8,
        metadata={"ge": 2, "help": "P pseudo identities per batch (the triplet loss needs 2+)."},
    )
    clips_per_identity: int = field(
        default=2, metadata={"ge": 2, "help": "K clips per identity in a batch."}
    )
    lr: float = field(
        default=3e-5,
        metadata={
            "gt": 0.0,
            "help": "Adam learning rate of the pretrained OSNet weights; the new layers "
            "(temporal kernels, APM, classifier) take 10x. Higher forgets the teacher faster.",
        },
    )
    train_layers: Literal["all", "new"] = field(
        default="new",
        metadata={
            "help": "new: OSNet's weights stay the teacher's and only the layers it lacks "
            "(temporal kernels, APM, classifier) train, so what is learned is only what the "
            "frames alone cannot give (measured better on the store footage); all: every weight "
            "trains (OSNet's at lr, the new ones at 10x).",
        },
    )
    distill_weight: float = field(
        default=4.0,
        metadata={
            "ge": 0.0,
            "help": "Weight of the distillation term 1 - cos(student, teacher) on every "
            "clip: keeps the student near the teacher where no pseudo label speaks.",
        },
    )
    triplet_weight: float = field(
        default=1.0, metadata={"ge": 0.0, "help": "Weight of the batch-hard triplet loss."}
    )
    ce_weight: float = field(
        default=1.0,
        metadata={"ge": 0.0, "help": "Weight of the pseudo-identity cross-entropy."},
    )
    seed: int = field(default=0, metadata={"help": "Seed of sampling and augmentation."})
    truth: Path | None = field(
        default=None,
        metadata={
            "help": "Optional folder of hand-checked identities (<camera>.txt rows frame,person,"
            "x1,y1,x2,y2) to score the held-out tracklets with cross-camera AP and rank-1."
        },
    )

    def __post_init__(self) -> None:
        if self.model not in list_models():
            raise ValueError(f"model = {self.model!r}: expected one of {', '.join(list_models())}")
        if self.model.startswith("c2d") and self.train_layers == "new":
            raise ValueError(
                f"model = {self.model!r} has no layers the teacher lacks but its classifier: "
                "train_layers = 'new' would return the teacher unchanged; use 'all'"
            )
