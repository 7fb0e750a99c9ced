"""The letterbox matches Ultralytics' pixel for pixel, and its inverse matches `scale_boxes`."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.letterbox import letterbox, rect_shape


@pytest.mark.parametrize(
    ("source", "size"),
    [
        ((360, 480), (640, 640)),
        ((1080, 1920), (640, 640)),
        ((333, 123), (320, 320)),
        ((640, 640), (640, 640)),
        ((100, 700), (384, 640)),
    ],
)
def test_matches_ultralytics(source, size):
    from ultralytics.data.augment import LetterBox
    from ultralytics.utils.ops import scale_boxes

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (*source, 3), dtype=np.uint8)
    ours, placement = letterbox(image, size=size)
    theirs = LetterBox(new_shape=size, auto=False, scaleup=True, center=True)(image=image)
    np.testing.assert_array_equal(ours, theirs)
    assert ours.shape == (*size, 3) and placement.source_size == source

    boxes = np.array([[10.5, 20.0, 200.0, 300.0], [0.0, 0.0, size[1], size[0]]], np.float32)
    expected = scale_boxes(size, boxes.copy(), source)
    np.testing.assert_allclose(placement.to_source(boxes), expected, atol=1e-3)


def test_round_trip_of_a_box():
    image = np.zeros((360, 480, 3), np.uint8)
    _, placement = letterbox(image, size=(640, 640))
    assert placement.gain == (640 / 480, 640 / 480) and placement.pad == (80, 0)
    # A box in source pixels, placed into the input by hand, maps back to itself.
    source_box = np.array([[100.0, 50.0, 160.0, 200.0]])
    gain = 640 / 480
    input_box = source_box * gain + np.array([0, 80, 0, 80])
    np.testing.assert_allclose(placement.to_source(input_box), source_box, atol=1e-4)
    # Boxes reaching into the padding are clipped to the source image.
    np.testing.assert_allclose(
        placement.to_source(np.array([[-5.0, 0.0, 700.0, 640.0]])), [[0, 0, 480, 360]]
    )


@pytest.mark.parametrize(
    ("source", "size", "expected"),
    [
        ((360, 640), 640, (384, 640)),  # the store views
        ((360, 480), 480, (384, 480)),  # PETS
        ((360, 480), 640, (480, 640)),
        ((1080, 1920), 416, (256, 416)),
        ((700, 100), 320, (320, 64)),
        ((333, 123), 320, (320, 128)),
    ],
)
def test_rect_input_matches_ultralytics_minimal_padding(source, size, expected):
    from ultralytics.data.augment import LetterBox
    from ultralytics.utils.ops import scale_boxes

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (*source, 3), dtype=np.uint8)
    shape = rect_shape(source, size)
    assert shape == expected
    ours, placement = letterbox(image, size=shape, fit=(size, size))
    theirs = LetterBox(new_shape=(size, size), auto=True, stride=32, center=True)(image=image)
    np.testing.assert_array_equal(ours, theirs)

    boxes = np.array([[10.5, 20.0, 60.0, 50.0], [0.0, 0.0, shape[1], shape[0]]], np.float32)
    expected_boxes = scale_boxes(shape, boxes.copy(), source)
    np.testing.assert_allclose(placement.to_source(boxes), expected_boxes, atol=1e-3)


def test_a_shared_input_scales_each_frame_as_its_own_would():
    """A batch of a PETS and a store frame shares one (480, 640) input: the store frame is
    scaled as in its own (384, 640) input, and only padded more."""
    store = np.zeros((360, 640, 3), np.uint8)
    _, alone = letterbox(store, size=rect_shape((360, 640), 640), fit=(640, 640))
    _, shared = letterbox(store, size=(480, 640), fit=(640, 640))
    assert alone.gain == shared.gain == (1.0, 1.0)
    assert (alone.pad, shared.pad) == ((12, 0), (60, 0))
    with pytest.raises(ValueError, match="does not fit"):
        letterbox(store, size=(320, 640), fit=(640, 640))
