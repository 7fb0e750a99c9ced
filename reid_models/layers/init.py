"""Marks modules whose initialisation is part of the method and must survive a model-wide init.

Video ResNets apply He init to every convolution after building; zero-initialised temporal
kernels, identity (Dirac) kernels and zero-gamma BatchNorms are what makes a 3D network start equal
to its 2D source, so they are marked here and skipped there.
"""

from __future__ import annotations

from torch import nn

__all__ = ["has_kept_init", "keep_init"]

_FLAG = "_reidstream_keep_init"


def keep_init(module: nn.Module) -> nn.Module:
    """Flags `module` and everything under it as initialised by its owner; returns `module`."""
    for m in module.modules():
        setattr(m, _FLAG, True)
    return module


def has_kept_init(module: nn.Module) -> bool:
    return getattr(module, _FLAG, False)
