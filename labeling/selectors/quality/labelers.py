"""The labeler table and one labeler's labels, with the shortcut detectors."""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from django.contrib.auth import get_user_model
from django.http import Http404

from labeling import metrics
from labeling.models import ComparisonSample, Label, Project
from labeling.selectors.quality.columns import _Labels, _project_columns
from labeling.selectors.quality.common import (
    ALPHA,
    READING_CHARS_PER_SECOND,
    TOO_FAST_ALLOWED_SHARE,
    Agreement,
    researcher_answers,
    researcher_ids,
)
from labeling.selectors.quality.population import LabelPopulation, label_population, population_tests
from labeling.selectors.serving import LETTERS
from labeling.textstats import copy_overlaps, text_length

DETECTORS = ("position", "length", "copy", "too_fast")
TESTS = (*DETECTORS, "population")  # the shortcut detectors and the population anomaly test (population.py)


@dataclass
class LabelerQuality:
    """One labeler's row of the labeler table. Rates over all labels (skip, flag) or answers (unsure).

    Detectors (each a metrics.TestResult, flagged at p < ALPHA):
    - position: χ² of chosen display positions against uniform;
    - length: picks a longest sample (text_length) more than chance, exact Poisson-binomial test;
    - copy: picks a sample with the highest copy_overlap with the context more than chance (same test);
    - too_fast: share of answers faster than READING_CHARS_PER_SECOND over context + all samples,
      exact binomial test against TOO_FAST_ALLOWED_SHARE.
    Beside them, population (population.py): agrees with the other labelers' majority on the same
    comparisons less than the population itself does, exact Poisson-binomial test.
    `hits` (filled for the drill-down) holds, per test, the ids of the labels behind it: the
    label chose the longest / most copying sample, was too fast, chose the labeler's most
    chosen screen position, or disagreed with its comparison's population majority.
    """

    labeler_id: int
    username: str
    is_researcher: bool
    labels: int
    answers: int
    labels_per_hour: float | None
    median_s: float | None
    p10_s: float | None
    skip_rate: metrics.Rate
    flag_rate: metrics.Rate
    unsure_rate: metrics.Rate
    agreement: Agreement
    position: metrics.TestResult
    length: metrics.TestResult
    copy: metrics.TestResult
    too_fast: metrics.TestResult
    population: metrics.TestResult
    hits: dict[str, set[int]] = field(default_factory=dict)

    @property
    def flags(self) -> list[str]:
        """The shortcut detectors and the population test that flag this labeler (p < ALPHA)."""
        return [name for name in TESTS if getattr(self, name).flagged(ALPHA)]

    @property
    def detector_results(self) -> list[metrics.TestResult]:
        return [getattr(self, name) for name in DETECTORS]


def _agreement_by_labeler(cols: _Labels, researchers: set[int], k: int) -> tuple[dict[int, Agreement], np.ndarray]:
    """Each labeler's agreement with the researchers' answer (own label left out), and that answer per
    label (−1 where none: not calibration, skipped, no researcher answer or a tie)."""
    calibration = np.flatnonzero(cols.calibration & ~cols.skipped)
    labeler, chosen = cols.labeler[calibration], cols.chosen[calibration]
    by_researcher = np.isin(labeler, np.array(sorted(researchers), dtype=np.int64))
    reference, _ = researcher_answers(cols.comparison[calibration], chosen, by_researcher, k)
    per_label = np.full(len(cols.id), -1, dtype=np.int64)
    per_label[calibration] = reference
    judged = reference >= 0
    ids, g = np.unique(labeler[judged], return_inverse=True)
    same = np.bincount(g, weights=(chosen[judged] == reference[judged]), minlength=len(ids)).astype(int)
    total = np.bincount(g, minlength=len(ids))
    agreements = {int(u): Agreement.of(int(s), int(n - s), k) for u, s, n in zip(ids, same, total, strict=True)}
    return agreements, per_label


