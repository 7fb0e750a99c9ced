"""`reidstream explain`: why the matcher linked a tracklet where it did.

    RUN_DIR/decisions.jsonl (run.decisions=true or run.record=true) ──▶ the decisions about
    TRACKLET (a tracklet id, or CAMERA/TRACK_ID) ──▶ per decision: the outcome, and each of the
    most similar identities, accepted or refused with the reason

The command reads a file; it loads no model library.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Show the matcher's decisions about one tracklet of a run: the identities it was "
        "compared with, their similarity, and why each was accepted or refused (threshold, "
        "same camera, two places at once, transit window, margin, ...). The run must have "
        "written decisions.jsonl: run it with run.decisions=true (or run.record=true)."
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="the run's run.out_dir")
    parser.add_argument(
        "tracklet",
        metavar="TRACKLET",
        help="a tracklet id as the links carry it, or CAMERA/TRACK_ID",
    )
    parser.add_argument(
        "--last", type=_positive, metavar="N", help="only the last N decisions (default: all)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the decisions as JSON lines instead"
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a count of at least 1, got {text}")
    return value


def run(args: argparse.Namespace) -> int:
    from pipeline.cli.common import UsageError, usage_errors
    from pipeline.matching.decisions import DECISIONS_FILE, describe, of_tracklet, read_decisions

    path = args.run_dir / DECISIONS_FILE
    if not path.is_file():
        raise UsageError(
            f"{path}: no such file; the run writes it with run.decisions=true or run.record=true"
        )
    with usage_errors(ValueError):
        decisions = of_tracklet(read_decisions(path), args.tracklet)
    if not decisions:
        raise UsageError(f"{path}: no decision about tracklet {args.tracklet!r}")
    if args.last:
        decisions = decisions[-args.last :]
    first = decisions[0]
    if not args.json:
        print(
            f"tracklet {first.camera_id}/{first.tracklet_id} (track {first.track_id}): "
            f"{len(decisions)} decision(s)"
        )
    for decision in decisions:
        if args.json:
            print(json.dumps(decision.as_dict()))
        else:
            print("\n".join(describe(decision)))
    return 0
