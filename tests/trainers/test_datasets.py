"""The dataset readers on look-alike trees in the real formats (tests/trainers/lookalike.py):
counts, train relabelling, frame order by number, the official query/gallery protocols, split
selection, and the errors for a wrong root."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from tests.trainers.lookalike import (
    Expected,
    Lookalike,
    SplitLookalike,
    build_dukemtmc_videoreid,
    build_ilidsvid,
    build_lsvid,
    build_mars,
    build_prid2011,
)
from trainers.datasets import DatasetError, Tracklet, VideoDataset, create_dataset, list_datasets

BUILDERS = {
    "mars": build_mars,
    "ilidsvid": build_ilidsvid,
    "prid2011": build_prid2011,
    "dukemtmc_videoreid": build_dukemtmc_videoreid,
    "lsvid": build_lsvid,
}


def _key(t: Tracklet) -> tuple:
    return tuple(Path(p).name for p in t.frame_paths), t.pid, t.camid


def _expected(items: list[Expected]) -> list[tuple]:
    return [(e.names, e.pid, e.camid) for e in items]


def _relabelled(items: list[Expected]) -> list[tuple]:
    labels = {pid: i for i, pid in enumerate(sorted({e.pid for e in items}))}
    return [(e.names, labels[e.pid], e.camid) for e in items]


def _check_paths(dataset: VideoDataset) -> None:
    for t in dataset.train + dataset.query + dataset.gallery:
        assert all(Path(p).is_absolute() and Path(p).is_file() for p in t.frame_paths)


# ----------------------------------------------------------------------------------- registry


def test_list_datasets_names_the_five() -> None:
    assert list_datasets() == ["mars", "ilidsvid", "prid2011", "dukemtmc_videoreid", "lsvid"]


def test_unknown_name_lists_the_datasets(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="'marss'") as info:
        create_dataset("marss", tmp_path)
    assert all(name in str(info.value) for name in list_datasets())


def test_unknown_option_and_split_of_fixed_dataset(tmp_path: Path) -> None:
    lookalike = build_mars(tmp_path)
    with pytest.raises(DatasetError, match="min_seq_len, protocol"):
        create_dataset("mars", lookalike.root, seq_len=4)
    with pytest.raises(DatasetError, match="split_id must be 0"):
        create_dataset("mars", lookalike.root, split_id=3)


# --------------------------------------------------------------------------------------- MARS


@pytest.fixture(scope="module")
def mars(tmp_path_factory: pytest.TempPathFactory) -> Lookalike:
    return build_mars(tmp_path_factory.mktemp("mars"))


def test_mars_official_protocol(mars: Lookalike) -> None:
    ds = create_dataset("mars", mars.root)
    _check_paths(ds)
    assert [_key(t) for t in ds.train] == _relabelled(mars.train)
    assert ds.num_train_pids == 3
    assert [_key(t) for t in ds.query] == _expected(mars.query)
    # Official gallery: every test tracklet in file order, queries, junk and distractors included.
    assert [_key(t) for t in ds.gallery] == _expected(mars.gallery)
    assert set(ds.query) <= set(ds.gallery)
    assert {-1, 0} <= {t.pid for t in ds.gallery}
    assert {t.camid for t in ds.gallery} == {0, 1, 2, 4}


def test_mars_frames_in_frame_order_not_name_order(mars: Lookalike) -> None:
    ds = create_dataset("mars", mars.root)
    names = [_key(t)[0] for t in ds.train + ds.gallery]
    crossing = [n for n in names if any("F1000" in x for x in n)]
    assert crossing == [
        (
            "0003C1T0003F998.jpg",
            "0003C1T0003F999.jpg",
            "0003C1T0003F1000.jpg",
            "0003C1T0003F1001.jpg",
        ),
        (
            "0002C2T0002F998.jpg",
            "0002C2T0002F999.jpg",
            "0002C2T0002F1000.jpg",
        ),
    ]
    # The name list itself holds them in name order, as MATLAB's sort writes it.
    lines = (mars.root / "MARS" / "info" / "train_name.txt").read_text().split()
    assert lines.index("0003C1T0003F1000.jpg") < lines.index("0003C1T0003F998.jpg")


def test_mars_torchreid_protocol_and_min_seq_len(mars: Lookalike) -> None:
    ds = create_dataset("mars", mars.root, protocol="torchreid")
    expected = [e for e in mars.gallery if e not in mars.query and e.pid != -1]
    assert [_key(t) for t in ds.gallery] == _expected(expected)
    assert [_key(t) for t in ds.query] == _expected(mars.query)
    long = create_dataset("mars", mars.root, min_seq_len=4)
    assert [_key(t) for t in long.train] == _relabelled(
        [e for e in mars.train if len(e.names) >= 4]
    )
    assert all(t.num_frames >= 4 for t in long.query + long.gallery)
    assert len(long.gallery) == sum(len(e.names) >= 4 for e in mars.gallery)


def test_mars_name_list_that_disagrees_with_the_mat(tmp_path: Path) -> None:
    lookalike = build_mars(tmp_path)
    path = lookalike.root / "MARS" / "info" / "tracks_train_info.mat"
    info = scipy.io.loadmat(path)["track_train_info"]
    info[0, 2] = 7
    scipy.io.savemat(path, {"track_train_info": info})
    with pytest.raises(DatasetError, match=r"row 1 .*pid 7.* do not match"):
        create_dataset("mars", lookalike.root)


# ------------------------------------------------------------------------- iLIDS-VID, PRID2011


@pytest.fixture(scope="module")
def ilidsvid(tmp_path_factory: pytest.TempPathFactory) -> SplitLookalike:
    return build_ilidsvid(tmp_path_factory.mktemp("ilidsvid"))


@pytest.fixture(scope="module")
def prid(tmp_path_factory: pytest.TempPathFactory) -> SplitLookalike:
    return build_prid2011(tmp_path_factory.mktemp("prid"))


def _check_split(ds: VideoDataset, lookalike: SplitLookalike, split_id: int) -> None:
    train_ids, test_ids = lookalike.splits[split_id]
    tracks = lookalike.tracklets
    assert (ds.split_id, ds.num_splits) == (split_id, 10)
    assert [_key(t) for t in ds.train] == [
        (tracks[p][c].names, i, c) for i, p in enumerate(train_ids) for c in (0, 1)
    ]
    assert [_key(t) for t in ds.query] == [(tracks[p][0].names, p, 0) for p in test_ids]
    assert [_key(t) for t in ds.gallery] == [(tracks[p][1].names, p, 1) for p in test_ids]


@pytest.mark.parametrize("split_id", range(10))
def test_ilidsvid_splits_from_the_official_mat(ilidsvid: SplitLookalike, split_id: int) -> None:
    ds = create_dataset("ilidsvid", ilidsvid.root, split_id=split_id)
    _check_split(ds, ilidsvid, split_id)


def test_ilidsvid_frames_sorted_by_number_and_json_fallback(tmp_path: Path) -> None:
    lookalike = build_ilidsvid(tmp_path)
    read = create_dataset("ilidsvid", lookalike.root, split_id=0).train
    read += create_dataset("ilidsvid", lookalike.root, split_id=0).gallery
    crossing = next(_key(t)[0] for t in read if "cam2_person001_99999.png" in _key(t)[0])
    assert crossing[1:3] == ("cam2_person001_99999.png", "cam2_person001_100000.png")
    base = lookalike.root / "ilids-vid"
    shutil.rmtree(base / "train-test people splits")
    splits = [
        {"train": [f"person{p:03d}" for p in tr], "test": [f"person{p:03d}" for p in te]}
        for tr, te in lookalike.splits
    ]
    (base / "splits.json").write_text(json.dumps(splits))
    for split_id in (0, 9):
        ds = create_dataset("ilidsvid", base, split_id=split_id)
        _check_split(ds, lookalike, split_id)
        _check_paths(ds)
    with pytest.raises(DatasetError, match=r"split_id 10 is outside 0\.\.9"):
        create_dataset("ilidsvid", base, split_id=10)


@pytest.mark.parametrize("split_id", range(10))
def test_prid2011_splits_from_the_json(prid: SplitLookalike, split_id: int) -> None:
    ds = create_dataset("prid2011", prid.root, split_id=split_id)
    _check_split(ds, prid, split_id)
    assert {t.pid for t in ds.train + ds.query} & {3, 201} == set()


def test_prid2011_frame_order_and_min_seq_len(prid: SplitLookalike) -> None:
    split = next(i for i, (_, test) in enumerate(prid.splits) if 1 in test)
    ds = create_dataset("prid2011", prid.root, split_id=split)
    _check_paths(ds)
    first = next(t for t in ds.query if t.pid == 1)
    assert _key(first)[0] == ("9998.png", "9999.png", "10000.png", "10001.png")
    # Person 7 has 2 frames in cam_a: min_seq_len=3 leaves it out of train or test, both cameras.
    split = next(i for i, (tr, te) in enumerate(prid.splits) if 7 in te)
    short = create_dataset("prid2011", prid.root, split_id=split, min_seq_len=3)
    assert 7 not in {t.pid for t in short.query + short.gallery}
    assert len(short.query) == len(short.gallery) == 2


def test_prid2011_rejects_persons_past_200(tmp_path: Path) -> None:
    lookalike = build_prid2011(tmp_path)
    path = lookalike.root / "prid2011" / "splits_prid2011.json"
    splits = json.loads(path.read_text())
    splits[0]["test"][0] = "person_0201"
    path.write_text(json.dumps(splits))
    with pytest.raises(DatasetError, match="person_0201"):
        create_dataset("prid2011", lookalike.root)


# ---------------------------------------------------------------------- Duke, LS-VID


def test_dukemtmc_videoreid(tmp_path: Path) -> None:
    lookalike = build_dukemtmc_videoreid(tmp_path)
    ds = create_dataset("dukemtmc_videoreid", lookalike.root)
    _check_paths(ds)
    assert [_key(t) for t in ds.train] == _relabelled(lookalike.train)
    assert [_key(t) for t in ds.query] == _expected(lookalike.query)
    assert sorted(_key(t) for t in ds.gallery) == sorted(_expected(lookalike.gallery))
    assert {_key(t) for t in ds.query} <= {_key(t) for t in ds.gallery}
    crossing = _key(ds.train[1])[0]
    assert [n.split("_")[2] for n in crossing] == ["F9998", "F9999", "F10000", "F10001"]
    old = next(t for t in ds.gallery if t.pid == 9)
    assert old.camid == 5
    long = create_dataset("dukemtmc_videoreid", lookalike.root, min_seq_len=3)
    assert [t.num_frames for t in long.gallery] == [3, 4, 3]


def test_lsvid(tmp_path: Path) -> None:
    lookalike = build_lsvid(tmp_path)
    ds = create_dataset("lsvid", lookalike.root)
    _check_paths(ds)
    assert [_key(t) for t in ds.train] == _relabelled(lookalike.train)
    assert [_key(t) for t in ds.query] == _expected(lookalike.query)
    assert [_key(t) for t in ds.gallery] == _expected(lookalike.gallery)
    assert {t.camid for t in ds.gallery} == {1, 6, 14}
    assert [n.split("_")[1] for n in _key(ds.train[1])[0]] == ["9998", "9999", "10000", "10001"]
    val = create_dataset("lsvid", lookalike.root, eval_set="val")
    assert [_key(t) for t in val.gallery] == _expected(lookalike.extra["val"])
    assert [_key(t) for t in val.query] == _expected(lookalike.extra["val_query"])


def test_lsvid_reads_a_matlab_v73_split_file(tmp_path: Path) -> None:
    """LS-VID ships info_test.mat as MATLAB v7.3 (HDF5), which scipy refuses; h5py reads it."""
    import h5py

    lookalike = build_lsvid(tmp_path)
    expected = create_dataset("lsvid", lookalike.root)
    mat = lookalike.root / "LS-VID" / "test" / "data" / "info_test.mat"
    query = scipy.io.loadmat(str(mat))["query"]
    # MATLAB's layout: a 512-byte user block holding the MAT header, arrays stored transposed.
    with h5py.File(mat, "w", userblock_size=512) as handle:
        handle["query"] = np.asarray(query).T
    header = b"MATLAB 7.3 MAT-file".ljust(116, b" ") + bytes(8) + b"\x00\x02IM"
    with mat.open("r+b") as f:
        f.write(header)
    with pytest.raises(NotImplementedError):
        scipy.io.loadmat(str(mat))
    dataset = create_dataset("lsvid", lookalike.root)
    assert [_key(t) for t in dataset.query] == [_key(t) for t in expected.query]
    assert [_key(t) for t in dataset.gallery] == [_key(t) for t in expected.gallery]


# ---------------------------------------------------------------------------- missing files

MISSING = [
    ("mars", "MARS/info/query_IDX.mat"),
    ("mars", "MARS/info/test_name.txt"),
    ("mars", "MARS/info/tracks_train_info.mat"),
    ("mars", "MARS/bbox_test"),
    ("ilidsvid", "ilids-vid/train-test people splits/train_test_splits_ilidsvid.mat"),
    ("ilidsvid", "ilids-vid/i-LIDS-VID/sequences/cam2"),
    ("prid2011", "prid2011/splits_prid2011.json"),
    ("prid2011", "prid2011/prid_2011/multi_shot/cam_b"),
    ("dukemtmc_videoreid", "dukemtmc-vidreid/DukeMTMC-VideoReID/query"),
    ("lsvid", "LS-VID/test/data/info_test.mat"),
    ("lsvid", "LS-VID/list_sequence/list_seq_train.txt"),
]


@pytest.mark.parametrize(("name", "relative"), MISSING)
def test_missing_file_is_named_with_the_layout(tmp_path: Path, name: str, relative: str) -> None:
    lookalike = BUILDERS[name](tmp_path)
    path = lookalike.root / relative
    shutil.rmtree(path) if path.is_dir() else path.unlink()
    with pytest.raises(DatasetError, match="expected layout") as info:
        create_dataset(name, lookalike.root)
    assert path.name in str(info.value)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_wrong_root_names_what_was_looked_for(tmp_path: Path, name: str) -> None:
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(DatasetError, match="expected layout") as info:
        create_dataset(name, tmp_path / "elsewhere")
    assert str(tmp_path / "elsewhere") in str(info.value)


def test_lsvid_tracklet_without_frames(tmp_path: Path) -> None:
    lookalike = build_lsvid(tmp_path)
    for frame in (lookalike.root / "LS-VID" / "tracklet_test" / "0008").glob("0008003_*"):
        frame.unlink()
    with pytest.raises(DatasetError, match="line 3: no frames match"):
        create_dataset("lsvid", lookalike.root)


def test_query_rows_out_of_range(tmp_path: Path) -> None:
    lookalike = build_mars(tmp_path)
    path = lookalike.root / "MARS" / "info" / "query_IDX.mat"
    scipy.io.savemat(path, {"query_IDX": np.array([[1, 11]], dtype=np.uint16)})
    with pytest.raises(DatasetError, match=r"1\.\.10\), got 1\.\.11"):
        create_dataset("mars", lookalike.root)
