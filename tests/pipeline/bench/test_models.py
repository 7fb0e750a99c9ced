"""`reidstream bench models` prints the model table for the models asked for, then the other
figures (the counting itself is tested in tests/reid_models/test_summary.py)."""

from __future__ import annotations

from pipeline.cli import main


def test_prints_a_row_per_model_asked_for_and_the_other_figures(capsys):
    assert main(["bench", "models", "--models", "c2d_r18", "p3d_r18"]) == 0
    captured = capsys.readouterr()
    rows = [line for line in captured.out.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| model | clip (C,T,H,W) | params M |")
    assert [row.split("|")[1].strip() for row in rows[1:3]] == ["c2d_r18", "p3d_r18"]
    assert "| figure | ours | reference | gap | source |" in captured.out
    assert "measured c2d_r18\nmeasured p3d_r18\n" in captured.err


def test_an_unknown_model_exits_2_with_the_registered_ones(capsys):
    assert main(["bench", "models", "--models", "c2d_r18", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown model nope" in err and "c2d_r50" in err
