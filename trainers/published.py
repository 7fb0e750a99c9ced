"""The five papers' published results, as data, keyed by this project's model and dataset names.

Transcribed from the papers' results tables (each entry cites its paper and table);
only rows whose architecture this project builds are kept (a registry model, with builder
overrides where the row is a variant), so every published number has a model that can be trained
to compare with it. Values are percentages as printed; ``None`` where the paper does not report
that rank. `reidstream results` prints them beside measured runs.

Caveats kept with the numbers (``note``): PersonVLAD's MARS figures come from its own
random-probe protocol (one random probe tracklet per identity against all gallery tracklets,
10 repeats: Wu et al. Sec. IV-B(a)), and M3D's PRID/iLIDS figures are 10-split means.

Each paper's numbers were scored under one evaluation protocol (`PAPER_PROTOCOLS`, the
``eval.protocol`` names of `trainers.evaluation.rank`), the one its recipes in trainers/configs
use: AP3D's code scores with its own ``tools/eval_metrics.py`` (``ap3d``), GLTR's and M3D's with
the MARS MATLAB kit (``mars``). Liao et al. and Wu et al. released no code; both papers point to
the MARS benchmark's own evaluation, the MATLAB kit, hence ``mars``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "METRICS",
    "PAPER_PROTOCOLS",
    "PUBLISHED",
    "PaperProtocol",
    "PublishedResult",
    "model_key",
    "published_for",
]

METRICS = ("rank1", "rank5", "rank10", "rank20", "mAP")


@dataclass(frozen=True)
class PaperProtocol:
    """The evaluation protocol a paper's numbers were scored under, and why we say so.

    Attributes:
        protocol: An ``eval.protocol`` name (`trainers.evaluation.rank.PROTOCOLS`).
        why: The evidence: the paper by section, or the official code by file.
    """

    protocol: str
    why: str


#: Paper key -> the protocol its published numbers were scored under.
PAPER_PROTOCOLS: dict[str, PaperProtocol] = {
    "ap3d": PaperProtocol(
        "ap3d",
        "the official code scores with tools/eval_metrics.py (github.com/guxinqian/AP3D, "
        "test-all.py); the paper names CMC and mAP only (Gu et al., Sec. 5.1)",
    ),
    "gltr": PaperProtocol(
        "mars",
        "the official code scores with the MARS MATLAB kit, Mars_test/ and Duke_test/ "
        "(github.com/ljn114514/GLTR); 'we follow the protocol of MARS' (Li et al., Sec. 4.1)",
    ),
    "m3d": PaperProtocol(
        "mars",
        "the official code scores with the MARS MATLAB kit, Mars_test/ (github.com/ljn114514/M3D)",
    ),
    "i3d_nonlocal": PaperProtocol(
        "mars",
        "no code released; 'the standard experimental protocols' (Liao et al., Sec. 4.2) and "
        "MARS 'under single query' (Sec. 4.3.1), the MARS benchmark's own MATLAB kit",
    ),
    "personvlad": PaperProtocol(
        "mars",
        "no code released; mAP as in [65], the Market-1501 MATLAB kit the MARS kit extends "
        "(Wu et al., Sec. IV-A), 'single query setting' (Table IX)",
    ),
}


def model_key(name: str, overrides: Mapping[str, Any] | None = None) -> str:
    """One string naming a model variant: ``"p3d_r50 variant=A"`` (overrides sorted by key)."""
    if not overrides:
        return name
    return " ".join([name, *(f"{k}={overrides[k]}" for k in sorted(overrides))])


@dataclass(frozen=True)
class PublishedResult:
    """One published row: a model variant on one dataset.

    Attributes:
        paper: Paper key ("ap3d", "gltr", "m3d", "i3d_nonlocal", "personvlad").
        row: The row's label in the paper.
        model: Registry model name.
        dataset: Dataset reader name (`trainers.datasets.list_datasets()`).
        source: The paper and table the numbers come from.
        rank1, rank5, rank10, rank20, mAP: In percent; None where not reported.
        overrides: Builder overrides that make `model` the row's variant.
        rerank: The row is after k-reciprocal re-ranking.
        note: Protocol caveat, if any.
    """

    paper: str
    row: str
    model: str
    dataset: str
    source: str
    rank1: float | None = None
    rank5: float | None = None
    rank10: float | None = None
    rank20: float | None = None
    mAP: float | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    rerank: bool = False
    note: str = ""

    @property
    def key(self) -> tuple[str, str, bool]:
        return (model_key(self.model, self.overrides), self.dataset, self.rerank)

    @property
    def protocol(self) -> str:
        """The ``eval.protocol`` the paper's numbers were scored under (`PAPER_PROTOCOLS`)."""
        return PAPER_PROTOCOLS[self.paper].protocol

    def metrics(self) -> dict[str, float | None]:
        return {m: getattr(self, m) for m in METRICS}


