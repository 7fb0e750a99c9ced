"""MARS (Zheng et al., ECCV'16): the official devkit files read into a `VideoDataset`.

Layout (torchreid's ``docs/datasets.rst`` ``<root>/mars``, AP3D ``<root>/MARS``; the ``info``
files are those of liangzheng06/MARS-evaluation)::

    mars/
      bbox_train/<pid4>/<pid4>C<c>T<tttt>F<fff>.jpg      625 ids, 8298 tracklets
      bbox_test/<pid4>/...                               incl. 0000 (distractors), 00-1 (junk)
      info/train_name.txt  test_name.txt                 one frame name per line (\\r\\n)
           tracks_train_info.mat  tracks_test_info.mat   [start, end, pid, cam] rows, 1-based
           query_IDX.mat                                 1-based rows of tracks_test_info

Tracklet i of a split is the name list's lines ``start..end`` (1-based, inclusive) of row i;
frames live in ``bbox_<split>/<name[:4]>/<name>``; ``name[5]`` is the camera digit.

Protocols (``protocol=``):

- ``"official"`` (default), the MATLAB devkit's ``test_mars.m`` that GLTR and M3D score with and
  AP3D reproduces by putting the queries in front of the gallery: query = the 1980 rows of
  ``query_IDX``; gallery = **all** 12180 test tracklets in file order, the queries included.
  Distractors (pid 0, 3248 tracklets) stay as ordinary negatives. Junk (pid -1, 870 tracklets)
  stays with pid -1: `trainers.evaluation.evaluate_rank(protocol="mars")` ignores every gallery
  entry of pid -1, as ``evaluation_mars.m`` does, and so does ``protocol="ap3d"``, as AP3D's
  loader drops them; the query itself is junk there too (same pid, same camera). Every query
  then has a true match (none lacks one; counted from the devkit's ``query_IDX.mat`` and
  ``tracks_test_info.mat``).
- ``"torchreid"``: torchreid's (and jiyanggao's) split: gallery = the non-query rows with pid -1
  dropped (9330 tracklets); 140 queries then have no true match and are skipped by its
  evaluation. For comparing with numbers published on that protocol.

Differences from torchreid's ``Mars`` loader (which AP3D, jiyanggao and TCLNet share): train pids
are relabelled in ascending order; frames within a tracklet are sorted by their F number (the
name lists are sorted by name, which agrees while frame numbers keep three digits); a name whose
person prefix or camera digit disagrees with its row raises instead of asserting.
"""

from __future__ import annotations

import re
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

__all__ = ["LAYOUT", "read_mars"]

LAYOUT = """\
  <root>/mars/ (or <root>/MARS/, or <root> itself)
    bbox_train/<pid4>/<pid4>C<cam>T<tracklet4>F<frame3>.jpg
    bbox_test/<pid4>/...
    info/train_name.txt, info/test_name.txt
    info/tracks_train_info.mat (track_train_info), info/tracks_test_info.mat (track_test_info)
    info/query_IDX.mat (query_IDX)"""

_NAME = re.compile(r"^(?P<pid>\d{4}|00-1)C(?P<cam>\d)T(?P<tracklet>\d{4})F(?P<frame>\d+)\.jpg$")


def _frame_number(name: str) -> int | None:
    match = _NAME.match(name)
    return int(match["frame"]) if match else None


