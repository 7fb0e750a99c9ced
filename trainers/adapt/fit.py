"""Fine-tunes a temporal ReID model on a site's unlabelled tracklets, with OSNet as teacher.

    tracklets (TrackletStore) ─ at least min_crops crops ─┬─ latest `holdout` fraction: held out
                                                          └─ the rest: training
    teacher = c2d_osnet_x0_25 from the OSNet ONNX (frame OSNet, in torch; the same embeddings as
              ONNX Runtime to cosine 0.9999): one L2-normalised embedding per crop, cached
    pseudo identities (`trainers.adapt.pseudo`): a tracklet per identity within its camera,
              cross-camera pairs where the teacher is sure
    student = the configured model (ap3d_osnet_x0_25), its OSNet weights from the same ONNX file
              and its temporal kernels at zero: at step 0 it IS the teacher, averaged over frames
    each step: P pseudo identities x K clips (train_clip_len frames, AP3D's stride sampling),
              flipped / shifted / erased once per clip (`trainers.data.transforms`)
        loss = ce   * CE_label_smooth(classifier(f), pseudo id)        per-tracklet discrimination
             + tri  * batch_hard_triplet(f, pseudo id; cosine)         (TAUDL / UTAL)
             + dist * mean(1 - cos(f, teacher clip embedding))         stay near the teacher
        where f is the student's clip feature and the teacher's clip embedding is the mean of its
        crop embeddings over the clip's (unaugmented) frames
    Adam: lr on the pretrained weights, 10 x lr on the new ones (temporal kernels, APM,
              classifier); the model's frozen layers stay frozen (see `reid_models.osnet`)

    OUT/last.pt    training state after each epoch (resumed from when the run starts again with
                   the same configuration)
    OUT/model.pt   the adapted model, retrieval only, with its model spec: `reidstream run`
                   (reid.engine=torch, reid.checkpoint=OUT/model.pt), `export` and `compile`
                   take it as it is

No labels means no model selection: the last epoch is the result. The held-out tracklets'
scores (`trainers.adapt.evaluate`) tell whether it beat the teacher.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from reid_models import create_model, load_pretrained, model_spec
from reid_models.base import ReIDModel
from trainers.adapt.evaluate import cross_camera_retrieval, embed_tracklets, half_retrieval
from trainers.adapt.pseudo import PseudoLabels, pseudo_identities
from trainers.adapt.settings import AdaptConfig
from trainers.adapt.store import StoredTracklet, StoreError, TrackletStore
from trainers.checkpoint import (
    TRAIN_STATE_FORMAT,
    WEIGHTS_FORMAT,
    load_checkpoint,
    plain,
    save_checkpoint,
)
from trainers.data.sampling import train_frame_indices
from trainers.data.transforms import ClipTransform
from trainers.losses import ReIDLoss
from trainers.seeding import seed_everything

__all__ = ["TEACHER_MODEL", "AdaptResult", "adapt", "split_tracklets"]

log = logging.getLogger(__name__)

#: The frame model the teacher's ONNX file loads into.
TEACHER_MODEL = "c2d_osnet_x0_25"
#: Identities: tracklet id -> person id (None: no person decided), from hand-checked truth.
Identities = Mapping[str, int | None]


@dataclass
class AdaptResult:
    """What `adapt` wrote and measured."""

    checkpoint: Path
    report: dict[str, Any]


def split_tracklets(
    store: TrackletStore, *, min_crops: int, holdout: float
) -> tuple[list[StoredTracklet], list[StoredTracklet]]:
    """(train, held out): tracklets with `min_crops` crops or more, the latest-starting
    `holdout` fraction held out (by start time, so no held-out tracklet precedes a trained one)."""
    usable = sorted((t for t in store if len(t) >= min_crops), key=lambda t: (t.start, t.id))
    held = math.floor(len(usable) * holdout)
    return usable[: len(usable) - held], usable[len(usable) - held :]


def adapt(
    cfg: AdaptConfig,
    store: TrackletStore,
    out_dir: Path,
    *,
    teacher_path: Path,
    device: str = "cpu",
    identities: Identities | None = None,
    progress: bool = True,
) -> AdaptResult:
    """Runs (or resumes) the adaptation and writes OUT/model.pt and OUT/report.json's content.

    Raises:
        StoreError: Too few usable tracklets to form a batch of distinct pseudo identities.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.seed)
    train, held = split_tracklets(store, min_crops=cfg.min_crops, holdout=cfg.holdout)
    if len(train) < cfg.identities_per_batch:
        raise StoreError(
            f"{len(train)} tracklets of {cfg.min_crops}+ crops to train on; a batch needs "
            f"{cfg.identities_per_batch} (collect longer: adapt.duration_s, or lower "
            f"adapt.identities_per_batch / adapt.min_crops)"
        )
    teacher = create_model(TEACHER_MODEL, pretrained=teacher_path).to(device).eval()
    frames = teacher_frames(teacher, store, train, device=device, progress=progress)
    labels = pseudo_identities(
        np.stack([_mean_normalised(f) for f in frames]),
        [t.camera for t in train],
        [(t.timestamps[0], t.timestamps[-1]) for t in train],
        threshold=cfg.pair_threshold,
    )
    student, new_params = _student(cfg, labels.num_ids, teacher_path, device)
    history = _train(
        cfg, student, new_params, store, train, frames, labels, out_dir, device, progress
    )
    checkpoint = _save_model(cfg, student, out_dir)
    report = {
        "tracklets": {"collected": len(store), "train": len(train), "held_out": len(held)},
        "pseudo_labels": _label_stats(labels, train, identities),
        "epochs": history,
        "evaluation": evaluate_held_out(
            {"teacher": teacher, "adapted": student}, store, held, device, identities
        ),
    }
    return AdaptResult(checkpoint, report)


