"""`reidstream adapt`: adapt a temporal ReID model to a site from its own unlabelled footage.

    reidstream adapt --config SITE.yaml --out DIR [KEY=VALUE ...]
      -> DIR/tracklets/   the collected tracklets (crops and index; reused when run again)
      -> DIR/model.pt     the adapted model: reid.engine=torch reid.checkpoint=DIR/model.pt
      -> DIR/last.pt      training state after each epoch (resumed when run again)
      -> DIR/report.json  pseudo labels, losses per epoch, held-out scores of teacher and model

The work is `pipeline.adapt.run_adapt`; the method is `trainers.adapt`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.cli.common import add_config_arguments, load_from_args, setup_logging, usage_errors

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description += (
        " Runs the configured cameras through the detector and tracker for adapt.duration_s of "
        "footage, keeps the tracklets that pass the quality gates, and fine-tunes adapt.model "
        "(AP3D on OSNet) on them with pseudo identities and distillation from the OSNet teacher. "
        "Run again with the same --out to resume."
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="folder of the tracklets, checkpoints and report"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from pipeline.adapt import run_adapt
    from trainers.adapt import StoreError

    cfg = load_from_args(args)
    setup_logging(cfg.log_level)
    with usage_errors(OSError, StoreError):
        result = run_adapt(cfg, args.out, progress=not args.no_progress)
    evaluation = result.report.get("evaluation", {})
    print(json.dumps({"checkpoint": str(result.checkpoint), "evaluation": evaluation}, indent=2))
    print(
        f"adapted model: {result.checkpoint}; use it with reid.engine=torch "
        f"reid.checkpoint={result.checkpoint} (report: {args.out / 'report.json'})"
    )
    return 0
