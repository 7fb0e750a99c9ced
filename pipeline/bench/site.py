"""`reidstream bench site`: the job on a site's recordings with hand-checked identities, with the
configured ReID model and with adapted checkpoints, scored side by side.

    reidstream bench site --config SITE.yaml --truth DIR [--start-s S] [--checkpoint CKPT ...]
        [--out DIR] [KEY=VALUE ...]

    each camera file, from S seconds on ─ written out losslessly (FFV1) ─▶ OUT/footage/
    truth rows of those frames, renumbered from 0 ─▶ the scored truth
    for each system (the configuration as given; then reid.engine=torch reid.checkpoint=CKPT):
        the job over OUT/footage, recorded ─▶ cross-camera IDF1 / IDP / IDR of its global ids
        (`pipeline.demo.evaluation`), links, global ids
    the tracklets the first system's job cut (the same detector and tracker for all), each with
    the person its boxes cover (`pipeline.demo.truth.assign_identities`), embedded by every
    system's model ─▶ cross-camera pair mAP and rank-1 (`trainers.adapt.evaluate`)

The configured model, when it is the OSNet ONNX file (reid.engine=external-onnx), is embedded
for the pair scores by `c2d_osnet_x0_25` loaded from that file: the same network in torch
(cosine >= 0.9999 to ONNX Runtime, tested).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2

from deploy.engines.torch_engine import load_model
from detectors.video import VideoReader
from pipeline.adapt import TrackletCollector, offline_config, truth_identities
from pipeline.assemble import build_job, resolve_device
from pipeline.config import ConfigError, load_config
from pipeline.demo.recording import Recorder
from pipeline.demo.truth import read_identity_truth
from pipeline.settings import ReidstreamConfig
from pipeline.stream.tracklets import TrackletUpdate
from pipeline.stream.types import Frame
from reid_models import ReIDModel, create_model
from trainers.adapt.evaluate import cross_camera_retrieval, embed_tracklets
from trainers.adapt.store import TrackletStore

__all__ = ["run"]

Truth = dict[str, list[tuple]]


def run(
    *,
    config: Path,
    overrides: Sequence[str],
    truth: Path,
    start_s: float,
    checkpoints: Sequence[Path],
    out: Path,
    command: str,
) -> dict[str, Any]:
    """Scores every system; prints a Markdown table and writes OUT/report.json.

    Raises:
        ConfigError: No cameras, or a camera that is not a file.
    """
    cfg = load_config(ReidstreamConfig, path=config, overrides=list(overrides))
    if not cfg.cameras:
        raise ConfigError("bench site needs the site's cameras (files) in the configuration")
    footage, scored = _trim(cfg, read_identity_truth(truth), start_s, out / "footage")
    systems = {_label(cfg): footage}
    for ckpt in checkpoints:
        reid = dataclasses.replace(
            cfg.reid, engine="torch", model=None, checkpoint=ckpt, onnx_path=None
        )
        systems[f"adapted:{ckpt}"] = dataclasses.replace(footage, reid=reid)
    rows, store = [], None
    for i, (name, system) in enumerate(systems.items()):
        row, collected = _run_job(system, scored, out / f"system{i}")
        store = store or collected
        rows.append({"system": name, **row})
    assert store is not None
    identities = truth_identities(scored, list(store))
    for row, system in zip(rows, systems.values(), strict=True):
        row["pairs"] = _pair_scores(_torch_model(system), store, identities, system.device)
    report = {"command": command, "start_s": start_s, "truth": str(truth), "systems": rows}
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(markdown(rows))
    return report


def _label(cfg: ReidstreamConfig) -> str:
    weights = cfg.reid.onnx_path or cfg.reid.checkpoint
    return f"{cfg.reid.model or cfg.reid.engine}:{weights.name if weights else 'bundled'}"


def _trim(
    cfg: ReidstreamConfig, truth: Mapping[str, list[tuple]], start_s: float, folder: Path
) -> tuple[ReidstreamConfig, Truth]:
    """Each camera's file from `start_s` on, written losslessly, and its truth renumbered."""
    folder.mkdir(parents=True, exist_ok=True)
    cameras, scored = [], {}
    for camera in cfg.cameras:
        reader = VideoReader(camera.uri)
        first = math.ceil(start_s * reader.info.fps) if start_s > 0 else 0
        path = folder / f"{camera.id}.avi"
        size = (reader.info.width, reader.info.height)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), reader.info.fps, size)
        if not writer.isOpened():
            raise ConfigError(f"cannot write {path}: OpenCV lacks the FFV1 encoder")
        for index, frame in enumerate(reader):
            if index >= first:
                writer.write(frame)
        writer.release()
        reader.close()
        cameras.append(dataclasses.replace(camera, uri=str(path)))
        scored[camera.id] = [
            (r[0] - first, *r[1:]) for r in truth.get(camera.id, []) if r[0] >= first
        ]
    return dataclasses.replace(cfg, cameras=tuple(cameras)), scored


