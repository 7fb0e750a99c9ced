"""Checkpoint files and the random state an exact resume restores."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from trainers.checkpoint import (
    TRAIN_STATE_FORMAT,
    WEIGHTS_FORMAT,
    CheckpointError,
    load_checkpoint,
    plain,
    save_checkpoint,
)
from trainers.seeding import (
    preserved_rng,
    rng_state,
    seed_everything,
    set_rng_state,
    worker_init_fn,
)


def draws() -> tuple[float, float, float, float]:
    return random.random(), float(np.random.rand()), float(np.random.randn()), float(torch.rand(1))


def test_rng_state_survives_a_weights_only_checkpoint(tmp_path):
    seed_everything(7)
    draws()
    np.random.randn()  # leaves a cached Gaussian in NumPy's legacy state
    path = save_checkpoint(tmp_path / "s.pt", {"format": TRAIN_STATE_FORMAT, "rng": rng_state()})
    expected = draws()
    seed_everything(123)
    set_rng_state(load_checkpoint(path)["rng"])
    assert draws() == expected


def test_seed_everything_repeats_and_sets_deterministic_flags():
    seed_everything(3)
    first = draws()
    seed_everything(3)
    assert draws() == first
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    with pytest.raises(ValueError, match=r"seed must be in \[0, 2\*\*32\), got -1"):
        seed_everything(-1)


def test_preserved_rng_restores_every_generator():
    seed_everything(5)
    with preserved_rng():
        draws()
    after = draws()
    seed_everything(5)
    assert draws() == after


def test_worker_init_fn_gives_workers_distinct_numpy_streams():
    loader = torch.utils.data.DataLoader(
        _NumpyDraws(4), batch_size=1, num_workers=2, worker_init_fn=worker_init_fn
    )
    values = [float(v) for v in loader]
    assert len(set(values)) == 4  # without the hook, forked workers repeat NumPy's stream


class _NumpyDraws(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> float:
        return float(np.random.rand())


def test_save_is_atomic_and_load_checks_the_format(tmp_path):
    path = tmp_path / "sub" / "last.pt"
    save_checkpoint(path, {"format": TRAIN_STATE_FORMAT, "epoch": 3, "w": torch.ones(2)})
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt"]  # no temporary left
    assert load_checkpoint(path)["epoch"] == 3
    assert load_checkpoint(path, expected_format=None)["epoch"] == 3
    with pytest.raises(CheckpointError, match=r"expected 'reidstream\.weights/1'"):
        load_checkpoint(path, expected_format=WEIGHTS_FORMAT)
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="has format None"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "torn.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(tmp_path / "torn.pt")


def test_plain_makes_configs_safe_to_store():
    config = {"out": Path("/runs/a"), "ms": (60, 120), "dtype": torch.bfloat16, 3: None}
    assert plain(config) == {
        "out": "/runs/a",
        "ms": [60, 120],
        "dtype": "torch.bfloat16",
        "3": None,
    }
