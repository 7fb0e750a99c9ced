"""TensorRT: build an engine from the exported ONNX graph, cache it, and run it behind `Engine`.

    model.onnx + model.json (deploy.export: dynamic batch axis, fixed T, the PretrainedCfg sidecar)
      └─ build_serialized_engine ── trt.Builder ─ network (explicit batch) ─ OnnxParser
      │      BuilderConfig: workspace pool limit; FP16 / BF16 / INT8 (+ FP16 fallback) flags;
      │      one optimisation profile for the batch axis (min, opt, max); int8: an entropy
      │      calibrator fed by deploy.calibration and a calibration profile at its batch
      │      └─ serialised plan ─▶ EngineCache (deploy.engine_cache): keyed by the ONNX sha256,
      │                            TensorRT version, GPU name + compute capability, precision,
      │                            profile and calibration data
      └─ TensorRTEngine._embed_batch: preprocess on the GPU (deploy.engines.base) ─ set_input_shape
             ─ set_tensor_address (torch CUDA tensors as buffers) ─ execute_async_v3 on torch's
             current stream ─▶ (b, D)

The ONNX graph holds the network only; preprocessing stays in torch so that every engine feeds
its graph the same tensor. The graph's input and output are float32 in every precision: the
FP16/BF16/INT8 flags let TensorRT pick lower-precision kernels inside, it inserts the casts.

TensorRT is optional: `import_tensorrt` raises `BackendUnavailable` saying how to install it.
Int8 uses the implicit-quantisation calibrator API, which TensorRT 10 deprecates in favour of
explicit Q/DQ graphs (NVIDIA ModelOpt); it still builds there, and needs no extra tool.

An alternative path, `compile_torch_tensorrt`, hands the PyTorch module to
``torch_tensorrt.compile(ir="dynamo")`` (TensorRT through torch.export, no ONNX file). It serves
when the ONNX export of a model is a problem; the ONNX path is the default because its plan is a
plain file the cache and `reidstream compile` can manage.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from deploy.engine_cache import EngineCache, EngineKey, sha256_file
from deploy.engines.base import BackendUnavailable, Engine, EngineError, preprocess

__all__ = [
    "INSTALL_HINT",
    "BuildOptions",
    "TensorRTEngine",
    "build_serialized_engine",
    "compile_torch_tensorrt",
    "engine_key",
    "import_tensorrt",
    "load_or_build",
]

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "install TensorRT for this CUDA version: `pip install tensorrt` (or `pip install "
    "reidstream[tensorrt]` for torch-tensorrt, which brings it), or run inside the NVIDIA "
    "PyTorch container (nvcr.io/nvidia/pytorch), which ships it"
)
#: Precisions the builder offers; the graph's I/O stays float32 in all of them.
BUILD_PRECISIONS = ("fp32", "fp16", "bf16", "int8")


def import_tensorrt() -> Any:
    """The `tensorrt` module, or `BackendUnavailable` with how to install it."""
    try:
        import tensorrt
    except ImportError as e:
        raise BackendUnavailable(f"the tensorrt engine needs TensorRT ({e}); {INSTALL_HINT}") from e
    return tensorrt


@dataclass(frozen=True)
class BuildOptions:
    """How to build a plan from an ONNX graph whose input is (B, C, T, H, W).

    Attributes:
        precision: ``fp32``, ``fp16``, ``bf16`` or ``int8``.
        min_batch, opt_batch, max_batch: The optimisation profile of the batch axis; TensorRT
            tunes kernels for `opt_batch` and accepts any batch in [min_batch, max_batch].
        workspace_gib: Scratch memory the builder may give a layer; more allows faster tactics.
        calibration_dir: Folder of clips for int8 (see `deploy.calibration`).
        calibration_batch: Clips per calibration batch.
        calibration_batches: Most batches the calibrator reads.
    """

    precision: str = "fp16"
    min_batch: int = 1
    opt_batch: int = 16
    max_batch: int = 32
    workspace_gib: float = 4.0
    calibration_dir: Path | None = None
    calibration_batch: int = 8
    calibration_batches: int = 32

    def __post_init__(self) -> None:
        if self.precision not in BUILD_PRECISIONS:
            raise EngineError(
                f"TensorRT precision {self.precision!r}: expected one of {BUILD_PRECISIONS}"
            )
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise EngineError(
                "TensorRT profile needs 1 <= min_batch <= opt_batch <= max_batch, got "
                f"{self.min_batch}, {self.opt_batch}, {self.max_batch}"
            )
        if self.precision == "int8" and self.calibration_dir is None:
            raise EngineError("int8 needs calibration_dir, a folder of clips (deploy.calibration)")

    def profile(self, frame_shape: tuple[int, int, int, int]) -> tuple[tuple[int, ...], ...]:
        """(min, opt, max) input shapes for a (C, T, H, W) clip."""
        return tuple((b, *frame_shape) for b in (self.min_batch, self.opt_batch, self.max_batch))


def _trt_logger(trt: Any) -> Any:
    """A TensorRT logger that forwards to this module's `logging` logger."""
    levels = {
        trt.ILogger.Severity.INTERNAL_ERROR: logging.CRITICAL,
        trt.ILogger.Severity.ERROR: logging.ERROR,
        trt.ILogger.Severity.WARNING: logging.WARNING,
        trt.ILogger.Severity.INFO: logging.DEBUG,
        trt.ILogger.Severity.VERBOSE: logging.DEBUG,
    }

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: Any, msg: str) -> None:
            logger.log(levels.get(severity, logging.INFO), "TensorRT: %s", msg)

    return _Logger()


