"""PRID2011 (Hirzer et al., SCIA'11), multi-shot: two cameras, 10 person splits from a JSON file.

Layout (torchreid's ``docs/datasets.rst`` ``<root>/prid2011``)::

    prid2011/
      splits_prid2011.json                                  10 x {"test": [...], "train": [...]}
      prid_2011/multi_shot/cam_a/person_0001/0001.png ...   385 persons
      prid_2011/multi_shot/cam_b/person_0001/0001.png ...   749 persons
      prid_2011/single_shot/...                             not used

Protocol: only the multi-shot sequences, and only persons 1..200, the ones seen by both cameras
(persons above 200 appear in one camera only). Of these, the standard protocol of Wang
et al. (ECCV'14), which M3D (Li et al., AAAI 2019, "Dataset") follows and Liao et al. (ACCV 2018,
§4.1) state ("sequences with more 21 frames are selected, leading to 178 identities"), keeps the
persons whose sequences have more than 21 frames, 178 persons, split 89/89 at random ten times.
``splits_prid2011.json`` is that split file as torchreid reads it (``PRID2011.__init__``: split
``split_id``, ``train``/``test`` lists of person folders, no threshold applied by the loader because
the file already embodies it). This reader validates every listed person against the 200-person
rule; ``min_seq_len`` (default 0: trust the file) drops persons, both cameras at once so that query
and gallery stay paired, whose shorter sequence has fewer frames, e.g. ``min_seq_len=22`` to apply
the >21-frame rule to a split file of one's own.

Tracklets: train = both cameras (pids relabelled 0..N-1 in person order, camid 0 = cam_a,
1 = cam_b); query = cam_a of the test persons; gallery = cam_b; query/gallery pids are the person
numbers. Report the mean over split_id 0..9.

Frames are sorted by their number; torchreid and jiyanggao take ``glob('*.png')`` order.
"""

from __future__ import annotations

import re
from pathlib import Path

from trainers.datasets.base import (
    DatasetError,
    Tracklet,
    VideoDataset,
    find_root,
    last_number,
    log_summary,
    read_json_splits,
    relabel,
    require,
    sorted_frames,
)

__all__ = ["LAYOUT", "NUM_PERSONS_BOTH_CAMERAS", "read_prid2011"]

LAYOUT = """\
  <root>/prid2011/ (or <root>/PRID2011/, or <root> itself)
    splits_prid2011.json
    prid_2011/multi_shot/cam_a/person_NNNN/NNNN.png
    prid_2011/multi_shot/cam_b/person_NNNN/NNNN.png"""

#: Persons 1..200 are the ones both cameras saw (Hirzer et al.).
NUM_PERSONS_BOTH_CAMERAS = 200
_MULTI_SHOT = "prid_2011/multi_shot"
_PERSON = re.compile(r"^person_(\d{4})$")


def read_prid2011(root: str | Path, *, split_id: int = 0, min_seq_len: int = 0) -> VideoDataset:
    """Reads the multi-shot PRID2011 with split `split_id` of ``splits_prid2011.json``.

    Args:
        root: The PRID2011 folder, or its parent holding ``prid2011/`` or ``PRID2011/``.
        split_id: Index into the split file (0..9).
        min_seq_len: Persons with a sequence shorter than this in either camera are left out of
            the split; 0 keeps the file's persons.

    Raises:
        DatasetError: A missing file or folder, a split out of range, or a split naming a person
            outside 1..200 or missing from a camera.
    """
    base = find_root(root, marker=_MULTI_SHOT, subdirs=("prid2011", "PRID2011"), layout=LAYOUT)
    cams = [
        require(base / _MULTI_SHOT / c, what="camera folder", layout=LAYOUT)
        for c in ("cam_a", "cam_b")
    ]
    splits = _read_splits(require(base / "splits_prid2011.json", what="split file", layout=LAYOUT))
    if not 0 <= split_id < len(splits):
        raise DatasetError(f"PRID2011 split_id {split_id} is outside 0..{len(splits) - 1}")
    train_dirs, test_dirs = splits[split_id]
    frames = {p: _frames(cams, p) for p in train_dirs + test_dirs}
    train_dirs, test_dirs = (
        [p for p in dirs if min(len(f) for f in frames[p]) >= min_seq_len]
        for dirs in (train_dirs, test_dirs)
    )
    train = relabel(_tracklets(frames, train_dirs, (0, 1)))
    dataset = VideoDataset(
        name="prid2011",
        train=train,
        query=_tracklets(frames, test_dirs, (0,)),
        gallery=_tracklets(frames, test_dirs, (1,)),
        split_id=split_id,
        num_splits=len(splits),
    )
    return log_summary(dataset)


def _read_splits(path: Path) -> list[tuple[list[str], list[str]]]:
    splits = read_json_splits(path)
    for train, test in splits:
        for person in train + test:
            match = _PERSON.match(person)
            if not match or not 1 <= int(match[1]) <= NUM_PERSONS_BOTH_CAMERAS:
                raise DatasetError(
                    f"{path} names {person!r}; the protocol uses person_0001..person_0"
                    f"{NUM_PERSONS_BOTH_CAMERAS}, the persons both cameras saw"
                )
    return splits


def _frames(cams: list[Path], person: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Sorted frame paths of `person` in cam_a and cam_b."""
    out = []
    for cam in cams:
        folder = cam / person
        frames = list(folder.glob("*.png"))
        if not frames:
            raise DatasetError(f"no .png frames in {folder}\nexpected layout:\n{LAYOUT}")
        out.append(sorted_frames(frames, last_number, pattern="NNNN.png"))
    return out[0], out[1]


def _tracklets(
    frames: dict[str, tuple[tuple[str, ...], tuple[str, ...]]],
    dirs: list[str],
    cam_ids: tuple[int, ...],
) -> tuple[Tracklet, ...]:
    return tuple(
        Tracklet(frames[p][camid], int(_PERSON.match(p)[1]), camid)
        for p in dirs
        for camid in cam_ids
    )
