"""Ultralytics' ByteTrack and BoT-SORT behind `Tracker`: synthetic motion, then real footage."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import torch
import yaml
from torchvision.ops import box_iou

from detectors import CameraTrackers, Detections, create_tracker, list_trackers
from detectors.trackers import BotSortTracker, ByteTrackTracker, ultralytics_defaults


def _walkers(frame: int, hidden: frozenset[int] = frozenset()) -> Detections:
    """Three people walking right at 4 px/frame, 60 px apart; `hidden` ones are not detected."""
    rows = [
        [20 + 4 * frame + 60 * k, 100 + 30 * k, 60 + 4 * frame + 60 * k, 200 + 30 * k]
        for k in range(3)
        if k not in hidden
    ]
    n = len(rows)
    return Detections(
        xyxy=np.array(rows, np.float32).reshape(n, 4),
        confidence=np.full(n, 0.9, np.float32),
        class_id=np.zeros(n, np.int64),
        metadata={"image_size": (480, 640)},
    )


@pytest.mark.parametrize("name", list_trackers())
def test_steady_walkers_keep_their_ids(name):
    tracker = create_tracker(name, gmc_method="none") if name == "botsort" else create_tracker(name)
    for frame in range(20):
        detections = _walkers(frame)
        tracked = tracker.update(detections)
        assert tracked.tracker_id.tolist() == [1, 2, 3], frame
        # The boxes are the detector's, row for row, not the Kalman filter's.
        np.testing.assert_array_equal(tracked.xyxy, detections.xyxy)
        assert tracked.metadata == detections.metadata


@pytest.mark.parametrize("name", list_trackers())
def test_a_briefly_missed_person_gets_the_same_id_back(name):
    tracker = create_tracker(name, gmc_method="none") if name == "botsort" else create_tracker(name)
    for frame in range(10):
        tracker.update(_walkers(frame))
    for frame in range(10, 15):  # person 1 missed for 5 frames
        assert tracker.update(_walkers(frame, hidden=frozenset({1}))).tracker_id.tolist() == [1, 3]
    for _ in range(15, 18):
        empty = tracker.update(Detections.empty(metadata={"image_size": (480, 640)}))
        assert len(empty) == 0 and empty.tracker_id is not None  # lost tracks age, none shown
    assert sorted(tracker.update(_walkers(18)).tracker_id.tolist()) == [1, 2, 3]


@pytest.mark.parametrize("name", list_trackers())
def test_predicted_frames_carry_the_tracks_along(name):
    """Detecting every 3rd frame: the skipped frames show the walkers where they have walked
    to (4 px/frame), and the next detection finds them under the same ids."""
    tracker = create_tracker(name, gmc_method="none") if name == "botsort" else create_tracker(name)
    for frame in range(12):  # every frame: the motion model learns 4 px/frame
        tracker.update(_walkers(frame))
    image = np.zeros((480, 640, 3), np.uint8)
    for frame in range(12, 30):
        if frame % 3:
            predicted = tracker.predict(image)
            assert predicted.metadata["predicted"] is True
            assert predicted.tracker_id.tolist() == [1, 2, 3]
            assert predicted.confidence.tolist() == pytest.approx([0.9] * 3)
            expected = torch.tensor(_walkers(frame).xyxy)
            iou = box_iou(torch.tensor(predicted.xyxy), expected).diagonal()
            assert iou.min() > 0.9, (frame, iou)
        else:
            assert tracker.update(_walkers(frame)).tracker_id.tolist() == [1, 2, 3], frame


def test_predicted_boxes_stay_in_the_frame_and_lost_tracks_age():
    tracker = create_tracker("bytetrack", track_buffer=3)
    for frame in range(10):
        tracker.update(_walkers(frame))
    small = np.zeros((100, 150, 3), np.uint8)  # the walkers are partly outside it
    box = tracker.predict(small).xyxy
    assert box.min() >= 0 and box[:, [0, 2]].max() <= 150 and box[:, [1, 3]].max() <= 100
    # A skipped frame ages lost tracks as an empty detection does: the same later ids.
    skipped, empty = (create_tracker("bytetrack", track_buffer=3) for _ in range(2))
    nothing = Detections.empty(metadata={"image_size": (480, 640)})
    for t in (skipped, empty):
        for frame in range(10):
            t.update(_walkers(frame, hidden=frozenset({2})))
        t.update(nothing)  # lost: predictions show none of them
    assert len(skipped.predict()) == 0
    for _ in range(7):
        skipped.predict()
    for _ in range(8):
        empty.update(nothing)
    assert skipped._tracker.frame_id == empty._tracker.frame_id == 19
    for frame in range(19, 23):
        assert skipped.update(_walkers(frame)) == empty.update(_walkers(frame))


def test_reset_forgets_tracks_and_restarts_ids():
    tracker = create_tracker("bytetrack")
    for frame in range(5):
        tracker.update(_walkers(frame, hidden=frozenset({0})))
    tracker.reset()
    assert tracker.update(_walkers(40)).tracker_id.tolist() == [1, 2, 3]


def test_one_state_per_camera():
    """Two cameras interleaved frame by frame track exactly as two cameras tracked apart."""
    cameras = CameraTrackers(lambda: create_tracker("bytetrack"))
    alone = create_tracker("bytetrack")
    for frame in range(12):
        left = cameras.update("left", _walkers(frame))
        right = cameras.update("right", _walkers(frame, hidden=frozenset({0})))
        assert left.tracker_id.tolist() == [1, 2, 3]
        assert right == alone.update(_walkers(frame, hidden=frozenset({0})))
    assert sorted(cameras) == ["left", "right"] and len(cameras) == 2
    assert cameras.predict("right").tracker_id.tolist() == [1, 2]
    cameras.reset("left")
    assert list(cameras) == ["right"]


def test_low_scores_only_extend_tracks():
    """ByteTrack's second stage: a low-score box keeps a track alive but starts none."""
    tracker = create_tracker("bytetrack")
    tracker.update(_walkers(0))
    weak = dataclasses.replace(_walkers(1), confidence=np.full(3, 0.15, np.float32))
    assert tracker.update(weak).tracker_id.tolist() == [1, 2, 3]
    fresh = create_tracker("bytetrack")
    assert len(fresh.update(weak)) == 0