class _RecordAndCollect:
    """The run's `Recorder` (boxes, links, IDF1) and a `TrackletCollector` (crops) at once."""

    def __init__(self, recorder: Recorder, collector: TrackletCollector) -> None:
        self.recorder, self.collector = recorder, collector

    def on_update(self, frame: Frame, update: TrackletUpdate) -> None:
        self.recorder.on_update(frame, update)
        self.collector.on_update(frame, update)

    def on_links(self, links: Sequence[Any]) -> None:
        self.recorder.on_links(links)

    def finish(self, out_dir: Path, camera_ids: Sequence[str]) -> tuple[dict, dict | None]:
        return self.recorder.finish(out_dir, camera_ids)


def _run_job(cfg: ReidstreamConfig, truth: Truth, out: Path) -> tuple[dict, TrackletStore]:
    job_cfg = offline_config(cfg, out, record=True)
    out.mkdir(parents=True, exist_ok=True)
    store = TrackletStore(out / "tracklets")
    collector = TrackletCollector(store, math.inf, [c.id for c in cfg.cameras], stop=lambda: None)
    job = build_job(job_cfg, recorder=_RecordAndCollect(Recorder(truth=lambda: truth), collector))
    summary = job.run()
    store.close({"cameras": [c.id for c in cfg.cameras]})
    score = summary.score or {}
    row = {
        "idf1": score.get("idf1"),
        "idp": score.get("idp"),
        "idr": score.get("idr"),
        "global_ids": summary.identities,
        "wall_s": round(summary.duration_s, 1),
    }
    return row, TrackletStore.open(out / "tracklets")


def _torch_model(cfg: ReidstreamConfig) -> ReIDModel:
    """The system's network in torch: its checkpoint, or OSNet from the external ONNX file."""
    if cfg.reid.engine == "external-onnx" and cfg.reid.onnx_path is not None:
        return create_model("c2d_osnet_x0_25", pretrained=cfg.reid.onnx_path).eval()
    return load_model(cfg.reid.model, checkpoint=cfg.reid.checkpoint)


def _pair_scores(
    model: ReIDModel, store: TrackletStore, identities: Mapping[str, int | None], device: str
) -> dict[str, float]:
    tracklets = list(store)
    device = resolve_device(device)
    emb = embed_tracklets(
        model.to(device),
        store,
        tracklets,
        clip_len=model.pretrained_cfg.test_clip_len,
        device=device,
    )
    return cross_camera_retrieval(
        emb, [identities.get(t.id) for t in tracklets], [t.camera for t in tracklets]
    )


def markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The systems as a Markdown table."""

    def pct(v: float | None) -> str:
        return "-" if v is None or v != v else f"{100 * v:.1f}"

    lines = [
        "| system | pair mAP | rank-1 | queries | IDF1 (IDP / IDR) | global ids |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        p = r["pairs"]
        lines.append(
            f"| {r['system']} | {pct(p['map'])} | {pct(p['rank1'])} | {p['queries']} | "
            f"{pct(r['idf1'])} ({pct(r['idp'])} / {pct(r['idr'])}) | {r['global_ids']} |"
        )
    return "\n".join(lines)
