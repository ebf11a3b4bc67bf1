"""Advantage estimation and whitening for PPO (lm-human-preferences 2019, ``train_policy.py``).

All statistics use the population variance (TF ``moments`` semantics, ALGORITHMS.md §2.12).
"""

from __future__ import annotations

import torch
from torch import Tensor

WHITEN_EPS = 1e-8


def masked_mean(x: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean of ``x`` over the positions where ``mask`` is true (all positions when ``mask`` is None)."""
    if mask is None:
        return x.mean()
    mask = mask.to(x.dtype)
    return (x * mask).sum() / mask.sum()


def masked_var(x: Tensor, mask: Tensor | None = None) -> Tensor:
    """Population variance of ``x`` over the masked positions (divides by n, never n - 1)."""
    mean = masked_mean(x, mask)
    return masked_mean((x - mean) ** 2, mask)


def whiten(x: Tensor, shift_mean: bool = True) -> Tensor:
    """Scale ``x`` to population variance 1 over all elements; also centre it when ``shift_mean``.

    ``shift_mean=False`` keeps the original mean (2019 reward whitening).
    """
    return masked_whiten(x, None, shift_mean=shift_mean)


def masked_whiten(x: Tensor, mask: Tensor | None, shift_mean: bool = True) -> Tensor:
    """``whiten`` with statistics taken over the masked positions only; masked-out entries pass through."""
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    out = (x - mean) * torch.rsqrt(var + WHITEN_EPS)
    if not shift_mean:
        out = out + mean
    if mask is not None:
        out = torch.where(mask.bool(), out, x)
    return out


def compute_gae(rewards: Tensor, values: Tensor, gamma: float = 1.0, lam: float = 0.95) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016, eq. 16) over the last axis.

    rewards, values: (B, T). The value after the last token is 0 (episodes always end at T).
    Returns ``(advantages, returns)``, both (B, T), with ``returns = advantages + values``.
    """
    T = rewards.shape[-1]
    next_values = torch.cat([values[..., 1:], torch.zeros_like(values[..., :1])], dim=-1)  # (B, T)
    deltas = rewards + gamma * next_values - values  # (B, T)
    advantages = torch.zeros_like(rewards)
    last = torch.zeros_like(rewards[..., 0])  # (B,)
    # A backwards loop over T (tens of tokens) is cheaper than building a (T, T) discount matrix.
    for t in reversed(range(T)):
        last = deltas[..., t] + gamma * lam * last
        advantages[..., t] = last
    return advantages, advantages + values
