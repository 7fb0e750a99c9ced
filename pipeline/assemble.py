"""Builds the streaming job and the matcher service from the root configuration.

    build_job(cfg, role="all")      sources > detect > track > tracklets > embed > match > publish
    build_job(cfg, role="worker")   sources > detect > track > tracklets > embed --------> publish
    build_matcher_service(cfg)      tracklet embeddings on Kafka > match > publish

      build_sources     the configured cameras, or the synthetic scene when there are none
      build_engine      the ReID engine (the bundled model when nothing names one)
      clip_geometry     clip length and stride: configured, else the model's test protocol
      build_detector    the detector, or none where the frames bring their own boxes
      build_tracklets   the tracklet builder with its quality gates
      build_stages      the stages and the queues between them
      build_matcher     the matcher with its camera constraints
      build_publisher   the sinks (Kafka with its spool, JSONL)

This is the only module that reads the whole configuration tree: every part's constructor gets
explicit arguments. The cheap checks (the scene, the cameras) come before the models load, so a
mistyped camera fails in a second rather than after a model has loaded.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import torch

from deploy.engines import Engine, create_engine
from detectors import CameraTrackers, Detector, create_detector, create_tracker
from pipeline.config import ConfigError, dump_config
from pipeline.demo.recording import GroundTruth, Recorder
from pipeline.demo.scene import SyntheticSceneSource
from pipeline.matching.changelog import GalleryChangelog
from pipeline.matching.decisions import (
    DECISIONS_FILE,
    REFUSAL_REASONS,
    Decision,
    DecisionLog,
    count_refusals,
)
from pipeline.matching.matcher import Matcher, Transition
from pipeline.matching.plausibility import Plausibility
from pipeline.matching.service import MatcherService
from pipeline.messages.sinks import JsonlSink, KafkaSink, Publisher, Sink
from pipeline.messages.spool import Spool
from pipeline.monitoring.metrics import METRICS, PipelineMetrics
from pipeline.monitoring.server import serve_metrics
from pipeline.settings import ReidstreamConfig
from pipeline.stream.job import Job, Role, RunLimits, RunRecorder
from pipeline.stream.queues import FrameBuffer, StageQueue
from pipeline.stream.settings import shared_clocks
from pipeline.stream.sources import OpenCVCamera, Source
from pipeline.stream.stages import (
    DetectStage,
    EmbedStage,
    MatchStage,
    PublishStage,
    Stage,
    TrackletStage,
    TrackStage,
)
from pipeline.stream.tracklets import TrackletBuilder

__all__ = [
    "BUNDLED_REID_CHECKPOINT",
    "build_detector",
    "build_engine",
    "build_job",
    "build_matcher",
    "build_matcher_service",
    "build_publisher",
    "build_sources",
    "build_stages",
    "build_tracklets",
    "camera_ids",
    "clip_geometry",
    "crop_size",
    "model_label",
    "resolve_device",
]

log = logging.getLogger(__name__)

#: The ReID model `reidstream train --config trainers/configs/synthetic_demo.yaml` trains on the
#: synthetic people, shipped with the package: the default when no model is configured.
BUNDLED_REID_CHECKPOINT = Path(__file__).parent / "assets" / "synthetic_reid.pt"


def build_job(
    cfg: ReidstreamConfig,
    *,
    role: Role = "all",
    metrics: PipelineMetrics | None = None,
    engine: Engine | None = None,
    detector: Detector | None = None,
    model_name: str | None = None,
    recorder: RunRecorder | None = None,
) -> Job:
    """Builds every part of the job from `cfg` (loads the models; starts nothing).

    Args:
        cfg: The resolved configuration.
        role: "all" (links out) or "worker" (clip embeddings out, for `reidstream matcher`).
        metrics: Where to count (default: the process's `METRICS`, served on /metrics).
        engine: A ReID engine to use instead of building the configured one.
        detector: A detector to use instead of building the configured one.
        model_name: The name its embeddings carry (default: from the configuration).
        recorder: What the tracklet and match stages report to, instead of the one
            ``run.record`` asks for (`reidstream adapt` collects crops this way).

    Raises:
        ConfigError: The configuration lacks what this job needs.
    """
    metrics = metrics or METRICS
    device = resolve_device(cfg.device)
    buffer = FrameBuffer(
        cfg.sources.buffer_frames, on_depth=metrics.queue_depth.labels(stage="detect").set
    )
    # The cheap checks (the scene, the cameras) before the models load.
    sources = build_sources(cfg, buffer, metrics, threading.Event())
    parts = _build_parts(cfg, role, device, sources, metrics, engine, detector, model_name)
    if recorder is not None:
        parts = dataclasses.replace(parts, recorder=recorder)
    for source in sources:
        source.register()
    metrics.queue_capacity.labels(stage="detect").set(
        cfg.sources.buffer_frames * len(camera_ids(cfg))
    )
    _report_build(metrics, parts, role)
    job = Job(
        role=role,
        metrics=metrics,
        sources=sources,
        buffer=buffer,
        stages=build_stages(cfg, device, buffer, parts, metrics),
        publisher=parts.publisher,
        matcher=parts.matcher,
        recorder=parts.recorder,
        camera_ids=camera_ids(cfg),
        clip_geometry=(parts.tracklets.clip_len, parts.tracklets.stride),
        model=parts.model,
        limits=RunLimits(cfg.run.out_dir, cfg.run.max_duration_s, cfg.run.shutdown_timeout_s),
        config_yaml=dump_config(cfg),
    )
    if cfg.metrics.address:
        job.server = serve_metrics(cfg.metrics.address, metrics, job.health, job.alive)
    return job


def _report_build(metrics: PipelineMetrics, parts: _StageParts, role: Role) -> None:
    """reidstream_build_info: what this process runs."""
    metrics.build.info(
        {
            "version": version("reidstream"),
            "engine": parts.engine.name,
            "model": parts.model,
            "precision": parts.engine.precision,
            "role": role,
        }
    )


def build_matcher_service(cfg: ReidstreamConfig, publisher: Publisher) -> MatcherService:
    """`reidstream matcher`: the workers' embeddings from Kafka, matched, published by
    `publisher` (which the caller starts and closes); its gallery kept in the changelog topic
    unless `matcher.changelog` is off."""
    changelog = None
    if cfg.matcher.changelog:
        topic = cfg.matcher.changelog_topic or f"{cfg.kafka.group_id}-gallery-changelog"
        changelog = GalleryChangelog(cfg.kafka.client_options(), topic)
    m = cfg.matcher
    plausibility = Plausibility(
        m.model or model_label(cfg),
        m.embedding_dim,
        max_ahead_s=m.max_ahead_s,
        max_behind_s=m.max_behind_s,
        norm_tolerance=m.norm_tolerance,
    )
    return MatcherService(
        cfg.kafka.client_options(),
        cfg.kafka.embeddings_topic,
        cfg.kafka.group_id,
        build_matcher(cfg, METRICS),
        publisher,
        METRICS,
        plausibility=plausibility,
        dead_letter_topic=cfg.kafka.dead_letter_topic,
        max_poll_interval_ms=cfg.kafka.max_poll_interval_ms,
        changelog=changelog,
    )


# ------------------------------------------------------------------------------------ devices


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; anything else as it is."""
    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def camera_ids(cfg: ReidstreamConfig) -> tuple[str, ...]:
    """The cameras this process reads: the configured ones, else the synthetic scene's."""
    return tuple(c.id for c in cfg.active_cameras) if cfg.cameras else cfg.synthetic_camera_ids


# ------------------------------------------------------------------------------------ sources


def build_sources(
    cfg: ReidstreamConfig, buffer: FrameBuffer, metrics: PipelineMetrics, stop: threading.Event
) -> list[Source]:
    """One OpenCV source per configured camera; with none, the synthetic scene.

    Raises:
        ConfigError: The scene's own checks failed (e.g. too short for its walkers).
    """
    if not cfg.cameras:
        try:
            scene = SyntheticSceneSource(
                cfg.synthetic, cfg.synthetic_camera_ids, buffer, metrics, stop
            )
        except ValueError as e:
            raise ConfigError(f"synthetic: {e}") from e
        return [scene]
    warn_shared_clocks(cfg)
    return [OpenCVCamera(c, cfg.sources, buffer, metrics, stop) for c in cfg.active_cameras]


def warn_shared_clocks(cfg: ReidstreamConfig) -> list[list[str]]:
    """Warns about file cameras replayed on one clock whose views are not said to overlap (one
    person on two of them would be 'in two places at once' and get two global ids); returns
    those groups."""
    groups = shared_clocks(cfg.cameras, cfg.matcher.overlapping_cameras)
    for group in groups:
        log.warning(
            "cameras %s: recordings replayed on one clock (no start_time or clock_offset_s "
            "sets them apart), and matcher.overlapping_cameras does not list them together: "
            "the matcher never puts one person in two places at once, so whoever appears on "
            "them at the same replay time gets separate global ids. Set each camera's "
            "start_time (or clock_offset_s) to when its recording began, or list them in "
            "matcher.overlapping_cameras if their views overlap",
            ", ".join(group),
        )
    return groups


def _scene_truth(sources: list[Source]) -> GroundTruth | None:
    """The synthetic scene's ground truth, to score a recorded run; None for real cameras."""
    scenes = [s for s in sources if isinstance(s, SyntheticSceneSource)]
    return scenes[0].truth if scenes else None


# ------------------------------------------------------------------------------------- models


def build_detector(cfg: ReidstreamConfig, device: str) -> Detector | None:
    """The configured detector, or None where every frame brings its own detections."""
    if not cfg.cameras and cfg.synthetic.detections == "truth":
        return None
    if problems := cfg.detector.missing():
        raise ConfigError("\n".join(problems))
    return create_detector(cfg.detector.name, **cfg.detector.options(device=device))


def build_camera_detectors(
    cfg: ReidstreamConfig, device: str, default: Detector | None
) -> dict[str, Detector]:
    """The detectors of cameras with their own `detector_input_size` (one per size, shared);
    cameras at the default size use `default` and are not listed."""
    sizes = {
        c.id: c.detector_input_size
        for c in cfg.active_cameras
        if c.detector_input_size not in (None, cfg.detector.input_size)
    }
    if not sizes or default is None:
        return {}
    by_size: dict[int, Detector] = {}
    for size in sorted(set(sizes.values())):
        options = cfg.detector.options(device=device) | {"input_size": size}
        by_size[size] = create_detector(cfg.detector.name, **options)
    return {camera: by_size[size] for camera, size in sizes.items()}


def build_trackers(cfg: ReidstreamConfig, device: str) -> CameraTrackers:
    """One tracker per camera, each made on the camera's first frame. One with an appearance
    model is made once here too, so that a model file that cannot be loaded stops the start with
    its error instead of failing every frame."""
    options = cfg.tracker.options(device=device)
    factory = functools.partial(create_tracker, cfg.tracker.name, **options)
    if cfg.tracker.with_reid:
        factory()
    return CameraTrackers(factory)


def build_engine(cfg: ReidstreamConfig, device: str) -> Engine:
    """The ReID engine; the bundled synthetic-scene model where nothing names a model."""
    if problems := cfg.reid.missing():
        raise ConfigError("\n".join(problems))
    if cfg.reid.uses_bundled_model:
        log.warning(
            "reid: no model configured; using the bundled model %s, trained on the "
            "synthetic people only (set reid.model/checkpoint or reid.onnx_path for real "
            "footage)",
            BUNDLED_REID_CHECKPOINT.name,
        )
    options = cfg.reid.options(device=device, default_checkpoint=BUNDLED_REID_CHECKPOINT)
    return create_engine(cfg.reid.engine, **options)


def model_label(cfg: ReidstreamConfig) -> str:
    """The name clip embeddings carry: the model and the weights file, so that embeddings of two
    different trainings of one architecture are never compared."""
    reid = cfg.reid
    if reid.uses_bundled_model:
        return f"bundled:{BUNDLED_REID_CHECKPOINT.stem}"
    weights = reid.onnx_path if reid.onnx_path is not None else reid.checkpoint
    parts = [reid.model or reid.engine, weights.name if weights is not None else "untrained"]
    return ":".join(parts)


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


def crop_size(cfg: ReidstreamConfig, engine: Engine) -> tuple[int, int]:
    """(H, W) crops are cut at: configured, else the model's input size."""
    return cfg.tracklets.crop_size or tuple(engine.cfg.input_size[1:])


def build_tracklets(cfg: ReidstreamConfig, engine: Engine) -> TrackletBuilder:
    """The tracklet builder: `clip_geometry`, `crop_size` and the quality gates."""
    clip_len, stride, min_frames = clip_geometry(cfg, engine)
    t = cfg.tracklets
    return TrackletBuilder(
        clip_len=clip_len,
        stride=stride,
        min_frames=min_frames,
        crop_size=crop_size(cfg, engine),
        min_height=t.min_height,
        min_width=t.min_width,
        min_confidence=t.min_confidence,
        border_margin=t.border_margin,
        lost_after_s=t.lost_after_s,
    )


# ------------------------------------------------------------------------------------- stages


@dataclass(frozen=True)
class _StageParts:
    """What the stages are built around."""

    detector: Detector | None
    camera_detectors: dict[str, Detector]
    trackers: CameraTrackers
    tracklets: TrackletBuilder
    engine: Engine
    model: str
    matcher: Matcher | None
    recorder: RunRecorder | None
    publisher: Publisher


def _build_parts(
    cfg: ReidstreamConfig,
    role: Role,
    device: str,
    sources: list[Source],
    metrics: PipelineMetrics,
    engine: Engine | None,
    detector: Detector | None,
    model_name: str | None,
) -> _StageParts:
    """The models and the stateful parts the stages are built around (the models load here)."""
    engine = engine or build_engine(cfg, device)
    detector = detector or build_detector(cfg, device)
    return _StageParts(
        tracklets=build_tracklets(cfg, engine),
        detector=detector,
        camera_detectors=build_camera_detectors(cfg, device, detector),
        trackers=build_trackers(cfg, device),
        engine=engine,
        model=model_name or model_label(cfg),
        matcher=build_matcher(cfg, metrics) if role == "all" else None,
        recorder=Recorder(truth=_scene_truth(sources)) if cfg.run.record else None,
        publisher=build_publisher(cfg, metrics),
    )


def build_stages(
    cfg: ReidstreamConfig,
    device: str,
    buffer: FrameBuffer,
    parts: _StageParts,
    metrics: PipelineMetrics,
) -> list[Stage]:
    """detect > track > tracklets > embed > [match >] publish, each queue bounded.

    The match stage is there when `parts` has a matcher (role "all"); a worker's embed stage
    feeds the publish stage directly.
    """

    def queue(stage: str, size: int) -> StageQueue:
        metrics.queue_capacity.labels(stage=stage).set(size)
        return StageQueue(stage, size, on_depth=metrics.queue_depth.labels(stage=stage).set)

    recorder = parts.recorder
    to_track, to_tracklets = queue("track", 64), queue("tracklets", 64)
    to_embed = queue("embed", 2 * parts.engine.max_batch)
    to_publish = queue("publish", 4096)
    to_match = queue("match", 1024) if parts.matcher is not None else None
    stages: list[Stage] = [
        _detect_stage(cfg, device, buffer, parts, to_track, metrics),
        TrackStage(
            parts.trackers,
            to_track,
            to_tracklets,
            metrics,
            lost_after_s=cfg.tracklets.lost_after_s,
        ),
        TrackletStage(
            parts.tracklets,
            to_tracklets,
            to_embed,
            metrics,
            on_update=recorder.on_update if recorder else None,
        ),
        EmbedStage(
            parts.engine,
            to_embed,
            to_publish if to_match is None else to_match,
            metrics,
            model=parts.model,
            max_wait_s=cfg.embed.max_wait_ms / 1000,
        ),
    ]
    if parts.matcher is not None and to_match is not None:
        on_links = recorder.on_links if recorder else None
        stages.append(MatchStage(parts.matcher, to_match, to_publish, metrics, on_links=on_links))
    stages.append(PublishStage(parts.publisher.publish, to_publish, metrics))
    return stages


def _detect_stage(
    cfg: ReidstreamConfig,
    device: str,
    buffer: FrameBuffer,
    parts: _StageParts,
    outbox: StageQueue,
    metrics: PipelineMetrics,
) -> DetectStage:
    return DetectStage(
        parts.detector,
        buffer,
        outbox,
        metrics,
        max_batch=cfg.detect.batch_for(device),
        max_wait_s=cfg.detect.max_wait_ms / 1000,
        camera_detectors=parts.camera_detectors,
        interval=cfg.detect.interval,
    )


# ------------------------------------------------------------------------ matching, delivery


def build_matcher(cfg: ReidstreamConfig, metrics: PipelineMetrics | None = None) -> Matcher:
    """The matcher with its camera constraints (each two-way transit window both ways); its
    refusals counted in `metrics` and, with run.decisions or run.record, its decisions written
    to decisions.jsonl in run.out_dir."""
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
            top_k=m.top_k,
            on_decisions=decision_report(cfg, metrics),
        )
    except ImportError as e:  # index = 'faiss' without FAISS installed
        raise ConfigError(f"matcher.index = {m.index!r}: {e}") from e


def decision_report(
    cfg: ReidstreamConfig, metrics: PipelineMetrics | None
) -> Callable[[list[Decision]], None] | None:
    """What the matcher does with each batch's decisions: count the refusals by reason and,
    with run.decisions or run.record, append the decisions to decisions.jsonl; None: nothing."""
    decisions = None
    if cfg.run.decisions or cfg.run.record:
        decisions = DecisionLog(cfg.run.out_dir / DECISIONS_FILE)
    if metrics is None and decisions is None:
        return None
    if metrics is not None:
        for reason in REFUSAL_REASONS:  # every series from the start, at zero
            metrics.match_refusals.labels(reason=reason)

    def report(batch: list[Decision]) -> None:
        if metrics is not None:
            for reason, count in count_refusals(batch).items():
                metrics.match_refusals.labels(reason=reason).inc(count)
        if decisions is not None:
            decisions.write(batch)

    return report


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
    return Publisher(sinks, metrics=metrics)
