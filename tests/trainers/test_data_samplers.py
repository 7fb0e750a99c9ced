"""The P x K identity sampler: batch composition, epoch reshuffle, rank shares."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from trainers.data import RandomIdentitySampler

# 12 identities; ids 0-2 have fewer than K=4 tracklets, id 11 has 10.
PIDS = [pid for pid in range(12) for _ in range(pid + 1 if pid < 11 else 10)]


def _sampler(**kw) -> RandomIdentitySampler:
    kw.setdefault("num_instances", 4)
    kw.setdefault("batch_size", 16)
    return RandomIdentitySampler(PIDS, **kw)


def _batches(sampler: RandomIdentitySampler) -> list[list[int]]:
    flat = list(sampler)
    assert len(flat) == len(sampler) and len(flat) % sampler.batch_size == 0
    return [flat[i : i + sampler.batch_size] for i in range(0, len(flat), sampler.batch_size)]


def test_every_batch_holds_p_distinct_ids_with_k_items_each() -> None:
    sampler = _sampler()
    batches = _batches(sampler)
    assert batches
    for batch in batches:
        counts = Counter(PIDS[i] for i in batch)
        assert len(counts) == 4 and set(counts.values()) == {4}
        # the K items of one id come from that id's tracklets
        assert all(PIDS[i] in counts for i in batch)


def test_ids_with_fewer_than_k_tracklets_are_drawn_with_replacement() -> None:
    sampler = _sampler(seed=3)
    seen = Counter()
    for epoch in range(20):
        sampler.set_epoch(epoch)
        for batch in _batches(sampler):
            for pid in {PIDS[i] for i in batch} & {0, 1, 2}:
                items = [i for i in batch if PIDS[i] == pid]
                assert len(items) == 4 and len(set(items)) <= pid + 1
                seen[pid] += 1
    assert all(seen[pid] > 0 for pid in (0, 1, 2))


def test_an_epoch_uses_each_tracklet_at_most_once_for_ids_with_k_or_more() -> None:
    flat = list(_sampler(seed=5))
    counts = Counter(i for i in flat if PIDS[i] >= 3)
    assert max(counts.values()) == 1


def test_same_seed_and_epoch_give_the_same_order_and_epochs_differ() -> None:
    a, b = _sampler(seed=11), _sampler(seed=11)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    b.set_epoch(1)
    assert list(a) == list(b) != first
    a.set_epoch(0)
    assert list(a) == first


def test_ranks_take_disjoint_equal_shares_of_whole_batches() -> None:
    world = 3
    full = _batches(_sampler(seed=2, batch_size=8))  # P=2 so there are many batches
    shares = [_batches(_sampler(seed=2, batch_size=8, rank=r, world_size=world)) for r in range(3)]
    assert len({len(s) for s in shares}) == 1 and len(shares[0]) == len(full) // world
    dealt = [tuple(b) for s in shares for b in s]
    assert len(set(dealt)) == len(dealt)  # no batch on two ranks
    assert set(dealt) <= {tuple(b) for b in full}  # whole batches of the single-process epoch
    for r, share in enumerate(shares):
        assert share == full[r::world][: len(share)]


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"batch_size": 10}, "multiple of num_instances"),
        ({"batch_size": 64}, "identities"),
        ({"rank": 2, "world_size": 2}, "rank"),
    ],
)
def test_bad_configuration_raises(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _sampler(**kw)


def test_works_as_a_dataloader_sampler() -> None:
    import torch.utils.data

    dataset = torch.utils.data.TensorDataset(torch.tensor(PIDS))
    loader = torch.utils.data.DataLoader(dataset, batch_size=16, sampler=_sampler(), drop_last=True)
    for (pids,) in loader:
        assert np.unique(pids.numpy()).size == 4
