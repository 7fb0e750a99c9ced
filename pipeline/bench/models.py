"""`reidstream bench models`: parameters and multiply-accumulates of the registered models beside
the papers' figures.

    reidstream bench models [--models ap3d_r50 c2d_r50 ...]

The counting and the tables are `reid_models.summary`'s (what a model costs is a fact of the
models); this measures the models asked for, one after the other, and prints both tables: one
row per model, then the other figures the papers print or the specs derive.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import torch

from reid_models import list_models
from reid_models.summary import ModelCost, format_other, format_table, measure, other_figures

__all__ = ["run"]


def run(*, models: Sequence[str] | None = None) -> list[ModelCost]:
    """Measures `models` (default: every registered one) and prints the tables; returns the
    costs. Progress goes to stderr, one line per model."""
    costs = []
    with torch.no_grad():
        for name in list_models() if models is None else models:
            costs.append(measure(name))
            print(f"measured {name}", file=sys.stderr)
    print(format_table(costs) + "\n\n" + format_other(other_figures()))
    return costs
