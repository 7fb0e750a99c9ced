"""The configuration schema of the `reidstream` commands (see `pipeline.config` for how it loads).

Each section is a frozen dataclass; every leaf documents what it does and what changing it trades.
`reidstream config --list` prints this schema; `reidstream config` prints the resolved values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from deploy.engines import list_engines
from detectors.registry import list_detectors, list_trackers
from pipeline.stream_settings import (
    CameraConfig,
    DetectStageConfig,
    EmbedStageConfig,
    MatcherConfig,
    MetricsServerConfig,
    OutputConfig,
    RunConfig,
    SourcesConfig,
    SyntheticConfig,
    TrackletConfig,
)
from reid_models import list_models

__all__ = [
    "DetectorConfig",
    "KafkaConfig",
    "ReidEngineConfig",
    "ReidstreamConfig",
    "TensorRTConfig",
    "TrackCommandConfig",
    "TrackerConfig",
]

_HOST_PORT = r"[A-Za-z0-9_.\-]+:\d{1,5}|\[[0-9A-Fa-f:]+\]:\d{1,5}"
#: Kafka's legal topic names.
_TOPIC = r"[A-Za-z0-9._\-]{1,249}"


@dataclass(frozen=True)
class KafkaConfig:
    """Connection to the Kafka cluster that carries identity links and tracklet embeddings."""

    bootstrap_servers: tuple[str, ...] = field(
        default=("localhost:9092",),
        metadata={
            "pattern": _HOST_PORT,
            "help": "Brokers to bootstrap from, as host:port. More than one keeps start-up working "
            "while a broker is down; the client discovers the rest of the cluster itself.",
        },
    )
    client_id: str = field(
        default="reidstream",
        metadata={
            "pattern": r"[A-Za-z0-9._\-]{1,249}",
            "help": "Client id sent to the brokers; appears in broker logs and quotas.",
        },
    )
    request_timeout_ms: int = field(
        default=30_000,
        metadata={
            "ge": 1_000,
            "help": "How long a request waits for a broker's answer. Lower fails over faster on a "
            "dead broker; higher tolerates a slow, loaded cluster.",
        },
    )
    links_topic: str = field(
        default="reidstream.identity_links",
        metadata={
            "pattern": _TOPIC,
            "help": "Topic of the identity links (reidstream.identity_link/1), keyed by global id.",
        },
    )
    embeddings_topic: str = field(
        default="reidstream.tracklet_embeddings",
        metadata={
            "pattern": _TOPIC,
            "help": "Topic of the workers' tracklet embeddings (reidstream.tracklet_embedding/1), "
            "keyed by camera id; one matcher must read all of a site's partitions.",
        },
    )
    group_id: str = field(
        default="reidstream-matcher",
        metadata={
            "pattern": r"[A-Za-z0-9._\-]{1,249}",
            "help": "Consumer group of `reidstream matcher` (offsets are committed only after the "
            "links they produced are acknowledged).",
        },
    )
    max_poll_interval_ms: int = field(
        default=300_000,
        metadata={
            "ge": 1_000,
            "help": "Consumer group rebalance timeout of `reidstream matcher` and `consume "
            "--group`: a member silent this long is replaced. Tansu, the local test broker, "
            "completes a group join only when it expires: set 2000-3000 there.",
        },
    )
    linger_ms: int = field(
        default=5,
        metadata={
            "ge": 0,
            "help": "How long the producer waits to fill a batch; higher sends fewer, larger "
            "requests at the cost of latency.",
        },
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = field(
        default="PLAINTEXT",
        metadata={"help": "How clients talk to the brokers (passed to kafka-python)."},
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = (
        field(default=None, metadata={"help": "SASL mechanism, with a SASL_* security_protocol."})
    )
    sasl_plain_username: str | None = field(
        default=None, metadata={"help": "SASL PLAIN/SCRAM user name."}
    )
    sasl_plain_password: str | None = field(
        default=None,
        metadata={
            "secret": True,
            "help": "SASL PLAIN/SCRAM password; give it in the environment "
            "(REIDSTREAM_KAFKA__SASL_PLAIN_PASSWORD) rather than a file. Never written out.",
        },
    )
    ssl_cafile: Path | None = field(
        default=None, metadata={"help": "CA certificate file to verify brokers with."}
    )
    ssl_certfile: Path | None = field(
        default=None, metadata={"help": "Client certificate file (mutual TLS)."}
    )
    ssl_keyfile: Path | None = field(
        default=None, metadata={"help": "Client private key file (mutual TLS)."}
    )
    ssl_password: str | None = field(
        default=None,
        metadata={"secret": True, "help": "Password of ssl_keyfile. Never written out."},
    )
    ssl_check_hostname: bool = field(
        default=True,
        metadata={"help": "Check that the broker's certificate names the host connected to."},
    )

    def __post_init__(self) -> None:
        sasl = self.security_protocol.startswith("SASL")
        if sasl and self.sasl_mechanism is None:
            raise ValueError(
                f"sasl_mechanism: security_protocol = {self.security_protocol!r} needs one"
            )
        if self.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512") and (
            self.sasl_plain_username is None or self.sasl_plain_password is None
        ):
            raise ValueError(
                f"sasl_mechanism = {self.sasl_mechanism!r} needs sasl_plain_username and "
                f"sasl_plain_password"
            )

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments every kafka-python client of reidstream takes (connection, TLS,
        SASL); producers and consumers add their own."""
        options: dict[str, Any] = {
            "bootstrap_servers": list(self.bootstrap_servers),
            "client_id": self.client_id,
            "request_timeout_ms": self.request_timeout_ms,
            "security_protocol": self.security_protocol,
            "ssl_check_hostname": self.ssl_check_hostname,
        }
        optional = {
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.sasl_plain_username,
            "sasl_plain_password": self.sasl_plain_password,
            "ssl_cafile": self.ssl_cafile,
            "ssl_certfile": self.ssl_certfile,
            "ssl_keyfile": self.ssl_keyfile,
            "ssl_password": self.ssl_password,
        }
        options |= {k: str(v) if isinstance(v, Path) else v for k, v in optional.items() if v}
        return options


