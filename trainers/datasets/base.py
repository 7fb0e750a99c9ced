"""The types every dataset reader returns, and the helpers the readers share.

A reader turns one on-disk dataset into a `VideoDataset`: three tuples of `Tracklet`s (train,
query, gallery), each tracklet unpacking like torchreid's ``(img_paths, pid, camid)``::

    <root>/... (official files) ──reader──▶ VideoDataset(train, query, gallery, split_id, ...)
                                               │
                                               └─ Tracklet(frame_paths, pid, camid)

Conventions shared by all readers:

- frame paths are absolute and sorted by the frame number parsed from the file name, not by the
  name itself: the reference loaders take ``glob`` order (torchreid's and AP3D's iLIDS-VID and
  PRID2011 readers) or a fixed ``F%04d`` probe (torchreid's DukeMTMC-VideoReID reader), and a name
  sort puts ``F1000`` before ``F999``;
- train pids are relabelled 0..N-1 in ascending order of the original id (torchreid enumerates a
  ``set``, whose order is an implementation detail); query and gallery keep the original ids, so
  junk (-1) and distractor (0) labels survive for the evaluation;
- camera ids are 0-based;
- nothing is written next to the dataset (torchreid caches JSON splits there; a dataset mount may
  be read-only and a cache of absolute paths goes stale when the root moves).

Errors name the missing or malformed file and the layout the reader expects.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = [
    "DatasetError",
    "Tracklet",
    "VideoDataset",
    "find_root",
    "last_number",
    "load_mat_variable",
    "log_summary",
    "read_lines",
    "relabel",
    "require",
    "sorted_frames",
]

logger = logging.getLogger(__name__)


class DatasetError(ValueError):
    """A dataset root that does not hold what the reader expects; the message names the missing
    or bad file or folder and the expected layout."""


class Tracklet(NamedTuple):
    """One person's sequence of frames in one camera.

    Attributes:
        frame_paths: Absolute paths, sorted by frame number.
        pid: Train: relabelled 0..N-1. Query/gallery: the dataset's own id (MARS and LS-VID keep
            -1 for junk and 0 for distractors).
        camid: 0-based camera index.
    """

    frame_paths: tuple[str, ...]
    pid: int
    camid: int

    @property
    def num_frames(self) -> int:
        return len(self.frame_paths)


@dataclass(frozen=True)
class VideoDataset:
    """Train, query and gallery tracklets of one dataset (one split of it).

    Attributes:
        name: Registry name, e.g. ``"mars"``.
        train: Training tracklets, pids 0..num_train_pids-1.
        query: Query tracklets, original pids.
        gallery: Gallery tracklets, original pids. For MARS, DukeMTMC-VideoReID and LS-VID the
            official gallery, which contains the query tracklets (MARS, LS-VID: the same entries;
            Duke: copies in the gallery folder).
        split_id: Which of the `num_splits` identity splits this is.
        num_splits: 10 for PRID2011 and iLIDS-VID, 1 for the fixed-split datasets.
    """

    name: str
    train: tuple[Tracklet, ...]
    query: tuple[Tracklet, ...]
    gallery: tuple[Tracklet, ...]
    split_id: int = 0
    num_splits: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.split_id < self.num_splits:
            raise DatasetError(
                f"{self.name}: split_id {self.split_id} is outside 0..{self.num_splits - 1}"
            )
        pids = sorted({t.pid for t in self.train})
        if pids != list(range(len(pids))):
            raise DatasetError(f"{self.name}: train pids must be 0..N-1, got {pids[:10]}...")

    @property
    def num_train_pids(self) -> int:
        return len({t.pid for t in self.train})

    def describe(self) -> str:
        """A small table of ids, tracklets and frames per subset, for logs."""
        rows = [f"{self.name} (split {self.split_id}/{self.num_splits})", "subset  ids  tracklets"]
        for subset, tracklets in (
            ("train", self.train),
            ("query", self.query),
            ("gallery", self.gallery),
        ):
            ids = len({t.pid for t in tracklets})
            rows.append(f"{subset:<7} {ids:>4} {len(tracklets):>10}")
        return "\n".join(rows)


def require(path: Path, *, what: str, layout: str) -> Path:
    """Returns `path` if it exists, else raises `DatasetError` naming it, `what` it is and the
    expected `layout`."""
    if not path.exists():
        raise DatasetError(f"missing {what}: {path}\nexpected layout:\n{layout}")
    return path


def find_root(root: str | Path, *, marker: str, subdirs: Sequence[str], layout: str) -> Path:
    """The dataset folder: `root` itself or one of `root/<subdir>`, whichever holds `marker`.

    The readers accept both the dataset folder and its parent, as torchreid (``<root>/mars``) and
    AP3D (``<root>/MARS``) name it.

    Raises:
        DatasetError: No candidate holds `marker`; the message names every path tried.
    """
    base = Path(root).expanduser().resolve()
    candidates = [base, *(base / s for s in subdirs)]
    for candidate in candidates:
        if (candidate / marker).exists():
            return candidate
    tried = "\n".join(f"  {c / marker}" for c in candidates)
    raise DatasetError(
        f"missing {marker!r} under {base}; looked for:\n{tried}\nexpected layout:\n{layout}"
    )


def read_lines(path: Path) -> list[str]:
    """Lines of a text file with trailing whitespace (``\\r\\n`` included) removed; trailing
    empty lines dropped, inner ones kept so that line numbers stay valid."""
    lines = [line.rstrip() for line in path.read_text().splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def read_json_splits(path: Path) -> list[tuple[list[str], list[str]]]:
    """torchreid's ``splits*.json``: a list of {"train": [person dirs], "test": [person dirs]}."""
    try:
        raw = json.loads(path.read_text())
        return [(sorted(s["train"]), sorted(s["test"])) for s in raw]
    except (ValueError, KeyError, TypeError) as exc:
        raise DatasetError(
            f"{path} must be a JSON list of {{'train': [dirs], 'test': [dirs]}}: {exc}"
        ) from exc


