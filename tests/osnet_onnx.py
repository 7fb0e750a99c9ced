"""A small, valid stand-in for ``osnet_x0_25_msmt17.onnx``, for machines without ``shared/data``.

`write_osnet_onnx` writes OSNet x0.25 with random (seeded) weights in the layout of torchreid's
export of ``osnet_x0_25`` (torch 2.1, opset 12), so that `reid_models.convert_osnet_onnx`,
`reid_models.load_pretrained` and `deploy`'s external ONNX engine take it exactly as they take
the real file:

* input ``images`` (batch, 3, 256, 128), output ``output`` (batch, 512), opset 12;
* the nodes of the real graph in its order, with its node names: torchreid's forward runs the
  four Lite streams, then the shared gate once per stream (GlobalAveragePool, Conv fc1, Relu,
  Conv fc2, Sigmoid, Mul; the same gate initializers read four times), the Adds, ``conv3``,
  then ``downsample``; 1x1 conv + AveragePool transitions; GlobalAveragePool, the
  Shape/Gather/Unsqueeze/Concat/Reshape flatten, Gemm ``fc.0`` (transB=1), BatchNormalization
  ``fc.1``, Relu;
* initializers named as the export names them: kept names for the bias-free Lite 1x1 kernels
  (``conv2.0.conv2a.conv1.weight``), the gates and ``fc``; ``onnx::Conv_<n>`` (n = 1047, 1050,
  ...: weight n, bias n + 1) for every conv whose BatchNorm the export folded.

**Built node by node** (onnx.helper), not with ``torch.onnx.export``: exporting
`reid_models.osnet.OSNetTrunk` gives a graph the converter rightly refuses. Its convs are
5-D `FrameConv` (Reshape nodes around each Conv), its forward applies the gate right after each
stream and ``downsample`` before ``conv3`` (so the Conv order is not torchreid's, and
``conv3``/``downsample`` of ``conv2.0`` have the same shape: a swap would pass the shape
checks), no initializer is renamed, and the TorchScript exporter's initializer deduplication
drops the freshly initialised, all-zero biases of equal length while a Conv still reads them
(``conv2.0.conv1.conv.bias`` "is not a stored weight"). Writing the graph here also keeps the
file independent of the (deprecated) TorchScript exporter and takes well under a second.

**Weights.** `c2d_osnet_x0_25` under ``torch.manual_seed(seed)``, whose convs are
He-initialised with zero biases and no normalisation (frame features of norm ~2000), then given
what the real file has, a BatchNorm folded into every conv torchreid normalises: one forward pass
over a fixed calibration batch (four random frames, `_calibration_frames`) measures each such
conv's per-channel output mean m and std s, in forward order, and folds a BN with those
statistics and a random affine (gamma ~ U(0.5, 1), beta ~ N(0, 0.1)): W' = W * gamma / s,
b' = (b - m) * gamma / s + beta. The gates' fc biases get N(0, 0.1) values; ``fc.1`` gets the
batch's per-channel mean, one variance for all channels and a random affine. Activations stay
O(1-10) through the network; frame features have norms of ~5 (white noise), ~9 (smooth noise)
and 15-75 (real normalised crops), and differ between inputs (cosine 0.9-0.97, not ~1). Every
bias is non-zero and distinct, so a bias placed at the wrong conv shows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reid_models import create_model
from reid_models.osnet import OSBlock, OSNetTrunk, frame_convs

__all__ = ["FIRST_FOLDED_ID", "INPUT_SHAPE", "synthetic_osnet_trunk", "write_osnet_onnx"]

#: The exported model's input size (C, H, W); the batch is dynamic (``batch``).
INPUT_SHAPE = (3, 256, 128)
#: The number of the first renamed initializer in the real export (``onnx::Conv_1047``).
FIRST_FOLDED_ID = 1047
_OPSET = 12
_IR_VERSION = 7


def write_osnet_onnx(path: Path, *, seed: int = 0) -> Path:
    """Writes a random OSNet x0.25 (seeded) as torchreid's ONNX export lays it out (module
    docstring) to `path`, about 0.9 MB; returns `path`."""
    import onnx

    trunk = synthetic_osnet_trunk(seed)
    graph = _GraphWriter(trunk)
    graph.trunk()
    model = graph.model()
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


# ---------------------------------------------------------------------------------- weights


def _calibration_frames(gen: torch.Generator) -> torch.Tensor:
    """(4, 3, 1, 256, 128): two white-noise frames and two smooth ones (noise at 1/8 resolution,
    upsampled), each with its own contrast and per-channel brightness, so that the globally
    pooled features vary between frames about as much as between such inputs at test time.

    The forward pass over them runs on one thread: ~0.1 s, where two threads on a 2-core
    machine that is busy with anything else took ~7 s (OpenMP workers waiting on each other)."""
    h, w = INPUT_SHAPE[1:]
    white = torch.randn(2, 3, h, w, generator=gen)
    coarse = torch.randn(2, 3, h // 8, w // 8, generator=gen)
    smooth = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)
    x = torch.cat([white, smooth])
    contrast = torch.empty(4, 1, 1, 1).uniform_(0.5, 1.5, generator=gen)
    brightness = 0.5 * torch.randn(4, 3, 1, 1, generator=gen)
    return (x * contrast + brightness).unsqueeze(2)


def _folded(trunk: OSNetTrunk) -> list[nn.Conv2d]:
    """The convs torchreid follows with a BatchNorm2d: every frame conv with a bias except the
    gates' fc1/fc2 (the Lite 1x1 convs have neither bias nor BN)."""
    return [c for n, c in frame_convs(trunk) if c.bias is not None and ".gate." not in n]


