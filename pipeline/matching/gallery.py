"""The matcher's gallery storage: identity vectors as rows of one matrix, and a FAISS index.

    GalleryRows       the identity sums as the first n rows of a matrix (a removal moves the last
                      row into the gap), so a batch's similarities are one matrix product
    FaissCandidates   identities above a threshold proposed by a FAISS inverted-file index,
                      rewritten as identities change (for `Matcher(index="faiss")`)

Used by `pipeline.matching.matcher`, which holds the identities, their constraints and their expiry.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

__all__ = ["FaissCandidates", "GalleryRows", "import_faiss"]

log = logging.getLogger(__name__)


class GalleryRows:
    """Identity vectors (sums of member tracklet vectors) as the first `n` rows of a matrix.

    Removing a row moves the last one into its place, so that the live rows are one contiguous
    block: the product with the gallery reads ``sums[:n]`` in place, never a gathered copy.
    The matrix doubles when full.
    """

    def __init__(self, dim: int) -> None:
        self.sums = np.zeros((16, dim), np.float32)
        self.norms = np.zeros(16, np.float32)
        self.ids: list[str] = []  # global id of each row
        self.slot_of: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, global_id: str) -> None:
        slot = len(self.ids)
        if slot == len(self.norms):
            self.sums = np.concatenate([self.sums, np.zeros_like(self.sums)])
            self.norms = np.concatenate([self.norms, np.zeros_like(self.norms)])
        self.ids.append(global_id)
        self.slot_of[global_id] = slot

    def remove(self, global_id: str) -> None:
        slot, last = self.slot_of.pop(global_id), len(self.ids) - 1
        moved = self.ids.pop()
        if slot != last:
            self.sums[slot], self.norms[slot] = self.sums[last], self.norms[last]
            self.ids[slot], self.slot_of[moved] = moved, slot
        self.sums[last], self.norms[last] = 0.0, 0.0

    def set(self, global_id: str, total: np.ndarray) -> None:
        slot = self.slot_of[global_id]
        self.sums[slot] = total
        self.norms[slot] = np.linalg.norm(total)

    def unit(self, slots: np.ndarray) -> np.ndarray:
        """(len(slots), D) the identities' mean directions."""
        return self.sums[slots] / np.maximum(self.norms[slots], 1e-12)[:, None]

    def similarities(self, vectors: np.ndarray) -> np.ndarray:
        """(K, n) cosine of unit `vectors` (K, D) with every identity: one matrix product."""
        n = len(self.ids)
        return vectors @ self.sums[:n].T / np.maximum(self.norms[:n], 1e-12)

    def similarity_pairs(self, vectors: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Cosine of each of `vectors` (P, D) with the identity of the slot beside it."""
        dots = np.einsum("ij,ij->i", vectors, self.sums[slots])
        return dots / np.maximum(self.norms[slots], 1e-12)

    @property
    def nbytes(self) -> int:
        return self.sums.nbytes + self.norms.nbytes


class FaissCandidates:
    """Identities at least a threshold similar to query vectors, proposed by a FAISS index.

        candidates(vectors) ─▶ write the queued changes ─▶ range_search over `nprobe` lists
                                (remove_ids + add_with_ids)   (inner product of unit vectors)

    An inverted-file index (`IndexIVFFlat`, inner product) of the unit identity vectors, because
    it can forget and rewrite single vectors: every batch moves the running means of the
    identities it touches. Those identities are queued (`changed`) and rewritten before the next
    search; its hashtable direct map makes that O(changed), not O(gallery). It has 4 sqrt(n)
    lists, the lower end of the FAISS guidelines for up to 1M vectors, and is trained on the
    gallery itself; retrained when the gallery has doubled or halved since. Below 39 identities
    per list, the fewest points per centroid FAISS trains on without a warning, it is not built
    and the search is the exact product.
    """

    def __init__(self, rows: GalleryRows, *, nprobe: int) -> None:
        self._faiss = import_faiss()
        self._rows, self.nprobe = rows, nprobe
        self._index = None
        self._trained_on = 0  # gallery size at the last training
        self._keys: dict[str, int] = {}  # global id -> the int64 id faiss knows it by
        self._global_ids: dict[int, str] = {}
        self._next_key = 0
        self._queued: set[str] = set()

    def changed(self, global_id: str) -> None:
        """The identity's vector changed, or it was removed: rewrite it before the next search."""
        self._queued.add(global_id)

    def candidates(self, vectors: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """(query rows, identity slots) the index finds at least about `threshold` similar.

        Approximate: an identity whose list is not among the `nprobe` nearest is missed.
        """
        n = len(self._rows)
        if n < _MIN_PER_LIST * _lists(n):
            return np.nonzero(self._rows.similarities(vectors) >= threshold)
        if self._index is None or not self._trained_on / 2 <= n <= 2 * self._trained_on:
            self._train()
        else:
            self._write_queued()
        # The proposals' similarities are recomputed from the rows: a little slack keeps those
        # the index's float rounding puts just below the threshold.
        lims, _, keys = self._index.range_search(vectors, threshold - 1e-4)
        rows = np.repeat(np.arange(len(vectors)), np.diff(lims.astype(np.int64)))
        slot_of, ids = self._rows.slot_of, self._global_ids
        slots = np.fromiter((slot_of[ids[k]] for k in keys.tolist()), np.int64, len(keys))
        return rows, slots

    @property
    def trained(self) -> bool:
        return self._index is not None

    @property
    def nbytes(self) -> int:
        """Memory of the index: its vectors, their ids and the list centroids."""
        if self._index is None:
            return 0
        d = self._index.d
        return self._index.ntotal * (4 * d + 8) + self._index.nlist * 4 * d

    def _train(self) -> None:
        faiss, n = self._faiss, len(self._rows)
        unit = self._rows.unit(np.arange(n))
        self._quantizer = faiss.IndexFlatIP(unit.shape[1])  # the index does not own it
        index = faiss.IndexIVFFlat(
            self._quantizer, unit.shape[1], _lists(n), faiss.METRIC_INNER_PRODUCT
        )
        index.train(unit)
        index.set_direct_map_type(faiss.DirectMap.Hashtable)
        index.nprobe = self.nprobe
        self._index, self._trained_on = index, n
        self._keys.clear(), self._global_ids.clear(), self._queued.clear()
        self._add(self._rows.ids)
        log.info("FAISS index of %d identities trained with %d lists", n, index.nlist)

    def _write_queued(self) -> None:
        if not self._queued:
            return
        old = [self._keys.pop(g) for g in self._queued if g in self._keys]
        if old:
            self._index.remove_ids(np.asarray(old, np.int64))
            for key in old:
                del self._global_ids[key]
        self._add([g for g in self._queued if g in self._rows.slot_of])
        self._queued.clear()

    def _add(self, global_ids: Sequence[str]) -> None:
        keys = np.arange(self._next_key, self._next_key + len(global_ids), dtype=np.int64)
        self._next_key += len(global_ids)
        self._keys.update(zip(global_ids, keys.tolist(), strict=True))
        self._global_ids.update(zip(keys.tolist(), global_ids, strict=True))
        slots = np.fromiter((self._rows.slot_of[g] for g in global_ids), np.int64, len(keys))
        self._index.add_with_ids(self._rows.unit(slots), keys)


#: FAISS trains a list centroid from at least this many vectors without warning.
_MIN_PER_LIST = 39


def _lists(n: int) -> int:
    """Inverted lists for `n` identities: 4 sqrt(n), the low end of the FAISS guidelines."""
    return max(1, round(4 * np.sqrt(n)))


def import_faiss():
    try:
        import faiss
    except ImportError as e:
        raise ImportError(
            "Matcher(index='faiss') needs FAISS, which is not installed: "
            "pip install 'reidstream[faiss]'"
        ) from e
    return faiss
