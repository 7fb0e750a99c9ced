"""The streaming job: builds the stages from the configuration, runs them, shuts them down.

    Job.build(cfg, role="all")     sources > detect > track > tracklets > embed > match > publish
    Job.build(cfg, role="worker")  sources > detect > track > tracklets > embed --------> publish
    job.run()   starts the sinks, the stages, the sources and the /metrics + /healthz server;
                returns when every source has ended and every queue has drained, or after
                `request_stop()` (SIGINT/SIGTERM) or run.max_duration_s:
                  sources stop ─▶ the frames already read go through ─▶ the publisher delivers
                  what it holds (run.shutdown_timeout_s at most; the rest stays in the spool)

Constructors get explicit arguments; only this module reads the configuration tree.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from deploy.engines import Engine, create_engine
from detectors import CameraTrackers, Detector, create_detector, create_tracker
from pipeline.config import ConfigError, dump_config
from pipeline.matcher import Matcher, Transition
from pipeline.metrics import METRICS, PipelineMetrics
from pipeline.queues import FrameBuffer, StageQueue
from pipeline.recording import Recorder
from pipeline.server import MetricsServer
from pipeline.settings import BUNDLED_REID_CHECKPOINT, ReidstreamConfig
from pipeline.sinks import JsonlSink, KafkaSink, Publisher, Sink
from pipeline.sources import OpenCVCamera, Source, SyntheticSceneSource
from pipeline.spool import Spool
from pipeline.stages import (
    DetectStage,
    EmbedStage,
    MatchStage,
    PublishStage,
    Stage,
    TrackletStage,
    TrackStage,
)
from pipeline.tracklets import TrackletBuilder

__all__ = [
    "Job",
    "RunSummary",
    "build_detector",
    "build_engine",
    "build_matcher",
    "build_publisher",
    "build_sources",
    "camera_ids",
    "clip_geometry",
    "resolve_device",
    "serve_metrics",
]

log = logging.getLogger(__name__)

Role = Literal["all", "worker"]


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; anything else as it is."""
    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def model_label(cfg: ReidstreamConfig) -> str:
    """The name clip embeddings carry: the model and the weights file, so that embeddings of two
    different trainings of one architecture are never compared."""
    reid = cfg.reid
    if reid.uses_bundled_model:
        return f"bundled:{BUNDLED_REID_CHECKPOINT.stem}"
    weights = reid.onnx_path if reid.onnx_path is not None else reid.checkpoint
    parts = [reid.model or reid.engine, weights.name if weights is not None else "untrained"]
    return ":".join(parts)


def build_matcher(cfg: ReidstreamConfig) -> Matcher:
    m = cfg.matcher
    transitions = []
    for t in m.transitions:
        transitions.append(Transition(t.source, t.target, t.min_s, t.max_s))
        if t.both_ways:
            transitions.append(Transition(t.target, t.source, t.min_s, t.max_s))
    try:
        return Matcher(
            threshold=m.threshold,
            switch_margin=m.switch_margin,
            ttl_s=m.ttl_s,
            max_identities=m.max_identities,
            overlapping_cameras=m.overlapping_cameras,
            transitions=transitions,
            index=m.index,
            nprobe=m.nprobe,
            silent_tracklet_s=m.silent_tracklet_s,
        )
    except ImportError as e:  # index = 'faiss' without FAISS installed
        raise ConfigError(f"matcher.index = {m.index!r}: {e}") from e


def serve_metrics(address: str, metrics: PipelineMetrics, health: Callable) -> MetricsServer:
    """The /metrics and /healthz endpoint, bound (not yet serving).

    Raises:
        ConfigError: Nothing can listen on `address` (in use, or not an address of this host).
    """
    try:
        return MetricsServer(address, metrics.registry, health)
    except OSError as e:
        raise ConfigError(
            f"metrics.address = {address!r}: cannot listen there ({e.strerror or e}); give "
            f"another host:port, port 0 for any free one, or an empty value for no server"
        ) from e


def build_publisher(cfg: ReidstreamConfig, metrics: PipelineMetrics) -> Publisher:
    """The configured sinks (Kafka's sender not started yet)."""
    out, sinks = cfg.output, []
    sink: Sink
    for name in out.sinks:
        if name == "kafka":
            spool = Spool(
                out.spool_dir or cfg.run.out_dir / "spool",
                max_bytes=int(out.spool_max_mb * 2**20),
            )
            sink = KafkaSink(
                cfg.kafka.client_options(),
                {
                    "link": cfg.kafka.links_topic,
                    "embedding": cfg.kafka.embeddings_topic,
                    "closed": cfg.kafka.embeddings_topic,
                },
                spool,
                metrics,
                linger_ms=cfg.kafka.linger_ms,
                send_timeout_s=cfg.kafka.request_timeout_ms / 1000,
            )
        else:
            path = out.jsonl_path or cfg.run.out_dir / "links.jsonl"
            sink = JsonlSink(path, metrics, observe_latency="kafka" not in out.sinks)
        sinks.append(sink)
    return Publisher(sinks)


