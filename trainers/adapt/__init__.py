"""Unsupervised adaptation of a temporal ReID model to a site, from its own unlabelled cameras.

store     the tracklets `reidstream adapt` collects (crops on disk, one index file)
pseudo    pseudo identities: a tracklet per identity, cross-camera pairs from the teacher
fit       fine-tuning with cross-entropy, triplet and distillation; resumable
evaluate  held-out scores with and without hand-checked identities
"""

from __future__ import annotations

from trainers.adapt.fit import AdaptResult, adapt, split_tracklets
from trainers.adapt.pseudo import PseudoLabels, pseudo_identities
from trainers.adapt.settings import AdaptConfig
from trainers.adapt.store import StoredTracklet, StoreError, TrackletStore

__all__ = [
    "AdaptConfig",
    "AdaptResult",
    "PseudoLabels",
    "StoreError",
    "StoredTracklet",
    "TrackletStore",
    "adapt",
    "pseudo_identities",
    "split_tracklets",
]
