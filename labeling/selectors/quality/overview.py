"""The project dashboard's figures."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from labeling import metrics
from labeling.models import Instructions, Project
from labeling.selectors import project_progress
from labeling.selectors.quality.columns import _project_columns
from labeling.selectors.quality.common import (
    Agreement,
    agreement_of,
    count_matrix,
    researcher_answers,
    researcher_ids,
    unique_argmax,
)


@dataclass(frozen=True)
class InterRater:
    items: int
    ratings: int
    percent: float | None
    fleiss_kappa: float | None
    krippendorff_alpha: float | None


@dataclass(frozen=True)
class ProjectQuality:
    project: Project
    k: int
    chance_kway: float
    chance_pairwise: float
    progress: dict
    labels_per_day: list[tuple[date, int]]
    labels: int
    skip_rate: metrics.Rate
    unsure_rate: metrics.Rate
    flag_rate: metrics.Rate
    labeler_researcher: Agreement
    researcher_researcher: Agreement
    weekly: list[tuple[date, Agreement]]
    by_instructions: list[tuple[int | None, Agreement]]
    labeler_labeler: InterRater
    majority_vs_researchers: Agreement
    majority_items: int


def project_quality(project: Project) -> ProjectQuality:
    """The dashboard's figures for one project (a fixed number of queries whatever the size).

    Reads the same label columns as the labeler table (`_project_columns`), so both pages agree.
    """
    k = project.k
    researchers = researcher_ids()
    cols = _project_columns(project)
    versions_of = dict(Instructions.objects.filter(project=project).values_list("id", "version"))
    total = len(cols.id)
    answered = ~cols.skipped

    # 1. Volume: labels per day and the overall rates.
    days, per_day_counts = np.unique(cols.day, return_counts=True)
    per_day = [(date.fromordinal(int(d)), int(n)) for d, n in zip(days, per_day_counts, strict=True)]

    # 2. Calibration labels: researcher answers and everyone's agreement with them.
    researcher_array = np.array(sorted(researchers), dtype=np.int64)
    calibration = np.flatnonzero(cols.calibration & answered)
    chosen, comparison = cols.chosen[calibration], cols.comparison[calibration]
    by_researcher = np.isin(cols.labeler[calibration], researcher_array)
    reference, everyone = researcher_answers(comparison, chosen, by_researcher, k)
    theirs = ~by_researcher
    day = cols.day[calibration]
    week = day - (day - 1) % 7  # ordinal 1 (1 Jan of year 1) was a Monday
    weekly = [(date.fromordinal(int(w)), agreement_of(chosen[theirs & (week == w)], reference[theirs & (week == w)], k))
              for w in np.unique(week[theirs & (reference >= 0)])]
    instruction_ids, instruction_of = np.unique(cols.instructions[calibration], return_inverse=True)
    version = np.array([versions_of.get(i, -1) for i in instruction_ids.tolist()], dtype=np.int64)[instruction_of]
    by_instructions = [
        (None if v < 0 else int(v), agreement_of(chosen[theirs & (version == v)], reference[theirs & (version == v)], k))
        for v in np.unique(version[theirs & (reference >= 0)])
    ]
    by_instructions.sort(key=lambda kv: (kv[0] is None, kv[0] or 0))
    # Majority of labelers: comparisons with ≥ 2 labelers' answers and a researchers' answer.
    items, item_of = np.unique(comparison[theirs], return_inverse=True)
    votes = count_matrix(item_of.ravel(), chosen[theirs], len(items), k)
    answer = np.full(len(items), -1, dtype=np.int64)
    answer[item_of.ravel()] = everyone[theirs]
    judged = (votes.sum(axis=1) >= 2) & (answer >= 0)
    modal = unique_argmax(votes[judged])
    majority_tally = agreement_of(modal[modal >= 0], answer[judged][modal >= 0], k)

    # 3. Labeler–labeler on comparisons with two or more non-researchers' answers.
    labelers_answered = answered & ~np.isin(cols.labeler, researcher_array)
    items, item_of = np.unique(cols.comparison[labelers_answered], return_inverse=True)
    counts = count_matrix(item_of.ravel(), cols.chosen[labelers_answered].clip(0, k - 1), len(items), k).astype(float)
    counts = counts[counts.sum(axis=1) >= 2]
    inter = InterRater(
        items=len(counts), ratings=int(counts.sum()), percent=metrics.percent_agreement(counts),
        fleiss_kappa=metrics.fleiss_kappa(counts), krippendorff_alpha=metrics.krippendorff_alpha(counts),
    )
    n_answered = int(answered.sum())
    return ProjectQuality(
        project=project, k=k, chance_kway=1 / k, chance_pairwise=0.5, progress=project_progress(project),
        labels_per_day=per_day, labels=total,
        skip_rate=metrics.rate(total - n_answered, total), unsure_rate=metrics.rate(int((cols.unsure & answered).sum()), n_answered),
        flag_rate=metrics.rate(int(cols.flagged.sum()), total),
        labeler_researcher=agreement_of(chosen[theirs], reference[theirs], k),
        researcher_researcher=agreement_of(chosen[by_researcher], reference[by_researcher], k),
        weekly=weekly, by_instructions=by_instructions,
        labeler_labeler=inter, majority_vs_researchers=majority_tally, majority_items=int(judged.sum()),
    )
