"""`reid_models.summary` measures parameters and MACs and tabulates them beside the papers'."""

from __future__ import annotations

from reid_models import summary


def test_the_model_table_and_the_other_figures():
    table = summary.format_table([summary.measure("c2d_r50")])
    row = next(line for line in table.splitlines() if line.startswith("| c2d_r50 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:4] == ["3,4,256,128", "23.51", "24.79"]  # clip, params, +625 classifier
    assert cells[6:] == ["23.51", "+0.0%", "16.35", "-0.8%", "AP3D Table 1"]
    other = summary.format_other(summary.other_figures())
    assert "| m3d_r50: M3D layers (MB) | 12.53 | 4.20 | +198.4% |" in other
    assert "| personvlad_c3d: parameters (M) | 28.48 | 28.48 |" in other
