"""`reidstream bench loader`: clips/s of the real training reader, loader and transforms here.

    reidstream bench loader [--root MARS_ROOT] [--model ap3d_r50] [--workers 2] [--batch 32]
                            [--instances 4] [--seconds 20]

    MARS tree (given, or a synthetic one written by `trainers.synthetic.generate_mars`)
      └─ create_dataset("mars").train
           ├─ decode rate:   cv2.imread of frames in one process            frames/s (the ceiling)
           ├─ single process: TrainClipDataset[i], no loader                clips/s per core
           └─ loader:        build_train_loader(workers, P x K, persistent,  clips/s end to end
                             prefetch, pinned on CUDA); the first batch (worker start-up)
                             is not timed

The clip shape, sampling and preprocessing are the model's `PretrainedCfg` (ap3d_r50: 4 frames at
stride 8, 256x128). Without a root, a temporary tree of 256x128 JPEGs is rendered first and
deleted afterwards. A generated tree is small (it is rendered here), so its train tracklets are
repeated under new identities to make epochs long enough that epoch boundaries do not dominate;
the files, and so the decoding work, stay the same. Figures only: nothing here asserts a speed.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from reid_models import create_model
from reid_models.pretrained import PretrainedCfg
from trainers.data.clips import TrainClipDataset, build_train_loader, worker_init
from trainers.data.transforms import ClipTransform
from trainers.datasets import Tracklet, create_dataset

__all__ = ["LoaderFigures", "bench_loader", "run", "synthetic_train_set"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoaderFigures:
    """Measured throughput.

    Attributes:
        decode_fps: Frames/s of ``cv2.imread`` alone, one process.
        single_process_cps: Clips/s of the dataset (decode + sample + transform), one process.
        loader_cps: Clips/s out of the DataLoader with `workers` workers.
        workers: Loader processes.
        batch_size: Clips per batch.
        clip_shape: (C, T, H, W) of one clip.
        batches: Batches timed.
        seconds: Time the loader was measured for.
    """

    decode_fps: float
    single_process_cps: float
    loader_cps: float
    workers: int
    batch_size: int
    clip_shape: tuple[int, ...]
    batches: int
    seconds: float


def synthetic_train_set(
    root: Path, *, num_ids: int = 24, repeat: int = 8, seed: int = 0
) -> list[Tracklet]:
    """Writes a MARS-format tree of 256x128 JPEGs under `root` and returns its train set.

    The `num_ids` identities' tracklets are listed `repeat` times, each copy under new pids.
    """
    from trainers.synthetic import generate_mars

    generate_mars(
        root,
        num_train_ids=num_ids,
        num_test_ids=2,
        tracklets_per_id=4,
        frames_per_tracklet=(16, 48),
        size=(256, 128),
        seed=seed,
    )
    train = create_dataset("mars", root).train
    return [
        Tracklet(t.frame_paths, t.pid + r * num_ids, t.camid) for r in range(repeat) for t in train
    ]


def _decode_rate(tracklets: Sequence[Tracklet], seconds: float) -> float:
    paths = [p for t in tracklets for p in t.frame_paths]
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        cv2.imread(paths[count % len(paths)], cv2.IMREAD_COLOR)
        count += 1
    return count / (time.perf_counter() - start)


def _single_process_rate(dataset: TrainClipDataset, seconds: float) -> float:
    order = np.random.default_rng(0).permutation(len(dataset))
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        dataset[int(order[count % len(order)])]
        count += 1
    return count / (time.perf_counter() - start)


def _loader_rate(loader, seconds: float) -> tuple[float, int, float]:
    """(clips/s, batches, elapsed) after the first batch, across epochs until `seconds` pass."""
    clips = batches = 0
    start = None
    epoch = 0
    while True:
        loader.sampler.set_epoch(epoch)
        for batch, _, _ in loader:
            if start is None:  # worker start-up and the first fill are not throughput
                start = time.perf_counter()
                continue
            clips += batch.shape[0]
            batches += 1
            if time.perf_counter() - start >= seconds:
                elapsed = time.perf_counter() - start
                return clips / elapsed, batches, elapsed
        epoch += 1


def bench_loader(
    tracklets: Sequence[Tracklet],
    cfg: PretrainedCfg,
    *,
    workers: int = 2,
    batch_size: int = 32,
    num_instances: int = 4,
    seconds: float = 20.0,
    single_seconds: float = 5.0,
) -> LoaderFigures:
    """Measures the training loader of a model with `cfg` on `tracklets`.

    Augmentations are on (flip, pad + crop, random erasing p = 0.5), so the figure covers the
    most expensive recipe.
    """
    transform = ClipTransform.from_cfg(cfg, train=True, flip=0.5, random_erasing=0.5, pad=10)
    dataset = TrainClipDataset(
        tracklets,
        clip_len=cfg.train_clip_len,
        sampling=cfg.train_sampling,
        stride=cfg.train_stride,
        transform=transform,
    )
    threads = torch.get_num_threads(), cv2.getNumThreads()
    worker_init(0)  # one thread, as inside a loader worker
    try:
        decode = _decode_rate(tracklets, single_seconds)
        single = _single_process_rate(dataset, single_seconds)
    finally:
        torch.set_num_threads(threads[0])
        cv2.setNumThreads(threads[1])
    loader = build_train_loader(
        tracklets,
        cfg,
        batch_size=batch_size,
        num_instances=num_instances,
        workers=workers,
        seed=0,
        random_erasing=0.5,
    )
    rate, batches, elapsed = _loader_rate(loader, seconds)
    clip_shape = (cfg.input_size[0], cfg.train_clip_len, *cfg.input_size[1:])
    return LoaderFigures(decode, single, rate, workers, batch_size, clip_shape, batches, elapsed)


def run(
    *,
    root: Path | None = None,
    model: str = "ap3d_r50",
    workers: int = 2,
    batch_size: int = 32,
    num_instances: int = 4,
    seconds: float = 20.0,
) -> LoaderFigures:
    """Measures the training loader of `model` on the MARS tree at `root` (default: a rendered
    temporary one) and prints the figures.

    Raises:
        DatasetError: `root` is not a MARS tree.
    """
    cfg = create_model(model).pretrained_cfg
    with tempfile.TemporaryDirectory(prefix="reidstream-bench-loader-") as tmp:
        if root is None:
            start = time.perf_counter()
            tracklets = synthetic_train_set(Path(tmp))
            frames = len({p for t in tracklets for p in t.frame_paths})
            print(
                f"rendered a synthetic MARS tree: {frames} frames in "
                f"{time.perf_counter() - start:.1f} s"
            )
        else:
            tracklets = list(create_dataset("mars", root).train)
        figures = bench_loader(
            tracklets,
            cfg,
            workers=workers,
            batch_size=batch_size,
            num_instances=num_instances,
            seconds=seconds,
        )
    shape = "x".join(str(s) for s in figures.clip_shape)
    print(
        f"model {model}: clips {shape} ({cfg.train_sampling}, stride {cfg.train_stride}), "
        f"{len(tracklets)} train tracklets"
    )
    print(f"decode, 1 process:         {figures.decode_fps:8.0f} frames/s")
    print(f"dataset, 1 process:        {figures.single_process_cps:8.1f} clips/s")
    print(
        f"loader, {figures.workers} workers, batch {figures.batch_size}: "
        f"{figures.loader_cps:8.1f} clips/s ({figures.batches} batches in "
        f"{figures.seconds:.1f} s)"
    )
    return figures
