"""Small look-alikes of the five video ReID datasets, in their real on-disk formats.

Each builder writes a handful of persons, cameras and tracklets of 8x4 frames (JPEG or PNG, as
the dataset has them) under the real folder and file names, with the real index files (MARS
``.mat`` and name lists, the iLIDS-VID split ``.mat``, the PRID2011 split JSON, the LS-VID
sequence lists and query ``.mat``), and returns what it wrote, so that a test can compare a
reader's output with it. One tracklet per dataset has frame numbers that cross a power of ten
(e.g. ``F999`` -> ``F1000``), where the name order and the frame order disagree.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import scipy.io

__all__ = [
    "Expected",
    "Lookalike",
    "SplitLookalike",
    "build_dukemtmc_videoreid",
    "build_ilidsvid",
    "build_lsvid",
    "build_mars",
    "build_prid2011",
]

_FRAME = np.arange(8 * 4 * 3, dtype=np.uint8).reshape(8, 4, 3) * 2
_BYTES = {ext: cv2.imencode(ext, _FRAME)[1].tobytes() for ext in (".jpg", ".png")}


@dataclass(frozen=True)
class Expected:
    """One written tracklet: frame file names in frame order, original pid, 0-based camera."""

    names: tuple[str, ...]
    pid: int
    camid: int


@dataclass
class Lookalike:
    """A fixed-split dataset as written: the root to read and the tracklets per subset."""

    root: Path
    train: list[Expected] = field(default_factory=list)
    query: list[Expected] = field(default_factory=list)
    gallery: list[Expected] = field(default_factory=list)
    extra: dict[str, list[Expected]] = field(default_factory=dict)


@dataclass
class SplitLookalike:
    """A 10-split dataset as written: tracklets per person id and camera, and the splits as
    (train person ids, test person ids)."""

    root: Path
    tracklets: dict[int, dict[int, Expected]]
    splits: list[tuple[list[int], list[int]]]


def _write(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_BYTES[path.suffix])


def _numbers(count: int, *, cross: int | None = None, first: int = 1) -> list[int]:
    """`count` frame numbers from `first`, or around 10**cross so that the digit count grows."""
    start = 10**cross - 2 if cross else first
    return list(range(start, start + count))


# --------------------------------------------------------------------------------------- MARS
# (pid, cam, T, frames, cross): MARS pids, 1-based cameras, frame numbers F001.. (3 digits).
_MARS_TRAIN = [
    (1, 1, 1, 5, None),
    (1, 2, 2, 4, None),
    (3, 1, 3, 4, 3),  # F998, F999, F1000, F1001
    (3, 3, 4, 3, None),
    (5, 2, 5, 6, None),
    (5, 2, 6, 2, None),
]
_MARS_TEST = [
    (-1, 1, 1, 3, None),  # junk
    (-1, 3, 2, 2, None),
    (0, 2, 3, 3, None),  # distractor
    (2, 1, 1, 4, None),
    (2, 2, 2, 3, 3),
    (2, 2, 3, 2, None),
    (4, 3, 4, 3, None),
    (4, 5, 5, 5, None),
    (6, 1, 6, 3, None),  # seen by one camera only: gallery only
    (6, 1, 7, 2, None),
]


def _mars_name(pid: int, cam: int, tracklet: int, frame: int) -> str:
    prefix = "00-1" if pid == -1 else f"{pid:04d}"
    return f"{prefix}C{cam}T{tracklet:04d}F{frame:03d}.jpg"


def _mars_split(base: Path, split: str, spec: list) -> tuple[list[str], np.ndarray, list]:
    """Writes one split's frames; returns its name list, track info and tracklets in row order."""
    by_dir: dict[str, list[tuple[str, tuple]]] = {}
    for pid, cam, tracklet, count, cross in spec:
        names = [_mars_name(pid, cam, tracklet, f) for f in _numbers(count, cross=cross)]
        for name in names:
            _write(base / f"bbox_{split}" / name[:4] / name)
            by_dir.setdefault(name[:4], []).append((name, (pid, cam, tuple(names))))
    all_names, rows, order = [], [], []
    # MATLAB's dir order is ASCII ("00-1" < "0000" < "0001"); names sorted within a folder.
    for folder in sorted(by_dir):
        for name, key in sorted(by_dir[folder]):
            all_names.append(name)
            if not order or order[-1] != key:
                order.append(key)
                rows.append([len(all_names), len(all_names), key[0], key[1]])
            rows[-1][1] = len(all_names)
    tracklets = [Expected(names, pid, cam - 1) for pid, cam, names in order]
    return all_names, np.array(rows, dtype=np.int32), tracklets


