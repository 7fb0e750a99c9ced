"""Int8 calibration data for TensorRT: clips from a folder, preprocessed as the engines do.

    FOLDER/
      a.npy            uint8 (T, H, W, 3) RGB clip          ─┐
      b.npy                                                  ├─ load_clip ─▶ chunks of clip_len
      tracklet_7/      frames 000.jpg 001.jpg ... (any size) ─┘   (short clips loop their frames)
        └─ preprocess (deploy.engines.base, the engines' own) ─▶ (B, C, T, H', W') float32 batches
             └─ EntropyCalibrator (a tensorrt.IInt8EntropyCalibrator2) hands them to the builder,
                then caches the calibration table so the next build skips the data.

The data feeding (`CalibrationBatches`) is kept apart from the TensorRT base class
(`make_entropy_calibrator`, which imports TensorRT only when called), so the part that can be
wrong in a subtle way — which frames, which preprocessing — is tested where TensorRT is absent.

Frames of a folder are read with OpenCV (BGR, converted to RGB) in name order; a folder whose
frames differ in size (crops of one tracklet usually do) is resized to its first frame's size with
the model's interpolation, since a clip tensor needs one size; `preprocess` then resizes every clip
to the model's input size on the device exactly as at serving time. A batch is only ever full:
TensorRT calibrates with the one shape of its calibration profile, so the remainder is left out.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from reid_models.pretrained import PretrainedCfg

__all__ = [
    "IMAGE_SUFFIXES",
    "CalibrationBatches",
    "CalibrationError",
    "find_clips",
    "load_clip",
    "make_entropy_calibrator",
    "split_clip",
]

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_CV2_INTERPOLATION = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}


class CalibrationError(ValueError):
    """The calibration folder holds no usable clip, or a clip file is malformed."""


def find_clips(folder: Path) -> list[Path]:
    """The `.npy` clips and frame folders directly under `folder`, in name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CalibrationError(f"calibration folder {folder} does not exist or is not a folder")
    found = [
        p
        for p in sorted(folder.iterdir())
        if (p.is_file() and p.suffix == ".npy") or (p.is_dir() and _frames(p))
    ]
    if not found:
        raise CalibrationError(
            f"no clips in {folder}: expected .npy files of uint8 (T, H, W, 3) or folders of "
            f"{'/'.join(IMAGE_SUFFIXES)} frames"
        )
    return found


