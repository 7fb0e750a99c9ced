"""The import direction of DESIGN.md holds, and every module of every package imports.

    reid_models  <-  deploy, trainers  <-  pipeline  ->  detectors

Only `pipeline` knows threads, queues, Kafka and Prometheus.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("reid_models", "detectors", "deploy", "trainers", "pipeline")

#: Project packages each package may import.
MAY_IMPORT = {
    "reid_models": set(),
    "detectors": set(),
    "deploy": {"reid_models"},
    "trainers": {"reid_models"},
    "pipeline": {"reid_models", "detectors", "deploy", "trainers"},
}
_STREAMING = {"kafka", "prometheus_client"}
_CONCURRENCY = {"threading", "queue", "multiprocessing", "concurrent"}
#: Third-party and standard modules a package must not use.
MUST_NOT_USE = {
    "reid_models": _STREAMING | _CONCURRENCY | {"cv2", "ultralytics", "onnxruntime"},
    "detectors": _STREAMING | _CONCURRENCY,
    "deploy": _STREAMING,
    "trainers": _STREAMING,
    "pipeline": set(),
}


def imported_modules(source: str) -> set[str]:
    """Top-level names of every absolute import in `source`, wherever it stands in the file."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def violations(package: str, root: Path = ROOT) -> list[str]:
    forbidden = (set(PACKAGES) - MAY_IMPORT[package] - {package}) | MUST_NOT_USE[package]
    found = []
    for path in sorted((root / package).rglob("*.py")):
        for name in sorted(imported_modules(path.read_text()) & forbidden):
            found.append(f"{path.relative_to(root)} imports {name}")
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_import_direction(package):
    assert violations(package) == []


def test_checker_finds_a_violation(tmp_path):
    (tmp_path / "detectors" / "sub").mkdir(parents=True)
    (tmp_path / "detectors" / "ok.py").write_text("import numpy\nfrom . import sub\n")
    (tmp_path / "detectors" / "sub" / "bad.py").write_text(
        "def f():\n    from pipeline.types import Frame\n    import queue\n"
    )
    assert violations("detectors", root=tmp_path) == [
        "detectors/sub/bad.py imports pipeline",
        "detectors/sub/bad.py imports queue",
    ]


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        names.append(package)
        for info in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
            if not info.name.endswith("__main__"):
                names.append(info.name)
    return names


@pytest.mark.parametrize("module", _modules())
def test_module_imports(module):
    importlib.import_module(module)
