"""Configuration section of the ReID engine (`reid.*`, composed into the root schema by
`pipeline.settings`; see `pipeline.config` for how a schema loads).

    reid           the video ReID model, its weights and the runtime that embeds clips
    reid.tensorrt  how the TensorRT engine builds its plan

Plain frozen dataclasses: each leaf's `metadata` says what it does and what changing it trades.
`ReidEngineConfig.options` gives the keyword arguments of `deploy.engines.create_engine`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from deploy.engines import list_engines
from reid_models import list_models

__all__ = ["ReidEngineConfig", "TensorRTConfig"]


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


#: Engines that read an ONNX file and those that build a registered model.
_ONNX_ENGINES = ("onnxruntime", "tensorrt", "external-onnx", "openvino")


@dataclass(frozen=True)
class ReidEngineConfig:
    """The video ReID model and the engine that runs it (see `deploy.engines.create_engine`)."""

    engine: str = field(
        default="auto",
        metadata={
            "help": "Runtime: 'torch' (PyTorch, eager or compiled), 'onnxruntime' (an exported "
            "graph), 'tensorrt' (a TensorRT plan built from the graph; NVIDIA GPUs, fastest), "
            "'external-onnx' (an image ReID ONNX model such as OSNet, applied per frame and "
            "averaged), 'openvino' (an image ReID model as OpenVINO IR .xml + .bin, e.g. Intel's "
            "person-reidentification-retail-*, or ONNX, run by OpenVINO on the CPU; needs "
            "reidstream[openvino]) or 'auto' (the fastest installed one that has what it needs: "
            "tensorrt > onnxruntime on CUDA > torch on CUDA > onnxruntime on CPU > torch on CPU)."
        },
    )
    model: str | None = field(
        default=None,
        metadata={
            "help": "Registered video ReID model (e.g. ap3d_r50). Must match checkpoint and "
            "onnx_path; none for external-onnx and openvino. Default none: the model a "
            "`reidstream train` checkpoint names, and with no checkpoint or ONNX file either, the "
            "bundled model trained on the synthetic people (for the demo; it knows nothing of "
            "real footage)."
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
            "onnxruntime and tensorrt, or the image ReID model for external-onnx and openvino "
            "(an .xml IR takes BGR 0-255 pixels, Intel's convention; an .onnx takes torchreid's "
            "RGB ImageNet normalisation). An .xml picks openvino under engine=auto."
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
            "help": "onnxruntime, external-onnx and openvino: CPU threads per session (0: one per "
            "core). Lower it when several engines or processes share the CPU.",
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

    def options(self, *, device: str, default_checkpoint: Path | None = None) -> dict[str, Any]:
        """Keyword arguments for `deploy.engines.create_engine(self.engine, ...)`.

        Args:
            device: The resolved top-level device, used when ``reid.device`` is 'auto'.
            default_checkpoint: The weights used when nothing names a model
                (`uses_bundled_model`): the streaming job's bundled model.
        """
        options: dict[str, Any] = {
            "model": None if self.engine in ("external-onnx", "openvino") else self.model,
            "checkpoint": default_checkpoint if self.uses_bundled_model else self.checkpoint,
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
        if self.engine in ("onnxruntime", "external-onnx", "openvino", "auto"):
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