def _parse_onnx(trt: Any, builder: Any, onnx_path: Path, trt_log: Any) -> tuple[Any, Any]:
    """An explicit-batch network parsed from `onnx_path`; raises with every parser error."""
    major = int(trt.__version__.split(".")[0])
    # TensorRT 10 networks are always explicit-batch and the flag is deprecated there.
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, trt_log)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "\n".join(f"  {parser.get_error(i)}" for i in range(parser.num_errors))
        raise EngineError(f"TensorRT could not parse {onnx_path}:\n{errors}")
    if network.num_inputs != 1 or network.num_outputs != 1:
        raise EngineError(
            f"{onnx_path}: expected one input and one output, got {network.num_inputs} and "
            f"{network.num_outputs}"
        )
    return network, parser


def build_serialized_engine(
    onnx_path: Path, *, options: BuildOptions, calibrator: Any = None
) -> bytes:
    """Builds a TensorRT plan for `onnx_path`; slow (minutes), so go through `load_or_build`.

    Args:
        onnx_path: A graph from `deploy.export.export_onnx` (input (B, C, T, H, W), batch dynamic).
        options: Precision, batch profile and workspace.
        calibrator: A `tensorrt.IInt8Calibrator` (int8 only; see `deploy.calibration`).

    Returns:
        The serialised plan.
    """
    trt = import_tensorrt()
    trt_log = _trt_logger(trt)
    builder = trt.Builder(trt_log)
    network, _parser = _parse_onnx(trt, builder, Path(onnx_path), trt_log)
    tensor = network.get_input(0)
    frame_shape = tuple(int(d) for d in tensor.shape[1:])
    if any(d < 1 for d in frame_shape):
        raise EngineError(
            f"{onnx_path}: only the batch axis may be dynamic, input is {tensor.shape}"
        )
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(options.workspace_gib * 2**30))
    profile = builder.create_optimization_profile()
    profile.set_shape(tensor.name, *options.profile(frame_shape))
    config.add_optimization_profile(profile)
    if options.precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif options.precision == "bf16":
        config.set_flag(trt.BuilderFlag.BF16)
    elif options.precision == "int8":
        if calibrator is None:
            raise EngineError("an int8 build needs a calibrator (deploy.calibration)")
        # FP16 too, so layers TensorRT will not quantise fall back to half, not to float.
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_flag(trt.BuilderFlag.FP16)
        config.int8_calibrator = calibrator
        calibration = builder.create_optimization_profile()
        batch = calibrator.get_batch_size()
        calibration.set_shape(tensor.name, *[(batch, *frame_shape)] * 3)
        config.set_calibration_profile(calibration)
    logger.info("building TensorRT %s plan for %s (minutes)", options.precision, onnx_path)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineError(f"TensorRT failed to build {onnx_path}; its errors are logged above")
    return bytes(plan)


def engine_key(
    onnx_path: Path, *, options: BuildOptions, device: str, calibration: str = ""
) -> EngineKey:
    """The cache key of building `onnx_path` with `options` on `device` (a CUDA device)."""
    trt = import_tensorrt()
    index = torch.device(device).index or 0
    major, minor = torch.cuda.get_device_capability(index)
    input_shape = _onnx_input_shape(onnx_path)
    return EngineKey(
        model_sha256=sha256_file(onnx_path),
        backend_version=trt.__version__,
        gpu_name=torch.cuda.get_device_name(index),
        compute_capability=f"{major}.{minor}",
        precision=options.precision,
        input_profile=options.profile(input_shape[1:]),
        calibration=calibration,
    )