@dataclass
class RunSummary:
    """What a run did (printed at the end, written to summary.json)."""

    role: str
    duration_s: float
    stopped_by: str
    cameras: dict[str, dict[str, Any]]
    stages: dict[str, int]
    sinks: dict[str, dict[str, Any]]
    identities: int | None = None
    clip_len: int = 0
    stride: int = 0
    model: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    score: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Job:
    """One process of the pipeline; build it with `Job.build`."""

    def __init__(
        self,
        *,
        cfg: ReidstreamConfig,
        role: Role,
        metrics: PipelineMetrics,
        sources: list[Source],
        buffer: FrameBuffer,
        stages: list[Stage],
        publisher: Publisher,
        matcher: Matcher | None,
        recorder: Recorder | None,
        clip_geometry: tuple[int, int],
        model: str,
    ) -> None:
        self.cfg, self.role, self.metrics = cfg, role, metrics
        self.sources, self.buffer, self.stages = sources, buffer, stages
        self.publisher, self.matcher, self.recorder = publisher, matcher, recorder
        self.clip_len, self.stride = clip_geometry
        self.model = model
        self.server: MetricsServer | None = None
        self._stop = threading.Event()
        self._started = False
        self._finished = False

    # ------------------------------------------------------------------------------ building

    @classmethod
    def build(
        cls,
        cfg: ReidstreamConfig,
        *,
        role: Role = "all",
        metrics: PipelineMetrics | None = None,
        engine: Engine | None = None,
        detector: Detector | None = None,
        model_name: str | None = None,
    ) -> Job:
        """Builds every part of the job from `cfg` (loads the models; starts nothing).

        Args:
            cfg: The resolved configuration.
            role: "all" (links out) or "worker" (clip embeddings out, for `reidstream matcher`).
            metrics: Where to count (default: the process's `METRICS`, served on /metrics).
            engine: A ReID engine to use instead of building the configured one.
            detector: A detector to use instead of building the configured one.
            model_name: The name its embeddings carry (default: from the configuration).

        Raises:
            ConfigError: The configuration lacks what this job needs.
        """
        metrics = metrics or METRICS
        stop = threading.Event()
        device = resolve_device(cfg.device)
        depth = metrics.queue_depth
        capacity = metrics.queue_capacity

        def queue(stage: str, size: int) -> StageQueue:
            capacity.labels(stage=stage).set(size)
            return StageQueue(stage, size, on_depth=depth.labels(stage=stage).set)

        # The cheap checks first (the scene, the cameras), then the models.
        buffer = FrameBuffer(cfg.sources.buffer_frames, on_depth=depth.labels(stage="detect").set)
        sources = build_sources(cfg, buffer, metrics, stop)
        engine = engine or build_engine(cfg, device)
        clip_len, stride, min_frames = clip_geometry(cfg, engine)
        detector = detector or build_detector(cfg, device)
        for source in sources:
            source.register()
        capacity.labels(stage="detect").set(cfg.sources.buffer_frames * len(camera_ids(cfg)))
        trackers = CameraTrackers(
            functools.partial(
                create_tracker, cfg.tracker.name, **cfg.tracker.options(device=device)
            )
        )
        crop_size = cfg.tracklets.crop_size or tuple(engine.cfg.input_size[1:])
        t = cfg.tracklets
        builder = TrackletBuilder(
            clip_len=clip_len,
            stride=stride,
            min_frames=min_frames,
            crop_size=crop_size,
            min_height=t.min_height,
            min_width=t.min_width,
            min_confidence=t.min_confidence,
            border_margin=t.border_margin,
            lost_after_s=t.lost_after_s,
        )
        recorder = Recorder() if cfg.run.record else None
        publisher = build_publisher(cfg, metrics)
        matcher = build_matcher(cfg) if role == "all" else None
        q_track, q_tracklets = queue("track", 64), queue("tracklets", 64)
        q_embed = queue("embed", 2 * engine.max_batch)
        q_publish = queue("publish", 4096)
        q_after_embed = q_publish
        stages: list[Stage] = [
            DetectStage(
                detector,
                buffer,
                q_track,
                metrics,
                max_batch=cfg.detect.batch_for(device),
                max_wait_s=cfg.detect.max_wait_ms / 1000,
            ),
            TrackStage(trackers, q_track, q_tracklets, metrics, lost_after_s=t.lost_after_s),
            TrackletStage(
                builder,
                q_tracklets,
                q_embed,
                metrics,
                on_update=recorder.on_update if recorder else None,
            ),
        ]
        label = model_name or model_label(cfg)
        if matcher is not None:
            q_after_embed = queue("match", 1024)
        stages.append(
            EmbedStage(
                engine,
                q_embed,
                q_after_embed,
                metrics,
                model=label,
                max_wait_s=cfg.embed.max_wait_ms / 1000,
            )
        )
        if matcher is not None:
            stages.append(
                MatchStage(
                    matcher,
                    q_after_embed,
                    q_publish,
                    metrics,
                    on_links=recorder.on_links if recorder else None,
                )
            )
        stages.append(PublishStage(publisher.publish, q_publish, metrics))
        metrics.build.info(
            {
                "version": _version(),
                "engine": engine.name,
                "model": label,
                "precision": engine.precision,
                "role": role,
            }
        )
        job = cls(
            cfg=cfg,
            role=role,
            metrics=metrics,
            sources=sources,
            buffer=buffer,
            stages=stages,
            publisher=publisher,
            matcher=matcher,
            recorder=recorder,
            clip_geometry=(clip_len, stride),
            model=label,
        )
        if cfg.metrics.address:
            job.server = serve_metrics(cfg.metrics.address, metrics, job.health)
        return job

    # ------------------------------------------------------------------------------- running

    def request_stop(self) -> None:
        """Stops reading the cameras; what was read is still processed and published."""
        if not self._stop.is_set():
            log.info("stopping: the sources stop, the queues drain")
        self._stop.set()
        self.buffer.close()

    def run(self, *, on_started: Callable[[Job], None] | None = None) -> RunSummary:
        """Runs until the sources end or `request_stop`; then drains and delivers."""
        cfg = self.cfg
        out_dir = cfg.run.out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
        start = time.monotonic()
        self.publisher.start()
        for stage in reversed(self.stages):
            stage.start()
        if self.server is not None:
            self.server.start()
        for source in self.sources:
            source.start()
        self._started = True
        log.info(
            "%s job running: %d cameras, model %s, clips of %d frames every %d",
            self.role,
            len(camera_ids(cfg)),
            self.model,
            self.clip_len,
            self.stride,
        )
        if on_started is not None:
            on_started(self)
        stopped_by = self._wait(start)
        self.request_stop()
        for source in self.sources:
            source.join(5.0)
        deadline = time.monotonic() + cfg.run.shutdown_timeout_s
        self.stages[-1].join(max(deadline - time.monotonic(), 0.0))
        if self.stages[-1].alive:
            waiting = {s.name: len(s.inbox) for s in self.stages if len(s.inbox)}
            log.error(
                "the stages did not drain within %.0f s (run.shutdown_timeout_s); exiting with "
                "these items still waiting, which are lost: %s",
                cfg.run.shutdown_timeout_s,
                waiting,
            )
        self.publisher.close(max(deadline - time.monotonic(), 1.0))
        self._finished = True
        if self.server is not None:
            self.server.close()
        for stage in self.stages:
            if not stage.alive:
                stage.close()
        return self._summary(time.monotonic() - start, stopped_by)

    def _wait(self, start: float) -> str:
        limit = self.cfg.run.max_duration_s
        last = self.stages[-1]
        while last.alive:
            if self._stop.wait(0.2):
                return "stop requested"
            if limit is not None and time.monotonic() - start >= limit:
                log.info("run.max_duration_s = %.0f s reached", limit)
                return "max_duration_s"
        return "end of the sources"

    # ------------------------------------------------------------------------------ reporting

    def health(self) -> dict[str, Any]:
        """The /healthz report (see `pipeline.server`)."""
        cameras = [s.as_dict() for source in self.sources for s in source.states]
        stages = {
            s.name: {"alive": s.alive, "processed": s.items, "waiting": len(s.inbox)}
            for s in self.stages
        }
        sinks = self.publisher.state()
        dead = [n for n, s in stages.items() if not s["alive"]] if not self._finished else []
        up = [c for c in cameras if c["status"] in ("connected", "ended")]
        kafka = sinks.get("kafka", {})
        if self._started and (dead or not up):
            status = "failing"
        elif len(up) < len(cameras) or (kafka.get("connected") is False and kafka.get("spooled")):
            status = "degraded"
        else:
            status = "ok"
        report = {
            "status": status,
            "role": self.role,
            "model": self.model,
            "cameras": cameras,
            "stages": stages,
            "sinks": sinks,
        }
        if self.matcher is not None:
            report["identities"] = self.matcher.identities
        return report

    def _summary(self, duration: float, stopped_by: str) -> RunSummary:
        summary = RunSummary(
            role=self.role,
            duration_s=round(duration, 3),
            stopped_by=stopped_by,
            cameras={s.camera_id: s.as_dict() for src in self.sources for s in src.states},
            stages={s.name: s.items for s in self.stages},
            sinks=self.publisher.state(),
            identities=None if self.matcher is None else self.matcher.identities,
            clip_len=self.clip_len,
            stride=self.stride,
            model=self.model,
        )
        out_dir = self.cfg.run.out_dir
        for sink in self.publisher.sinks:
            if isinstance(sink, JsonlSink):
                summary.outputs["links"] = str(sink.path)
        if self.recorder is not None:
            self._record(summary, out_dir)
        path = out_dir / "summary.json"
        path.write_text(json.dumps(summary.as_dict(), indent=1, default=str) + "\n")
        summary.outputs["summary"] = str(path)
        return summary

    def _record(self, summary: RunSummary, out_dir: Path) -> None:
        from pipeline.evaluation import mtmc_identity_score

        recorder = self.recorder
        assert recorder is not None
        summary.outputs["tracks"] = str(recorder.write_tracks(out_dir / "tracks.csv"))
        mosaic = recorder.write_mosaic(out_dir / "mosaic.png", camera_ids(self.cfg))
        if mosaic is not None:
            summary.outputs["mosaic"] = str(mosaic)
        truth = self.ground_truth()
        if truth is not None:
            score = mtmc_identity_score(truth, recorder.track_rows(), recorder.global_ids)
            summary.score = score.as_dict()

    def ground_truth(self) -> dict[str, list] | None:
        """The synthetic scene's ground truth, people below synthetic.min_visible left out
        (the scene's detections leave them out too); None for real cameras."""
        scenes = [s for s in self.sources if isinstance(s, SyntheticSceneSource)]
        if not scenes:
            return None
        floor = self.cfg.synthetic.min_visible
        return {
            camera: [row[:6] for row in rows if row[6] >= floor]
            for camera, rows in scenes[0].ground_truth.items()
        }


