"""`reidstream eval`: evaluate trained checkpoints on their dataset's test split.

    --checkpoint last.pt|best.pt [more ...]
      └─ the configuration stored in the checkpoint <- REIDSTREAM_TRAIN_* <- KEY=VALUE
         (e.g. data.root=/mnt/mars where the dataset moved, eval.rerank=true, eval.protocol=...)
      └─ trainers.recipe.evaluate_checkpoints ─▶ RankResult (or the mean over the splits)
      └─ OUT/metrics.json, cmc.png, results.md (as `reidstream train` writes them)

A checkpoint or dataset that cannot be used exits with status 2 (`pipeline.cli`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.cli.common import setup_logging, usage_errors
from pipeline.config import load_config

if TYPE_CHECKING:
    from trainers.evaluation import RankResult
    from trainers.settings import TrainConfig

__all__ = ["add_arguments", "config_from_checkpoint", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Rebuild the model from the configuration stored in each checkpoint, "
        "evaluate it on its dataset's test split and write OUT/metrics.json, cmc.png and "
        "results.md. KEY=VALUE arguments override the stored configuration."
    )
    parser.add_argument(
        "--checkpoint",
        metavar="PATH",
        nargs="+",
        required=True,
        type=Path,
        help="last.pt or best.pt of a `reidstream train` run; with --all-splits one per split",
    )
    parser.add_argument(
        "--all-splits",
        action="store_true",
        help="average over the splits (prid2011, ilidsvid): one checkpoint per split_id",
    )
    parser.add_argument(
        "--out", metavar="DIR", type=Path, help="output folder (default: the checkpoint's folder)"
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="override a stored key, e.g. data.root=/datasets/mars eval.rerank=true",
    )


def config_from_checkpoint(state: dict, overrides: list[str]) -> TrainConfig:
    """The `TrainConfig` stored in a checkpoint, with `overrides` and the environment on top."""
    from trainers.checkpoint import CheckpointError
    from trainers.settings import ENV_PREFIX, TrainConfig

    stored = state.get("config")
    if not isinstance(stored, dict):
        raise CheckpointError("the checkpoint holds no training configuration ('config')")
    # The stored mapping takes the place a recipe file has: the environment and overrides apply.
    return load_config(
        TrainConfig,
        document=stored,
        document_source="the checkpoint's configuration",
        overrides=overrides,
        env_prefix=ENV_PREFIX,
    )


def run(args: argparse.Namespace) -> int:
    from trainers.checkpoint import load_checkpoint
    from trainers.recipe import evaluate_checkpoints
    from trainers.run import write_run_outputs

    with usage_errors(FileNotFoundError):
        states = [load_checkpoint(p, expected_format=None) for p in args.checkpoint]
    configs = [config_from_checkpoint(s, args.overrides) for s in states]
    setup_logging(configs[0].log_level)
    final, metrics = evaluate_checkpoints(configs, states, all_splits=args.all_splits)
    out = args.out or args.checkpoint[0].parent
    for path in write_run_outputs(out, metrics=metrics, final=final).values():
        print(f"wrote {path}")
    print(_summary(final, len(states)))
    return 0


def _summary(result: RankResult, splits: int) -> str:
    over = f" (mean over {splits} splits)" if splits > 1 else ""
    values = ", ".join(f"{k} {v:.2f}" for k, v in result.as_dict().items())
    return f"{values}{over}"
