"""`Detections`: the boxes of one image, as validated numpy columns.

Modelled on `supervision.Detections`: one frozen dataclass of parallel columns is the currency
between detector, tracker and tracklet builder. Shapes and dtypes are checked on construction and
every error names the column, what was expected and what was given. The columns are read-only
views, so a stage cannot edit boxes that another stage still holds.

    xyxy        (N, 4) float32   x1, y1, x2, y2 in pixels of the source image, x1 <= x2, y1 <= y2
    confidence  (N,)   float32   detector score
    class_id    (N,)   int64     detector class (COCO: 0 = person)
    tracker_id  (N,)   int64     single-camera track id, or None before tracking
    metadata    mapping          per-image facts (e.g. image size), not per box
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = ["Detections", "check_array"]


def _shape_text(shape: Sequence[int | str | None]) -> str:
    dims = ["any" if d is None else str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def check_array(
    name: str,
    value: Any,
    *,
    shape: Sequence[int | None],
    dtype: type[np.generic] | np.dtype,
    finite: bool = False,
) -> np.ndarray:
    """Validates an array column and returns it as a read-only array of `dtype`.

    Numeric input is converted to `dtype` only where no information is lost in kind: integers and
    floats become a float `dtype`; only integers become an integer `dtype`; only `uint8` becomes
    `uint8`. The result is a read-only view (or a converted copy); the caller's array is unchanged.

    Args:
        name: Column name used in error messages, e.g. ``"Detections.xyxy"``.
        value: Array-like to check.
        shape: Expected shape; ``None`` matches any size in that dimension.
        dtype: Target dtype.
        finite: Also reject NaN and infinity.

    Returns:
        The validated read-only array.

    Raises:
        TypeError: `value` is not an array of a compatible dtype.
        ValueError: Wrong number of dimensions, wrong sizes or non-finite values.
    """
    target = np.dtype(dtype)
    array = np.asarray(value)
    if not _dtype_convertible(array.dtype, target):
        raise TypeError(f"{name}: expected dtype {target}, got {array.dtype}")
    if array.ndim != len(shape) or any(
        want is not None and got != want for got, want in zip(array.shape, shape, strict=False)
    ):
        raise ValueError(
            f"{name}: expected shape {_shape_text(shape)}, got {_shape_text(array.shape)}"
        )
    array = array.astype(target, copy=False).view()
    if finite and array.size and not np.isfinite(array).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise ValueError(f"{name}: expected finite values, got {array[bad]} at {bad}")
    array.flags.writeable = False
    return array


def _dtype_convertible(source: np.dtype, target: np.dtype) -> bool:
    if source == target:
        return True
    if target.kind == "f":
        return source.kind in "iuf"
    if target.kind == "i":
        return source.kind in "iu"
    return False


@dataclass(frozen=True, eq=False)
class Detections:
    """Boxes found in one image, optionally with single-camera track ids.

    Attributes:
        xyxy: (N, 4) float32 boxes in source-image pixels.
        confidence: (N,) float32 detector scores.
        class_id: (N,) int64 class ids.
        tracker_id: (N,) int64 track ids, or None when the boxes are not tracked.
        metadata: Read-only per-image facts (e.g. ``{"image_size": (h, w)}``).
    """

    xyxy: np.ndarray
    confidence: np.ndarray
    class_id: np.ndarray
    tracker_id: np.ndarray | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        xyxy = check_array(
            "Detections.xyxy", self.xyxy, shape=(None, 4), dtype=np.float32, finite=True
        )
        n = len(xyxy)
        confidence = check_array(
            "Detections.confidence", self.confidence, shape=(n,), dtype=np.float32, finite=True
        )
        class_id = check_array("Detections.class_id", self.class_id, shape=(n,), dtype=np.int64)
        tracker_id = None
        if self.tracker_id is not None:
            tracker_id = check_array(
                "Detections.tracker_id", self.tracker_id, shape=(n,), dtype=np.int64
            )
        if n:
            _check_boxes(xyxy)
        if not isinstance(self.metadata, Mapping):
            raise TypeError(f"Detections.metadata: expected a mapping, got {type(self.metadata)}")
        object.__setattr__(self, "xyxy", xyxy)
        object.__setattr__(self, "confidence", confidence)
        object.__setattr__(self, "class_id", class_id)
        object.__setattr__(self, "tracker_id", tracker_id)
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    @classmethod
    def empty(
        cls, *, tracked: bool = False, metadata: Mapping[str, Any] | None = None
    ) -> Detections:
        """No boxes; with an empty `tracker_id` column when `tracked`."""
        return cls(
            xyxy=np.empty((0, 4), np.float32),
            confidence=np.empty(0, np.float32),
            class_id=np.empty(0, np.int64),
            tracker_id=np.empty(0, np.int64) if tracked else None,
            metadata=metadata or {},
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: int | slice | Sequence[int] | np.ndarray) -> Detections:
        """Selects rows by integer, slice, integer array or boolean mask; keeps `metadata`.

        An integer selects one row and still returns `Detections` (of length 1), so the result of
        indexing is always the same type.
        """
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        if isinstance(index, np.ndarray) and index.dtype == bool and index.shape != (len(self),):
            raise IndexError(
                f"Detections: boolean mask of shape {index.shape} for {len(self)} detections"
            )
        return Detections(
            xyxy=self.xyxy[index],
            confidence=self.confidence[index],
            class_id=self.class_id[index],
            tracker_id=None if self.tracker_id is None else self.tracker_id[index],
            metadata=self.metadata,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Detections):
            return NotImplemented
        if (self.tracker_id is None) != (other.tracker_id is None):
            return False
        return (
            np.array_equal(self.xyxy, other.xyxy)
            and np.array_equal(self.confidence, other.confidence)
            and np.array_equal(self.class_id, other.class_id)
            and (self.tracker_id is None or np.array_equal(self.tracker_id, other.tracker_id))
            and dict(self.metadata) == dict(other.metadata)
        )

    __hash__ = None  # type: ignore[assignment]  # equal by value, and mutable-looking: unhashable

    @property
    def area(self) -> np.ndarray:
        """(N,) float32 box areas in square pixels."""
        return (self.xyxy[:, 2] - self.xyxy[:, 0]) * (self.xyxy[:, 3] - self.xyxy[:, 1])


def _check_boxes(xyxy: np.ndarray) -> None:
    inverted = (xyxy[:, 2] < xyxy[:, 0]) | (xyxy[:, 3] < xyxy[:, 1])
    if inverted.any():
        row = int(np.argmax(inverted))
        raise ValueError(
            f"Detections.xyxy: expected x1 <= x2 and y1 <= y2, "
            f"got {xyxy[row].tolist()} at row {row}"
        )