@torch.no_grad()
def synthetic_osnet_trunk(seed: int = 0) -> OSNetTrunk:
    """The frame trunk `write_osnet_onnx` writes for `seed`: `c2d_osnet_x0_25`'s (seeded), with
    calibrated BNs folded in (module docstring); the same tensors for the same seed."""
    with torch.random.fork_rng(devices=[]):  # leaves the caller's global RNG as it was
        torch.manual_seed(seed)
        trunk = create_model("c2d_osnet_x0_25").backbone.eval()
    gen = torch.Generator().manual_seed(seed)

    def fold(conv: nn.Conv2d, _inputs: tuple[torch.Tensor, ...], out: torch.Tensor):
        mean, std = out.mean(dim=(0, 2, 3, 4)), out.std(dim=(0, 2, 3, 4)) + 1e-3
        gamma = torch.empty_like(mean).uniform_(0.5, 1.0, generator=gen)
        beta = 0.1 * torch.randn(mean.shape, generator=gen)
        scale = gamma / std
        conv.weight.mul_(scale.view(-1, 1, 1, 1))
        conv.bias.copy_((conv.bias - mean) * scale + beta)
        view = (1, -1, 1, 1, 1)
        return (out - mean.view(view)) * scale.view(view) + beta.view(view)

    handles = [conv.register_forward_hook(fold) for conv in _folded(trunk)]
    for name, conv in frame_convs(trunk):
        if ".gate." in name:
            conv.bias.copy_(0.1 * torch.randn(conv.bias.shape, generator=gen))
    trunk.fc[0].bias.copy_(0.01 * torch.randn(trunk.fc[0].bias.shape, generator=gen))
    bn = trunk.fc[1]
    bn.running_mean.zero_()
    bn.running_var.fill_(1.0)
    bn.weight.fill_(1.0)
    bn.bias.zero_()
    trunk.fc[2] = nn.Identity()  # the BN's input statistics, before its ReLU
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # see _calibration_frames
    try:
        pre_bn = trunk(_calibration_frames(gen)).flatten(0, 1)
    finally:
        torch.set_num_threads(threads)
        for handle in handles:
            handle.remove()
        trunk.fc[2] = nn.ReLU(inplace=True)
    bn.running_mean.copy_(pre_bn.mean(dim=0))
    # One variance for all channels: four frames estimate a mean per channel well enough,
    # not a variance (a near-constant channel would be blown up).
    bn.running_var.fill_(pre_bn.var(dim=0).mean().clamp_min(1e-6).item())
    bn.weight.uniform_(0.5, 1.0, generator=gen)
    bn.bias.copy_(0.1 * torch.randn(bn.bias.shape, generator=gen))
    return trunk


# ------------------------------------------------------------------------------------ graph


def _scope(module_path: str) -> str:
    """The exporter's node scope of a module: ``conv2.0.conv2b.0.conv1`` ->
    ``/conv2/conv2.0/conv2b/conv2b.0/conv1`` (a Sequential's child is ``<parent>.<index>``)."""
    parts: list[str] = []
    for part in module_path.split("."):
        parts.append(f"{parts[-1]}.{part}" if part.isdigit() and parts else part)
    return "/" + "/".join(parts)


