"""The tracklet builder: quality gates, clip length and stride, closing lost tracks."""

from __future__ import annotations

import numpy as np
import pytest

from detectors import Detections
from pipeline.stream.tracklets import TrackletBuilder, camera_gap
from pipeline.stream.types import Frame

H, W = 120, 160


def frame(index: int, camera: str = "cam1", fps: float = 10.0) -> Frame:
    image = np.full((H, W, 3), index % 256, np.uint8)
    return Frame(camera, index, 1000.0 + index / fps, image)


def tracked(*rows: tuple[int, tuple[float, float, float, float], float]) -> Detections:
    """rows: (track id, box, confidence)."""
    return Detections(
        xyxy=np.array([r[1] for r in rows], np.float32).reshape(-1, 4),
        confidence=np.array([r[2] for r in rows], np.float32),
        class_id=np.zeros(len(rows), np.int64),
        tracker_id=np.array([r[0] for r in rows], np.int64),
    )


GOOD = (40.0, 20.0, 70.0, 100.0)  # 30 x 80, inside the frame


def builder(**kw) -> TrackletBuilder:
    options = dict(clip_len=4, stride=2, min_frames=2, crop_size=(16, 8), min_height=32,
                   min_width=12, min_confidence=0.3, border_margin=2, lost_after_s=1.0)  # fmt: skip
    return TrackletBuilder(**(options | kw))


def test_first_clip_after_clip_len_crops_then_every_stride():
    b = builder()
    clips = []
    for i in range(10):
        clips += b.update(frame(i), tracked((7, GOOD, 0.9))).clips
    # crops 0..9: first clip at crop 4 (frames 0-3), then every 2 crops: frames 2-5, 4-7, 6-9
    assert [c.frame_indices.tolist() for c in clips] == [
        [0, 1, 2, 3], [2, 3, 4, 5], [4, 5, 6, 7], [6, 7, 8, 9]
    ]  # fmt: skip
    clip = clips[0]
    assert clip.crops.shape == (4, 16, 8, 3) and clip.track_id == 7
    assert len({c.tracklet_id for c in clips}) == 1
    # the crop is the box's pixels: the frame of index i is filled with the value i
    assert [int(c.crops[0, 0, 0, 0]) for c in clips] == [0, 2, 4, 6]
    np.testing.assert_allclose(clip.timestamps, 1000.0 + np.arange(4) / 10)
    assert clip.boxes.tolist() == [list(GOOD)] * 4


@pytest.mark.parametrize(
    ("box", "confidence", "reason"),
    [
        ((40.0, 20.0, 70.0, 40.0), 0.9, "small"),  # 20 px high
        ((40.0, 20.0, 45.0, 100.0), 0.9, "small"),  # 5 px wide
        (GOOD, 0.1, "low_confidence"),
        ((0.0, 20.0, 30.0, 100.0), 0.9, "truncated"),  # touches the left border
        ((130.0, 20.0, 160.0, 100.0), 0.9, "truncated"),  # and the right one
    ],
)
def test_gates_reject_crops_but_the_track_stays_in_its_tracklet(box, confidence, reason):
    b = builder()
    update = b.update(frame(0), tracked((1, box, confidence), (2, GOOD, 0.9)))
    assert dict(update.rejected) == {reason: 1}
    assert [tid for _, tid, _ in update.boxes] == [1, 2]  # the box is still recorded
    for i in range(1, 4):
        update = b.update(frame(i), tracked((1, box, confidence), (2, GOOD, 0.9)))
    assert [c.track_id for c in update.clips] == [2]  # only the good track made a clip


def test_border_gate_can_be_disabled():
    b = builder(border_margin=0)
    update = b.update(frame(0), tracked((1, (0.0, 20.0, 30.0, 100.0), 0.9)))
    assert not update.rejected


def test_lost_track_closes_with_a_last_clip_and_comes_back_as_a_new_tracklet():
    b = builder(stride=4)
    clips, first = [], None
    for i in range(7):  # 7 crops: a clip at 4; 3 more since, >= stride / 2
        update = b.update(frame(i), tracked((3, GOOD, 0.9)))
        clips += update.clips
        first = first or update.boxes[0][0]
    assert len(clips) == 1
    for i in range(7, 18):  # the track is gone for 1.1 s > lost_after_s
        update = b.update(frame(i), tracked())
        clips += update.clips
        if update.closed:
            (closed,) = update.closed
            assert (closed.tracklet_id, closed.track_id, i) == (first, 3, 17)
            assert closed.last_seen == pytest.approx(1000.6)  # frame 6
    assert [c.frame_indices.tolist() for c in clips] == [[0, 1, 2, 3], [3, 4, 5, 6]]
    update = b.update(frame(18), tracked((3, GOOD, 0.9)))
    assert update.boxes[0][0] != first  # a new tracklet for the returning track id


