"""The tracklet folder: written clip by clip, read back as it was, refused when broken."""

from __future__ import annotations

import json

import numpy as np
import pytest

from trainers.adapt.store import StoreError, TrackletStore


def _crops(n: int, value: int) -> np.ndarray:
    crops = np.zeros((n, 32, 16, 3), np.uint8)
    crops[..., 2] = value  # red in BGR
    return crops


def _write(root, frames=(3, 4, 5)) -> TrackletStore:
    store = TrackletStore(root)
    n = len(frames)
    for start in range(0, n, 2):  # overlapping clips, as the job cuts them
        sel = slice(max(0, start - 1), start + 2)
        store.add(
            tracklet_id="cam-1.ab.7",
            camera="cam-1",
            track_id=7,
            frames=np.array(frames[sel]),
            timestamps=np.array(frames[sel], float) / 10,
            boxes=np.tile([1.0, 2.0, 17.0, 34.0], (len(frames[sel]), 1)),
            crops=_crops(len(frames[sel]), 200),
        )
    store.close({"tracklets": 1})
    return store


def test_a_store_reads_back_what_was_written_once_per_frame_in_rgb(tmp_path):
    _write(tmp_path, frames=(5, 3, 4, 6))
    store = TrackletStore.open(tmp_path)
    (t,) = list(store)
    assert t.frames == [3, 4, 5, 6] and t.camera == "cam-1" and t.track_id == 7
    assert t.timestamps == pytest.approx([0.3, 0.4, 0.5, 0.6])
    crops = store.crops(t)
    assert crops.shape == (4, 32, 16, 3)
    assert abs(int(crops[..., 0].mean()) - 200) <= 2 and crops[..., 2].mean() < 3  # RGB now
    assert store.crops(t, [1]).shape == (1, 32, 16, 3)


def test_an_unfinished_store_is_refused(tmp_path):
    store = TrackletStore(tmp_path)
    store.add(
        tracklet_id="x",
        camera="c",
        track_id=1,
        frames=np.array([0]),
        timestamps=np.array([0.0]),
        boxes=np.zeros((1, 4)),
        crops=_crops(1, 0),
    )
    with pytest.raises(StoreError, match="no finished"):
        TrackletStore.open(tmp_path)


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: {**d, "boxes": d["boxes"][:-1]},
        lambda d: {**d, "folder": "../../etc"},
        lambda d: {**d, "timestamps": [float("nan")] * len(d["timestamps"])},
        lambda d: {**d, "surprise": 1},
    ],
)
def test_a_malformed_index_line_is_named(tmp_path, edit):
    _write(tmp_path)
    index = tmp_path / "tracklets.jsonl"
    index.write_text(json.dumps(edit(json.loads(index.read_text()))) + "\n")
    with pytest.raises(StoreError, match=r"tracklets.jsonl:1"):
        TrackletStore.open(tmp_path)


def test_a_missing_crop_is_reported(tmp_path):
    _write(tmp_path)
    store = TrackletStore.open(tmp_path)
    (t,) = list(store)
    next((tmp_path / "crops" / t.folder).glob("*.jpg")).unlink()
    with pytest.raises(StoreError, match="missing or not a JPEG"):
        store.crops(t)
