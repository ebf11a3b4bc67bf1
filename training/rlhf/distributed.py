"""Thin wrappers over ``torch.distributed`` so the PPO trainer reads the same with 1 or N processes.

Launch N processes with ``torchrun --nproc_per_node=N -m training.rlhf ppo CONFIG``; each process
calls ``init_distributed`` (gloo on CPU, NCCL on CUDA). With one process every helper is a no-op.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def init_distributed(device: torch.device) -> torch.device:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1); return this rank's device.

    On CUDA each rank takes ``cuda:LOCAL_RANK``. Does nothing when already initialised or alone.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not is_distributed():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    if device.type == "cuda" and is_distributed():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return device


def mean_over_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average each scalar over ranks (keys must match on every rank)."""
    if not is_distributed():
        return values
    keys = sorted(values)
    packed = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(packed, op=dist.ReduceOp.SUM)
    return {k: v / world_size() for k, v in zip(keys, packed.tolist())}


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any rank; all ranks must call it together."""
    if not is_distributed():
        return flag
    packed = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(packed, op=dist.ReduceOp.MAX)
    return bool(packed.item())


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (a one-element list when alone)."""
    if not is_distributed():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if is_distributed():
        dist.barrier()
