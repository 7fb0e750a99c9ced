"""`reidstream adapt`: collect a site's tracklets with the streaming job, then adapt a temporal
ReID model to them (`trainers.adapt`).

    SITE.yaml ─ build_job (its cameras, detector, tracker, tracklet gates; links to a JSONL
      file only) ─ the tracklet stage's clips ─ TrackletCollector ─▶ OUT/tracklets/ (crops +
      index), the first adapt.duration_s of footage per camera
    OUT/tracklets ─ trainers.adapt.adapt(teacher = adapt.teacher or reid.onnx_path) ─▶
      OUT/model.pt, OUT/last.pt, OUT/report.json

Run again with the same --out, it resumes: a finished collection is kept, training continues
after its last finished epoch.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline.assemble import build_job, resolve_device
from pipeline.config import ConfigError
from pipeline.settings import ReidstreamConfig
from pipeline.stream.tracklets import TrackletUpdate
from pipeline.stream.types import Frame
from trainers.adapt import AdaptResult, StoredTracklet, TrackletStore, adapt

__all__ = ["TrackletCollector", "collect", "offline_config", "run_adapt", "truth_identities"]

log = logging.getLogger(__name__)


class TrackletCollector:
    """A `RunRecorder` that writes every clip's crops to a `TrackletStore`, for the first
    `duration_s` of each camera's footage; `stop` is called once every camera is past it."""

    def __init__(
        self,
        store: TrackletStore,
        duration_s: float,
        cameras: Sequence[str],
        stop: Callable[[], None],
    ) -> None:
        self.store, self.duration_s, self.stop = store, duration_s, stop
        self._first: dict[str, float] = {}
        self._past: set[str] = set()
        self._cameras = set(cameras)
        self.crops = 0

    def on_update(self, frame: Frame, update: TrackletUpdate) -> None:
        camera = frame.camera_id
        first = self._first.setdefault(camera, frame.timestamp)
        if frame.timestamp - first > self.duration_s:
            self._past.add(camera)
            if self._past >= self._cameras:
                self.stop()
            return
        for clip in update.clips:  # one caller: the tracklet stage's thread
            self.crops += self.store.add(
                tracklet_id=clip.tracklet_id,
                camera=clip.camera_id,
                track_id=clip.track_id,
                frames=clip.frame_indices,
                timestamps=clip.timestamps,
                boxes=clip.boxes,
                crops=clip.crops,
            )

    def on_links(self, links: Sequence[Any]) -> None:
        """Links are not needed: the collection only keeps crops."""

    def finish(self, out_dir: Path, camera_ids: Sequence[str]) -> tuple[dict[str, str], None]:
        return {"tracklets": str(self.store.root)}, None


def offline_config(
    cfg: ReidstreamConfig, out_dir: Path, *, record: bool = False
) -> ReidstreamConfig:
    """`cfg` for a job whose links only go to OUT_DIR/links.jsonl: no Kafka, no metrics server."""
    run = dataclasses.replace(cfg.run, out_dir=out_dir, record=record)
    output = dataclasses.replace(cfg.output, sinks=("jsonl",), jsonl_path=out_dir / "links.jsonl")
    metrics = dataclasses.replace(cfg.metrics, address="")
    return dataclasses.replace(cfg, run=run, output=output, metrics=metrics)


def collect(cfg: ReidstreamConfig, folder: Path) -> TrackletStore:
    """Runs the job on the site's cameras and stores the tracklets of its first
    `adapt.duration_s`; a finished folder is read instead (resuming).

    Raises:
        ConfigError: No cameras configured (adapting to the synthetic scene makes no sense).
    """
    if TrackletStore(folder).complete:
        log.info("using the tracklets already collected in %s", folder)
        return TrackletStore.open(folder)
    if not cfg.cameras:
        raise ConfigError("adapt needs the site's cameras: the configuration lists none")
    job_cfg = offline_config(cfg, folder.parent / "collect")
    if folder.exists():  # an interrupted collection: start it over
        log.warning("%s holds an unfinished collection: removing it", folder)
        shutil.rmtree(folder)
    store = TrackletStore(folder)
    cameras = [c.id for c in cfg.cameras]
    collector = TrackletCollector(store, cfg.adapt.duration_s, cameras, stop=lambda: None)
    job = build_job(job_cfg, recorder=collector)
    collector.stop = job.request_stop  # once every camera is past adapt.duration_s
    start = time.monotonic()
    summary = job.run()
    store.close(
        {
            "cameras": cameras,
            "duration_s": cfg.adapt.duration_s,
            "wall_s": round(time.monotonic() - start, 1),
            "stopped_by": summary.stopped_by,
            "tracklets": len(store),
            "crops": collector.crops,
            "detector": cfg.detector.name,
            "tracker": cfg.tracker.name,
        }
    )
    log.info("collected %d tracklets, %d crops in %s", len(store), collector.crops, folder)
    return store


def truth_identities(
    truth: Mapping[str, Sequence[tuple]], tracklets: Sequence[StoredTracklet]
) -> dict[str, int | None]:
    """Tracklet id -> person of hand-checked truth (camera -> rows frame, person, x1, y1, x2,
    y2), decided by the boxes of its crops (`pipeline.demo.truth.assign_identities`)."""
    from pipeline.demo.truth import assign_identities

    out: dict[str, int | None] = {}
    for camera in {t.camera for t in tracklets}:
        rows = [
            (frame, t.id, *box)
            for t in tracklets
            if t.camera == camera
            for frame, box in zip(t.frames, t.boxes, strict=True)
        ]
        out.update(assign_identities(rows, truth.get(camera, [])))
    return out


def run_adapt(cfg: ReidstreamConfig, out_dir: Path, *, progress: bool = True) -> AdaptResult:
    """Collects (or reuses) the tracklets, adapts the model, writes OUT/report.json.

    Raises:
        ConfigError: No teacher ONNX file (adapt.teacher or reid.onnx_path).
    """
    teacher = cfg.adapt.teacher or cfg.reid.onnx_path
    if teacher is None:
        raise ConfigError(
            "adapt.teacher: give the OSNet x0.25 ONNX file (or set reid.onnx_path to it)"
        )
    store = collect(cfg, out_dir / "tracklets")
    identities = None
    if cfg.adapt.truth is not None:
        from pipeline.demo.truth import read_identity_truth

        identities = truth_identities(read_identity_truth(cfg.adapt.truth), list(store))
    device = resolve_device(cfg.device)
    result = adapt(
        cfg.adapt,
        store,
        out_dir,
        teacher_path=teacher,
        device=device,
        identities=identities,
        progress=progress,
    )
    report = {"teacher": str(teacher), "device": device, **result.report}
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return result
