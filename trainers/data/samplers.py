"""P x K identity sampler: every batch holds P distinct identities with K tracklets each.

    pid 0: [t3 t0 t7 t5] [t1 t6 t2 t4]      each identity's tracklets shuffled, cut into groups
    pid 1: [t9 t8 t9 t8]                    of K (fewer than K: drawn with replacement;
    pid 2: [ ... ]                          the remainder below K is dropped)
      └─ repeat: pick P identities that still have groups, pop one group each ─▶ one batch
         until fewer than P identities have groups left
      └─ batches dealt to ranks: rank r takes batches r, r + W, r + 2W, ... (equal counts)

This is torchreid's `RandomIdentitySampler` (deep-person-reid ``torchreid/data/sampler.py``),
which yields batches of P *distinct* identities. AP3D's sampler (guxinqian/AP3D
``tools/samplers.py``) cuts the groups the same way but shuffles all groups together, so two
groups of one identity may share a batch; batch-hard triplet mining wants P distinct identities,
and both give about one pass over the tracklets per epoch. The older one-group-per-identity
sampler of jiyanggao/Video-Person-ReID (``samplers.py``) is not what either reproduced paper
used.

Hand-written (torch has no identity-balanced sampler), seeded by ``seed + epoch`` with numpy's
generator so that every rank builds the same epoch and takes its own disjoint share.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np
import torch.utils.data

__all__ = ["RandomIdentitySampler"]


class RandomIdentitySampler(torch.utils.data.Sampler[int]):
    """Yields dataset indices in P x K batches (P = batch_size / num_instances distinct ids).

    Args:
        pids: Identity of every dataset item, in dataset order.
        num_instances: K, tracklets per identity in a batch.
        batch_size: P x K, items per batch on this rank.
        seed: Base seed; epoch e uses ``seed + e``, the same on every rank.
        rank: This process's rank.
        world_size: Number of processes; each takes an equal share of whole batches.

    Use with ``DataLoader(batch_size=batch_size, sampler=..., drop_last=True)``; call `set_epoch`
    before each epoch to reshuffle.
    """

    def __init__(
        self,
        pids: Sequence[int],
        *,
        num_instances: int,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if num_instances < 1 or batch_size < num_instances or batch_size % num_instances:
            raise ValueError(
                f"batch_size must be a positive multiple of num_instances, got "
                f"batch_size={batch_size}, num_instances={num_instances}"
            )
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world={world_size}")
        self.num_instances = num_instances
        self.batch_size = batch_size
        self.num_pids_per_batch = batch_size // num_instances
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        index: dict[int, list[int]] = defaultdict(list)
        for i, pid in enumerate(pids):
            index[int(pid)].append(i)
        self._index = {pid: np.asarray(items, dtype=np.int64) for pid, items in index.items()}
        self._pids = sorted(self._index)
        if len(self._pids) < self.num_pids_per_batch:
            raise ValueError(
                f"a batch needs {self.num_pids_per_batch} identities "
                f"(batch_size={batch_size} / num_instances={num_instances}), "
                f"the data has {len(self._pids)}"
            )
        self._cache: tuple[int, list[np.ndarray]] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Selects the shuffle of `epoch` (the same on every rank)."""
        self.epoch = epoch

    def _groups(self, rng: np.random.Generator) -> dict[int, list[np.ndarray]]:
        k = self.num_instances
        groups = {}
        for pid in self._pids:
            items = self._index[pid]
            if items.size < k:
                items = rng.choice(items, size=k, replace=True)
            else:
                items = rng.permutation(items)
            usable = items.size - items.size % k
            groups[pid] = list(items[:usable].reshape(-1, k))
        return groups

    def batches(self) -> list[np.ndarray]:
        """All (batch_size,) index batches of this rank for the current epoch."""
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        rng = np.random.default_rng(self.seed + self.epoch)
        groups = self._groups(rng)
        available = list(self._pids)
        batches = []
        while len(available) >= self.num_pids_per_batch:
            chosen = rng.choice(len(available), size=self.num_pids_per_batch, replace=False)
            picked = [available[i] for i in chosen]
            batches.append(np.concatenate([groups[pid].pop() for pid in picked]))
            available = [pid for pid in available if groups[pid]]
        per_rank = len(batches) // self.world_size
        mine = batches[self.rank :: self.world_size][:per_rank]
        self._cache = (self.epoch, mine)
        return mine

    def __iter__(self) -> Iterator[int]:
        for batch in self.batches():
            yield from batch.tolist()

    def __len__(self) -> int:
        return len(self.batches()) * self.batch_size
