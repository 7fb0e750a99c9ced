"""Checkpoint files: the full training state (``last.pt``) and the model alone (``best.pt``).

    last.pt  {"format": "reidstream.train_state/1", "state_dict", "optimizer", "scheduler",
              "scaler", "epoch", "global_step", "best_metric", "best_epoch", "sampler_epoch",
              "rng": [one `trainers.seeding.rng_state()` per rank], "loader_state", "metrics",
              "nonfinite_steps", "config", "model"}
    best.pt  {"format": "reidstream.weights/1", "state_dict", "epoch", "metrics", "config",
              "model"}

``"model"`` is the model spec (`reid_models.spec`: registry name, builder overrides and the
run's `PretrainedCfg`), with which the file alone rebuilds the model it holds; files written
before it existed, or of models not built by `create_model`, lack it.

Both hold only tensors and plain Python values, so they load with ``torch.load(weights_only=
True)`` (no code runs when a file is read), and both keep the model's weights under
``state_dict``, the key `reid_models.weights.load_state_dict_file` unwraps: either file is a
valid ``create_model(name, pretrained=path)``. Writes go to a temporary file in the same folder
followed by `os.replace`, so a run killed mid-write leaves the previous checkpoint intact.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "TRAIN_STATE_FORMAT",
    "WEIGHTS_FORMAT",
    "CheckpointError",
    "load_checkpoint",
    "plain",
    "save_checkpoint",
]

logger = logging.getLogger(__name__)

TRAIN_STATE_FORMAT = "reidstream.train_state/1"
WEIGHTS_FORMAT = "reidstream.weights/1"


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, or not of the expected format."""


def plain(value: Any) -> Any:
    """`value` with paths as strings and mappings/sequences as dicts/lists, recursively.

    A resolved configuration may hold `Path`s, tuples or enum-like values; checkpoints and
    ``config.yaml`` need plain data that ``weights_only`` loading and `yaml.safe_dump` accept.
    """
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def save_checkpoint(path: Path, state: Mapping[str, Any]) -> Path:
    """Writes `state` to `path` atomically (temporary file, then `os.replace`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(dict(state), tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(
    path: Path, *, expected_format: str | None = TRAIN_STATE_FORMAT
) -> dict[str, Any]:
    """Reads a checkpoint on the CPU with ``weights_only=True``.

    Args:
        path: A file written by `save_checkpoint`.
        expected_format: The ``format`` field it must carry; None accepts either format.

    Raises:
        CheckpointError: A missing or unreadable file, or another format (the message names
            the format found and the one expected).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # the unpickler raises anything from EOFError to UnpicklingError
        raise CheckpointError(f"checkpoint {path} is unreadable: {err}") from err
    found = state.get("format") if isinstance(state, dict) else None
    valid = (TRAIN_STATE_FORMAT, WEIGHTS_FORMAT)
    if found not in valid or (expected_format is not None and found != expected_format):
        wanted = expected_format or " or ".join(valid)
        raise CheckpointError(f"{path} has format {found!r}, expected {wanted!r}")
    return state