def teacher_frames(
    teacher: ReIDModel,
    store: TrackletStore,
    tracklets: Sequence[StoredTracklet],
    *,
    device: str,
    progress: bool = True,
    batch: int = 64,
) -> list[np.ndarray]:
    """The teacher's L2-normalised embedding of every crop: one (n_i, D) array per tracklet."""
    transform = ClipTransform.from_cfg(teacher.pretrained_cfg, train=False)
    out = []
    for t in tqdm(tracklets, desc="teacher", unit="tracklet", disable=not progress):
        rows = []
        crops = store.crops(t)
        for s in range(0, len(crops), batch):
            clips = transform(crops[s : s + batch]).transpose(0, 1).unsqueeze(2)  # (n, 3, 1, H, W)
            with torch.no_grad():
                rows.append(teacher(clips.to(device)).float().cpu().numpy())
        emb = np.concatenate(rows)
        out.append(emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12))
    return out


def _mean_normalised(x: np.ndarray) -> np.ndarray:
    m = x.mean(axis=0)
    return m / max(float(np.linalg.norm(m)), 1e-12)


def _student(
    cfg: AdaptConfig, num_ids: int, teacher_path: Path, device: str
) -> tuple[ReIDModel, set[str]]:
    """The student with the teacher's weights, and the names of its parameters the file did not
    provide (they train at 10 x lr)."""
    student = create_model(cfg.model, num_classes=num_ids)
    report = load_pretrained(student, teacher_path)
    log.info(
        "student %s: %d tensors from %s, %d new",
        cfg.model,
        len(report.loaded),
        teacher_path,
        len(report.missing),
    )
    return student.to(device), set(report.missing)


