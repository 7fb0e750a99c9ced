"""LS-VID (Li et al., ICCV'19, the GLTR paper): 3772 persons, 15 cameras, fixed splits.

Layout (blue-blue272/BiCnet-TKS ``data_manager/lsvid.py``; the GLTR code has no LS-VID reader)::

    LS-VID/
      list_sequence/list_seq_train.txt  list_seq_val.txt  list_seq_test.txt
          one "<tracklet path prefix> <pid>" line per tracklet, e.g. "tracklet_test/0005/<A>_ 5"
      tracklet_train/  tracklet_val/  tracklet_test/        frames <A>_<frame>_<cam>_<B>.jpg
      test/data/info_test.mat  info_val.mat                 variable "query": 1-based list rows

A tracklet's frames are the files whose path starts with its prefix (BiCnet-TKS globs ``prefix*``).
Of a frame name's four ``_`` fields the third is the 1-based camera (BiCnet-TKS); the second is read
as the frame number (one derived loader does; no loader documents the fields, so this meaning is
unverified). Frames are sorted by that number, then by name: on zero-padded names this is the name
sort the reference loaders use.

Protocol (GLTR, Li et al. ICCV 2019, §4.1, gives the splits but not the query/gallery split,
which comes with the dataset release): query = the rows of ``query`` in ``info_<set>.mat``;
gallery = **all** rows of ``list_seq_<set>.txt``, queries included, as BiCnet-TKS appends the
query features to the gallery for evaluation; pids as listed (a -1 line, if any, stays -1 and is
junk to the ``"mars"`` and ``"ap3d"`` evaluation protocols). ``eval_set="val"`` reads the
validation split that GLTR's ablations use (Fig. 6).

The .mat files are MATLAB v7.3 (HDF5): scipy cannot read them, so this needs h5py (not a
dependency of the package); v5 files, as ``scipy.io.savemat`` writes, are read by scipy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from trainers.datasets.base import (
    DatasetError,
    Tracklet,
    VideoDataset,
    find_root,
    load_mat_variable,
    log_summary,
    read_lines,
    relabel,
    require,
    sorted_frames,
)

__all__ = ["LAYOUT", "read_lsvid"]

LAYOUT = """\
  <root>/LS-VID/ (or <root> itself)
    list_sequence/list_seq_train.txt, list_seq_test.txt, list_seq_val.txt  ("<prefix> <pid>")
    tracklet_train/<pid4>/<A>_<frame>_<cam>_<B>.jpg, tracklet_test/..., tracklet_val/...
    test/data/info_test.mat, test/data/info_val.mat (query: 1-based rows of the list)"""

_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _fields(name: str) -> list[str] | None:
    fields = Path(name).stem.split("_")
    if len(fields) < 4 or not fields[1].isdigit() or not fields[2].isdigit():
        return None
    return fields


def _frame_number(name: str) -> int | None:
    fields = _fields(name)
    return int(fields[1]) if fields else None


def read_lsvid(root: str | Path, *, eval_set: Literal["test", "val"] = "test") -> VideoDataset:
    """Reads LS-VID from its sequence lists.

    Args:
        root: The LS-VID folder, or its parent holding ``LS-VID/``.
        eval_set: ``"test"`` (the reported results) or ``"val"`` (the ablation split).

    Raises:
        DatasetError: A missing file or folder, a list line that is not "<prefix> <pid>", a
            tracklet without frames, or query rows outside the list.
    """
    if eval_set not in ("test", "val"):
        raise DatasetError(f"LS-VID eval_set {eval_set!r} is not one of 'test', 'val'")
    base = find_root(root, marker="list_sequence", subdirs=("LS-VID",), layout=LAYOUT)
    lists = base / "list_sequence"
    train = _read_list(require(lists / "list_seq_train.txt", what="list", layout=LAYOUT), base)
    test = _read_list(require(lists / f"list_seq_{eval_set}.txt", what="list", layout=LAYOUT), base)
    mat = base / "test" / "data" / f"info_{eval_set}.mat"
    rows = load_mat_variable(mat, "query", layout=LAYOUT).astype(np.int64).ravel() - 1
    if rows.size == 0 or rows.min() < 0 or rows.max() >= len(test):
        raise DatasetError(f"{mat}: query must hold 1-based rows of the {len(test)}-line list")
    dataset = VideoDataset(
        name="lsvid",
        train=relabel(train),
        query=tuple(test[i] for i in rows),
        gallery=test,
    )
    return log_summary(dataset)


def _read_list(path: Path, base: Path) -> tuple[Tracklet, ...]:
    tracklets = []
    for number, line in enumerate(read_lines(path), start=1):
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise DatasetError(f"{path} line {number} is not '<prefix> <pid>': {line!r}")
        tracklets.append(_read_tracklet(base / parts[0], int(parts[1]), path, number))
    return tuple(tracklets)


def _read_tracklet(prefix: Path, pid: int, list_path: Path, number: int) -> Tracklet:
    folder = prefix.parent
    if not folder.is_dir():
        raise DatasetError(
            f"{list_path} line {number}: folder {folder} is missing\nexpected layout:\n{LAYOUT}"
        )
    frames = [p for p in folder.glob(f"{prefix.name}*") if p.suffix.lower() in _IMAGE_SUFFIXES]
    if not frames:
        raise DatasetError(f"{list_path} line {number}: no frames match {prefix}*")
    paths = sorted_frames(frames, _frame_number, pattern="<A>_<frame>_<cam>_<B>.jpg")
    cams = {_fields(Path(p).name)[2] for p in paths}
    if len(cams) != 1:
        raise DatasetError(f"{list_path} line {number}: frames of {prefix}* mix cameras {cams}")
    return Tracklet(paths, pid, int(cams.pop()) - 1)