#: Detectors that load a weights file the user gives; the others need none.
_WEIGHTED_DETECTORS = ("onnx-yolo", "ultralytics")


@dataclass(frozen=True)
class DetectorConfig:
    """The person detector run on every frame (see `detectors.create_detector`)."""

    name: str = field(
        default="onnx-yolo",
        metadata={
            "help": "Detector backend: 'onnx-yolo' (a YOLOv5 or YOLOv8/11 ONNX export run by ONNX "
            "Runtime), 'ultralytics' (any Ultralytics YOLO .pt, exported .onnx or TensorRT "
            ".engine) or 'hog' (OpenCV's HOG people detector: no weights, CPU, far less "
            "accurate)."
        },
    )
    weights: Path | None = field(
        default=None,
        metadata={
            "help": "Path to the detector's weights file; required by onnx-yolo and ultralytics, "
            "refused by hog. Nothing is ever downloaded."
        },
    )
    confidence: float = field(
        default=0.1,
        metadata={
            "ge": 0.0,
            "le": 1.0,
            "help": "Boxes scoring at or below this are dropped. Keep it at or below "
            "tracker.track_low_thresh: ByteTrack's second association uses the low-score boxes to "
            "keep occluded people tracked.",
        },
    )
    iou: float = field(
        default=0.7,
        metadata={
            "gt": 0.0,
            "le": 1.0,
            "help": "NMS IoU threshold: of two same-class boxes overlapping more than this, the "
            "lower-scored is dropped. Lower merges people standing close; higher keeps duplicates.",
        },
    )
    input_size: int | None = field(
        default=None,
        metadata={
            "ge": 32,
            "help": "Network input side in pixels (YOLO: multiple of 32, default 640 or the "
            "export's fixed size; HOG: longer side the frame is resized to, default 800). Larger "
            "finds smaller people at quadratic cost.",
        },
    )
    classes: tuple[int, ...] = field(
        default=(0,),
        metadata={"ge": 0, "help": "Class ids kept (COCO: 0 = person). HOG knows person only."},
    )
    max_detections: int = field(
        default=300, metadata={"ge": 1, "help": "Most boxes kept per frame."}
    )
    onnx_layout: Literal["auto", "yolov5", "yolov8"] = field(
        default="auto",
        metadata={
            "help": "Output layout of an onnx-yolo model: 'auto' reads it from the output shape "
            "and the export's metadata; force 'yolov5' (N, boxes, 5+classes) or 'yolov8' (N, "
            "4+classes, boxes) if auto guesses wrong."
        },
    )

    def __post_init__(self) -> None:
        if self.name not in list_detectors():
            raise ValueError(f"name = {self.name!r}: expected one of {', '.join(list_detectors())}")
        if self.name not in _WEIGHTED_DETECTORS and self.weights is not None:
            raise ValueError(
                f"weights = {str(self.weights)!r}: the {self.name!r} detector takes no weights"
            )
        if not self.classes:
            raise ValueError("classes: expected at least one class id, got none")

    def missing(self) -> list[str]:
        """What a command that runs the detector needs and this config lacks.

        Not checked on construction: every command shares the config, and only those that run
        the detector need its weights.
        """
        if self.name in _WEIGHTED_DETECTORS and self.weights is None:
            return [
                f"detector.weights: the {self.name!r} detector needs a weights file, e.g. "
                f"detector.weights=models/yolov5n_coco.onnx (or --weights); none given"
            ]
        return []

    def options(self, *, device: str) -> dict[str, Any]:
        """Keyword arguments for `detectors.create_detector(self.name, ...)`."""
        options: dict[str, Any] = {
            "weights": self.weights,
            "confidence": self.confidence,
            "iou": self.iou,
            "input_size": self.input_size,
            "classes": self.classes,
            "max_detections": self.max_detections,
            "device": device,
        }
        if self.name == "onnx-yolo":
            options["layout"] = self.onnx_layout
        return options


