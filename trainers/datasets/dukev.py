"""DukeMTMC-VideoReID (Wu et al., CVPR'18): fixed train / query / gallery folders.

Layout (Yu-Wu/DukeMTMC-VideoReID ``README.md``; torchreid
``<root>/dukemtmc-vidreid/DukeMTMC-VideoReID``, AP3D ``<root>/DukeMTMC-VideoReID``)::

    DukeMTMC-VideoReID/
      train/<pid4>/<tid4>/<pid4>_C<c>_F<ffff>_X<nnnnn>.jpg    702 ids, 2196 tracklets
      query/<pid4>/<tid4>/...                                  702 tracklets, one per test id
      gallery/<pid4>/<tid4>/...                                2636 tracklets, 1110 ids

``C<c>`` is the camera (1..8), ``F<ffff>`` the frame within the tracklet, ``X``/``D`` marks a
normal/distractor image and the last number is the frame in the camera's video. The older naming
without underscores (``0001C6F0099X30823.jpg``) is read too.

Every query tracklet is also in the gallery folder (as GLTR's ``Duke_test/data/info_test.txt`` lists
them); the evaluation removes it as junk (same pid, same camera), so the gallery is read as it is
(GLTR ``test_duke.m``, AP3D, torchreid).

Differences from torchreid's ``DukeMTMCVidReID`` (AP3D's is the same): frames are every ``.jpg`` of
the tracklet folder sorted by F number, where torchreid probes ``F0001..F<n>`` and so drops the last
frame of a tracklet that starts at F0002; train pids are relabelled in ascending order; no
``split_*.json`` cache of absolute paths is written. ``min_seq_len`` drops shorter tracklets from
every subset, as torchreid's does.
"""

from __future__ import annotations

import re
from pathlib import Path

from trainers.datasets.base import (
    DatasetError,
    Tracklet,
    VideoDataset,
    find_root,
    log_summary,
    relabel,
    require,
    sorted_frames,
)

__all__ = ["LAYOUT", "read_dukemtmc_videoreid"]

LAYOUT = """\
  <root>/DukeMTMC-VideoReID/ (or <root>/dukemtmc-vidreid/DukeMTMC-VideoReID/, or <root> itself)
    train/<pid4>/<tracklet4>/<pid4>_C<cam>_F<frame4>_X<videoframe>.jpg
    query/<pid4>/<tracklet4>/...
    gallery/<pid4>/<tracklet4>/..."""

_NAME = re.compile(r"^(?P<pid>\d{4})_?C(?P<cam>\d+)_?F(?P<frame>\d+)")


def _frame_number(name: str) -> int | None:
    match = _NAME.match(name)
    return int(match["frame"]) if match else None


def read_dukemtmc_videoreid(root: str | Path, *, min_seq_len: int = 0) -> VideoDataset:
    """Reads DukeMTMC-VideoReID from its folders.

    Args:
        root: The DukeMTMC-VideoReID folder, or a parent in the torchreid or AP3D layout.
        min_seq_len: Tracklets with fewer frames are dropped from every subset (0 keeps all).

    Raises:
        DatasetError: A missing folder, an empty tracklet, or a frame name that does not follow
            the naming or mixes cameras.
    """
    base = find_root(
        root,
        marker="train",
        subdirs=("DukeMTMC-VideoReID", "dukemtmc-vidreid/DukeMTMC-VideoReID"),
        layout=LAYOUT,
    )
    subsets = {}
    for subset in ("train", "query", "gallery"):
        folder = require(base / subset, what="DukeMTMC-VideoReID folder", layout=LAYOUT)
        subsets[subset] = tuple(t for t in _read_folder(folder) if t.num_frames >= min_seq_len)
    dataset = VideoDataset(
        name="dukemtmc_videoreid",
        train=relabel(subsets["train"]),
        query=subsets["query"],
        gallery=subsets["gallery"],
    )
    return log_summary(dataset)


def _read_folder(folder: Path) -> list[Tracklet]:
    """Tracklets of ``<folder>/<pid4>/<tid4>/``, in pid then tracklet order."""
    tracklets = []
    for person in sorted(p for p in folder.iterdir() if p.is_dir()):
        if not person.name.isdigit():
            raise DatasetError(f"{person} is not a <pid4> folder\nexpected layout:\n{LAYOUT}")
        for tracklet in sorted(t for t in person.iterdir() if t.is_dir()):
            tracklets.append(_read_tracklet(tracklet, int(person.name)))
    return tracklets


def _read_tracklet(folder: Path, pid: int) -> Tracklet:
    frames = list(folder.glob("*.jpg"))
    if not frames:
        raise DatasetError(f"no .jpg frames in {folder}\nexpected layout:\n{LAYOUT}")
    paths = sorted_frames(frames, _frame_number, pattern="<pid4>_C<cam>_F<frame4>_X<n>.jpg")
    cams = {_NAME.match(Path(p).name)["cam"] for p in paths}
    if len(cams) != 1:
        raise DatasetError(f"{folder} mixes cameras {sorted(cams)}")
    return Tracklet(paths, pid, int(cams.pop()) - 1)
