"""The pipeline's Prometheus metrics, declared once, here; every stage updates these objects.

    CameraSource ──▶ detect ──▶ track ──▶ tracklets ──▶ embed ──▶ match ──▶ publish ──▶ Kafka
    frames_in_total          queue_depth{stage}, queue_capacity{stage}  links_published_total
    frames_dropped_total     batch_size{stage} (histogram)              embeddings_published_total
    frames_rejected_total    stage_latency_seconds{stage} (histogram)   publish_errors_total
    camera_connected, _fps   stage_errors_total{stage}                  spool_messages, _bytes
    camera_reconnects_total  crops_rejected_total{camera, reason}       gallery_identities
                             nonfinite_embeddings_total{camera}     match_refusals_total{reason}
                  └──────────── frame_to_link_latency_seconds{camera} (histogram) ─────────────┘

Names follow the Prometheus conventions: the `reidstream_` prefix, base units in the name
(`_seconds`, `_bytes`), `_total` on counters, and no unit on unit-less counts (frames, items).
Labels are `camera` (the configured camera id), `stage` (one of `STAGES`), `sink` ("kafka",
"jsonl"), `consumer` ("matcher", "links") and `reason` (one of `CROP_GATES`, the tracklets'
quality gates, or of the rejection reasons of a consumed record); all are bounded sets, so the
number of series stays small.

The metrics live on a `CollectorRegistry` the pipeline owns (`REGISTRY`, with the process, platform
and garbage-collector collectors of `prometheus_client` added) rather than on the library's global
default registry: tests build fresh ones with `PipelineMetrics(CollectorRegistry())`, and nothing
another library registers globally leaks into the pipeline's `/metrics`. The HTTP endpoint serves
`REGISTRY` on `METRICS_PORT` at `METRICS_PATH`, next to the probes `LIVE_PATH` and `READY_PATH`
(and `HEALTH_PATH`, the same as `READY_PATH`); the container images, compose file and Kubernetes
manifests in `deploy/` use the same port and paths (a test checks them).

Port 9400: outside the ranges of the usual exporters a pipeline host also runs (node exporter
9100, Prometheus 9090, Kafka 9092-9094) except NVIDIA's DCGM exporter, whose default is 9400 too;
the two only meet when both run in the host's network namespace, so give DCGM another port there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeVar

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
)

__all__ = [
    "HEALTH_PATH",
    "LIVE_PATH",
    "METRICS",
    "METRICS_PATH",
    "METRICS_PORT",
    "READY_PATH",
    "REGISTRY",
    "STAGES",
    "MetricInfo",
    "PipelineMetrics",
]

#: TCP port of the `/metrics` and probes endpoint (see the module docstring for the choice).
METRICS_PORT = 9400
#: Path of the Prometheus exposition.
METRICS_PATH = "/metrics"
#: Liveness probe: 200 while the process serves and its stage threads run, else 503.
LIVE_PATH = "/livez"
#: Readiness probe and health report: 200 when every camera and sink works, 503 otherwise.
READY_PATH = "/readyz"
#: The health report under its earlier name: the same as `READY_PATH`.
HEALTH_PATH = "/healthz"

#: Values of the `stage` label, in data-flow order.
STAGES = ("detect", "track", "tracklets", "embed", "match", "publish")
#: Values of the `reason` label of crops_rejected: the tracklet builder's quality gates.
CROP_GATES = ("small", "low_confidence", "truncated")

#: Stage latency buckets (seconds): 1 ms (a tracker update) to 10 s (a stalled batch).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Frame-to-link buckets (seconds): 50 ms to 2 min; a link is a few hundred ms in a healthy site.
FRAME_TO_LINK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0, 120.0)
#: Batch size buckets (items): powers of two up to the largest `reid.max_batch` allowed (1024).
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

Kind = Literal["counter", "gauge", "histogram", "info"]
_M = TypeVar("_M", Counter, Gauge, Histogram, Info)

#: Series each kind of metric family exposes, as suffixes of the family name.
_SERIES_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "info": ("_info",),
}


@dataclass(frozen=True)
class MetricInfo:
    """What one declared metric family is: its name, kind, labels and help text.

    Attributes:
        name: Family name without the series suffix (a counter `x_total` is family `x`).
        kind: 'counter', 'gauge', 'histogram' or 'info'.
        labels: Label names, in declaration order.
        help: The help text shown in the exposition.
    """

    name: str
    kind: Kind
    labels: tuple[str, ...]
    help: str

    @property
    def series(self) -> tuple[str, ...]:
        """Names of the series this family exposes (those PromQL can select)."""
        return tuple(self.name + suffix for suffix in _SERIES_SUFFIXES[self.kind])


class PipelineMetrics:
    """Every metric of the pipeline, declared on one registry.

    Counters only go up (take `rate()`); gauges are set to the current value; histograms observe
    one value per event (use `histogram_quantile()` on `_bucket`).

    Attributes:
        frames_in: Counter `reidstream_frames_in_total{camera}`: frames decoded from the camera
            and handed to the pipeline, dropped or not.
        frames_dropped: Counter `reidstream_frames_dropped_total{camera}`: frames a live camera
            source discarded because the detect queue was full (the oldest one goes first).
        camera_connected: Gauge `reidstream_camera_connected{camera}`: 1 while the source has a
            working stream, 0 while it is reconnecting or has given up.
        camera_fps: Gauge `reidstream_camera_fps{camera}`: the stream's nominal frame rate as the
            source reports it; compare with `rate(reidstream_frames_in_total)` to see a camera
            that delivers fewer frames than it announces.
        camera_reconnects: Counter `reidstream_camera_reconnects_total{camera}`: attempts to
            reopen a stream that failed or ended.
        queue_depth: Gauge `reidstream_queue_depth{stage}`: items waiting in the bounded queue in
            front of the stage; one stuck near `queue_capacity` marks the bottleneck.
        queue_capacity: Gauge `reidstream_queue_capacity{stage}`: that queue's bound.
        batch_size: Histogram `reidstream_batch_size{stage}`: items per batch the stage
            processed (frames for detect, clips for embed); `_sum` counts every item.
        stage_latency: Histogram `reidstream_stage_latency_seconds{stage}`: wall time the stage
            spent on one batch, excluding the time the batch waited in its queue.
        frame_to_link_latency: Histogram `reidstream_frame_to_link_latency_seconds{camera}`: from
            the capture time of the newest frame of the clip that produced an identity link to
            the broker's acknowledgement of that link (or its write, with only the jsonl sink).
        frames_rejected: Counter `reidstream_frames_rejected_total{camera}`: frames a source
            decoded but could not use (not an (H, W, 3) uint8 image, or empty).
        crops_rejected: Counter `reidstream_crops_rejected_total{camera, reason}`: tracked boxes
            whose crop failed a quality gate (`reason`: small, low_confidence, truncated); the
            tracker still follows them, the ReID model does not see them.
        stage_errors: Counter `reidstream_stage_errors_total{stage}`: batches a stage failed on;
            the error is logged with the number of items lost, and the stage goes on.
        links_published: Counter `reidstream_links_published_total{sink}`: identity links
            delivered, i.e. acknowledged by the broker (`sink="kafka"`) or written to the file
            (`sink="jsonl"`); at-least-once: a re-sent link counts once per acknowledgement.
        embeddings_published: Counter `reidstream_embeddings_published_total{sink}`: tracklet
            embeddings a worker delivered, the same way.
        publish_errors: Counter `reidstream_publish_errors_total{sink}`: publish attempts that
            failed (broker unreachable, timeout, broker error); the messages stay in the spool
            and are sent again.
        messages_lost: Counter `reidstream_messages_lost_total{sink, kind}`: messages (`kind`:
            link, embedding, closed) a sink never stored: its disk still refused them when the
            process stopped, or the sink failed otherwise; logged at ERROR, and the run exits
            non-zero. A refused write is otherwise retried (counted in publish_errors).
        gallery_identities: Gauge `reidstream_gallery_identities`: global identities the matcher
            holds (bounded by matcher.max_identities).
        match_refusals: Counter `reidstream_match_refusals_total{reason}`: candidate identities
            (among each decision's `matcher.top_k` most similar) a tracklet did not join, by
            `reason`: one of `pipeline.matching.decisions.REFUSAL_REASONS` (threshold,
            same_camera, two_places, transit, deciding, margin, outscored). A two_places count
            that grows with file cameras points at recordings sharing one replay clock.
        spool_messages: Gauge `reidstream_spool_messages`: messages kept locally because the
            broker has not acknowledged them yet; it grows while Kafka is unreachable.
        spool_bytes: Gauge `reidstream_spool_bytes`: size of that spool on disk.
        nonfinite_embeddings: Counter `reidstream_nonfinite_embeddings_total{camera}`: clip
            embeddings with a NaN or infinite value, discarded instead of matched.
        records_rejected: Counter `reidstream_records_rejected_total{consumer, reason}`: records
            the matcher (`consumer="matcher"`) or the links consumer (`"links"`) could not use
            (`reason`: one of `pipeline.messages.encoding.REJECT_REASONS`); each was skipped,
            logged, copied to the dead-letter topic where one is set, and committed past.
        build: Info `reidstream_build_info`: version, ReID engine, model and precision in use.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        """Declares every metric on `registry` (a fresh one when None).

        It is long because it is the one place every metric is declared, one statement each,
        as the module docstring promises; split, a reader would have to look in several.

        Raises:
            ValueError: `registry` already holds a metric of the same name (prometheus_client's
                duplicate check), e.g. when two `PipelineMetrics` share one registry.
        """
        self.registry = CollectorRegistry() if registry is None else registry
        self.declared: dict[str, MetricInfo] = {}
        self._metrics: dict[str, Counter | Gauge | Histogram | Info] = {}
        cam, stage = ("camera",), ("stage",)

        self.frames_in = self._counter(
            "reidstream_frames_in_total", "Frames decoded from the camera.", cam
        )
        self.frames_dropped = self._counter(
            "reidstream_frames_dropped_total",
            "Frames a live source dropped (oldest first) because the detect queue was full.",
            cam,
        )
        self.camera_connected = self._gauge(
            "reidstream_camera_connected", "1 while the camera stream is open, else 0.", cam
        )
        self.camera_fps = self._gauge(
            "reidstream_camera_fps", "Nominal frame rate the camera stream reports.", cam
        )
        self.camera_reconnects = self._counter(
            "reidstream_camera_reconnects_total",
            "Attempts to reopen a camera stream that failed or ended.",
            cam,
        )
        self.frames_rejected = self._counter(
            "reidstream_frames_rejected_total",
            "Frames a source read but could not use (wrong shape or type, empty), discarded.",
            cam,
        )
        self.crops_rejected = self._counter(
            "reidstream_crops_rejected_total",
            "Tracked boxes whose crop failed a quality gate (small, low_confidence, truncated).",
            ("camera", "reason"),
        )
        self.queue_depth = self._gauge(
            "reidstream_queue_depth", "Items waiting in the queue in front of the stage.", stage
        )
        self.queue_capacity = self._gauge(
            "reidstream_queue_capacity", "Bound of the queue in front of the stage.", stage
        )
        self.batch_size = self._histogram(
            "reidstream_batch_size", "Items per batch the stage processed.", stage, BATCH_BUCKETS
        )
        self.stage_latency = self._histogram(
            "reidstream_stage_latency_seconds",
            "Wall time the stage spent on one batch, queue wait excluded.",
            stage,
            LATENCY_BUCKETS,
        )
        self.stage_errors = self._counter(
            "reidstream_stage_errors_total",
            "Batches a stage failed on (logged with the error); their items are lost.",
            stage,
        )
        self.frame_to_link_latency = self._histogram(
            "reidstream_frame_to_link_latency_seconds",
            "Capture of the newest frame of a clip to the broker's acknowledgement of its link.",
            cam,
            FRAME_TO_LINK_BUCKETS,
        )
        self._declare_output_metrics()

    def _declare_output_metrics(self) -> None:
        sink = ("sink",)
        self.links_published = self._counter(
            "reidstream_links_published_total",
            "Identity links delivered: acknowledged by the broker (kafka) or written (jsonl).",
            sink,
        )
        self.embeddings_published = self._counter(
            "reidstream_embeddings_published_total",
            "Tracklet embeddings a worker delivered (acknowledged or written).",
            sink,
        )
        self.publish_errors = self._counter(
            "reidstream_publish_errors_total",
            "Publish attempts that failed; the message stays in the spool and is retried.",
            sink,
        )
        self.messages_lost = self._counter(
            "reidstream_messages_lost_total",
            "Messages a sink never stored (its disk still refused them at shutdown, or an error).",
            ("sink", "kind"),
        )
        self.gallery_identities = self._gauge(
            "reidstream_gallery_identities", "Global identities in the matcher's gallery.", ()
        )
        self.match_refusals = self._counter(
            "reidstream_match_refusals_total",
            "Candidate identities a tracklet did not join, by reason (top-k per decision).",
            ("reason",),
        )
        self.spool_messages = self._gauge(
            "reidstream_spool_messages", "Messages not yet acknowledged by the broker.", ()
        )
        self.spool_bytes = self._gauge(
            "reidstream_spool_bytes", "Size on disk of the unacknowledged messages.", ()
        )
        self.nonfinite_embeddings = self._counter(
            "reidstream_nonfinite_embeddings_total",
            "Clip embeddings with a NaN or infinite value, discarded.",
            ("camera",),
        )
        self.records_rejected = self._counter(
            "reidstream_records_rejected_total",
            "Records a consumer could not use, by reason; skipped and committed past.",
            ("consumer", "reason"),
        )
        self.build = self._info(
            "reidstream_build", "Version, ReID engine, model and precision in use."
        )

    # ------------------------------------------------------------------------------ declaring

    def _record(self, metric: _M, name: str, kind: Kind, labels: tuple[str, ...], help: str) -> _M:
        family = name.removesuffix("_total") if kind == "counter" else name
        self.declared[family] = MetricInfo(family, kind, tuple(labels), help)
        self._metrics[family] = metric
        return metric

    def _counter(self, name: str, help: str, labels: tuple[str, ...]) -> Counter:
        metric = Counter(name, help, labels, registry=self.registry)
        return self._record(metric, name, "counter", labels, help)

    def _gauge(self, name: str, help: str, labels: tuple[str, ...]) -> Gauge:
        metric = Gauge(name, help, labels, registry=self.registry)
        return self._record(metric, name, "gauge", labels, help)

    def _histogram(
        self, name: str, help: str, labels: tuple[str, ...], buckets: tuple[float, ...]
    ) -> Histogram:
        metric = Histogram(name, help, labels, buckets=buckets, registry=self.registry)
        return self._record(metric, name, "histogram", labels, help)

    def _info(self, name: str, help: str) -> Info:
        metric = Info(name, help, registry=self.registry)
        return self._record(metric, name, "info", (), help)

    # -------------------------------------------------------------------------------- queries

    def metric(self, family: str) -> Counter | Gauge | Histogram | Info:
        """The metric object of a declared family (e.g. 'reidstream_frames_in').

        Raises:
            KeyError: `family` is not declared; the message lists those that are.
        """
        try:
            return self._metrics[family]
        except KeyError:
            raise KeyError(
                f"no metric family {family!r}; declared: {', '.join(self.declared)}"
            ) from None

    def series_names(self) -> dict[str, MetricInfo]:
        """Every series name these metrics expose (`x_total`, `x_bucket`, ...) -> its family."""
        return {series: info for info in self.declared.values() for series in info.series}

    # -------------------------------------------------------------------------------- cameras

    def add_camera(self, camera: str) -> None:
        """Creates the camera's series at zero, so that `rate()` and the dashboards see the
        camera from start-up on, not only after its first frame or failure."""
        for metric in self._per_camera():
            metric.labels(camera=camera)
        for reason in CROP_GATES:
            self.crops_rejected.labels(camera=camera, reason=reason)
        self.camera_connected.labels(camera=camera).set(0)

    def remove_camera(self, camera: str) -> None:
        """Drops the series of a camera taken out of the configuration (absent ones are fine)."""
        for metric in self._per_camera():
            metric.remove(camera)
        for reason in CROP_GATES:
            self.crops_rejected.remove(camera, reason)

    def _per_camera(self) -> list[Counter | Gauge | Histogram]:
        return [
            self._metrics[family]
            for family, info in self.declared.items()
            if info.labels == ("camera",)
        ]


#: The registry the pipeline's `/metrics` endpoint serves.
REGISTRY = CollectorRegistry()
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    # The library's global collectors also describe this process; registering the same objects
    # on the pipeline's own registry exposes `process_*`, `python_info` and `python_gc_*` there.
    REGISTRY.register(_collector)
#: The pipeline's metrics on `REGISTRY`.
METRICS = PipelineMetrics(REGISTRY)