def read_mars(
    root: str | Path,
    *,
    protocol: Literal["official", "torchreid"] = "official",
    min_seq_len: int = 0,
) -> VideoDataset:
    """Reads MARS from its devkit files.

    Args:
        root: The MARS folder, or its parent holding ``mars/`` or ``MARS/``.
        protocol: ``"official"``: gallery = all test tracklets incl. queries, junk and
            distractors. ``"torchreid"``: gallery = non-query tracklets without junk.
        min_seq_len: Tracklets with fewer frames are dropped from every subset (torchreid's
            ``min_seq_len``; 0 keeps all). MARS test tracklets have 2..920 frames.

    Returns:
        The dataset; query pids are the original ids (2..1500), gallery pids include 0 and -1.

    Raises:
        DatasetError: A missing file or folder, or files that contradict each other.
    """
    if protocol not in ("official", "torchreid"):
        raise DatasetError(f"MARS protocol {protocol!r} is not one of 'official', 'torchreid'")
    base = find_root(root, marker="info", subdirs=("mars", "MARS"), layout=LAYOUT)
    info = base / "info"
    for sub in ("bbox_train", "bbox_test"):
        require(base / sub, what="MARS frame folder", layout=LAYOUT)
    train_names = read_lines(require(info / "train_name.txt", what="name list", layout=LAYOUT))
    test_names = read_lines(require(info / "test_name.txt", what="name list", layout=LAYOUT))
    train_info = _track_info(info / "tracks_train_info.mat", "track_train_info")
    test_info = _track_info(info / "tracks_test_info.mat", "track_test_info")
    query_rows = _query_rows(info / "query_IDX.mat", len(test_info))

    train = _tracklets(train_names, train_info, base / "bbox_train", info / "train_name.txt")
    test = _tracklets(test_names, test_info, base / "bbox_test", info / "test_name.txt")
    keep = [len(t.frame_paths) >= min_seq_len for t in train]
    train = relabel(t for t, k in zip(train, keep, strict=True) if k)
    long_enough = [t.num_frames >= min_seq_len for t in test]
    query = tuple(test[i] for i in query_rows if long_enough[i])
    if protocol == "official":
        gallery = tuple(t for t, k in zip(test, long_enough, strict=True) if k)
    else:
        is_query = np.zeros(len(test), dtype=bool)
        is_query[query_rows] = True
        gallery = tuple(
            t
            for t, q, k in zip(test, is_query, long_enough, strict=True)
            if k and not q and t.pid != -1
        )
    return log_summary(VideoDataset(name="mars", train=train, query=query, gallery=gallery))


def _track_info(path: Path, variable: str) -> np.ndarray:
    info = load_mat_variable(path, variable, layout=LAYOUT)
    if info.ndim != 2 or info.shape[1] != 4:
        raise DatasetError(
            f"{path}: {variable} must be an (N, 4) array of [start, end, pid, cam] rows, "
            f"got shape {info.shape}"
        )
    return info.astype(np.int64)


def _query_rows(path: Path, num_test: int) -> np.ndarray:
    rows = load_mat_variable(path, "query_IDX", layout=LAYOUT).astype(np.int64).ravel() - 1
    if rows.size == 0 or rows.min() < 0 or rows.max() >= num_test:
        found = f"{rows.min() + 1}..{rows.max() + 1}" if rows.size else "no rows"
        raise DatasetError(
            f"{path}: query_IDX must hold 1-based rows of tracks_test_info (1..{num_test}), "
            f"got {found}"
        )
    if len(np.unique(rows)) != len(rows):
        raise DatasetError(f"{path}: query_IDX repeats a row")
    return rows


def _tracklets(
    names: list[str], info: np.ndarray, frame_dir: Path, list_path: Path
) -> tuple[Tracklet, ...]:
    """One tracklet per row of `info`; pids as in the file, cameras made 0-based."""
    tracklets = []
    for row, (start, end, pid, cam) in enumerate(info.tolist(), start=1):
        if not 1 <= start <= end <= len(names):
            raise DatasetError(
                f"row {row} of the track info spans lines {start}..{end}, but {list_path} has "
                f"{len(names)} lines"
            )
        rows_names = names[start - 1 : end]
        prefix = "00-1" if pid == -1 else f"{pid:04d}"
        camera = str(cam)
        wrong = next((n for n in rows_names if n[:4] != prefix or n[5:6] != camera), None)
        if wrong is not None:
            raise DatasetError(
                f"row {row} (pid {pid}, cam {cam}) of the track info names {wrong!r} "
                f"in {list_path}: the name list and the .mat do not match"
            )
        paths = (str(frame_dir / name[:4] / name) for name in rows_names)
        frames = sorted_frames(paths, _frame_number, pattern="<pid4>C<c>T<tttt>F<fff>.jpg")
        tracklets.append(Tracklet(frames, int(pid), int(cam) - 1))
    return tuple(tracklets)