def build_mars(root: Path) -> Lookalike:
    """MARS under ``root/MARS``: 3 train ids (6 tracklets), test ids -1, 0, 2, 4, 6 (10
    tracklets), one query per (id, camera) of the ids seen by two cameras (4 queries)."""
    base = root / "MARS"
    info = base / "info"
    info.mkdir(parents=True)
    train_names, train_info, train = _mars_split(base, "train", _MARS_TRAIN)
    test_names, test_info, test = _mars_split(base, "test", _MARS_TEST)
    for split, names in (("train", train_names), ("test", test_names)):
        (info / f"{split}_name.txt").write_bytes("".join(f"{n}\r\n" for n in names).encode())
    scipy.io.savemat(info / "tracks_train_info.mat", {"track_train_info": train_info})
    scipy.io.savemat(info / "tracks_test_info.mat", {"track_test_info": test_info})
    cams_of: dict[int, set[int]] = {}
    for t in test:
        cams_of.setdefault(t.pid, set()).add(t.camid)
    query_rows, seen = [], set()
    for row, t in enumerate(test, start=1):
        if t.pid > 0 and len(cams_of[t.pid]) > 1 and (t.pid, t.camid) not in seen:
            seen.add((t.pid, t.camid))
            query_rows.append(row)
    query_idx = np.array([query_rows], dtype=np.uint16)
    scipy.io.savemat(info / "query_IDX.mat", {"query_IDX": query_idx})
    query = [test[r - 1] for r in query_rows]
    return Lookalike(root=root, train=train, query=query, gallery=test)


# ---------------------------------------------------------------------------------- iLIDS-VID
_ILIDS_PERSONS = [1, 2, 5, 10, 11, 100]


def build_ilidsvid(root: Path, *, seed: int = 0) -> SplitLookalike:
    """iLIDS-VID under ``root/ilids-vid``: 6 persons with gaps in their numbers, two cameras,
    10 splits of 3 test + 3 train persons in ``ls_set``."""
    base = root / "ilids-vid"
    tracklets: dict[int, dict[int, Expected]] = {}
    for i, person in enumerate(_ILIDS_PERSONS):
        tracklets[person] = {}
        for camid, cam in enumerate(("cam1", "cam2")):
            cross = 5 if (i, camid) == (0, 1) else None  # 99998 .. 100001
            numbers = _numbers(2 + (i + camid) % 3, cross=cross, first=300 + 7 * i)
            names = tuple(f"{cam}_person{person:03d}_{n:05d}.png" for n in numbers)
            for name in names:
                _write(base / "i-LIDS-VID" / "sequences" / cam / f"person{person:03d}" / name)
            tracklets[person][camid] = Expected(names, person, camid)
    rng = np.random.default_rng(seed)
    ls_set = np.stack([rng.permutation(len(_ILIDS_PERSONS)) + 1 for _ in range(10)])
    split_dir = base / "train-test people splits"
    split_dir.mkdir()
    scipy.io.savemat(split_dir / "train_test_splits_ilidsvid.mat", {"ls_set": ls_set.astype(float)})
    half = len(_ILIDS_PERSONS) // 2
    splits = [
        (
            sorted(_ILIDS_PERSONS[i - 1] for i in row[half:]),
            sorted(_ILIDS_PERSONS[i - 1] for i in row[:half]),
        )
        for row in ls_set
    ]
    return SplitLookalike(root=root, tracklets=tracklets, splits=splits)


# ----------------------------------------------------------------------------------- PRID2011
# person -> (frames in cam_a, frames in cam_b); 3 is short (left out of the split file, as the
# >21-frame rule leaves out the short ones); 7 is the shortest listed one; 201 is past the 200
# persons both cameras saw.
_PRID_PERSONS = {1: (4, 3), 2: (5, 4), 3: (2, 2), 4: (3, 5), 5: (4, 4), 6: (6, 3), 7: (2, 4)}
_PRID_LISTED = [1, 2, 4, 5, 6, 7]


def build_prid2011(root: Path, *, seed: int = 0) -> SplitLookalike:
    """PRID2011 under ``root/prid2011``: multi_shot cam_a/cam_b, ``splits_prid2011.json`` with 10
    splits of 3 train + 3 test persons out of 6 listed."""
    base = root / "prid2011"
    shot = base / "prid_2011" / "multi_shot"
    tracklets: dict[int, dict[int, Expected]] = {}
    for person, counts in {**_PRID_PERSONS, 201: (3, 3)}.items():
        tracklets[person] = {}
        for camid, cam in enumerate(("cam_a", "cam_b")):
            cross = 4 if (person, camid) == (1, 0) else None  # 9998 .. 10001
            names = tuple(f"{n:04d}.png" for n in _numbers(counts[camid], cross=cross))
            for name in names:
                _write(shot / cam / f"person_{person:04d}" / name)
            tracklets[person][camid] = Expected(names, person, camid)
    (base / "prid_2011" / "single_shot").mkdir()
    rng = np.random.default_rng(seed)
    splits = []
    for _ in range(10):
        order = [_PRID_LISTED[i] for i in rng.permutation(len(_PRID_LISTED))]
        splits.append((sorted(order[3:]), sorted(order[:3])))
    raw = [
        {"test": [f"person_{p:04d}" for p in test], "train": [f"person_{p:04d}" for p in train]}
        for train, test in splits
    ]
    (base / "splits_prid2011.json").write_text(json.dumps(raw))
    return SplitLookalike(root=root, tracklets=tracklets, splits=splits)


