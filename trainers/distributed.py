"""Multi-process training through torchrun: process group, DDP wrapping, and agreement helpers.

    torchrun --nproc_per_node N  ->  RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT in the env
      └─ process_group()         ->  DistInfo(rank, world_size, local_rank, device)
           └─ wrap_model(model)  ->  DistributedDataParallel (one process per device)

Without torchrun's variables everything runs as a single process (rank 0 of 1) and the helpers
below reduce to no-ops, so the engine has one code path. Backend: NCCL when the processes own
CUDA devices, Gloo otherwise (CPU runs and tests). Only rank 0 writes files, logs and evaluates;
the helpers `all_true`, `broadcast_object` and `all_gather_object` let every rank take the same
decision (skip a step, stop, the best metric) from one rank's knowledge.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

__all__ = [
    "DistInfo",
    "all_gather_object",
    "all_mean",
    "all_true",
    "barrier",
    "broadcast_object",
    "current_dist_info",
    "destroy_distributed",
    "init_distributed",
    "process_group",
    "unwrap_model",
    "wrap_model",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the job.

    Attributes:
        rank: Global rank, 0..world_size-1.
        world_size: Number of processes.
        local_rank: Rank on this machine (index of its CUDA device).
        device: The device this process trains on.
    """

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Whether this process writes files, logs and evaluates."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(
    backend: str | None = None, *, device: str | None = None, timeout_s: float = 1800.0
) -> DistInfo:
    """Joins torchrun's process group, or describes a single process when there is none.

    Args:
        backend: ``nccl`` or ``gloo``; None picks NCCL when CUDA is available and Gloo otherwise.
        device: Force ``cpu`` (e.g. a Gloo test on a GPU machine); None picks ``cuda:LOCAL_RANK``
            when CUDA is available, else CPU.
        timeout_s: Collective timeout (evaluation on rank 0 keeps the others waiting).

    Raises:
        ValueError: An unknown backend, or NCCL without CUDA.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    if use_cuda:
        torch_device = torch.device("cuda", local_rank)
        torch.cuda.set_device(torch_device)
    else:
        torch_device = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        backend = backend or ("nccl" if use_cuda else "gloo")
        if backend not in ("nccl", "gloo"):
            raise ValueError(f"unknown distributed backend {backend!r}; choose 'nccl' or 'gloo'")
        if backend == "nccl" and not use_cuda:
            raise ValueError("backend 'nccl' needs CUDA devices; use 'gloo' on CPU")
        dist.init_process_group(
            backend=backend,
            rank=rank,
            world_size=world_size,
            timeout=timedelta(seconds=timeout_s),
            device_id=torch_device if backend == "nccl" else None,
        )
        logger.info("rank %d/%d joined the %s process group", rank, world_size, backend)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=torch_device)


def current_dist_info(device: torch.device | str | None = None) -> DistInfo:
    """The `DistInfo` of an already initialised process group (or of a single process)."""
    torch_device = torch.device(device) if device is not None else torch.device("cpu")
    if not dist.is_initialized():
        return DistInfo(rank=0, world_size=1, local_rank=0, device=torch_device)
    local_rank = int(os.environ.get("LOCAL_RANK", str(dist.get_rank())))
    return DistInfo(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=local_rank,
        device=torch_device,
    )


def destroy_distributed(*, synchronize: bool = True) -> None:
    """Leaves the process group, if one was joined.

    Args:
        synchronize: Wait at a barrier first. Without it a rank that finishes early closes its
            connections while a peer may still be reading the last collective's data, and a
            Gloo peer then aborts its process. Pass False on an error path: a rank that failed
            would keep the others at the barrier until the collective timeout.
    """
    if not dist.is_initialized():
        return
    if synchronize and dist.get_world_size() > 1:
        dist.barrier()
    dist.destroy_process_group()


@contextmanager
def process_group(
    backend: str | None = None, *, device: str | None = None, timeout_s: float = 1800.0
) -> Iterator[DistInfo]:
    """`init_distributed` for the length of a ``with`` block, leaving the group it joined.

    A group that was already initialised when the block began is left alone. On the way out
    the ranks meet at a barrier when the block ended normally, and leave at once when it
    raised (see `destroy_distributed`).
    """
    joined_here = not dist.is_initialized()
    info = init_distributed(backend, device=device, timeout_s=timeout_s)
    if not (joined_here and dist.is_initialized()):
        yield info
        return
    try:
        yield info
    except BaseException:
        destroy_distributed(synchronize=False)
        raise
    destroy_distributed()


def wrap_model(
    model: nn.Module, info: DistInfo, *, find_unused_parameters: bool | None = None
) -> nn.Module:
    """Wraps `model` (already on ``info.device``) in DDP when the job has several processes.

    Args:
        model: The model.
        info: This process's place in the job.
        find_unused_parameters: DDP's option; None turns it on only when the model lists
            ``detached_parameters`` (parameters that no loss reaches by design, see
            `reid_models.base.ReIDModel`): the search costs a graph traversal per step.
    """
    if not info.distributed:
        return model
    if find_unused_parameters is None:
        find_unused_parameters = bool(getattr(model, "detached_parameters", ()))
    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return DistributedDataParallel(
        model, device_ids=device_ids, find_unused_parameters=find_unused_parameters
    )


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside a DDP (or DataParallel) wrapper; `model` itself otherwise."""
    return getattr(model, "module", model)


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _collective_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_true(flag: bool) -> bool:
    """Whether `flag` holds on every rank (one all-reduce of a scalar)."""
    if not _active():
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=_collective_device())
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item() > 0.5)


def all_mean(values: dict[str, float]) -> dict[str, float]:
    """Per-key mean over ranks; every rank must pass the same keys in the same order."""
    if not _active() or not values:
        return dict(values)
    keys = list(values)
    tensor = torch.tensor([float(values[k]) for k in keys], device=_collective_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    tensor /= dist.get_world_size()
    return dict(zip(keys, tensor.tolist(), strict=True))


def broadcast_object(obj: Any, *, src: int = 0) -> Any:
    """`obj` of rank `src` on every rank (picklable objects)."""
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's `obj`, indexed by rank."""
    if not _active():
        return [obj]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier() -> None:
    """Waits for every rank (no-op for a single process)."""
    if _active():
        dist.barrier()
