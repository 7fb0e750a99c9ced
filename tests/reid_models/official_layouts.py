"""The official AP3D, GLTR and M3D state dicts, built from the layouts of their repositories'
model files (keys and shapes as `reid_models.convert` names them; random values), for the
converter tests: no official file is downloaded."""

from __future__ import annotations

import torch
import torchvision

__all__ = [
    "M3D_BRANCHES",
    "bn_state",
    "nonlocal_state",
    "official_ap3d",
    "official_gltr",
    "official_m3d",
]

C3D_IDX = {2: (0, 2), 3: (0, 2, 4)}  # AP3D models/ResNet.py c3d_idx
NL_IDX = {2: (1, 3), 3: (1, 3, 5)}  # AP3DNLResNet50's nl_idx
BLOCKS = {1: 3, 2: 4, 3: 6, 4: 3}


def _rand(*shape: int) -> torch.Tensor:
    return torch.randn(*shape) * 0.1


def bn_state(prefix: str, c: int, tracked: bool = True) -> dict[str, torch.Tensor]:
    out = {
        f"{prefix}.weight": 1 + _rand(c),
        f"{prefix}.bias": _rand(c),
        f"{prefix}.running_mean": _rand(c),
        f"{prefix}.running_var": 1 + torch.rand(c),
    }
    if tracked:
        out[f"{prefix}.num_batches_tracked"] = torch.tensor(100)
    return out


def _resnet50_2d() -> dict[str, torch.Tensor]:
    """torchvision's ResNet-50 keys and shapes (the official programs build on them), no fc."""
    torch.manual_seed(0)
    state = torchvision.models.resnet50().state_dict()
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


def nonlocal_state(prefix: str, c: int, *, pooled: bool, dim: int) -> dict[str, torch.Tensor]:
    """NonLocalBlockND (AP3D's, 3D, g and phi followed by a max-pool) or GLTR's 1D block."""
    ones = (1,) * dim
    sub = ".0" if pooled else ""
    out = {f"{prefix}.theta.weight": _rand(c // 2, c, *ones), f"{prefix}.theta.bias": _rand(c // 2)}
    for name in ("g", "phi"):
        out[f"{prefix}.{name}{sub}.weight"] = _rand(c // 2, c, *ones)
        out[f"{prefix}.{name}{sub}.bias"] = _rand(c // 2)
    out[f"{prefix}.W.0.weight"] = _rand(c, c // 2, *ones)
    out[f"{prefix}.W.0.bias"] = _rand(c)
    return out | bn_state(f"{prefix}.W.1", c)


def official_ap3d(nonlocal_blocks: bool) -> dict[str, object]:
    """train.py's save_checkpoint of AP3DResNet50 / AP3DNLResNet50 under DataParallel."""
    state: dict[str, torch.Tensor] = {}
    resnet = _resnet50_2d()
    for key, value in resnet.items():
        if not key.startswith("layer"):
            state[key] = value.unsqueeze(2) if value.dim() == 4 else value
    for layer, n in BLOCKS.items():
        index = 0
        for block in range(n):
            src, dst = f"layer{layer}.{block}.", f"layer{layer}.{index}."
            for key, value in resnet.items():
                if not key.startswith(src):
                    continue
                rest = key.removeprefix(src)
                value = value.unsqueeze(2) if value.dim() == 4 else value
                if rest == "conv2.weight" and block in C3D_IDX.get(layer, ()):
                    p = value.shape[0]
                    state[dst + "conv2.spatial_conv3d.weight"] = value
                    state[dst + "conv2.temporal_conv3d.weight"] = _rand(p, p, 3, 1, 1)
                    for m in ("semantic_mapping", "x_mapping", "n_mapping"):
                        state[dst + f"conv2.APM.{m}.weight"] = _rand(p // 16, p, 1, 1, 1)
                    state[dst + "conv2.APM.contrastive_att_net.0.weight"] = _rand(
                        1, p // 16, 1, 1, 1
                    )
                elif rest == "conv2.weight":
                    state[dst + "conv2.conv3d.weight"] = value
                else:
                    state[dst + rest] = value
            index += 1
            if nonlocal_blocks and block in NL_IDX.get(layer, ()):
                c = 128 * 2**layer
                state |= nonlocal_state(f"layer{layer}.{index}", c, pooled=True, dim=3)
                index += 1
    state |= bn_state("bn", 2048) | {
        "classifier.weight": _rand(625, 2048),
        "classifier.bias": _rand(625),
    }
    return {"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 239, "rank1": 0.9}


def official_gltr() -> dict[str, torch.Tensor]:
    """GLTR's resnet.py state dict, as train.py saves it."""
    state = _resnet50_2d() | {"feat.weight": _rand(128, 2048), "feat.bias": _rand(128)}
    for i in (1, 2, 3):
        state[f"feat{i}.weight"] = _rand(128, 1, 3, 128)
    state |= nonlocal_state("Nonlocal_block0", 512, pooled=False, dim=1) | bn_state("feat_bn", 512)
    return state | {"classifier.weight": _rand(625, 512), "classifier.bias": _rand(625)}


#: M3D's MultiConv kernels: (prefix, channels, branches); M3D.py with frames 8, 8, 4, 2.
M3D_BRANCHES = (("conv1_t", 64, 3), ("layer1.0.conv2_t", 64, 3), ("layer2.0.conv2_t", 128, 3))
M3D_BRANCHES += (("layer3.0.conv2_t", 256, 2), ("layer4.0.conv2_t", 512, 1))


def official_m3d(temporal: bool) -> dict[str, torch.Tensor]:
    """ResNet50-2d (temporal=False) or ResNet50-M3D, saved by PyTorch 0.3 (no
    num_batches_tracked), trained: kernels still 0, BN beta and mean 0 (no gradient reached)."""
    state = _resnet50_2d() | {"feat.weight": _rand(128, 2048), "feat.bias": _rand(128)}
    state |= bn_state("feat_bn", 128) | {"classifier.weight": _rand(625, 128)}
    state["classifier.bias"] = _rand(625)
    for prefix, c, n in M3D_BRANCHES if temporal else ():
        for k in range(1, n + 1):
            state[f"{prefix}.conv{k}.weight"] = torch.zeros(c, c, 3, 1, 1)
            state |= bn_state(f"{prefix}.bn{k}", c)
            state[f"{prefix}.bn{k}.weight"] = torch.rand(c)  # decayed by weight decay
            state[f"{prefix}.bn{k}.bias"] = torch.zeros(c)
            state[f"{prefix}.bn{k}.running_mean"] = torch.zeros(c)
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