def _onnx_input_shape(onnx_path: Path) -> tuple[int | str, ...]:
    """The graph input's shape as stored in the ONNX file (the batch axis is a name)."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    dims = graph.input[0].type.tensor_type.shape.dim
    return tuple(d.dim_param if d.dim_param else int(d.dim_value) for d in dims)


def load_or_build(
    onnx_path: Path, *, options: BuildOptions, device: str, cache: EngineCache, cfg: Any = None
) -> tuple[bytes, EngineKey, bool]:
    """The plan of `onnx_path` from `cache`, built and stored on a miss.

    Returns:
        (plan bytes, its key, whether it came from the cache). `cfg` (the model's
        `PretrainedCfg`) is needed for int8, whose calibration clips it preprocesses.
    """
    calibrator, fingerprint = None, ""
    if options.precision == "int8":
        calibrator, fingerprint = _calibrator(onnx_path, options=options, device=device, cfg=cfg)
    key = engine_key(onnx_path, options=options, device=device, calibration=fingerprint)
    result = cache.get_or_build(
        key, lambda: build_serialized_engine(onnx_path, options=options, calibrator=calibrator)
    )
    return result.payload, key, result.hit


def _calibrator(
    onnx_path: Path, *, options: BuildOptions, device: str, cfg: Any
) -> tuple[Any, str]:
    from deploy.calibration import CalibrationBatches, make_entropy_calibrator

    if cfg is None:
        raise EngineError("int8 calibration needs the model's PretrainedCfg (cfg=)")
    shape = _onnx_input_shape(onnx_path)
    batches = CalibrationBatches(
        options.calibration_dir,
        cfg=cfg,
        clip_len=int(shape[2]),
        batch_size=options.calibration_batch,
        device=device,
        max_batches=options.calibration_batches,
    )
    fingerprint = batches.fingerprint()
    table = Path(onnx_path).with_name(f"{Path(onnx_path).stem}.{fingerprint[:16]}.calib")
    return make_entropy_calibrator(batches, cache_path=table), fingerprint


class TensorRTEngine(Engine):
    """Runs a TensorRT plan of an exported ReID graph on one CUDA device.

    Built by `create_engine("tensorrt", onnx_path=... | model=..., device="cuda:0",
    precision=..., max_batch=..., cache_dir=..., min_batch=, opt_batch=, workspace_gib=,
    calibration_dir=)`; see `create`.
    """

    name = "tensorrt"

    def __init__(
        self, *, plan: bytes, sidecar: Any, device: str, precision: str, max_batch: int
    ) -> None:
        super().__init__(
            cfg=sidecar.cfg,
            device=device,
            precision=precision,
            max_batch=max_batch,
            clip_len=sidecar.clip_len,
        )
        trt = import_tensorrt()
        self._trt = trt
        self._runtime = trt.Runtime(_trt_logger(trt))
        with torch.cuda.device(torch.device(device)):
            self._engine = self._runtime.deserialize_cuda_engine(plan)
            if self._engine is None:
                raise EngineError("TensorRT could not deserialise the plan (another version?)")
            self._context = self._engine.create_execution_context()
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        modes = {n: self._engine.get_tensor_mode(n) for n in names}
        self._input = next(n for n in names if modes[n] == trt.TensorIOMode.INPUT)
        self._output = next(n for n in names if modes[n] == trt.TensorIOMode.OUTPUT)
        self._in_dtype = _torch_dtype_of(trt, self._engine.get_tensor_dtype(self._input))
        self._out_dtype = _torch_dtype_of(trt, self._engine.get_tensor_dtype(self._output))

    @classmethod
    def create(
        cls,
        *,
        onnx_path: Path | None = None,
        model: str | None = None,
        checkpoint: Path | None = None,
        device: str = "cuda:0",
        precision: str = "fp16",
        max_batch: int = 32,
        cache_dir: Path | None = None,
        min_batch: int = 1,
        opt_batch: int | None = None,
        workspace_gib: float = 4.0,
        calibration_dir: Path | None = None,
        calibration_batches: int = 32,
        clip_len: int | None = None,
    ) -> TensorRTEngine:
        """Loads the cached plan of `onnx_path` (or of `model` exported first), building it once.

        Raises:
            BackendUnavailable: TensorRT is not installed or `device` is not a CUDA device.
        """
        import_tensorrt()
        if not device.startswith("cuda") or not torch.cuda.is_available():
            raise BackendUnavailable(f"the tensorrt engine needs a CUDA device, got {device!r}")
        from deploy.export import read_sidecar

        cache = EngineCache(Path(cache_dir) if cache_dir else _default_cache_dir())
        if onnx_path is None:
            onnx_path = _export_for(model, checkpoint, clip_len=clip_len, folder=cache.root)
        sidecar = read_sidecar(Path(onnx_path).with_suffix(".json"))
        options = BuildOptions(
            precision=precision,
            min_batch=min(min_batch, max_batch),
            opt_batch=opt_batch or max_batch,
            max_batch=max_batch,
            workspace_gib=workspace_gib,
            calibration_dir=calibration_dir,
            calibration_batches=calibration_batches,
        )
        plan, key, _hit = load_or_build(
            Path(onnx_path), options=options, device=device, cache=cache, cfg=sidecar.cfg
        )
        try:
            return cls(
                plan=plan, sidecar=sidecar, device=device, precision=precision, max_batch=max_batch
            )
        except EngineError as e:  # a cached plan the runtime refuses: drop it, build once more
            cache.discard(key, reason=str(e))
            plan, _, _ = load_or_build(
                Path(onnx_path), options=options, device=device, cache=cache, cfg=sidecar.cfg
            )
            return cls(
                plan=plan, sidecar=sidecar, device=device, precision=precision, max_batch=max_batch
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Runs the plan on a preprocessed (b, C, T, H, W) CUDA batch -> (b, D), not normalised."""
        x = x.to(self._in_dtype).contiguous()
        if not self._context.set_input_shape(self._input, tuple(x.shape)):
            raise EngineError(
                f"input shape {tuple(x.shape)} is outside the plan's profile (max_batch "
                f"{self.max_batch}, clip_len {self.clip_len}, input size {self.cfg.input_size})"
            )
        out = torch.empty(
            tuple(self._context.get_tensor_shape(self._output)),
            dtype=self._out_dtype,
            device=x.device,
        )
        self._context.set_tensor_address(self._input, x.data_ptr())
        self._context.set_tensor_address(self._output, out.data_ptr())
        # torch's current stream: the caching allocator orders reuse of `x` after these kernels.
        if not self._context.execute_async_v3(torch.cuda.current_stream(x.device).cuda_stream):
            raise EngineError("TensorRT execute_async_v3 failed; see the log")
        return out

    def _embed_batch(self, clips: torch.Tensor) -> torch.Tensor:
        return self.forward(preprocess(clips, self.cfg, device=self.device, dtype=torch.float32))

    def close(self) -> None:
        self._context = None
        self._engine = None
        self._runtime = None


