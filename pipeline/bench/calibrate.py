"""`reidstream calibrate`: propose `matcher.threshold` from a site's own cameras.

    SITE.yaml ─ pipeline.adapt.collect (the job on its cameras, calibrate.duration_s of each)
      ─▶ OUT/tracklets/ (crops, frames, boxes)
    each tracklet's crops, cut into the job's clips (clip_len, stride) ─ the configured ReID
      engine ─▶ unit clip embeddings
    pipeline.matching.calibration: different-people and same-person similarities ─▶ the
      proposal ─▶ OUT/calibration.json, OUT/calibration.png (both distributions, both thresholds)
    with --truth DIR (hand-checked identities): the job again over the whole footage at the
      configured and at the proposed threshold ─▶ false merges and splits of each

Run again with the same --out, the collection is reused. The statistics are
`pipeline.matching.calibration`'s; the plot is matplotlib's.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from deploy.engines import Engine
from pipeline.adapt import collect, offline_config
from pipeline.assemble import build_engine, build_job, clip_geometry, resolve_device
from pipeline.config import ConfigError
from pipeline.matching.calibration import (
    Calibration,
    EmbeddedTracklet,
    different_people,
    propose_threshold,
    same_person,
)
from pipeline.settings import ReidstreamConfig
from trainers.adapt.store import StoredTracklet, TrackletStore

__all__ = [
    "calibrate_store",
    "clip_windows",
    "embed_store",
    "identity_errors",
    "plot",
    "run_calibration",
]

log = logging.getLogger(__name__)


def clip_windows(n: int, clip_len: int, stride: int) -> list[range]:
    """The positions of the clips the job cuts from `n` crops: `clip_len` crops ending every
    `stride` crops, and one ending at the last crop (a shorter tracklet: one clip of all)."""
    if n <= clip_len:
        return [range(n)]
    ends = list(range(clip_len, n + 1, stride))
    if ends[-1] != n:
        ends.append(n)
    return [range(e - clip_len, e) for e in ends]


def _embed_one(
    engine: Engine, store: TrackletStore, t: StoredTracklet, clip_len: int, stride: int
) -> EmbeddedTracklet:
    windows = clip_windows(len(t), clip_len, stride)
    crops = store.crops(t)  # (N, H, W, 3) RGB, as the engines take them
    vectors = []
    for start in range(0, len(windows), engine.max_batch):
        group = windows[start : start + engine.max_batch]
        vectors.append(engine.embed(np.stack([crops[list(w)] for w in group])))
    emb = np.concatenate(vectors).astype(np.float64)
    emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    return EmbeddedTracklet(
        id=t.id,
        camera=t.camera,
        embeddings=emb,
        times=np.array([t.timestamps[w[-1]] for w in windows]),
        frames=np.asarray(t.frames),
        timestamps=np.asarray(t.timestamps),
        boxes=np.asarray(t.boxes, float).reshape(-1, 4),
    )


def embed_store(
    engine: Engine, store: TrackletStore, *, clip_len: int, stride: int
) -> list[EmbeddedTracklet]:
    """Every stored tracklet as the job's clips, embedded by `engine`."""
    return [_embed_one(engine, store, t, clip_len, stride) for t in store]


def run_calibration(
    cfg: ReidstreamConfig, out_dir: Path, *, truth: Path | None = None
) -> dict[str, Any]:
    """Collects the site's tracklets (or reuses them), then `calibrate_store`.

    Raises:
        ConfigError: No cameras configured, or no different-people pair in the footage.
    """
    if not cfg.cameras:
        raise ConfigError("calibrate needs the site's cameras: the configuration lists none")
    adapt = dataclasses.replace(cfg.adapt, duration_s=cfg.calibrate.duration_s)
    store = collect(dataclasses.replace(cfg, adapt=adapt), out_dir / "tracklets")
    return calibrate_store(cfg, store, out_dir, truth=truth)


