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


def _check_ranks(rewards: Tensor, ranks: Tensor, name: str = "ranks") -> None:
    if rewards.dim() != 2 or ranks.shape != rewards.shape:
        raise ValueError(f"rewards and {name} must both be (B, K), got {tuple(rewards.shape)} and {tuple(ranks.shape)}")


def _mean_over_informative(per_row: Tensor, informative: Tensor) -> Tensor:
    """Mean of ``per_row`` (B,) over the rows where ``informative`` (B,) bool; 0 (still in the graph) for none.
    ``where`` rather than indexing keeps it free of a host sync and of NaN gradients from empty rows."""
    total = torch.where(informative, per_row, torch.zeros_like(per_row)).sum()
    return total / informative.sum().clamp(min=1).to(per_row.dtype)


def ranking_loss(rewards: Tensor, ranks: Tensor) -> Tensor:
    """InstructGPT's ranking loss (Ouyang et al. 2022, eq. 1) with ties: every strictly ordered pair is a
    Bradley-Terry comparison.

    rewards: (B, K); ranks: (B, K) integers, 1 = best, equal ranks tie (labeling/label_types.Ranking). Per
    comparison the mean over its pairs with ``rank_i < rank_j`` of ``-log sigmoid(r_i - r_j)`` (InstructGPT
    divides by the K-choose-2 pairs so that a prompt weighs the same whatever K; tied pairs give no term and are
    not counted), then the mean over the comparisons that have at least one such pair: an all-tied row (possible
    in Likert ratings, ``likert_ranks``) contributes nothing. No row with a pair: 0. K = 2 without a tie is
    ``pairwise_loss``.
    """
    _check_ranks(rewards, ranks)
    diff = rewards.unsqueeze(-1) - rewards.unsqueeze(-2)  # (B, K, K): r_i - r_j
    better = ranks.unsqueeze(-1) < ranks.unsqueeze(-2)  # (B, K, K): i strictly above j
    terms = torch.where(better, F.softplus(-diff), torch.zeros_like(diff))  # -log sigmoid(r_i - r_j)
    pairs = better.sum(dim=(-2, -1))  # (B,)
    per_row = terms.sum(dim=(-2, -1)) / pairs.clamp(min=1).to(rewards.dtype)
    return _mean_over_informative(per_row, pairs > 0)


def plackett_luce_loss(rewards: Tensor, ranks: Tensor) -> Tensor:
    """Plackett-Luce negative log-likelihood of the tiers, best first, with Breslow's handling of ties.

    rewards: (B, K); ranks: (B, K) as for ``ranking_loss``. Tier by tier from the best, each member of a tier is
    chosen from every sample not yet placed, its tier mates included (Breslow 1974): its term is
    ``logsumexp_{j: rank_j >= rank_i} r_j - r_i``. The last tier is what is left once the others are placed:
    it is chosen over nothing and gives no term (as the last sample of a full Plackett-Luce order), so an
    all-tied row carries no information and contributes nothing. Summed per comparison, then the mean over the
    comparisons with at least two tiers (0 if none). K = 2 without a tie is ``best_of_k_loss``/``pairwise_loss``;
    with no ties at all it is the full Plackett-Luce likelihood (``best_of_k_loss`` is its first factor).
    """
    _check_ranks(rewards, ranks)
    remaining = ranks.unsqueeze(-2) >= ranks.unsqueeze(-1)  # (B, K, K): [i, j] = j not placed before i's tier
    masked = rewards.unsqueeze(-2).masked_fill(~remaining, float("-inf"))  # (B, K, K); the diagonal stays finite
    terms = torch.logsumexp(masked, dim=-1) - rewards  # (B, K): -log P(i chosen from what remains)
    last = ranks == ranks.max(dim=-1, keepdim=True).values  # (B, K): the last tier
    per_row = torch.where(last, torch.zeros_like(terms), terms).sum(dim=-1)  # (B,)
    return _mean_over_informative(per_row, ~last.all(dim=-1))


def likert_ranks(ratings: Tensor) -> Tensor:
    """Dense ranks from per-sample ratings, higher rating = better: (B, K) -> (B, K) int64, 1 = the highest
    rating, equal ratings tie. [[3, 7, 3, 5]] -> [[3, 1, 3, 2]]. Rank of i = 1 + the number of distinct ratings
    above its own (each distinct value counted at its first occurrence), so no sort and no loop."""
    if ratings.dim() != 2:
        raise ValueError(f"ratings must be (B, K), got {tuple(ratings.shape)}")
    k = ratings.shape[-1]
    same = ratings.unsqueeze(-1) == ratings.unsqueeze(-2)  # (B, K, K): [j, m] ratings equal
    earlier = torch.ones(k, k, dtype=torch.bool, device=ratings.device).tril(-1)  # [j, m]: m < j
    first = ~(same & earlier).any(dim=-1)  # (B, K): j is the first sample with its rating
    above = ratings.unsqueeze(-2) > ratings.unsqueeze(-1)  # (B, K, K): [i, j] = rating_j > rating_i
    return 1 + (above & first.unsqueeze(-2)).sum(dim=-1)


def acceptability_loss(best_rewards: Tensor, none_acceptable: Tensor, threshold: float = 0.0) -> Tensor:
    """The "none acceptable" answers as a binary label on the best sample's reward.

    best_rewards: (B,) rewards of each comparison's chosen sample (the least bad one when none is acceptable);
    none_acceptable: (B,) bool. The chosen sample is the best, so "some sample is acceptable" holds exactly when
    its reward is above ``threshold``: the mean of ``BCEWithLogits(r_best - threshold, target = not
    none_acceptable)``. The comparison losses do not change when every reward shifts by a constant; this term
    pins that offset: the threshold is in the units of the rewards given (in a fit, the model's output while it
    trains; the after-step normalisation then moves it, see RewardFitConfig.acceptability_coef).
    """
    if best_rewards.dim() != 1 or none_acceptable.shape != best_rewards.shape:
        raise ValueError(f"best_rewards and none_acceptable must both be (B,), got {tuple(best_rewards.shape)} "
                         f"and {tuple(none_acceptable.shape)}")
    target = (~none_acceptable.bool()).to(best_rewards.dtype)
    return F.binary_cross_entropy_with_logits(best_rewards - threshold, target)


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