#: The options of Ultralytics' bytetrack.yaml; botsort.yaml has these and the BoT-SORT ones.
_BYTETRACK_KEYS = (
    "track_high_thresh",
    "track_low_thresh",
    "new_track_thresh",
    "track_buffer",
    "match_thresh",
    "fuse_score",
)


@dataclass(frozen=True)
class TrackerConfig:
    """The single-camera tracker, one state per camera (Ultralytics' ByteTrack or BoT-SORT).

    The defaults are those of Ultralytics' `cfg/trackers/bytetrack.yaml` and `botsort.yaml`.
    """

    name: str = field(
        default="bytetrack",
        metadata={
            "help": "Tracker: 'bytetrack' (motion only, fastest) or 'botsort' (adds camera-motion "
            "compensation and optional appearance matching)."
        },
    )
    track_high_thresh: float = field(
        default=0.25,
        metadata={
            "ge": 0.0,
            "le": 1.0,
            "help": "Boxes scoring at least this take part in the first association; raise for "
            "cleaner tracks, lower to keep more people.",
        },
    )
    track_low_thresh: float = field(
        default=0.1,
        metadata={
            "ge": 0.0,
            "le": 1.0,
            "help": "Boxes above this (below track_high_thresh) take part in the second, IoU-only "
            "association that keeps partly occluded people tracked.",
        },
    )
    new_track_thresh: float = field(
        default=0.25,
        metadata={
            "ge": 0.0,
            "le": 1.0,
            "help": "An unmatched box starts a new track only if it scores this much; higher means "
            "fewer false tracks, later starts.",
        },
    )
    track_buffer: int = field(
        default=30,
        metadata={
            "ge": 1,
            "help": "Frames a lost track is kept to be found again (30 = 3 s at 10 fps). Longer "
            "bridges longer occlusions but risks giving an old id to someone else.",
        },
    )
    match_thresh: float = field(
        default=0.8,
        metadata={
            "ge": 0.0,
            "le": 1.0,
            "help": "Largest association cost (1 - IoU, fused with the score) accepted; higher "
            "matches more loosely.",
        },
    )
    fuse_score: bool = field(
        default=True,
        metadata={"help": "Fuse the detection score into the IoU cost of the first association."},
    )
    gmc_method: Literal["sparseOptFlow", "orb", "sift", "ecc", "none"] = field(
        default="sparseOptFlow",
        metadata={
            "help": "botsort only: global motion compensation between frames. Helps a moving or "
            "shaking camera; 'none' saves its CPU cost on fixed cameras."
        },
    )
    proximity_thresh: float = field(
        default=0.5,
        metadata={
            "ge": 0.0,
            "le": 1.0,
            "help": "botsort only: smallest IoU for a track and a box to be compared by "
            "appearance.",
        },
    )
    appearance_thresh: float = field(
        default=0.8,
        metadata={
            "ge": 0.0,
            "le": 1.0,
            "help": "botsort only: smallest appearance similarity accepted when with_reid is on; "
            "raise to avoid identity swaps.",
        },
    )
    with_reid: bool = field(
        default=False,
        metadata={
            "help": "botsort only: also match by appearance, with tracker.reid_model (costs one "
            "ReID inference per box)."
        },
    )
    reid_model: Path | None = field(
        default=None,
        metadata={
            "help": "botsort only: ReID model file Ultralytics can load, required by with_reid."
        },
    )

    def __post_init__(self) -> None:
        if self.name not in list_trackers():
            raise ValueError(f"name = {self.name!r}: expected one of {', '.join(list_trackers())}")
        if self.track_low_thresh > self.track_high_thresh:
            raise ValueError(
                f"track_low_thresh = {self.track_low_thresh} must not exceed "
                f"track_high_thresh = {self.track_high_thresh}"
            )
        if self.with_reid and (self.name != "botsort" or self.reid_model is None):
            raise ValueError(
                "with_reid: needs name = 'botsort' and a tracker.reid_model file, got "
                f"name = {self.name!r}, reid_model = {self.reid_model!r}"
            )

    def options(self, *, device: str) -> dict[str, Any]:
        """Keyword arguments for `detectors.create_tracker(self.name, ...)`."""
        options = {key: getattr(self, key) for key in _BYTETRACK_KEYS}
        if self.name == "botsort":
            options |= {
                "gmc_method": self.gmc_method,
                "proximity_thresh": self.proximity_thresh,
                "appearance_thresh": self.appearance_thresh,
                "with_reid": self.with_reid,
                "reid_model": self.reid_model,
                "device": device,
            }
        return options