def _quality_rows(project: Project, cols: _Labels, researchers: set[int], population: LabelPopulation, *,
                  with_hits_for: int | None = None) -> tuple[list[LabelerQuality], np.ndarray]:
    """Every labeler's LabelerQuality from one pass over the label columns (a fixed number of queries);
    `population` is `label_population` of the whole project's labels, cut to these columns."""
    k = project.k
    agreements, references = _agreement_by_labeler(cols, researchers, k)
    labeler_ids, g = np.unique(cols.labeler, return_inverse=True)
    n_groups = len(labeler_ids)
    names = dict(get_user_model().objects.filter(id__in=labeler_ids.tolist()).values_list("id", "username"))

    # 1. Per-label detector inputs from the comparisons' text figures (masks 0: not K samples, not judged).
    answered = ~cols.skipped
    has_text = answered & (cols.length_top > 0)
    chosen_bit = np.left_shift(1, cols.chosen.clip(0))
    popcount = np.array([bin(m).count("1") for m in range(1 << k)])
    detectors: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for name, top in (("length", cols.length_top), ("copy", cols.copy_top)):
        per_label = np.where(has_text, top, 0) & ((1 << k) - 1)
        ties = popcount[per_label]
        informative = has_text & (ties < k) & (ties > 0)  # all tied: says nothing
        hit = informative & ((per_label & chosen_bit) > 0)
        detectors[name] = (informative, hit, ties)
    too_fast = has_text & (cols.duration_ms * READING_CHARS_PER_SECOND < 1000 * cols.text_chars)

    # 2. Per-labeler sums and tests.
    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(g, weights=mask.astype(float), minlength=n_groups).astype(int)

    n_labels, n_answered = count(np.ones(len(cols.id), dtype=bool)), count(answered)
    n_skipped, n_flagged, n_unsure = count(cols.skipped), count(cols.flagged), count(cols.unsure & answered)
    n_text, n_fast = count(has_text), count(too_fast)
    shown = answered & (cols.position >= 0)  # a choice missing from its display order counts nowhere
    position_counts = np.bincount(g[shown] * k + cols.position[shown], minlength=n_groups * k).reshape(n_groups, k)
    chance_counts = {}
    for name, (informative, hit, ties) in detectors.items():
        by_ties = np.bincount(g[informative] * (k + 1) + ties[informative],
                              minlength=n_groups * (k + 1)).reshape(n_groups, k + 1)
        chance_counts[name] = (by_ties, count(hit))
    seconds = cols.duration_ms / 1000
    mean_seconds = np.bincount(g, weights=seconds, minlength=n_groups) / np.maximum(n_labels, 1)
    median_s, p10_s = metrics.grouped_quantiles(cols.duration_ms, g, n_groups, (0.5, 0.1)).T / 1000
    position_tests = metrics.position_bias_counts_tests(position_counts)
    too_fast_tests = metrics.too_fast_tests(n_fast, n_text, TOO_FAST_ALLOWED_SHARE)
    population_results = population_tests(population, g, n_groups)

    rows = []
    for index, labeler_id in enumerate(labeler_ids.tolist()):
        mean_s = float(mean_seconds[index])
        tests = {}
        for name, (by_ties, hits) in chance_counts.items():
            groups = {t / k: int(by_ties[index, t]) for t in range(1, k) if by_ties[index, t]}
            tests[name] = metrics.preference_test_grouped(int(hits[index]), groups)
        positions = position_counts[index]
        hits_sets: dict[str, set[int]] = {}
        if labeler_id == with_hits_for:
            mine = g == index
            top_position = int(positions.argmax())
            hits_sets = {
                "position": set(cols.id[mine & answered & (cols.position == top_position)].tolist()),
                "length": set(cols.id[mine & detectors["length"][1]].tolist()),
                "copy": set(cols.id[mine & detectors["copy"][1]].tolist()),
                "too_fast": set(cols.id[mine & too_fast].tolist()),
                "population": set(cols.id[mine & population.informative & ~population.agrees].tolist()),
            }
        rows.append(LabelerQuality(
            labeler_id=labeler_id, username=names.get(labeler_id, "?"), is_researcher=labeler_id in researchers,
            labels=int(n_labels[index]), answers=int(n_answered[index]),
            labels_per_hour=3600 / mean_s if mean_s > 0 else None,
            median_s=float(median_s[index]), p10_s=float(p10_s[index]),  # every labeler here has labels
            skip_rate=metrics.rate(int(n_skipped[index]), int(n_labels[index])),
            flag_rate=metrics.rate(int(n_flagged[index]), int(n_labels[index])),
            unsure_rate=metrics.rate(int(n_unsure[index]), int(n_answered[index])),
            agreement=agreements.get(labeler_id, Agreement.of(0, 0, k)),
            position=position_tests[index], length=tests["length"], copy=tests["copy"], too_fast=too_fast_tests[index],
            population=population_results[index], hits=hits_sets,
        ))
    return rows, references


