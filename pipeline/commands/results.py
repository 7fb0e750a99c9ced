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
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from trainers.published import PUBLISHED, PublishedResult
from trainers.run import RunMetrics, read_runs

__all__ = ["add_parser", "results_table", "run"]

#: Ranks shown, for published and measured alike.
COLUMNS = ("rank1", "rank5", "rank20", "mAP")
_HEADS = ("R1", "R5", "R20", "mAP")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "results",
        help="print published results beside measured ones (markdown)",
        description="Print a markdown table of the five papers' published CMC ranks and mAP "
        "next to the final metrics of the runs found under --runs (metrics.json files).",
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
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    rows = [r for r in PUBLISHED if args.paper is None or r.paper == args.paper]
    print(results_table(rows, read_runs(args.runs) if args.runs.is_dir() else []))
    return 0


def results_table(published: Sequence[PublishedResult], runs: Sequence[RunMetrics]) -> str:
    """The markdown table: one line per published row, then the unmatched measured keys."""
    measured: dict[tuple[str, str, bool], list[RunMetrics]] = defaultdict(list)
    for r in runs:
        measured[r.key].append(r)
    head = ["paper", "row", "model", "dataset", "source"]
    head += [f"paper {h}" for h in _HEADS] + [f"ours {h}" for h in _HEADS] + ["runs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    shown = set()
    for p in published:
        mine = measured.get(p.key, [])
        shown.add(p.key)
        model = p.key[0] + (" +rerank" if p.rerank else "")
        source = p.source + (f" ({p.note})" if p.note else "")
        cells = [p.paper, p.row, model, p.dataset, source]
        cells += [_cell(p.metrics()[c]) for c in COLUMNS] + _measured(mine)
        lines.append("| " + " | ".join(cells) + " |")
    for key in sorted(k for k in measured if k not in shown):
        model = key[0] + (" +rerank" if key[2] else "")
        cells = ["", "", model, key[1], ""] + [""] * len(COLUMNS) + _measured(measured[key])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _measured(runs: list[RunMetrics]) -> list[str]:
    if not runs:
        return [""] * (len(COLUMNS) + 1)
    cells = []
    for column in COLUMNS:
        values = [r.final[column] for r in runs if r.final.get(column) is not None]
        cells.append(_cell(float(np.mean(values)) if values else None))
    return [*cells, str(len(runs))]


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"