def _train(
    cfg: AdaptConfig,
    student: ReIDModel,
    new_params: set[str],
    store: TrackletStore,
    train: Sequence[StoredTracklet],
    frames: Sequence[np.ndarray],
    labels: PseudoLabels,
    out_dir: Path,
    device: str,
    progress: bool,
) -> list[dict[str, float]]:
    """The epochs, resumed from OUT/last.pt when it holds this configuration's run."""
    if cfg.train_layers == "new":
        for n, p in student.named_parameters():
            p.requires_grad_(n in new_params)
    trainable = [(n, p) for n, p in student.named_parameters() if p.requires_grad]
    groups = [
        {"params": [p for n, p in trainable if n not in new_params], "lr": cfg.lr},
        {"params": [p for n, p in trainable if n in new_params], "lr": 10 * cfg.lr},
    ]
    optimizer = torch.optim.Adam([g for g in groups if g["params"]], weight_decay=5e-4)
    criterion = _criterion(cfg, labels.num_ids, student.embedding_dim)
    sampler = _ClipSampler(cfg, student, store, train, frames, labels)
    history, start = _resume(cfg, student, optimizer, sampler, out_dir / "last.pt")
    for epoch in range(start, cfg.epochs):
        student.train()
        sums: dict[str, float] = {}
        steps = tqdm(
            range(cfg.steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress
        )
        for _ in steps:
            parts = _step(student, optimizer, criterion, cfg, sampler.batch(), device)
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            steps.set_postfix(loss=f"{parts['total']:.3f}")
        history.append(
            {"epoch": epoch + 1, **{k: v / cfg.steps_per_epoch for k, v in sums.items()}}
        )
        log.info("epoch %d: %s", epoch + 1, history[-1])
        save_checkpoint(
            out_dir / "last.pt",
            {
                "format": TRAIN_STATE_FORMAT,
                "state_dict": student.state_dict(),
                "optimizer": optimizer.state_dict(),
                "epoch": epoch + 1,
                "history": history,
                "rng": sampler.rng.bit_generator.state,
                "config": plain(dataclasses.asdict(cfg)),
                "model": model_spec(student),
            },
        )
    return history


def _criterion(cfg: AdaptConfig, num_ids: int, dim: int) -> ReIDLoss | None:
    weights = {"ce": cfg.ce_weight, "triplet": cfg.triplet_weight}
    if not any(weights.values()):
        return None
    return ReIDLoss(
        num_classes=num_ids, feature_dim=dim, weights=weights, triplet_distance="cosine"
    )


def _step(
    student: ReIDModel,
    optimizer: torch.optim.Optimizer,
    criterion: ReIDLoss | None,
    cfg: AdaptConfig,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    device: str,
) -> dict[str, float]:
    clips, pids, targets = (x.to(device) for x in batch)
    output = student(clips)
    total, parts = criterion(output, pids) if criterion is not None else (0.0, {})
    distill = (1.0 - F.cosine_similarity(output.features, targets, dim=1)).mean()
    total = total + cfg.distill_weight * distill
    parts = {**parts, "distill": float(distill.detach()), "total": float(total.detach())}
    if not torch.isfinite(total):
        log.warning("non-finite loss %s: step skipped", parts)
        optimizer.zero_grad(set_to_none=True)
        return {**parts, "skipped": 1.0}
    optimizer.zero_grad(set_to_none=True)
    total.backward()
    optimizer.step()
    return {**parts, "skipped": 0.0}


class _ClipSampler:
    """P pseudo identities x K clips per batch, with the teacher's embedding of each clip."""

    def __init__(
        self,
        cfg: AdaptConfig,
        student: ReIDModel,
        store: TrackletStore,
        train: Sequence[StoredTracklet],
        frames: Sequence[np.ndarray],
        labels: PseudoLabels,
    ) -> None:
        self.cfg, self.store, self.train, self.frames = cfg, store, train, frames
        self.model_cfg = student.pretrained_cfg
        self.labels = labels.labels
        self.by_id = [np.flatnonzero(self.labels == i) for i in range(labels.num_ids)]
        self.transform = ClipTransform.from_cfg(
            student.pretrained_cfg, train=True, random_erasing=0.5
        )
        self.rng = np.random.default_rng(cfg.seed)

    def batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p = min(self.cfg.identities_per_batch, len(self.by_id))
        ids = self.rng.choice(len(self.by_id), size=p, replace=False)
        clips, pids, targets = [], [], []
        for pid in ids:
            for _ in range(self.cfg.clips_per_identity):
                i = int(self.rng.choice(self.by_id[pid]))
                clip, target = self._clip(i)
                clips.append(clip)
                targets.append(target)
                pids.append(int(pid))
        return torch.stack(clips), torch.tensor(pids), torch.from_numpy(np.stack(targets))

    def _clip(self, i: int) -> tuple[torch.Tensor, np.ndarray]:
        t, c = self.train[i], self.model_cfg
        picks = train_frame_indices(
            len(t),
            clip_len=c.train_clip_len,
            sampling=c.train_sampling,
            stride=c.train_stride,
            rng=self.rng,
        )
        crops = self.store.crops(t, picks.tolist())
        target = _mean_normalised(self.frames[i][picks]).astype(np.float32)
        return self.transform(crops, self.rng), target


def _resume(
    cfg: AdaptConfig,
    student: ReIDModel,
    optimizer: torch.optim.Optimizer,
    sampler: _ClipSampler,
    path: Path,
) -> tuple[list[dict[str, float]], int]:
    """(history, first epoch to run): from `path` when it holds a run of this configuration
    (the number of epochs aside)."""
    if not path.is_file():
        return [], 0
    state = load_checkpoint(path)
    if _resumable(state.get("config")) != _resumable(plain(dataclasses.asdict(cfg))):
        log.warning("%s was written with another adapt configuration: starting over", path)
        return [], 0
    student.load_state_dict(state["state_dict"])
    optimizer.load_state_dict(state["optimizer"])
    sampler.rng.bit_generator.state = state["rng"]
    log.info("resuming after epoch %d of %d from %s", state["epoch"], cfg.epochs, path)
    return list(state["history"]), int(state["epoch"])


def _resumable(config: Any) -> Any:
    """What must match for a run to resume: the configuration, less the number of epochs (a
    finished run given more epochs goes on)."""
    return {k: v for k, v in config.items() if k != "epochs"} if isinstance(config, dict) else None


def _save_model(cfg: AdaptConfig, student: ReIDModel, out_dir: Path) -> Path:
    """OUT/model.pt: the student without its pseudo-identity classifier, with its model spec."""
    served = create_model(cfg.model)
    own = served.state_dict()
    served.load_state_dict({k: v for k, v in student.state_dict().items() if k in own})
    return save_checkpoint(
        out_dir / "model.pt",
        {
            "format": WEIGHTS_FORMAT,
            "state_dict": served.state_dict(),
            "epoch": cfg.epochs,
            "metrics": {},
            "config": plain(dataclasses.asdict(cfg)),
            "model": model_spec(served),
        },
    )


def _label_stats(
    labels: PseudoLabels, train: Sequence[StoredTracklet], identities: Identities | None
) -> dict[str, Any]:
    """How many pseudo identities and pairs; with `identities`, how many pairs were right."""
    stats: dict[str, Any] = {}
    if identities is not None:
        truths = [
            (identities.get(train[a].id), identities.get(train[b].id)) for a, b, _ in labels.pairs
        ]
        stats["pairs_checked"] = {
            "right": sum(x is not None and x == y for x, y in truths),
            "wrong": sum(x is not None and y is not None and x != y for x, y in truths),
            "unknown": sum(x is None or y is None for x, y in truths),
        }
    return stats | {
        "identities": labels.num_ids,
        "cross_camera_pairs": len(labels.pairs),
        "pairs_skipped_same_camera_overlap": labels.skipped,
        "pairs": [
            {"a": train[a].id, "b": train[b].id, "cosine": round(c, 4)} for a, b, c in labels.pairs
        ],
    }


def evaluate_held_out(
    models: Mapping[str, ReIDModel],
    store: TrackletStore,
    held: Sequence[StoredTracklet],
    device: str,
    identities: Identities | None,
) -> dict[str, Any]:
    """Each model's label-free half-tracklet retrieval and, with `identities`, cross-camera
    pair AP / rank-1 on the held-out tracklets."""
    if len(held) < 2:
        return {"note": "fewer than 2 held-out tracklets: nothing evaluated"}
    out: dict[str, Any] = {}
    for name, model in models.items():
        clip_len = model.pretrained_cfg.test_clip_len
        scores = {
            "half_retrieval": half_retrieval(
                embed_tracklets(model, store, held, clip_len=clip_len, device=device, halves=True)
            )
        }
        if identities is not None:
            emb = embed_tracklets(model, store, held, clip_len=clip_len, device=device)
            scores["cross_camera"] = cross_camera_retrieval(
                emb, [identities.get(t.id) for t in held], [t.camera for t in held]
            )
        out[name] = scores
    return out