@dataclass(frozen=True)
class TrackCommandConfig:
    """Outputs of `reidstream track` (detection and tracking of one video file)."""

    out_dir: Path = field(
        default=Path("runs/track"),
        metadata={
            "help": "Folder for <video>.txt (MOTChallenge results), <video>.mp4 and "
            "<video>.config.yaml (this configuration, resolved)."
        },
    )
    save_video: bool = field(
        default=False, metadata={"help": "Also write the video with the tracks drawn on it."}
    )
    batch_size: int = field(
        default=1,
        metadata={
            "ge": 1,
            "le": 64,
            "help": "Consecutive frames per detector call. Larger batches pay off on a GPU; on a "
            "CPU they mostly add latency.",
        },
    )
    max_frames: int | None = field(
        default=None,
        metadata={"ge": 1, "help": "Stop after this many frames (default: the whole video)."},
    )


@dataclass(frozen=True)
class TensorRTConfig:
    """How the tensorrt engine builds its plan from the exported ONNX graph."""

    workspace_gib: float = field(
        default=4.0,
        metadata={
            "gt": 0.0,
            "help": "Scratch GPU memory (GiB) the builder may give one layer. More lets it pick "
            "faster tactics; less leaves room for other processes on the GPU.",
        },
    )
    min_batch: int = field(
        default=1,
        metadata={
            "ge": 1,
            "help": "Smallest batch of the optimisation profile; batches below it are refused.",
        },
    )
    opt_batch: int = field(
        default=16,
        metadata={
            "ge": 1,
            "help": "Batch the kernels are tuned for; set it to the typical batch the stage forms "
            "(cameras x people in view). Other batches run, a little slower.",
        },
    )
    max_batch: int | None = field(
        default=None,
        metadata={
            "ge": 1,
            "help": "Largest batch of the profile (default: reid.max_batch). Larger accepts bigger "
            "batches at the cost of build time and activation memory.",
        },
    )
    cache_dir: Path | None = field(
        default=None,
        metadata={
            "help": "Folder of built plans, keyed by model file, GPU and options (default: "
            "~/.cache/reidstream/engines). A build takes minutes; the cache makes restarts instant."
        },
    )
    calibration_dir: Path | None = field(
        default=None,
        metadata={
            "help": "Folder of sample clips for int8 entropy calibration; required by "
            "reid.precision=int8. Clips from the deployment's own cameras calibrate best."
        },
    )
    calibration_batches: int = field(
        default=32,
        metadata={
            "ge": 1,
            "help": "Most calibration batches read. More gives steadier int8 ranges at the cost of "
            "a longer build.",
        },
    )

    def __post_init__(self) -> None:
        if self.min_batch > self.opt_batch:
            raise ValueError(
                f"min_batch = {self.min_batch} must not exceed opt_batch = {self.opt_batch}"
            )
        if self.max_batch is not None and self.max_batch < self.opt_batch:
            raise ValueError(
                f"max_batch = {self.max_batch} must be at least opt_batch = {self.opt_batch}"
            )