def test_short_tracklet_is_looped_to_clip_len_or_dropped():
    b = builder(clip_len=6, min_frames=3)
    for i in range(3):
        b.update(frame(i), tracked((1, GOOD, 0.9), *([(2, GOOD, 0.9)] if i < 2 else [])))
    update = b.close_all()
    assert len(update.closed) == 2
    (clip,) = update.clips  # track 2 had 2 < min_frames crops
    assert clip.track_id == 1
    assert clip.frame_indices.tolist() == [0, 0, 1, 1, 2, 2]
    assert len(clip) == 6 and b.open_tracklets == 0


def test_a_silent_camera_closes_its_tracklets_other_cameras_keep_theirs():
    b = builder()
    b.update(frame(0, "cam1"), tracked((1, GOOD, 0.9)))
    b.update(frame(0, "cam2"), tracked((1, GOOD, 0.9)))
    ids = {cam: b.update(frame(1, cam), tracked((1, GOOD, 0.9))).boxes[0][0]
           for cam in ("cam1", "cam2")}  # fmt: skip
    assert ids["cam1"] != ids["cam2"]  # one track id on two cameras: two tracklets
    gap = b.update(frame(40, "cam1"), tracked((1, GOOD, 0.9)))  # 3.9 s later: a reconnect
    assert [c.tracklet_id for c in gap.closed] == [ids["cam1"]]
    assert gap.boxes[0][0] != ids["cam1"]
    assert b.update(frame(2, "cam2"), tracked((1, GOOD, 0.9))).boxes[0][0] == ids["cam2"]


def test_camera_gap():
    assert not camera_gap(None, 5.0, 1.0)
    assert not camera_gap(4.0, 5.0, 1.0)
    assert camera_gap(3.9, 5.0, 1.0)


def test_untracked_detections_and_bad_options_are_refused():
    with pytest.raises(ValueError, match="tracker_id"):
        builder().update(frame(0), Detections.empty())
    with pytest.raises(ValueError, match="min_frames"):
        builder(clip_len=4, min_frames=5)


def test_tracklet_ids_are_unique_across_builders():
    a, b = builder(), builder()
    ua = a.update(frame(0), tracked((1, GOOD, 0.9)))
    ub = b.update(frame(0), tracked((1, GOOD, 0.9)))
    assert ua.boxes[0][0] != ub.boxes[0][0]
    assert ua.boxes[0][0].startswith("cam1.")


def test_clips_carry_when_their_tracklet_was_first_seen():
    b = builder()
    small = (40.0, 20.0, 70.0, 40.0)
    for i in range(3):  # far away at first: tracked, too small to crop
        b.update(frame(i), tracked((5, small, 0.9)))
    clips = []
    for i in range(3, 7):
        clips += b.update(frame(i), tracked((5, GOOD, 0.9))).clips
    (clip,) = clips
    assert clip.frame_indices.tolist() == [3, 4, 5, 6]
    assert clip.tracklet_start == pytest.approx(1000.0) and clip.start_time == pytest.approx(1000.3)


def test_predicted_boxes_are_recorded_but_never_cropped():
    """Detecting every 3rd frame: clips hold the detected frames only, and a track that the
    detector stops seeing closes after lost_after_s even while it is being predicted."""
    b = builder(lost_after_s=0.5)
    clips, boxes = [], 0
    for i in range(12):
        rows = tracked((7, GOOD, 0.9))
        if i % 3:
            rows = Detections(**{**rows.__dict__, "metadata": {"predicted": True}})
        update = b.update(frame(i), rows)
        clips += update.clips
        boxes += len(update.boxes)
        assert not update.rejected  # predictions are not gated, so not counted as rejected
    assert boxes == 12
    assert [c.frame_indices.tolist() for c in clips] == [[0, 3, 6, 9]]
    predicted = Detections(**{**tracked((7, GOOD, 0.9)).__dict__, "metadata": {"predicted": True}})
    closed = []
    for i in range(12, 20):  # predicted only from now on: last detected at frame 9 (t=0.9 s)
        closed += b.update(frame(i), predicted).closed
    assert [c.track_id for c in closed] == [7]
    assert closed[0].last_seen == pytest.approx(1000.9)
