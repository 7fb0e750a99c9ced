"""`reidstream bench loader`: training clips/s of the MARS-format reader and training loader.

    reidstream bench loader [--root MARS_ROOT] [--model ap3d_r50] [--workers 2] [--batch 32]
                            [--seconds 20]

Without --root a temporary MARS-format tree of 256x128 JPEGs is rendered first
(`trainers.synthetic.generate_mars`) and deleted afterwards. Prints the single-process decode
and clip rates (the per-core ceiling) and the loader's clips/s with the given workers; the clip
shape, sampling and preprocessing are the model's `PretrainedCfg` (ap3d_r50: 4 frames at stride
8, 256x128).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from pipeline.bench.loader import bench_loader, synthetic_train_set
from pipeline.cli.common import setup_logging
from reid_models import create_model
from trainers.datasets import DatasetError, create_dataset

logger = logging.getLogger(__name__)

EXIT_USAGE = 2


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "loader",
        help="training loader throughput (clips/s) on a MARS-format tree",
        description="Measure the training data loader of a model: frame decode rate and clips/s "
        "in one process, then clips/s out of the DataLoader with --workers workers.",
    )
    parser.add_argument(
        "--root", type=Path, help="MARS root (default: render a temporary synthetic one)"
    )
    parser.add_argument("--model", default="ap3d_r50", help="model whose PretrainedCfg to load for")
    parser.add_argument("--workers", type=int, default=2, help="loader worker processes")
    parser.add_argument("--batch", type=int, default=32, help="clips per batch (P x K)")
    parser.add_argument("--instances", type=int, default=4, help="K: clips per identity")
    parser.add_argument("--seconds", type=float, default=20.0, help="time the loader this long")
    parser.add_argument("--log-level", default="WARNING", help="logging level")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_level)
    cfg = create_model(args.model).pretrained_cfg
    with tempfile.TemporaryDirectory(prefix="reidstream-bench-loader-") as tmp:
        if args.root is None:
            start = time.perf_counter()
            tracklets = synthetic_train_set(Path(tmp))
            frames = len({p for t in tracklets for p in t.frame_paths})
            print(
                f"rendered a synthetic MARS tree: {frames} frames in "
                f"{time.perf_counter() - start:.1f} s"
            )
        else:
            try:
                tracklets = list(create_dataset("mars", args.root).train)
            except DatasetError as e:
                print(f"reidstream bench loader: {e}")
                return EXIT_USAGE
        figures = bench_loader(
            tracklets,
            cfg,
            workers=args.workers,
            batch_size=args.batch,
            num_instances=args.instances,
            seconds=args.seconds,
        )
    shape = "x".join(str(s) for s in figures.clip_shape)
    print(
        f"model {args.model}: clips {shape} ({cfg.train_sampling}, stride {cfg.train_stride}), "
        f"{len(tracklets)} train tracklets"
    )
    print(f"decode, 1 process:         {figures.decode_fps:8.0f} frames/s")
    print(f"dataset, 1 process:        {figures.single_process_cps:8.1f} clips/s")
    print(
        f"loader, {figures.workers} workers, batch {figures.batch_size}: "
        f"{figures.loader_cps:8.1f} clips/s ({figures.batches} batches in "
        f"{figures.seconds:.1f} s)"
    )
    return 0
