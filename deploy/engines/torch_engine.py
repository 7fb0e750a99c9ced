"""The PyTorch engine: the model itself, eager or `torch.compile`d, on CPU or CUDA.

    uint8 clips ─ (CUDA: pinned staging buffer, non_blocking copy) ─▶ device
      ─ preprocess (resize, normalise; eager)                         (B, C, T, H, W) float32
      ─ channels_last_3d (optional)
      ─ autocast(fp16 | bf16) (optional) ─ model (eager or compiled) ─▶ (B, D)

Choices:

* Reduced precision runs under `torch.autocast`, not with the weights cast by ``.to(dtype)``:
  autocast runs convolutions and matmuls in fp16/bf16 (where the speed is) and keeps softmax,
  norms and reductions in fp32. Several models need that: AP3D's appearance-preserving softmax,
  the non-local attention, and PersonVLAD's soft assignment, whose logits are scaled by
  alpha = 1000 (3D PersonVLAD, Wu et al. TNNLS 2019, Sec. III-C) and lose their ranking at
  fp16's 11-bit mantissa.
  The price is a cast of each weight per call, small next to the convolutions and fused away
  under `torch.compile`. Autocast alone does not save PersonVLAD: its soft assignment is a
  linear layer, which autocast runs in fp16, and at alpha = 1000 that moved embeddings to cosine
  0.93 of fp32 (H100, random weights). Modules of the types in `FP32_MODULES` (`SoftVLAD`)
  therefore run in fp32 with autocast off; they are a small share of the compute.
* `torch.compile` compiles the model only. Preprocessing stays eager: crops arrive at any H, W
  and a compiled resize would recompile for every new crop size, while the model always sees
  ``cfg.input_size``. Batches are padded to power-of-two buckets (up to `max_batch`), so a
  compiled engine meets at most log2(max_batch) + 1 shapes and compiles each once
  (``dynamic=False`` gives the best kernels for a fixed shape).
* CUDA graphs come from ``compile_mode="reduce-overhead"`` (or ``"max-autotune"``): Inductor's
  CUDA graph trees capture one graph per bucket, on first use, and replay it; a hand-written
  `torch.cuda.graphs` capture would repeat that bookkeeping (static input buffers, memory pool,
  re-capture on new shapes). On the CPU these modes compile without graphs.
* ``channels_last`` stores 5-D weights and inputs as ``channels_last_3d`` (4-D weights of frame-
  level 2-D layers as ``channels_last``), the layout cuDNN's and oneDNN's fastest 3-D kernels use.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from deploy.engines.base import (
    BackendUnavailable,
    Engine,
    EngineError,
    normalize_device,
    preprocess,
    torch_dtype,
)
from reid_models import create_model
from reid_models.base import ReIDModel
from reid_models.layers.vlad import SoftVLAD
from reid_models.pretrained import PretrainedCfg
from reid_models.spec import ModelSpecError, checkpoint_spec, model_from_spec
from reid_models.weights import WeightsError, load_pretrained, read_weights_file, state_dict_of

__all__ = ["COMPILE_MODES", "FP32_MODULES", "TorchEngine", "load_checkpoint", "load_model"]

log = logging.getLogger(__name__)

#: Modes of `torch.compile` the engine accepts.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

#: Layers kept in fp32 under fp16/bf16 autocast (see the module docstring).
FP32_MODULES: tuple[type[nn.Module], ...] = (SoftVLAD,)


def load_model(
    name: str | None = None, *, checkpoint: str | Path | None = None, **overrides: Any
) -> ReIDModel:
    """Builds a model (retrieval only, eval mode) and loads `checkpoint` into it.

    A reidstream checkpoint (``best.pt``, ``last.pt``) carries a model spec under ``"model"``
    (`reid_models.spec`): its registry name, builder overrides and the `PretrainedCfg` it was
    trained with. The model is then built from the spec, so the file alone says the
    architecture, its width and the input size and clip length to feed it. `name` may be None;
    if given it must be the spec's, and `overrides` must agree with the spec's. Without a spec
    (older checkpoints, state dicts, backbone files) `name` is required and the model is
    ``create_model(name, **overrides)``.

    Raises:
        EngineError: An unknown name, a name or overrides that contradict the checkpoint's spec,
            no name and no spec, or a checkpoint that does not load (see `load_checkpoint`).
    """
    stored = _read(checkpoint) if checkpoint is not None else None
    return _model_from(name, stored, checkpoint, overrides)


def _model_from(
    name: str | None, stored: Any, checkpoint: str | Path | None, overrides: dict[str, Any]
) -> ReIDModel:
    """`load_model` on the already-read content `stored` of `checkpoint` (None: none)."""
    spec = checkpoint_spec(stored)
    if spec is not None:
        _check_spec(spec, name, overrides, checkpoint)
        try:
            model = model_from_spec(spec)
        except ModelSpecError as err:
            raise EngineError(f"checkpoint {checkpoint}: {err}") from err
    elif name is None:
        raise EngineError(
            f"checkpoint {checkpoint} carries no model spec (written before checkpoints had one, "
            f"or not by reidstream train): give the model's registry name"
            if checkpoint is not None
            else "load_model needs a registry name or a checkpoint with a model spec"
        )
    else:
        try:
            model = create_model(name, **overrides)
        except KeyError as err:
            raise EngineError(err.args[0]) from err
    if checkpoint is not None:
        _load_weights(model, stored, checkpoint)
    return model.eval()


def _read(path: str | Path) -> Any:
    try:
        return read_weights_file(path)
    except WeightsError as err:
        raise EngineError(f"cannot load the checkpoint {path}: {err}") from err


def _check_spec(
    spec: dict[str, Any], name: str | None, overrides: dict[str, Any], path: str | Path
) -> None:
    """Raises `EngineError` where `name` or `overrides` contradict the checkpoint's spec."""
    if name is not None and name != spec["name"]:
        raise EngineError(
            f"checkpoint {path} holds a {spec['name']!r} model (its model spec says so), not "
            f"{name!r}: set the model to {spec['name']!r}, or to none to take the checkpoint's"
        )
    stored = spec.get("overrides") or {}
    differ = {k: v for k, v in overrides.items() if stored.get(k, _ABSENT) != _as_plain(v)}
    if differ:
        raise EngineError(
            f"checkpoint {path} was trained with the builder overrides {stored}; the model "
            f"overrides {differ} contradict them: leave them out to take the checkpoint's"
        )


