"""GLTR's released model (github.com/ljn114514/GLTR @ 5204197, ``resnet.py``, whose test copy is
``ex_feat/resnet.py``) -> ``gltr_r50`` with `reid_models.gltr.GLTR_CODE_OVERRIDES` (512-d).

    official                                   ours
    conv1, bn1, layer1-4 (Conv2d kernels)      backbone.* (the same kernels as (1, k, k) Conv3d)
    feat (Linear 2048 -> 128)                  frame_fc
    feat1, feat2, feat3: Conv2d(1, 128, (3, 128)), dilation (1|2|3, 1), weight (d, 1, 3, d)
                                               dtp.branches.0-2: Conv1d(d, d, 3), weight (d, d, 3)
                                               = weight.squeeze(1).permute(0, 2, 1)
    Nonlocal_block0.theta / .phi / .g          tsa.c / tsa.b / tsa.g
    Nonlocal_block0.W.0 (conv), .W.1 (BN)      tsa.W.0, tsa.W.1
    feat_bn, classifier (train head)           head.bn, head.classifier

Three official biases have no place in our block (`reid_models.layers.gltr_layers`); removing
them changes no output, in eval or in training mode. With x (B, C, T), theta_t, phi_s, g_s the
convs' outputs and A[t, s] = softmax_s(theta_t . phi_s):

* phi's bias b_phi adds theta_t . b_phi to every logit of row t: a softmax over s ignores it.
* g's bias b_g: y_t = sum_s A[t, s] (G x_s + b_g) = G sum_s A[t, s] x_s + b_g, as each row of A
  sums to 1. So y = y' + b_g, y' being our bias-free g's result.
* W's conv bias b_W: w = W y + b_W = W y' + c with c = W b_g + b_W, a per-channel constant.
  The BatchNorm after it computes gamma (w - mu) / sqrt(var + eps) + beta; with mu' = mu - c
  it gives the same from w' = W y': the fold is ``running_mean' = running_mean - (W b_g + b_W)``.
  In training mode the batch mean removes c by itself, and the running mean's update, linear in
  the batch mean, keeps the offset c.

The frame network's AvgPool2d((16, 8)) is our mean over H, W at the released 256x128 input.
"""

from __future__ import annotations

from reid_models.convert.core import (
    Conversion,
    ConversionReport,
    Mapped,
    OfficialState,
    finish,
    rename_all,
    rename_trunk,
)
from reid_models.gltr import GLTR_CODE_OVERRIDES

__all__ = ["convert_gltr", "fold_tsa_biases"]

_BLOCK = "Nonlocal_block0."
_TOP = {"feat.": "frame_fc.", "feat_bn.": "head.bn.", "classifier.": "head.classifier."}
_TSA = {"theta.": "c.", "phi.weight": "b.weight", "g.weight": "g.weight", "W.": "W."}


def fold_tsa_biases(state: OfficialState, mapped: Mapped, report: ConversionReport) -> None:
    """Maps the official non-local block into ``tsa.``, folding g's and W's conv biases into
    the BatchNorm's running mean and dropping phi's bias (see the module docstring). A file
    without the block is left to `finish`, which lists what is missing."""
    needed = ("W.0.weight", "W.0.bias", "g.bias", "phi.bias", "W.1.running_mean")
    if not all(_BLOCK + key in state for key in needed):
        return
    weight = state.take(f"{_BLOCK}W.0.weight")  # (C, C/2, 1)
    b_g, b_w = state.take(f"{_BLOCK}g.bias"), state.take(f"{_BLOCK}W.0.bias")
    state.take(f"{_BLOCK}phi.bias")
    mean_key = f"{_BLOCK}W.1.running_mean"
    shift = weight.squeeze(-1).double() @ b_g.double() + b_w.double()
    folded = (state.take(mean_key).double() - shift).to(b_w.dtype)
    mapped["tsa.W.0.weight"] = (f"{_BLOCK}W.0.weight", weight)
    mapped["tsa.W.1.running_mean"] = (mean_key, folded)
    report.folded += [
        f"{_BLOCK}g.bias and W.0.bias into tsa.W.1.running_mean (running_mean - (W b_g + b_W))",
        f"{_BLOCK}phi.bias dropped (a softmax over the keys is invariant to it)",
    ]
    for old, new in _TSA.items():
        for key in state.untaken():
            if key.startswith(_BLOCK + old):
                mapped["tsa." + new + key.removeprefix(_BLOCK + old)] = (key, state.take(key))


def convert_gltr(state: OfficialState, layout: str, report: ConversionReport) -> Conversion:
    """Converts the released GLTR state dict (see the module docstring).

    Raises:
        ConversionError: Keys missing, unexpected or of another shape, all listed.
    """
    mapped: Mapped = {}
    fold_tsa_biases(state, mapped, report)
    for branch in (1, 2, 3):
        key = f"feat{branch}.weight"  # (d, 1, 3, d) -> (d, d, 3)
        if key in state:
            mapped[f"dtp.branches.{branch - 1}.weight"] = (
                key,
                state.take(key).squeeze(1).permute(0, 2, 1).contiguous(),
            )
    rename_all(state, lambda key: rename_trunk(key, _TOP), mapped)
    overrides = {k: list(v) if isinstance(v, tuple) else v for k, v in GLTR_CODE_OVERRIDES.items()}
    return finish(layout, "gltr_r50", overrides, mapped, [state], report, "head.classifier.weight")
