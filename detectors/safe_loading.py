"""Loading Ultralytics models without running code from the file: the only way `detectors` does.

A ``.pt`` file is a pickle, and Ultralytics' default loader unpickles it with
``torch.load(weights_only=False)``: a hostile file runs any code it likes. Ultralytics (8.4 on,
`ultralytics.nn.tasks.torch_safe_load`) offers a restricted mode instead, ``weights_only=True``
with an allow-list of its own and torch's model classes, switched on by ``ULTRALYTICS_SAFE_LOAD``
(read once, at its import) or the module flag `ultralytics.nn.tasks.SAFE_LOAD`. `load_yolo` sets
both before every load, so the detector (`detector.name=ultralytics`, `reidstream track
--detector ultralytics`), BoT-SORT's appearance model (`tracker.reid_model`, which Ultralytics
loads through the same function) and the benchmarks all load that way. An installed Ultralytics
without the restricted mode gets no ``.pt`` at all: the error names the safe formats instead.

``YOLO_OFFLINE=1`` is forced too: Ultralytics then never downloads weights, fonts or packages.
Two more ways a local ``.pt`` would reach the network or fail obscurely are closed before
Ultralytics sees the file:

- Ultralytics renames paths like ``yolov5n.pt`` (`ultralytics.utils.checks.check_yolov5u_filename`)
  to ``yolov5nu.pt`` and downloads that. Such a file is handed to it through a link named as
  Ultralytics expects, in a temporary folder, so the user's file is the one loaded.
- A checkpoint of the original YOLOv5 repository (github.com/ultralytics/yolov5) pickles its model
  as ``models.yolo.Model``, classes the ``ultralytics`` package does not have. The pickle's class
  references are listed with `pickletools` (which reads opcodes and executes nothing), and such a
  file is refused with how to export it to ONNX for the ``onnx-yolo`` detector.
"""

from __future__ import annotations

import contextlib
import os
import pickletools
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from detectors.base import DetectorError

__all__ = [
    "SAFE_FORMATS",
    "YOLOV5_EXPORT",
    "check_not_yolov5_repository",
    "enable_safe_loading",
    "load_yolo",
    "pickled_classes",
]

#: What to use when a ``.pt`` cannot be loaded safely; part of every refusal.
SAFE_FORMATS = (
    "export the model to ONNX on a machine you trust (`yolo export model=FILE.pt format=onnx`) and "
    "give the .onnx file (detector.name=onnx-yolo or ultralytics), or a TensorRT .engine built "
    "from it"
)


#: How to run a checkpoint of the original YOLOv5 repository; part of its refusal.
YOLOV5_EXPORT = (
    "export it to ONNX with that repository's own script (in a clone of "
    "github.com/ultralytics/yolov5: `python export.py --weights FILE.pt --include onnx`) and "
    "give the .onnx file to the 'onnx-yolo' detector (detector.name=onnx-yolo "
    "detector.weights=FILE.onnx, or `reidstream track --detector onnx-yolo --weights FILE.onnx`)"
)
#: Top-level packages whose classes a YOLOv5-repository checkpoint pickles (``models.yolo.Model``,
#: ``models.common.Conv``, ``utils.*``); an Ultralytics checkpoint pickles ``ultralytics.*``.
_YOLOV5_PACKAGES = ("models.", "utils.")


def _pin_environment() -> None:
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["ULTRALYTICS_SAFE_LOAD"] = "1"


_pin_environment()  # before any `ultralytics` import in this process reads them


def enable_safe_loading() -> None:
    """Switches Ultralytics' ``.pt`` loading to its restricted, code-free mode for the process.

    Raises:
        DetectorError: The installed Ultralytics has no restricted mode (or the installed torch
            lacks what it needs); the message names the safe formats.
    """
    _pin_environment()
    from ultralytics import utils
    from ultralytics.nn import tasks

    safe_load = getattr(tasks, "_SafeLoad", None)
    if safe_load is None or not getattr(safe_load, "SUPPORTED", False):
        raise DetectorError(
            "this Ultralytics/torch cannot load .pt files without unpickling them with code "
            f"execution, so .pt files are refused; {SAFE_FORMATS}"
        )
    tasks.SAFE_LOAD = utils.SAFE_LOAD = True