# ---------------------------------------------------------------------------------- parts


def _version() -> str:
    from importlib.metadata import version

    return version("reidstream")


def camera_ids(cfg: ReidstreamConfig) -> tuple[str, ...]:
    return tuple(c.id for c in cfg.cameras) if cfg.cameras else cfg.synthetic_camera_ids


def build_sources(
    cfg: ReidstreamConfig, buffer: FrameBuffer, metrics: PipelineMetrics, stop: threading.Event
) -> list[Source]:
    if not cfg.cameras:
        try:
            scene = SyntheticSceneSource(
                cfg.synthetic, cfg.synthetic_camera_ids, buffer, metrics, stop
            )
        except ValueError as e:  # the scene's own checks (e.g. too short for its walkers)
            raise ConfigError(f"synthetic: {e}") from e
        return [scene]
    return [OpenCVCamera(c, cfg.sources, buffer, metrics, stop) for c in cfg.cameras]


def build_detector(cfg: ReidstreamConfig, device: str) -> Detector | None:
    """The configured detector, or None where every frame brings its own detections."""
    if not cfg.cameras and cfg.synthetic.detections == "truth":
        return None
    if problems := cfg.detector.missing():
        raise ConfigError("\n".join(problems))
    return create_detector(cfg.detector.name, **cfg.detector.options(device=device))