def _torch_dtype_of(trt: Any, dtype: Any) -> torch.dtype:
    table = {trt.float32: torch.float32, trt.float16: torch.float16}
    if hasattr(trt, "bfloat16"):
        table[trt.bfloat16] = torch.bfloat16
    if dtype not in table:
        raise EngineError(f"TensorRT I/O dtype {dtype} is not one of {list(table)}")
    return table[dtype]


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "reidstream" / "engines"


def _export_for(
    model: str | None, checkpoint: Path | None, *, clip_len: int | None, folder: Path
) -> Path:
    """Exports `model` (with `checkpoint`) to ONNX under `folder`; the file is content-addressed
    downstream (the cache keys by its sha256), so re-exporting the same weights reuses plans."""
    if model is None:
        raise EngineError("the tensorrt engine needs onnx_path= or model=")
    from deploy.engines.torch_engine import load_model
    from deploy.export import export_onnx

    net = load_model(model, checkpoint=checkpoint).eval()
    folder.mkdir(parents=True, exist_ok=True)
    tag = "random" if checkpoint is None else Path(checkpoint).stem
    return export_onnx(net, folder / f"{model}-{tag}.onnx", clip_len=clip_len)


def compile_torch_tensorrt(
    model: torch.nn.Module,
    *,
    clip_shape: tuple[int, int, int, int],
    precision: str = "fp16",
    min_batch: int = 1,
    opt_batch: int = 16,
    max_batch: int = 32,
    workspace_gib: float = 4.0,
) -> torch.nn.Module:
    """`model` compiled by torch-tensorrt's dynamo path for (B, C, T, H, W) float32 inputs.

    Args:
        model: An eval-mode `ReIDModel` on a CUDA device.
        clip_shape: (C, T, H, W) of one clip.
        precision: ``fp32``, ``fp16`` or ``bf16`` (kernels TensorRT may use; I/O stays float32).
    """
    try:
        import torch_tensorrt
    except ImportError as e:
        raise BackendUnavailable(f"torch-tensorrt is not installed ({e}); {INSTALL_HINT}") from e
    dtypes = {"fp32": {torch.float32}, "fp16": {torch.float16}, "bf16": {torch.bfloat16}}
    if precision not in dtypes:
        raise EngineError(f"torch-tensorrt precision {precision!r}: expected one of {list(dtypes)}")
    spec = torch_tensorrt.Input(
        min_shape=(min_batch, *clip_shape),
        opt_shape=(opt_batch, *clip_shape),
        max_shape=(max_batch, *clip_shape),
        dtype=torch.float32,
    )
    return torch_tensorrt.compile(
        model,
        ir="dynamo",
        inputs=[spec],
        enabled_precisions=dtypes[precision],
        workspace_size=int(workspace_gib * 2**30),
    )