_ABSENT = object()


def _as_plain(value: Any) -> Any:
    """Tuples as lists, as a model spec stores them."""
    if isinstance(value, list | tuple):
        return [_as_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_plain(v) for k, v in value.items()}
    return value


def load_checkpoint(model: ReIDModel, path: str | Path) -> None:
    """Loads a checkpoint of `model`, or a backbone file in the model's source format.

    Accepted (read by `reid_models.weights.load_state_dict_file`): a plain state dict of the
    model, ``{"state_dict": ...}`` (what ``reidstream train`` writes in best.pt and last.pt) or
    ``{"model": ...}``. Keys may carry DataParallel's ``module.``; half-precision weights are
    cast to the model's dtype.
    A state dict of the model must provide every key the model has; classifier weights for the
    training identities are skipped (the engine serves embeddings). A file in the model's
    `PretrainedCfg.source_format` (e.g. ImageNet ResNet weights) goes through
    `reid_models.load_pretrained`; the head then keeps its initialisation, which is logged.
    A checkpoint whose model spec names another model is refused; one whose spec has another
    `PretrainedCfg` than `model` loads with a warning (`load_model` applies the spec's).

    Raises:
        EngineError: Missing or unreadable file, missing keys, or mismatched shapes.
    """
    stored = _read(path)
    spec = checkpoint_spec(stored)
    if spec is not None:
        _check_spec(spec, getattr(model, "model_name", None), {}, path)
        if spec.get("pretrained_cfg") != _stored_cfg(model):
            log.warning(
                "%s was trained with another PretrainedCfg than the given model has (input "
                "size, clip length...); the model's is kept. Build the model from the "
                "checkpoint (model=None or its name) to use the checkpoint's",
                path,
            )
    _load_weights(model, stored, path)


def _stored_cfg(model: ReIDModel) -> Any:
    """The model's `PretrainedCfg` as a model spec stores it (plain data)."""
    return _as_plain(dataclasses.asdict(model.pretrained_cfg))


def _load_weights(model: ReIDModel, stored: Any, path: str | Path) -> None:
    try:
        state = state_dict_of(stored, path)
    except WeightsError as err:
        raise EngineError(f"cannot load the checkpoint {path}: {err}") from err
    prefixes = tuple(f"{p}." for p in model.pretrained_cfg.backbone_prefixes)
    if not any(k.startswith(prefixes) for k in state):
        try:
            load_pretrained(model, path)
        except WeightsError as err:
            raise EngineError(str(err)) from err
        log.warning("%s is backbone weights only: the embedding head is untrained", path)
        return
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    if missing:
        raise EngineError(
            f"checkpoint {path} lacks {len(missing)} of the model's tensors "
            f"({', '.join(missing[:5])}); is it a checkpoint of another model?"
        )
    extra = sorted(set(state) - set(own))
    if extra:
        log.info("%s: skipped %d tensors the model has no place for: %s", path, len(extra), extra)
    try:
        # load_state_dict copies into the model's tensors, casting fp16 weights to its dtype.
        model.load_state_dict({k: state[k] for k in own}, strict=True)
    except RuntimeError as err:
        raise EngineError(f"checkpoint {path} does not fit {type(model).__name__}: {err}") from err


