"""Letterbox resizing for YOLO inputs, and its inverse for boxes.

An image of any size is scaled, keeping its aspect ratio, to fit a fixed network input and the rest
is padded with grey (114), the preprocessing every YOLO export expects:

    source (H, W)  --scale by gain-->  (round(H*g), round(W*g))  --pad-->  input (h, w)
                                       top/left pads = round(pad/2 - 0.1)

A graph that takes any (h, w) needs less padding: `rect_shape` gives the smallest input holding the
scaled image whose sides are multiples of the network's stride (Ultralytics' `LetterBox(auto=True)`,
e.g. 640x360 frames at 640 -> a 384x640 input instead of 640x640); the scale is that of the square.

The arithmetic (rounding of each side, the -0.1 on the leading pads, per-axis gains) follows
Ultralytics' `LetterBox` and `scale_boxes` exactly, so boxes from a network run here land on the
same source pixels as in Ultralytics' own predictor; `tests/detectors/test_letterbox.py` pins it.
Written here rather than imported so the ONNX Runtime backend keeps the transform and its inverse
in one small, stateless object per image.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["PAD_VALUE", "Letterbox", "letterbox", "rect_shape"]

#: Grey used for the padding, as in YOLOv5/v8 training.
PAD_VALUE = 114


@dataclass(frozen=True)
class Letterbox:
    """How one source image was placed in the network input.

    Attributes:
        source_size: (H, W) of the source image.
        input_size: (h, w) of the network input.
        gain: (gain_y, gain_x) scale from source to input pixels.
        pad: (top, left) padding in input pixels.
    """

    source_size: tuple[int, int]
    input_size: tuple[int, int]
    gain: tuple[float, float]
    pad: tuple[int, int]

    def to_source(self, xyxy: np.ndarray) -> np.ndarray:
        """Maps (N, 4) boxes in input pixels back to source pixels, clipped to the source image."""
        boxes = np.asarray(xyxy, np.float32).copy()
        boxes[:, [0, 2]] = (boxes[:, [0, 2]] - self.pad[1]) / self.gain[1]
        boxes[:, [1, 3]] = (boxes[:, [1, 3]] - self.pad[0]) / self.gain[0]
        height, width = self.source_size
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
        return boxes


def rect_shape(source: tuple[int, int], size: int, *, stride: int = 32) -> tuple[int, int]:
    """The (h, w) input with the least padding for a `source` (H, W) image scaled to fit a
    `size` x `size` square: each scaled side padded up to the next multiple of `stride` (capped
    at `size`), as Ultralytics' ``LetterBox(auto=True)``."""
    new_h, new_w = _scaled(source, (size, size))
    return new_h + (size - new_h) % stride, new_w + (size - new_w) % stride


def _scaled(source: tuple[int, int], fit: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of `source` scaled, keeping its aspect ratio, to fit in `fit`."""
    height, width = source
    gain = min(fit[0] / height, fit[1] / width)
    return max(round(height * gain), 1), max(round(width * gain), 1)


def letterbox(
    image: np.ndarray,
    *,
    size: tuple[int, int],
    fit: tuple[int, int] | None = None,
    pad_value: int = PAD_VALUE,
) -> tuple[np.ndarray, Letterbox]:
    """Scales `image` to fit `fit` without distortion and pads it, centred, to `size`.

    Args:
        image: (H, W, C) image.
        size: (h, w) of the result.
        fit: (h, w) the image is scaled to fit (default `size`); at most `size` on each side.
            A `rect_shape` input, or one shared by a batch of frames of different shapes,
            scales each frame as its square would.
        pad_value: Value of the padding pixels.

    Returns:
        The (h, w, C) letterboxed image and the placement, whose `to_source` maps boxes back.
    """
    height, width = image.shape[:2]
    new_h, new_w = _scaled((height, width), size if fit is None else fit)
    if new_h > size[0] or new_w > size[1]:
        raise ValueError(f"letterbox: {height}x{width} fitted to {fit} does not fit in {size}")
    if (new_w, new_h) != (width, height):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    pad_h, pad_w = (size[0] - new_h) / 2, (size[1] - new_w) / 2
    top, bottom = round(pad_h - 0.1), round(pad_h + 0.1)
    left, right = round(pad_w - 0.1), round(pad_w + 0.1)
    image = cv2.copyMakeBorder(
        image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(pad_value,) * 3
    )
    placement = Letterbox(
        source_size=(height, width),
        input_size=(int(size[0]), int(size[1])),
        gain=(new_h / height, new_w / width),
        pad=(top, left),
    )
    return image, placement
