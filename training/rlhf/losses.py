"""Loss functions: reward-model comparison losses and the PPO clipped objectives.

Shapes: B comparisons or rollouts, K samples per comparison, T response tokens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def best_of_k_loss(rewards: Tensor, best: Tensor) -> Tensor:
    """Softmax NLL that sample ``best`` is the labeled one (Ziegler et al. 2019, eq. 1).

    rewards: (B, K) scalar rewards used as logits; best: (B,) int64 indices of the labeled sample.
    Returns mean over B of ``logsumexp_i r_i - r_best``. K=2 is Bradley-Terry (``pairwise_loss``).
    """
    picked = rewards.gather(-1, best.long().unsqueeze(-1)).squeeze(-1)  # (B,)
    return (torch.logsumexp(rewards, dim=-1) - picked).mean()


def pairwise_loss(chosen: Tensor, rejected: Tensor) -> Tensor:
    """Bradley-Terry loss ``-log sigmoid(r_chosen - r_rejected)`` (Stiennon et al. 2020, §3.4).

    chosen, rejected: (B,) rewards. Returns the mean of ``softplus(rejected - chosen)``.
    """
    return F.softplus(rejected - chosen).mean()


def pairwise_confidence_loss(rewards: Tensor, confidence: Tensor, margin: float = 0.0) -> Tensor:
    """Bradley-Terry with soft labels from the 2020 9-point scale (labeling/label_types.PairwiseConfidence).

    rewards: (B, 2) in canonical order; confidence: (B,) integers 1..9 (1 = sample 0 definitely better,
    5 = no preference, 9 = sample 1 definitely better). The target probability that sample 1 is better
    is ``p = (c - 1) / 8``; with ``d = r1 - r0 - m`` the loss is the mean of the binary cross-entropy
    ``p * softplus(-d) + (1 - p) * softplus(d)``. ``margin`` adds a signed margin ``m = margin * (c - 5) / 4``
    (a sure answer asks for a larger reward gap, Touvron et al. 2023's margin loss); 0 is soft labels only.
    At c = 1 or 9 with no margin it equals ``pairwise_loss``.
    """
    if rewards.dim() != 2 or rewards.shape[-1] != 2:
        raise ValueError(f"rewards must be (B, 2), got {tuple(rewards.shape)}")
    c = confidence.to(rewards.dtype)
    if bool(((c < 1) | (c > 9) | (c != c.round())).any()):
        raise ValueError("confidence must be integers from 1 to 9")
    p = (c - 1.0) / 8.0  # (B,) P(sample 1 is better)
    diff = rewards[:, 1] - rewards[:, 0] - margin * (c - 5.0) / 4.0  # (B,)
    return (p * F.softplus(-diff) + (1.0 - p) * F.softplus(diff)).mean()


def ppo_policy_loss(
    logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, cliprange: float = 0.2
) -> tuple[Tensor, Tensor]:
    """PPO clipped surrogate loss (Schulman et al. 2017, eq. 7), as a quantity to minimise.

    logprobs, old_logprobs, advantages: (B, T). Returns ``(loss, clipfrac)`` where loss is
    ``mean(max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps)))`` and clipfrac is the share of
    elements where the clipped term is the larger one.
    """
    ratio = torch.exp(logprobs - old_logprobs)  # (B, T)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = torch.maximum(unclipped, clipped).mean()
    clipfrac = (clipped > unclipped).float().mean()
    return loss, clipfrac.detach()


def ppo_value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, cliprange_value: float = 0.2
) -> tuple[Tensor, Tensor]:
    """Clipped value loss of the 2019 code: ``0.5 * mean(max((V - R)^2, (V_clip - R)^2))``.

    values, old_values, returns: (B, T); ``V_clip`` keeps V within ``cliprange_value`` of the rollout
    value. Returns ``(loss, clipfrac)``, clipfrac being the share where the clipped error is larger.
    """
    clipped_values = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    err = (values - returns) ** 2  # (B, T)
    err_clipped = (clipped_values - returns) ** 2  # (B, T)
    loss = 0.5 * torch.maximum(err, err_clipped).mean()
    clipfrac = (err_clipped > err).float().mean()
    return loss, clipfrac.detach()
