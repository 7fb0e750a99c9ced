"""Ahead-of-time preparation of a ReID model for one runtime: `reidstream compile`.

    model NAME (+ checkpoint)
      ├─ onnxruntime    export_onnx ─▶ OUT/NAME.onnx ─ ONNX Runtime graph optimisations, saved via
      │                 SessionOptions.optimized_model_filepath ─▶ OUT/NAME.opt.onnx (+ sidecar),
      │                 checked against PyTorch (parity)
      ├─ torch-compile  frame convs as 2-D (below) ─ TorchEngine(compile=True, Inductor freezing)
      │                 ─ warm-up call: compile time; then steady latency (Inductor's own on-disk
      │                 caches make the next process's compile shorter)
      └─ tensorrt       export_onnx ─▶ OUT/NAME.onnx ─ deploy.tensorrt_engine.load_or_build ─▶ the
                        plan in the engine cache (a second run is a cache hit)

`frame_convs_as_2d` is a deploy-time rewrite, written here because no library does it: every
``Conv3d`` whose kernel, stride and padding are 1 / 1 / 0 along T (C2D's whole trunk and the
spatial half of P3D/AP3D blocks, `reid_models.layers.temporal_conv.spatial_conv`) is the same 2-D
conv applied to each frame, so it runs as ``conv2d`` on (B*T, C, H, W). cuDNN's and Inductor's
2-D kernels are faster than their 3-D ones, and in ``channels_last_3d`` the reshape is a view (no
copy). The parameters stay the Conv3d's (same state-dict keys); the function computed is the same.
Inductor freezing (``torch._inductor.config.freezing``) treats the weights as constants, so the
eval-mode BatchNorms fold into the convolutions and autocast's weight casts happen once.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deploy.engines.base import EngineError
from reid_models.base import ReIDModel

__all__ = [
    "COMPILE_TARGETS",
    "CompileResult",
    "FrameConv2d",
    "compile_model",
    "compile_onnxruntime",
    "compile_tensorrt",
    "compile_torch",
    "frame_convs_as_2d",
    "inductor_freezing",
    "optimize_onnx",
    "random_clips",
]

logger = logging.getLogger(__name__)

#: What `compile_model` (and `reidstream compile --engine`) builds.
COMPILE_TARGETS = ("onnxruntime", "torch-compile", "tensorrt")


@dataclass(frozen=True)
class CompileResult:
    """What a compilation produced.

    Attributes:
        target: One of `COMPILE_TARGETS`.
        model: Registry name of the model.
        path: The artefact written (optimised ONNX, TensorRT plan); None for torch-compile,
            whose artefacts are Inductor's own caches.
        seconds: Wall time of the build or compile.
        cache_hit: Whether the artefact came from a cache (TensorRT).
        details: Further figures by name (parity, first-call and steady latency).
    """

    target: str
    model: str
    path: Path | None
    seconds: float
    cache_hit: bool = False
    details: dict[str, float | str] = field(default_factory=dict)


class FrameConv2d(nn.Module):
    """A (1, kh, kw) ``Conv3d`` run as ``conv2d`` on every frame; keeps the Conv3d's parameters.

    Shape:
        (B, C_in, T, H, W) -> (B, C_out, T, H', W')
    """

    def __init__(self, conv: nn.Conv3d) -> None:
        super().__init__()
        self.weight = conv.weight  # (O, I/groups, 1, kh, kw): the same Parameter, same key
        self.bias = conv.bias
        self.stride, self.padding = conv.stride[1:], conv.padding[1:]
        self.dilation, self.groups = conv.dilation[1:], conv.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(b * t, c, h, w)  # a view in channels_last_3d
        y = F.conv2d(
            frames,
            self.weight[:, :, 0],
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
        )
        return y.reshape(b, t, *y.shape[1:]).transpose(1, 2)


def _is_frame_conv(module: nn.Module) -> bool:
    return (
        type(module) is nn.Conv3d
        and module.kernel_size[0] == 1
        and module.stride[0] == 1
        and module.padding[0] == 0
        and module.padding_mode == "zeros"
    )


def frame_convs_as_2d(model: nn.Module) -> int:
    """Replaces, in place, every per-frame ``Conv3d`` of `model` by a `FrameConv2d`.

    Returns:
        How many were replaced.
    """
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if _is_frame_conv(child):
                setattr(parent, name, FrameConv2d(child))
                replaced += 1
    return replaced


@contextlib.contextmanager
def inductor_freezing(enabled: bool = True) -> Iterator[None]:
    """Inductor freezing (weights as constants: conv-BN folding) for compiles made inside."""
    import torch._inductor.config as inductor_config

    with inductor_config.patch(freezing=enabled):
        yield


def random_clips(
    model: ReIDModel,
    *,
    batch: int,
    clip_len: int,
    seed: int = 0,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """(batch, clip_len, H, W, 3) uint8 noise at the model's input size (or `size`)."""
    h, w = size or model.pretrained_cfg.input_size[1:]
    return np.random.default_rng(seed).integers(0, 256, (batch, clip_len, h, w, 3), np.uint8)