def build_engine(cfg: ReidstreamConfig, device: str) -> Engine:
    if problems := cfg.reid.missing():
        raise ConfigError("\n".join(problems))
    if cfg.reid.uses_bundled_model:
        log.warning(
            "reid: no model configured; using the bundled model %s, trained on the "
            "synthetic people only (set reid.model/checkpoint or reid.onnx_path for real "
            "footage)",
            BUNDLED_REID_CHECKPOINT.name,
        )
    return create_engine(cfg.reid.engine, **cfg.reid.options(device=device))


def clip_geometry(cfg: ReidstreamConfig, engine: Engine) -> tuple[int, int, int]:
    """(clip_len, stride, min_frames): configured, else the model's test protocol."""
    t = cfg.tracklets
    clip_len = t.clip_len or engine.clip_len or engine.cfg.test_clip_len
    if engine.clip_len is not None and clip_len != engine.clip_len:
        raise ConfigError(
            f"tracklets.clip_len = {clip_len}: this {engine.name} engine's graph takes clips of "
            f"exactly {engine.clip_len} frames (export it again with another length, or leave "
            f"tracklets.clip_len unset)"
        )
    if clip_len < engine.min_clip_len:
        raise ConfigError(
            f"tracklets.clip_len = {clip_len}: the model needs at least {engine.min_clip_len}"
        )
    stride = t.stride or min(engine.cfg.test_stride, clip_len)
    min_frames = min(t.min_frames or max(1, clip_len // 2), clip_len)
    return clip_len, stride, min_frames
