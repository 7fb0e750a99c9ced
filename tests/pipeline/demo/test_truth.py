"""Identity ground truth of real footage: the reader, the tracklet naming, and the store folder."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from pipeline.demo.evaluation import mtmc_identity_score
from pipeline.demo.truth import assign_identities, read_identity_truth

STORE = Path(__file__).resolve().parents[2] / "data" / "store_identities"
PETS = STORE.parent / "pets_identities"
CAMERAS = ["store_cam1", "store_cam2", "store_cam3"]
# folder, its cameras, frames per camera, frame width and height
FOLDERS = {
    "store": (STORE, CAMERAS, 419, 640, 360),
    "pets": (PETS, ["pets_view1"], 795, 480, 360),
}


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_one_camera_per_file_in_the_evaluation_row_format(tmp_path):
    _write(tmp_path, "camA.txt", "# comment\n0,1,10,20,50,120\n\n1,2,11.5,20,51,121.25\n")
    _write(tmp_path, "camB.txt", "3,1,0,0,5,5\n")
    _write(tmp_path, "labels.csv", "not,a,truth,file\n")
    truth = read_identity_truth(tmp_path)
    assert truth == {
        "camA": [(0, 1, 10.0, 20.0, 50.0, 120.0), (1, 2, 11.5, 20.0, 51.0, 121.25)],
        "camB": [(3, 1, 0.0, 0.0, 5.0, 5.0)],
    }
    frame, person, *box = truth["camA"][0]
    assert type(frame) is int and type(person) is int
    assert all(type(v) is float for v in box)


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("0,1,10,20,50", "6 fields"),
        ("0,x,10,20,50,60", "not numbers"),
        ("0.5,1,10,20,50,60", "not numbers"),
        ("-1,1,10,20,50,60", "negative"),
        ("0,0,10,20,50,60", "not positive"),
        ("0,1,50,20,10,60", "empty"),
        ("0,1,10,20,nan,60", "not finite"),
    ],
)
def test_a_malformed_line_names_its_file_and_line(tmp_path, line, words):
    path = _write(tmp_path, "cam.txt", f"0,1,1,1,2,2\n{line}\n")
    with pytest.raises(ValueError, match=words) as error:
        read_identity_truth(tmp_path)
    assert f"{path}:2" in str(error.value)


def test_a_folder_without_truth_files_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_identity_truth(tmp_path / "missing")
    with pytest.raises(FileNotFoundError):
        read_identity_truth(tmp_path)


def test_tracklets_get_the_person_most_of_their_boxes_cover():
    truth = [(f, 1, 0.0, 0.0, 10.0, 20.0) for f in range(6)]
    truth += [(f, 2, 100.0, 0.0, 110.0, 20.0) for f in range(6)]
    tracks = [(f, "a", 1.0, 0.0, 11.0, 20.0) for f in range(6)]  # on person 1
    # b follows person 2, switches to person 1 for two frames
    tracks += [(f, "b", 100.0, 1.0, 110.0, 21.0) for f in range(4)]
    tracks += [(f, "b", 0.0, 1.0, 10.0, 21.0) for f in (4, 5)]
    tracks += [(f, "c", 300.0, 0.0, 310.0, 20.0) for f in range(6)]  # nobody
    tracks += [(f, "d", 100.0, 0.0, 110.0, 20.0) for f in (0, 1)]  # half on 2 ...
    tracks += [(f, "d", 300.0, 0.0, 310.0, 20.0) for f in (2, 3)]  # ... half on nobody
    tracks += [(f, "e", 0.0, 0.0, 10.0, 20.0) for f in (0, 1)]  # 2 of 5 boxes match
    tracks += [(f, "e", 0.0, 0.0, 10.0, 20.0) for f in (7, 8, 9)]  # frames without truth
    assert assign_identities(tracks, truth) == {"a": 1, "b": 2, "c": None, "d": 2, "e": None}


def test_min_iou_decides_what_covers_and_ties_go_to_the_smaller_id():
    truth = [(0, 2, 0.0, 0.0, 10.0, 10.0), (1, 1, 0.0, 0.0, 10.0, 10.0)]
    tracks = [(0, "t", 0.0, 0.0, 10.0, 5.0), (1, "t", 0.0, 0.0, 10.0, 5.0)]  # IoU 0.5 each
    assert assign_identities(tracks, truth) == {"t": 1}
    assert assign_identities(tracks, truth, min_iou=0.6) == {"t": None}
    assert assign_identities([], truth) == {}


def _labels(folder: Path) -> list[dict[str, str]]:
    with (folder / "labels.csv").open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("name", sorted(FOLDERS))
def test_the_truth_folder_is_consistent(name):
    folder, cameras, frames, width, height = FOLDERS[name]
    truth = read_identity_truth(folder)
    assert sorted(truth) == cameras
    for camera, rows in truth.items():
        assert rows, camera
        for frame, person, x1, y1, x2, y2 in rows:
            assert 0 <= frame < frames and person > 0
            assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        seen = Counter((frame, person) for frame, person, *_ in rows)
        assert max(seen.values()) == 1, f"{camera}: a person twice in one frame"
    spans: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
    for label in _labels(folder):
        assert label["camera"] in cameras and label["note"], label
        first, last = int(label["first_frame"]), int(label["last_frame"])
        assert 0 <= first <= last < frames, label
        if label["person_id"]:
            spans[label["camera"], int(label["person_id"])].append((first, last))
    for camera, rows in truth.items():
        people = {person for _, person, *_ in rows}
        assert people == {p for c, p in spans if c == camera}, camera
        for frame, person, *_ in rows:
            assert any(a <= frame <= b for a, b in spans[camera, person]), (camera, frame, person)


def test_the_store_truth_scores_itself_perfectly():
    truth = read_identity_truth(STORE)
    tracks = {
        camera: [(f, f"{camera}.p{p}", *box) for f, p, *box in rows]
        for camera, rows in truth.items()
    }
    for camera, rows in tracks.items():
        named = assign_identities(rows, truth[camera])
        assert all(named[t] == int(t.rsplit(".p", 1)[1]) for t in named)
    pytest.importorskip("motmetrics")
    global_ids = {t: f"g{t.rsplit('.p', 1)[1]}" for rows in tracks.values() for _, t, *_ in rows}
    score = mtmc_identity_score(truth, tracks, global_ids)
    assert score.idf1 == pytest.approx(1.0)
    assert score.true_ids == len({p for rows in truth.values() for _, p, *_ in rows})