#: The ReID model `reidstream train --config trainers/configs/synthetic_demo.yaml` trains on the
#: synthetic people, shipped with the package: the default when no model is configured.
BUNDLED_REID_CHECKPOINT = Path(__file__).parent / "assets" / "synthetic_reid.pt"

#: Engines that read an ONNX file and those that build a registered model.
_ONNX_ENGINES = ("onnxruntime", "tensorrt", "external-onnx")


@dataclass(frozen=True)
class ReidEngineConfig:
    """The video ReID model and the engine that runs it (see `deploy.engines.create_engine`)."""

    engine: str = field(
        default="auto",
        metadata={
            "help": "Runtime: 'torch' (PyTorch, eager or compiled), 'onnxruntime' (an exported "
            "graph), 'tensorrt' (a TensorRT plan built from the graph; NVIDIA GPUs, fastest), "
            "'external-onnx' (an image ReID ONNX model such as OSNet, applied per frame and "
            "averaged) or 'auto' (the fastest installed one that has what it needs: tensorrt > "
            "onnxruntime on CUDA > torch on CUDA > onnxruntime on CPU > torch on CPU)."
        },
    )
    model: str | None = field(
        default=None,
        metadata={
            "help": "Registered video ReID model (e.g. ap3d_r50). Must match checkpoint and "
            "onnx_path; none for external-onnx. Default none: the model a `reidstream train` "
            "checkpoint names, and with no checkpoint or ONNX file either, the bundled model "
            "trained on the synthetic people (for the demo; it knows nothing of real footage)."
        },
    )
    checkpoint: Path | None = field(
        default=None,
        metadata={
            "help": "Trained weights of `model` for the torch engine (a reidstream checkpoint or a "
            "state dict). Without one the network is untrained and its embeddings are useless."
        },
    )
    onnx_path: Path | None = field(
        default=None,
        metadata={
            "help": "Exported graph (reidstream export; its .json sidecar beside it) for "
            "onnxruntime and tensorrt, or the image ReID model for external-onnx."
        },
    )
    precision: Literal["fp32", "fp16", "bf16", "int8"] = field(
        default="fp32",
        metadata={
            "help": "Arithmetic precision. fp16/bf16 roughly double GPU throughput for a cosine "
            "change below 1e-3; int8 (tensorrt only, needs calibration) is faster again but "
            "costs accuracy. On a CPU keep fp32."
        },
    )
    device: str = field(
        default="auto",
        metadata={
            "pattern": r"auto|cpu|cuda(:\d+)?",
            "help": "Device of the ReID engine; 'auto' follows the top-level device.",
        },
    )
    max_batch: int = field(
        default=32,
        metadata={
            "ge": 1,
            "le": 1024,
            "help": "Most clips per engine call; larger batches raise GPU throughput but also the "
            "latency of each batch and the memory it needs.",
        },
    )
    compile: bool = field(
        default=False,
        metadata={
            "help": "torch engine: wrap the model in torch.compile. Faster steady state on GPU "
            "(CUDA graphs with compile_mode=reduce-overhead); each batch-size bucket compiles on "
            "first use, which takes tens of seconds."
        },
    )
    compile_mode: Literal[
        "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"
    ] = field(
        default="reduce-overhead",
        metadata={
            "help": "torch.compile mode: 'reduce-overhead' adds CUDA graphs (least launch "
            "overhead, more GPU memory), 'max-autotune' also benchmarks kernels (slowest start), "
            "'default' compiles fastest."
        },
    )
    channels_last: bool = field(
        default=False,
        metadata={
            "help": "torch engine: channels-last memory layout; usually faster with fp16/bf16 on "
            "tensor-core GPUs, often slower on CPUs."
        },
    )
    intra_op_threads: int = field(
        default=0,
        metadata={
            "ge": 0,
            "help": "onnxruntime and external-onnx: CPU threads per session (0: one per core). "
            "Lower it when several engines or processes share the CPU.",
        },
    )
    tensorrt: TensorRTConfig = field(default_factory=TensorRTConfig)

    def __post_init__(self) -> None:
        if self.engine not in list_engines():
            raise ValueError(
                f"engine = {self.engine!r}: expected one of {', '.join(list_engines())}"
            )
        if self.model is not None and self.model not in list_models():
            raise ValueError(f"model = {self.model!r}: expected one of {', '.join(list_models())}")
        if self.precision == "int8" and self.engine not in ("tensorrt", "auto"):
            raise ValueError(f"precision = 'int8' needs engine = 'tensorrt', got {self.engine!r}")

    def missing(self) -> list[str]:
        """What a command that embeds clips needs and this config lacks."""
        if self.engine in _ONNX_ENGINES and self.onnx_path is None:
            return [f"reid.onnx_path: the {self.engine!r} engine needs an ONNX file; none given"]
        return []

    @property
    def uses_bundled_model(self) -> bool:
        """Whether nothing names a model, so the bundled synthetic-scene model is used."""
        return (
            self.engine in ("torch", "auto")
            and self.model is None
            and self.checkpoint is None
            and self.onnx_path is None
        )

    def options(self, *, device: str) -> dict[str, Any]:
        """Keyword arguments for `deploy.engines.create_engine(self.engine, ...)`.

        Args:
            device: The resolved top-level device, used when ``reid.device`` is 'auto'.
        """
        options: dict[str, Any] = {
            "model": None if self.engine == "external-onnx" else self.model,
            "checkpoint": BUNDLED_REID_CHECKPOINT if self.uses_bundled_model else self.checkpoint,
            "onnx_path": self.onnx_path,
            "device": device if self.device == "auto" else self.device,
            "precision": self.precision,
            "max_batch": self.max_batch,
        }
        if self.engine in ("torch", "auto"):
            options |= {
                "compile": self.compile,
                "compile_mode": self.compile_mode,
                "channels_last": self.channels_last,
            }
        if self.engine in ("onnxruntime", "external-onnx", "auto"):
            options["intra_op_threads"] = self.intra_op_threads
        if self.engine in ("tensorrt", "auto"):
            trt = self.tensorrt
            if self.engine == "tensorrt":  # the profile's largest batch bounds every call
                options["max_batch"] = trt.max_batch or self.max_batch
            options |= {
                "workspace_gib": trt.workspace_gib,
                "min_batch": trt.min_batch,
                "opt_batch": trt.opt_batch,
                "cache_dir": trt.cache_dir,
                "calibration_dir": trt.calibration_dir,
                "calibration_batches": trt.calibration_batches,
            }
        return options


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
    track: TrackCommandConfig = field(default_factory=TrackCommandConfig)
    reid: ReidEngineConfig = field(default_factory=ReidEngineConfig)
    cameras: tuple[CameraConfig, ...] = field(
        default=(),
        metadata={
            "help": "The cameras, each {id, uri, live, replay, loop, fps} (see cameras[].*). None: "
            "the synthetic multi-camera scene of synthetic.* is the source."
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

    def __post_init__(self) -> None:
        ids = [c.id for c in self.cameras]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"cameras: each id at most once, repeated: {repeated}")
        known = set(ids) if self.cameras else set(self.synthetic_camera_ids)
        named = {c for group in self.matcher.overlapping_cameras for c in group}
        named |= {c for t in self.matcher.transitions for c in (t.source, t.target)}
        if unknown := sorted(named - known):
            raise ValueError(
                f"matcher: cameras {unknown} are not configured (cameras: {sorted(known)})"
            )

    @property
    def synthetic_camera_ids(self) -> tuple[str, ...]:
        """Ids of the synthetic scene's cameras this process reads."""
        every = tuple(f"cam{c + 1}" for c in range(self.synthetic.cameras))
        only = self.synthetic.only_cameras
        return tuple(c for c in every if c in only) if only else every
