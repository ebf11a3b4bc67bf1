"""Optimiser and learning-rate schedule shared by reward fitting and PPO."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor


class TFAdam(torch.optim.Optimizer):
    """Adam with TensorFlow 1 epsilon semantics, as in the 2019 code (ALGORITHMS.md §2.12).

    ``p -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``: epsilon is added to the raw
    sqrt(v), not the bias-corrected one, so early steps are smaller than ``torch.optim.Adam``'s.
    """

    def __init__(self, params: Iterable[Tensor], lr: float, betas=(0.9, 0.999), eps: float = 1e-5) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            beta1, beta2 = group["betas"]
            for p in params:
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
            t = float(self.state[params[0]]["step"])
            step_size = group["lr"] * math.sqrt(1 - beta2**t) / (1 - beta1**t)
            # Sharded (FSDP's DTensor) and plain parameters in separate foreach calls: the kernels take one kind.
            for kind in (True, False):
                subset = [p for p in params if _is_dtensor(p) == kind]
                if not subset:
                    continue
                grads = [p.grad for p in subset]
                exp_avgs = [self.state[p]["exp_avg"] for p in subset]
                exp_avg_sqs = [self.state[p]["exp_avg_sq"] for p in subset]
                torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
                torch._foreach_mul_(exp_avg_sqs, beta2)
                torch._foreach_addcmul_(exp_avg_sqs, grads, grads, value=1 - beta2)
                denom = torch._foreach_sqrt(exp_avg_sqs)
                torch._foreach_add_(denom, group["eps"])
                torch._foreach_addcdiv_(subset, exp_avgs, denom, value=-step_size)
        return None


def _is_dtensor(tensor: Tensor) -> bool:
    return type(tensor).__name__ == "DTensor"


def make_optimizer(params: Iterable[Tensor], lr: float, eps: float, style: str) -> torch.optim.Optimizer:
    """``style="tf"`` (2019 semantics) or ``"torch"`` (``torch.optim.Adam``), default betas."""
    params = [p for p in params if p.requires_grad]
    if style == "tf":
        return TFAdam(params, lr=lr, eps=eps)
    if style == "torch":
        return torch.optim.Adam(params, lr=lr, eps=eps)
    raise ValueError(f"adam_style must be 'tf' or 'torch', got {style!r}")


def scheduled_lr(base_lr: float, step: int, total_steps: int, schedule: str = "linear") -> float:
    """Learning rate before update ``step`` of ``total_steps``: linear to 0 (2019) or cosine (2020)."""
    frac = min(step / max(total_steps, 1), 1.0)
    if schedule == "linear":
        return base_lr * (1.0 - frac)
    if schedule == "cosine":
        return base_lr * 0.5 * (1.0 + math.cos(math.pi * frac))
    if schedule == "constant":
        return base_lr
    raise ValueError(f"unknown lr schedule {schedule!r}")


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
