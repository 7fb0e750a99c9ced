"""What one training or evaluation run leaves behind, and the model it runs on.

    create_model(name, overrides, num_classes, pretrained)
      └─ resolve_cfg: the model's PretrainedCfg with the run's input size / clip overrides,
         attached to the model, so checkpoints and the evaluator see what it was trained with
    EvalRecorder: wraps the evaluation callable the Trainer calls; keeps every RankResult
    write_run_outputs(out_dir) ─▶ metrics.json   final + best metrics, model, dataset, protocol
                              ─▶ cmc.png        CMC curves (final, best)
                              ─▶ results.md     one markdown row (the header once)

`read_runs` finds the ``metrics.json`` files under a folder; `results_table` (`reidstream
results`) puts them beside the papers' numbers (`trainers.published`), each row with the
evaluation protocol its numbers were scored under. Every argument is
explicit: this module knows nothing of the command line's configuration tree.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from reid_models import ReIDModel, create_model
from reid_models.pretrained import PretrainedCfg
from trainers.evaluation import PROTOCOL_RULES, RankResult, plot_cmc
from trainers.published import METRICS, PAPER_PROTOCOLS, PublishedResult, model_key

__all__ = [
    "AMP_DTYPES",
    "METRICS_FILE",
    "EvalRecorder",
    "RunMetrics",
    "build_model",
    "read_runs",
    "resolve_cfg",
    "results_row",
    "results_table",
    "write_run_outputs",
]

logger = logging.getLogger(__name__)

#: Name of the metrics file every run writes; `read_runs` looks for it.
METRICS_FILE = "metrics.json"
METRICS_SCHEMA = "reidstream.train_metrics/1"
#: ``train.amp_dtype`` names -> torch dtypes (None: float32).
AMP_DTYPES: dict[str, torch.dtype | None] = {
    "none": None,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
_ROW_HEADER = (
    "| model | dataset | split | protocol | rerank | epochs | rank-1 | rank-5 | rank-10 "
    "| rank-20 | mAP | mINP |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)


def resolve_cfg(
    cfg: PretrainedCfg,
    *,
    input_size: Sequence[int] | None = None,
    clip_len: int | None = None,
    sampling: str | None = None,
    stride: int | None = None,
    test_clip_len: int | None = None,
    test_sampling: str | None = None,
    test_stride: int | None = None,
) -> PretrainedCfg:
    """`cfg` with the given (non-None) overrides; `input_size` is (H, W)."""
    changes: dict[str, Any] = {
        "train_clip_len": clip_len,
        "train_sampling": sampling,
        "train_stride": stride,
        "test_clip_len": test_clip_len,
        "test_sampling": test_sampling,
        "test_stride": test_stride,
    }
    if input_size is not None:
        changes["input_size"] = (cfg.input_size[0], *(int(s) for s in input_size))
    changes = {k: v for k, v in changes.items() if v is not None}
    return cfg.with_changes(**changes) if changes else cfg


def build_model(
    name: str,
    *,
    num_classes: int,
    overrides: Mapping[str, Any] | None = None,
    pretrained: str | Path | None = None,
    cfg_changes: Mapping[str, Any] | None = None,
) -> ReIDModel:
    """`create_model` plus the run's `resolve_cfg` changes attached as ``model.pretrained_cfg``.

    The convolutional models pool globally, so a smaller input (e.g. 64x32 for tests) needs no
    architectural change; the attached cfg makes the loader and the evaluator resize to it.
    """
    model = create_model(
        name, num_classes=num_classes, pretrained=pretrained, **dict(overrides or {})
    )
    model.pretrained_cfg = resolve_cfg(model.pretrained_cfg, **dict(cfg_changes or {}))
    return model


@dataclass
class EvalRecorder:
    """The Trainer's ``evaluate`` callable, keeping each result with its call number.

    Args:
        evaluate: model -> RankResult (e.g. `trainers.evaluator.evaluate_model` bound to the
            test split).
    """

    evaluate: Callable[[nn.Module], RankResult]
    results: list[RankResult] = field(default_factory=list)

    def __call__(self, model: nn.Module) -> RankResult:
        result = self.evaluate(model)
        self.results.append(result)
        logger.info("evaluation %d: %s", len(self.results), _fmt(result))
        return result

    @property
    def best(self) -> RankResult | None:
        return max(self.results, key=lambda r: r.mAP) if self.results else None


def _fmt(result: RankResult) -> str:
    return " ".join(f"{k}={v:.2f}" for k, v in result.as_dict().items())


@dataclass(frozen=True)
class RunMetrics:
    """The content of one run's ``metrics.json``."""

    model: str
    overrides: Mapping[str, Any]
    dataset: str
    split_id: int | None
    protocol: str
    rerank: bool
    epochs: int | None
    final: Mapping[str, float]
    best: Mapping[str, float] | None = None
    path: Path | None = None

    @property
    def key(self) -> tuple[str, str, bool]:
        """(model variant, dataset, rerank), the key of `trainers.published.PublishedResult`."""
        return (model_key(self.model, self.overrides), self.dataset, self.rerank)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": METRICS_SCHEMA,
            "model": self.model,
            "overrides": dict(self.overrides),
            "dataset": self.dataset,
            "split_id": self.split_id,
            "protocol": self.protocol,
            "rerank": self.rerank,
            "epochs": self.epochs,
            "final": dict(self.final),
            "best": None if self.best is None else dict(self.best),
        }


