"""Reward shaping: normalisation of reward-model outputs, per-token KL-penalised rewards, and
programmatic rewards for smoke runs (no reward model needed)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

# Called with the scoring inputs of one batch; returns one score per row, (B,).
RewardFn = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]


def fit_normalization(scores: Tensor, target_mean: float = 0.0, target_std: float = 1.0) -> tuple[float, float]:
    """Gain and bias so that ``gain * scores + bias`` has mean ``target_mean`` and population std
    ``target_std`` on these scores (2019 ``train_reward.py``: normalise on samples of the reference
    policy so the KL coefficient keeps the same meaning). scores: (N,) raw reward-model outputs."""
    scores = scores.detach().double()
    mean = scores.mean()
    std = scores.var(unbiased=False).sqrt()
    if not torch.isfinite(std) or std <= 0:
        raise ValueError(f"cannot normalise rewards with population std {std.item()} (N={scores.numel()})")
    gain = target_std / std
    bias = target_mean - gain * mean
    return float(gain), float(bias)


def per_token_rewards(
    logprobs: Tensor,
    ref_logprobs: Tensor,
    scores: Tensor,
    kl_coef: float,
    response_mask: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-token rewards ``-kl_coef * kl_t`` plus the sequence score on the last token.

    logprobs, ref_logprobs: (B, T) log-probs of the sampled tokens under pi_old and rho (both from
    temperature-scaled logits); scores: (B,). ``kl_t = logprobs - ref_logprobs`` (k1 estimator).
    Without ``response_mask`` the score lands on index T - 1 (2019); with a (B, T) mask it lands on
    the last valid token of each row and rewards after it are zero (2020 EOS termination).
    Returns ``(rewards, kl)``, both (B, T).
    """
    kl = logprobs - ref_logprobs  # (B, T)
    rewards = -kl_coef * kl  # (B, T)
    T = rewards.shape[-1]
    if response_mask is None:
        last = torch.full(scores.shape, T - 1, dtype=torch.long, device=rewards.device)  # (B,)
    else:
        mask = response_mask.bool()
        rewards = rewards * mask
        positions = torch.arange(T, device=rewards.device).expand_as(rewards)  # (B, T)
        last = torch.where(mask, positions, torch.zeros_like(positions)).amax(dim=-1)  # (B,)
    rewards = rewards.scatter_add(-1, last.unsqueeze(-1), scores.to(rewards.dtype).unsqueeze(-1))
    return rewards, kl


def programmatic_reward(name: str) -> RewardFn:
    """A reward function computed from token ids, for smoke tests and benchmarks.

    ``"lowercase"``: share of kept response tokens that are ASCII ``a-z`` or space (byte tokenizer).
    ``"token:<id>"``: share of kept response tokens equal to ``<id>``.
    """
    if name == "lowercase":
        allowed = torch.zeros(1 << 16, dtype=torch.bool)
        allowed[ord("a") : ord("z") + 1] = True
        allowed[ord(" ")] = True
        return _share_of_tokens(allowed)
    if name.startswith("token:"):
        allowed = torch.zeros(1 << 20, dtype=torch.bool)
        allowed[int(name.split(":", 1)[1])] = True
        return _share_of_tokens(allowed)
    raise ValueError(f"unknown programmatic reward {name!r}; known: 'lowercase', 'token:<id>'")


def _share_of_tokens(allowed: Tensor) -> RewardFn:
    def reward(queries: Tensor, query_mask: Tensor, responses: Tensor, response_mask: Tensor) -> Tensor:
        hits = allowed.to(responses.device)[responses] & response_mask.bool()  # (B, T)
        return hits.sum(-1).float() / response_mask.sum(-1).clamp(min=1).float()  # (B,)

    return reward
