"""Converters for checkpoints trained with the papers' official code, into self-describing
reidstream checkpoints that ``reidstream run``, ``export`` and ``compile`` serve as they are.

    from reid_models.convert import convert_official_files, list_official
    conversion = convert_official_files("ap3dres50", ["checkpoint_ep240.pth.tar"])
    torch.save(conversion.checkpoint(), "ap3d_mars.pt")   # or: reidstream convert ...
    print("\\n".join(conversion.report.lines()))

    layout        official code                                        our model
    ap3dres50     github.com/guxinqian/AP3D @ 84bd12a, AP3DResNet50    ap3d_r50
    ap3dnlres50   the same, AP3DNLResNet50                             nl_ap3d_r50
    gltr          github.com/ljn114514/GLTR @ 5204197, resnet.py       gltr_r50, code overrides
    m3d           github.com/ljn114514/M3D @ 68afe5e, ResNet50-2d      m3d_code_r50, no RAL
                  and/or ResNet50-M3D (one file per stream)

Files are read with ``torch.load(weights_only=True)`` (no code runs). Every converter maps the
official names onto ours, checks that each model tensor is given, each official tensor used and
each shape equal, and raises `ConversionError` listing every key that is not; where the
official block holds tensors ours does not, the module of that layout derives why the outputs
are still the same (`reid_models.convert.gltr`, `reid_models.convert.m3d`). The identity
classifier of the training set is kept (serving skips it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch

from reid_models.convert.ap3d import AP3D_LAYOUTS, convert_ap3d
from reid_models.convert.core import (
    CHECKPOINT_FORMAT,
    Conversion,
    ConversionError,
    ConversionReport,
    OfficialState,
    official_state,
)
from reid_models.convert.gltr import convert_gltr
from reid_models.convert.m3d import convert_m3d
from reid_models.weights import read_weights_file

__all__ = [
    "CHECKPOINT_FORMAT",
    "Conversion",
    "ConversionError",
    "ConversionReport",
    "convert_official",
    "convert_official_files",
    "list_official",
]


def _single(convert: Callable[..., Conversion]) -> Callable[..., Conversion]:
    def run(states: list[OfficialState], layout: str, report: ConversionReport) -> Conversion:
        if len(states) != 1:
            raise ConversionError(f"the {layout} layout converts one file, got {len(states)}")
        return convert(states[0], layout, report)

    return run


_CONVERTERS: dict[str, Callable[..., Conversion]] = {
    **{name: _single(convert_ap3d) for name in AP3D_LAYOUTS},
    "gltr": _single(convert_gltr),
    "m3d": convert_m3d,
}
#: How many files each layout takes.
_FILES = {"m3d": (1, 2)}


def list_official() -> list[str]:
    """Names of the official layouts that convert."""
    return sorted(_CONVERTERS)


def convert_official(
    layout: str, states: Sequence[Mapping[str, torch.Tensor] | object], names: Sequence[str]
) -> Conversion:
    """Converts official state dicts (as loaded; wrappers and ``module.`` allowed).

    Args:
        layout: One of `list_official()`.
        states: One loaded file per stream (M3D: the 2D stream, the temporal stream or both).
        names: A name for each, used in the report and in error messages (the file path).

    Raises:
        ConversionError: An unknown layout, a wrong number of files, or files that do not fit
            the layout (every offending key listed).
    """
    if layout not in _CONVERTERS:
        raise ConversionError(
            f"unknown official layout {layout!r}; the converters are {', '.join(list_official())}"
        )
    low, high = _FILES.get(layout, (1, 1))
    if not low <= len(states) <= high:
        raise ConversionError(
            f"the {layout} layout takes {low}{f' or {high}' if high > low else ''} file(s), "
            f"got {len(states)}"
        )
    report = ConversionReport(layout)
    loaded = [official_state(s, n, report) for s, n in zip(states, names, strict=True)]
    return _CONVERTERS[layout](loaded, layout, report)


def convert_official_files(layout: str, paths: Sequence[str | Path]) -> Conversion:
    """`convert_official` on files, each read with ``torch.load(weights_only=True)``.

    Raises:
        reid_models.WeightsError: A missing or unreadable file; `ConversionError` (a subclass)
            as `convert_official`.
    """
    return convert_official(layout, [read_weights_file(p) for p in paths], [str(p) for p in paths])
