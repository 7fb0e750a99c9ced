"""`reidstream results`: the papers' published numbers beside this project's measured ones.

    trainers.published.PUBLISHED ──┐ matched on (model variant, dataset, re-ranking)
    RUNS/**/metrics.json ──────────┴─▶ one markdown table on stdout

Several runs of one model on one dataset (the 10 splits of iLIDS-VID or PRID2011, or repeated
seeds) are averaged, and the ``runs`` column says how many. Cells stay empty where a paper does
not report a rank or where nothing was run; runs with no published counterpart (synthetic data,
other variants) follow the published rows.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from trainers.published import PUBLISHED  # plain data, no torch

    parser.description = (
        "Print a markdown table of the five papers' published CMC ranks and mAP "
        "next to the final metrics of the runs found under --runs (metrics.json files)."
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
    from trainers.published import PUBLISHED
    from trainers.run import read_runs, results_table

    rows = [r for r in PUBLISHED if args.paper is None or r.paper == args.paper]
    print(results_table(rows, read_runs(args.runs) if args.runs.is_dir() else []))
    return 0