SORT_KEYS = {
    "username": lambda q: q.username.lower(),
    "labels": lambda q: q.labels,
    "per_hour": lambda q: q.labels_per_hour,
    "median": lambda q: q.median_s,
    "p10": lambda q: q.p10_s,
    "skip": lambda q: q.skip_rate.value,
    "flag": lambda q: q.flag_rate.value,
    "unsure": lambda q: q.unsure_rate.value,
    "kway": lambda q: q.agreement.kway.value,
    "pairwise": lambda q: q.agreement.pairwise.value,
    "position": lambda q: q.position.p_value,
    "length": lambda q: q.length.p_value,
    "copy": lambda q: q.copy.p_value,
    "too_fast": lambda q: q.too_fast.p_value,
    "population": lambda q: q.population.p_value,
}


def labelers_sort(rows: list[LabelerQuality], sort: str) -> list[LabelerQuality]:
    """Sort by a SORT_KEYS name, "-name" for descending; missing values last either way."""
    key = SORT_KEYS[sort.lstrip("-")]
    present = [r for r in rows if key(r) is not None]
    absent = [r for r in rows if key(r) is None]
    present.sort(key=key, reverse=sort.startswith("-"))
    return present + sorted(absent, key=lambda r: r.username.lower())


def labelers_quality(project: Project, *, sort: str = "username") -> list[LabelerQuality]:
    """One LabelerQuality per user who labeled in the project, sorted (a fixed number of queries)."""
    cols = _project_columns(project)
    rows, _ = _quality_rows(project, cols, researcher_ids(), label_population(cols, project.k))
    return labelers_sort(rows, sort)


# ---------------------------------------------------------------- one labeler's labels


@dataclass(frozen=True)
class ShownText:
    canonical: int
    letter: str  # where this labeler saw it
    text: str
    length: int | None
    overlap: float | None


@dataclass(frozen=True)
class LabelDetail:
    id: int
    created_at: datetime
    context: str
    samples: list[ShownText]  # in the labeler's display order
    chosen: int | None
    chosen_letter: str | None
    researchers: int | None  # the researchers' answer (canonical), None when none
    agrees: bool | None
    duration_s: float
    unsure: bool
    skipped: bool
    markers: list[str]  # detectors this label counts for


@dataclass(frozen=True)
class PopulationDisagreement:
    """A label outside its comparison's population majority (population.py), for the drill-down."""

    label_id: int
    comparison_id: int
    chosen: int  # canonical
    chosen_letter: str | None  # where this labeler saw it
    others: list[tuple[str, int, bool]]  # (letter as shown to this labeler, other labelers' answers, is their choice)


DISAGREEMENTS_SHOWN = 50


@dataclass(frozen=True)
class LabelerDetail:
    quality: LabelerQuality
    labels: list[LabelDetail]
    total: int
    disagreements: list[PopulationDisagreement] = field(default_factory=list)  # newest first, DISAGREEMENTS_SHOWN
    disagreements_total: int = 0


