"""Configuration sections of the streaming job (`reidstream run`, `worker`, `matcher`, `demo`).

    cameras[]  sources  synthetic      where frames come from
    detect     tracklets  embed        how they are batched, cut into clips and embedded
    matcher                            how tracklets become global identities
    output     metrics  run            where links go, what is served, what a run leaves behind

Every leaf says what it does and what raising or lowering it trades; `reidstream config --list`
prints them. `pipeline.settings.ReidstreamConfig` holds these sections beside the detector,
tracker, ReID engine and Kafka ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pipeline.types import CAMERA_ID_PATTERN

__all__ = [
    "CameraConfig",
    "DetectStageConfig",
    "EmbedStageConfig",
    "MatcherConfig",
    "MetricsServerConfig",
    "OutputConfig",
    "RunConfig",
    "SourcesConfig",
    "SyntheticConfig",
    "TrackletConfig",
    "TransitionConfig",
]

#: URI schemes OpenCV's FFmpeg backend reads as network streams.
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
_WEBCAM = re.compile(r"webcam:(\d+)")


def _check_camera_id(value: str, what: str) -> None:
    if not CAMERA_ID_PATTERN.fullmatch(value):
        raise ValueError(
            f"{what} = {value!r}: expected 1-128 characters of letters, digits, '_', '.', '-' "
            f"starting with a letter or digit"
        )


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
            "help": "Where the frames come from (required): a video file path, a stream URL "
            "(rtsp://, rtsps://, rtmp://, http(s)://, udp://, tcp://, srt://, read through "
            "OpenCV's FFmpeg backend) or webcam:N for local capture device N."
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

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("id: every camera needs an id, e.g. id: entrance-1")
        _check_camera_id(self.id, "id")
        if not self.uri:
            raise ValueError(f"uri: camera {self.id!r} needs a uri (file, stream URL, webcam:N)")

    @property
    def kind(self) -> Literal["file", "stream", "webcam"]:
        """What `uri` names."""
        if _WEBCAM.fullmatch(self.uri):
            return "webcam"
        scheme = self.uri.partition("://")[0].lower() if "://" in self.uri else ""
        return "stream" if scheme in STREAM_SCHEMES else "file"

    @property
    def is_live(self) -> bool:
        """`live`, or its default for the kind of source."""
        return self.live if self.live is not None else self.kind != "file"

    @property
    def webcam_index(self) -> int | None:
        match = _WEBCAM.fullmatch(self.uri)
        return int(match[1]) if match else None


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
class SyntheticConfig:
    """The synthetic multi-camera scene, the source used when no camera is configured.

    People (with known global ids) walk along a corridor past the cameras; see
    `trainers.synthetic.SyntheticScene`.
    """

    cameras: int = field(
        default=3,
        metadata={"ge": 2, "le": 16, "help": "Cameras along the corridor (cam1, cam2, ...)."},
    )
    people: int = field(
        default=12, metadata={"ge": 1, "help": "People, each walking the whole corridor once."}
    )
    duration_s: float = field(
        default=60.0,
        metadata={
            "gt": 0,
            "help": "Length of the scene; every person needs time to pass two cameras.",
        },
    )
    fps: float = field(
        default=10.0, metadata={"gt": 0, "help": "Frames per second of every camera."}
    )
    size: tuple[int, int] = field(
        default=(360, 640), metadata={"ge": 32, "help": "(H, W) of every camera frame."}
    )
    seed: int = field(
        default=0, metadata={"ge": 0, "help": "Everything in the scene is a function of it."}
    )
    overlap: float = field(
        default=-0.25,
        metadata={
            "gt": -1.0,
            "le": 0.9,
            "help": "Fraction of a view shared with the next camera; negative leaves a blind gap "
            "of that fraction of a view between them (the default: people vanish for a moment).",
        },
    )
    twin_fraction: float = field(
        default=0.0,
        metadata={
            "ge": 0.0,
            "le": 1.0,
            "help": "Fraction of people in look-alike pairs that differ only in gait: harder to "
            "tell apart, for stress tests of the matcher.",
        },
    )
    replay: Literal["native", "fast"] = field(
        default="native",
        metadata={
            "help": "'native' renders frames at the scene's frame rate, like live cameras (frames "
            "are dropped when the pipeline falls behind); 'fast' as fast as the pipeline takes "
            "them."
        },
    )
    only_cameras: tuple[str, ...] = field(
        default=(),
        metadata={
            "help": "Read only these cameras of the scene (default: all); distributed workers "
            "split one scene this way."
        },
    )
    detections: Literal["truth", "detector"] = field(
        default="truth",
        metadata={
            "help": "'truth': the scene's ground-truth boxes made noisy (jitter, misses), no "
            "detector is run; 'detector': the configured detector.* runs on the rendered frames."
        },
    )
    box_jitter: float = field(
        default=0.04,
        metadata={
            "ge": 0.0,
            "le": 0.5,
            "help": "truth only: standard deviation of the noise added to each box side, as a "
            "fraction of the box height.",
        },
    )
    miss_rate: float = field(
        default=0.05,
        metadata={
            "ge": 0.0,
            "le": 1.0,
            "help": "truth only: probability that a visible person is missed.",
        },
    )
    min_visible: float = field(
        default=0.3,
        metadata={
            "ge": 0.0,
            "le": 1.0,
            "help": "truth only: people with a smaller visible fraction (occluded, at the border) "
            "are not reported, as a detector would miss them.",
        },
    )

    def __post_init__(self) -> None:
        ids = {f"cam{c + 1}" for c in range(self.cameras)}
        unknown = sorted(set(self.only_cameras) - ids)
        if unknown:
            raise ValueError(
                f"only_cameras = {list(self.only_cameras)}: {unknown} not in the scene's "
                f"cameras {sorted(ids)}"
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
class TransitionConfig:
    """How long people take from one camera to another (a camera-topology constraint)."""

    source: str = field(default="", metadata={"help": "Camera a person leaves (required)."})
    target: str = field(default="", metadata={"help": "Camera the person reaches next (required)."})
    min_s: float = field(
        default=0.0,
        metadata={
            "help": "Shortest time from leaving `source` to appearing on `target`; negative when "
            "the views overlap."
        },
    )
    max_s: float = field(
        default=60.0, metadata={"help": "Longest such time; a longer gap cannot be the same walk."}
    )
    both_ways: bool = field(
        default=True, metadata={"help": "The same window applies from target to source."}
    )

    def __post_init__(self) -> None:
        for what, value in (("source", self.source), ("target", self.target)):
            if not value:
                raise ValueError(f"{what}: required, a camera id")
            _check_camera_id(value, what)
        if self.max_s < self.min_s:
            raise ValueError(f"max_s = {self.max_s} must be at least min_s = {self.min_s}")


@dataclass(frozen=True)
class MatcherConfig:
    """The global identity gallery and how tracklets are assigned to it."""

    threshold: float = field(
        default=0.6,
        metadata={
            "ge": -1.0,
            "le": 1.0,
            "help": "Least cosine similarity between a tracklet and an identity for the tracklet "
            "to join it; below, it opens a new global id. Raising it splits one person into "
            "several ids (fewer false merges); lowering it merges different people. Depends on "
            "the model: measure same vs different person similarities on your cameras.",
        },
    )
    switch_margin: float = field(
        default=0.05,
        metadata={
            "ge": 0.0,
            "le": 2.0,
            "help": "A tracklet already linked moves to another identity only if that one is more "
            "similar by this margin. Higher keeps ids stable; lower corrects early mistakes "
            "sooner.",
        },
    )
    ttl_s: float = field(
        default=600.0,
        metadata={
            "gt": 0.0,
            "help": "An identity not seen on any camera for this long (stream time) is forgotten: "
            "a later return gets a new global id. Longer re-identifies people after long "
            "absences, with a larger gallery and more chances of a false match.",
        },
    )
    max_identities: int = field(
        default=10_000,
        metadata={
            "ge": 1,
            "help": "Gallery size bound; beyond it the identity seen longest ago is forgotten "
            "first. Bounds memory and matching time (linear in the gallery size).",
        },
    )
    silent_tracklet_s: float = field(
        default=30.0,
        metadata={
            "gt": 0.0,
            "help": "A tracklet counts as in view (so its person cannot be matched elsewhere) "
            "until its end arrives; one that sent no clip for this long (stream time) counts as "
            "ended at its last clip, in case its worker died before ending it. Longer keeps a "
            "stalled camera's people from being matched elsewhere for longer.",
        },
    )
    index: Literal["exact", "faiss"] = field(
        default="exact",
        metadata={
            "help": "How the identities above the threshold are found: 'exact' compares each "
            "tracklet with every identity (one matrix product; 54 ms per 32 clips at 100k 512-d "
            "identities on 2 CPU cores); 'faiss' asks a FAISS inverted-file index "
            "(reidstream[faiss]), about 2.5x faster at 100k identities but approximate (it found "
            "60-77% of them on random embeddings) and it stalls for its training; see "
            "BENCHMARKS.md."
        },
    )
    nprobe: int = field(
        default=64,
        metadata={
            "ge": 1,
            "help": "index = 'faiss': inverted lists searched per query (of 4 sqrt(identities)). "
            "More finds more of the identities above the threshold, and costs more.",
        },
    )
    overlapping_cameras: tuple[tuple[str, ...], ...] = field(
        default=(),
        metadata={
            "help": "Groups of cameras whose views overlap, e.g. [[cam1, cam2]]: one person may "
            "be on two of them at once. Elsewhere a person is never in two places at the same "
            "time, and two tracklets overlapping in time on one camera are never one person."
        },
    )
    transitions: tuple[TransitionConfig, ...] = field(
        default=(),
        metadata={
            "help": "Optional camera-to-camera transit time windows: a tracklet may continue an "
            "identity last seen on the source camera only if it starts within [min_s, max_s] "
            "after that sighting ends. Pairs without a window are not constrained."
        },
    )

    def __post_init__(self) -> None:
        for group in self.overlapping_cameras:
            if len(group) < 2:
                raise ValueError(
                    f"overlapping_cameras: each group names at least two cameras, got {list(group)}"
                )
            for camera in group:
                _check_camera_id(camera, "overlapping_cameras")


@dataclass(frozen=True)
class OutputConfig:
    """Where messages go and how undelivered ones are kept."""

    sinks: tuple[Literal["kafka", "jsonl"], ...] = field(
        default=("kafka",),
        metadata={
            "help": "Where identity links (and, from a worker, tracklet embeddings) are published: "
            "'kafka' (kafka.*; with an on-disk spool while the broker is unreachable) and/or "
            "'jsonl' (one JSON message per line in jsonl_path, for runs without Kafka)."
        },
    )
    jsonl_path: Path | None = field(
        default=None,
        metadata={"help": "File the jsonl sink appends to (default: run.out_dir/links.jsonl)."},
    )
    spool_dir: Path | None = field(
        default=None,
        metadata={
            "help": "Folder of the Kafka spool, a SQLite file of the messages the broker has not "
            "acknowledged yet; it survives restarts, so a crash loses nothing (default: "
            "run.out_dir/spool). One spool per process."
        },
    )
    spool_max_mb: float = field(
        default=512.0,
        metadata={
            "gt": 0.0,
            "help": "Bound of the spool. When it is full, publishing waits: the stages behind it "
            "fill and live cameras drop frames (counted) rather than lose a link.",
        },
    )

    def __post_init__(self) -> None:
        if not self.sinks:
            raise ValueError("sinks: expected at least one of 'kafka', 'jsonl'")
        if len(set(self.sinks)) != len(self.sinks):
            raise ValueError(f"sinks = {list(self.sinks)}: each sink at most once")


@dataclass(frozen=True)
class MetricsServerConfig:
    """The HTTP endpoint serving Prometheus metrics and the health report."""

    address: str = field(
        default="0.0.0.0:9400",
        metadata={
            "pattern": r"|[A-Za-z0-9_.\-]+:\d{1,5}|\[[0-9A-Fa-f:]+\]:\d{1,5}",
            "help": "host:port of /metrics and /healthz (port 0: any free port; empty: no server).",
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
            "(mosaic.png with the global ids drawn), and, on the synthetic scene, score the "
            "global ids against the ground truth (IDF1)."
        },
    )
    max_duration_s: float | None = field(
        default=None,
        metadata={
            "gt": 0.0,
            "help": "Stop after this long (default: when every source has ended).",
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
