"""The pipeline's stages: one thread each, joined by bounded queues.

    FrameBuffer ─▶ detect ─▶ track ─▶ tracklets ─▶ embed ─▶ match ─▶ publish
                  (batched   (tracker  (crops,      (batched  (gallery) (sinks)
                   across     per       clips)       across
                   cameras)   camera)                cameras)
    worker:                                       embed ─────────────▶ publish

Every stage reads a batch (`max_batch` items, or what came within `max_wait_s`), processes it
and puts its results into the next stage's queue; a full queue makes it wait, so the slowest
stage sets the pace and the sources drop frames of live cameras (counted) rather than memory
growing. A batch that fails is logged with what was lost and counted in
reidstream_stage_errors_total; the stage goes on with the next one. At the end of the stream a
stage flushes what it holds (`finish`) and closes its output, so the end travels down the line
and every queue drains.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np

from deploy.engines import Engine, NonFiniteEmbedding
from detectors import CameraTrackers, Detections, Detector
from pipeline.matching.matcher import Matcher, match_in_order
from pipeline.messages.encoding import closed_message, embedding_message, link_message
from pipeline.messages.types import ClipEmbedding, IdentityLink, TrackletClosed
from pipeline.monitoring.metrics import PipelineMetrics
from pipeline.stream.queues import FrameBuffer, StageQueue
from pipeline.stream.tracklets import TrackletBuilder, TrackletUpdate, camera_gap
from pipeline.stream.types import Clip, Frame

__all__ = [
    "DetectStage",
    "EmbedStage",
    "MatchStage",
    "PublishStage",
    "Stage",
    "TrackStage",
    "TrackletStage",
]

log = logging.getLogger(__name__)

Tracked = tuple[Frame, Detections]
#: A frame and its detections; None where the detector skipped it (`DetectStage.interval`).
Detected = tuple[Frame, Detections | None]


class Stage:
    """A thread: batches from `inbox`, `process`, results to `outbox`.

    Args:
        name: The stage's `stage` label (one of `pipeline.monitoring.metrics.STAGES`).
        inbox: Queue (or frame buffer) it reads.
        outbox: Queue it writes; None for the last stage.
        metrics: Where latency, batch sizes and errors are counted.
        max_batch: Most items per batch.
        max_wait_s: Longest wait for a batch to fill once it has an item.
    """

    def __init__(
        self,
        name: str,
        inbox: StageQueue | FrameBuffer,
        outbox: StageQueue | None,
        metrics: PipelineMetrics,
        *,
        max_batch: int = 1,
        max_wait_s: float = 0.0,
    ) -> None:
        self.name, self.inbox, self.outbox, self.metrics = name, inbox, outbox, metrics
        self.max_batch, self.max_wait_s = max_batch, max_wait_s
        self._thread = threading.Thread(target=self._main, name=f"stage-{name}", daemon=True)
        self.items = 0  # items processed
        #: Called after each batch with (stage, start, seconds, batch, results): a profiler's
        #: hook (`pipeline.bench.profiling`); None in a normal run.
        self.observer: Callable[[str, float, float, list, Sequence], None] | None = None

    def process(self, batch: list[Any]) -> Sequence[Any]:
        """Processes one batch; returns what goes to the next stage."""
        raise NotImplementedError

    def finish(self) -> Sequence[Any]:
        """At the end of the stream: what the stage still holds, for the next stage."""
        return ()

    def close(self) -> None:
        """Releases what the stage holds (models, files) once its thread has ended."""

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def failed(self, error: BaseException, lost: int, what: str) -> None:
        """Logs and counts a failure that cost `lost` items."""
        self.metrics.stage_errors.labels(stage=self.name).inc()
        log.error(
            "%s stage: %s failed, %d %s lost: %r",
            self.name,
            what,
            lost,
            "item" if lost == 1 else "items",
            error,
            exc_info=error,
        )

    def _main(self) -> None:
        try:
            while (batch := self.inbox.take_batch(self.max_batch, self.max_wait_s)) is not None:
                self._handle(batch)
            try:
                self._emit(self.finish())
            except Exception as e:
                self.failed(e, 0, "flushing at the end of the stream")
        finally:
            if self.outbox is not None:
                self.outbox.close()

    def _handle(self, batch: list[Any]) -> None:
        start = time.perf_counter()
        try:
            out = self.process(batch)
        except Exception as e:
            self.failed(e, len(batch), f"a batch of {len(batch)}")
            return
        seconds = time.perf_counter() - start
        self.metrics.stage_latency.labels(stage=self.name).observe(seconds)
        self.metrics.batch_size.labels(stage=self.name).observe(len(batch))
        self.items += len(batch)
        if self.observer is not None:
            self.observer(self.name, start, seconds, batch, out)
        self._emit(out)

    def _emit(self, items: Sequence[Any]) -> None:
        if self.outbox is not None and items:
            self.outbox.put_many(items)


class DetectStage(Stage):
    """Frames of all cameras -> detections, one detector call per batch (per input size).

    With `interval` k > 1 the detector looks at every k-th frame of each camera that reaches
    this stage and the others go on with no detections (None): the track stage moves the
    tracks by the tracker's motion model there. Frames the buffer dropped (the job fell
    behind) do not count: counting by frame index would make every frame due once more than
    k-1 in k are dropped, so an overloaded job would detect every frame it gets and fall
    further behind (measured: 12 store cameras at k = 3 fell to every-frame detection and
    0.75x the naive loop). Counted, the detector's load stays 1/k of what arrives.
    Frames that carry their own `detections` (the synthetic scene's noisy truth) skip the
    detector, on the same schedule.

    Args:
        detector: The detector of every camera not in `camera_detectors`; None when every
            frame brings its own detections.
        camera_detectors: Detectors of the cameras that have their own (another input size).
        interval: Detect every `interval`-th frame of a camera (DeepStream's `interval` + 1).
    """

    def __init__(
        self,
        detector: Detector | None,
        inbox: FrameBuffer,
        outbox: StageQueue,
        metrics: PipelineMetrics,
        *,
        max_batch: int,
        max_wait_s: float,
        camera_detectors: dict[str, Detector] | None = None,
        interval: int = 1,
    ) -> None:
        super().__init__(
            "detect", inbox, outbox, metrics, max_batch=max_batch, max_wait_s=max_wait_s
        )
        if interval < 1:
            raise ValueError(f"interval = {interval}: expected 1 or more")
        self.detector, self.interval = detector, interval
        self.camera_detectors = dict(camera_detectors or {})
        # camera -> (index of its last frame, frames since its last detected one)
        self._since: dict[str, tuple[int, int]] = {}

    def process(self, batch: list[Frame]) -> list[tuple[Frame, Detections | None]]:
        due = [self._due(f) for f in batch]
        need = [f for f, d in zip(batch, due, strict=True) if d and f.detections is None]
        found = self._detect(need)
        return [
            (f, None if not d else f.detections if f.detections is not None else found[id(f)])
            for f, d in zip(batch, due, strict=True)
        ]

    def _due(self, frame: Frame) -> bool:
        """Whether the detector looks at this frame: every `interval`-th of its camera's frames
        here, and the first after the camera started again (a reconnect, a looping file)."""
        last = self._since.get(frame.camera_id)
        due = last is None or frame.index <= last[0] or last[1] + 1 >= self.interval
        self._since[frame.camera_id] = (frame.index, 0 if due else last[1] + 1)
        return due

    def _detect(self, frames: list[Frame]) -> dict[int, Detections]:
        """One detector call per detector (input size) among `frames`; id(frame) -> result."""
        groups: dict[int, tuple[Detector, list[Frame]]] = {}
        for frame in frames:
            detector = self.camera_detectors.get(frame.camera_id, self.detector)
            if detector is None:
                raise RuntimeError("frames without detections, and no detector configured")
            groups.setdefault(id(detector), (detector, []))[1].append(frame)
        found: dict[int, Detections] = {}
        for detector, group in groups.values():
            results = detector.detect([f.image for f in group])
            found |= {id(f): r for f, r in zip(group, results, strict=True)}
        return found

    def close(self) -> None:
        detectors = [self.detector, *self.camera_detectors.values()]
        for detector in {id(d): d for d in detectors if d is not None}.values():
            detector.close()


class TrackStage(Stage):
    """Detections -> tracked detections, one tracker per camera, frames in order.

    A camera whose frames stopped for `lost_after_s` (a reconnect) gets a fresh tracker. A
    frame the detector skipped (None) moves the tracks by the tracker's motion model
    (`Tracker.predict`); its boxes are marked ``metadata["predicted"]``.
    """

    def __init__(
        self,
        trackers: CameraTrackers,
        inbox: StageQueue,
        outbox: StageQueue,
        metrics: PipelineMetrics,
        *,
        lost_after_s: float,
        max_batch: int = 16,
    ) -> None:
        super().__init__("track", inbox, outbox, metrics, max_batch=max_batch)
        self.trackers, self.lost_after_s = trackers, lost_after_s
        self._last: dict[str, float] = {}

    def process(self, batch: list[Detected]) -> list[Tracked]:
        out = []
        for frame, detections in batch:
            camera = frame.camera_id
            if camera_gap(self._last.get(camera), frame.timestamp, self.lost_after_s):
                self.trackers.reset(camera)
            self._last[camera] = frame.timestamp
            try:
                if detections is None:  # skipped by the detector: the tracks move on their own
                    out.append((frame, self.trackers.predict(camera, frame.image)))
                else:
                    out.append((frame, self.trackers.update(camera, detections, frame.image)))
            except Exception as e:  # one camera's bad frame costs that frame only
                self.failed(e, 1, f"tracking frame {frame.index} of {camera}")
        return out


class TrackletStage(Stage):
    """Tracked boxes -> clips (see `pipeline.stream.tracklets`).

    Args:
        builder: The tracklet builder of all cameras.
        on_update: Called with each frame and what it changed (recording for evaluation and the
            mosaic); optional.
    """

    def __init__(
        self,
        builder: TrackletBuilder,
        inbox: StageQueue,
        outbox: StageQueue,
        metrics: PipelineMetrics,
        *,
        on_update: Callable[[Frame, TrackletUpdate], None] | None = None,
        max_batch: int = 16,
    ) -> None:
        super().__init__("tracklets", inbox, outbox, metrics, max_batch=max_batch)
        self.builder, self.on_update = builder, on_update

    def process(self, batch: list[Tracked]) -> list[Clip | TrackletClosed]:
        out: list[Clip | TrackletClosed] = []
        for frame, tracked in batch:
            update = self.builder.update(frame, tracked)
            for reason, n in update.rejected.items():
                self.metrics.crops_rejected.labels(camera=frame.camera_id, reason=reason).inc(n)
            if self.on_update is not None:
                self.on_update(frame, update)
            out += [*update.clips, *update.closed]  # a tracklet's last clip before its end
        return out

    def finish(self) -> list[Clip | TrackletClosed]:
        update = self.builder.close_all()
        return [*update.clips, *update.closed]


class EmbedStage(Stage):
    """Clips of all cameras -> clip embeddings, one engine call per batch.

    A clip whose embedding is not finite is dropped and counted
    (reidstream_nonfinite_embeddings_total); the other clips of its batch go on. Tracklet ends
    pass through in their place, so each comes after its tracklet's last embedding.

    Args:
        engine: The ReID engine (its `max_batch` is the batch size).
        model: Name the embeddings carry; embeddings of different names are never compared.
    """

    def __init__(
        self,
        engine: Engine,
        inbox: StageQueue,
        outbox: StageQueue,
        metrics: PipelineMetrics,
        *,
        model: str,
        max_wait_s: float,
    ) -> None:
        super().__init__(
            "embed", inbox, outbox, metrics, max_batch=engine.max_batch, max_wait_s=max_wait_s
        )
        self.engine, self.model = engine, model

    def process(self, items: list[Clip | TrackletClosed]) -> list[ClipEmbedding | TrackletClosed]:
        batch = [item for item in items if isinstance(item, Clip)]
        embedded = iter(self._embed(batch) if batch else ())
        out: list[ClipEmbedding | TrackletClosed] = []
        for item in items:
            if isinstance(item, TrackletClosed):
                out.append(item)
            elif (embedding := next(embedded)) is not None:
                out.append(embedding)
        return out

    def _embed(self, batch: list[Clip]) -> list[ClipEmbedding | None]:
        """One embedding per clip, None where it was not finite."""
        # Crops are BGR as decoded; the engines take RGB. One copy does both the stacking and
        # the channel swap, by OpenCV: numpy's [..., ::-1] copy took 40x longer (85 vs 2 ms for
        # 32 clips of 8 x 256x128).
        pixels = np.empty((len(batch), *batch[0].crops.shape), np.uint8)
        for i, clip in enumerate(batch):
            rows = -1, clip.crops.shape[2], 3  # (T*H, W, 3): one image per clip
            cv2.cvtColor(clip.crops.reshape(rows), cv2.COLOR_BGR2RGB, dst=pixels[i].reshape(rows))
        try:
            vectors = self.engine.embed(pixels)
            bad: tuple[int, ...] = ()
        except NonFiniteEmbedding as e:
            if e.embeddings is None:
                raise
            vectors, bad = e.embeddings, e.rows
            for row in bad:
                camera = batch[row].camera_id
                self.metrics.nonfinite_embeddings.labels(camera=camera).inc()
            log.warning(
                "embed stage: %d of %d clips embedded to NaN/inf and were dropped (tracklets %s)",
                len(bad),
                len(batch),
                [batch[r].tracklet_id for r in bad],
            )
        return [
            None if i in bad else clip.to_embedding(vectors[i], model=self.model)
            for i, clip in enumerate(batch)
        ]

    def close(self) -> None:
        self.engine.close()


class MatchStage(Stage):
    """Clip embeddings -> identity links (see `pipeline.matching.matcher`).

    Args:
        matcher: The gallery.
        on_links: Called with each batch of links made (recording); optional.
    """

    def __init__(
        self,
        matcher: Matcher,
        inbox: StageQueue,
        outbox: StageQueue,
        metrics: PipelineMetrics,
        *,
        on_links: Callable[[list[IdentityLink]], None] | None = None,
        max_batch: int = 64,
    ) -> None:
        super().__init__("match", inbox, outbox, metrics, max_batch=max_batch)
        self.matcher, self.on_links = matcher, on_links

    def process(self, batch: list[ClipEmbedding | TrackletClosed]) -> list[IdentityLink]:
        links = match_in_order(self.matcher, batch)
        self.metrics.gallery_identities.set(self.matcher.identities)
        if self.on_links is not None:
            self.on_links(links)
        return links


class PublishStage(Stage):
    """Identity links and clip embeddings -> messages -> the sinks.

    `publish` returns once every sink has taken the batch (written it, or stored it in its
    spool); delivery to Kafka goes on in the sink's own sender thread.
    """

    def __init__(
        self,
        publish: Callable[[list], None],
        inbox: StageQueue,
        metrics: PipelineMetrics,
        *,
        max_batch: int = 256,
    ) -> None:
        super().__init__("publish", inbox, None, metrics, max_batch=max_batch)
        self.publish = publish

    def process(self, batch: list[IdentityLink | ClipEmbedding | TrackletClosed]) -> list:
        now = time.time()
        encode = {
            IdentityLink: link_message,
            ClipEmbedding: embedding_message,
            TrackletClosed: closed_message,
        }
        self.publish([encode[type(item)](item, produced_at=now) for item in batch])
        return []
