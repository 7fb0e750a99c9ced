"""`reidstream results` on hand-written run folders: the protocol of every row, runs grouped by
protocol, sources inside the repository or the papers, and the exit status without runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pipeline.cli import main
from trainers.run import METRICS_FILE, RunMetrics

ROOT = Path(__file__).resolve().parents[3]


def _write_run(folder: Path, *, model: str, dataset: str, protocol: str, m_ap: float) -> None:
    metrics = RunMetrics(
        model=model,
        overrides={},
        dataset=dataset,
        split_id=None,
        protocol=protocol,
        rerank=False,
        epochs=240,
        final={"rank1": 90.0, "rank5": 96.0, "rank10": 97.0, "rank20": 98.0, "mAP": m_ap},
    )
    folder.mkdir(parents=True)
    (folder / METRICS_FILE).write_text(json.dumps(metrics.to_json()), encoding="utf-8")


def _line(table: str, *parts: str) -> str:
    (line,) = [row for row in table.splitlines() if all(p in row for p in parts)]
    return line


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _rows(out: str) -> list[dict[str, str]]:
    """The table's rows by column (the lines after the header and separator that start with |)."""
    lines = [line for line in out.splitlines() if line.startswith("|")]
    head = _cells(lines[0])
    return [dict(zip(head, _cells(line), strict=True)) for line in lines[2:]]


def test_rows_name_their_protocol_and_runs_are_grouped_by_it(tmp_path: Path, capsys) -> None:
    _write_run(tmp_path / "a", model="ap3d_r50", dataset="mars", protocol="ap3d", m_ap=85.7)
    _write_run(tmp_path / "b", model="ap3d_r50", dataset="mars", protocol="ap3d", m_ap=85.3)
    _write_run(tmp_path / "c", model="ap3d_r50", dataset="mars", protocol="mars", m_ap=84.9)
    assert main(["results", "--runs", str(tmp_path), "--paper", "ap3d"]) == 0
    out = capsys.readouterr().out
    head = _cells(out.splitlines()[0])
    assert head[:6] == ["paper", "row", "model", "dataset", "protocol", "source"]
    published = _cells(_line(out, "AP-P3D-C (AP3D)", "| mars |"))
    row = dict(zip(head, published, strict=True))
    # The paper's row: its code's protocol, beside the two ap3d runs only (mean 85.50).
    assert row["protocol"] == "ap3d" and row["source"] == "Gu et al., ECCV 2020, Table 1"
    assert (row["paper mAP"], row["ours mAP"], row["runs"]) == ("85.10", "85.50", "2")
    # The run scored under another protocol has a line of its own, after the published rows.
    other = dict(zip(head, _cells(_line(out, "| ap3d_r50 |", "| mars | mars |")), strict=True))
    assert (other["paper"], other["ours mAP"], other["runs"]) == ("", "84.90", "1")
    assert "- `ap3d`: AP3D's tools/eval_metrics.py" in out and "- `mars`: MARS MATLAB kit" in out
    assert "trainers/evaluation/rank.py" in out


def test_sources_are_papers_or_files_of_the_repository(tmp_path: Path, capsys) -> None:
    _write_run(tmp_path / "a", model="gltr_r50", dataset="mars", protocol="mars", m_ap=78.0)
    assert main(["results", "--runs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "spec" not in out and "shared" not in out
    published = [r["source"] for r in _rows(out) if r["source"]]
    assert published and all(re.search(r"(Table|Sec\.|§)\s*[\dIVX]", s) for s in published), (
        published
    )
    for path in re.findall(r"\b(?:trainers|pipeline|reid_models)/[\w/]+\.py\b", out):
        assert (ROOT / path).is_file(), path


def test_a_folder_without_runs_says_so_and_exits_1(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    assert main(["results", "--runs", str(tmp_path / "empty")]) == 1
    captured = capsys.readouterr()
    assert f"no runs found in {tmp_path / 'empty'}" in captured.err
    assert "| ap3d | AP-P3D-C (AP3D) |" in captured.out  # the papers' numbers are still shown


def test_unreadable_runs_do_not_count_as_runs(tmp_path: Path, capsys) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / METRICS_FILE).write_text("{not json", encoding="utf-8")
    assert main(["results", "--runs", str(tmp_path)]) == 1
    assert f"no runs found in {tmp_path}" in capsys.readouterr().err


def test_a_missing_folder_is_a_usage_error(tmp_path: Path, capsys) -> None:
    assert main(["results", "--runs", str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err


@pytest.mark.parametrize("paper", ["gltr", "m3d", "i3d_nonlocal", "personvlad"])
def test_papers_without_ap3d_code_are_scored_under_mars(paper: str, tmp_path: Path, capsys) -> None:
    (tmp_path / "none").mkdir()
    assert main(["results", "--runs", str(tmp_path / "none"), "--paper", paper]) == 1
    out = capsys.readouterr().out
    rows = [r for r in _rows(out) if r["paper"] == paper]
    assert rows and {r["protocol"] for r in rows} == {"mars"}
