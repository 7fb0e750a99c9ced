"""Readers of the five video ReID datasets, behind one factory.

``create_dataset(name, root, split_id=..., **options)`` reads a dataset into a `VideoDataset`
(train / query / gallery tuples of `Tracklet(frame_paths, pid, camid)`); ``list_datasets()``
names them. Each reader's module docstring gives the on-disk layout and where it follows or departs
from the official code. The synthetic dataset of `trainers.synthetic` is written in the MARS format
and read with ``create_dataset("mars", root)``.

    name                 reader                     splits  options
    mars                 read_mars                  1       protocol, min_seq_len
    ilidsvid             read_ilidsvid              10      -
    prid2011             read_prid2011              10      min_seq_len
    dukemtmc_videoreid   read_dukemtmc_videoreid    1       min_seq_len
    lsvid                read_lsvid                 1       eval_set
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from pathlib import Path

from trainers.datasets.base import DatasetError, Tracklet, VideoDataset
from trainers.datasets.dukev import read_dukemtmc_videoreid
from trainers.datasets.ilidsvid import read_ilidsvid
from trainers.datasets.lsvid import read_lsvid
from trainers.datasets.mars import read_mars
from trainers.datasets.prid2011 import read_prid2011

__all__ = [
    "DatasetError",
    "Tracklet",
    "VideoDataset",
    "create_dataset",
    "list_datasets",
    "read_dukemtmc_videoreid",
    "read_ilidsvid",
    "read_lsvid",
    "read_mars",
    "read_prid2011",
]

_READERS: dict[str, Callable[..., VideoDataset]] = {
    "mars": read_mars,
    "ilidsvid": read_ilidsvid,
    "prid2011": read_prid2011,
    "dukemtmc_videoreid": read_dukemtmc_videoreid,
    "lsvid": read_lsvid,
}


def list_datasets() -> list[str]:
    """Names `create_dataset` accepts, in the order of the table above."""
    return list(_READERS)


def create_dataset(
    name: str, root: str | Path, *, split_id: int = 0, **options: object
) -> VideoDataset:
    """Reads dataset `name` from `root`.

    Args:
        name: One of `list_datasets()`.
        root: The dataset's folder or its parent (see each reader's layout).
        split_id: The identity split, 0..9 for ``prid2011`` and ``ilidsvid``; must be 0 for the
            fixed-split datasets.
        **options: Keyword options of the reader (see the table in the module docstring).

    Raises:
        DatasetError: Unknown `name` or option, a `split_id` the dataset does not have, or a
            root that does not hold the dataset.
    """
    if name not in _READERS:
        close = difflib.get_close_matches(name, _READERS, n=2)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise DatasetError(f"unknown dataset {name!r}.{hint} Known: {', '.join(list_datasets())}")
    reader = _READERS[name]
    accepted = set(inspect.signature(reader).parameters) - {"root"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise DatasetError(
            f"dataset {name!r} has no option {', '.join(unknown)}; "
            f"its options: {', '.join(sorted(accepted - {'split_id'})) or 'none'}"
        )
    if "split_id" in accepted:
        return reader(root, split_id=split_id, **options)
    if split_id != 0:
        raise DatasetError(
            f"dataset {name!r} has one fixed split; split_id must be 0, got {split_id}"
        )
    return reader(root, **options)