def calibrate_store(
    cfg: ReidstreamConfig, store: TrackletStore, out_dir: Path, *, truth: Path | None = None
) -> dict[str, Any]:
    """Embeds `store`'s tracklets with the configured engine, proposes the threshold and
    writes OUT/calibration.json and OUT/calibration.png; with `truth`, scores both thresholds.

    Raises:
        ConfigError: No different-people pair among the tracklets.
    """
    c = cfg.calibrate
    engine = build_engine(cfg, resolve_device(cfg.device))
    clip_len, stride, _ = clip_geometry(cfg, engine)
    try:
        tracklets = embed_store(engine, store, clip_len=clip_len, stride=stride)
    finally:
        engine.close()
    negatives = different_people(tracklets, max_iou=c.max_iou)
    positives = same_person(tracklets, min_gap_s=c.min_gap_s)
    try:
        result = propose_threshold(
            [s for *_, s in negatives],
            [s for _, s in positives],
            target=c.target_false_merge,
            min_pairs=c.min_pairs,
        )
    except ValueError as e:
        raise ConfigError(f"calibrate: {e}") from e
    report = _report(cfg, result, len(store), clip_len, stride)
    report["plot"] = str(plot(result, cfg.matcher.threshold, out_dir / "calibration.png"))
    if truth is not None:
        report["scored"] = _score_thresholds(cfg, truth, result.threshold, out_dir)
    (out_dir / "calibration.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def _report(
    cfg: ReidstreamConfig, result: Calibration, tracklets: int, clip_len: int, stride: int
) -> dict[str, Any]:
    def summary(x: np.ndarray) -> dict[str, Any]:
        if not x.size:
            return {"pairs": 0}
        q = np.quantile(x, [0.05, 0.5, 0.95]).round(4).tolist()
        return {"pairs": int(x.size), "p05": q[0], "median": q[1], "p95": q[2]}

    configured = cfg.matcher.threshold
    return {
        "proposed_threshold": result.threshold,
        "target_false_merge": result.target_false_merge,
        "expected_false_merge": round(result.false_merge_rate, 4),
        "expected_split": None if np.isnan(result.split_rate) else round(result.split_rate, 4),
        "configured_threshold": configured,
        "at_configured": {k: v and round(v, 4) for k, v in result.rates_at(configured).items()},
        "different_people": summary(result.different),
        "same_person": summary(result.same),
        "warnings": list(result.warnings),
        "tracklets": tracklets,
        "clip_len": clip_len,
        "stride": stride,
        "settings": dataclasses.asdict(cfg.calibrate),
        "model": str(cfg.reid.onnx_path or cfg.reid.checkpoint or "bundled"),
    }


def plot(result: Calibration, configured: float, path: Path) -> Path:
    """Both distributions as histograms, with the proposed and the configured threshold."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    bins = np.linspace(-0.2, 1.0, 61)
    for values, label, colour in (
        (result.different, "different people (same frame, one camera)", "tab:red"),
        (result.same, "same person (first vs last clip)", "tab:green"),
    ):
        if values.size:
            ax.hist(values, bins=bins, density=True, alpha=0.5, color=colour,
                    label=f"{label}: {values.size}")  # fmt: skip
    ax.axvline(result.threshold, color="black", label=f"proposed {result.threshold:.3f}")
    ax.axvline(configured, color="grey", linestyle="--", label=f"configured {configured:g}")
    ax.set_xlabel("cosine similarity of clip embeddings")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# ------------------------------------------------------------------- scoring against truth


def identity_errors(tracks_csv: Path, truth: Mapping[str, list[tuple]]) -> dict[str, int]:
    """False merges and splits of a recorded run's global ids against hand-checked identities.

    A tracklet is the person most of its boxes cover (`assign_identities`); tracklets the truth
    leaves undecided, and those without a global id, are left out.

    Returns:
        merged_ids: global ids holding two or more people; split_people: people over two or
        more global ids; extra_ids: global ids beyond one per person; global_ids; people.
    """
    from pipeline.demo.truth import assign_identities

    rows: dict[str, list[tuple]] = defaultdict(list)
    gid: dict[tuple[str, str], str] = {}
    with tracks_csv.open(newline="") as f:
        for r in csv.DictReader(f):
            box = (float(r["x1"]), float(r["y1"]), float(r["x2"]), float(r["y2"]))
            rows[r["camera"]].append((int(r["frame"]), r["tracklet_id"], *box))
            gid[r["camera"], r["tracklet_id"]] = r["global_id"]
    people_of: dict[str, set[int]] = defaultdict(set)
    ids_of: dict[int, set[str]] = defaultdict(set)
    for camera, camera_rows in rows.items():
        for tracklet, person in assign_identities(camera_rows, truth.get(camera, [])).items():
            g = gid[camera, tracklet]
            if person is not None and g:
                people_of[g].add(person)
                ids_of[person].add(g)
    return {
        "merged_ids": sum(len(p) > 1 for p in people_of.values()),
        "split_people": sum(len(g) > 1 for g in ids_of.values()),
        "extra_ids": sum(len(g) - 1 for g in ids_of.values()),
        "global_ids": len(people_of),
        "people": len(ids_of),
    }


def _score_thresholds(
    cfg: ReidstreamConfig, truth: Path, proposed: float, out_dir: Path
) -> list[dict[str, Any]]:
    """The job over the whole footage at the configured and the proposed threshold, scored."""
    from pipeline.demo.truth import read_identity_truth

    rows = read_identity_truth(truth)
    scored = []
    for threshold in dict.fromkeys((cfg.matcher.threshold, proposed)):
        run_dir = out_dir / f"threshold-{threshold:g}"
        matcher = dataclasses.replace(cfg.matcher, threshold=threshold)
        job_cfg = offline_config(dataclasses.replace(cfg, matcher=matcher), run_dir, record=True)
        summary = build_job(job_cfg).run()
        errors = identity_errors(run_dir / "tracks.csv", rows)
        scored.append({"threshold": threshold, "wall_s": round(summary.duration_s, 1), **errors})
        log.info("threshold %g: %s", threshold, errors)
    return scored