def _rows(
    paper: str, source: str, dataset: str, columns: tuple[str, ...], table: list[tuple]
) -> list[PublishedResult]:
    """Rows ``(row, model, overrides, *values)`` with `values` in `columns` order."""
    out = []
    for row, model, overrides, *values in table:
        metrics = dict(zip(columns, values, strict=True))
        out.append(
            PublishedResult(
                paper, row, model, dataset, source, overrides=overrides or {}, **metrics
            )
        )
    return out


_R1_MAP = ("rank1", "mAP")
#: How each source names its paper.
_AP3D = "Gu et al., ECCV 2020"
_GLTR = "Li et al., ICCV 2019"
_M3D = "Li et al., AAAI 2019"
_I3D_NL = "Liao et al., ACCV 2018"
_PERSONVLAD = "Wu et al., TNNLS 2019"
_AP3D_T1 = f"{_AP3D}, Table 1"
_AP3D_T2 = f"{_AP3D}, Table 2"
_AP3D_T4 = f"{_AP3D}, Table 4"
# Table 1/2 rows: (row, model, overrides, MARS r1, MARS mAP, Duke r1, Duke mAP).
_AP3D_RESNET50 = [
    (_AP3D_T1, "C2D", "c2d_r50", None, 88.9, 83.4, 95.6, 95.1),
    (_AP3D_T1, "I3D", "i3d_r50", None, 88.6, 83.0, 95.4, 95.2),
    (_AP3D_T1, "AP-I3D", "ap_i3d_r50", None, 90.1, 84.8, 96.2, 95.4),
    (_AP3D_T1, "P3D-A", "p3d_r50", {"variant": "A"}, 88.9, 83.2, 95.0, 95.0),
    (_AP3D_T1, "AP-P3D-A", "ap3d_r50", {"variant": "A"}, 90.1, 84.9, 96.0, 95.3),
    (_AP3D_T1, "P3D-B", "p3d_r50", {"variant": "B"}, 88.8, 83.0, 95.4, 95.3),
    (_AP3D_T1, "AP-P3D-B", "ap3d_r50", {"variant": "B"}, 89.9, 84.7, 96.4, 95.9),
    (_AP3D_T1, "P3D-C", "p3d_r50", None, 88.5, 83.1, 95.3, 95.3),
    (_AP3D_T1, "AP-P3D-C (AP3D)", "ap3d_r50", None, 90.1, 85.1, 96.3, 95.6),
    (_AP3D_T2, "NL", "nl_c2d_r50", None, 89.6, 85.0, 96.2, 95.6),
    (_AP3D_T2, "NL-P3D", "nl_p3d_r50", None, 89.9, 84.8, 96.2, 95.5),
    (_AP3D_T2, "NL-AP3D", "nl_ap3d_r50", None, 90.7, 85.6, 97.2, 96.1),
    (_AP3D_T4, "ResNet-18 C2D", "c2d_r18", None, 86.9, 79.0, 93.7, 92.9),
    (_AP3D_T4, "ResNet-18 P3D", "p3d_r18", None, 86.9, 79.5, 93.2, 92.9),
    (_AP3D_T4, "ResNet-18 AP3D", "ap3d_r18", None, 88.1, 80.9, 94.2, 93.4),
    (_AP3D_T4, "ResNet-34 C2D", "c2d_r34", None, 87.5, 80.9, 94.6, 93.6),
    (_AP3D_T4, "ResNet-34 P3D", "p3d_r34", None, 87.6, 81.0, 94.4, 93.7),
    (_AP3D_T4, "ResNet-34 AP3D", "ap3d_r34", None, 88.7, 82.1, 95.2, 94.7),
]


def _ap3d() -> list[PublishedResult]:
    out = []
    for source, row, model, overrides, mars_r1, mars_map, duke_r1, duke_map in _AP3D_RESNET50:
        table = [(row, model, overrides, mars_r1, mars_map)]
        out += _rows("ap3d", source, "mars", _R1_MAP, table)
        table = [(row, model, overrides, duke_r1, duke_map)]
        out += _rows("ap3d", source, "dukemtmc_videoreid", _R1_MAP, table)
    # Table 6 reports iLIDS-VID top-1 only; the paper does not say whether it is one split or a
    # 10-split mean (the official code evaluates split 9 only).
    table = [("AP3D", "ap3d_r50", None, 86.7), ("NL-AP3D", "nl_ap3d_r50", None, 88.7)]
    return out + _rows("ap3d", f"{_AP3D}, Table 6", "ilidsvid", ("rank1",), table)


