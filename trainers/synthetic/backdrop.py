"""What a camera adds to a person: background, clutter, colour cast, blur and sensor noise.

Both the tracklet crops of the MARS-format dataset and the multi-camera scenes go through the same
functions, so a model trained on the crops meets the same nuisances in the scenes:

    background(size, style, rng)          wall/floor gradient in the camera's palette + clutter
    -> draw_figure(...)                   the person (figure.py)
    -> apply_camera(image, style, rng)    per-channel gain, brightness, optional blur, noise

Hand-written on top of `cv2` drawing and `numpy` array arithmetic (no per-pixel Python loops).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["CameraStyle", "apply_camera", "background", "sample_camera_style"]

BGR = tuple[int, int, int]


@dataclass(frozen=True)
class CameraStyle:
    """The look of one camera.

    Attributes:
        gain: Per-channel (B, G, R) multiplier of the colour cast.
        brightness: Added to every channel after the gain.
        wall: Background colour above the horizon.
        floor: Background colour below the horizon.
        horizon: Horizon height as a fraction of the image height.
        clutter: Colours of the clutter shapes (furniture, posts, signs).
        blur: Whether the camera is slightly out of focus (3x3 Gaussian).
        noise: Standard deviation of the additive Gaussian sensor noise, in grey levels.
    """

    gain: tuple[float, float, float]
    brightness: float
    wall: BGR
    floor: BGR
    horizon: float
    clutter: tuple[BGR, ...]
    blur: bool
    noise: float


def _grey_tint(rng: np.random.Generator, lo: int, hi: int) -> BGR:
    base = rng.uniform(lo, hi)
    return tuple(int(np.clip(base + rng.uniform(-25, 25), 0, 255)) for _ in range(3))  # type: ignore[return-value]


def sample_camera_style(rng: np.random.Generator) -> CameraStyle:
    """Draws one camera's look: a moderate colour cast and noise that keep people recognisable."""
    return CameraStyle(
        gain=tuple(float(g) for g in rng.uniform(0.85, 1.15, size=3)),  # type: ignore[arg-type]
        brightness=float(rng.uniform(-20.0, 20.0)),
        wall=_grey_tint(rng, 90, 220),
        floor=_grey_tint(rng, 50, 170),
        horizon=float(rng.uniform(0.35, 0.6)),
        clutter=tuple(_grey_tint(rng, 30, 230) for _ in range(4)),
        blur=bool(rng.random() < 0.3),
        noise=float(rng.uniform(2.0, 7.0)),
    )


def background(size: tuple[int, int], style: CameraStyle, rng: np.random.Generator,
               *, clutter: int = 4) -> np.ndarray:  # fmt: skip
    """A camera's background: wall and floor with vertical gradients, plus clutter shapes.

    Args:
        size: (H, W) in pixels.
        style: The camera's look (its palette; the colour cast is applied later).
        rng: Source of the clutter's placement.
        clutter: Number of clutter shapes (boxes, signs and posts, sized by H).

    Returns:
        (H, W, 3) uint8 BGR image.
    """
    h, w = size
    split = round(style.horizon * h)
    ramp = np.linspace(0.85, 1.1, h, dtype=np.float32)[:, None, None]
    image = np.empty((h, w, 3), np.float32)
    image[:split] = np.asarray(style.wall, np.float32)
    image[split:] = np.asarray(style.floor, np.float32)
    image = np.clip(image * ramp, 0, 255).astype(np.uint8)
    for _ in range(clutter):  # sized by the height, so a long strip keeps crop-sized shapes
        colour = style.clutter[int(rng.integers(len(style.clutter)))]
        x0 = int(rng.integers(-h // 8, w))
        if rng.random() < 0.5:  # a box on the floor or a sign on the wall
            bw = int(rng.integers(h // 20 + 1, h // 6 + 2))
            bh = int(rng.integers(h // 12 + 1, h // 4 + 2))
            y0 = int(rng.integers(max(1, split - bh), max(2, h - bh)))
        else:  # a post or door frame
            bw = int(rng.integers(max(2, h // 60), h // 25 + 3))
            bh = int(rng.integers(h // 3, h))
            y0 = int(rng.integers(0, max(1, h - bh)))
        cv2.rectangle(image, (x0, y0), (x0 + bw, y0 + bh), colour, -1)
    return image


def apply_camera(image: np.ndarray, style: CameraStyle, rng: np.random.Generator,
                 *, brightness: float = 0.0) -> np.ndarray:  # fmt: skip
    """Applies the camera's colour cast, blur and noise.

    Args:
        image: (H, W, 3) uint8 BGR, the clean rendering.
        style: The camera's look.
        rng: Source of the noise.
        brightness: Extra offset (e.g. per tracklet lighting), added to the style's.

    Returns:
        (H, W, 3) uint8 BGR image (a new array).
    """
    out = image.astype(np.float32)
    out *= np.asarray(style.gain, np.float32)
    out += style.brightness + brightness
    if style.blur:
        out = cv2.GaussianBlur(out, (3, 3), 0.8)
    out += rng.standard_normal(out.shape, dtype=np.float32) * style.noise
    return np.clip(out, 0, 255).astype(np.uint8)
