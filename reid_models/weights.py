"""Loading weights into a model: torchvision ResNets (inflated to 3D), C3D, OSNet's ONNX export,
or the model's own.

`load_pretrained(model, path)` reads a state dict with ``torch.load(weights_only=True)`` and copies
each tensor into every submodule named in ``model.pretrained_cfg.backbone_prefixes`` (two-stream
models have two). Key by key:

* same name, same shape: copied (a C3D state dict into PersonVLAD's C3D trunk; 2D BN stats);
* a 2D kernel (O, I, kh, kw) into a 3D one (O, I, kt, kh, kw): inflated, by default into the centre
  temporal slice with the others zero, so that the 3D network computes its 2D source on a static
  clip (the official AP3D code's I3D init, github.com/guxinqian/AP3D ``models/AP3D.py``; M3D's
  zero temporal kernels "equal ... a 2D CNN layer"). ``inflate="mean"`` spreads it as 1/kt per
  slice, what Liao et al. (ACCV 2018, §3.1) say they did ("rescaled by 1/t"); it does not
  preserve the 2D function at clip borders;
* a conv replaced by a composite module (P3D's ``conv2.spatial``, AP-I3D's ``conv2.conv``)
  receives the 2D kernel in the submodule the composite names in ``pretrained_conv``.

Missing keys (layers the source lacks: temporal kernels, APM, heads) keep their initialisation and
are reported; unexpected keys (the ImageNet ``fc``, C3D's ``fc6``-``fc8``) are reported and
skipped; a shape that cannot be matched is an error naming the key and both shapes, and so is a
file of which nothing fits. A state dict of the model itself (keys under ``backbone.`` etc., as a
trained checkpoint has) is copied by name instead. An ``.onnx`` file (OSNet x0.25, for models of
source format ``osnet_onnx``) is first converted to a state dict of the frame trunk
(`reid_models.osnet_onnx`), then copied as above.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

__all__ = [
    "LoadReport",
    "WeightsError",
    "load_pretrained",
    "load_state_dict_file",
    "read_weights_file",
    "state_dict_of",
]

log = logging.getLogger(__name__)


class WeightsError(ValueError):
    """A weights file is unreadable, not a state dict, or does not fit the model."""


@dataclass
class LoadReport:
    """What `load_pretrained` did.

    Attributes:
        loaded: Target keys given a source tensor as it was.
        inflated: Target keys given an inflated 2D kernel.
        missing: Target keys the source does not provide (they keep their initialisation).
        unexpected: Source keys with no place in the model (skipped).
        conversion: For an ONNX source, how its graph became a state dict
            (`reid_models.osnet_onnx.OnnxConversionReport`); None for a state dict file.
    """

    loaded: list[str] = field(default_factory=list)
    inflated: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    conversion: Any = None


def read_weights_file(path: str | Path) -> Any:
    """Whatever a weights file holds, read with ``torch.load(weights_only=True)`` on the CPU.

    Raises:
        WeightsError: A missing file, or one that is not tensors and plain values (pickled
            code, a TorchScript archive, not a PyTorch file at all).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    try:
        with warnings.catch_warnings():  # torch.load's note on TorchScript archives: refused below
            warnings.filterwarnings("ignore", "'torch.load' received a zip file")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # the unpickler raises anything from IndexError to UnpicklingError
        raise WeightsError(
            f"{path} is not a PyTorch state dict: not readable by torch.load(weights_only=True): "
            f"{err}"
        ) from err


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Reads a tensor-only state dict (``weights_only=True``); unwraps ``{"state_dict": ...}``
    and ``{"model": ...}``, the two ways training runs wrap one (in reidstream's checkpoints
    ``"model"`` is the model spec, `reid_models.spec`, and the weights are under
    ``"state_dict"``). Half-precision tensors are returned as they are stored; loading them into
    a model (`load_pretrained`, ``load_state_dict``) casts them to the model's dtype."""
    return state_dict_of(read_weights_file(path), path)


