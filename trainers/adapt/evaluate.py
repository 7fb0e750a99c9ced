"""How well tracklet embeddings tell a site's people apart, with and without labels.

embed_tracklets       each tracklet cut into consecutive clip_len chunks (the test protocol of
                      AP3D, `PretrainedCfg.test_sampling` "chunks"), clip embeddings averaged
                      (weighted by chunk length) and L2-normalised
cross_camera_retrieval   with identities (hand-checked truth): every tracklet with an identity
                      queries the tracklets of the OTHER cameras; AP and rank-1 over the
                      queries that have a match there (torchreid's protocol,
                      `trainers.evaluation.rank`)
half_retrieval        without labels: the first half of each tracklet queries the second
                      halves of all tracklets; rank-1 and mAP of finding its own. A proxy of
                      discriminability (it rewards telling people apart, not matching across
                      viewpoints), reported as such.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from reid_models.base import ReIDModel
from trainers.adapt.store import StoredTracklet, TrackletStore
from trainers.data.transforms import ClipTransform
from trainers.evaluation.rank import evaluate_rank

__all__ = ["cross_camera_retrieval", "embed_tracklets", "half_retrieval"]


@torch.no_grad()
def embed_tracklets(
    model: ReIDModel,
    store: TrackletStore,
    tracklets: Sequence[StoredTracklet],
    *,
    clip_len: int,
    device: str = "cpu",
    halves: bool = False,
    batch: int = 16,
) -> np.ndarray:
    """(N, D) tracklet embeddings, or with `halves` (2, N, D): first and second halves."""
    model.eval()
    transform = ClipTransform.from_cfg(model.pretrained_cfg, train=False)
    parts = []
    for t in tracklets:
        n = len(t)
        if halves:
            cut = max(1, n // 2)
            ranges = [range(0, cut), range(cut if n > 1 else 0, n)]
        else:
            ranges = [range(n)]
        parts.extend(ranges)
    chunks = [
        (i, list(r[s : s + clip_len]))
        for i, r in enumerate(parts)
        for s in range(0, len(r), clip_len)
    ]
    sums = np.zeros((len(parts), model.embedding_dim))
    by_part = [tracklets[i // 2] if halves else tracklets[i] for i in range(len(parts))]
    for start in range(0, len(chunks), batch):
        group = chunks[start : start + batch]
        for length in sorted({len(p) for _, p in group}):
            same = [(i, p) for i, p in group if len(p) == length]
            clips = torch.stack([transform(store.crops(by_part[i], p)) for i, p in same])
            emb = model(clips.to(device)).float().cpu().numpy()
            for (i, p), e in zip(same, emb, strict=True):
                sums[i] += len(p) * e
    out = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return out.reshape(len(tracklets), 2, -1).transpose(1, 0, 2) if halves else out


def cross_camera_retrieval(
    embeddings: np.ndarray, identities: Sequence[int | None], cameras: Sequence[str]
) -> dict[str, float | int | None]:
    """Cross-camera pair AP (mAP) and rank-1 of L2-normalised tracklet embeddings.

    Tracklets whose identity is None are left out (an unlabelled one may be anybody); mAP and
    rank-1 are None when no query has a match on another camera.
    """
    keep = [i for i, p in enumerate(identities) if p is not None]
    x = np.asarray(embeddings, np.float64)[keep]
    pids = np.array([identities[i] for i in keep], np.int64)
    cam_names = [cameras[i] for i in keep]
    cams = np.unique(cam_names, return_inverse=True)[1]
    dist = 1.0 - x @ x.T
    dist[cams[:, None] == cams[None, :]] = np.inf  # the query's own camera is never searched
    matched = np.array([(pids[cams != c] == p).any() for p, c in zip(pids, cams, strict=True)])
    if not matched.any():
        return {"map": None, "rank1": None, "queries": 0, "tracklets": len(keep)}
    q = np.flatnonzero(matched)
    result = evaluate_rank(dist[q], pids[q], pids, cams[q], cams, protocol="torchreid", max_rank=1)
    return {
        "map": float(result.mAP),
        "rank1": float(result.cmc[0]),
        "queries": len(q),
        "tracklets": len(keep),
    }


def half_retrieval(halves: np.ndarray) -> dict[str, float]:
    """Rank-1 and mAP of each tracklet's first half finding its own second half."""
    first, second = halves
    sim = first @ second.T
    own = np.diag(sim)
    rank = 1 + (sim > own[:, None]).sum(axis=1)
    return {"rank1": float((rank == 1).mean()), "map": float((1.0 / rank).mean())}
