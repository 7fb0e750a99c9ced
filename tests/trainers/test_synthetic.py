"""The synthetic MARS-format dataset and the multi-camera scenes of `trainers.synthetic`."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from trainers.synthetic import (
    SyntheticScene,
    draw_figure,
    generate_mars,
    pose_at,
    read_identities,
    write_scene,
)

TINY = dict(num_train_ids=4, num_test_ids=4, tracklets_per_id=3, frames_per_tracklet=4,
            size=(32, 16))  # fmt: skip


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_seed_writes_the_same_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    a = _tree_bytes(generate_mars(tmp_path / "a", seed=3, **TINY))
    b = _tree_bytes(generate_mars(tmp_path / "b", seed=3, **TINY))
    c = _tree_bytes(generate_mars(tmp_path / "c", seed=4, **TINY))
    assert len(a) > 4 * 3 * 4 and a == b
    jpgs = [k for k in a if k.endswith(".jpg")]
    assert sum(a[k] != c.get(k) for k in jpgs) > len(jpgs) // 2


def test_generate_refuses_to_write_over_an_existing_tree(tmp_path: Path) -> None:
    generate_mars(tmp_path, **TINY)
    with pytest.raises(FileExistsError, match="MARS tree"):
        generate_mars(tmp_path, **TINY)


def test_info_files_follow_the_mars_devkit_layout(tmp_path: Path) -> None:
    root = generate_mars(tmp_path, num_distractors=2, num_junk=1, **TINY)
    train = scipy.io.loadmat(root / "info" / "tracks_train_info.mat")["track_train_info"]
    test = scipy.io.loadmat(root / "info" / "tracks_test_info.mat")["track_test_info"]
    query = scipy.io.loadmat(root / "info" / "query_IDX.mat")["query_IDX"]
    names = (root / "info" / "test_name.txt").read_bytes().decode().split("\r\n")[:-1]
    assert train.dtype == np.int32 and train.shape == (4 * 3, 4)
    assert test.dtype == np.int32 and test.shape == (4 * 3 + 2 + 1, 4)
    assert query.shape[0] == 1 and query.min() >= 1 and np.all(np.diff(query[0]) > 0)
    # Rows are contiguous 1-based inclusive ranges, sorted by folder (00-1 < 0000 < 0005 ...).
    assert test[0, 0] == 1 and np.all(test[1:, 0] == test[:-1, 1] + 1) and test[-1, 1] == len(names)
    assert test[0, 2] == -1 and test[1, 2] == 0 and set(test[:, 3]) <= set(range(1, 7))
    assert names == sorted(names) and names[0].startswith("00-1C")
    for start, end, pid, cam in test:
        for name in names[start - 1 : end]:
            folder = "00-1" if pid == -1 else f"{pid:04d}"
            assert name[:4] == folder and name[5] == str(cam)
            assert (root / "bbox_test" / folder / name).is_file()
    # One query per (test id, camera), every test id seen by >= 2 cameras.
    rows = test[query[0] - 1]
    assert len({(p, c) for p, c in rows[:, 2:]}) == len(rows)
    for pid in range(5, 9):
        assert len(set(test[test[:, 2] == pid, 3])) >= 2
        assert set(rows[rows[:, 2] == pid, 3]) == set(test[test[:, 2] == pid, 3])


def test_the_tree_reads_back_through_the_mars_reader(tmp_path: Path) -> None:
    if importlib.util.find_spec("trainers.datasets") is None:
        pytest.skip("trainers.datasets (the MARS reader) is not importable")
    from trainers.datasets import create_dataset

    options = {**TINY, "frames_per_tracklet": (3, 6)}
    root = generate_mars(tmp_path, seed=1, **options)
    data = create_dataset("mars", root)
    assert len(data.train) == 12 and data.num_train_pids == 4
    assert {t.pid for t in data.train} == set(range(4))
    assert {t.pid for t in data.query} == set(range(5, 9))
    assert {0, -1} <= {t.pid for t in data.gallery}
    for tracklet in data.train + data.gallery:
        assert 3 <= len(tracklet.frame_paths) <= 6 and 0 <= tracklet.camid < 6
        frame = cv2.imread(tracklet.frame_paths[-1])
        assert frame is not None and frame.shape == (32, 16, 3)


def test_twins_share_appearance_exactly_and_differ_only_in_cadence(tmp_path: Path) -> None:
    root = generate_mars(tmp_path, twin_fraction=1.0, **TINY)
    people = read_identities(root)
    groups: dict[int, list] = {}
    for person in people.values():
        groups.setdefault(person.group, []).append(person)
    assert sorted(len(g) for g in groups.values()) == [2, 2, 2, 2]
    for a, b in groups.values():
        assert a.appearance == b.appearance
        assert dataclasses.replace(a.gait, cadence_hz=b.gait.cadence_hz) == b.gait
        assert max(a.gait.cadence_hz, b.gait.cadence_hz) > 2 * min(
            a.gait.cadence_hz, b.gait.cadence_hz
        )
        frames = []
        for person in (a, b):
            images = np.zeros((4, 96, 48, 3), np.uint8)
            for t, image in enumerate(images):
                pose = pose_at(person.gait, 0.2 + person.gait.cadence_hz * t / 10.0)
                draw_figure(image, person.appearance, pose, foot=(24.0, 92.0), pixels=85.0)
            frames.append(images)
        # Same pose, same pixels; the walks then part because the limbs move at different rates.
        assert np.array_equal(frames[0][0], frames[1][0])
        assert all(not np.array_equal(frames[0][t], frames[1][t]) for t in (1, 2, 3))


def test_motion_only_groups_look_identical_and_have_distinct_cadences(tmp_path: Path) -> None:
    options = {**TINY, "num_train_ids": 6, "num_test_ids": 3, "tracklets_per_id": 2}
    root = generate_mars(tmp_path, motion_only=True, group_size=3, **options)
    people = read_identities(root)
    assert sorted(people) == list(range(1, 10))
    groups: dict[int, list] = {}
    for person in people.values():
        groups.setdefault(person.group, []).append(person)
    assert len(groups) == 3
    looks = set()
    for members in groups.values():
        assert len(members) == 3 and len({m.appearance for m in members}) == 1
        assert len({m.gait.cadence_hz for m in members}) == 3
        looks.add(members[0].appearance)
    assert len(looks) == 3


def test_bad_options_raise_naming_the_option(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="tracklets_per_id"):
        generate_mars(tmp_path, tracklets_per_id=1)
    with pytest.raises(ValueError, match="overlap"):
        SyntheticScene(overlap=1.5)
    with pytest.raises(ValueError, match="duration_s"):
        SyntheticScene(duration_s=2.0)


@pytest.fixture(scope="module")
def scene() -> SyntheticScene:
    return SyntheticScene(num_cameras=2, num_people=4, size=(120, 200), fps=3.0, duration_s=40.0,
                          view_m=4.0, seed=5)  # fmt: skip


@pytest.fixture(scope="module")
def steps(scene: SyntheticScene) -> list:
    return list(scene.frames())


def test_scene_is_deterministic_and_random_access_matches_iteration(scene, steps) -> None:
    again = SyntheticScene(num_cameras=2, num_people=4, size=(120, 200), fps=3.0, duration_s=40.0,
                           view_m=4.0, seed=5)  # fmt: skip
    for index in (0, len(steps) // 2, len(steps) - 1):
        step = again.render(index)
        assert step.truth == steps[index].truth
        assert all(
            np.array_equal(a, b) for a, b in zip(step.images, steps[index].images, strict=True)
        )


def test_every_person_crosses_at_least_two_cameras(scene, steps) -> None:
    seen: dict[int, set[int]] = {}
    for step in steps:
        assert len(step.images) == len(step.truth) == 2
        for camera, boxes in enumerate(step.truth):
            for box in boxes:
                seen.setdefault(box.global_id, set()).add(camera)
    assert sorted(seen) == [1, 2, 3, 4]
    assert all(len(cameras) >= 2 for cameras in seen.values())


def test_truth_boxes_lie_in_the_frame_and_cover_the_drawn_people(scene, steps) -> None:
    h, w = scene.size
    empty = {c: next(s.images[c] for s in steps if not s.truth[c]) for c in range(2)}
    checked = 0
    for step in steps:
        for camera, (image, boxes) in enumerate(zip(step.images, step.truth, strict=True)):
            changed = np.abs(image.astype(np.int16) - empty[camera]).max(axis=2) > 60
            covered = np.zeros((h, w), bool)
            for box in boxes:
                x1, y1, x2, y2 = (int(v) for v in box.xyxy)
                assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h and 0 < box.visible <= 1
                if box.visible == 1.0:  # an unoccluded person changes much of its box
                    assert changed[y1:y2, x1:x2].mean() > 0.1
                    checked += 1
                covered[max(0, y1 - 2) : y2 + 2, max(0, x1 - 2) : x2 + 2] = True
            # Nothing drawn lies outside the boxes.
            assert changed[~covered].mean() < 0.002
    assert checked > 10


def test_write_scene_gives_readable_videos_and_mot_truth(tmp_path: Path) -> None:
    scene = SyntheticScene(num_cameras=2, num_people=2, size=(64, 96), fps=2.0, duration_s=30.0,
                           view_m=3.0, seed=2)  # fmt: skip
    files = write_scene(scene, tmp_path)
    expected = {cam: [] for cam in scene.camera_ids}
    for step in scene.frames():
        for cam, boxes in zip(scene.camera_ids, step.truth, strict=True):
            expected[cam] += [(step.index + 1, b.global_id) for b in boxes]
    for cam in scene.camera_ids:
        video = cv2.VideoCapture(str(files.videos[cam]))
        assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == scene.num_frames
        ok, frame = video.read()
        video.release()
        assert ok and frame.shape == (64, 96, 3)
        rows = np.loadtxt(files.ground_truth[cam], delimiter=",", ndmin=2)
        assert rows.shape[1] == 9 and len(rows) == len(expected[cam]) > 0
        assert [(int(f), int(i)) for f, i in rows[:, :2]] == expected[cam]
        assert np.all(rows[:, 4:6] > 0) and np.all((rows[:, 8] > 0) & (rows[:, 8] <= 1))
    assert files.description.is_file()
