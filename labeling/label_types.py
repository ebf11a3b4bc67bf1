"""Label types: the question a labeler is asked, and how an answer becomes training targets.

After lm-human-preferences' `label_types.py`: the label type ties what was shown to what the
loss trains on, so exports and training read answers the same way. We have one type today:

best-of-K: one query, K samples in canonical order (Comparison.samples by position), the
labeler picks the best. Its training targets are
- the K-way record `{"query", "sample0".."sample{K-1}", "best"}` (2019 layout), trained with the
  softmax loss over K rewards (`training/rlhf/losses.best_of_k_loss`; K=2 is Bradley–Terry), and
- the K−1 pairs it implies, `{"prompt", "chosen", "rejected"}`: the chosen sample beats each of
  the others. (Pairs lose the information that the rejected samples were compared with each
  other only through the chosen one; that is all a best-of-K answer says about them.)

Pure Python on purpose: no Django imports, so training code and tests can use it on plain data.
A skipped label has no training target.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

@dataclass(frozen=True)
class BestOfKRecord:
    """One answered best-of-K question in canonical order; `best` indexes `samples`."""

    query: str
    samples: tuple[str, ...]
    best: int

    def as_2019(self) -> dict:
        """The 2019 layout: `{"query", "sample0".."sample{K-1}", "best"}`."""
        row: dict = {"query": self.query}
        row.update({f"sample{i}": text for i, text in enumerate(self.samples)})
        row["best"] = self.best
        return row


@dataclass(frozen=True)
class PreferencePair:
    """`chosen` was preferred to `rejected` as a continuation of `prompt`."""

    prompt: str
    chosen: str
    rejected: str

    def as_dict(self) -> dict:
        return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}


class BestOfK:
    """Pick the best of K samples (2 ≤ K ≤ 8). The answer is the chosen canonical index."""

    name = "best_of_k"
    K_MIN, K_MAX = 2, 8

    def __init__(self, k: int):
        if isinstance(k, bool) or not isinstance(k, int) or not self.K_MIN <= k <= self.K_MAX:
            raise ValueError(f"K must be an integer from {self.K_MIN} to {self.K_MAX}, got {k!r}.")
        self.k = k

    def question_keys(self) -> list[str]:
        """The keys a 2019-layout line of this type must have."""
        return ["query", *[f"sample{i}" for i in range(self.k)], "best"]

    def is_valid_answer(self, best) -> bool:
        return not isinstance(best, bool) and isinstance(best, int) and 0 <= best < self.k

    def record(self, *, query: str, samples: Sequence[str], best: int) -> BestOfKRecord:
        """The K-way training record of one answer; raises ValueError on a malformed one."""
        if len(samples) != self.k:
            raise ValueError(f"Expected {self.k} samples, got {len(samples)}.")
        if not self.is_valid_answer(best):
            raise ValueError(f"best must be an integer from 0 to {self.k - 1}, got {best!r}.")
        return BestOfKRecord(query=query, samples=tuple(samples), best=best)

    def pairs(self, record: BestOfKRecord) -> list[PreferencePair]:
        """The K−1 pairs a K-way answer implies, in canonical order of the rejected sample."""
        chosen = record.samples[record.best]
        return [
            PreferencePair(prompt=record.query, chosen=chosen, rejected=text)
            for i, text in enumerate(record.samples)
            if i != record.best
        ]


def best_of_k_record_from_2019(row: dict, k: int) -> BestOfKRecord:
    """Read a 2019-layout dict (texts already decoded) back into a record."""
    return BestOfK(k).record(query=row["query"], samples=[row[f"sample{i}"] for i in range(k)], best=row["best"])


class PairwiseConfidence:
    """K=2 on a 9-point scale (2020): 1 = sample 0 definitely better, 2–4 less and less sure, 5 = no
    preference, 6–9 = sample 1 better, more and more sure (9: definitely). The scale is stored
    canonical (relative to Comparison.samples' order, like Label.chosen_index); the page shows it in
    display order and `to_canonical` maps it. The chosen side must agree with the scale (1–4 → 0,
    6–9 → 1); 5 goes with either side (the page sends the sample shown first, a random canonical one).

    Training target: the probability that sample 1 is better, `(c − 1) / 8` (1 → 0, 5 → ½, 9 → 1),
    trained with `training/rlhf/losses.pairwise_confidence_loss` (soft labels, optional margin).
    Agreement statistics read the chosen side only."""

    name = "pairwise_confidence"
    K = 2
    LOW, MIDDLE, HIGH = 1, 5, 9

    @classmethod
    def is_valid(cls, confidence) -> bool:
        return not isinstance(confidence, bool) and isinstance(confidence, int) and cls.LOW <= confidence <= cls.HIGH

    @classmethod
    def side(cls, confidence: int) -> int | None:
        """The sample the scale point prefers (0 or 1), None for the middle."""
        if not cls.is_valid(confidence):
            raise ValueError(f"confidence must be an integer from 1 to 9, got {confidence!r}.")
        return None if confidence == cls.MIDDLE else int(confidence > cls.MIDDLE)

    @classmethod
    def agrees(cls, confidence: int, chosen: int) -> bool:
        side = cls.side(confidence)
        return side is None or side == chosen

    @classmethod
    def to_canonical(cls, confidence: int, display_order: Sequence[int]) -> int:
        """A point of the scale as shown (1 = the sample shown first definitely better) in canonical terms."""
        if not cls.is_valid(confidence):
            raise ValueError(f"confidence must be an integer from 1 to 9, got {confidence!r}.")
        return confidence if list(display_order) == [0, 1] else cls.LOW + cls.HIGH - confidence

    @classmethod
    def target(cls, confidence: int) -> float:
        """P(sample 1 is better) as a soft label: (c − 1) / 8."""
        if not cls.is_valid(confidence):
            raise ValueError(f"confidence must be an integer from 1 to 9, got {confidence!r}.")
        return (confidence - cls.LOW) / (cls.HIGH - cls.LOW)

    @classmethod
    def from_2020(cls, choice: int | None, value) -> int | None:
        """`extra.confidence` of a 2020 line, read on the same scale (1 = summaries[0] definitely better …
        9 = summaries[1]); None when absent or when it contradicts `choice` (e.g. choice 0 with 8: a
        file written on another convention, kept as a plain choice rather than guessed)."""
        if choice is None or not cls.is_valid(value) or not cls.agrees(value, choice):
            return None
        return value
