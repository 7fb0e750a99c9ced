"""`python -m reid_models.summary` prints measured figures beside the papers'."""

from __future__ import annotations

from reid_models import summary


def test_prints_the_model_table_and_the_other_figures(capsys):
    assert summary.main(["--models", "c2d_r50"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("| c2d_r50 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:4] == ["3,4,256,128", "23.51", "24.79"]  # clip, params, +625 classifier
    assert cells[6:] == ["23.51", "+0.0%", "16.35", "-0.8%", "AP3D Table 1"]
    assert "| m3d_r50: M3D layers (MB) | 12.53 | 4.20 | +198.4% |" in out
    assert "| personvlad_c3d: parameters (M) | 28.48 | 28.48 |" in out
