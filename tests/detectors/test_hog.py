"""OpenCV's HOG people detector on real footage, checked against YOLOv5n's people."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from detectors import DetectorError, create_detector


@pytest.mark.slow
def test_finds_people_on_pets_where_yolo_does(pets_frames, pets_detections):
    """On 8 sampled PETS frames HOG finds people, and its boxes lie on YOLOv5n's people."""
    indices = range(0, len(pets_frames), 20)
    with create_detector("hog") as detector:
        found = detector.detect([pets_frames[i] for i in indices])
    counts = [len(d) for d in found]
    assert sum(c >= 2 for c in counts) >= 6, counts
    matched = total = 0
    for hog, i in zip(found, indices, strict=True):
        assert hog.metadata["image_size"] == (360, 480) and set(hog.class_id.tolist()) <= {0}
        assert ((hog.confidence > 0) & (hog.confidence < 1)).all()
        yolo = pets_detections[i][pets_detections[i].confidence > 0.25]
        if len(hog) and len(yolo):
            iou = box_iou(torch.from_numpy(hog.xyxy.copy()), torch.from_numpy(yolo.xyxy.copy()))
            matched += int((iou.max(dim=1).values > 0.3).sum())
        total += len(hog)
    assert matched >= 0.6 * total, (matched, total)


def test_more_resolution_finds_more_people(pets_frames):
    frames = pets_frames[::50]
    with create_detector("hog", input_size=480) as small, create_detector("hog") as large:
        assert sum(map(len, small.detect(frames))) < sum(map(len, large.detect(frames)))


def test_confidence_threshold_applies(pets_frames):
    with create_detector("hog", confidence=0.9) as detector:
        found = detector.detect(pets_frames[:3])
    assert all((d.confidence > 0.9).all() for d in found)


def test_blank_frame_has_no_people():
    with create_detector("hog") as detector:
        (found,) = detector.detect([np.full((360, 480, 3), 127, np.uint8)])
    assert len(found) == 0 and found.metadata["image_size"] == (360, 480)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"weights": "svm.xml"}, "the 'hog' detector takes no weights"),
        ({"classes": (2,)}, "classes=[2]: the 'hog' detector finds people only (class 0)"),
        ({"device": "cuda:0"}, "runs on the CPU only"),
        ({"input_size": 64}, "input_size=64: expected >= 128"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(DetectorError) as error:
        create_detector("hog", **options)
    assert message in str(error.value)


def test_an_empty_frame_is_named():
    with create_detector("hog") as detector, pytest.raises(DetectorError, match="frame 0"):
        detector.detect([np.zeros((0, 10, 3), np.uint8)])
