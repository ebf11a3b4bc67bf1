"""Plain data records passed into the library, and their JSONL readers. Torch is imported for type
checking only: the web side builds ``Comparison`` records (training/selectors/reward_fit.py), and web processes
never import torch."""

from __future__ import annotations

import json
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

Text = str | Sequence[int]  # text, or token ids already encoded with the model's tokenizer


@dataclass
class Comparison:
    """One labeled question: a query, K samples, and the index of the sample the labeler chose.

    Several labels on one question are several ``Comparison`` rows; give them one ``group`` (e.g. the
    question's id) so the held-out split keeps them on one side. ``None``: the row is its own group.
    """

    query: Text
    samples: Sequence[Text]
    best: int
    group: Hashable | None = None
    # K=2 only: the 2020 9-point scale, canonical (1 = sample 0 definitely better … 9 = sample 1; 5 = no
    # preference), for losses.pairwise_confidence_loss; None for a plain choice.
    confidence: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.best < len(self.samples):
            raise ValueError(f"best={self.best} is not an index into {len(self.samples)} samples")
        if self.confidence is not None:
            c = self.confidence
            if len(self.samples) != 2 or isinstance(c, bool) or not isinstance(c, int) or not 1 <= c <= 9:
                raise ValueError(f"confidence={c!r}: an integer from 1 to 9, on pairs (K=2) only")
            if c != 5 and int(c > 5) != self.best:
                raise ValueError(f"confidence={c} prefers the other sample than best={self.best}")


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def load_comparisons(path: str | Path) -> list[Comparison]:
    """Comparisons from JSONL in the 2019 layout ``{"query", "sample0".."sample{K-1}", "best"}``; an optional
    ``comparison_id`` (our exports write it) groups the labels of one question for the held-out split, an
    optional ``confidence`` (K=2: the 9-point scale, canonical) is kept on the record."""
    out = []
    for n, row in enumerate(read_jsonl(path), start=1):
        k = sum(1 for key in row if key.startswith("sample") and key[6:].isdigit())
        if k < 2 or "query" not in row or "best" not in row:
            raise ValueError(f"{path}:{n}: need 'query', 'best' and sample0..sample{{K-1}} with K >= 2")
        samples = [row[f"sample{i}"] for i in range(k)]
        group = row.get("comparison_id")
        confidence = row.get("confidence")
        out.append(Comparison(query=row["query"], samples=samples, best=int(row["best"]), group=group,
                              confidence=None if confidence is None else int(confidence)))
    return out


def load_queries(path: str | Path) -> list[Text]:
    """Queries from JSONL rows ``{"query": text or ids}``."""
    return [row["query"] for row in read_jsonl(path)]


def load_references(path: str | Path) -> list[tuple[Text, Text]]:
    """(query, reference response) pairs from JSONL rows ``{"query", "reference"}`` (2020 normalisation)."""
    return [(row["query"], row["reference"]) for row in read_jsonl(path)]


@dataclass
class Rollout:
    """One PPO batch on this rank: what was sampled and everything measured on it.

    Tensors are (B, Lq), (B, T) or (B,); ``rewards`` and ``kl`` are filled in by scoring.
    """

    queries: Tensor  # (B, Lq) left-padded
    query_mask: Tensor  # (B, Lq)
    responses: Tensor  # (B, T) as sampled (PPO trains on all T tokens, 2019)
    logprobs: Tensor  # (B, T) pi_old, temperature-scaled
    ref_logprobs: Tensor  # (B, T) rho, temperature-scaled
    values: Tensor  # (B, T) value before each response token
    response_mask: Tensor | None = None  # (B, T) tokens kept by truncation (what the reward saw)
    valid: Tensor | None = None  # (B,) truncation token found
    scores: Tensor | None = None  # (B,) reward (or penalty), before any debug negation
    rewards: Tensor | None = None  # (B, T) per-token rewards with the KL penalty
    kl: Tensor | None = None  # (B, T) logprobs - ref_logprobs

    def take(self, index: Tensor) -> Rollout:
        """Rows ``index`` of every tensor."""
        return Rollout(**{k: (v[index] if v is not None else None) for k, v in vars(self).items()})
