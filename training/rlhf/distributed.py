"""Thin wrappers over ``torch.distributed`` so the PPO trainer and reward fitting read the same with 1 or N processes.

Launch N processes with ``torchrun --nproc_per_node=N -m training.rlhf ppo CONFIG`` (or ``fit-reward CONFIG``,
see ``reward_model.fit``); each process
calls ``init_distributed`` (gloo on CPU, NCCL on CUDA). With one process every helper is a no-op.

FSDP (``strategy: "fsdp"``): ``shard_blocks`` puts each transformer block of the policy (and of a separate
value model) under PyTorch's ``fully_shard`` (FSDP2) over all ranks; embeddings, final norm and heads stay
whole on every rank and ``average_gradients`` averages theirs. Checkpoints gather the full state
(``full_model_state``, ``full_optimizer_state``) so they load with ``from_pretrained`` and resume exactly.
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
    return {k: v / world_size() for k, v in sum_over_ranks(values, device).items()}


def sum_over_ranks(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Sum each scalar over ranks, in float64 (keys must match on every rank); every rank gets the same sums."""
    if not is_distributed():
        return values
    keys = sorted(values)
    packed = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(packed, op=dist.ReduceOp.SUM)
    return dict(zip(keys, packed.tolist()))


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


def shard_blocks(policy: Any, device: torch.device) -> list[torch.nn.Parameter]:
    """FSDP2 over every rank for each transformer block of ``policy.lm`` (and ``policy.value_model.lm``; a
    ``RewardModel`` has ``lm`` too); returns the trainable parameters left whole (their gradients need
    ``average_gradients``). The blocks' parameters are gathered only when the block is *called*: code that reads
    a block's weights directly (``models.packed_gpt2_raw``) cannot run on a sharded model."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from training.rlhf.models import transformer_blocks

    mesh = init_device_mesh(device.type, (world_size(),))
    trunks = [policy.lm] + ([policy.value_model.lm] if getattr(policy, "value_model", None) is not None else [])
    for trunk in trunks:
        for block in transformer_blocks(trunk):
            fully_shard(block, mesh=mesh)
            block.register_forward_hook(_reshard_after_no_grad)
    return [p for p in policy.parameters() if p.requires_grad and type(p).__name__ != "DTensor"]


def _reshard_after_no_grad(block: torch.nn.Module, args: object, output: object) -> None:
    """Each sharded block is its own FSDP root (the embeddings and heads stay whole), and FSDP2 keeps a root's
    gathered weights after its forward for the backward, which frees them. After a no-grad pass (a rollout, the
    normalisation, an evaluation) nothing would: every rank would hold the whole trunk from then on, and
    ``parameters()`` would list the gathered copies, not the shards the optimiser must update. So those passes
    reshard each block as soon as it has run; training passes keep FSDP's own order."""
    if not torch.is_grad_enabled():
        block.reshard()


def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """Average the gradients of whole (unsharded) parameters over ranks, in one flat all-reduce."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads or not is_distributed():
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def _full_options(**kwargs):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **kwargs)


def full_model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The sharded model's whole state dict on CPU (collective; rank 0 gets it, the others an empty dict)."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_full_options(cpu_offload=True))


def load_full_model_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    set_model_state_dict(model, state, options=_full_options())


def full_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimiser's whole state keyed by parameter names, on CPU (collective; rank 0 gets it)."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer, options=_full_options(cpu_offload=True))


def load_full_optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, optim_state_dict=state, options=_full_options())
