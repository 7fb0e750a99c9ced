"""The ONNX Runtime engine: a graph from `deploy.export.export_onnx` on CPU, CUDA or TensorRT.

    uint8 clips ─ preprocess in torch on the host (CPU) or on the GPU (CUDA) ─▶ (B, C, T, H, W)
      CPU : session.run({"clips": numpy})                          ─▶ (B, D)
      CUDA: IO binding of the torch tensor's device memory (no host round trip) ─▶ (B, D)

Preprocessing runs outside the graph, in the same `preprocess` as the torch engine (see
`deploy.export` for why the graph holds the model only), so both engines feed the graph identical
tensors. Execution providers are chosen from `onnxruntime.get_available_providers()`: on a CUDA
device the CUDA provider (from the ``onnxruntime-gpu`` wheel), optionally preceded by the TensorRT
provider, which compiles the supported subgraphs (fp16 if asked) and caches the built engines;
the CPU provider always comes last as the fallback for unsupported nodes. Sessions use every
graph optimisation (``ORT_ENABLE_ALL``); ``intra_op_threads`` bounds the CPU threads one session
uses (0: ONNX Runtime's default, one per physical core), which matters when several engines or
processes share a machine.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import torch

from deploy.engines.base import (
    BackendUnavailable,
    Engine,
    EngineError,
    normalize_device,
    preprocess,
)
from reid_models.pretrained import PretrainedCfg

__all__ = ["OnnxRuntimeEngine", "make_session", "providers_for", "run_graph"]

log = logging.getLogger(__name__)

_GPU_WHEEL = "pip install onnxruntime-gpu (in place of onnxruntime) with a matching CUDA runtime"


def providers_for(
    device: str,
    *,
    tensorrt: bool = False,
    fp16: bool = False,
    trt_cache_dir: str | Path | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """Execution providers, with options, for `device`, most preferred first.

    Raises:
        BackendUnavailable: A CUDA device without the CUDA (or asked-for TensorRT) provider.
    """
    available = ort.get_available_providers()
    if device == "cpu":
        if tensorrt:
            raise EngineError("the TensorRT execution provider needs a CUDA device, got 'cpu'")
        return [("CPUExecutionProvider", {})]
    index = int(device.split(":")[1])
    if "CUDAExecutionProvider" not in available:
        raise BackendUnavailable(
            f"device {device!r}: this onnxruntime has no CUDAExecutionProvider (available: "
            f"{', '.join(available)}); {_GPU_WHEEL}"
        )
    providers: list[tuple[str, dict[str, Any]]] = []
    if tensorrt:
        if "TensorrtExecutionProvider" not in available:
            raise BackendUnavailable(
                f"this onnxruntime has no TensorrtExecutionProvider (available: "
                f"{', '.join(available)}); install onnxruntime-gpu and TensorRT "
                f"(pip install tensorrt) with libraries on LD_LIBRARY_PATH"
            )
        trt: dict[str, Any] = {"device_id": index, "trt_fp16_enable": fp16}
        if trt_cache_dir is not None:
            Path(trt_cache_dir).mkdir(parents=True, exist_ok=True)
            trt |= {"trt_engine_cache_enable": True, "trt_engine_cache_path": str(trt_cache_dir)}
        providers.append(("TensorrtExecutionProvider", trt))
    providers.append(("CUDAExecutionProvider", {"device_id": index}))
    providers.append(("CPUExecutionProvider", {}))
    return providers


def make_session(
    path: str | Path,
    *,
    device: str,
    intra_op_threads: int = 0,
    tensorrt: bool = False,
    fp16: bool = False,
    trt_cache_dir: str | Path | None = None,
) -> ort.InferenceSession:
    """An `InferenceSession` of the ONNX file at `path` with all graph optimisations.

    Raises:
        EngineError: Missing or unloadable file.
        BackendUnavailable: See `providers_for`.
    """
    path = Path(path)
    if not path.is_file():
        raise EngineError(f"ONNX file {path} does not exist")
    if intra_op_threads < 0:
        raise EngineError(f"intra_op_threads must be >= 0 (0: default), got {intra_op_threads}")
    providers = providers_for(device, tensorrt=tensorrt, fp16=fp16, trt_cache_dir=trt_cache_dir)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = intra_op_threads
    try:
        session = ort.InferenceSession(
            str(path),
            sess_options=options,
            providers=[name for name, _ in providers],
            provider_options=[opts for _, opts in providers],
        )
    except Exception as err:  # onnxruntime raises its own pybind types (InvalidProtobuf, Fail...)
        raise EngineError(f"ONNX Runtime cannot load {path}: {err}") from err
    wanted = providers[0][0]
    if wanted not in session.get_providers():
        log.warning("%s: %s did not start; running on %s", path, wanted, session.get_providers())
    return session


class OnnxRuntimeEngine(Engine):
    """Runs an exported ReID graph with ONNX Runtime.

    Args:
        path: The ``.onnx`` file; its sidecar (``.json``, written by `deploy.export`) gives the
            model's cfg and clip length.
        cfg: Overrides the sidecar's `PretrainedCfg` (e.g. for a graph exported elsewhere; then
            the clip length is read from the graph's input shape).
        device: "cpu" or "cuda[:N]".
        precision: "fp32"; "fp16" only with the TensorRT execution provider.
        max_batch: Most clips per session run.
        intra_op_threads: CPU threads of the session (0: ONNX Runtime's default).
        tensorrt_provider: Put ONNX Runtime's TensorRT execution provider first (CUDA only).
        trt_cache_dir: Where that provider caches its built engines.
    """

    name = "onnxruntime"

    def __init__(
        self,
        path: str | Path,
        *,
        cfg: PretrainedCfg | None = None,
        device: str = "cpu",
        precision: str = "fp32",
        max_batch: int = 32,
        intra_op_threads: int = 0,
        tensorrt_provider: bool = False,
        trt_cache_dir: str | Path | None = None,
    ) -> None:
        device = normalize_device(device)
        if precision != "fp32" and not (precision == "fp16" and tensorrt_provider):
            raise EngineError(
                f"precision {precision!r}: the exported graph is fp32; fp16 needs "
                f"tensorrt_provider=True on CUDA, int8 the tensorrt engine"
            )
        self.session = make_session(
            path,
            device=device,
            intra_op_threads=intra_op_threads,
            tensorrt=tensorrt_provider,
            fp16=precision == "fp16",
            trt_cache_dir=trt_cache_dir,
        )
        (graph_in,), (graph_out, *_) = self.session.get_inputs(), self.session.get_outputs()
        clip_len, min_clip_len = _graph_t(graph_in.shape, path), 1
        if cfg is None:
            from deploy.export import read_sidecar

            sidecar = read_sidecar(path)
            cfg, min_clip_len = sidecar.cfg, sidecar.min_clip_len
            clip_len = sidecar.clip_len if clip_len is None else clip_len
        super().__init__(
            cfg=cfg,
            device=device,
            precision=precision,
            max_batch=max_batch,
            clip_len=clip_len,
            min_clip_len=min_clip_len,
        )
        _check_graph(graph_in.shape, graph_out.shape, cfg, Path(path))
        self.input_name, self.output_name = graph_in.name, graph_out.name
        # IO binding hands ONNX Runtime the torch tensor's CUDA memory directly.
        self._binding = device != "cpu" and torch.cuda.is_available()
        self._torch_device = device if self._binding else "cpu"

    @classmethod
    def create(
        cls,
        *,
        model: str | None = None,
        checkpoint: str | Path | None = None,
        onnx_path: str | Path | None = None,
        **options: Any,
    ) -> OnnxRuntimeEngine:
        """`create_engine("onnxruntime", onnx_path=...)`; `model`, if given, must match the
        sidecar's model name."""
        if onnx_path is None:
            raise EngineError(
                "the onnxruntime engine needs onnx_path= (see deploy.export.export_onnx)"
            )
        if checkpoint is not None:
            raise EngineError(
                f"the onnxruntime engine runs the weights inside {onnx_path}; checkpoint= "
                f"{checkpoint} belongs to the torch engine (export it to ONNX first)"
            )
        if model is not None and not isinstance(model, str):
            raise EngineError(f"model= must be a registry name here, got {type(model).__name__}")
        _check_model_name(onnx_path, model)
        return cls(onnx_path, **options)

    def _embed_batch(self, clips: torch.Tensor) -> np.ndarray:
        x = preprocess(clips, self.cfg, device=self._torch_device)
        return run_graph(self.session, x, self.input_name, self.output_name, bind=self._binding)

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]


