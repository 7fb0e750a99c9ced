"""`reidstream bench <target>`: benchmarks that print measured figures (never assertions).

Each target is a module with `add_parser(subparsers)` that sets `run(args)`.
"""

from __future__ import annotations

import argparse
import importlib

__all__ = ["add_arguments", "run"]

#: Benchmark targets, in the order `reidstream bench --help` lists them.
_TARGETS = (
    "pipeline.commands.bench_loader",
    "pipeline.commands.bench_engine",
    "pipeline.bench.report",
    "pipeline.bench.matcher",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Measure one part of reidstream on this machine and print the figures."
    targets = parser.add_subparsers(title="targets", metavar="<target>")
    for module in _TARGETS:
        importlib.import_module(module).add_parser(targets)
    parser.set_defaults(bench_parser=parser)


def run(args: argparse.Namespace) -> int:
    if not hasattr(args, "run"):
        args.bench_parser.print_help()
        return 2
    return args.run(args)
