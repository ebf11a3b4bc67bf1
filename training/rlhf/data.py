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
    # A ranking of all K samples (labeling/label_types.Ranking), canonical: 1 = best, equal ranks tie, dense
    # ([2, 1, 2, 3]); `best` has rank 1. Trained on with losses.ranking_loss or plackett_luce_loss.
    ranks: Sequence[int] | None = None
    # Per-sample 7-point ratings by axis (labeling/label_types.LikertAxes), canonical: {axis: [1..7 per sample]}.
    likert: dict[str, Sequence[int]] | None = None
    # The labeler said every sample is bad (`best` is then the least bad); None: the project did not offer it.
    none_acceptable: bool | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.best < len(self.samples):
            raise ValueError(f"best={self.best} is not an index into {len(self.samples)} samples")
        k = len(self.samples)
        if self.ranks is not None:
            ranks = self.ranks
            if not isinstance(ranks, Sequence) or isinstance(ranks, str) or len(ranks) != k or not all(
                    _is_int(r) for r in ranks):
                raise ValueError(f"ranks={ranks!r}: one integer rank per sample ({k}), 1 = best")
            tiers = sorted(set(ranks))
            if tiers != list(range(1, len(tiers) + 1)):
                raise ValueError(f"ranks={list(ranks)}: ranks start at 1 and skip none (equal ranks tie)")
            if len(tiers) < 2:
                # Ties everywhere order nothing; the labeling page refuses it too (label_types.Ranking.errors).
                raise ValueError(f"ranks={list(ranks)}: every sample tied, rank at least one above another")
            if ranks[self.best] != 1:
                raise ValueError(f"ranks={list(ranks)}: best={self.best} has rank {ranks[self.best]}, not 1")
        if self.likert is not None:
            if not isinstance(self.likert, dict):
                raise ValueError(f"likert={self.likert!r}: a mapping {{axis: [rating 1..7 per sample]}}")
            for axis, ratings in self.likert.items():
                if not isinstance(axis, str) or not isinstance(ratings, Sequence) or isinstance(ratings, str) \
                        or len(ratings) != k or not all(_is_int(r) and 1 <= r <= 7 for r in ratings):
                    raise ValueError(f"likert[{axis!r}]={ratings!r}: one rating from 1 to 7 per sample ({k})")
        if self.none_acceptable is not None and not isinstance(self.none_acceptable, bool):
            raise ValueError(f"none_acceptable={self.none_acceptable!r}: true, false or null")
        if self.confidence is not None:
            c = self.confidence
            if len(self.samples) != 2 or isinstance(c, bool) or not isinstance(c, int) or not 1 <= c <= 9:
                raise ValueError(f"confidence={c!r}: an integer from 1 to 9, on pairs (K=2) only")
            if c != 5 and int(c > 5) != self.best:
                raise ValueError(f"confidence={c} prefers the other sample than best={self.best}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_jsonl(path: str | Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def load_comparisons(path: str | Path) -> list[Comparison]:
    """Comparisons from JSONL in the 2019 layout ``{"query", "sample0".."sample{K-1}", "best"}``; an optional
    ``comparison_id`` (our exports write it) groups the labels of one question for the held-out split; the
    optional answer parts our "2019" export writes are kept on the record: ``confidence`` (K=2: the 9-point
    scale), ``ranks``, ``likert`` and ``none_acceptable`` (all canonical, see ``Comparison``; null = absent).
    A bad row is a ValueError naming the file and line."""
    out = []
    for n, row in enumerate(read_jsonl(path), start=1):
        k = sum(1 for key in row if key.startswith("sample") and key[6:].isdigit())
        if k < 2 or "query" not in row or "best" not in row:
            raise ValueError(f"{path}:{n}: need 'query', 'best' and sample0..sample{{K-1}} with K >= 2")
        samples = [row[f"sample{i}"] for i in range(k)]
        group = row.get("comparison_id")
        confidence = row.get("confidence")
        try:
            out.append(Comparison(query=row["query"], samples=samples, best=int(row["best"]), group=group,
                                  confidence=None if confidence is None else int(confidence),
                                  ranks=row.get("ranks"), likert=row.get("likert"),
                                  none_acceptable=row.get("none_acceptable")))
        except ValueError as error:
            raise ValueError(f"{path}:{n}: {error}") from error
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
