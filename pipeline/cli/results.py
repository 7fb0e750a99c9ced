"""`reidstream results`: the papers' published numbers beside this project's measured ones.

    trainers.published.PUBLISHED ──┐ matched on (model variant, dataset, re-ranking, protocol)
    RUNS/**/metrics.json ──────────┴─▶ one markdown table on stdout, then a protocol legend

Every row names its evaluation protocol (``mars``, ``ap3d``, ``torchreid``:
trainers/evaluation/rank.py). A published row is the paper's numbers under the protocol its
code scored with (`trainers.published.PAPER_PROTOCOLS`), beside the runs of that model variant
scored under the same protocol; runs under another protocol, or with no published counterpart
(synthetic data, other variants), follow the published rows. Several runs of one variant on one
dataset (the 10 splits of iLIDS-VID or PRID2011, or repeated seeds) are averaged, and the
``runs`` column says how many. Cells stay empty where a paper does not report a rank or where
nothing was run. Sources are the papers by table or section, and the official code by file.

Exit status: 0 with runs found; 1 when DIR holds none (the published rows are still printed,
and "no runs found in DIR" on stderr), as other commands exit 1 when they measured nothing;
2 when DIR is not a folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from trainers.published import PUBLISHED  # plain data, no torch

    parser.description = (
        "Print a markdown table of the five papers' published CMC ranks and mAP "
        "next to the final metrics of the runs found under --runs (metrics.json files), "
        "each row with the evaluation protocol it was scored under."
    )
    parser.add_argument(
        "--runs",
        metavar="DIR",
        type=Path,
        default=Path("runs"),
        help="folder searched recursively for metrics.json (default: runs)",
    )
    parser.add_argument(
        "--paper",
        choices=sorted({r.paper for r in PUBLISHED}),
        help="only this paper's rows (measured runs without a published row are still shown)",
    )


def run(args: argparse.Namespace) -> int:
    from pipeline.cli.common import UsageError
    from trainers.published import PUBLISHED
    from trainers.run import read_runs, results_table

    if not args.runs.is_dir():
        raise UsageError(f"--runs {args.runs}: no such folder")
    rows = [r for r in PUBLISHED if args.paper is None or r.paper == args.paper]
    runs = read_runs(args.runs)
    print(results_table(rows, runs))
    if not runs:
        print(f"no runs found in {args.runs}", file=sys.stderr)
        return 1
    return 0
