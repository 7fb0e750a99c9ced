"""C3D trunks (Tran et al., ICCV 2015) up to pool5, with the state-dict keys of the PyTorch port.

Every conv is 3x3x3, stride 1, padding 1, with a bias and a ReLU after it; no BatchNorm. Each
stage ends in a max-pool with stride = kernel: pool1 (1, 2, 2), pool2-pool5 (2, 2, 2), pool5 with
C3D's spatial padding (0, 1, 1).

    Option B, the real C3D (3D PersonVLAD's Fig. 2: "8 convolutions, 5 max-pooling"; default):
      conv1 64 - pool1 - conv2 128 - pool2 - conv3a/b 256 - pool3 - conv4a/b 512 - pool4
      - conv5a/b 512 - pool5                                   (B, 512, T/16, H/16+1, W/16+1)
    Option A, the literal text of PersonVLAD's Sec. III-A (C3D's 5-conv exploration net):
      conv1 64 - pool1 - conv2 128 - pool2 - conv3a 256 - pool3 - conv3b 256 - pool4
      - conv5 256 - pool5                                      (B, 256, T/16, H/16+1, W/16+1)

Keys: ``conv1``, ``conv2``, ``conv3a`` ... ``conv5b`` (``.weight``/``.bias``), exactly those of
DavideA/c3d-pytorch's ``C3D_model.py``, the common port of the Sports-1M weights (``c3d.pickle``,
which adds ``fc6`` 8192->4096, ``fc7`` 4096->4096 and ``fc8`` 4096->487; PersonVLAD does not use
them, so `weights.load_pretrained` reports them unexpected). Option A's layers are named after the
C3D layer whose weights they take (our mapping: PersonVLAD's Sec. III-C initialises "all the 3D
convolutions" from C3D, but only the 8-conv net's weights were released; conv1 <- conv1,
conv2 <- conv2, conv3 <- conv3a, conv4 <- conv3b, conv5 random), so loading by identical names does
that mapping: its fourth conv is ``conv3b`` (256 -> 256, the shape matches) and its fifth,
``conv5``, has no C3D counterpart and stays randomly initialised.

pool5's padding (PersonVLAD does not give it): C3D (Caffe, and the port) pads pool5 spatially,
which keeps a 6x3 map for a 180x90 input instead of 5x2. PyTorch pads max-pooling with -inf and
Caffe / Keras with 0; after the ReLU every value is >= 0, so the two agree.

Input the Sports-1M weights expect (PersonVLAD states no pixel normalisation, so we follow the
checkpoint): 0-255 pixels minus the Sports-1M mean cube (16x128x171), whose per-channel means are B
90.25, G 97.66, R 101.41. Caffe C3D read frames with OpenCV, i.e. in BGR order. The port copies
Caffe's kernels as they are (its own ``predict.py`` feeds RGB 0-255 frames without a mean and says
it was "tested only qualitatively"), so its ``conv1`` most likely still expects BGR;
`swap_conv1_rgb_bgr` reverses the input channels of ``conv1`` in a state dict, so that a BGR
checkpoint serves this repository's RGB pipeline. `C3D_MEAN_RGB` and `C3D_STD` express "x * 255 -
mean" in `PretrainedCfg` units (pixels scaled to [0, 1]).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "C3D",
    "C3D_LAYERS",
    "C3D_MEAN_RGB",
    "C3D_MIN_CLIP_LEN",
    "C3D_STD",
    "swap_conv1_rgb_bgr",
]

#: Sports-1M mean cube averaged per channel, RGB order, as a fraction of 255.
C3D_MEAN_RGB = (101.4083 / 255, 97.6570 / 255, 90.2516 / 255)
#: 1/255: dividing the [0, 1]-scaled pixel minus the mean by it gives 0-255 units.
C3D_STD = (1 / 255, 1 / 255, 1 / 255)

#: (conv name, out channels) per stage; each stage is followed by its pool.
Stages = Sequence[Sequence[tuple[str, int]]]
C3D_LAYERS: Mapping[str, Stages] = {
    "B": (
        (("conv1", 64),),
        (("conv2", 128),),
        (("conv3a", 256), ("conv3b", 256)),
        (("conv4a", 512), ("conv4b", 512)),
        (("conv5a", 512), ("conv5b", 512)),
    ),
    "A": (
        (("conv1", 64),),
        (("conv2", 128),),
        (("conv3a", 256),),
        (("conv3b", 256),),
        (("conv5", 256),),
    ),
}
#: Temporal extent pooled away by pool2-pool5: the shortest clip that leaves one step.
C3D_MIN_CLIP_LEN = 16


class C3D(nn.Module):
    """C3D convolutions and pools up to pool5, keys as in DavideA/c3d-pytorch.

    Args:
        variant: ``"B"`` (the real 8-conv C3D) or ``"A"`` (5 convs 64/128/256/256/256).
        in_channels: Input channels.

    Shape:
        (B, 3, T, H, W) -> (B, C5, floor(T/16), floor(H/16)+1, floor(W/16)+1), C5 = 512 (B)
        or 256 (A); T >= 16.
    """

    def __init__(self, *, variant: str = "B", in_channels: int = 3) -> None:
        super().__init__()
        if variant not in C3D_LAYERS:
            raise ValueError(f"C3D variant must be one of {sorted(C3D_LAYERS)}, got {variant!r}")
        self.variant = variant
        self.stages: list[list[str]] = []
        channels = in_channels
        for stage in C3D_LAYERS[variant]:
            for name, width in stage:
                self.add_module(name, nn.Conv3d(channels, width, 3, padding=1))
                channels = width
            self.stages.append([name for name, _ in stage])
        self.pool1 = nn.MaxPool3d((1, 2, 2), stride=(1, 2, 2))
        self.pool2 = nn.MaxPool3d(2, stride=2)
        self.pool3 = nn.MaxPool3d(2, stride=2)
        self.pool4 = nn.MaxPool3d(2, stride=2)
        self.pool5 = nn.MaxPool3d(2, stride=2, padding=(0, 1, 1))
        self.out_channels = channels
        self._init_weights()

    def _init_weights(self) -> None:
        # Used only without a checkpoint (Option A's conv5, or training from scratch): He init as
        # for any ReLU network; the Caffe prototxt's Gaussian(0.01) does not train this deep.
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Skipped while tracing for ONNX, where the shape is symbolic.
        if not torch.jit.is_tracing() and x.shape[2] < C3D_MIN_CLIP_LEN:
            raise ValueError(
                f"C3D pools time by 16 and needs clips of >= {C3D_MIN_CLIP_LEN} frames, "
                f"got T={x.shape[2]} in {tuple(x.shape)}"
            )
        for index, stage in enumerate(self.stages, start=1):
            for name in stage:
                x = F.relu(getattr(self, name)(x))
            x = getattr(self, f"pool{index}")(x)
        return x


def swap_conv1_rgb_bgr(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A copy of a C3D state dict whose ``conv1`` reads the other channel order (BGR <-> RGB).

    Args:
        state_dict: C3D keys; ``conv1.weight`` is (64, 3, 3, 3, 3).

    Raises:
        KeyError: No ``conv1.weight``.
        ValueError: ``conv1.weight`` does not have 3 input channels.
    """
    if "conv1.weight" not in state_dict:
        raise KeyError(f"no 'conv1.weight' among the keys {sorted(state_dict)[:8]}...")
    weight = state_dict["conv1.weight"]
    if weight.dim() != 5 or weight.shape[1] != 3:
        raise ValueError(f"conv1.weight must be (O, 3, kt, kh, kw), got {tuple(weight.shape)}")
    out = dict(state_dict)
    out["conv1.weight"] = weight.flip(1).clone()
    return out
