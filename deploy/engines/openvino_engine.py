"""The OpenVINO engine: an image ReID model as OpenVINO IR (``.xml`` + ``.bin``) or ONNX, on CPU.

    clips (B, T, H, W, 3) uint8 RGB
      ─ preprocess (as every engine) ─ frames (B*T, C, H', W') ─ RGB -> BGR if the model wants it
      ─ openvino CompiledModel ─ (B*T, D) ─ L2-normalise each frame ─ mean over T ─▶ (B, D)

Intel's Open Model Zoo ReID models (person-reidentification-retail-0277/0286/0287/0288: input
1x3x256x128, output 256-d) take BGR pixels in 0..255 and normalise inside the graph; that is the
default for an ``.xml`` file: ``color="bgr"``, mean 0 and std 1/255 (which `preprocess` turns into
raw pixel values). An ``.onnx`` file gets the torchreid defaults of the external-onnx engine
(RGB, ImageNet mean/std), so the same file gives the same embeddings under both engines. Either
can be overridden. The batch dimension is made dynamic where the graph allows it (Intel's files
fix it at 1); otherwise frames run in steps of the fixed batch, padded with the last frame.

``precision`` maps to OpenVINO's inference precision hint: ``fp32`` is kept in fp32 even on CPUs
where OpenVINO would otherwise pick bf16 (AMX, AVX-512 BF16), so embeddings match ONNX Runtime's;
``bf16``/``fp16`` ask for those. The runtime is the ``openvino`` package (``reidstream[openvino]``),
imported only when this engine is built.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from deploy.engines.base import BackendUnavailable, Engine, EngineError, preprocess
from deploy.engines.external import DEFAULT_SIZE, average_frames, clip_frames, image_reid_cfg
from reid_models.pretrained import PretrainedCfg

__all__ = ["INSTALL", "OpenVinoEngine", "import_openvino", "read_model"]

log = logging.getLogger(__name__)

INSTALL = "pip install 'reidstream[openvino]' (the openvino package)"
#: `preprocess` computes (p / 255 - mean) / std: these give the raw 0..255 pixel p.
RAW_PIXELS = {"mean": (0.0, 0.0, 0.0), "std": (1 / 255, 1 / 255, 1 / 255)}
_PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}


def import_openvino() -> Any:
    """The `openvino` module.

    Raises:
        BackendUnavailable: Not installed; says how to install it.
    """
    try:
        import openvino
    except ImportError as err:
        raise BackendUnavailable(
            f"OpenVINO models (.xml + .bin) run on the openvino engine, which needs the openvino "
            f"package: {INSTALL} ({err})"
        ) from err
    return openvino


def read_model(path: str | Path) -> Any:
    """`openvino.Core().read_model` of an IR ``.xml`` (its ``.bin`` beside it) or ``.onnx``.

    Raises:
        EngineError: Missing file or weights, or not a model OpenVINO reads.
        BackendUnavailable: openvino is not installed.
    """
    path = Path(path)
    if not path.is_file():
        raise EngineError(f"model file {path} does not exist")
    if path.suffix.lower() == ".xml" and not path.with_suffix(".bin").is_file():
        raise EngineError(f"{path}: an OpenVINO IR needs its weights {path.with_suffix('.bin')}")
    ov = import_openvino()
    try:
        return ov.Core().read_model(str(path))
    except Exception as err:  # openvino raises its own RuntimeError subclasses
        raise EngineError(f"OpenVINO cannot read {path}: {err}") from err


def compile_model(
    model: Any, *, precision: str, threads: int, fixed_batch: bool, path: Path
) -> tuple[Any, int | None]:
    """Compiles `model` for the CPU: (compiled model, its fixed batch size or None).

    The batch is made dynamic when the graph allows it, unless `fixed_batch`.
    """
    ov = import_openvino()
    batch = model.inputs[0].partial_shape[0]
    fixed = batch.get_length() if batch.is_static else None
    if fixed is not None and not fixed_batch:
        shape = model.inputs[0].partial_shape
        try:
            model.reshape({model.inputs[0]: ov.PartialShape([-1, *list(shape)[1:]])})
            fixed = None
        except Exception as err:
            log.info("%s: batch stays %d (%s)", path, fixed, err)
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": _PRECISION_HINTS[precision]}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    try:
        return ov.Core().compile_model(model, "CPU", config), fixed
    except Exception as err:
        raise EngineError(f"OpenVINO cannot compile {path} for the CPU: {err}") from err


class OpenVinoEngine(Engine):
    """Embeds clips with an image ReID model run by OpenVINO: (N, C, H, W) float32 -> (N, D).

    Args:
        path: The ``.xml`` (weights in the ``.bin`` beside it) or ``.onnx`` file.
        device: "cpu" (OpenVINO's CPU plugin).
        precision: "fp32", "bf16" or "fp16": OpenVINO's inference precision hint.
        max_batch: Most clips per call.
        intra_op_threads: CPU threads of the compiled model (0: OpenVINO's default).
        color: Channel order the model takes; default "bgr" for ``.xml``, "rgb" for ``.onnx``.
        fixed_batch: Keep a graph's fixed batch size instead of making it dynamic.
        cfg: The full preprocessing description; default `image_reid_cfg` from the graph's
            shapes, with the format's defaults (module docstring) and the overrides below.
        **overrides: `image_reid_cfg` fields (``mean``, ``std``, ``interpolation``,
            ``clip_len``, ``input_size``).
    """

    name = "openvino"

    def __init__(
        self,
        path: str | Path,
        *,
        device: str = "cpu",
        precision: str = "fp32",
        max_batch: int = 32,
        intra_op_threads: int = 0,
        color: Literal["rgb", "bgr"] | None = None,
        fixed_batch: bool = False,
        cfg: PretrainedCfg | None = None,
        **overrides: Any,
    ) -> None:
        path = Path(path)
        if device != "cpu":
            raise EngineError(f"device {device!r}: the openvino engine runs on the CPU ('cpu')")
        if precision not in _PRECISION_HINTS:
            raise EngineError(
                f"precision {precision!r}: the openvino engine runs {', '.join(_PRECISION_HINTS)}"
            )
        ir = path.suffix.lower() == ".xml"
        self.color = color or ("bgr" if ir else "rgb")
        if self.color not in ("rgb", "bgr"):
            raise EngineError(f"color {self.color!r}: expected 'rgb' or 'bgr'")
        model = read_model(path)
        if len(model.inputs) != 1 or model.inputs[0].partial_shape.rank.get_length() != 4:
            raise EngineError(
                f"{path}: an image ReID model takes one (N, C, H, W) input, got "
                f"{[str(i.partial_shape) for i in model.inputs]}"
            )
        if cfg is None:
            cfg = _default_cfg(path, model, (RAW_PIXELS if ir else {}) | overrides)
        elif overrides:
            raise EngineError(f"give cfg= or overrides, not both (got {sorted(overrides)})")
        self.compiled, self._fixed_batch = compile_model(
            model, precision=precision, threads=intra_op_threads, fixed_batch=fixed_batch, path=path
        )
        super().__init__(
            cfg=cfg, device=device, precision=precision, max_batch=max_batch, clip_len=None
        )
        log.info(
            "%s: OpenVINO image ReID model, input %s, D=%d",
            path,
            cfg.input_size,
            self.embedding_dim,
        )

    @classmethod
    def create(
        cls,
        *,
        model: str | None = None,
        checkpoint: str | Path | None = None,
        onnx_path: str | Path | None = None,
        **options: Any,
    ) -> OpenVinoEngine:
        """`create_engine("openvino", onnx_path=MODEL.xml)` (or an ``.onnx`` image model)."""
        if onnx_path is None:
            raise EngineError("the openvino engine needs onnx_path= (an .xml IR or .onnx model)")
        if model is not None or checkpoint is not None:
            raise EngineError(
                "the openvino engine runs the model inside onnx_path; model= and checkpoint= "
                "belong to the torch engine"
            )
        return cls(onnx_path, **options)

    def _embed_batch(self, clips: torch.Tensor) -> np.ndarray:
        b, t = clips.shape[:2]
        frames = clip_frames(preprocess(clips, self.cfg, device="cpu"))
        if self.color == "bgr":
            frames = frames.flip(1)
        frames = frames.numpy()
        step = self._fixed_batch or frames.shape[0]
        parts = []
        for start in range(0, frames.shape[0], step):
            chunk = frames[start : start + step]
            n = chunk.shape[0]
            if n < step:  # a graph with a fixed batch size: pad with the last frame
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], step - n, axis=0)])
            parts.append(self.compiled(chunk)[0][:n])
        return average_frames(np.concatenate(parts), b, t)

    def close(self) -> None:
        self.compiled = None


def _default_cfg(path: Path, model: Any, overrides: dict[str, Any]) -> PretrainedCfg:
    """`image_reid_cfg` from the graph's input and output shapes, with `overrides`."""
    shape = model.inputs[0].partial_shape
    sides = [shape[i].get_length() if shape[i].is_static else None for i in (1, 2, 3)]
    size = tuple(sides) if None not in sides else (3, *DEFAULT_SIZE)
    out = model.outputs[0].partial_shape
    if not out[out.rank.get_length() - 1].is_static:
        raise EngineError(f"{path}: the output's last dimension (D) is not fixed: {out}")
    options = {"input_size": size, "embedding_dim": out[out.rank.get_length() - 1].get_length()}
    try:
        return image_reid_cfg(path.name, **(options | overrides))
    except TypeError as err:
        raise EngineError(f"unknown option for an OpenVINO model: {err}") from err