# ------------------------------------------------------------------------- DukeMTMC-VideoReID
# (pid, tracklet id, camera, frames, cross, old naming)
_DUKE = {
    "train": [(1, 1, 1, 3, None, False), (1, 2, 2, 4, 4, False), (3, 3, 4, 4, None, False)],
    "query": [(5, 10, 1, 3, None, False), (7, 20, 3, 2, None, False)],
    "gallery": [
        (5, 10, 1, 3, None, False),  # the query tracklets again, as in the real gallery
        (7, 20, 3, 2, None, False),
        (5, 11, 2, 4, None, False),
        (7, 21, 5, 3, None, False),
        (9, 30, 6, 2, None, True),  # a distractor id, old naming 0009C6F0001X30823.jpg
    ],
}


def build_dukemtmc_videoreid(root: Path) -> Lookalike:
    """DukeMTMC-VideoReID in torchreid's layout under ``root/dukemtmc-vidreid``."""
    base = root / "dukemtmc-vidreid" / "DukeMTMC-VideoReID"
    out = Lookalike(root=root)
    for subset, spec in _DUKE.items():
        for pid, tid, cam, count, cross, old in spec:
            names = []
            for frame in _numbers(count, cross=cross):
                video_frame = 30000 + 12 * frame
                if old:
                    names.append(f"{pid:04d}C{cam}F{frame:04d}X{video_frame:05d}.jpg")
                else:
                    names.append(f"{pid:04d}_C{cam}_F{frame:04d}_X{video_frame:05d}.jpg")
            for name in names:
                _write(base / subset / f"{pid:04d}" / f"{tid:04d}" / name)
            getattr(out, subset).append(Expected(tuple(names), pid, cam - 1))
    return out


# ------------------------------------------------------------------------------------- LS-VID
# (pid, tracklet, camera, frames, cross)
_LSVID = {
    "train": [(11, 1, 3, 3, None), (11, 2, 12, 4, 4), (42, 3, 1, 2, None)],
    "test": [(5, 1, 2, 3, None), (5, 2, 7, 2, None), (8, 3, 15, 4, None), (8, 4, 2, 3, None)],
    "val": [(17, 1, 4, 2, None), (17, 2, 9, 3, None)],
}
_LSVID_QUERY_ROWS = {"test": [1, 3], "val": [2]}  # 1-based rows of the list


def build_lsvid(root: Path) -> Lookalike:
    """LS-VID under ``root/LS-VID``: sequence lists, ``tracklet_<set>/<pid4>/`` frames named
    ``<A>_<frame4>_<cam2>_<B>.jpg`` and ``test/data/info_<set>.mat`` with ``query`` rows.

    `extra` holds the validation set (``val``, ``val_query``)."""
    base = root / "LS-VID"
    (base / "list_sequence").mkdir(parents=True)
    (base / "test" / "data").mkdir(parents=True)
    out = Lookalike(root=root)
    for subset, spec in _LSVID.items():
        lines, written = [], []
        for pid, tracklet, cam, count, cross in spec:
            a = f"{pid:04d}{tracklet:03d}"
            prefix = f"tracklet_{subset}/{pid:04d}/{a}"
            names = tuple(f"{a}_{n:04d}_{cam:02d}_0.jpg" for n in _numbers(count, cross=cross))
            for name in names:
                _write(base / f"tracklet_{subset}" / f"{pid:04d}" / name)
            lines.append(f"{prefix} {pid}\n")
            written.append(Expected(names, pid, cam - 1))
        (base / "list_sequence" / f"list_seq_{subset}.txt").write_text("".join(lines))
        if subset == "train":
            out.train = written
            continue
        rows = _LSVID_QUERY_ROWS[subset]
        query = np.array([rows], dtype=float)
        scipy.io.savemat(base / "test" / "data" / f"info_{subset}.mat", {"query": query})
        queries = [written[r - 1] for r in rows]
        if subset == "test":
            out.query, out.gallery = queries, written
        else:
            out.extra = {"val": written, "val_query": queries}
    return out
