"""Agreement on the parts of an answer beyond the choice (labeling/label_types.py): rankings and Likert ratings.

The dashboard's other figures read the chosen sample, which a ranking's top tier also gives; these read the whole
answer. Rankings: the share of sample pairs two answers order the same way, among the pairs both order (a tie in
either leaves the pair out), so K = 2 without ties is plain agreement on the choice. Ratings: per axis, the share of
one sample's two ratings within one point of each other, and their mean absolute difference. "None acceptable": the
share of two answers alike on it, and how often labelers say it. Each is labelers
against the researchers (on calibration comparisons a researcher answered) and labelers against each other (on
comparisons two or more labelers answered; every pair of their answers). Read for ranking and rated projects only,
in one query.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

from labeling import metrics
from labeling.models import Label, Project
from labeling.selectors.quality.common import researcher_ids


@dataclass(frozen=True)
class RatingAgreement:
    axis: str
    labeler_researcher: metrics.Rate  # ratings within one point of a researcher's, of the same sample
    labeler_labeler: metrics.Rate  # within one point of another labeler's
    labeler_labeler_mean_abs: float | None  # mean |difference| between two labelers' ratings of a sample


@dataclass(frozen=True)
class AnswerPartsAgreement:
    ranking_labeler_researcher: metrics.Rate | None  # None: the project does not rank
    ranking_labeler_labeler: metrics.Rate | None
    ratings: list[RatingAgreement]
    # Projects that offer "none acceptable": two answers alike on it (both say it, or neither); None otherwise.
    none_labeler_researcher: metrics.Rate | None = None
    none_labeler_labeler: metrics.Rate | None = None
    none_share: metrics.Rate | None = None  # the labelers' answers that say it


def ranking_pairs_alike(a: Sequence[int], b: Sequence[int]) -> tuple[int, int]:
    """(pairs ordered alike, pairs both order) of two rankings of the same samples (ranks, 1 = best)."""
    alike = both = 0
    for i, j in combinations(range(len(a)), 2):
        first, second = (a[i] > a[j]) - (a[i] < a[j]), (b[i] > b[j]) - (b[i] < b[j])
        if first and second:
            both += 1
            alike += first == second
    return alike, both


def _ratings_close(a: Sequence[int], b: Sequence[int]) -> tuple[int, int, int]:
    """(samples rated within one point, samples, sum of |differences|)."""
    return sum(abs(x - y) <= 1 for x, y in zip(a, b, strict=True)), len(a), sum(abs(x - y) for x, y in zip(a, b, strict=True))


def project_answer_parts_agreement(project: Project) -> AnswerPartsAgreement | None:
    """The figures above, or None for a project that neither ranks nor rates."""
    ranks = project.label_type == Project.LabelType.RANKING
    axes = list(project.likert_axes or [])
    offers_none = project.allow_none_acceptable
    if not ranks and not axes and not offers_none:
        return None
    researchers = researcher_ids()
    rows = (Label.objects.filter(comparison__project=project, comparison__is_qualification=False, skipped=False)
            .values_list("comparison_id", "labeler_id", "comparison__is_calibration", "ranking", "likert",
                         "none_acceptable"))
    answers: dict[int, list[tuple[bool, list | None, dict | None, bool]]] = defaultdict(list)
    calibration: set[int] = set()
    for comparison_id, labeler_id, is_calibration, ranking, likert, none_acceptable in rows:
        answers[comparison_id].append((labeler_id in researchers, ranking, likert, none_acceptable))
        if is_calibration:
            calibration.add(comparison_id)

    # Tallies: "lr" labeler vs researcher, "ll" labeler vs labeler; a rank tally (alike, both), per axis
    # (within one, samples, sum of |differences|).
    rank_tally = {"lr": [0, 0], "ll": [0, 0]}
    none_tally = {"lr": [0, 0], "ll": [0, 0]}
    rating_tally = {axis: {"lr": [0, 0, 0], "ll": [0, 0, 0]} for axis in axes}

    def add(kind: str, a: tuple, b: tuple) -> None:
        if offers_none:
            none_tally[kind][0] += a[3] == b[3]
            none_tally[kind][1] += 1
        if ranks and a[1] and b[1]:
            alike, both = ranking_pairs_alike(a[1], b[1])
            rank_tally[kind][0] += alike
            rank_tally[kind][1] += both
        for axis in axes:
            if a[2] and b[2] and axis in a[2] and axis in b[2]:
                for slot, value in enumerate(_ratings_close(a[2][axis], b[2][axis])):
                    rating_tally[axis][kind][slot] += value

    for comparison_id, given in answers.items():
        labelers = [answer for answer in given if not answer[0]]
        if comparison_id in calibration:
            for theirs in labelers:
                for reference in (answer for answer in given if answer[0]):
                    add("lr", theirs, reference)
        for a, b in combinations(labelers, 2):
            add("ll", a, b)

    ratings = [
        RatingAgreement(
            axis=axis,
            labeler_researcher=metrics.rate(rating_tally[axis]["lr"][0], rating_tally[axis]["lr"][1]),
            labeler_labeler=metrics.rate(rating_tally[axis]["ll"][0], rating_tally[axis]["ll"][1]),
            labeler_labeler_mean_abs=(rating_tally[axis]["ll"][2] / rating_tally[axis]["ll"][1]
                                      if rating_tally[axis]["ll"][1] else None),
        )
        for axis in axes
    ]
    said = [answer[3] for given in answers.values() for answer in given if not answer[0]]
    return AnswerPartsAgreement(
        ranking_labeler_researcher=metrics.rate(*rank_tally["lr"]) if ranks else None,
        ranking_labeler_labeler=metrics.rate(*rank_tally["ll"]) if ranks else None,
        ratings=ratings,
        none_labeler_researcher=metrics.rate(*none_tally["lr"]) if offers_none else None,
        none_labeler_labeler=metrics.rate(*none_tally["ll"]) if offers_none else None,
        none_share=metrics.rate(sum(said), len(said)) if offers_none else None,
    )
