"""The official AP3D checkpoints (github.com/guxinqian/AP3D @ 84bd12a, ``models/ResNet.py``,
``models/AP3D.py``, ``models/NonLocal.py``): ``ap3dres50`` -> ``ap3d_r50`` and ``ap3dnlres50`` ->
``nl_ap3d_r50``.

The two networks compute the same function; only the names differ:

    official (train.py's save_checkpoint)         ours
    conv1, bn1                                     backbone.conv1, backbone.bn1
    layerL.<i>: Bottleneck3D or NonLocalBlock3D    backbone.layerL.<j> / .nonlocal<j>
      (non-local blocks sit in the same nn.Sequential, so they shift the indices: with
       nl_idx [1, 3] layer2 is [0, 1, NL, 2, 3, NL] and our block 2 is official index 3)
    .conv2.conv3d (C2D)                            .conv2 (a (1, 3, 3) Conv3d)
    .conv2.spatial_conv3d / .temporal_conv3d       .conv2.spatial / .conv2.temporal (P3D-C)
    .conv2.APM.{semantic,x,n}_mapping (Conv3d)     .conv2.apm.* (the same 1x1 kernels as Conv2d)
    .conv2.APM.contrastive_att_net.0               .conv2.apm.contrastive_att
    NL: g.0, phi.0 (conv, then max-pool), theta    nonlocal<j>.g, .phi, .theta (pool_first=False)
    bn, classifier                                 head.bn, head.classifier
"""

from __future__ import annotations

import re

from reid_models.ap3d import NONLOCAL_AFTER
from reid_models.convert.core import (
    Conversion,
    ConversionReport,
    Mapped,
    OfficialState,
    finish,
    rename_all,
)
from reid_models.resnet3d import LAYER_BLOCKS

__all__ = ["convert_ap3d", "official_layer_order"]

#: Official architecture name -> (our registry name, non-local blocks).
AP3D_LAYOUTS = {"ap3dres50": ("ap3d_r50", False), "ap3dnlres50": ("nl_ap3d_r50", True)}
_BLOCK = re.compile(r"layer(\d)\.(\d+)\.(.+)")
_CONV2 = {
    "conv2.conv3d.": "conv2.",
    "conv2.spatial_conv3d.": "conv2.spatial.",
    "conv2.temporal_conv3d.": "conv2.temporal.",
    "conv2.APM.contrastive_att_net.0.": "conv2.apm.contrastive_att.",
    "conv2.APM.": "conv2.apm.",
}
_NONLOCAL = {"g.0.": "g.", "phi.0.": "phi.", "theta.": "theta.", "W.": "W."}


def official_layer_order(layer: int, nonlocal_blocks: bool) -> list[str]:
    """Our names of the official ``layer<layer>`` Sequential's entries, in index order."""
    after = NONLOCAL_AFTER.get(layer, frozenset()) if nonlocal_blocks else frozenset()
    names: list[str] = []
    for block in range(LAYER_BLOCKS[50][layer - 1]):
        names.append(str(block))
        if block in after:
            names.append(f"nonlocal{block}")
    return names


def _rename(key: str, orders: dict[int, list[str]]) -> str | None:
    if key.startswith(("conv1.", "bn1.")):
        return f"backbone.{key}"
    if key.startswith(("bn.", "classifier.")):
        return f"head.{key}"
    match = _BLOCK.fullmatch(key)
    if match is None or int(match[1]) not in orders or int(match[2]) >= len(orders[int(match[1])]):
        return None
    ours, rest = orders[int(match[1])][int(match[2])], match[3]
    table = _NONLOCAL if ours.startswith("nonlocal") else _CONV2
    for old, new in table.items():
        if rest.startswith(old):
            rest = new + rest.removeprefix(old)
            break
    return f"backbone.layer{match[1]}.{ours}.{rest}"


def convert_ap3d(state: OfficialState, layout: str, report: ConversionReport) -> Conversion:
    """Converts an official ``ap3dres50`` / ``ap3dnlres50`` state dict (see the module docstring).

    Raises:
        ConversionError: Keys missing, unexpected or of another shape, all listed.
    """
    name, nonlocal_blocks = AP3D_LAYOUTS[layout]
    orders = {layer: official_layer_order(layer, nonlocal_blocks) for layer in (1, 2, 3, 4)}
    mapped: Mapped = {}
    rename_all(state, lambda key: _rename(key, orders), mapped)
    return finish(layout, name, {}, mapped, [state], report, "head.classifier.weight")