def write_run_outputs(
    out_dir: Path,
    *,
    metrics: RunMetrics,
    final: RankResult,
    best: RankResult | None = None,
) -> dict[str, Path]:
    """Writes metrics.json, cmc.png and appends a row to results.md in `out_dir`.

    Returns:
        The written paths by kind ("metrics", "cmc", "results").
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "metrics": out_dir / METRICS_FILE,
        "cmc": out_dir / "cmc.png",
        "results": out_dir / "results.md",
    }
    paths["metrics"].write_text(json.dumps(metrics.to_json(), indent=2) + "\n", encoding="utf-8")
    curves = {f"final (mAP {100 * final.mAP:.1f})": final.cmc}
    if best is not None and best is not final:
        curves[f"best (mAP {100 * best.mAP:.1f})"] = best.cmc
    plot_cmc(curves, paths["cmc"])
    results = paths["results"]
    new = not results.exists()
    with results.open("a", encoding="utf-8") as f:
        f.write((_ROW_HEADER if new else "") + results_row(metrics) + "\n")
    return paths


def results_row(metrics: RunMetrics) -> str:
    """One markdown table row of `metrics` (final numbers, percent)."""
    values = [_cell(metrics.final.get(m)) for m in (*METRICS, "mINP")]
    split = "" if metrics.split_id is None else str(metrics.split_id)
    epochs = "" if metrics.epochs is None else str(metrics.epochs)
    cells = [model_key(metrics.model, metrics.overrides), metrics.dataset, split]
    cells += [metrics.protocol, "yes" if metrics.rerank else "no", epochs, *values]
    return "| " + " | ".join(cells) + " |"


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


#: Ranks shown in the comparison table, for published and measured alike.
COLUMNS = ("rank1", "rank5", "rank20", "mAP")
_HEADS = ("R1", "R5", "R20", "mAP")


def results_table(published: Sequence[PublishedResult], runs: Sequence[RunMetrics]) -> str:
    """The markdown table and a legend of the protocols in it.

    One line per published row, beside the runs of its model variant and dataset that were
    scored under the paper's protocol (`PublishedResult.protocol`); then one line per other
    (variant, dataset, protocol) that was measured, so runs under different protocols are never
    averaged together nor set beside numbers scored otherwise.
    """
    measured: dict[tuple[tuple[str, str, bool], str], list[RunMetrics]] = defaultdict(list)
    for r in runs:
        measured[(r.key, r.protocol)].append(r)
    head = ["paper", "row", "model", "dataset", "protocol", "source"]
    head += [f"paper {h}" for h in _HEADS] + [f"ours {h}" for h in _HEADS] + ["runs"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    shown = set()
    for p in published:
        shown.add((p.key, p.protocol))
        model = p.key[0] + (" +rerank" if p.rerank else "")
        source = p.source + (f" ({p.note})" if p.note else "")
        cells = [p.paper, p.row, model, p.dataset, p.protocol, source]
        cells += [_cell(p.metrics()[c]) for c in COLUMNS]
        cells += _measured(measured.get((p.key, p.protocol), []))
        lines.append("| " + " | ".join(cells) + " |")
    for key, protocol in sorted(k for k in measured if k not in shown):
        model = key[0] + (" +rerank" if key[2] else "")
        cells = ["", "", model, key[1], protocol, ""] + [""] * len(COLUMNS)
        lines.append("| " + " | ".join(cells + _measured(measured[(key, protocol)])) + " |")
    protocols = sorted({p.protocol for p in published} | {protocol for _, protocol in measured})
    return "\n".join([*lines, "", *_protocol_legend(protocols, published)])


def _protocol_legend(protocols: Sequence[str], published: Sequence[PublishedResult]) -> list[str]:
    """Markdown lines: what each protocol reproduces, and why each paper shown is scored so."""
    lines = ["Protocols (their rules: trainers/evaluation/rank.py):"]
    for name in protocols:
        rules = PROTOCOL_RULES.get(name)
        lines.append(f"- `{name}`: {rules.source if rules else 'not a protocol of this version'}")
        for paper in sorted({p.paper for p in published if p.protocol == name}):
            lines.append(f"  - {paper}: {PAPER_PROTOCOLS[paper].why}")
    return lines


def _measured(runs: list[RunMetrics]) -> list[str]:
    if not runs:
        return [""] * (len(COLUMNS) + 1)
    cells = []
    for column in COLUMNS:
        values = [r.final[column] for r in runs if r.final.get(column) is not None]
        cells.append(_cell(float(np.mean(values)) if values else None))
    return [*cells, str(len(runs))]


def read_runs(root: Path) -> list[RunMetrics]:
    """Every run's metrics under `root` (recursively), sorted by path; unreadable files skipped."""
    runs = []
    for path in sorted(Path(root).rglob(METRICS_FILE)):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("schema") != METRICS_SCHEMA:
                raise ValueError(f"schema {data.get('schema')!r}, expected {METRICS_SCHEMA!r}")
            runs.append(
                RunMetrics(
                    model=data["model"],
                    overrides=data.get("overrides") or {},
                    dataset=data["dataset"],
                    split_id=data.get("split_id"),
                    protocol=data["protocol"],
                    rerank=bool(data.get("rerank")),
                    epochs=data.get("epochs"),
                    final=data["final"],
                    best=data.get("best"),
                    path=path,
                )
            )
        except (OSError, ValueError, KeyError, TypeError) as e:
            logger.warning("skipping %s: %s", path, e)
    return runs
