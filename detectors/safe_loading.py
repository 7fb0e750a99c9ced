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
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from detectors.base import DetectorError

__all__ = ["SAFE_FORMATS", "enable_safe_loading", "load_yolo"]

#: What to use when a ``.pt`` cannot be loaded safely; part of every refusal.
SAFE_FORMATS = (
    "export the model to ONNX on a machine you trust (`yolo export model=FILE.pt format=onnx`) and "
    "give the .onnx file (detector.name=onnx-yolo or ultralytics), or a TensorRT .engine built "
    "from it"
)


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
    enable_safe_loading()
    from ultralytics import YOLO

    return YOLO(str(path), task=task)
