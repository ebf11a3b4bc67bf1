"""Shared by the dashboard selectors: thresholds, who the researchers are, their answers, agreement tallies."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth import get_user_model

from labeling import metrics
from labeling.roles import PERM_RESEARCH

ALPHA = 0.01  # detectors flag at p < ALPHA
READING_CHARS_PER_SECOND = 60.0  # ≈ 3× a fast reader (~20 chars/s): faster than this is not reading
TOO_FAST_ALLOWED_SHARE = 0.05  # a labeler may answer this share too fast (known items, obvious junk)

_MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


def researcher_ids() -> set[int]:
    """Ids of active users with `labeling.view_research` (groups, own permissions, superusers)."""
    users = get_user_model().objects.with_perm(PERM_RESEARCH, backend=_MODEL_BACKEND)
    return set(users.values_list("id", flat=True))


class ResearcherAnswers:
    """Researchers' answers per calibration comparison, and each comparison's majority (computed once)."""

    def __init__(self, rows: Iterable[tuple[int, int, int]]):
        self.by_comparison: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for labeler_id, comparison_id, chosen in rows:
            self.by_comparison[comparison_id].append((labeler_id, chosen))
        self.majority = {c: metrics.majority(ch for _, ch in answers) for c, answers in self.by_comparison.items()}

    def reference(self, comparison_id: int, labeler_id: int) -> int | None:
        """The researchers' answer for this comparison with `labeler_id`'s own label left out."""
        answers = self.by_comparison.get(comparison_id)
        if not answers:
            return None
        if all(user != labeler_id for user, _ in answers):
            return self.majority[comparison_id]
        return metrics.majority(choice for user, choice in answers if user != labeler_id)


@dataclass(frozen=True)
class Agreement:
    """K-way and pairwise agreement with the researchers' answer; `same`/`different` label counts."""

    same: int
    different: int
    kway: metrics.Rate
    pairwise: metrics.Rate

    @classmethod
    def of(cls, same: int, different: int, k: int) -> Agreement:
        kway, pairwise = metrics.kway_and_pairwise(same, different, k)
        return cls(same=same, different=different, kway=kway, pairwise=pairwise)


class _Tally:
    def __init__(self):
        self.same = 0
        self.different = 0

    def add(self, agrees: bool) -> None:
        if agrees:
            self.same += 1
        else:
            self.different += 1

    def result(self, k: int) -> Agreement:
        return Agreement.of(self.same, self.different, k)
