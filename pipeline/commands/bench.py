"""`reidstream bench <target>`: benchmarks that print measured figures (never assertions).

Each target is a module with `add_parser(subparsers)` that sets `run(args)`, like the commands.
"""

from __future__ import annotations

import argparse

from pipeline.commands import bench_engine, bench_loader, bench_matcher, bench_pipeline

__all__ = ["BENCHES", "add_parser"]

#: Benchmark targets, in the order `reidstream bench --help` lists them.
BENCHES: tuple = (bench_loader, bench_engine, bench_pipeline, bench_matcher)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="run a benchmark and print its figures",
        description="Measure one part of reidstream on this machine and print the figures.",
    )
    targets = parser.add_subparsers(title="targets", metavar="<target>")
    for bench in BENCHES:
        bench.add_parser(targets)
    parser.set_defaults(run=lambda args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2
