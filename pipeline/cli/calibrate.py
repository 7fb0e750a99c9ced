"""`reidstream calibrate`: propose matcher.threshold from a site's own cameras.

    reidstream calibrate --config SITE.yaml [--out DIR] [--target-false-merge R]
        [--truth DIR] [KEY=VALUE ...]
      -> DIR/tracklets/        the collected tracklets (reused when run again)
      -> DIR/calibration.json  the proposal, the expected false-merge and split rates, the
                               pair counts and any warning
      -> DIR/calibration.png   both similarity distributions and both thresholds

The work is `pipeline.bench.calibrate.run_calibration`; the statistics are
`pipeline.matching.calibration`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.cli.common import add_config_arguments, load_from_args, setup_logging, usage_errors

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description += (
        " Runs the configured cameras for calibrate.duration_s of footage; tracklets seen in "
        "the same frame of one camera are different people, the first and last clip of one "
        "tracklet the same person. Proposes the threshold that at most the target fraction of "
        "different-people pairs reach, with the fraction of same-person pairs it would split."
    )
    parser.add_argument("--out", type=Path, default=Path("runs/calibrate"), help="output folder")
    parser.add_argument(
        "--target-false-merge",
        type=float,
        metavar="R",
        help="fraction of different-people pairs allowed at or above the threshold "
        "(calibrate.target_false_merge, default 0.01)",
    )
    parser.add_argument(
        "--truth",
        type=Path,
        metavar="DIR",
        help="hand-checked identities (<camera>.txt rows frame,person,x1,y1,x2,y2): also run the "
        "job at the configured and the proposed threshold and count false merges and splits",
    )
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from pipeline.bench.calibrate import run_calibration
    from trainers.adapt import StoreError

    if args.target_false_merge is not None:
        # After the KEY=VALUE overrides: the flag is the more explicit of the two.
        args.overrides = [
            *args.overrides,
            f"calibrate.target_false_merge={args.target_false_merge}",
        ]
    cfg = load_from_args(args)
    setup_logging(cfg.log_level)
    args.out.mkdir(parents=True, exist_ok=True)
    with usage_errors(OSError, StoreError):
        report = run_calibration(cfg, args.out, truth=args.truth)
    print(json.dumps(report, indent=2))
    for warning in report["warnings"]:
        print(f"warning: {warning}")
    print(
        f"proposed matcher.threshold={report['proposed_threshold']} for a false-merge rate of "
        f"{report['target_false_merge']:g} (measured {report['expected_false_merge']:g}); "
        f"expected split rate {report['expected_split']} on same-camera pairs "
        f"(configured {report['configured_threshold']:g}: {report['at_configured']}); "
        f"plot: {report['plot']}"
    )
    return 0