def load_mat_variable(path: Path, variable: str, *, layout: str) -> np.ndarray:
    """One variable of a MATLAB file: v4-v7.2 through `scipy.io.loadmat`, v7.3 (HDF5) through
    h5py when it is installed (scipy cannot read HDF5; LS-VID ships v7.3 files).

    Raises:
        DatasetError: The file is missing, unreadable, or lacks `variable`.
    """
    import scipy.io

    require(path, what="MATLAB file", layout=layout)
    try:
        contents = scipy.io.loadmat(str(path))
    except NotImplementedError:  # scipy's answer to a v7.3 (HDF5) file
        return _load_hdf5_mat_variable(path, variable)
    except (ValueError, TypeError, OSError) as exc:
        raise DatasetError(f"cannot read MATLAB file {path}: {exc}") from exc
    if variable not in contents:
        found = sorted(k for k in contents if not k.startswith("__"))
        raise DatasetError(f"{path} has no variable {variable!r}; it holds {found}")
    return np.asarray(contents[variable])


def _load_hdf5_mat_variable(path: Path, variable: str) -> np.ndarray:
    try:
        import h5py
    except ImportError as exc:
        raise DatasetError(
            f"{path} is a MATLAB v7.3 (HDF5) file, which scipy cannot read; install h5py "
            "(pip install h5py) to read it"
        ) from exc
    with h5py.File(path, "r") as handle:
        if variable not in handle:
            raise DatasetError(f"{path} has no variable {variable!r}; it holds {sorted(handle)}")
        return np.asarray(handle[variable])


def sorted_frames(
    paths: Iterable[str | Path], frame_number: Callable[[str], int | None], *, pattern: str
) -> tuple[str, ...]:
    """Absolute frame paths sorted by the frame number `frame_number` reads from each file name.

    Args:
        paths: Absolute frame paths of one tracklet, in any order (the readers build them on the
            resolved root; resolving each of a million MARS frames again would cost a syscall
            per path component).
        frame_number: Maps a file name (no folder) to its frame number, or None if it does not
            follow the dataset's naming.
        pattern: The expected naming, for the error message.

    Raises:
        DatasetError: A name that `frame_number` cannot read.
    """
    keyed = []
    for p in paths:
        name = Path(p).name
        number = frame_number(name)
        if number is None:
            raise DatasetError(f"frame file {p} does not follow the naming {pattern}")
        keyed.append((number, name, str(p)))
    keyed.sort()
    return tuple(path for _, _, path in keyed)


def last_number(name: str) -> int | None:
    """The last run of digits in `name`, e.g. 317 for ``cam1_person001_00317.png``."""
    found = re.findall(r"\d+", Path(name).stem)
    return int(found[-1]) if found else None


def relabel(tracklets: Iterable[Tracklet]) -> tuple[Tracklet, ...]:
    """Train pids mapped to 0..N-1 in ascending order of the original pid."""
    tracklets = tuple(tracklets)
    labels = {pid: i for i, pid in enumerate(sorted({t.pid for t in tracklets}))}
    return tuple(t._replace(pid=labels[t.pid]) for t in tracklets)


def log_summary(dataset: VideoDataset) -> VideoDataset:
    logger.info("loaded %s", dataset.describe())
    return dataset