def labeler_detail(project: Project, *, labeler_id: int, offset: int = 0, limit: int | None = 100) -> LabelerDetail:
    """A labeler's figures and their labels (newest first, a page of `limit`) beside the researchers' answers,
    and the newest DISAGREEMENTS_SHOWN labels outside their comparison's population majority.

    404 when the user has no label in the project. A fixed number of queries.
    """
    researchers = researcher_ids()
    cols = _project_columns(project)
    population = label_population(cols, project.k)  # from every labeler's labels, before the cut below
    researcher_array = np.array(sorted(researchers), dtype=np.int64)
    keep = (cols.labeler == labeler_id) | (np.isin(cols.labeler, researcher_array) & cols.calibration)
    cols, population = cols.subset(keep), population.subset(keep)
    rows, references = _quality_rows(project, cols, researchers, population, with_hits_for=labeler_id)
    mine = next((row for row in rows if row.labeler_id == labeler_id), None)
    if mine is None:
        raise Http404("No labels by this user in this project.")
    indices = np.flatnonzero(cols.labeler == labeler_id)
    indices = indices[np.argsort(-cols.id[indices], kind="stable")]  # newest (highest id) first
    page = indices[offset: None if limit is None else offset + limit].tolist()
    page_ids = [int(cols.id[i]) for i in page]
    differing = indices[population.informative[indices] & ~population.agrees[indices]]
    shown_differing = differing[:DISAGREEMENTS_SHOWN].tolist()
    shown_as = {label_id: (created, order) for label_id, created, order in  # one query for both lists
                Label.objects.filter(id__in=page_ids + [int(cols.id[i]) for i in shown_differing])
                .values_list("id", "created_at", "assignment__display_order")}
    texts: dict[int, dict[int, str]] = defaultdict(dict)
    contexts: dict[int, str] = {}
    for comparison_id, position, text, context in ComparisonSample.objects.filter(
        comparison_id__in={int(cols.comparison[i]) for i in page}
    ).values_list("comparison_id", "position", "sample__text", "comparison__query__context"):
        texts[comparison_id][position] = text
        contexts[comparison_id] = context
    details = []
    for i in page:
        label_id, comparison_id = int(cols.id[i]), int(cols.comparison[i])
        chosen = None if cols.skipped[i] else int(cols.chosen[i])
        created, order = shown_as.get(label_id, (None, []))
        by_canonical = texts[comparison_id]
        lengths = {c: text_length(t) for c, t in by_canonical.items()}
        overlaps = dict(zip(by_canonical, copy_overlaps(contexts.get(comparison_id, ""), list(by_canonical.values())),
                            strict=True))
        shown = [
            ShownText(canonical=c, letter=LETTERS[p], text=by_canonical.get(c, ""), length=lengths.get(c),
                      overlap=overlaps.get(c))
            for p, c in enumerate(order)
        ]
        reference = int(references[i]) if references[i] >= 0 else None
        details.append(LabelDetail(
            id=label_id, created_at=created, context=contexts.get(comparison_id, ""), samples=shown,
            chosen=chosen, chosen_letter=LETTERS[order.index(chosen)] if chosen in order else None,
            researchers=reference, agrees=None if reference is None or chosen is None else chosen == reference,
            duration_s=int(cols.duration_ms[i]) / 1000, unsure=bool(cols.unsure[i]), skipped=chosen is None,
            markers=[name for name in TESTS if label_id in mine.hits.get(name, ())],
        ))
    disagreements = []
    for i in shown_differing:
        chosen = int(cols.chosen[i])
        order = shown_as.get(int(cols.id[i]), (None, []))[1] or list(range(project.k))
        others = population.others(i, chosen)
        disagreements.append(PopulationDisagreement(
            label_id=int(cols.id[i]), comparison_id=int(cols.comparison[i]), chosen=chosen,
            chosen_letter=LETTERS[order.index(chosen)] if chosen in order else None,
            others=[(LETTERS[p], others[c], c == chosen) for p, c in enumerate(order) if 0 <= c < len(others)],
        ))
    return LabelerDetail(quality=mine, labels=details, total=len(indices), disagreements=disagreements,
                         disagreements_total=len(differing))
