"""Training records: one CSV row per epoch, TensorBoard scalars, and the progress bar.

    out_dir/metrics.csv   epoch, step, lr, loss_<part>..., grad_norm, nonfinite_steps,
                          epoch_time_s, rank1, rank5, rank10, rank20, mAP, mINP
    out_dir/tb/           TensorBoard event files (torch.utils.tensorboard.SummaryWriter)

A resumed run continues both records without duplicates: `MetricsCSV` drops rows of epochs
after the checkpoint (a run killed between writing its row and its checkpoint) and keeps the
header, and the SummaryWriter is opened with ``purge_step`` at the resumed global step, which
hides events the killed run wrote past it. Writing CSV by hand with `csv.DictWriter` (the
standard library) because a row must be readable by any tool while the run is going.
"""

from __future__ import annotations

import csv
import logging
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

__all__ = ["EVAL_COLUMNS", "MetricsCSV", "open_tensorboard", "progress_bar"]

logger = logging.getLogger(__name__)

#: Evaluation columns, in `RankResult.as_dict` units (percent).
EVAL_COLUMNS = ("rank1", "rank5", "rank10", "rank20", "mAP", "mINP")
_HEAD = ("epoch", "step", "lr")
_TAIL = ("grad_norm", "nonfinite_steps", "epoch_time_s", *EVAL_COLUMNS)


class MetricsCSV:
    """Appends one row per epoch to a CSV file whose columns are fixed by its first row.

    Args:
        path: The CSV file.
        resume_epoch: Number of finished epochs of the checkpoint a run resumes from; rows of
            later epochs are dropped. None starts a new file (an existing one is replaced).
    """

    def __init__(self, path: Path, *, resume_epoch: int | None = None) -> None:
        self.path = Path(path)
        self.columns: list[str] | None = None
        if resume_epoch is None or not self.path.is_file():
            self.path.unlink(missing_ok=True)
            return
        with self.path.open(newline="") as f:
            reader = csv.DictReader(f)
            self.columns = list(reader.fieldnames or []) or None
            rows = [row for row in reader if int(row["epoch"]) <= resume_epoch]
        if self.columns is None:
            return
        self._rewrite(rows)

    @staticmethod
    def columns_for(loss_parts: Iterable[str]) -> list[str]:
        """The header of a run whose criterion reports `loss_parts`."""
        return [*_HEAD, *(f"loss_{p}" for p in loss_parts), *_TAIL]

    def append(self, row: Mapping[str, object], *, loss_parts: Sequence[str]) -> None:
        """Writes `row`; missing keys stay empty, new keys widen the header (rows rewritten).

        A loss part may first appear after the header was written (an epoch whose every step
        was skipped has none); the file is then rewritten with the wider header.
        """
        if self.columns is None:
            self.columns = self.columns_for(loss_parts)
            self._rewrite([])
        unknown = [k for k in row if k not in self.columns]
        if unknown:
            rows = self.rows()
            losses = [k for k in unknown if k.startswith("loss_")]
            others = [k for k in unknown if not k.startswith("loss_")]
            at = self.columns.index(_TAIL[0]) if _TAIL[0] in self.columns else len(self.columns)
            self.columns = [*self.columns[:at], *losses, *self.columns[at:], *others]
            self._rewrite(rows)
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns).writerow(_formatted(row))

    def rows(self) -> list[dict[str, str]]:
        """Every row written so far, as strings."""
        if not self.path.is_file():
            return []
        with self.path.open(newline="") as f:
            return list(csv.DictReader(f))

    def _rewrite(self, rows: list[dict[str, str]]) -> None:
        assert self.columns is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(rows)
        tmp.replace(self.path)


def _formatted(row: Mapping[str, object]) -> dict[str, object]:
    return {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}


def open_tensorboard(log_dir: Path, *, purge_step: int | None = None) -> SummaryWriter:
    """A `SummaryWriter` on `log_dir`; `purge_step` hides events at or after it on resume."""
    from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: ~1 s

    return SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)


def progress_bar(total: int | None, *, enabled: bool, desc: str) -> tqdm:
    """A tqdm bar on stderr, disabled when `enabled` is false or stderr is not a terminal."""
    return tqdm(
        total=total,
        desc=desc,
        disable=not (enabled and sys.stderr.isatty()),
        dynamic_ncols=True,
        leave=False,
    )
