"""Runtime engines behind one interface, and the factory that builds them by name.

    create_engine("torch",         model="ap3d_r50", checkpoint=ckpt.pth, device="cuda")
    create_engine("onnxruntime",   onnx_path=ap3d_r50.onnx, device="cpu")
    create_engine("tensorrt",      onnx_path=ap3d_r50.onnx, device="cuda", precision="fp16")
    create_engine("external-onnx", onnx_path=osnet_x0_25_msmt17.onnx)
    create_engine("openvino",      onnx_path=person-reidentification-retail-0277.xml)
    create_engine("auto", model=..., onnx_path=..., device="cuda")
        -> the first that is installed and has what it needs, in the order
           tensorrt > onnxruntime (CUDA) > torch (CUDA) > onnxruntime (CPU) > torch (CPU);
           an OpenVINO IR (onnx_path=*.xml) goes to openvino, the one engine that reads it

Engine classes are imported when first asked for (by module path), so a missing optional
runtime (TensorRT, OpenVINO) costs nothing until it is used and then fails with how to install it.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from pathlib import Path
from typing import Any, Literal

import torch

from deploy.engines.base import (
    PRECISIONS,
    BackendUnavailable,
    Engine,
    EngineError,
    NonFiniteEmbedding,
    normalize_device,
    preprocess,
)

__all__ = [
    "PRECISIONS",
    "BackendUnavailable",
    "Engine",
    "EngineError",
    "NonFiniteEmbedding",
    "available_engines",
    "create_engine",
    "engine_class",
    "list_engines",
    "preprocess",
]

log = logging.getLogger(__name__)

EngineName = Literal["auto", "torch", "onnxruntime", "tensorrt", "external-onnx", "openvino"]

#: name -> (module, class). Classes implement `Engine.create`.
_ENGINES: dict[str, tuple[str, str]] = {
    "torch": ("deploy.engines.torch_engine", "TorchEngine"),
    "onnxruntime": ("deploy.engines.onnxruntime_engine", "OnnxRuntimeEngine"),
    "tensorrt": ("deploy.tensorrt_engine", "TensorRTEngine"),
    "external-onnx": ("deploy.engines.external", "ExternalOnnxEngine"),
    "openvino": ("deploy.engines.openvino_engine", "OpenVinoEngine"),
}
_TENSORRT_INSTALL = (
    "the tensorrt engine needs NVIDIA TensorRT's Python package and a CUDA GPU: "
    "pip install tensorrt (or reidstream[tensorrt]), with the TensorRT libraries on "
    "LD_LIBRARY_PATH; see https://docs.nvidia.com/deeplearning/tensorrt/install-guide/"
)

_OPENVINO_INSTALL = (
    "the openvino engine (OpenVINO IR .xml + .bin models, e.g. Intel's "
    "person-reidentification-retail-*) needs the openvino package: pip install "
    "'reidstream[openvino]'"
)


def list_engines() -> list[str]:
    """Every engine name `create_engine` takes, "auto" included."""
    return ["auto", *_ENGINES]


def _tensorrt_importable() -> bool:
    return importlib.util.find_spec("tensorrt") is not None


def _runtime_available(name: str, device: str) -> bool:
    """Whether the runtime of engine `name` is installed and can use `device`."""
    cuda = device.startswith("cuda")
    if name == "tensorrt":
        return cuda and _tensorrt_importable() and torch.cuda.is_available()
    if name == "onnxruntime":
        import onnxruntime

        return not cuda or "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    if name == "torch":
        return not cuda or torch.cuda.is_available()
    raise EngineError(f"engine {name!r}: expected one of {', '.join(_ENGINES)}")


def available_engines(device: str) -> list[str]:
    """Engines whose runtime is installed and usable on `device`, in "auto" preference order."""
    device = normalize_device(device)
    return [n for n in ("tensorrt", "onnxruntime", "torch") if _runtime_available(n, device)]


def engine_class(name: str) -> type[Engine]:
    """The class of engine `name`, imported on first use.

    Raises:
        EngineError: Unknown name (the message lists the valid ones).
        BackendUnavailable: The engine's runtime is not installed.
    """
    if name not in _ENGINES:
        raise EngineError(f"unknown engine {name!r}: expected one of {', '.join(list_engines())}")
    if name == "tensorrt" and not _tensorrt_importable():
        raise BackendUnavailable(_TENSORRT_INSTALL)
    if name == "openvino" and importlib.util.find_spec("openvino") is None:
        raise BackendUnavailable(_OPENVINO_INSTALL)
    module_name, class_name = _ENGINES[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise BackendUnavailable(f"engine {name!r} cannot be imported ({err})") from err
    return getattr(module, class_name)


def create_engine(
    name: EngineName,
    *,
    model: str | None = None,
    checkpoint: str | Path | None = None,
    onnx_path: str | Path | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    max_batch: int = 32,
    **options: Any,
) -> Engine:
    """Builds engine `name`.

    Args:
        name: One of `list_engines()`; "auto" picks the first usable one (module docstring).
        model: Registry name of the model (torch); checked against the sidecar (onnxruntime).
        checkpoint: Trained checkpoint for the torch engine (or a TorchScript file, no model).
        onnx_path: Exported graph (onnxruntime, tensorrt), image ReID model (external-onnx) or
            OpenVINO IR ``.xml`` / ONNX image ReID model (openvino).
        device: "cpu" or "cuda[:N]".
        precision: One of `PRECISIONS`; each engine says which it runs.
        max_batch: Most clips per graph call.
        **options: The engine's own options (e.g. ``compile=True`` for torch,
            ``intra_op_threads=2`` for onnxruntime); with "auto", only those the chosen engine
            takes are passed (see `auto_options`).
    """
    common: dict[str, Any] = {
        "model": model,
        "checkpoint": checkpoint,
        "onnx_path": onnx_path,
        "device": normalize_device(device),
        "precision": precision,
        "max_batch": max_batch,
    }
    if name == "auto" and Path(str(onnx_path)).suffix.lower() == ".xml":
        name = "openvino"  # an IR: no other engine reads it
        options = {k: v for k, v in options.items() if k in auto_options[name]}
    if name == "auto":
        return _create_auto(common, options)
    return engine_class(name).create(**common, **options)


#: Options each engine takes from an "auto" call; the others are dropped for that engine.
auto_options: dict[str, tuple[str, ...]] = {
    "openvino": ("intra_op_threads",),
    "torch": ("channels_last", "compile", "compile_mode", "model_overrides"),
    "onnxruntime": ("intra_op_threads", "tensorrt_provider", "trt_cache_dir"),
    "tensorrt": (
        "workspace_gib",
        "min_batch",
        "opt_batch",
        "cache_dir",
        "calibration_dir",
        "calibration_batches",
        "clip_len",
    ),
}


#: Precisions each engine runs (onnxruntime's fp16 needs its TensorRT provider, not chosen by auto).
_PRECISIONS = {
    "tensorrt": ("fp32", "fp16", "bf16", "int8"),
    "onnxruntime": ("fp32",),
    "torch": ("fp32", "fp16", "bf16"),
}


def _candidates(common: dict[str, Any]) -> list[tuple[str, str]]:
    """(engine, device) pairs in preference order that have the inputs and precision needed."""
    device = common["device"]
    has_onnx, has_model = common["onnx_path"] is not None, common["model"] is not None
    needs = {
        "tensorrt": has_onnx or has_model,  # it exports the model itself
        "onnxruntime": has_onnx and common["checkpoint"] is None,
        "torch": has_model or (common["checkpoint"] is not None and not has_onnx),
    }
    devices = [device, "cpu"] if device != "cpu" else ["cpu"]
    return [
        (name, d)
        for d in devices
        for name in available_engines(d)
        if needs[name] and common["precision"] in _PRECISIONS[name]
    ]


def _create_auto(common: dict[str, Any], options: dict[str, Any]) -> Engine:
    tried = []
    for name, device in _candidates(common):
        args = common | {"device": device}
        if name == "torch":
            args["onnx_path"] = None
        elif args["onnx_path"] is not None:  # the weights are those inside the graph
            args["checkpoint"] = None
        own = {k: v for k, v in options.items() if k in auto_options[name]}
        try:
            engine = engine_class(name).create(**args, **own)
        except BackendUnavailable as err:
            tried.append(f"{name} on {device}: {err}")
            continue
        if device != common["device"]:
            log.warning("no engine could use %s; running %s on the CPU", common["device"], name)
        log.info("auto engine: %s on %s", name, device)
        return engine
    detail = "; ".join(tried) or "none has the inputs and precision needed"
    raise EngineError(
        f"engine 'auto' found no usable engine on {common['device']} for model="
        f"{common['model']!r}, onnx_path={common['onnx_path']!r}, precision="
        f"{common['precision']!r} ({detail}); give model= for torch or onnx_path= for "
        f"onnxruntime/tensorrt"
    )
