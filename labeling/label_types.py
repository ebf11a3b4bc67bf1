"""Label types: the question a labeler is asked, and how an answer becomes training targets.

After lm-human-preferences' `label_types.py`: the label type ties what was shown to what the
loss trains on, so exports and training read answers the same way. A project has one of three types
(Project.label_type): best-of-K (below), pairwise with the 2020 9-point confidence (`PairwiseConfidence`) and a
ranking of all K with ties (`Ranking`, InstructGPT); any of them may add per-sample Likert ratings
(`LikertAxes`) and the answer "none acceptable" (Label.none_acceptable: the choice is then the least bad;
trained with `training/rlhf/losses.acceptability_loss`).

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


class Ranking:
    """Order all K samples, ties allowed (InstructGPT ranks K outputs of one prompt). The answer is the rank of each
    sample, 1 = best, equal ranks tie, dense (the tiers are 1, 2, 3, … with none missing): `[2, 1, 2, 3]` says
    sample 1 is best, samples 0 and 2 tie behind it, sample 3 is last. Stored canonical in Label.ranking;
    Label.chosen_index is the first sample the labeler put in the top tier, so every agreement statistic that
    reads the chosen sample works on a ranking as on a best-of-K answer.

    On the page the labeler presses the samples' keys in order, best first; `=` before a key puts that sample in
    the same tier as the one pressed before it (`tiers_from_keys`). Training targets: every strictly ordered pair
    (K choose 2 less the tied ones: `pairs`), trained with `training/rlhf/losses.ranking_loss` (all pairs, as
    InstructGPT) or `plackett_luce_loss`. With K = 2 and no tie both equal the pairwise loss."""

    name = "ranking"

    def __init__(self, k: int):
        if isinstance(k, bool) or not isinstance(k, int) or not BestOfK.K_MIN <= k <= BestOfK.K_MAX:
            raise ValueError(f"K must be an integer from {BestOfK.K_MIN} to {BestOfK.K_MAX}, got {k!r}.")
        self.k = k

    def errors(self, ranks) -> str | None:
        """What is wrong with `ranks` as an answer, or None."""
        if not isinstance(ranks, (list, tuple)) or len(ranks) != self.k:
            return f"A ranking gives every one of the {self.k} samples a rank."
        if any(isinstance(r, bool) or not isinstance(r, int) for r in ranks):
            return "Ranks are whole numbers, 1 = best."
        tiers = sorted(set(ranks))
        if tiers != list(range(1, len(tiers) + 1)):
            return "Ranks start at 1 (best) and skip none: equal ranks tie, e.g. [1, 2, 2, 3]."
        if len(tiers) == 1:
            return "A ranking that ties every sample says nothing: rank at least one sample above another."
        return None

    def is_valid(self, ranks) -> bool:
        return self.errors(ranks) is None

    @staticmethod
    def from_tiers(tiers: Sequence[Sequence[int]], k: int) -> list[int]:
        """Ranks from tiers (lists of sample indexes, best tier first): [[1], [0, 2], [3]] → [2, 1, 2, 3]."""
        ranks = [0] * k
        for rank, tier in enumerate(tiers, start=1):
            for i in tier:
                ranks[i] = rank
        return ranks

    @staticmethod
    def to_canonical(ranks: Sequence[int], display_order: Sequence[int]) -> list[int]:
        """Ranks given per display position (what the labeler saw: A, B, …) as ranks per canonical index."""
        return by_canonical_index(ranks, display_order)

    def pairs(self, query: str, samples: Sequence[str], ranks: Sequence[int]) -> list[PreferencePair]:
        """Every strictly ordered pair, better first; tied samples make no pair."""
        return [
            PreferencePair(prompt=query, chosen=samples[i], rejected=samples[j])
            for i in range(self.k) for j in range(self.k)
            if ranks[i] < ranks[j]
        ]


def tiers_from_keys(keys: str, k: int) -> list[list[int]]:
    """The tiers a sequence of key presses builds (the page's rule, kept here so it is tested in one place):
    a letter A–H (or digit 1–8) puts that sample in a new tier below the others; `=` before it puts it in the
    tier of the sample pressed before. "B=CAD" → [[1, 2], [0], [3]]. ValueError on a repeat, an unknown key,
    a leading `=`, or when not every sample is placed."""
    tiers: list[list[int]] = []
    tie = False
    seen: set[int] = set()
    for key in keys.upper():
        if key == "=":
            if not tiers or tie:
                raise ValueError("'=' ties the next sample with the one before: press a sample first.")
            tie = True
            continue
        index = int(key) - 1 if key.isdigit() else "ABCDEFGH".find(key)
        if not 0 <= index < k or index in seen:
            raise ValueError(f"Key {key!r} does not place a new sample of {k}.")
        seen.add(index)
        if tie:
            tiers[-1].append(index)
        else:
            tiers.append([index])
        tie = False
    if len(seen) != k or tie:
        raise ValueError(f"Place all {k} samples.")
    return tiers


class LikertAxes:
    """Per-sample 7-point ratings on a project's axes (2020 rated overall quality, accuracy, coverage and
    coherence on 1–7), asked after the choice. Stored canonical in Label.likert as {axis: [rating of each
    sample]}. Training: `training/rlhf/losses.ranking_loss` over the order one axis's ratings imply
    (`training/rlhf/losses.likert_ranks`: higher rating, better rank; equal ratings tie)."""

    LOW, HIGH = 1, 7
    AXIS_MAX = 8
    NAME_MAX = 40

    @classmethod
    def axes_errors(cls, axes) -> str | None:
        """What is wrong with a project's axes setting, or None."""
        if not isinstance(axes, list):
            return "Axes are a list of names."
        if len(axes) > cls.AXIS_MAX:
            return f"At most {cls.AXIS_MAX} axes."
        for axis in axes:
            if not isinstance(axis, str) or not axis.strip() or len(axis) > cls.NAME_MAX:
                return f"Each axis is a name of 1–{cls.NAME_MAX} characters."
            if axis != axis.strip().lower() or not all(c.isalnum() or c in "_-" for c in axis):
                return f"Axis {axis[:40]!r}: lower-case letters, digits, '-' and '_' only (e.g. overall, coverage)."
        if len(set(axes)) != len(axes):
            return "Each axis once."
        return None

    @classmethod
    def errors(cls, likert, axes: Sequence[str], k: int) -> str | None:
        """What is wrong with one answer's ratings against the project's axes, or None."""
        if not isinstance(likert, dict) or set(likert) != set(axes):
            return f"Rate every sample on {', '.join(axes)}."
        for axis in axes:
            ratings = likert[axis]
            if not isinstance(ratings, (list, tuple)) or len(ratings) != k or any(
                    isinstance(r, bool) or not isinstance(r, int) or not cls.LOW <= r <= cls.HIGH for r in ratings):
                return f"{axis}: rate each of the {k} samples from {cls.LOW} to {cls.HIGH}."
        return None

    @staticmethod
    def to_canonical(likert: dict, display_order: Sequence[int]) -> dict:
        """Ratings listed by display position (A, B, …) as ratings by canonical index."""
        return {axis: by_canonical_index(ratings, display_order) for axis, ratings in likert.items()}


def by_canonical_index(shown: Sequence, display_order: Sequence[int]) -> list:
    """Values listed by display position (A, B, …) listed by canonical index (`display_order[p]` is the canonical
    index of the sample shown at position p)."""
    canonical = [None] * len(shown)
    for position, index in enumerate(display_order):
        canonical[index] = shown[position]
    return canonical
