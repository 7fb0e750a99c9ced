"""Deterministic seeding, and the random state a checkpoint needs for an exact resume.

Three generators drive a training run: Python's `random`, NumPy's global generator and torch's
(CPU and every CUDA device). `seed_everything` seeds all of them and asks cuDNN and torch for
deterministic kernels; `rng_state` / `set_rng_state` capture and restore them at an epoch
boundary, so that stopping after epoch k and resuming replays epochs k+1.. exactly; the
`preserved_rng` context keeps evaluation from consuming training randomness, so the training
trajectory does not depend on how often the model is evaluated.

DataLoader workers: torch gives each worker the seed ``base_seed + worker_id``, where
``base_seed`` is drawn from the main process's torch generator when an epoch's iterator starts
(so it follows the restored state on resume). `worker_init_fn` derives the worker's `random` and
NumPy seeds from it, which NumPy would otherwise inherit identically in every forked worker.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

__all__ = ["preserved_rng", "rng_state", "seed_everything", "set_rng_state", "worker_init_fn"]

logger = logging.getLogger(__name__)


def seed_everything(seed: int, *, deterministic: bool = True) -> None:
    """Seeds `random`, NumPy's global generator and torch (CPU and all CUDA devices).

    Args:
        seed: The run's seed; a distributed run passes ``seed + rank`` so that ranks draw
            different augmentations (DDP broadcasts rank 0's initial weights anyway).
        deterministic: Also select deterministic kernels: cuDNN benchmark off and
            deterministic on, ``torch.use_deterministic_algorithms(True, warn_only=True)``
            (an op without a deterministic kernel warns instead of failing), and the cuBLAS
            workspace setting that deterministic matmuls need. Costs some GPU speed.
    """
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        # Must be set before the first cuBLAS call to take effect; harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.deterministic = False
        torch.use_deterministic_algorithms(False)
    logger.debug("seeded everything with %d (deterministic=%s)", seed, deterministic)


def worker_init_fn(worker_id: int) -> None:
    """DataLoader hook: seeds the worker's `random` and NumPy from its torch seed.

    torch has already seeded the worker's torch generator with ``base_seed + worker_id``;
    `torch.initial_seed()` returns that value, so every worker and every epoch differs.
    """
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)


def rng_state() -> dict[str, Any]:
    """The state of every global generator, as tensors and plain values.

    NumPy's key array is stored as a tensor so that checkpoints load with
    ``torch.load(weights_only=True)``.
    """
    np_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "bit_generator": np_state["bit_generator"],
            "key": torch.from_numpy(np_state["state"]["key"].astype(np.int64)),
            "pos": int(np_state["state"]["pos"]),
            "has_gauss": int(np_state["has_gauss"]),
            "gauss": float(np_state["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restores what `rng_state` captured (CUDA states only where CUDA is in use)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": np_state["bit_generator"],
            "state": {"key": np_state["key"].numpy().astype(np.uint32), "pos": np_state["pos"]},
            "has_gauss": np_state["has_gauss"],
            "gauss": np_state["gauss"],
        }
    )
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) != torch.cuda.device_count():
            logger.warning(
                "checkpoint holds %d CUDA RNG states, this machine has %d devices; "
                "CUDA randomness is not restored",
                len(cuda_states),
                torch.cuda.device_count(),
            )
        else:
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda_states])


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Runs the body and then puts every global generator back as it was before."""
    state = rng_state()
    try:
        yield
    finally:
        set_rng_state(state)