@pytest.mark.parametrize(
    ("cls", "yaml_name"), [(ByteTrackTracker, "bytetrack.yaml"), (BotSortTracker, "botsort.yaml")]
)
def test_defaults_are_ultralytics_own(cls, yaml_name):
    from ultralytics.utils import ROOT  # where Ultralytics itself reads them from

    theirs = yaml.safe_load((ROOT / "cfg" / "trackers" / yaml_name).read_text())
    theirs.pop("tracker_type")
    assert ultralytics_defaults(cls.name) == theirs
    options = cls().options  # every option left out takes Ultralytics' value
    assert {k: options[k] for k in theirs} == theirs


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"track_high_thresh": 1.5}, "track_high_thresh=1.5: expected a number in [0, 1]"),
        ({"track_low_thresh": 0.5}, "track_low_thresh=0.5 must not exceed track_high_thresh"),
        ({"track_buffer": 0}, "track_buffer=0: expected an integer >= 1"),
        ({"gmc_method": "optical"}, "gmc_method 'optical': expected one of sparseOptFlow, orb"),
        ({"with_reid": True}, "with_reid=True needs reid_model"),
    ],
)
def test_bad_options_are_named(options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        BotSortTracker(**options)


# -------------------------------------------------------------------------- real PETS footage


def _unambiguous_chains(detections: list[Detections]) -> list[np.ndarray]:
    """Pseudo ground-truth ids: confident boxes chained only where the link is unambiguous.

    A box (score > 0.5) continues the chain of a box in the previous frame when they overlap
    with IoU > 0.5, each is the other's best match, and neither overlaps any other box by more
    than 0.3. At 10 fps a walker moves a few pixels a frame, so such a link is the same person
    beyond reasonable doubt; anything less certain starts a new chain.
    """
    chains, previous, next_id = [], None, 0
    for found in detections:
        confident = found[found.confidence > 0.5]
        ids = np.full(len(confident), -1)
        if previous is not None and len(previous[0]) and len(confident):
            iou = box_iou(
                torch.from_numpy(previous[0].xyxy.copy()), torch.from_numpy(confident.xyxy.copy())
            ).numpy()
            for a, b in enumerate(iou.argmax(axis=1)):
                others = max(
                    np.delete(iou[a], b).max(initial=0), np.delete(iou[:, b], a).max(initial=0)
                )
                if iou[a, b] > 0.5 and iou[:, b].argmax() == a and others < 0.3:
                    ids[b] = previous[1][a]
        for j in np.flatnonzero(ids < 0):
            ids[j], next_id = next_id, next_id + 1
        chains.append(ids)
        previous = (confident, ids)
    return chains


@pytest.mark.slow
@pytest.mark.parametrize("name", list_trackers())
def test_ids_are_stable_on_pets(name, pets_frames, pets_detections, motmetrics_numpy2):
    """Tracks 15 s of PETS 2009 S2.L1 (150 frames, YOLOv5n at 640) and measures two things.

    There is no PETS ground truth here, so:

    1. ID switches where identity is certain: `motmetrics` compares the tracks with pseudo
       ground truth made of unambiguous frame-to-frame links between confident detections
       (`_unambiguous_chains`); each switch it counts is the tracker changing a person's id
       between two frames where nothing else could be confused with them. Measured:
       ByteTrack 3, BoT-SORT 2 switches over 675 links (< 0.5 %). Bound: 1 %.
    2. Fragmentation: tracks lasting at least 1 s against the most people tracked at once
       (walkers also enter, leave and hide behind the signpost, so some excess is genuine).
       Measured: 16 (ByteTrack), 17 (BoT-SORT) such tracks, of 22 and 21 ids in all, for at
       most 10 people at once. Bound: 2x. And the five longest
       tracks (measured: 70 frames or more) cover at least a third of the segment each: people
       crossing the scene keep one id.
    """
    import motmetrics as mm

    tracker = create_tracker(name)
    tracked = [tracker.update(d, f) for d, f in zip(pets_detections, pets_frames, strict=True)]
    chains = _unambiguous_chains(pets_detections)

    accumulator = mm.MOTAccumulator(auto_id=True)
    for found, truth, result in zip(pets_detections, chains, tracked, strict=True):
        confident = found[found.confidence > 0.5]
        accumulator.update(
            truth.tolist(),
            result.tracker_id.tolist(),
            mm.distances.iou_matrix(_xywh(confident.xyxy), _xywh(result.xyxy), max_iou=0.5),
        )
    summary = mm.metrics.create().compute(
        accumulator,
        metrics=["num_switches", "num_objects", "num_unique_objects"],
        return_dataframe=False,
    )
    links = summary["num_objects"] - summary["num_unique_objects"]
    assert links > 500  # the proxy has enough certain links to mean something
    assert summary["num_switches"] <= 0.01 * links, summary

    lengths: dict[int, int] = {}
    for result in tracked:
        for track in result.tracker_id.tolist():
            lengths[track] = lengths.get(track, 0) + 1
    at_once = max(len(result) for result in tracked)
    lasting = sum(length >= 10 for length in lengths.values())
    assert at_once >= 5 and lasting <= 2 * at_once, (lasting, at_once)
    assert sorted(lengths.values())[-5] >= len(pets_frames) // 3, sorted(lengths.values())


def _xywh(xyxy: np.ndarray) -> np.ndarray:
    boxes = xyxy.astype(np.float64).copy()
    boxes[:, 2:] -= boxes[:, :2]
    return boxes


def test_botsort_uses_the_frame_for_motion_compensation(pets_frames, pets_detections):
    """With the frames, GMC warps the tracks; the result still follows the same people."""
    with_gmc = create_tracker("botsort")
    without = create_tracker("botsort", gmc_method="none")
    for frame, found in zip(pets_frames[:30], pets_detections[:30], strict=True):
        a, b = with_gmc.update(found, frame), without.update(found)
    assert len(a) >= 3 and len(b) >= 3
    assert sorted(a.tracker_id.tolist()) == sorted(b.tracker_id.tolist())  # a fixed camera


def test_a_bad_frame_is_refused():
    with pytest.raises(ValueError, match=r"expected an \(H, W, 3\) BGR image, got shape \(4, 4\)"):
        create_tracker("botsort").update(_walkers(0), np.zeros((4, 4), np.uint8))


def test_botsort_matches_appearance_with_a_real_reid_model(
    osnet_onnx, pets_frames, pets_detections
):
    """`with_reid` through Ultralytics' ReID encoder, here the real OSNet-x0.25 ONNX: every
    confirmed track carries a 512-d appearance feature, and the people are still tracked."""
    tracker = create_tracker("botsort", with_reid=True, reid_model=osnet_onnx, device="cpu")
    for frame, found in zip(pets_frames[:20], pets_detections[:20], strict=True):
        tracked = tracker.update(found, frame)
    assert len(tracked) >= 3
    features = [t.smooth_feat for t in tracker._tracker.tracked_stracks if t.is_activated]
    assert features and all(f is not None and f.shape == (512,) for f in features)