def _to_channels_last(module: nn.Module) -> None:
    """Stores 5-D parameters/buffers as channels_last_3d and 4-D ones as channels_last."""
    formats = {4: torch.channels_last, 5: torch.channels_last_3d}
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            if tensor.dim() in formats:
                tensor.data = tensor.data.contiguous(memory_format=formats[tensor.dim()])


_FP32_CLASSES: dict[type[nn.Module], type[nn.Module]] = {}


def _fp32_class(cls: type[nn.Module]) -> type[nn.Module]:
    """A subclass of `cls` whose forward runs in fp32 with autocast off.

    A subclass rather than a patched ``forward`` attribute: the module keeps its state-dict
    keys, and a deep copy of it (`deploy.export.parity` makes one) stays self-contained.
    """
    if cls not in _FP32_CLASSES:

        def forward(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
            tensors = [a for a in args if isinstance(a, torch.Tensor)]
            device_type = tensors[0].device.type if tensors else "cpu"
            floats = [
                a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                for a in args
            ]
            with torch.autocast(device_type, enabled=False):
                return super(fp32, self).forward(*floats, **kwargs)

        fp32 = type(f"Fp32{cls.__name__}", (cls,), {"forward": forward, "__module__": __name__})
        _FP32_CLASSES[cls] = fp32
    return _FP32_CLASSES[cls]


def _keep_fp32(module: nn.Module) -> None:
    """Makes the `FP32_MODULES` inside `module` run in fp32 with autocast off."""
    for sub in module.modules():
        if isinstance(sub, FP32_MODULES) and type(sub) not in _FP32_CLASSES.values():
            sub.__class__ = _fp32_class(type(sub))


def _bucket(batch: int, max_batch: int) -> int:
    """Smallest power of two >= batch, capped at max_batch."""
    return min(1 << (batch - 1).bit_length(), max_batch)


class TorchEngine(Engine):
    """Runs a `ReIDModel` (or a TorchScript export of one) in PyTorch.

    Args:
        model: The model; moved to `device` and put in eval mode (and left so).
        cfg: Preprocessing contract; default ``model.pretrained_cfg``.
        device: "cpu" or "cuda[:N]".
        precision: "fp32", or "fp16"/"bf16" under autocast (see the module docstring).
        max_batch: Most clips per forward pass.
        channels_last: Use the channels_last(_3d) memory format.
        compile: Wrap the model in `torch.compile`.
        compile_mode: `torch.compile` mode, one of `COMPILE_MODES`; "reduce-overhead" and
            "max-autotune" add CUDA graphs on a GPU.
        clip_len: T the model requires (default: the model's ``clip_len`` attribute, if any).
        min_clip_len: Shortest T accepted (default: the model's ``min_clip_len``).
    """

    name = "torch"

    def __init__(
        self,
        model: nn.Module,
        *,
        cfg: PretrainedCfg | None = None,
        device: str = "cpu",
        precision: str = "fp32",
        max_batch: int = 32,
        channels_last: bool = False,
        compile: bool = False,
        compile_mode: str = "default",
        clip_len: int | None = None,
        min_clip_len: int | None = None,
    ) -> None:
        device = normalize_device(device)
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailable(
                f"device {device!r}: this torch has no CUDA device (torch.cuda.is_available() is "
                f"false); install a CUDA build of torch from https://pytorch.org or use 'cpu'"
            )
        if precision not in ("fp32", "fp16", "bf16"):
            raise EngineError(
                f"precision {precision!r}: the torch engine runs fp32, fp16 or bf16; int8 needs "
                f"the tensorrt engine"
            )
        if compile_mode not in COMPILE_MODES:
            raise EngineError(f"compile_mode {compile_mode!r}: expected one of {COMPILE_MODES}")
        super().__init__(
            cfg=cfg if cfg is not None else model.pretrained_cfg,
            device=device,
            precision=precision,
            max_batch=max_batch,
            clip_len=clip_len if clip_len is not None else getattr(model, "clip_len", None),
            min_clip_len=min_clip_len or getattr(model, "min_clip_len", 1),
        )
        self.model = model.eval().to(device)
        for parameter in self.model.parameters():  # (ScriptModules lack requires_grad_)
            parameter.requires_grad_(False)
        self.channels_last = channels_last
        if channels_last:
            _to_channels_last(self.model)
        if precision != "fp32":
            _keep_fp32(self.model)
        self.compiled = compile
        self._forward = (
            torch.compile(self.model, mode=compile_mode, dynamic=False) if compile else self.model
        )
        self._staging: torch.Tensor | None = None

    @classmethod
    def create(
        cls,
        *,
        model: str | ReIDModel | None = None,
        checkpoint: str | Path | None = None,
        onnx_path: str | Path | None = None,
        device: str = "cpu",
        precision: str = "fp32",
        max_batch: int = 32,
        model_overrides: dict[str, Any] | None = None,
        **options: Any,
    ) -> TorchEngine:
        """`create_engine("torch", ...)`: a registry name (+ checkpoint), a model instance, a
        reidstream checkpoint alone, or a TorchScript file given as `checkpoint` with no `model`.

        A checkpoint with a model spec (what ``reidstream train`` writes) rebuilds its own
        model, overrides and `PretrainedCfg` (see `load_model`): with ``model=None`` nothing
        else is needed, and a `model` name must be the checkpoint's. With ``model=None`` a file
        ``torch.load(weights_only=True)`` cannot read is taken for TorchScript.
        """
        if onnx_path is not None:
            raise EngineError(
                f"the torch engine runs a PyTorch model, not the ONNX file {onnx_path}; use the "
                f"onnxruntime or tensorrt engine for it"
            )
        common = {"device": device, "precision": precision, "max_batch": max_batch, **options}
        if model is None:
            if checkpoint is None:
                raise EngineError(
                    "the torch engine needs model= (a registry name), a reidstream checkpoint or "
                    "a TorchScript file as checkpoint="
                )
            if not Path(checkpoint).is_file():
                raise EngineError(f"checkpoint {checkpoint} does not exist")
            try:
                stored = read_weights_file(checkpoint)
            except WeightsError:  # not tensors and plain values: a TorchScript archive
                return cls.from_torchscript(checkpoint, **common)
            model = _model_from(None, stored, checkpoint, dict(model_overrides or {}))
        elif isinstance(model, str):
            model = load_model(model, checkpoint=checkpoint, **(model_overrides or {}))
        elif checkpoint is not None:
            load_checkpoint(model, checkpoint)
        return cls(model, **common)

    @classmethod
    def from_torchscript(cls, path: str | Path, **options: Any) -> TorchEngine:
        """Loads a `deploy.export.export_torchscript` file; its sidecar gives cfg and T."""
        from deploy.export import read_sidecar

        path = Path(path)
        if not path.is_file():
            raise EngineError(f"TorchScript file {path} does not exist")
        sidecar = read_sidecar(path)
        try:
            with warnings.catch_warnings():  # deprecated in favour of torch.export; still served
                warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated")
                module = torch.jit.load(str(path), map_location="cpu")
        except RuntimeError as err:
            raise EngineError(f"{path} is not a TorchScript archive: {err}") from err
        if options.get("compile"):
            raise EngineError("compile=True: torch.compile does not take TorchScript modules")
        return cls(module, cfg=sidecar.cfg, clip_len=sidecar.clip_len, **options)

    def _stage(self, clips: torch.Tensor) -> torch.Tensor:
        """On CUDA, copies host clips into a reused pinned buffer so the upload is async."""
        if not self.device.startswith("cuda") or clips.device.type != "cpu":
            return clips
        if self._staging is None or self._staging.numel() < clips.numel():
            self._staging = torch.empty(clips.numel(), dtype=torch.uint8, pin_memory=True)
        staged = self._staging[: clips.numel()].view(clips.shape)
        staged.copy_(clips)
        return staged

    def _embed_batch(self, clips: torch.Tensor) -> torch.Tensor:
        b = clips.shape[0]
        x = preprocess(self._stage(clips), self.cfg, device=self.device)
        if self.compiled and b < (padded := _bucket(b, self.max_batch)):
            x = torch.cat([x, x[-1:].expand(padded - b, *x.shape[1:])])
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        device_type = torch.device(self.device).type
        low = self.precision != "fp32"
        dtype = torch_dtype(self.precision) if low else None
        with torch.inference_mode(), torch.autocast(device_type, dtype=dtype, enabled=low):
            out = self._forward(x)
        # Copied out at once: a CUDA-graph replay reuses its output buffer on the next call.
        return out[:b].float().cpu()

    def close(self) -> None:
        self._staging = None
        self._forward = self.model = None  # type: ignore[assignment]
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()
