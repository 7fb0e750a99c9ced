"""Frame decoding, the training clip dataset and the training loader.

    Tracklet (frame_paths, pid, camid)
      └─ train_frame_indices (cfg.train_sampling)  ─▶ T frame indices
      └─ read_frames: cv2.imread (BGR) ─ resize once to (H, W) ─ BGR->RGB into one (T, H, W, 3)
         uint8 array; a frame drawn twice is decoded once
      └─ ClipTransform (one flip/crop/erase per clip) ─▶ (3, T, H, W) float32, pid, camid

    build_train_loader: TrainClipDataset + RandomIdentitySampler (P x K; num_instances=0: plain
    shuffle) + DataLoader(workers, persistent, prefetch, pinned memory on CUDA, drop_last)

The decoder is cv2 (libjpeg-turbo), resizing straight into the clip array so a frame is touched
by Python once; OpenCV's own thread pool is switched off inside loader workers (``cv2.
setNumThreads(0)``), where the workers are the parallelism.

Randomness: each loader worker draws from a numpy generator seeded by ``(seed, worker seed)``;
the worker seed comes from the loader's generator, seeded from ``(seed, rank)``, so a run is
reproducible for a given seed and worker count and ranks augment differently.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
import torch.utils.data

from reid_models.pretrained import PretrainedCfg
from trainers.data.samplers import RandomIdentitySampler
from trainers.data.sampling import train_frame_indices
from trainers.data.transforms import INTERPOLATIONS, ClipTransform

if TYPE_CHECKING:
    from trainers.datasets.base import Tracklet

__all__ = ["TrainClipDataset", "build_train_loader", "read_frames", "worker_init"]

logger = logging.getLogger(__name__)

#: Batches each loader worker keeps ready.
PREFETCH_FACTOR = 4


def read_frames(
    paths: Sequence[str], *, size: tuple[int, int] | None = None, interpolation: str = "bilinear"
) -> np.ndarray:
    """Decodes image files into one clip array.

    Args:
        paths: T image files (any format cv2 reads).
        size: (H, W) to resize every frame to; None keeps the first frame's size (all frames must
            then share it).
        interpolation: ``bilinear`` or ``bicubic``, used only where a frame is resized.

    Returns:
        (T, H, W, 3) uint8 RGB.

    Raises:
        OSError: A file is missing or does not decode.
    """
    out = None
    flag = INTERPOLATIONS[interpolation]
    for t, path in enumerate(paths):
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise OSError(f"cannot decode image {path!r} (missing or not an image)")
        if out is None:
            height, width = size if size is not None else image.shape[:2]
            out = np.empty((len(paths), height, width, 3), dtype=np.uint8)
        if image.shape[:2] != out.shape[1:3]:
            if size is None:
                raise ValueError(
                    f"frame {path!r} is {image.shape[:2]}, the clip's first frame "
                    f"{out.shape[1:3]}; pass size= to resize"
                )
            image = cv2.resize(image, (out.shape[2], out.shape[1]), interpolation=flag)
        cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=out[t])
    if out is None:
        raise ValueError("a clip needs at least one frame path")
    return out


def read_indexed_frames(
    paths: Sequence[str], indices: np.ndarray, *, size: tuple[int, int], interpolation: str
) -> np.ndarray:
    """`read_frames` of ``paths[i] for i in indices``, decoding a repeated frame once."""
    if np.all(np.diff(indices) > 0):  # the common case: distinct frames in order
        return read_frames([paths[i] for i in indices], size=size, interpolation=interpolation)
    unique, inverse = np.unique(indices, return_inverse=True)
    frames = read_frames([paths[i] for i in unique], size=size, interpolation=interpolation)
    return frames[inverse.reshape(-1)]


def worker_init(worker_id: int) -> None:
    """Loader worker start-up: no OpenCV or torch thread pools inside a worker process."""
    del worker_id
    cv2.setNumThreads(0)
    torch.set_num_threads(1)


class TrainClipDataset(torch.utils.data.Dataset):
    """One random clip of tracklet ``i`` per `__getitem__(i)`.

    Args:
        tracklets: Items unpacking to (frame_paths, pid, camid).
        clip_len: Frames per clip (T).
        sampling: ``stride`` or ``consecutive`` (`train_frame_indices`).
        stride: Frame step of ``stride`` sampling.
        transform: Resize, augmentation and normalisation; its size is the decode size.
        seed: Base seed of the augmentation and frame draws.
    """

    def __init__(
        self,
        tracklets: Sequence[Tracklet],
        *,
        clip_len: int,
        sampling: str,
        stride: int,
        transform: ClipTransform,
        seed: int = 0,
    ) -> None:
        self.tracklets = list(tracklets)
        self.clip_len = clip_len
        self.sampling = sampling
        self.stride = stride
        self.transform = transform
        self.seed = seed
        self._rng: np.random.Generator | None = None
        self._rng_key: int | None = None
        rng = np.random.default_rng(0)  # validate the options once, up front
        train_frame_indices(clip_len, clip_len=clip_len, sampling=sampling, stride=stride, rng=rng)

    @property
    def pids(self) -> list[int]:
        return [int(t[1]) for t in self.tracklets]

    def __len__(self) -> int:
        return len(self.tracklets)

    def _generator(self) -> np.random.Generator:
        info = torch.utils.data.get_worker_info()
        key = -1 if info is None else int(info.seed)
        if self._rng is None or self._rng_key != key:
            entropy = [self.seed] if key < 0 else [self.seed, key]
            self._rng, self._rng_key = np.random.default_rng(entropy), key
        return self._rng

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        paths, pid, camid = self.tracklets[i]
        rng = self._generator()
        indices = train_frame_indices(
            len(paths), clip_len=self.clip_len, sampling=self.sampling, stride=self.stride, rng=rng
        )
        frames = read_indexed_frames(
            paths, indices, size=self.transform.size, interpolation=self.transform.interpolation
        )
        return self.transform(frames, rng), int(pid), int(camid)


def build_train_loader(
    tracklets: Sequence[Tracklet],
    cfg: PretrainedCfg,
    *,
    batch_size: int,
    num_instances: int,
    workers: int,
    seed: int,
    clip_len: int | None = None,
    sampling: str | None = None,
    stride: int | None = None,
    flip: float = 0.5,
    random_erasing: float = 0.0,
    pad: int = 10,
    rank: int = 0,
    world_size: int = 1,
) -> torch.utils.data.DataLoader:
    """The training loader of a model with `cfg`: batches of (clips, pids, camids).

    Args:
        tracklets: Training tracklets (pids relabelled 0..N-1).
        cfg: The model's `PretrainedCfg`: input size, mean/std, interpolation, and the default
            clip length, sampling and stride.
        batch_size: Clips per batch on this rank.
        num_instances: K of the P x K sampler; 0 shuffles tracklets without identity balance
            (GLTR and M3D train so: their ``train.py`` shuffles tracklets).
        workers: Loader processes (0: load in this process).
        seed: Seed of the sampler (the same on every rank) and of the augmentations.
        clip_len, sampling, stride: Override `cfg.train_clip_len`, `train_sampling`, `train_stride`.
        flip, random_erasing, pad: Augmentations (`ClipTransform`); pad=0 disables pad + crop.
        rank, world_size: This process's share of the batches under DDP.

    Returns:
        A DataLoader yielding ((B, 3, T, H, W) float32, (B,) int64 pids, (B,) int64 camids);
        its ``sampler.set_epoch(epoch)`` reshuffles.
    """
    transform = ClipTransform.from_cfg(
        cfg, train=True, flip=flip, random_erasing=random_erasing, pad=pad
    )
    dataset = TrainClipDataset(
        tracklets,
        clip_len=clip_len or cfg.train_clip_len,
        sampling=sampling or cfg.train_sampling,
        stride=stride or cfg.train_stride,
        transform=transform,
        seed=seed,
    )
    sampler = _train_sampler(dataset, num_instances, batch_size, seed, rank, world_size)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=torch.cuda.is_available(),
        drop_last=True,
        worker_init_fn=worker_init,
        generator=_loader_generator(seed, rank),
        persistent_workers=workers > 0,
        prefetch_factor=PREFETCH_FACTOR if workers > 0 else None,
    )


def _train_sampler(
    dataset: TrainClipDataset,
    num_instances: int,
    batch_size: int,
    seed: int,
    rank: int,
    world_size: int,
) -> torch.utils.data.Sampler[int]:
    """P x K identity batches (`num_instances` = K > 0), else a plain shuffle; this rank's share."""
    if num_instances > 0:
        return RandomIdentitySampler(
            dataset.pids,
            num_instances=num_instances,
            batch_size=batch_size,
            seed=seed,
            rank=rank,
            world_size=world_size,
        )
    return torch.utils.data.DistributedSampler(
        dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
    )


def _loader_generator(seed: int, rank: int) -> torch.Generator:
    """The loader's generator (it seeds the workers), seeded from ``(seed, rank)``."""
    return torch.Generator().manual_seed(
        int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])
    )
