"""Mixed precision (the configs' ``precision``): autocast compute over fp32 master weights.

Every trained model (the policy and its value function in PPO, the reward model in fitting) keeps
fp32 weights and fp32 optimiser state; ``bf16-mixed`` and ``fp16-mixed`` run the forward passes
under ``torch.autocast`` in that dtype (matrix products in low precision, norms, softmax and losses
in fp32). ``fp16-mixed`` also scales the loss dynamically (``torch.amp.GradScaler``) so small
gradients do not underflow. Frozen models (PPO's reference policy and reward model, the base policy
sampled for normalisation) are held in bf16 under ``bf16-mixed`` and in fp32 otherwise.
"""

from __future__ import annotations

import contextlib

import torch

from training.rlhf.config import PRECISIONS

_COMPUTE = {"fp32": None, "bf16-mixed": torch.bfloat16, "fp16-mixed": torch.float16}
assert set(_COMPUTE) == set(PRECISIONS)


def compute_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of ``precision``; None for fp32."""
    return _COMPUTE[precision]


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The forward-pass context: ``torch.autocast`` for the mixed modes, a no-op for fp32."""
    dtype = compute_dtype(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def allow_tf32(allowed: bool, device: torch.device) -> None:
    """The configs' ``tf32`` on CUDA: fp32 matrix products on TF32 tensor cores ("high") or in full fp32
    ("highest"), process-wide as torch keeps it. Nothing on other devices."""
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high" if allowed else "highest")


def frozen_dtype(precision: str) -> torch.dtype:
    """The dtype a frozen model is held in: bf16 under ``bf16-mixed`` (it computes in bf16 anyway), else fp32."""
    return torch.bfloat16 if precision == "bf16-mixed" else torch.float32


def make_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """Dynamic loss scaling for ``fp16-mixed``; a disabled scaler (a pass-through) for the other modes."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16-mixed")


def backward_and_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
    """``loss.backward(); optimizer.step()`` through the scaler (skips a step whose gradients overflowed)."""
    optimizer.zero_grad(set_to_none=True)
    accumulate(loss, scaler)
    step(optimizer, scaler)


def accumulate(loss: torch.Tensor, scaler: torch.amp.GradScaler) -> None:
    """Add one micro-batch's (scaled) gradient to ``.grad``; the caller zeroes first and ``step``s after the last.
    Each micro-batch's loss carries its share of the whole batch, so the sum is the whole batch's gradient."""
    scaler.scale(loss).backward()


def step(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
    """The optimiser step on the accumulated gradients, through the scaler."""
    scaler.step(optimizer)
    scaler.update()
