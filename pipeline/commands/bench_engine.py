"""`reidstream bench engine`: clips/s, latency and GFLOP/s of the ReID engines.

    reidstream bench engine [--models c2d_r50 ap3d_r50] [--engines torch onnxruntime tensorrt]
        [--precisions fp32 bf16] [--batch-sizes 1 8 64] [--clip-len 4] [--size 256x128]
        [--seconds 5] [--device cuda:0] [--compile MODE] [--channels-last] [--frame-convs]
        [--json OUT]

The benchmark itself is `deploy.benchmark` (its docstring says what is timed and how); this
module only puts it under the `bench` command group.
"""

from __future__ import annotations

import argparse

from pipeline.bench import engine as benchmark
from pipeline.cli.common import setup_logging


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "engine",
        help="ReID engine throughput: clips/s, latency p50/p99, GFLOP/s, share of bf16 peak",
        description="Time engine.embed per model, engine, precision and batch size; print a "
        "Markdown table (and --json). On a GPU the bf16 matmul peak is measured in the same run.",
    )
    benchmark.add_arguments(parser)
    parser.add_argument("--log-level", default="WARNING", help="logging level")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    return benchmark.run(args)