def _gltr() -> list[PublishedResult]:
    gltr = ("GLTR", "gltr_r50", None)
    five = ("mAP", "rank1", "rank5", "rank20")
    return [
        *_rows("gltr", f"{_GLTR}, Table 5", "mars", five, [(*gltr, 78.47, 87.02, 95.76, 98.23)]),
        *_rows(
            "gltr",
            f"{_GLTR}, Table 7",
            "dukemtmc_videoreid",
            five,
            [(*gltr, 93.74, 96.29, 99.30, 99.71)],
        ),
        *_rows(
            "gltr",
            f"{_GLTR}, Table 4",
            "lsvid",
            ("mAP", "rank1", "rank5", "rank10", "rank20"),
            [(*gltr, 44.32, 63.07, 77.22, 83.81, 88.41)],
        ),
        *_rows(
            "gltr",
            f"{_GLTR}, Table 6",
            "prid2011",
            ("rank1", "rank5"),
            [(*gltr, 95.50, 100.00)],
        ),
        *_rows(
            "gltr",
            f"{_GLTR}, Table 6",
            "ilidsvid",
            ("rank1", "rank5"),
            [(*gltr, 86.00, 98.00)],
        ),
        PublishedResult(
            "gltr",
            "GLTR + re-ranking",
            "gltr_r50",
            "mars",
            f"{_GLTR}, §4.4 (text after Table 5)",
            mAP=85.54,
            rerank=True,
        ),
    ]


def _m3d() -> list[PublishedResult]:
    two = ("Two-stream M3D", "m3d_r50", None)
    temporal = {"stream": "temporal"}
    table2 = f"{_M3D}, Table 2"
    splits = "mean of 10 random splits"
    return [
        *_rows(
            "m3d",
            f"{_M3D}, Table 3",
            "mars",
            ("mAP", "rank1", "rank5", "rank20"),
            [(*two, 74.06, 84.39, 93.84, 97.74)],
        ),
        *_rows(
            "m3d",
            table2,
            "mars",
            ("mAP", "rank1"),
            [
                ("M3D+RAL (temporal stream)", "m3d_r50", temporal, 71.76, 82.79),
                ("2D baseline (spatial stream)", "m3d_r50", {"stream": "spatial"}, 62.54, 76.43),
            ],
        ),
        *(
            PublishedResult(
                "m3d", r, "m3d_r50", d, s, rank1=r1, rank5=r5, overrides=o or {}, note=splits
            )
            for r, o, d, s, r1, r5 in [
                ("Two-stream M3D", None, "prid2011", f"{_M3D}, Table 4", 94.40, 100.00),
                ("Two-stream M3D", None, "ilidsvid", f"{_M3D}, Table 4", 74.00, 94.33),
                ("M3D+RAL (temporal stream)", temporal, "prid2011", table2, 91.03, None),
                ("M3D+RAL (temporal stream)", temporal, "ilidsvid", table2, 72.67, None),
            ]
        ),
    ]


def _i3d_nonlocal() -> list[PublishedResult]:
    row = ("ResNet3D-50 NL", "i3d_nl_r50", None)
    source = f"{_I3D_NL}, Table 4"
    return [
        *_rows(
            "i3d_nonlocal",
            f"{_I3D_NL}, Table 2",
            "mars",
            ("rank1", "rank5", "rank10", "mAP"),
            [(*row, 84.3, 94.6, 96.2, 77.0)],
        ),
        *_rows("i3d_nonlocal", source, "prid2011", ("rank1",), [(*row, 91.2)]),
        *_rows("i3d_nonlocal", source, "ilidsvid", ("rank1",), [(*row, 81.3)]),
    ]


def _personvlad() -> list[PublishedResult]:
    row = ("PersonVLAD", "personvlad_c3d", None)
    source = f"{_PERSONVLAD}, Table IX"
    four = ("rank1", "rank5", "rank10", "rank20")
    mars = _rows(
        "personvlad",
        source,
        "mars",
        ("rank1", "rank5", "rank20", "mAP"),
        [(*row, 80.8, 94.5, 99.0, 63.4)],
    )
    mars = [replace(r, note="random-probe protocol, 10 repeats (Sec. IV-B)") for r in mars]
    return [
        *mars,
        *_rows("personvlad", source, "prid2011", four, [(*row, 87.6, 96.1, 98.7, 99.8)]),
        *_rows("personvlad", source, "ilidsvid", four, [(*row, 69.4, 87.6, 96.7, 99.2)]),
    ]


#: Every published row, paper by paper.
PUBLISHED: tuple[PublishedResult, ...] = (
    *_ap3d(),
    *_gltr(),
    *_m3d(),
    *_i3d_nonlocal(),
    *_personvlad(),
)


def published_for(
    model: str, dataset: str, *, overrides: Mapping[str, Any] | None = None, rerank: bool = False
) -> list[PublishedResult]:
    """Published rows for one model variant on one dataset (empty when the papers have none)."""
    key = (model_key(model, overrides), dataset, rerank)
    return [r for r in PUBLISHED if r.key == key]
