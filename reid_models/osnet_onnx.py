"""Reading OSNet x0.25 weights out of its ONNX export (``osnet_x0_25_msmt17.onnx``).

The export (torch 2.1, opset 12) folded every BatchNorm2d into its conv, so most initializers
lost their names (``onnx::Conv_1257``); the 1x1 convs without BN (``conv2.0.conv2a.conv1``), the
gates and the ``fc`` kept theirs. Names alone cannot place the weights, so the graph is walked:

    Conv nodes, graph order (a shared gate's repeated uses read the same initializers once)
      <-> `reid_models.osnet.frame_convs(OSNetTrunk())`, registration = forward order
    Gemm fc.0 -> fc.0 (transposed unless transB);  BatchNormalization fc.1 -> fc.1

Pairing is by position, checked: the kernel and bias shapes, group and stride of every pair
must agree, and an initializer whose name is a trunk key must be the one its position gives
(``by_name``); renamed ones are placed by position only (``by_position``). Anything else (a
truncated or foreign file, another OSNet width, a detector) is a `WeightsError` naming the node.
The result is a state dict of the frame trunk (torchreid's names, conv biases = folded BN);
`reid_models.load_pretrained` copies it into ``backbone.`` of either OSNet model, where the AP3D
blocks' ``conv1.conv`` receives it in its ``spatial`` kernel (`P3DConv.pretrained_conv`) and the
temporal kernels and APM keep their initialisation.

``onnx`` is imported when a file is converted, never at import time (reid_models depends on
torch only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from reid_models.osnet import OSNetTrunk, frame_convs
from reid_models.weights import WeightsError

__all__ = ["OnnxConversionReport", "convert_osnet_onnx"]

_ARCH = "OSNet x0.25 (torchreid osnet_x0_25)"


@dataclass
class OnnxConversionReport:
    """What `convert_osnet_onnx` read.

    Attributes:
        by_name: Trunk keys whose initializer kept the trunk's name (and sat where its name says).
        by_position: Trunk keys placed by graph position (BN-folded, renamed initializers).
        unexpected: Weight initializers of Conv/Gemm/BatchNormalization nodes with no place
            in the trunk (none for the OSNet file; any would mean another architecture).
        conv_nodes: Conv nodes in the graph (shared gates counted at each use).
    """

    by_name: list[str] = field(default_factory=list)
    by_position: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    conv_nodes: int = 0


def convert_osnet_onnx(path: str | Path) -> tuple[dict[str, torch.Tensor], OnnxConversionReport]:
    """The frame-trunk state dict held by an OSNet x0.25 ONNX file, and how it was placed.

    Returns:
        (state dict with `OSNetTrunk` keys, float32 tensors; `OnnxConversionReport`). The
        BatchNorm1d's ``num_batches_tracked``, which ONNX does not store, is 0.

    Raises:
        WeightsError: Missing or unreadable file, or a graph that is not OSNet x0.25 (a shape,
            group or stride that differs, too many or too few layers, names out of place).
    """
    graph, path = _read_graph(path), Path(path)
    inits = {i.name: i for i in graph.initializer}
    trunk = OSNetTrunk()
    expected = trunk.state_dict()
    report = OnnxConversionReport()
    state: dict[str, torch.Tensor] = {}
    used = _place_convs(graph, inits, trunk, state, report, path)
    used |= _place_fc(graph, inits, expected, state, report, path)
    state["fc.1.num_batches_tracked"] = torch.zeros((), dtype=torch.long)
    missing = [k for k in expected if k not in state]
    if missing:
        raise WeightsError(
            f"{path}: not {_ARCH}: the graph gives no tensor for {len(missing)} of its "
            f"{len(expected)} entries ({', '.join(missing[:4])})"
        )
    weight_inputs = {
        name
        for node in graph.node
        if node.op_type in ("Conv", "Gemm", "BatchNormalization")
        for name in node.input[1:]
        if name in inits
    }
    report.unexpected = sorted(weight_inputs - used)
    return state, report


def _read_graph(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    import onnx  # lazily: only converting needs it

    try:
        model = onnx.load(str(path))
    except Exception as err:  # protobuf's DecodeError, or anything a damaged file raises
        raise WeightsError(f"{path} is not a readable ONNX model: {err}") from err
    if not model.graph.node:
        raise WeightsError(f"{path} holds no ONNX graph (truncated, or not an ONNX file)")
    return model.graph


def _array(inits: dict[str, Any], name: str, node: Any, path: Path) -> torch.Tensor:
    from onnx import numpy_helper

    if name not in inits:
        raise WeightsError(
            f"{path}: node {node.name} ({node.op_type}) reads {name!r}, which is not a stored "
            f"weight; not {_ARCH}"
        )
    return torch.from_numpy(np.array(numpy_helper.to_array(inits[name]), dtype=np.float32))


def _place_convs(
    graph: Any,
    inits: dict[str, Any],
    trunk: nn.Module,
    state: dict[str, torch.Tensor],
    report: OnnxConversionReport,
    path: Path,
) -> set[str]:
    """Pairs the graph's Conv nodes with the trunk's frame convs in order; returns the
    initializer names consumed."""
    convs = frame_convs(trunk)
    seen: set[str] = set()
    position = 0
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        report.conv_nodes += 1
        if node.input[1] in seen:  # the shared ChannelGate, applied to the next stream
            continue
        if position >= len(convs):
            raise WeightsError(
                f"{path}: not {_ARCH}: Conv node {node.name} is beyond the {len(convs)} "
                f"convolutions of the architecture"
            )
        name, conv = convs[position]
        position += 1
        seen.update(node.input[1:])
        _place_conv(node, inits, name, conv, state, report, path)
    if position != len(convs):
        raise WeightsError(
            f"{path}: not {_ARCH}: the graph has {position} distinct convolutions, the "
            f"architecture {len(convs)}"
        )
    return seen


def _place_conv(
    node: Any,
    inits: dict[str, Any],
    name: str,
    conv: nn.Conv2d,
    state: dict[str, torch.Tensor],
    report: OnnxConversionReport,
    path: Path,
) -> None:
    """Checks one Conv node against the trunk conv `name` and stores its kernel and bias."""
    attrs = {a.name: list(a.ints) if a.ints else a.i for a in node.attribute}
    group, strides = attrs.get("group", 1), attrs.get("strides", [1, 1])
    has_bias = len(node.input) > 2 and bool(node.input[2])
    tensors = {"weight": _array(inits, node.input[1], node, path)}
    if has_bias:
        tensors["bias"] = _array(inits, node.input[2], node, path)
    got = (tuple(tensors["weight"].shape), has_bias, group, list(strides))
    want = (tuple(conv.weight.shape), conv.bias is not None, conv.groups, list(conv.stride))
    if got != want:
        raise WeightsError(
            f"{path}: Conv node {node.name} (kernel, bias, group, stride) = {got} but {_ARCH} "
            f"has {want} at {name}; is this file another architecture or width?"
        )
    for leaf, initializer in zip(tensors, node.input[1:], strict=False):
        if not _renamed(initializer):
            _check_name(initializer, f"{name}.{leaf}", node, path)
        _store(f"{name}.{leaf}", initializer, tensors[leaf], state, report)


def _renamed(initializer: str) -> bool:
    """An initializer the exporter renamed (a folded BN's conv): ``onnx::Conv_1257``."""
    return initializer.startswith("onnx::")


def _check_name(initializer: str, key: str, node: Any, path: Path) -> None:
    if initializer != key:
        raise WeightsError(
            f"{path}: Conv node {node.name} reads {initializer!r} where {_ARCH}'s forward order "
            f"puts {key!r}: the graph's layers are not in OSNet's order"
        )


def _store(
    key: str,
    initializer: str,
    tensor: torch.Tensor,
    state: dict[str, torch.Tensor],
    report: OnnxConversionReport,
) -> None:
    state[key] = tensor
    (report.by_position if _renamed(initializer) else report.by_name).append(key)


def _place_fc(
    graph: Any,
    inits: dict[str, Any],
    expected: dict[str, torch.Tensor],
    state: dict[str, torch.Tensor],
    report: OnnxConversionReport,
    path: Path,
) -> set[str]:
    """The Gemm ``fc.0`` and BatchNormalization ``fc.1`` (by their kept names, shapes checked)."""
    used: set[str] = set()
    for node in graph.node:
        if node.op_type == "Gemm":
            leaves, prefix = ("weight", "bias"), "fc.0"
        elif node.op_type == "BatchNormalization":
            leaves, prefix = ("weight", "bias", "running_mean", "running_var"), "fc.1"
            _check_epsilon(node, path)
        else:
            continue
        for leaf, name in zip(leaves, node.input[1:], strict=False):
            tensor = _array(inits, name, node, path)
            if node.op_type == "Gemm" and leaf == "weight" and not _attr(node, "transB", 0):
                tensor = tensor.t().contiguous()
            key = f"{prefix}.{leaf}"
            if key in state or tuple(tensor.shape) != tuple(expected[key].shape):
                raise WeightsError(
                    f"{path}: {node.op_type} node {node.name} gives {name!r} of shape "
                    f"{tuple(tensor.shape)} for {key}, which {_ARCH} has once, of shape "
                    f"{tuple(expected[key].shape)}"
                )
            _store(key, name, tensor, state, report)
            used.add(name)
    return used


def _attr(node: Any, name: str, default: float) -> float:
    from onnx import helper

    found = [helper.get_attribute_value(a) for a in node.attribute if a.name == name]
    return found[0] if found else default


def _check_epsilon(node: Any, path: Path) -> None:
    eps = float(_attr(node, "epsilon", 1e-5))
    if not np.isclose(eps, 1e-5, rtol=1e-3):
        raise WeightsError(
            f"{path}: BatchNormalization {node.name} has epsilon {eps}; the model's "
            f"BatchNorm1d uses 1e-5"
        )