def state_dict_of(obj: Any, path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict in `obj` (what `read_weights_file` returned for `path`); see
    `load_state_dict_file`."""
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and _is_state_dict(obj.get(key)):
            obj = obj[key]
            break
    if not _is_state_dict(obj):
        raise WeightsError(f"{path} holds a {type(obj).__name__}, not a dict of name -> tensor")
    # DataParallel checkpoints prefix every key with "module.".
    return {k.removeprefix("module."): v for k, v in obj.items()}


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def load_pretrained(
    model: nn.Module, path: str | Path, *, inflate: Literal["center", "mean"] = "center"
) -> LoadReport:
    """Copies the weights at `path` into `model` and reports what happened.

    The file is either in the model's source format (`PretrainedCfg.source_format`: copied into
    the backbones, inflating 2D kernels) or a state dict of this model itself, recognised by its
    keys starting with a backbone prefix (e.g. a trained checkpoint; copied by name, except a
    classifier trained for another number of identities, which is skipped and reported).

    Raises:
        WeightsError: Unreadable file, a tensor whose shape fits neither as-is nor inflated, or
            a file of which no tensor fits the model at all.
    """
    if inflate not in ("center", "mean"):
        raise ValueError(f"inflate must be 'center' or 'mean', got {inflate!r}")
    source, conversion = _read_source(model, path)
    prefixes = tuple(f"{p}." for p in model.pretrained_cfg.backbone_prefixes)
    whole = any(key.startswith(prefixes) for key in source)
    with torch.no_grad():
        if whole:
            report = _load_whole(model, source, path)
        else:
            report = _load_backbones(model, source, path, inflate)
    report.conversion = conversion
    if not report.loaded and not report.inflated:
        raise WeightsError(
            f"{path}: none of its {len(source)} tensors fits {type(model).__name__}; expected a "
            f"{model.pretrained_cfg.source_format} state dict or a state dict of this model "
            f"(first keys in the file: {', '.join(list(source)[:3])})"
        )
    log.info(
        "loaded %s into %s (%s): %d copied, %d inflated, %d missing (kept initialised), "
        "%d unexpected (skipped)%s",
        path,
        type(model).__name__,
        "checkpoint of this model" if whole else model.pretrained_cfg.source_format,
        len(report.loaded),
        len(report.inflated),
        len(report.missing),
        len(report.unexpected),
        f": {', '.join(report.unexpected[:8])}" if report.unexpected else "",
    )
    return report


def _read_source(model: nn.Module, path: str | Path) -> tuple[dict[str, torch.Tensor], Any]:
    """The state dict at `path`; an ``.onnx`` file is converted (`reid_models.osnet_onnx`), for
    models whose source format is ``osnet_onnx`` only. Returns (state dict, conversion report
    or None)."""
    if Path(path).suffix.lower() != ".onnx":
        return load_state_dict_file(path), None
    if model.pretrained_cfg.source_format != "osnet_onnx":
        raise WeightsError(
            f"{path}: an ONNX file loads only into models whose source format is osnet_onnx; "
            f"{type(model).__name__} takes a {model.pretrained_cfg.source_format} state dict"
        )
    from reid_models.osnet_onnx import convert_osnet_onnx  # imports onnx

    return convert_osnet_onnx(path)


def _load_backbones(
    model: nn.Module, source: dict[str, torch.Tensor], path: str | Path, inflate: str
) -> LoadReport:
    report = LoadReport()
    used: set[str] = set()
    prefixes = model.pretrained_cfg.backbone_prefixes
    for prefix in prefixes:
        target = model.get_submodule(prefix)
        tensors = target.state_dict(keep_vars=True)
        given: set[str] = set()
        for key, name in _targets(target).items():
            if key not in source:
                continue
            used.add(key)
            given.add(name)
            how = _copy(tensors[name], source[key], f"{prefix}.{name}", path, inflate)
            (report.inflated if how == "inflated" else report.loaded).append(f"{prefix}.{name}")
        report.missing += sorted(f"{prefix}.{k}" for k in tensors if k not in given)
    outside = tuple(f"{prefix}." for prefix in prefixes)
    report.missing += sorted(k for k in model.state_dict() if not k.startswith(outside))
    report.unexpected = sorted(set(source) - used)
    return report


def _load_whole(model: nn.Module, source: dict[str, torch.Tensor], path: str | Path) -> LoadReport:
    report = LoadReport()
    for key, tensor in model.state_dict(keep_vars=True).items():
        if key not in source:
            report.missing.append(key)
        elif "classifier" in key and source[key].shape != tensor.shape:
            log.warning(
                "%s: %s has shape %s in the file, %s in the model (another number of "
                "identities); kept initialised",
                path,
                key,
                tuple(source[key].shape),
                tuple(tensor.shape),
            )
            report.missing.append(key)
            report.unexpected.append(key)
        else:
            _copy(tensor, source[key], key, path, inflate="none")
            report.loaded.append(key)
    extra = set(source) - set(model.state_dict())
    report.unexpected = sorted([*report.unexpected, *extra])
    report.missing.sort()
    return report


def _targets(module: nn.Module) -> dict[str, str]:
    """Source key -> own state-dict key, redirecting into composite convs' ``pretrained_conv``."""
    mapping = {k: k for k in module.state_dict()}
    for name, sub in module.named_modules():
        inner = getattr(sub, "pretrained_conv", None)
        if inner is not None:
            for leaf in ("weight", "bias"):
                if f"{name}.{inner}.{leaf}" in mapping:
                    mapping[f"{name}.{leaf}"] = f"{name}.{inner}.{leaf}"
    return mapping


def _copy(dest: torch.Tensor, src: torch.Tensor, key: str, path: str | Path, inflate: str) -> str:
    if dest.shape == src.shape:
        dest.copy_(src)
        return "loaded"
    if (
        inflate != "none"
        and src.dim() == 4
        and dest.dim() == 5
        and dest.shape[:2] + dest.shape[3:] == src.shape
    ):
        kt = dest.shape[2]
        if inflate == "center":
            dest.zero_()
            dest[:, :, kt // 2].copy_(src)
        else:
            dest.copy_(src.unsqueeze(2).expand_as(dest) / kt)
        return "inflated"
    raise WeightsError(
        f"{path}: {key} has shape {tuple(src.shape)} in the file but the model expects "
        f"{tuple(dest.shape)}; is this file for another architecture or depth?"
    )
