"""The streaming job: runs the stages it is given, stops them, reports what they did.

    sources > detect > track > tracklets > embed > match > publish     role "all"
    sources > detect > track > tracklets > embed --------> publish     role "worker"

    job.run()   starts the sinks, the stages, the sources and the /metrics + probes server;
                returns when every source has ended and every queue has drained, or after
                `request_stop()` (SIGINT/SIGTERM) or `max_duration_s`:
                  sources stop ─▶ the frames already read go through ─▶ the publisher delivers
                  what it holds (`shutdown_timeout_s` at most; the rest stays in the spool)

While a sink's disk refuses writes the publisher retries the batch and the job pauses its intake
(the frame buffer holds frames back, so live cameras drop theirs, counted). Whatever is lost
anyway (messages no sink stored by the shutdown deadline, items the stages had not processed) is
logged at ERROR and reported in `RunSummary.lost`; `reidstream run` then exits 1.

`pipeline.assemble.build_job` builds one from the configuration; this module reads none of it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from pipeline.config import redact_values
from pipeline.matching.matcher import Matcher
from pipeline.messages.sinks import JsonlSink, Publisher
from pipeline.messages.types import IdentityLink
from pipeline.monitoring.metrics import PipelineMetrics
from pipeline.monitoring.server import MetricsServer
from pipeline.stream.queues import FrameBuffer
from pipeline.stream.sources import Source
from pipeline.stream.stages import Stage
from pipeline.stream.tracklets import TrackletUpdate
from pipeline.stream.types import Frame

__all__ = ["Job", "Role", "RunLimits", "RunRecorder", "RunSummary"]

log = logging.getLogger(__name__)

#: "all": identity links out; "worker": clip embeddings out, for `reidstream matcher`.
Role = Literal["all", "worker"]


class RunRecorder(Protocol):
    """What a recorded run keeps (`pipeline.demo.recording.Recorder`): the tracklet stage and the
    match stage report to it, and the job asks it for its outputs at the end."""

    def on_update(self, frame: Frame, update: TrackletUpdate) -> None: ...

    def on_links(self, links: Sequence[IdentityLink]) -> None: ...

    def finish(
        self, out_dir: Path, camera_ids: Sequence[str]
    ) -> tuple[dict[str, str], dict[str, Any] | None]:
        """Writes the recording under `out_dir`; returns (name -> path written, score or None)."""
        ...


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
    #: What the run lost: "messages" (sink -> kind -> count, never stored) and "unprocessed"
    #: (stage -> items still waiting at the shutdown deadline); empty when nothing was lost.
    lost: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunLimits:
    """Where a run writes and how it stops.

    Attributes:
        out_dir: Folder of config.yaml, summary.json and the recording.
        max_duration_s: Stop after this long; None: when every source has ended.
        shutdown_timeout_s: How long draining and delivering may take once stopping.
    """

    out_dir: Path
    max_duration_s: float | None = None
    shutdown_timeout_s: float = 30.0


class Job:
    """One process of the pipeline: the parts, started and stopped together.

    Args:
        role: "all" (links out) or "worker" (clip embeddings out, for `reidstream matcher`).
        metrics: Where the parts count.
        sources: The camera sources, feeding `buffer`.
        buffer: The frames waiting for the detect stage.
        stages: The stages in pipeline order; the last one publishes.
        publisher: The sinks the last stage publishes to.
        matcher: The matcher of the match stage; None for a worker.
        recorder: Keeps what `run.record` asks for; None when not recording.
        camera_ids: Every camera this job reads.
        clip_geometry: (clip_len, stride) of the tracklet stage.
        model: The name the clip embeddings carry.
        limits: Where the run writes and how it stops.
        config_yaml: The resolved configuration, written as config.yaml beside the outputs.
    """

    def __init__(
        self,
        *,
        role: Role,
        metrics: PipelineMetrics,
        sources: list[Source],
        buffer: FrameBuffer,
        stages: list[Stage],
        publisher: Publisher,
        matcher: Matcher | None,
        recorder: RunRecorder | None,
        camera_ids: Sequence[str],
        clip_geometry: tuple[int, int],
        model: str,
        limits: RunLimits,
        config_yaml: str,
    ) -> None:
        self.role, self.metrics = role, metrics
        self.sources, self.buffer, self.stages = sources, buffer, stages
        self.publisher, self.matcher, self.recorder = publisher, matcher, recorder
        self.camera_ids = tuple(camera_ids)
        self.clip_len, self.stride = clip_geometry
        self.model, self.limits, self.config_yaml = model, limits, config_yaml
        #: The /metrics, /livez and /readyz endpoint, bound by the builder; None: no server.
        self.server: MetricsServer | None = None
        self._stop = threading.Event()
        self._started = False
        self._finished = False
        self._unprocessed: dict[str, int] = {}
        publisher.on_blocked = self._pause_intake

    def _pause_intake(self, paused: bool) -> None:
        """Stops (or restarts) feeding frames to the detector while a sink cannot write."""
        log.warning("intake %s", "paused: a sink cannot write" if paused else "resumed")
        self.buffer.pause(paused)

    # ------------------------------------------------------------------------------- running

    def request_stop(self) -> None:
        """Stops reading the cameras; what was read is still processed and published."""
        if not self._stop.is_set():
            log.info("stopping: the sources stop, the queues drain")
        self._stop.set()
        self.buffer.close()

    def run(self, *, on_started: Callable[[Job], None] | None = None) -> RunSummary:
        """Runs until the sources end or `request_stop`; then drains and delivers."""
        out_dir = self.limits.out_dir
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(self.config_yaml, encoding="utf-8")
        start = time.monotonic()
        self._start()
        if on_started is not None:
            on_started(self)
        stopped_by = self._wait(start)
        self.request_stop()
        self._drain()
        return self._summary(time.monotonic() - start, stopped_by)

    def _start(self) -> None:
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
            len(self.camera_ids),
            self.model,
            self.clip_len,
            self.stride,
        )

    def _wait(self, start: float) -> str:
        limit = self.limits.max_duration_s
        last = self.stages[-1]
        while last.alive:
            if self._stop.wait(0.2):
                return "stop requested"
            if limit is not None and time.monotonic() - start >= limit:
                log.info("run.max_duration_s = %.0f s reached", limit)
                return "max_duration_s"
            if self.publisher.blocked and not any(s.alive for s in self.sources):
                # Nothing more will come in: wait for the disk only as long as a stop would.
                log.warning("the sources ended while a sink cannot write; draining")
                return "end of the sources"
        return "end of the sources"

    def _drain(self) -> None:
        """Lets what was read go through and be delivered, within the shutdown timeout."""
        timeout = self.limits.shutdown_timeout_s
        for source in self.sources:
            source.join(5.0)
        deadline = time.monotonic() + timeout
        self.stages[-1].join(max(deadline - time.monotonic(), 0.0))
        if self.stages[-1].alive:
            self._give_up(timeout)
        self.publisher.close(max(deadline - time.monotonic(), 1.0))
        self._finished = True
        if self.server is not None:
            self.server.close()
        for stage in self.stages:
            if not stage.alive:
                stage.close()

    def _give_up(self, timeout: float) -> None:
        """The stages did not drain in time: what sinks still refuse is lost, and counted."""
        self.publisher.abandon()  # a batch waiting for a full disk is counted lost, not kept
        self.buffer.pause(False)
        self.stages[-1].join(5.0)  # the stages now drain quickly, losing (and counting) batches
        self._unprocessed = {s.name: len(s.inbox) for s in self.stages if len(s.inbox)}
        if self._unprocessed:
            log.error(
                "the stages did not drain within %.0f s (run.shutdown_timeout_s); exiting with "
                "these items still waiting, which are lost: %s",
                timeout,
                self._unprocessed,
            )

    # ------------------------------------------------------------------------------ reporting

    def alive(self) -> bool:
        """The /livez answer: false only when a stage thread died while the job runs, which
        leaves the process serving but doing nothing (a restart helps; a camera outage does not
        count, see `pipeline.monitoring.server`). Stages that end while the job stops are fine."""
        if not self._started or self._finished or self._stop.is_set():
            return True
        return all(s.alive for s in self.stages)

    def health(self) -> dict[str, Any]:
        """The /readyz report (see `pipeline.monitoring.server`)."""
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
            lost=self._lost(),
        )
        out_dir = self.limits.out_dir
        for sink in self.publisher.sinks:
            if isinstance(sink, JsonlSink):
                summary.outputs["links"] = str(sink.path)
        if self.recorder is not None:
            outputs, summary.score = self.recorder.finish(out_dir, self.camera_ids)
            summary.outputs |= outputs
        path = out_dir / "summary.json"
        report = redact_values(json.loads(json.dumps(summary.as_dict(), default=str)))
        try:
            path.write_text(json.dumps(report, indent=1) + "\n")
        except OSError as e:  # the disk that failed the sinks may fail this too
            log.error("%s could not be written: %s; the run lost: %s", path, e, summary.lost)
            return summary
        summary.outputs["summary"] = str(path)
        return summary

    def _lost(self) -> dict[str, dict[str, Any]]:
        lost: dict[str, dict[str, Any]] = {}
        if self.publisher.lost:
            lost["messages"] = {sink: dict(kinds) for sink, kinds in self.publisher.lost.items()}
        if self._unprocessed:
            lost["unprocessed"] = dict(self._unprocessed)
        return lost
