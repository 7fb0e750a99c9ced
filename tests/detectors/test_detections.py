from __future__ import annotations

import numpy as np
import pytest

from detectors import Detections, check_array


def _three(tracked: bool = False) -> Detections:
    return Detections(
        xyxy=np.array([[0, 0, 10, 20], [5, 5, 15, 30], [100, 50, 140, 150]], np.float32),
        confidence=np.array([0.9, 0.4, 0.7], np.float32),
        class_id=np.array([0, 0, 2]),
        tracker_id=np.array([7, 8, 9]) if tracked else None,
        metadata={"image_size": (480, 640)},
    )


def test_columns_are_typed_and_read_only():
    det = _three(tracked=True)
    assert det.xyxy.dtype == np.float32 and det.confidence.dtype == np.float32
    assert det.class_id.dtype == np.int64 and det.tracker_id.dtype == np.int64
    assert len(det) == 3
    with pytest.raises(ValueError, match="read-only"):
        det.xyxy[0, 0] = 1.0
    with pytest.raises(TypeError):
        det.metadata["image_size"] = (1, 1)


def test_caller_array_is_left_writable():
    boxes = np.zeros((1, 4), np.float32)
    Detections(boxes, np.ones(1, np.float32), np.zeros(1, np.int64))
    boxes[0, 0] = 1.0  # the caller's own array is not frozen
    assert boxes[0, 0] == 1.0


def test_float64_boxes_are_converted():
    det = Detections(np.zeros((2, 4)), np.ones(2), np.zeros(2, np.int32))
    assert det.xyxy.dtype == np.float32 and det.class_id.dtype == np.int64


def test_empty():
    det = Detections.empty()
    assert len(det) == 0 and det.xyxy.shape == (0, 4) and det.tracker_id is None
    tracked = Detections.empty(tracked=True, metadata={"camera": "c1"})
    assert tracked.tracker_id.shape == (0,) and tracked.metadata["camera"] == "c1"
    assert det[np.zeros(0, bool)] == det


@pytest.mark.parametrize(
    ("index", "expected_rows"),
    [
        (1, [1]),
        (-1, [2]),
        (slice(0, 2), [0, 1]),
        ([2, 0], [2, 0]),
        (np.array([True, False, True]), [0, 2]),
    ],
)
def test_getitem(index, expected_rows):
    det = _three(tracked=True)
    part = det[index]
    assert isinstance(part, Detections)
    np.testing.assert_array_equal(part.xyxy, det.xyxy[expected_rows])
    np.testing.assert_array_equal(part.confidence, det.confidence[expected_rows])
    np.testing.assert_array_equal(part.tracker_id, det.tracker_id[expected_rows])
    assert part.metadata == det.metadata


def test_bool_mask_of_wrong_length_is_rejected():
    with pytest.raises(IndexError, match="mask of shape"):
        _three()[np.array([True, False])]


def test_filter_by_confidence_and_class():
    det = _three()
    people = det[(det.class_id == 0) & (det.confidence > 0.5)]
    assert len(people) == 1 and people.confidence[0] == pytest.approx(0.9)


def test_equality():
    assert _three() == _three()
    assert _three() != _three(tracked=True)
    assert _three() != _three()[0:2]


def test_area():
    np.testing.assert_allclose(_three().area, [200, 250, 4000])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"xyxy": np.zeros((2, 5))}, ValueError, r"xyxy: expected shape \(any, 4\), got \(2, 5\)"),
        ({"xyxy": np.zeros(4)}, ValueError, r"xyxy: expected shape \(any, 4\), got \(4,\)"),
        ({"confidence": np.ones(3)}, ValueError, r"confidence: expected shape \(2,\), got \(3,\)"),
        ({"class_id": np.zeros(2, np.float32)}, TypeError, "class_id: expected dtype int64"),
        ({"tracker_id": np.zeros((2, 1), int)}, ValueError, r"tracker_id: expected shape \(2,\)"),
        ({"xyxy": [["a", "b", "c", "d"]] * 2}, TypeError, "expected dtype float32, got <U1"),
        ({"confidence": [np.nan, 1.0]}, ValueError, "confidence: expected finite values"),
        (
            {"xyxy": [[0, 0, 1, 1], [0, 0, np.inf, 1]]},
            ValueError,
            r"xyxy: expected finite values, got inf at \(1, 2\)",
        ),
        (
            {"xyxy": [[0, 0, 1, 1], [5, 0, 1, 1]]},
            ValueError,
            r"x1 <= x2 and y1 <= y2, got \[5.0, 0.0, 1.0, 1.0\] at row 1",
        ),
        ({"metadata": [1, 2]}, TypeError, "metadata: expected a mapping"),
    ],
)
def test_validation_names_expected_and_actual(kwargs, error, message):
    columns = {
        "xyxy": np.zeros((2, 4), np.float32),
        "confidence": np.ones(2, np.float32),
        "class_id": np.zeros(2, np.int64),
    } | kwargs
    with pytest.raises(error, match=message):
        Detections(**columns)


def test_check_array_keeps_dtype_without_copy():
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    checked = check_array("a", a, shape=(2, None), dtype=np.float32)
    assert np.shares_memory(checked, a) and not checked.flags.writeable and a.flags.writeable
    with pytest.raises(TypeError, match="expected dtype uint8, got int64"):
        check_array("img", np.zeros((2, 2, 3), np.int64), shape=(None, None, 3), dtype=np.uint8)
