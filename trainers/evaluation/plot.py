"""CMC curves of one or more evaluations drawn to a PNG with matplotlib.

Uses an object-oriented `matplotlib.figure.Figure` rendered by the Agg canvas, so no display, no
pyplot global state and no backend switch are involved (safe in training processes and threads).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["plot_cmc"]

logger = logging.getLogger(__name__)


def plot_cmc(curves: Mapping[str, np.ndarray], path: Path, *, max_rank: int = 20) -> Path:
    """Draws CMC curves (rank-k accuracy in percent against k) into a PNG.

    Args:
        curves: Legend label -> (R,) CMC in [0, 1] (`RankResult.cmc`); each is drawn up to
            ``min(R, max_rank)``.
        path: Output file; its parent folders are created.
        max_rank: Last rank on the x axis.

    Returns:
        `path`.

    Raises:
        ValueError: With no curves, ``max_rank < 1``, or a curve that is not a non-empty 1-D array.
    """
    if not curves:
        raise ValueError("plot_cmc needs at least one curve")
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    fig = Figure(figsize=(6.0, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for label, cmc in curves.items():
        values = np.asarray(cmc, dtype=np.float64)
        if values.ndim != 1 or values.size == 0:
            raise ValueError(f"curve {label!r} must be a non-empty 1-D array, got {values.shape}")
        values = values[:max_rank]
        ranks = np.arange(1, len(values) + 1)
        legend = f"{label} (R1 {100 * values[0]:.1f}%)"
        ax.plot(ranks, 100.0 * values, marker="o", markersize=3, label=legend)
    ax.set_xlim(1, max_rank)
    ax.set_xlabel("rank")
    ax.set_ylabel("matching rate (%)")
    ax.set_title("CMC")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    logger.info("wrote CMC plot %s", path)
    return path
