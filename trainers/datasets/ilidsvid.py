"""iLIDS-VID (Wang et al., ECCV'14): 300 persons, two cameras, 10 official 50/50 person splits.

Layout (torchreid's ``docs/datasets.rst`` ``<root>/ilids-vid``, AP3D ``<root>/iLIDS-VID``)::

    ilids-vid/
      i-LIDS-VID/sequences/cam1/person001/cam1_person001_00317.png ...   original video frame no.
      i-LIDS-VID/sequences/cam2/person001/cam2_person001_XXXXX.png ...
      train-test people splits/train_test_splits_ilidsvid.mat            ls_set, (10, 300)
      splits.json                                           torchreid's conversion (optional)

Splits: ``ls_set`` row ``split_id`` holds 1-based indices into the *sorted* cam1 person folders;
its first half are the test persons, the second half the train persons (Wang et al., as torchreid
``iLIDSVID.prepare_split`` reads it). torchreid converts the .mat into ``splits.json`` (a list of
``{"train": [dirs], "test": [dirs]}``) and reads that; this reader reads the .mat directly and
falls back to ``splits.json`` only where the .mat is absent. Nothing is written.

Tracklets (as torchreid's reader): train = both cameras of the train persons (pids relabelled 0..149
in person order, camid 0/1); query = cam1 of the test persons; gallery = cam2 of the test persons;
query and gallery pids are the person numbers (``person001`` -> 1). Report the mean over split_id
0..9 (AP3D's code, ``tools/data_manager.py``, evaluates split 9 only; its paper does not say which
it reports).

Frames are sorted by the trailing frame number; torchreid, AP3D and jiyanggao take ``glob('*.png')``
order. The reference loaders assert exactly 10 x 300; this reader checks instead that the split
matrix covers exactly the person folders present.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from trainers.datasets.base import (
    DatasetError,
    Tracklet,
    VideoDataset,
    find_root,
    last_number,
    load_mat_variable,
    log_summary,
    read_json_splits,
    relabel,
    require,
    sorted_frames,
)

__all__ = ["LAYOUT", "read_ilidsvid"]

LAYOUT = """\
  <root>/ilids-vid/ (or <root>/iLIDS-VID/, or <root> itself)
    i-LIDS-VID/sequences/cam1/personNNN/cam1_personNNN_<frame>.png
    i-LIDS-VID/sequences/cam2/personNNN/cam2_personNNN_<frame>.png
    train-test people splits/train_test_splits_ilidsvid.mat (ls_set, 10 x 300)
      or splits.json (torchreid's conversion of it)"""

_SEQUENCES = "i-LIDS-VID/sequences"
_SPLIT_MAT = "train-test people splits/train_test_splits_ilidsvid.mat"
_PERSON = re.compile(r"^person(\d+)$")


def read_ilidsvid(root: str | Path, *, split_id: int = 0) -> VideoDataset:
    """Reads iLIDS-VID with the official person split `split_id` (0..9).

    Args:
        root: The iLIDS-VID folder, or its parent holding ``ilids-vid/`` or ``iLIDS-VID/``.
        split_id: Row of ``ls_set``.

    Raises:
        DatasetError: A missing file or folder, a split out of range, or cameras whose person
            folders differ.
    """
    base = find_root(root, marker=_SEQUENCES, subdirs=("ilids-vid", "iLIDS-VID"), layout=LAYOUT)
    cams = [
        require(base / _SEQUENCES / c, what="camera folder", layout=LAYOUT)
        for c in ("cam1", "cam2")
    ]
    persons = _person_dirs(cams[0])
    if persons != _person_dirs(cams[1]):
        raise DatasetError(f"{cams[0]} and {cams[1]} hold different person folders")
    splits = _splits(base, persons)
    if not 0 <= split_id < len(splits):
        raise DatasetError(f"iLIDS-VID split_id {split_id} is outside 0..{len(splits) - 1}")
    train_dirs, test_dirs = splits[split_id]
    train = relabel(_tracklets(cams, train_dirs, (0, 1)))
    query = _tracklets(cams, test_dirs, (0,))
    gallery = _tracklets(cams, test_dirs, (1,))
    dataset = VideoDataset(
        name="ilidsvid",
        train=train,
        query=query,
        gallery=gallery,
        split_id=split_id,
        num_splits=len(splits),
    )
    return log_summary(dataset)


def _person_dirs(cam_dir: Path) -> list[str]:
    return sorted(p.name for p in cam_dir.iterdir() if p.is_dir() and _PERSON.match(p.name))


def _splits(base: Path, persons: list[str]) -> list[tuple[list[str], list[str]]]:
    """(train dirs, test dirs) per split, from the official .mat or torchreid's splits.json."""
    mat_path = base / _SPLIT_MAT
    json_path = base / "splits.json"
    if mat_path.exists():
        return _splits_from_mat(mat_path, persons)
    if json_path.exists():
        return _splits_from_json(json_path, persons)
    raise DatasetError(
        f"missing split file: {mat_path} (or {json_path})\nexpected layout:\n{LAYOUT}"
    )


def _splits_from_mat(path: Path, persons: list[str]) -> list[tuple[list[str], list[str]]]:
    ls_set = load_mat_variable(path, "ls_set", layout=LAYOUT)
    if ls_set.ndim != 2 or ls_set.shape[1] != len(persons) or ls_set.shape[1] % 2:
        raise DatasetError(
            f"{path}: ls_set must be (num_splits, num_persons) with an even number of persons "
            f"equal to the {len(persons)} person folders, got shape {ls_set.shape}"
        )
    index = ls_set.astype(np.int64) - 1
    for row in index:
        if sorted(row.tolist()) != list(range(len(persons))):
            raise DatasetError(f"{path}: a row of ls_set is not a permutation of 1..{len(persons)}")
    half = len(persons) // 2
    return [
        ([persons[i] for i in sorted(row[half:])], [persons[i] for i in sorted(row[:half])])
        for row in index
    ]


def _splits_from_json(path: Path, persons: list[str]) -> list[tuple[list[str], list[str]]]:
    splits = read_json_splits(path)
    known = set(persons)
    for train, test in splits:
        unknown = sorted(set(train + test) - known)
        if unknown:
            raise DatasetError(f"{path} names person folders that do not exist: {unknown[:5]}")
    return splits


def _tracklets(cams: list[Path], dirs: list[str], cam_ids: tuple[int, ...]) -> tuple[Tracklet, ...]:
    tracklets = []
    for person in dirs:
        pid = int(_PERSON.match(person)[1])
        for camid in cam_ids:
            folder = cams[camid] / person
            frames = list(folder.glob("*.png"))
            if not frames:
                raise DatasetError(f"no .png frames in {folder}\nexpected layout:\n{LAYOUT}")
            paths = sorted_frames(frames, last_number, pattern="camN_personNNN_<frame>.png")
            tracklets.append(Tracklet(paths, pid, camid))
    return tuple(tracklets)
