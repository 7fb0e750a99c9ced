"""Model specs: what rebuilds a model from its weights file alone.

A state dict does not say which network it belongs to, with which builder options (a narrow
``base_width`` changes every shape) or what input it was trained on (a run may train at 64x32
and test on 8-frame clips where the builder's `PretrainedCfg` says 256x128 and 32). A model spec
is that missing part, as plain data that ``torch.load(weights_only=True)`` and JSON accept:

    {"name": "ap3d_r18",                       registry name
     "overrides": {"base_width": 16},          builder keyword overrides
     "pretrained_cfg": {"input_size": [3, 64, 32], "test_clip_len": 8, ...}}
                                               dataclasses.asdict(PretrainedCfg), tuples as lists

    model_spec(model) ─▶ spec ─▶ checkpoint["model"] ─▶ model_from_spec(spec) ─▶ the same network,
                                                         weights still to load, cfg attached

reidstream's trainers store the spec under ``"model"`` in ``best.pt`` and ``last.pt``
(`SPEC_KEY`); the deploy engines and the exporter read it, so a checkpoint is served at the input
size it was trained with. timm keeps the same facts in ``pretrained_cfg["architecture"]`` and a
hub config file beside the weights; here they travel in the one file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reid_models._registry import create_model, is_model
from reid_models.base import ReIDModel
from reid_models.pretrained import PretrainedCfg
from reid_models.weights import read_weights_file

__all__ = [
    "SPEC_KEY",
    "ModelSpecError",
    "checkpoint_spec",
    "model_from_spec",
    "model_spec",
    "read_model_spec",
]

#: Key of the model spec in a checkpoint dict.
SPEC_KEY = "model"
_FIELDS = ("name", "overrides", "pretrained_cfg")


class ModelSpecError(ValueError):
    """A model spec is malformed, names an unregistered model, or does not build."""


def model_spec(
    model: ReIDModel, name: str | None = None, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The spec that rebuilds `model` (see the module docstring).

    Args:
        model: The model; its current ``pretrained_cfg`` is recorded (the one a training run
            attached, with the run's input size and clip lengths).
        name: Registry name; default ``model.model_name``, set by `create_model`.
        overrides: Builder keyword overrides; default ``model.model_overrides``. Values must be
            plain data (str, int, float, bool, None, lists, dicts with str keys); tuples are
            stored as lists.

    Raises:
        ModelSpecError: No name known, a name that is not registered, or an override that is
            not plain data.
    """
    name = name if name is not None else getattr(model, "model_name", None)
    if name is None:
        raise ModelSpecError(
            f"{type(model).__name__} was not built by create_model and no name was given: "
            f"pass the registry name to model_spec"
        )
    if not is_model(name):
        raise ModelSpecError(f"model {name!r} is not registered")
    if overrides is None:
        overrides = getattr(model, "model_overrides", {})
    return {
        "name": name,
        "overrides": {str(k): _plain(v, f"overrides.{k}") for k, v in overrides.items()},
        "pretrained_cfg": _plain(dataclasses.asdict(model.pretrained_cfg), "pretrained_cfg"),
    }


def model_from_spec(spec: Mapping[str, Any], *, num_classes: int = 0) -> ReIDModel:
    """Builds ``create_model(spec["name"], **spec["overrides"])`` with the stored cfg attached.

    The weights are not loaded (load the checkpoint's ``state_dict`` into the result).

    Args:
        spec: A `model_spec` result, e.g. ``checkpoint["model"]``.
        num_classes: Classifier size; 0 builds the retrieval-only model.

    Raises:
        ModelSpecError: `spec` lacks a field or has an unknown one, names an unregistered model,
            has overrides its builder refuses, or a stored cfg that is not a valid
            `PretrainedCfg` or disagrees with the built model's embedding size.
    """
    if not isinstance(spec, Mapping):
        raise ModelSpecError(f"a model spec is a mapping, got {type(spec).__name__}")
    missing = [f for f in _FIELDS if f not in spec]
    unknown = sorted(set(spec) - set(_FIELDS))
    if missing or unknown:
        raise ModelSpecError(
            f"a model spec has the fields {list(_FIELDS)}; this one lacks {missing} and has "
            f"unknown {unknown}"
        )
    name, overrides = spec["name"], spec["overrides"]
    if not isinstance(name, str) or not isinstance(overrides, Mapping):
        raise ModelSpecError(
            f"model spec: name must be a str and overrides a mapping, got {name!r} and "
            f"{type(overrides).__name__}"
        )
    try:
        model = create_model(name, num_classes=num_classes, **overrides)
    except KeyError as err:  # unknown name; the message lists the registered ones
        raise ModelSpecError(f"model spec: {err.args[0]}") from err
    except (TypeError, ValueError) as err:
        raise ModelSpecError(
            f"model spec: {name} does not build with overrides {dict(overrides)}: {err}"
        ) from err
    cfg = _cfg_from_dict(spec["pretrained_cfg"])
    if cfg.embedding_dim != model.pretrained_cfg.embedding_dim:
        raise ModelSpecError(
            f"model spec: pretrained_cfg.embedding_dim is {cfg.embedding_dim} but {name} with "
            f"overrides {dict(overrides)} embeds into {model.pretrained_cfg.embedding_dim}"
        )
    model.pretrained_cfg = cfg
    return model


def checkpoint_spec(checkpoint: Any) -> dict[str, Any] | None:
    """The spec stored in a loaded checkpoint (``checkpoint["model"]`` when it is a mapping with
    a ``name``), or None for a checkpoint or state dict without one."""
    if not isinstance(checkpoint, Mapping):
        return None
    spec = checkpoint.get(SPEC_KEY)
    return dict(spec) if isinstance(spec, Mapping) and "name" in spec else None


def read_model_spec(path: str | Path) -> dict[str, Any] | None:
    """The spec in the checkpoint file at `path`, or None where it holds none.

    Raises:
        reid_models.WeightsError: A missing file or one ``torch.load(weights_only=True)``
            cannot read.
    """
    return checkpoint_spec(read_weights_file(path))


def _plain(value: Any, where: str) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    raise ModelSpecError(
        f"model spec: {where} = {value!r} ({type(value).__name__}) is not plain data (str, "
        f"int, float, bool, None, lists and dicts of them)"
    )


def _cfg_from_dict(stored: Any) -> PretrainedCfg:
    if not isinstance(stored, Mapping):
        raise ModelSpecError(
            f"model spec: pretrained_cfg must be a mapping, got {type(stored).__name__}"
        )
    # asdict turned the tuple fields (input_size, mean, std, backbone_prefixes) into lists.
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in stored.items()}
    try:
        return PretrainedCfg(**fields)
    except (TypeError, ValueError) as err:
        raise ModelSpecError(
            f"model spec: pretrained_cfg is not a valid PretrainedCfg: {err}"
        ) from err
