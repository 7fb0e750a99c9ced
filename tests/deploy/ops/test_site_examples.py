"""The real-footage example sites of deploy/ops run as shipped: every camera produces frames and
the job ends with links written (a few seconds of each, `run.max_duration_s`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
REIDSTREAM = str(Path(sys.executable).with_name("reidstream"))
SITES = ["store.yaml", "pets.yaml"]


def _needs_shared(site: Path) -> None:
    """Skips, naming the file, when a file the site reads is absent (no ../shared)."""
    cfg = yaml.safe_load(site.read_text())
    paths = [c["uri"] for c in cfg["cameras"]]
    paths += [cfg["detector"]["weights"], cfg["reid"]["onnx_path"]]
    for path in paths:
        if not (ROOT / path).is_file():
            pytest.skip(f"{site.name} reads {path}, which is absent (no ../shared/data)")


@pytest.mark.slow
@pytest.mark.parametrize("name", SITES)
def test_example_site_runs(name, tmp_path):
    site = ROOT / "deploy" / "ops" / name
    _needs_shared(site)
    command = [REIDSTREAM, "run", "--config", str(site), f"run.out_dir={tmp_path}"]
    command += ["run.max_duration_s=15", "run.record=false"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    cameras = yaml.safe_load(site.read_text())["cameras"]
    assert set(summary["cameras"]) == {c["id"] for c in cameras}
    assert all(state["frames"] > 0 for state in summary["cameras"].values())
    assert summary["stages"]["publish"] > 0