def load_yolo(path: str | Path, *, task: str = "detect") -> Any:
    """`ultralytics.YOLO(path)` with ``.pt`` files read in the restricted mode.

    Raises:
        DetectorError: A ``.pt`` with no restricted mode available.
        TypeError: A ``.pt`` that holds anything outside Ultralytics' allow-list (Ultralytics'
            own message), e.g. a pickle built to run code.
    """
    path = Path(path)
    if path.suffix.lower() == ".pt":
        check_not_yolov5_repository(path)
    enable_safe_loading()
    from ultralytics import YOLO

    with _as_ultralytics_names_it(path) as local:
        return YOLO(str(local), task=task)


def pickled_classes(path: str | Path) -> set[str]:
    """The ``module.Name`` references in the pickle of a torch ``.pt`` file, without loading it.

    Reads the opcodes of the zip archive's ``data.pkl`` (torch >= 1.6) or of the legacy format's
    leading pickles with `pickletools.genops`, which decodes and never executes. An unreadable
    file gives an empty set: the loader then reports what is wrong with it.
    """
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.endswith("data.pkl")]
                return _globals_of(archive.read(names[0])) if names else set()
        return _globals_of(Path(path).read_bytes())
    except (OSError, zipfile.BadZipFile):
        return set()


def _globals_of(data: bytes) -> set[str]:
    """``module.Name`` of every GLOBAL / STACK_GLOBAL in the pickles at the start of `data`."""
    found: set[str] = set()
    strings: list[str] = []  # string pushes, for STACK_GLOBAL's two operands
    memo: dict[int, Any] = {}
    stream = memoryview(data)
    with contextlib.suppress(Exception):  # the legacy format ends in raw storage bytes
        for _ in range(4):  # legacy: magic number, protocol, system info, then the data
            for op, arg, _pos in pickletools.genops(bytes(stream)):
                if op.name == "GLOBAL":
                    found.add(str(arg).replace(" ", "."))
                elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    found.add(f"{strings[-2]}.{strings[-1]}")
                elif isinstance(arg, str) and "UNICODE" in op.name:
                    strings.append(arg)
                elif op.name in ("BINGET", "LONG_BINGET", "GET") and arg in memo:
                    strings.append(memo[arg])
                elif op.name == "MEMOIZE" and strings:
                    memo[len(memo)] = strings[-1]
                elif op.name in ("BINPUT", "LONG_BINPUT", "PUT") and strings:
                    memo[arg] = strings[-1]
                if op.name == "STOP":
                    stream = stream[_pos + 1 :]
                    break
    return found


def check_not_yolov5_repository(path: Path) -> None:
    """Refuses a checkpoint of the original YOLOv5 repository, saying how to run it instead.

    Raises:
        DetectorError: `path` pickles classes of YOLOv5's own ``models``/``utils`` packages.
    """
    yolov5 = sorted(c for c in pickled_classes(path) if c.startswith(_YOLOV5_PACKAGES))
    if yolov5:
        raise DetectorError(
            f"{str(path)!r}: a checkpoint of the original YOLOv5 repository (it pickles "
            f"{', '.join(yolov5[:3])}), which the ultralytics package cannot load; " + YOLOV5_EXPORT
        )


@contextlib.contextmanager
def _as_ultralytics_names_it(path: Path) -> Iterator[Path]:
    """`path`, or a link to it under the name Ultralytics would rename it to (and then download).

    `check_yolov5u_filename` turns ``yolov5n.pt`` into ``yolov5nu.pt`` (and ``yolov3.pt`` into
    ``yolov3u.pt``) before looking for the file; a link by that name in a temporary folder makes
    the lookup find the user's file. The link is removed once the model is in memory.
    """
    from ultralytics.utils.checks import check_yolov5u_filename

    renamed = Path(check_yolov5u_filename(str(path), verbose=False))
    if renamed == path:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="reidstream-weights-") as folder:
        link = Path(folder) / renamed.name
        link.symlink_to(path.resolve())
        yield link
