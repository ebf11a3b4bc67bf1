"""Held-out evaluation of a tuned policy against its base, with any text scorer (no Django).

The mock-sentiment experiment (issue 6) judges policies by a noise-free scorer
``scorer(text, context) -> float`` (VADER for ``sentiment``, word 3-gram overlap for ``copy``):

- ``win_rate``: the policy's sample beats the base's sample on the same held-out query (a tie
  counts half; ``tie_share`` says how many tied);
- ``mean_score``: the scorer's mean over the policy's samples;
- ``kl``: KL from the base in nats per response, Σ_t log π − log ρ on the policy's own samples,
  both at the sampling temperature.

Also here: corpus prefixes as queries (train / held-out queries never share a prefix), the
reward model's held-out accuracy against the scorer, and PPO directly on the scorer (the upper
bound the reward model's policy is compared with).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from training.rlhf.sampling import generate, response_logprobs
from training.rlhf.tokenizer import Tokenizer, as_ids, pad_left

Scorer = Callable[[str, str], float]  # (text, context) -> score


# --- queries -----------------------------------------------------------------------------------


def query_prefix(doc: str, n_bytes: int) -> str | None:
    """The document on one line, its first ``n_bytes`` bytes cut back to a whole word, or None
    when fewer than two words remain."""
    line = " ".join(doc.split())
    raw = line.encode("utf-8")[:n_bytes].decode("utf-8", errors="ignore")
    if len(line) > len(raw):
        raw = raw[: raw.rfind(" ")] if " " in raw else ""
    raw = raw.strip()
    return raw if len(raw.split()) >= 2 else None


def passage(doc: str, n_bytes: int, min_words: int = 8) -> str | None:
    """A longer stretch of the document (a "post" to summarize), or None when it is too short."""
    text = query_prefix(doc, n_bytes)
    return text if text and len(text.split()) >= min_words else None


TLDR = "\nTL;DR:"  # the 2019 summarisation query ends with the post and this cue


def tldr_query(doc: str, n_bytes: int) -> str | None:
    """A summarization-style query: a passage of the document followed by ``TLDR``."""
    text = passage(doc, n_bytes)
    return f"{text}{TLDR}" if text else None


def split_queries(docs: Sequence[str], make: Callable[[str], str | None], held_fraction: float,
                  seed: int) -> tuple[list[str], list[str]]:
    """Train and held-out query texts from distinct documents; a text made from a training
    document is never a held-out query (documents can share a prefix). Both lists are shuffled."""
    order = list(range(len(docs)))
    random.Random(seed).shuffle(order)
    n_held = max(1, round(len(docs) * held_fraction))
    held_docs, train_docs = [docs[i] for i in order[:n_held]], [docs[i] for i in order[n_held:]]
    train = {q for q in map(make, train_docs) if q}
    held = {q for q in map(make, held_docs) if q} - train
    rng = random.Random(seed + 1)
    train_list, held_list = sorted(train), sorted(held)
    rng.shuffle(train_list)
    rng.shuffle(held_list)
    return train_list, held_list


# --- sampling and scoring ----------------------------------------------------------------------


@dataclass
class Samples:
    queries: Tensor  # (N, Lq) left-padded
    query_mask: Tensor  # (N, Lq)
    responses: Tensor  # (N, T)
    logprobs: Tensor  # (N, T) temperature-scaled log-probs of the sampled tokens
    texts: list[str]


@torch.no_grad()
def sample_responses(model, tokenizer: Tokenizer, queries: Sequence[str | Sequence[int]], *, query_length: int,
                     response_length: int, temperature: float, seed: int, batch_size: int = 256) -> Samples:
    """One response per query (an LM or a PolicyWithValue)."""
    q, qm = pad_left([as_ids(tokenizer, x) for x in queries], query_length, tokenizer.pad_token_id)
    generator = torch.Generator().manual_seed(seed)
    responses, logps = [], []
    for start in range(0, q.shape[0], batch_size):
        sl = slice(start, start + batch_size)
        gen = generate(model, q[sl], qm[sl], response_length, temperature, generator)
        responses.append(gen.responses)
        logps.append(gen.logprobs)
    responses_t = torch.cat(responses)
    texts = [tokenizer.decode(r) for r in responses_t.tolist()]
    return Samples(q, qm, responses_t, torch.cat(logps), texts)


def score_texts(scorer: Scorer, texts: Sequence[str], contexts: Sequence[str]) -> Tensor:
    return torch.tensor([float(scorer(t, c)) for t, c in zip(texts, contexts)], dtype=torch.float32)


@torch.no_grad()
def kl_from_base(base_lm, samples: Samples, temperature: float, batch_size: int = 256) -> Tensor:
    """Per response: Σ_t log π(y_t) − log ρ(y_t) on the policy's samples, (N,)."""
    ids = torch.cat([samples.queries, samples.responses], 1)
    mask = torch.cat([samples.query_mask, torch.ones_like(samples.responses)], 1)
    start = samples.queries.shape[1]
    ref = response_logprobs(base_lm, ids, mask, start, temperature, batch_size)  # never all rows' logits at once
    return (samples.logprobs - ref).sum(-1)


