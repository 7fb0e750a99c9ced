"""The stream's own types, `Frame` and `Clip`: validated on construction."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from pipeline.stream.types import Clip, Frame


def _clip(t: int = 4, **kwargs) -> Clip:
    fields = {
        "camera_id": "cam-1",
        "track_id": 3,
        "tracklet_id": "cam-1/3/100",
        "frame_indices": np.arange(100, 100 + 2 * t, 2),
        "timestamps": 1_700_000_000.0 + np.arange(t) / 15,
        "boxes": np.tile(np.array([10, 20, 60, 140], np.float32), (t, 1)),
        "crops": np.zeros((t, 256, 128, 3), np.uint8),
    }
    return Clip(**(fields | kwargs))


# ------------------------------------------------------------------------------------------ Frame


def test_frame():
    image = np.zeros((360, 480, 3), np.uint8)
    frame = Frame("cam-1", np.int64(5), 12.5, image)
    assert (frame.height, frame.width, frame.index) == (360, 480, 5)
    assert type(frame.index) is int
    assert np.shares_memory(frame.image, image) and not frame.image.flags.writeable
    with pytest.raises(dataclasses.FrozenInstanceError):
        frame.index = 6


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (("", 0, 0.0), ValueError, "Frame.camera_id: expected 1-128 characters"),
        (("cam 1", 0, 0.0), ValueError, "got 'cam 1'"),
        (("cam", -1, 0.0), ValueError, "Frame.index: expected an integer >= 0, got -1"),
        (("cam", 1.0, 0.0), TypeError, "Frame.index: expected an integer, got 1.0"),
        (("cam", True, 0.0), TypeError, "Frame.index: expected an integer"),
        (("cam", 0, float("nan")), ValueError, "Frame.timestamp: expected a finite number"),
    ],
)
def test_frame_rejects_bad_fields(args, error, message):
    with pytest.raises(error, match=message):
        Frame(*args, np.zeros((4, 4, 3), np.uint8))


@pytest.mark.parametrize(
    ("image", "error", "message"),
    [
        (np.zeros((4, 4), np.uint8), ValueError, r"expected shape \(any, any, 3\), got \(4, 4\)"),
        (np.zeros((4, 4, 4), np.uint8), ValueError, r"expected shape .*, got \(4, 4, 4\)"),
        (np.zeros((4, 4, 3), np.float32), TypeError, "expected dtype uint8, got float32"),
        (np.zeros((0, 4, 3), np.uint8), ValueError, "expected a non-empty image"),
    ],
)
def test_frame_rejects_bad_images(image, error, message):
    with pytest.raises(error, match=r"Frame\.image: " + message):
        Frame("cam", 0, 0.0, image)


# ------------------------------------------------------------------------------------------- Clip


def test_clip():
    clip = _clip()
    assert len(clip) == 4
    assert clip.frame_indices.dtype == np.int64 and clip.timestamps.dtype == np.float64
    assert clip.start_time == pytest.approx(1_700_000_000.0)
    assert clip.end_time == pytest.approx(1_700_000_000.2)
    assert not clip.crops.flags.writeable


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"crops": np.zeros((0, 8, 8, 3), np.uint8)}, "at least one non-empty crop"),
        ({"crops": np.zeros((4, 8, 8), np.uint8)}, r"crops: expected shape \(any, any, any, 3\)"),
        ({"frame_indices": np.arange(3)}, r"frame_indices: expected shape \(4,\), got \(3,\)"),
        ({"frame_indices": np.array([1, 3, 2, 4])}, "non-decreasing indices"),
        ({"timestamps": np.array([0.0, 2.0, 1.0, 3.0])}, "non-decreasing"),
        ({"boxes": np.zeros((4, 5), np.float32)}, r"boxes: expected shape \(4, 4\)"),
        ({"track_id": -2}, "track_id: expected an integer >= 0"),
        ({"tracklet_id": ""}, "tracklet_id: expected a non-empty string"),
    ],
)
def test_clip_rejects_inconsistent_fields(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _clip(**kwargs)


# ------------------------------------------------------------------------ Clip -> ClipEmbedding


def test_a_clip_becomes_the_embedding_message_of_its_span():
    emb = _clip().to_embedding(np.ones(8, np.float32) / np.sqrt(8), model="c2d_r50")
    assert (emb.camera_id, emb.track_id, emb.tracklet_id) == ("cam-1", 3, "cam-1/3/100")
    assert (emb.start_frame, emb.end_frame) == (100, 106)
    assert emb.end_time > emb.start_time and emb.tracklet_start == emb.start_time
    assert emb.embedding.dtype == np.float32 and emb.model == "c2d_r50"