class _GraphWriter:
    """Emits the trunk's nodes in torchreid's forward order, with the export's names."""

    def __init__(self, trunk: OSNetTrunk) -> None:
        self.trunk_module = trunk
        self.nodes: list = []
        self.named: list = []  # initializers that kept their names, in first-use order
        self.renamed: list = []  # the folded convs' onnx::Conv_<n>, in graph order
        self.constants: list = []
        self.folded = {id(c) for c in _folded(trunk)}
        self.stored: dict[int, list[str]] = {}  # id(conv) -> its initializer names
        self.next_id = FIRST_FOLDED_ID
        self.counts: dict[str, int] = {}

    # -- primitives

    def _node(
        self, op: str, scope: str, inputs: list[str], output: str | None = None, **attrs
    ) -> str:
        """Appends node ``<scope>/<op>`` (``scope`` may end in ``/Add_1``: a numbered op)."""
        from onnx import helper

        name = scope if scope.rsplit("/", 1)[-1].split("_")[0] == op else f"{scope}/{op}"
        output = output or f"{name}_output_0"
        self.nodes.append(helper.make_node(op, inputs, [output], name=name, **attrs))
        return output

    def _tensor(self, name: str, value: torch.Tensor | np.ndarray, into: list) -> str:
        from onnx import numpy_helper

        array = value.detach().numpy() if isinstance(value, torch.Tensor) else value
        into.append(numpy_helper.from_array(np.array(array, copy=True), name))  # keeps 0-d
        return name

    def _conv_inputs(self, conv: nn.Conv2d, module_path: str) -> list[str]:
        if id(conv) in self.stored:  # the shared gate, applied again
            return self.stored[id(conv)]
        if id(conv) in self.folded:
            n, self.next_id = self.next_id, self.next_id + 3
            names = [
                self._tensor(f"onnx::Conv_{n}", conv.weight, self.renamed),
                self._tensor(f"onnx::Conv_{n + 1}", conv.bias, self.renamed),
            ]
        else:
            names = [self._tensor(f"{module_path}.weight", conv.weight, self.named)]
            if conv.bias is not None:
                names.append(self._tensor(f"{module_path}.bias", conv.bias, self.named))
        self.stored[id(conv)] = names
        return names

    def conv(self, x: str, module_path: str, scope: str | None = None) -> str:
        conv = self.trunk_module.get_submodule(module_path)
        k, s, p = conv.kernel_size, conv.stride, conv.padding
        return self._node(
            "Conv",
            scope or _scope(module_path),
            [x, *self._conv_inputs(conv, module_path)],
            dilations=[1, 1],
            group=conv.groups,
            kernel_shape=list(k),
            pads=[p[0], p[1], p[0], p[1]],
            strides=list(s),
        )

    def relu(self, x: str, scope: str, output: str | None = None) -> str:
        return self._node("Relu", scope, [x], output)

    def _numbered(self, scope: str) -> str:
        """``scope``, ``scope_1``, ``scope_2``...: the exporter's names of a module's reuses."""
        n = self.counts.get(scope, 0)
        self.counts[scope] = n + 1
        return scope if n == 0 else f"{scope}_{n}"

    # -- torchreid's modules

    def conv_layer(self, x: str, path: str, *, relu: bool = True) -> str:
        """ConvLayer / Conv1x1 (conv + folded BN + ReLU); Conv1x1Linear without the ReLU."""
        x = self.conv(x, f"{path}.conv")
        return self.relu(x, f"{_scope(path)}/relu") if relu else x

    def light_stream(self, x: str, path: str, depth: int) -> str:
        for i in range(depth):
            layer = path if depth == 1 else f"{path}.{i}"
            x = self.conv(x, f"{layer}.conv1")
            x = self.relu(self.conv(x, f"{layer}.conv2"), f"{_scope(layer)}/relu")
        return x

    def gate(self, x: str, path: str) -> str:
        """One use of the block's shared ChannelGate: x * sigmoid(fc2(relu(fc1(pool(x)))))."""
        scope = _scope(path)
        pooled = self._node("GlobalAveragePool", self._numbered(f"{scope}/global_avgpool"), [x])
        h = self.conv(pooled, f"{path}.fc1", self._numbered(f"{scope}/fc1"))
        h = self.relu(h, self._numbered(f"{scope}/relu"))
        h = self.conv(h, f"{path}.fc2", self._numbered(f"{scope}/fc2"))
        h = self._node("Sigmoid", self._numbered(f"{scope}/gate_activation"), [h])
        return self._node("Mul", self._numbered(scope), [x, h])

    def block(self, x: str, path: str, module: OSBlock) -> str:
        """torchreid's ``OSBlock.forward``: streams, gates, sum, conv3, downsample, add, ReLU."""
        scope = _scope(path)
        x1 = self.conv_layer(x, f"{path}.conv1")
        streams = [
            self.light_stream(x1, f"{path}.conv2{s}", depth)
            for s, depth in zip("abcd", (1, 2, 3, 4), strict=True)
        ]
        total = self.gate(streams[0], f"{path}.gate")
        for stream in streams[1:]:
            gated = self.gate(stream, f"{path}.gate")
            total = self._node("Add", self._numbered(f"{scope}/Add"), [total, gated])
        x3 = self.conv_layer(total, f"{path}.conv3", relu=False)
        identity = x
        if module.downsample is not None:
            identity = self.conv_layer(x, f"{path}.downsample", relu=False)
        out = self._node("Add", self._numbered(f"{scope}/Add"), [x3, identity])
        return self.relu(out, scope)

    def stage(self, x: str, name: str) -> str:
        for i, module in enumerate(self.trunk_module.get_submodule(name)):
            path = f"{name}.{i}"
            if isinstance(module, OSBlock):
                x = self.block(x, path, module)
            else:  # the transition: 1x1 conv + 2x2 average pool
                x = self.conv_layer(x, f"{path}.0")
                x = self._node(
                    "AveragePool",
                    _scope(f"{path}.1"),
                    [x],
                    ceil_mode=0,
                    count_include_pad=1,
                    kernel_shape=[2, 2],
                    pads=[0, 0, 0, 0],
                    strides=[2, 2],
                )
        return x

    def trunk(self) -> None:
        x = self.conv_layer("images", "conv1")
        x = self._node(
            "MaxPool",
            "/maxpool",
            [x],
            ceil_mode=0,
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
            strides=[2, 2],
        )
        for stage in ("conv2", "conv3", "conv4"):
            x = self.stage(x, stage)
        x = self.conv_layer(x, "conv5")
        self.head(self._node("GlobalAveragePool", "/global_avgpool", [x]))

    def head(self, x: str) -> None:
        """``x.view(x.size(0), -1)`` as the exporter writes it, then fc = Gemm, BN, ReLU."""
        fc = self.trunk_module.fc
        zero = self._tensor("/Constant_output_0", np.array(0, dtype=np.int64), self.constants)
        minus = self._tensor("/Constant_1_output_0", np.array([-1], np.int64), self.constants)
        batch = self._node("Gather", "", [self._node("Shape", "", [x]), zero], axis=0)
        batch = self._node("Unsqueeze", "", [batch], axes=[0])
        shape = self._node("Concat", "", [batch, minus], axis=0)
        x = self._node("Reshape", "", [x, shape])
        linear = [fc[0].weight, fc[0].bias]
        names = [
            self._tensor(f"fc.0.{leaf}", t, self.named)
            for leaf, t in zip(("weight", "bias"), linear, strict=True)
        ]
        x = self._node("Gemm", "/fc/fc.0", [x, *names], alpha=1.0, beta=1.0, transB=1)
        bn = fc[1]
        leaves = ("weight", "bias", "running_mean", "running_var")
        names = [self._tensor(f"fc.1.{leaf}", getattr(bn, leaf), self.named) for leaf in leaves]
        x = self._node("BatchNormalization", "/fc/fc.1", [x, *names], epsilon=1e-5, momentum=0.9)
        self.relu(x, "/fc/fc.2", output="output")

    def model(self):
        from onnx import TensorProto, helper

        images = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", *INPUT_SHAPE])
        output = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 512])
        graph = helper.make_graph(
            self.nodes,
            "main_graph",
            [images],
            [output],
            initializer=self.named + self.renamed + self.constants,
            doc_string="synthetic OSNet x0.25 (random weights): tests/osnet_onnx.py",
        )
        opset = [helper.make_opsetid("", _OPSET)]
        return helper.make_model(
            graph, opset_imports=opset, ir_version=_IR_VERSION, producer_name="reidstream-tests"
        )