def _frames(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def load_clip(path: Path, *, interpolation: str = "bilinear") -> np.ndarray:
    """Reads one clip as uint8 (T, H, W, 3) RGB from a `.npy` file or a folder of frames."""
    path = Path(path)
    if path.is_dir():
        return _read_frames(_frames(path), interpolation=interpolation)
    clip = np.load(path, allow_pickle=False)
    if clip.dtype != np.uint8 or clip.ndim != 4 or clip.shape[-1] != 3 or clip.shape[0] < 1:
        raise CalibrationError(
            f"{path}: expected a uint8 (T, H, W, 3) RGB clip, got {clip.dtype} {clip.shape}"
        )
    return clip


def _read_frames(paths: list[Path], *, interpolation: str) -> np.ndarray:
    frames = []
    for frame_path in paths:
        bgr = cv2.imread(str(frame_path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise CalibrationError(f"{frame_path}: not a readable image")
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    h, w = frames[0].shape[:2]
    flag = _CV2_INTERPOLATION[interpolation]
    same = [
        f if f.shape[:2] == (h, w) else cv2.resize(f, (w, h), interpolation=flag) for f in frames
    ]
    return np.stack(same)


def split_clip(clip: np.ndarray, clip_len: int) -> list[np.ndarray]:
    """Consecutive `clip_len` chunks of `clip` (T, H, W, 3); the shorter remainder is dropped
    unless it is the only chunk, which then loops its frames (the "consecutive" sampling of short
    tracklets, pretrained.py `TrainSampling`)."""
    if clip.shape[0] < clip_len:
        return [clip[np.arange(clip_len) % clip.shape[0]]]
    return [clip[s : s + clip_len] for s in range(0, clip.shape[0] - clip_len + 1, clip_len)]


class CalibrationBatches:
    """Full batches of preprocessed calibration clips, (B, C, T, H, W) float32 on `device`.

    Args:
        folder: See `find_clips`.
        cfg: The model's preprocessing (input size, mean/std, interpolation).
        clip_len: Frames per clip, the T of the engine's input.
        batch_size: Clips per batch, the batch of the calibration profile.
        device: Where the batches are built ("cuda:0" for TensorRT).
        max_batches: Stop after this many batches (None: all the folder gives).
    """

    def __init__(
        self,
        folder: Path,
        *,
        cfg: PretrainedCfg,
        clip_len: int,
        batch_size: int,
        device: str = "cpu",
        max_batches: int | None = None,
    ) -> None:
        if clip_len < 1 or batch_size < 1:
            raise ValueError(f"clip_len and batch_size must be >= 1, got {clip_len}, {batch_size}")
        self.paths = find_clips(folder)
        self.cfg = cfg
        self.clip_len = clip_len
        self.batch_size = batch_size
        self.device = device
        self.max_batches = max_batches

    @property
    def input_shape(self) -> tuple[int, int, int, int, int]:
        """(B, C, T, H, W) of every batch."""
        c, h, w = self.cfg.input_size
        return (self.batch_size, c, self.clip_len, h, w)

    def fingerprint(self) -> str:
        """sha256 over the files' names, sizes and times and the batching: changes with the data."""
        digest = hashlib.sha256(f"{self.clip_len}/{self.batch_size}/{self.max_batches}".encode())
        digest.update(repr(self.cfg).encode())
        for path in self.paths:
            for file in [path] if path.is_file() else _frames(path):
                stat = file.stat()
                digest.update(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        return digest.hexdigest()

    def _clips(self) -> Iterator[np.ndarray]:
        for path in self.paths:
            yield from split_clip(
                load_clip(path, interpolation=self.cfg.interpolation), self.clip_len
            )

    def __iter__(self) -> Iterator[torch.Tensor]:
        from deploy.engines.base import preprocess

        pending: list[torch.Tensor] = []
        produced = 0
        for clip in self._clips():
            if self.max_batches is not None and produced >= self.max_batches:
                return
            one = torch.from_numpy(np.ascontiguousarray(clip))[None]
            pending.append(preprocess(one, self.cfg, device=self.device, dtype=torch.float32))
            if len(pending) == self.batch_size:
                yield torch.cat(pending).contiguous()
                pending, produced = [], produced + 1
        if pending:
            logger.info("calibration: %d clips short of a full batch left out", len(pending))
        if produced == 0:
            raise CalibrationError(
                f"calibration data gives no full batch of {self.batch_size} clips of "
                f"{self.clip_len} frames from {len(self.paths)} entries"
            )


def make_entropy_calibrator(batches: CalibrationBatches, *, cache_path: Path) -> Any:
    """A `tensorrt.IInt8EntropyCalibrator2` that feeds `batches` and caches the table at
    `cache_path` (read back on the next build, which then skips the data).

    The batches must live on a CUDA device: TensorRT reads them by device pointer.
    """
    from deploy.tensorrt_engine import import_tensorrt

    trt = import_tensorrt()

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self._batches = iter(batches)
            self._current: torch.Tensor | None = None  # kept alive while TensorRT reads it

        def get_batch_size(self) -> int:
            return batches.batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            self._current = next(self._batches, None)
            return None if self._current is None else [int(self._current.data_ptr())]

        def read_calibration_cache(self) -> bytes | None:
            path = Path(cache_path)
            return path.read_bytes() if path.is_file() else None

        def write_calibration_cache(self, cache: bytes) -> None:
            Path(cache_path).parent.mkdir(parents=True, exist_ok=True)
            Path(cache_path).write_bytes(bytes(cache))

    return EntropyCalibrator()
