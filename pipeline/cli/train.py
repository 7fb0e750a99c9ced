"""`reidstream train`: train a video ReID model from a recipe; evaluate it; record the results.

    --config FILE (trainers/configs/*.yaml) <- REIDSTREAM_TRAIN_* <- KEY=VALUE
      └─ trainers.settings.TrainConfig ─▶ trainers.recipe.train ─▶ OUT/config.yaml, last.pt,
         best.pt, metrics.csv, tb/, metrics.json, cmc.png, results.md

Under ``torchrun --nproc_per_node N`` every process runs this command (see `trainers.recipe`).
A dataset, checkpoint or weights file that cannot be used exits with status 2 (`pipeline.cli`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.cli.common import add_config_arguments, setup_logging
from pipeline.config import config_to_dict, load_config

if TYPE_CHECKING:
    from trainers.settings import TrainConfig

__all__ = ["add_arguments", "load_train_config", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Train the configured model on the configured dataset (recipes: "
        "trainers/configs/*.yaml), evaluate it on the test split and write OUT/config.yaml, "
        "last.pt, best.pt, metrics.csv, metrics.json, cmc.png and results.md "
        "(OUT = train.out_dir). Environment variables use the prefix REIDSTREAM_TRAIN_."
    )
    parser.add_argument("--out", metavar="DIR", help="train.out_dir: folder for the outputs")
    add_config_arguments(parser)


def load_train_config(
    path: str | Path | None, overrides: list[str], *, out: str | None = None
) -> TrainConfig:
    """Resolves the training configuration (defaults <- FILE <- environment <- overrides)."""
    from trainers.settings import ENV_PREFIX, TrainConfig

    flags = [f"train.out_dir={out}"] if out is not None else []
    return load_config(
        TrainConfig, path=path, overrides=[*flags, *overrides], env_prefix=ENV_PREFIX
    )


def run(args: argparse.Namespace) -> int:
    from trainers.recipe import train

    cfg = load_train_config(args.config, args.overrides, out=args.out)
    setup_logging(cfg.log_level)
    outputs = train(cfg, record=config_to_dict)
    for path in outputs.values():
        print(f"wrote {path}")
    return 0
