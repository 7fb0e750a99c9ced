"""`process_group`: leaves the group it joined, at a barrier when the block ended normally.

The two-process runs (`test_engine.py`, `test_ddp.py`) join and leave a real Gloo group; here
the order of the calls is pinned with a recording stand-in for ``torch.distributed``.
"""

from __future__ import annotations

import pytest
import torch

from trainers import distributed


class FakeDist:
    """Records the calls `process_group` makes; ``init_process_group`` starts a group."""

    def __init__(self, initialized: bool = False):
        self.initialized, self.calls = initialized, []

    def is_initialized(self) -> bool:
        return self.initialized

    def init_process_group(self, **kwargs) -> None:
        self.calls.append("init")
        self.initialized = True

    def get_world_size(self) -> int:
        return 2

    def barrier(self) -> None:
        self.calls.append("barrier")

    def destroy_process_group(self) -> None:
        self.calls.append("destroy")
        self.initialized = False


@pytest.fixture
def two_ranks(monkeypatch):
    for key, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(key, value)
    fake = FakeDist()
    monkeypatch.setattr(distributed, "dist", fake)
    return fake


def test_a_block_that_ends_normally_meets_at_a_barrier_then_leaves(two_ranks):
    with distributed.process_group("gloo", device="cpu") as info:
        assert (info.rank, info.world_size, info.device) == (1, 2, torch.device("cpu"))
        assert two_ranks.calls == ["init"]
    assert two_ranks.calls == ["init", "barrier", "destroy"]


def test_a_block_that_raises_leaves_at_once_and_the_error_goes_on(two_ranks):
    with (
        pytest.raises(RuntimeError, match="rank 1 failed"),
        distributed.process_group("gloo", device="cpu"),
    ):
        raise RuntimeError("rank 1 failed")
    assert two_ranks.calls == ["init", "destroy"]  # no barrier: the peers would wait for it


def test_a_group_joined_before_the_block_is_left_alone(two_ranks):
    two_ranks.initialized = True
    with distributed.process_group("gloo", device="cpu"):
        pass
    assert two_ranks.calls == []
    assert two_ranks.initialized


def test_a_single_process_joins_nothing(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    fake = FakeDist()
    monkeypatch.setattr(distributed, "dist", fake)
    with distributed.process_group(device="cpu") as info:
        assert (info.rank, info.world_size) == (0, 1)
    assert fake.calls == []
