"""The project dashboard's figures."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

import numpy as np

from labeling import metrics
from labeling.models import Instructions, Project
from labeling.selectors import project_progress
from labeling.selectors_quality.columns import _project_columns
from labeling.selectors_quality.common import Agreement, ResearcherAnswers, _Tally, researcher_ids

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
    calibration = np.flatnonzero(cols.calibration & answered)
    rows = list(zip(cols.labeler[calibration].tolist(), cols.comparison[calibration].tolist(),
                    cols.chosen[calibration].tolist(), cols.day[calibration].tolist(),
                    cols.instructions[calibration].tolist(), strict=True))
    answers = ResearcherAnswers((u, c, ch) for u, c, ch, _, _ in rows if u in researchers)
    overall, rr, majority_tally = _Tally(), _Tally(), _Tally()
    weekly: dict[int, _Tally] = defaultdict(_Tally)
    versions: dict[int | None, _Tally] = defaultdict(_Tally)
    labeler_choices: dict[int, list[int]] = defaultdict(list)
    for labeler_id, comparison_id, chosen, day, instructions_id in rows:
        reference = answers.reference(comparison_id, labeler_id)
        if labeler_id not in researchers:
            labeler_choices[comparison_id].append(chosen)
        if reference is None:
            continue
        if labeler_id in researchers:
            rr.add(chosen == reference)
            continue
        overall.add(chosen == reference)
        weekly[day - date.fromordinal(day).weekday()].add(chosen == reference)
        versions[versions_of.get(instructions_id)].add(chosen == reference)
    majority_items = 0
    for comparison_id, choices in labeler_choices.items():
        reference = answers.reference(comparison_id, -1)
        if len(choices) < 2 or reference is None:
            continue
        majority_items += 1
        modal = metrics.majority(choices)
        if modal is not None:
            majority_tally.add(modal == reference)

    # 3. Labeler–labeler on comparisons with two or more non-researchers' answers.
    researcher_array = np.array(sorted(researchers), dtype=np.int64)
    theirs = answered & ~np.isin(cols.labeler, researcher_array)
    items, item_of = np.unique(cols.comparison[theirs], return_inverse=True)
    counts = np.zeros((len(items), k))
    np.add.at(counts, (item_of.ravel(), cols.chosen[theirs].clip(0, k - 1)), 1)
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
        labeler_researcher=overall.result(k), researcher_researcher=rr.result(k),
        weekly=[(date.fromordinal(week), tally.result(k)) for week, tally in sorted(weekly.items())],
        by_instructions=[(v, t.result(k)) for v, t in sorted(versions.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))],
        labeler_labeler=inter, majority_vs_researchers=majority_tally.result(k), majority_items=majority_items,
    )