def optimize_onnx(onnx_path: Path, out_path: Path, *, level: str = "extended") -> Path:
    """Saves ONNX Runtime's optimised graph of `onnx_path` to `out_path`, with the sidecar.

    ``extended`` (default) fuses conv + BN + activation and similar nodes, which every execution
    provider runs; ``all`` adds CPU layout rewrites (NCHWc) tied to this machine's instruction
    set, so the file is then for this kind of CPU only.
    """
    import onnxruntime as ort

    levels = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if level not in levels:
        raise EngineError(f"ONNX Runtime optimisation level {level!r}: expected one of {levels}")
    options = ort.SessionOptions()
    options.graph_optimization_level = levels[level]
    options.optimized_model_filepath = str(out_path)
    ort.InferenceSession(str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"])
    shutil.copyfile(Path(onnx_path).with_suffix(".json"), Path(out_path).with_suffix(".json"))
    return Path(out_path)


def compile_onnxruntime(
    model: ReIDModel,
    *,
    model_name: str,
    out_dir: Path,
    clip_len: int | None = None,
    level: str = "extended",
    parity_clips: int = 2,
) -> CompileResult:
    """Exports `model` to ONNX, saves ONNX Runtime's optimised graph, checks it against torch."""
    from deploy.engines.onnxruntime_engine import OnnxRuntimeEngine
    from deploy.export import export_onnx, parity

    start = time.perf_counter()
    onnx_path = export_onnx(
        model, Path(out_dir) / f"{model_name}.onnx", clip_len=clip_len, model_name=model_name
    )
    optimised = optimize_onnx(onnx_path, Path(out_dir) / f"{model_name}.opt.onnx", level=level)
    seconds = time.perf_counter() - start
    with OnnxRuntimeEngine(optimised, device="cpu", max_batch=parity_clips) as engine:
        clips = random_clips(model, batch=parity_clips, clip_len=engine.clip_len or 1)
        report = parity(model, engine, clips)
    return CompileResult(
        target="onnxruntime",
        model=model_name,
        path=optimised,
        seconds=seconds,
        details={"min_cosine": report.min_cosine, "max_abs": report.max_abs},
    )


def compile_torch(
    model: ReIDModel,
    *,
    model_name: str,
    device: str,
    precision: str = "fp32",
    batch: int = 8,
    clip_len: int | None = None,
    mode: str = "default",
    channels_last: bool = True,
    frame_convs: bool = True,
    freezing: bool = True,
) -> CompileResult:
    """`torch.compile`s `model` in a `TorchEngine` and reports compile and steady times.

    Returns:
        A result whose details hold ``first_call_s`` (compile + first run), ``steady_ms`` (the
        median of three further calls) and the number of convs run as 2-D.
    """
    from deploy.engines.torch_engine import TorchEngine

    replaced = frame_convs_as_2d(model) if frame_convs else 0
    t = clip_len or model.pretrained_cfg.test_clip_len
    clips = torch.from_numpy(random_clips(model, batch=batch, clip_len=t))
    engine = TorchEngine(
        model,
        device=device,
        precision=precision,
        max_batch=batch,
        channels_last=channels_last,
        compile=True,
        compile_mode=mode,
    )
    with engine, inductor_freezing(freezing):
        start = time.perf_counter()
        engine.embed(clips)
        first = time.perf_counter() - start
        steady = []
        for _ in range(3):
            start = time.perf_counter()
            engine.embed(clips)
            steady.append(time.perf_counter() - start)
    return CompileResult(
        target="torch-compile",
        model=model_name,
        path=None,
        seconds=first,
        details={
            "first_call_s": first,
            "steady_ms": 1000 * float(np.median(steady)),
            "frame_convs_2d": replaced,
            "mode": mode,
        },
    )


def compile_tensorrt(
    model: ReIDModel,
    *,
    model_name: str,
    out_dir: Path,
    cache_dir: Path,
    device: str = "cuda:0",
    clip_len: int | None = None,
    **build: Any,
) -> CompileResult:
    """Exports `model` to ONNX under `out_dir` and builds (or finds) its plan in `cache_dir`.

    Args:
        **build: `deploy.tensorrt_engine.BuildOptions` fields (precision, min/opt/max_batch,
            workspace_gib, calibration_dir, ...).
    """
    from deploy.engine_cache import EngineCache
    from deploy.export import export_onnx
    from deploy.tensorrt_engine import BuildOptions, import_tensorrt, load_or_build

    import_tensorrt()  # fail before exporting when TensorRT is absent
    start = time.perf_counter()
    onnx_path = export_onnx(
        model, Path(out_dir) / f"{model_name}.onnx", clip_len=clip_len, model_name=model_name
    )
    cache = EngineCache(cache_dir)
    _plan, key, hit = load_or_build(
        onnx_path,
        options=BuildOptions(**build),
        device=device,
        cache=cache,
        cfg=model.pretrained_cfg,
    )
    return CompileResult(
        target="tensorrt",
        model=model_name,
        path=cache.path_for(key),
        seconds=time.perf_counter() - start,
        cache_hit=hit,
        details={"onnx": str(onnx_path), "gpu": key.gpu_name, "tensorrt": key.backend_version},
    )


def compile_model(
    target: str,
    *,
    model_name: str | None,
    checkpoint: Path | None = None,
    out_dir: Path,
    device: str = "cpu",
    **options: Any,
) -> CompileResult:
    """Builds `model_name` (with `checkpoint`) and compiles it for `target`.

    Args:
        target: One of `COMPILE_TARGETS`.
        model_name: Registered model name; None takes the one `checkpoint`'s model spec names.
        **options: Passed to `compile_onnxruntime`, `compile_torch` or `compile_tensorrt`.

    Raises:
        EngineError: An unknown target, or no model (see `load_model`).
    """
    from deploy.engines.torch_engine import load_model

    if target not in COMPILE_TARGETS:
        raise EngineError(f"compile target {target!r}: expected one of {COMPILE_TARGETS}")
    model = load_model(model_name, checkpoint=checkpoint)
    model_name = model_name or model.model_name
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    if target == "onnxruntime":
        return compile_onnxruntime(model, model_name=model_name, out_dir=out_dir, **options)
    if target == "torch-compile":
        return compile_torch(model, model_name=model_name, device=device, **options)
    options.setdefault("cache_dir", Path(out_dir) / "engines")
    return compile_tensorrt(model, model_name=model_name, out_dir=out_dir, device=device, **options)
