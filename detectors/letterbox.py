"""Letterbox resizing for YOLO inputs, and its inverse for boxes.

An image of any size is scaled, keeping its aspect ratio, to fit a fixed network input and the rest
is padded with grey (114), the preprocessing every YOLO export expects:

    source (H, W)  --scale by gain-->  (round(H*g), round(W*g))  --pad-->  input (h, w)
                                       top/left pads = round(pad/2 - 0.1)

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

__all__ = ["PAD_VALUE", "Letterbox", "letterbox"]

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


def letterbox(
    image: np.ndarray, *, size: tuple[int, int], pad_value: int = PAD_VALUE
) -> tuple[np.ndarray, Letterbox]:
    """Scales `image` to fit `size` without distortion and pads the rest.

    Args:
        image: (H, W, C) image.
        size: (h, w) of the result.
        pad_value: Value of the padding pixels.

    Returns:
        The (h, w, C) letterboxed image and the placement, whose `to_source` maps boxes back.
    """
    height, width = image.shape[:2]
    gain = min(size[0] / height, size[1] / width)
    new_w, new_h = max(round(width * gain), 1), max(round(height * gain), 1)
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
