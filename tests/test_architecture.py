"""The layout of the README holds: the import direction between the packages and between the
pipeline's parts, every module imports, and no function runs long without saying why.

    reid_models  <-  deploy, trainers  <-  pipeline  ->  detectors

    pipeline:  config  <-  monitoring  <-  messages  <-  matching  <-  stream  <-  demo
                 settings (the root schema)  <-  assemble  <-  adapt  <-  bench  <-  cli

Only `pipeline` knows threads, queues, Kafka and Prometheus; `pipeline.messages` needs neither
torch nor OpenCV; nothing in `pipeline.stream` or `pipeline.messages` depends on `trainers`.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
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
_MODEL_LIBRARIES = {"torch", "torchvision", "cv2", "ultralytics", "onnxruntime", "tensorrt"}
#: Third-party and standard modules a package must not use.
MUST_NOT_USE = {
    "reid_models": _STREAMING | _CONCURRENCY | {"cv2", "ultralytics", "onnxruntime"},
    "detectors": _STREAMING | _CONCURRENCY,
    "deploy": _STREAMING,
    "trainers": _STREAMING,
    "pipeline": set(),
}

_BASE = {"pipeline.config"}
#: The pipeline's parts (subpackages and top-level modules) each part may import, besides the
#: other packages of `MAY_IMPORT`, and the other packages each part must not depend on.
PIPELINE_PARTS: dict[str, set[str]] = {
    "pipeline.config": set(),
    "pipeline.monitoring": _BASE,
    "pipeline.messages": _BASE | {"pipeline.monitoring"},
    "pipeline.matching": _BASE | {"pipeline.monitoring", "pipeline.messages"},
    "pipeline.stream": _BASE | {"pipeline.monitoring", "pipeline.messages", "pipeline.matching"},
    "pipeline.demo": _BASE
    | {"pipeline.monitoring", "pipeline.messages", "pipeline.matching", "pipeline.stream"},
}
PIPELINE_PARTS["pipeline.settings"] = set(PIPELINE_PARTS) | {"pipeline.settings"}
PIPELINE_PARTS["pipeline.assemble"] = PIPELINE_PARTS["pipeline.settings"]
PIPELINE_PARTS["pipeline.adapt"] = PIPELINE_PARTS["pipeline.assemble"] | {"pipeline.assemble"}
PIPELINE_PARTS["pipeline.processes"] = PIPELINE_PARTS["pipeline.adapt"]
PIPELINE_PARTS["pipeline.bench"] = PIPELINE_PARTS["pipeline.adapt"] | {
    "pipeline.adapt",
    "pipeline.processes",
}
PIPELINE_PARTS["pipeline.cli"] = PIPELINE_PARTS["pipeline.bench"] | {"pipeline.bench"}
#: Other packages (and their third-party libraries) a part must not import.
PART_MUST_NOT_USE = {
    "pipeline.messages": {"trainers", "reid_models", "deploy", "detectors"} | _MODEL_LIBRARIES,
    "pipeline.matching": {"trainers", "reid_models", "deploy", "detectors"} | _MODEL_LIBRARIES,
    "pipeline.stream": {"trainers"},
    "pipeline.monitoring": {"trainers"},
}


def _imports(source: str, module: str) -> list[tuple[str, bool]]:
    """(absolute name, at top level) of every import in `source`; relative imports resolved
    against `module`. Imports under ``if TYPE_CHECKING:`` are left out: they never run."""
    tree = ast.parse(source)
    checking = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    top = {id(n) for n in tree.body}
    found = []
    for node in ast.walk(tree):
        if id(node) in checking:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = module.rsplit(".", node.level)[0]
                base = f"{parent}.{base}" if base else parent
            found += [(f"{base}.{alias.name}", id(node) in top) for alias in node.names]
            found.append((base, id(node) in top))
    return found


def imported_modules(source: str) -> set[str]:
    """Top-level names of every absolute import in `source`, wherever it stands in the file."""
    return {name.split(".")[0] for name, _ in _imports(source, "x")}


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def violations(package: str, root: Path = ROOT) -> list[str]:
    forbidden = (set(PACKAGES) - MAY_IMPORT[package] - {package}) | MUST_NOT_USE[package]
    found = []
    for path in sorted((root / package).rglob("*.py")):
        for name in sorted(imported_modules(path.read_text()) & forbidden):
            found.append(f"{path.relative_to(root)} imports {name}")
    return found


def _part(module: str) -> str | None:
    """The pipeline part `module` belongs to (`pipeline.stream.job` -> `pipeline.stream`)."""
    return next((p for p in PIPELINE_PARTS if module == p or module.startswith(p + ".")), None)


def part_violations(root: Path = ROOT) -> list[str]:
    """Imports between the pipeline's parts against `PIPELINE_PARTS` and `PART_MUST_NOT_USE`."""
    found = []
    for path in sorted((root / "pipeline").rglob("*.py")):
        module = _module_name(path, root)
        part = _part(module)
        if part is None:
            continue
        for name, _ in _imports(path.read_text(), module):
            target = _part(name) if name.startswith("pipeline.") else None
            if target is not None and target != part and target not in PIPELINE_PARTS[part]:
                found.append(f"{path.relative_to(root)} imports {name}")
            if name.split(".")[0] in PART_MUST_NOT_USE.get(part, set()):
                found.append(f"{path.relative_to(root)} imports {name}")
    return sorted(set(found))


@pytest.mark.parametrize("package", PACKAGES)
def test_import_direction(package):
    assert violations(package) == []


def test_the_pipeline_parts_import_one_way():
    assert part_violations() == []


def test_every_pipeline_module_belongs_to_a_part():
    modules = [_module_name(p, ROOT) for p in (ROOT / "pipeline").rglob("*.py")]
    loose = [m for m in modules if _part(m) is None and m not in ("pipeline", "pipeline.__main__")]
    assert loose == []


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


def test_part_checker_finds_planted_violations(tmp_path):
    (tmp_path / "pipeline" / "messages").mkdir(parents=True)
    (tmp_path / "pipeline" / "stream").mkdir(parents=True)
    (tmp_path / "pipeline" / "messages" / "bad.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "from ..stream import job\n"
        "if TYPE_CHECKING:\n    from pipeline.assemble import build_job\n"
        "def f():\n    import torch\n"
    )
    (tmp_path / "pipeline" / "stream" / "bad.py").write_text("from trainers import synthetic\n")
    assert part_violations(tmp_path) == [
        "pipeline/messages/bad.py imports pipeline.stream",
        "pipeline/messages/bad.py imports pipeline.stream.job",
        "pipeline/messages/bad.py imports torch",
        "pipeline/stream/bad.py imports trainers",
        "pipeline/stream/bad.py imports trainers.synthetic",
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


#: A function longer than this says why in its docstring ("... is long because ...").
MAX_FUNCTION_LINES = 60
_REASON = re.compile(r"\blong because\b", re.IGNORECASE)


def long_functions(root: Path = ROOT) -> list[str]:
    """Functions over `MAX_FUNCTION_LINES` lines (def to last line) whose docstring gives no
    reason."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES and not _REASON.search(ast.get_docstring(node) or ""):
                    found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({lines})")
    return found


def test_no_function_runs_long_without_a_reason():
    assert long_functions() == []


def test_long_function_check_finds_one(tmp_path):
    (tmp_path / "pipeline").mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(60))
    (tmp_path / "pipeline" / "m.py").write_text(
        f"def long():\n{body}\n\ndef explained():\n    '''It is long because.'''\n{body}\n"
    )
    assert long_functions(tmp_path) == ["pipeline/m.py:1 long (61)"]