def run_graph(
    session: ort.InferenceSession,
    x: torch.Tensor,
    input_name: str,
    output_name: str,
    *,
    bind: bool,
) -> np.ndarray:
    """Runs `session` on `x`; with `bind`, hands ONNX Runtime x's CUDA memory (IO binding)."""
    if not bind:
        return session.run([output_name], {input_name: x.cpu().numpy()})[0]
    x = x.contiguous()
    binding = session.io_binding()
    index = x.device.index or 0
    binding.bind_input(input_name, "cuda", index, np.float32, tuple(x.shape), x.data_ptr())
    binding.bind_output(output_name, "cuda", index)
    torch.cuda.synchronize(x.device)  # ONNX Runtime reads x on its own stream
    session.run_with_iobinding(binding)
    return binding.copy_outputs_to_cpu()[0]


def _graph_t(shape: list[Any], path: str | Path) -> int | None:
    if len(shape) != 5:
        raise EngineError(
            f"{path}: graph input has shape {shape}; a clip model takes (N, C, T, H, W)"
        )
    return shape[2] if isinstance(shape[2], int) else None


def _check_graph(shape_in: list[Any], shape_out: list[Any], cfg: PretrainedCfg, path: Path) -> None:
    """The graph's fixed sizes must agree with the cfg the clips are preprocessed for."""
    expected_in = (cfg.input_size[0], cfg.input_size[1], cfg.input_size[2])
    got_in = (shape_in[1], shape_in[3], shape_in[4])
    for got, want, what in zip(got_in, expected_in, ("C", "H", "W"), strict=True):
        if isinstance(got, int) and got != want:
            raise EngineError(f"{path}: graph input {what}={got}, but its cfg says {want}")
    dim = shape_out[-1] if len(shape_out) == 2 else None
    if isinstance(dim, int) and dim != cfg.embedding_dim:
        raise EngineError(
            f"{path}: graph output has D={dim}, but its cfg says embedding_dim={cfg.embedding_dim}"
        )


def _check_model_name(path: str | Path, model: str | None) -> None:
    from deploy.export import read_sidecar, sidecar_path

    if model is None or not sidecar_path(path).is_file():
        return
    recorded = read_sidecar(path).model_name
    if recorded != model:
        raise EngineError(f"{path} was exported from {recorded!r}, but model={model!r} was asked")
