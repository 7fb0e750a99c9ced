"""M3D's released two-stream layout (github.com/ljn114514/M3D @ 68afe5e) -> ``m3d_code_r50``
without RAL (``ral_branches=""``).

The official code trains the two streams apart and saves each as a plain state dict:
``ResNet50-2d/resnet.py`` (the 2D stream, ``ResNet50-2d.pth``) and ``ResNet50-M3D/model/M3D.py``
(the temporal stream, ``weight/resnet50_m3d_*.pth``). Either file, or both in any order, convert:
a file with ``conv1_t.*`` keys is the temporal stream.

    official (both files)                      ours, under spatial. / temporal.
    conv1, bn1, layer1-4 (Conv2d kernels)      backbone.* (the same kernels as (1, k, k) Conv3d)
    feat, feat_bn, classifier                  head.fc, head.bn, head.classifier
    temporal only:
    conv1_t.conv<k>  (MultiConv on the stem)   backbone.stem_m3d.convs.<k-1>
    layerL.0.conv2_t.conv<k>                   backbone.layerL.0.m3d.convs.<k-1>
    conv1_t.bn<k>, layerL.0.conv2_t.bn<k>      none (see below)

Each official temporal branch is conv -> BN -> ReLU with its kernel filled with zeros; ours is a
linear kernel (`reid_models.layers.m3d_layers`). A zero kernel gives BN a constant 0 input, and
ReLU'(0) = 0, so training never moves the kernel (weight decay keeps a zero at zero): in a
checkpoint the official code trained, every branch kernel is still 0 and each branch adds
ReLU(beta - gamma * mu / sqrt(var + eps)) per channel, which is 0 as long as that BN's
beta <= gamma * mu / sqrt(var + eps) (beta and mu stay 0 in training). The converter checks
both, so that the converted branches (zero kernels) add exactly what the official ones add, and
refuses a file where either fails. ``ResNet50-M3D_RAL`` checkpoints (``attention1-3``) are refused
too: their attention layer (ReLU before BN, a ReLU on the channel mask) is not our RAL.
"""

from __future__ import annotations

import re
from typing import Any

import torch

from reid_models.convert.core import (
    Conversion,
    ConversionError,
    ConversionReport,
    Mapped,
    OfficialState,
    finish,
    rename_all,
    rename_trunk,
)

__all__ = ["convert_m3d", "dead_branch_constant"]

_MULTICONV = re.compile(r"(conv1_t|layer(\d)\.0\.conv2_t)\.(conv|bn)(\d)\.(.+)")
_HEAD = {"feat.": "head.fc.", "feat_bn.": "head.bn.", "classifier.": "head.classifier."}
_BN_EPS = 1e-5  # nn.BatchNorm3d's default, which the official MultiConv uses


def dead_branch_constant(state: OfficialState, bn: str) -> torch.Tensor:
    """What an official branch whose kernel is zero adds per channel in eval mode:
    ReLU(BN(0)) = ReLU(beta - gamma * mu / sqrt(var + eps)), for the BN prefix `bn`."""
    gamma, beta = state.take(f"{bn}.weight"), state.take(f"{bn}.bias")
    mean, var = state.take(f"{bn}.running_mean"), state.take(f"{bn}.running_var")
    if f"{bn}.num_batches_tracked" in state:
        state.take(f"{bn}.num_batches_tracked")
    return torch.relu(beta - gamma * mean / torch.sqrt(var + _BN_EPS))


def _temporal_branches(state: OfficialState, mapped: Mapped, report: ConversionReport) -> None:
    """Maps the zero MultiConv kernels and checks that every branch adds exactly 0."""
    bad: list[str] = []
    for key in state.untaken():
        match = _MULTICONV.fullmatch(key)
        if match is None or match[3] != "conv" or match[5] != "weight":
            continue
        where = "stem_m3d" if match[2] is None else f"layer{match[2]}.0.m3d"
        kernel = state.take(key)
        mapped[f"temporal.backbone.{where}.convs.{int(match[4]) - 1}.weight"] = (key, kernel)
        bn = f"{match[1]}.bn{match[4]}"
        added = dead_branch_constant(state, bn) if f"{bn}.weight" in state else torch.zeros(1)
        if kernel.count_nonzero() or added.count_nonzero():
            bad.append(f"{key} (max |w| {kernel.abs().max():.3g}, adds up to {added.max():.3g})")
    if bad:
        raise ConversionError(
            f"M3D temporal branches that are not zero: {', '.join(bad)}. Our M3D kernels are "
            f"linear; an official branch (conv -> BN -> ReLU) converts only while it adds "
            f"nothing, as in every checkpoint the official code trains (its zero kernels get no "
            f"gradient)"
        )
    report.folded.append(
        "the temporal stream's MultiConv BatchNorms: zero kernels, each branch adds exactly 0 "
        "(checked), so the converted branches are zero kernels"
    )


def convert_m3d(states: list[OfficialState], layout: str, report: ConversionReport) -> Conversion:
    """Converts one or both official M3D streams (see the module docstring).

    Raises:
        ConversionError: Two files of one stream, a RAL checkpoint, live temporal branches, or
            keys missing, unexpected or of another shape (all listed).
    """
    streams: dict[str, OfficialState] = {}
    for state in states:
        stream = "temporal" if "conv1_t.conv1.weight" in state else "spatial"
        if stream in streams:
            raise ConversionError(
                f"{streams[stream].name} and {state.name} are both M3D {stream} streams; give "
                f"one file of each stream (the temporal one has conv1_t keys)"
            )
        if any(k.startswith("attention") for k in state):
            raise ConversionError(
                f"{state.name} is a ResNet50-M3D_RAL checkpoint (attention1-3): its attention "
                f"layer is not this model's RAL and does not convert; ResNet50-M3D does"
            )
        streams[stream] = state
    mapped: Mapped = {}
    if "temporal" in streams:
        _temporal_branches(streams["temporal"], mapped, report)
    for stream, state in streams.items():
        rename_all(state, lambda key: rename_trunk(key, _HEAD), mapped, prefix=f"{stream}.")
    overrides: dict[str, Any] = {"ral_branches": ""}
    if len(streams) == 1:
        overrides["stream"] = next(iter(streams))
    first = "spatial" if "spatial" in streams else "temporal"
    return finish(
        layout,
        "m3d_code_r50",
        overrides,
        mapped,
        list(streams.values()),
        report,
        f"{first}.head.classifier.weight",
    )
