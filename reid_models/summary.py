"""Parameters and multiply-accumulates of the registered models beside the papers' figures
(`reidstream bench models [--models ap3d_r50 c2d_r50 ...]` prints these tables).

Per model, at the paper's training clip (`pretrained_cfg.train_clip_len` frames of
`pretrained_cfg.input_size`, batch 1, eval mode):

* params: backbone + head without the identity classifier (how the AP3D tables count), and with a
  625-class MARS classifier;
* GMAC conv: multiply-accumulates of convolutions and linear layers only, the convention the AP3D
  tables follow (AP3D, Gu et al., ECCV 2020, Tables 1-2: convolution MACs of a 4-frame 256x128
  clip, without APM's matrix products);
* GMAC all: also the attention matrix products (APM, non-local, TSA, VLAD);
* the paper's printed figure where there is one, and the gap to it.

A second table holds the other figures the papers print (M3D's overheads in MB) or that follow
from the layer sizes they give (GLTR's aggregation network, PersonVLAD's size), each measured on
the built model.

Counting uses `torch.utils.flop_counter.FlopCounterMode` (FLOPs / 2 = MACs); parameters are
`numel` sums.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from reid_models._registry import create_model

__all__ = [
    "PAPER_FIGURES",
    "ModelCost",
    "OtherFigure",
    "format_other",
    "format_table",
    "measure",
    "other_figures",
]

MARS_CLASSES = 625


@dataclass(frozen=True)
class PaperFigure:
    """A figure printed in a paper: parameters in millions and GFLOPs (= GMAC) per clip."""

    params_m: float | None
    gmac: float | None
    source: str


#: AP3D Tables 1, 2 (ResNet-50, 5 blocks, 4 x 256 x 128 clip). Other papers print no comparable
#: totals; M3D prints its overhead in MB, see `reid_models.m3d`.
PAPER_FIGURES = {
    "c2d_r50": PaperFigure(23.51, 16.35, "AP3D Table 1"),
    "i3d_r50": PaperFigure(27.64, 19.37, "AP3D Table 1"),
    "p3d_r50": PaperFigure(24.20, 16.85, "AP3D Table 1 (P3D-C)"),
    "ap3d_r50": PaperFigure(24.24, 16.90, "AP3D Table 1 (AP-P3D-C)"),
    "ap_i3d_r50": PaperFigure(27.68, 19.48, "AP3D Table 1"),
    "nl_c2d_r50": PaperFigure(30.87, 21.74, "AP3D Table 2 (NL)"),
    "nl_p3d_r50": PaperFigure(31.56, 22.17, "AP3D Table 2"),
    "nl_ap3d_r50": PaperFigure(31.60, 22.29, "AP3D Table 2"),
}


@dataclass(frozen=True)
class ModelCost:
    name: str
    clip: tuple[int, int, int, int]
    params_m: float
    params_mars_m: float
    gmac_conv: float
    gmac_all: float


def _count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for n, p in model.named_parameters() if "classifier" not in n)


def measure(name: str) -> ModelCost:
    """Parameters and MACs of `name` at its paper's training clip."""
    model = create_model(name).eval()
    with_classifier = create_model(name, num_classes=MARS_CLASSES)
    cfg = model.pretrained_cfg
    c, h, w = cfg.input_size
    t = max(cfg.train_clip_len, model.min_clip_len)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, c, t, h, w))
    per_op = counter.get_flop_counts().get("Global", {})
    dense = sum(v for op, v in per_op.items() if "convolution" in str(op) or "addmm" in str(op))
    return ModelCost(
        name=name,
        clip=(c, t, h, w),
        params_m=_count_params(model) / 1e6,
        params_mars_m=sum(p.numel() for p in with_classifier.parameters()) / 1e6,
        gmac_conv=dense / 2e9,
        gmac_all=counter.get_total_flops() / 2e9,
    )


@dataclass(frozen=True)
class OtherFigure:
    """A printed or derived figure (from a paper's layer sizes) that is not a whole-model total."""

    figure: str
    ours: float
    reference: float
    source: str


def _numel(module: torch.nn.Module, *, where: str = "") -> int:
    return sum(p.numel() for n, p in module.named_parameters() if where in n)


def other_figures() -> list[OtherFigure]:
    """M3D's printed overheads and sizes derived from the papers' layers, measured on the built
    models."""
    mb = 4 / 1e6  # fp32 bytes, MB = 10^6 bytes as M3D counts (its ResNet-50: 95.7 MB)
    rows = []
    for name in ("m3d_r50", "m3d_code_r50"):
        temporal = create_model(name).temporal.backbone
        m3d = _numel(temporal, where="m3d")
        rows.append(OtherFigure(f"{name}: M3D layers (MB)", m3d * mb, 4.2, "M3D paper (printed)"))
    spatial = create_model("m3d_r50", num_classes=MARS_CLASSES).spatial
    size = sum(t.numel() for k, t in spatial.state_dict().items() if "num_batches" not in k)
    rows.append(
        OtherFigure("m3d_r50 spatial stream + 625 cls (MB)", size * mb, 95.7, "M3D (printed)")
    )
    gltr = create_model("gltr_r50")
    rows.append(
        OtherFigure(
            "gltr_r50: DTP + TSA weights",
            _numel(gltr.dtp) + _numel(gltr.tsa),
            147_456 + 294_912,
            "GLTR §3.2-3.3 sizes (derived: weights; ours adds BN, biases)",
        )
    )
    rows.append(
        OtherFigure(
            "personvlad_c3d: parameters (M)",
            _numel(create_model("personvlad_c3d")) / 1e6,
            28.48,
            "PersonVLAD Sec. III layer sizes (derived)",
        )
    )
    return rows


def format_other(rows: list[OtherFigure]) -> str:
    """A markdown table of the `other_figures` rows."""
    lines = ["| figure | ours | reference | gap | source |", "|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row.figure} | {row.ours:,.2f} | {row.reference:,.2f} "
            f"| {_gap(row.ours, row.reference)} | {row.source} |"
        )
    return "\n".join(lines)


def _gap(ours: float, paper: float | None) -> str:
    return "" if paper is None else f"{100 * (ours - paper) / paper:+.1f}%"


def format_table(costs: list[ModelCost]) -> str:
    """A markdown table of `costs` with the papers' figures beside them."""
    head = (
        "| model | clip (C,T,H,W) | params M | params M (+625 cls) | GMAC conv | GMAC all "
        "| paper params M | gap | paper GFLOPs | gap | source |"
    )
    rows = [head, "|" + "---|" * 11]
    for cost in costs:
        ref = PAPER_FIGURES.get(cost.name, PaperFigure(None, None, ""))
        rows.append(
            f"| {cost.name} | {','.join(map(str, cost.clip))} | {cost.params_m:.2f} "
            f"| {cost.params_mars_m:.2f} | {cost.gmac_conv:.2f} | {cost.gmac_all:.2f} "
            f"| {ref.params_m or ''} | {_gap(cost.params_m, ref.params_m)} "
            f"| {ref.gmac or ''} | {_gap(cost.gmac_conv, ref.gmac)} | {ref.source} |"
        )
    return "\n".join(rows)
