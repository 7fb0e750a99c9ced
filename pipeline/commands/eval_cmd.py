"""`reidstream eval`: evaluate trained checkpoints on their dataset's test split.

    --checkpoint last.pt|best.pt [more ...]
      └─ the configuration stored in the checkpoint <- REIDSTREAM_TRAIN_* <- KEY=VALUE
         (e.g. data.root=/mnt/mars where the dataset moved, eval.rerank=true, eval.protocol=...)
      └─ model (weights from the checkpoint) ─▶ evaluate_model ─▶ RankResult
      └─ OUT/metrics.json, cmc.png, results.md (as `reidstream train` writes them)

iLIDS-VID and PRID2011 are reported as the mean over their 10 identity splits: a model trained
on split k has seen the other splits' test identities, so each split needs its own checkpoint.
With ``--all-splits`` the checkpoints given (one per split, each config naming its
``data.split_id``) are evaluated on their own splits and averaged (`mean_over_splits`).

Exit status: 0 done; 2 a configuration error, an unreadable checkpoint or an unusable dataset.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

import torch

from pipeline.commands.common import setup_logging
from pipeline.commands.train import evaluator, model_from_config, open_dataset, run_metrics
from pipeline.config import ConfigError, load_config
from pipeline.train_settings import ENV_PREFIX, TrainConfig
from trainers.checkpoint import CheckpointError, load_checkpoint
from trainers.datasets import DatasetError, VideoDataset
from trainers.evaluation import RankResult, mean_over_splits
from trainers.run import write_run_outputs

__all__ = ["add_parser", "config_from_checkpoint", "run"]

logger = logging.getLogger(__name__)

EXIT_USAGE = 2


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate trained checkpoints on the test split",
        description="Rebuild the model from the configuration stored in each checkpoint, "
        "evaluate it on its dataset's test split and write OUT/metrics.json, cmc.png and "
        "results.md. KEY=VALUE arguments override the stored configuration.",
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
    parser.set_defaults(run=run)


def config_from_checkpoint(state: dict, overrides: list[str]) -> TrainConfig:
    """The `TrainConfig` stored in a checkpoint, with `overrides` and the environment on top."""
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
    try:
        states = [load_checkpoint(p, expected_format=None) for p in args.checkpoint]
        configs = [config_from_checkpoint(s, args.overrides) for s in states]
        setup_logging(configs[0].log_level)
        _check_splits(configs, all_splits=args.all_splits)
        results = [_evaluate(cfg, state) for cfg, state in zip(configs, states, strict=True)]
    except ConfigError:
        raise  # the CLI reports configuration errors with every problem found
    except (CheckpointError, DatasetError, FileNotFoundError, ValueError) as e:
        print(f"reidstream eval: {e}", file=sys.stderr)
        return EXIT_USAGE
    final = mean_over_splits([r for r, _ in results]) if len(results) > 1 else results[0][0]
    cfg, dataset = configs[0], results[0][1]
    metrics = run_metrics(cfg, dataset, final, None, epochs=states[0].get("epoch"))
    if len(results) > 1:
        metrics = dataclasses.replace(metrics, split_id=None)
    out = args.out or args.checkpoint[0].parent
    for path in write_run_outputs(out, metrics=metrics, final=final).values():
        print(f"wrote {path}")
    print(_summary(final, len(results)))
    return 0


def _check_splits(configs: list[TrainConfig], *, all_splits: bool) -> None:
    if len(configs) == 1 and not all_splits:
        return
    if not all_splits:
        raise ValueError(f"{len(configs)} checkpoints given: pass --all-splits to average them")
    keys = {(c.model.name, str(c.model.overrides), c.data.name) for c in configs}
    if len(keys) > 1:
        raise ValueError(f"--all-splits needs one model and dataset; the checkpoints hold {keys}")
    splits = [c.data.split_id for c in configs]
    if len(set(splits)) != len(splits):
        raise ValueError(f"--all-splits needs one checkpoint per split, got split_ids {splits}")


def _evaluate(cfg: TrainConfig, state: dict) -> tuple[RankResult, VideoDataset]:
    dataset = open_dataset(cfg)
    logger.info("%s split %d of %d", cfg.data.name, dataset.split_id, dataset.num_splits)
    model = model_from_config(cfg, pretrained=None)
    model.load_state_dict(state["state_dict"])
    device = cfg.train.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return evaluator(cfg, dataset, device=device)(model), dataset


def _summary(result: RankResult, splits: int) -> str:
    over = f" (mean over {splits} splits)" if splits > 1 else ""
    values = ", ".join(f"{k} {v:.2f}" for k, v in result.as_dict().items())
    return f"{values}{over}"
