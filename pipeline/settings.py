"""The root configuration schema of the `reidstream` commands, composed of each part's section.

    log_level, device                          here
    kafka, output                              pipeline/messages/settings.py
    detector, tracker, track                   detectors/settings.py
    reid (and reid.tensorrt)                   deploy/settings.py
    cameras[], sources, detect, tracklets,     pipeline/stream/settings.py
      embed, run
    synthetic                                  pipeline/demo/settings.py
    matcher (and matcher.transitions[])        pipeline/matching/settings.py
    metrics                                    pipeline/monitoring/settings.py
    adapt                                      trainers/adapt/settings.py
    calibrate                                  pipeline/matching/calibration.py

`pipeline.config` loads it (defaults <- YAML <- REIDSTREAM_* <- KEY=VALUE); `reidstream config
--list` prints every key, `reidstream config` the resolved values. The training commands have
their own root, `trainers.settings.TrainConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from deploy.settings import ReidEngineConfig
from detectors.settings import DetectorConfig, TrackerConfig, TrackVideoConfig
from pipeline.demo.settings import SyntheticConfig
from pipeline.matching.calibration import CalibrateConfig
from pipeline.matching.settings import MatcherConfig
from pipeline.messages.settings import KafkaConfig, OutputConfig
from pipeline.monitoring.settings import MetricsServerConfig
from pipeline.stream.settings import (
    CameraConfig,
    DetectStageConfig,
    EmbedStageConfig,
    RunConfig,
    SourcesConfig,
    TrackletConfig,
)
from trainers.adapt.settings import AdaptConfig

__all__ = ["ReidstreamConfig"]


@dataclass(frozen=True)
class ReidstreamConfig:
    """Root of the configuration tree."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = field(
        default="INFO", metadata={"help": "Least severe log level printed."}
    )
    device: str = field(
        default="auto",
        metadata={
            "pattern": r"auto|cpu|cuda(:\d+)?",
            "help": "Torch device for the models: 'auto' takes the first CUDA device when there "
            "is one, else the CPU.",
        },
    )
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    track: TrackVideoConfig = field(default_factory=TrackVideoConfig)
    reid: ReidEngineConfig = field(default_factory=ReidEngineConfig)
    cameras: tuple[CameraConfig, ...] = field(
        default=(),
        metadata={
            "help": "The cameras, each {id, uri, live, replay, loop, fps, start_time, "
            "clock_offset_s} (see cameras[].*). None: the synthetic multi-camera scene of "
            "synthetic.* is the source."
        },
    )
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    detect: DetectStageConfig = field(default_factory=DetectStageConfig)
    tracklets: TrackletConfig = field(default_factory=TrackletConfig)
    embed: EmbedStageConfig = field(default_factory=EmbedStageConfig)
    matcher: MatcherConfig = field(default_factory=MatcherConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    metrics: MetricsServerConfig = field(default_factory=MetricsServerConfig)
    run: RunConfig = field(default_factory=RunConfig)
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    calibrate: CalibrateConfig = field(default_factory=CalibrateConfig)

    def __post_init__(self) -> None:
        ids = [c.id for c in self.cameras]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"cameras: each id at most once, repeated: {repeated}")
        known = set(ids) if self.cameras else {f"cam{c + 1}" for c in range(self.synthetic.cameras)}
        if unknown := sorted(set(self.run.only_cameras) - known):
            raise ValueError(f"run.only_cameras: {unknown} are not configured ({sorted(known)})")
        named = {c for group in self.matcher.overlapping_cameras for c in group}
        named |= {c for t in self.matcher.transitions for c in (t.source, t.target)}
        if unknown := sorted(named - known):
            raise ValueError(
                f"matcher: cameras {unknown} are not configured (cameras: {sorted(known)})"
            )

    @property
    def synthetic_camera_ids(self) -> tuple[str, ...]:
        """Ids of the synthetic scene's cameras this process reads (synthetic.only_cameras and
        run.only_cameras)."""
        every = tuple(f"cam{c + 1}" for c in range(self.synthetic.cameras))
        for only in (self.synthetic.only_cameras, self.run.only_cameras):
            every = tuple(c for c in every if c in only) if only else every
        return every

    @property
    def active_cameras(self) -> tuple[CameraConfig, ...]:
        """The configured cameras this process reads (run.only_cameras)."""
        only = self.run.only_cameras
        return tuple(c for c in self.cameras if not only or c.id in only)
