"""The model registry: `@register_model` next to each builder, one `create_model` to build any.

As in timm, a builder is a plain function `name(*, num_classes, **overrides) -> ReIDModel`; the
decorator records it under its function name. Weights are loaded by `create_model` after the
model is built, so builders never touch files.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from reid_models.base import ReIDModel

__all__ = ["create_model", "is_model", "list_models", "register_model"]

_BUILDERS: dict[str, Callable[..., ReIDModel]] = {}
F = TypeVar("F", bound=Callable[..., ReIDModel])


def register_model(builder: F) -> F:
    """Registers `builder` under its function name; a second builder of that name is an error."""
    name = builder.__name__
    if name in _BUILDERS:
        raise ValueError(f"model {name!r} is registered twice")
    _BUILDERS[name] = builder
    return builder


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    return sorted(_BUILDERS)


def is_model(name: str) -> bool:
    return name in _BUILDERS


def create_model(
    name: str,
    *,
    num_classes: int = 0,
    pretrained: str | Path | None = None,
    **overrides: object,
) -> ReIDModel:
    """Builds a registered model and optionally loads weights into it.

    Args:
        name: A name from `list_models()`.
        num_classes: Training identities; 0 builds the model without a classifier (retrieval only).
        pretrained: Path of a weights file in the format the model's
            `PretrainedCfg.source_format` names (a torchvision ResNet state dict for the ResNet
            models, a C3D state dict for PersonVLAD, or a reidstream checkpoint of this model).
        **overrides: Builder arguments, e.g. ``variant="B"`` for `p3d_r50`. `name` and these
            are kept on the model as ``model_name`` and ``model_overrides``, what
            `reid_models.spec.model_spec` records in checkpoints.

    Raises:
        KeyError: Unknown `name`; the message lists the registered names.
    """
    if name not in _BUILDERS:
        close = difflib.get_close_matches(name, _BUILDERS, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"unknown model {name!r}.{hint} Registered: {', '.join(list_models())}")
    if num_classes < 0:
        raise ValueError(f"num_classes must be >= 0, got {num_classes}")
    model = _BUILDERS[name](num_classes=num_classes, **overrides)
    model.model_name, model.model_overrides = name, dict(overrides)
    if pretrained is not None:
        from reid_models.weights import load_pretrained

        load_pretrained(model, pretrained)
    return model
