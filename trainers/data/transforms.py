"""Clip transforms: one random decision per clip, applied to every frame of it.

    frames (T, H0, W0, 3) uint8 RGB
      └─ resize to cfg.input_size (cv2, cfg.interpolation; skipped when already that size)
      └─ train only: horizontal flip (p = flip) ─ pad + random crop (pad px) ─┐  uint8 so far,
      └─ (C, T, H, W) float32: (x / 255 - cfg.mean) / cfg.std                │  one decision
      └─ train only: random erasing (p = random_erasing), one rectangle ─────┘  per clip

Frame-wise transforms as in torchreid (``torchreid/data/datasets/dataset.py::VideoDataset``
transforms each frame on its own) would flip or crop frames of one clip differently and break the
temporal kernels' correspondence; AP3D's ``randomize_parameters()`` is called once per clip
(guxinqian/AP3D ``transforms/spatial_transforms.py``), and PersonVLAD's flip (Wu et al.
Sec. III-C: "horizontally flip them with 50% probability", no more said) is taken the same way.
So every random choice here is drawn once and shared by all frames.

Which augmentations a paper used is the recipe's choice (AP3D: flip only; GLTR and M3D: none;
PersonVLAD: flip), made through `ClipTransform.from_cfg`'s arguments. Padding fills with black,
as torchvision's ``Pad(10)`` + ``RandomCrop`` of the torchreid lineage does. Random erasing
follows torchreid's `RandomErasing` rectangle law (area 2-40 %, aspect 0.3-3.3, up to 100 tries)
but fills with 0 after normalisation, i.e. the dataset mean colour, instead of torchreid's
normalised-space constants.

`PretrainedCfg.mean`/`std` are fractions of 255 for every model, C3D included
(`reid_models.c3d.C3D_MEAN_RGB` and ``C3D_STD = 1/255`` turn the formula into ``x - mean`` on
0-255 pixels), so one formula serves all. Resizing uses cv2, whose bicubic filter differs slightly
from PIL's (AP3D resizes with PIL); MARS frames are already 256x128, so AP3D's resize is a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from reid_models.pretrained import PretrainedCfg

__all__ = ["INTERPOLATIONS", "ClipTransform"]

#: `PretrainedCfg.interpolation` -> cv2 flag.
INTERPOLATIONS = {"bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}
_ERASE_AREA = (0.02, 0.4)
_ERASE_ASPECT = (0.3, 1 / 0.3)
_ERASE_TRIES = 100


@dataclass(frozen=True)
class ClipTransform:
    """Resizes, augments (train) and normalises a clip.

    Attributes:
        size: (H, W) of the output frames.
        mean: Per-channel RGB mean, as a fraction of 255.
        std: Per-channel RGB divisor, as a fraction of 255.
        interpolation: ``bilinear`` or ``bicubic``.
        train: Whether to apply the random augmentations.
        flip: Probability of a horizontal flip (train).
        random_erasing: Probability of erasing one rectangle (train).
        pad: Border in pixels of the pad + random crop (train); 0 disables it.
    """

    size: tuple[int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"
    train: bool = False
    flip: float = 0.5
    random_erasing: float = 0.0
    pad: int = 10

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"unknown interpolation {self.interpolation!r}; choose one of "
                f"{sorted(INTERPOLATIONS)}"
            )
        for name in ("flip", "random_erasing"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability, got {getattr(self, name)}")
        if self.pad < 0:
            raise ValueError(f"pad must be >= 0, got {self.pad}")
        std = torch.tensor(self.std, dtype=torch.float32).view(3, 1, 1, 1)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(3, 1, 1, 1)
        # (x / 255 - mean) / std == x * scale + shift, one fused pass over the clip.
        object.__setattr__(self, "_scale", 1.0 / (255.0 * std))
        object.__setattr__(self, "_shift", -mean / std)

    @classmethod
    def from_cfg(
        cls,
        cfg: PretrainedCfg,
        *,
        train: bool,
        flip: float = 0.5,
        random_erasing: float = 0.0,
        pad: int = 10,
    ) -> ClipTransform:
        """The transform a model with `cfg` expects; augmentations only when `train`."""
        return cls(
            size=(cfg.input_size[1], cfg.input_size[2]),
            mean=tuple(cfg.mean),
            std=tuple(cfg.std),
            interpolation=cfg.interpolation,
            train=train,
            flip=flip,
            random_erasing=random_erasing,
            pad=pad,
        )

    def __call__(self, frames: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        """Transforms one clip.

        Args:
            frames: (T, H0, W0, 3) uint8 RGB.
            rng: Source of the random decisions; required when `train`.

        Returns:
            (3, T, H, W) float32, normalised.
        """
        if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
            raise ValueError(
                f"expected (T, H, W, 3) uint8 frames, got {frames.dtype} {frames.shape}"
            )
        frames = self.resize(frames)
        if self.train:
            if rng is None:
                raise ValueError("a training transform needs an rng")
            if rng.random() < self.flip:
                frames = frames[:, :, ::-1]
            if self.pad:
                frames = _shift(frames, *rng.integers(-self.pad, self.pad + 1, size=2))
        clip = torch.empty((3, *frames.shape[:3]), dtype=torch.float32)
        clip.copy_(torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2))
        clip.mul_(self._scale).add_(self._shift)
        if self.train and self.random_erasing and rng.random() < self.random_erasing:
            box = _erase_box(self.size, rng)
            if box is not None:
                y, x, h, w = box
                clip[:, :, y : y + h, x : x + w] = 0.0
        return clip

    def resize(self, frames: np.ndarray) -> np.ndarray:
        """(T, H0, W0, 3) uint8 -> (T, H, W, 3) uint8; returns `frames` when already that size."""
        height, width = self.size
        if frames.shape[1:3] == (height, width):
            return frames
        out = np.empty((frames.shape[0], height, width, 3), dtype=np.uint8)
        flag = INTERPOLATIONS[self.interpolation]
        for frame, dst in zip(frames, out, strict=True):
            cv2.resize(frame, (width, height), dst=dst, interpolation=flag)
        return out


def _shift(frames: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Pad + crop in one copy: output[y, x] = frames[y + dy, x + dx], black outside the frame."""
    _, height, width, _ = frames.shape
    out = np.zeros(frames.shape, dtype=np.uint8)
    y0, y1 = max(0, -dy), min(height, height - dy)  # destination rows that have a source row
    x0, x1 = max(0, -dx), min(width, width - dx)
    if y0 < y1 and x0 < x1:
        out[:, y0:y1, x0:x1] = frames[:, y0 + dy : y1 + dy, x0 + dx : x1 + dx]
    return out


def _erase_box(size: tuple[int, int], rng: np.random.Generator) -> tuple[int, int, int, int] | None:
    """(y, x, h, w) of a random rectangle by torchreid's law, or None if no try fits."""
    height, width = size
    for _ in range(_ERASE_TRIES):
        area = height * width * rng.uniform(*_ERASE_AREA)
        aspect = rng.uniform(*_ERASE_ASPECT)
        h = round(float(np.sqrt(area * aspect)))
        w = round(float(np.sqrt(area / aspect)))
        if 0 < h < height and 0 < w < width:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    return None