def compare(scores: Tensor, base_scores: Tensor) -> dict[str, float]:
    """Win rate of ``scores`` over ``base_scores`` (paired; a tie counts half)."""
    wins = (scores > base_scores).float()
    ties = (scores == base_scores).float()
    return {"win_rate": (wins + 0.5 * ties).mean().item(), "strict_win_share": wins.mean().item(),
            "tie_share": ties.mean().item()}


def evaluate_policy(policy, base_lm, tokenizer: Tokenizer, queries: Sequence[str], base_scores: Tensor,
                    scorer: Scorer, *, query_length: int, response_length: int, temperature: float = 0.7,
                    seed: int = 0) -> tuple[dict[str, float], Samples]:
    """The policy's win rate over the base's samples ``base_scores`` on the same held-out queries,
    its mean score and its KL from the base. Returns the figures and the policy's samples."""
    samples = sample_responses(policy, tokenizer, queries, query_length=query_length,
                               response_length=response_length, temperature=temperature, seed=seed)
    scores = score_texts(scorer, samples.texts, queries)
    kl = kl_from_base(base_lm, samples, temperature)
    return {**compare(scores, base_scores), "mean_score": scores.mean().item(), "kl": kl.mean().item(),
            "n": len(queries)}, samples


# --- the reward model against the scorer -------------------------------------------------------


@torch.no_grad()
def reward_accuracy(rewards: Tensor, true_scores: Tensor) -> dict[str, float]:
    """Held-out best-of-K comparisons: ``pairwise_accuracy`` (pairs with different true scores
    that the rewards order the same way; chance 0.5) over ``n_pairs``, and ``true_best_accuracy``
    (argmax agrees, comparisons with a unique true best; chance 1/K). Both (N, K)."""
    k = true_scores.shape[1]
    i, j = torch.triu_indices(k, k, offset=1)
    dt, dr = true_scores[:, i] - true_scores[:, j], rewards[:, i] - rewards[:, j]
    differs = dt != 0
    pairwise = ((dt > 0) == (dr > 0))[differs].float()
    unique = (true_scores == true_scores.max(-1, keepdim=True).values).sum(-1) == 1
    best = (rewards.argmax(-1) == true_scores.argmax(-1))[unique].float()
    return {"pairwise_accuracy": pairwise.mean().item() if len(pairwise) else float("nan"),
            "n_pairs": int(differs.sum()),
            "true_best_accuracy": best.mean().item() if len(best) else float("nan"),
            "n_comparisons": int(true_scores.shape[0])}


# --- PPO directly on the scorer (the upper bound) ----------------------------------------------


def scorer_reward(scorer: Scorer, tokenizer: Tokenizer, base_scores: Tensor):
    """The scorer as a PPO reward function on token ids, normalised like a reward model (mean 0,
    std 1 on the base's samples ``base_scores``). The context is the decoded query."""
    mean, std = base_scores.mean().item(), base_scores.std().clamp(min=1e-6).item()

    def reward(queries: Tensor, query_mask: Tensor, responses: Tensor, response_mask: Tensor) -> Tensor:
        out = []
        for q, qm, r, rm in zip(queries.tolist(), query_mask.tolist(), responses.tolist(), response_mask.tolist()):
            context = tokenizer.decode([t for t, m in zip(q, qm) if m])
            out.append(scorer(tokenizer.decode([t for t, m in zip(r, rm) if m]), context))
        return (torch.tensor(out, dtype=torch.float32, device=responses.device) - mean) / std

    return reward
