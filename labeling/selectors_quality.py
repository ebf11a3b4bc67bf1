"""Reads behind the researcher dashboards: agreement, labeler quality, shortcut detectors.

Definitions (the math is in `labeling/metrics.py`):
- **Researchers** are users holding `labeling.view_research` (labeling/roles.py; superusers too).
  Their labels on calibration comparisons are the researcher answers.
- **Researchers' answer** to a calibration comparison, for judging a label by user u: the
  majority choice of the researchers' non-skipped labels on it, u's own label left out (so a
  researcher is judged against the other researchers, and that is researcher–researcher
  agreement). A tie for first place, or no researcher label, means no answer: the label is
  excluded from agreement.
- **K-way agreement**: the label chose the same canonical index as the researchers' answer.
  Chance is 1/K.
- **Pairwise agreement**: with s same and d different labels, (K−1)s / ((K−1)s + d) (see
  `metrics.kway_and_pairwise`). Chance is 50% for every K.
- Skipped labels count for the skip rate, never for agreement. Unsure labels count as answers
  (and the unsure rate is reported). A label is flagged when it has at least one sample flag.
- **Labeler–labeler**: non-researcher, non-skipped labels on comparisons with two or more of
  them: percent agreement over rater pairs, Fleiss' κ, Krippendorff's α (nominal).
- **Majority of N vs researchers**: on calibration comparisons with ≥ 2 non-researcher
  answers, their majority (ties: no answer) against the researchers' answer.
- **Labels per hour**: 3600 / mean seconds spent per label (skips included), i.e. the pace while
  labeling, not over the wall-clock day.

Every function reads with a fixed number of queries whatever the number of labels or labelers
(columns via values_list, grouped in Python).
"""
from __future__ import annotations

import threading
from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
from django.contrib.auth import get_user_model
from django.db.models import Count, Exists, OuterRef, Q
from django.db.models.functions import TruncDate
from django.http import Http404

from labeling import metrics
from labeling.models import ComparisonSample, Label, Project, Query, SampleFlag
from labeling.roles import PERM_RESEARCH
from labeling.selectors import LETTERS, project_progress
from labeling.textstats import copy_overlap, text_length

ALPHA = 0.01  # detectors flag at p < ALPHA
READING_CHARS_PER_SECOND = 60.0  # ≈ 3× a fast reader (~20 chars/s): faster than this is not reading
TOO_FAST_ALLOWED_SHARE = 0.05  # a labeler may answer this share too fast (known items, obvious junk)

_MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


# ---------------------------------------------------------------- shared reads


def researcher_ids() -> set[int]:
    """Ids of active users with `labeling.view_research` (groups, own permissions, superusers)."""
    users = get_user_model().objects.with_perm(PERM_RESEARCH, backend=_MODEL_BACKEND)
    return set(users.values_list("id", flat=True))


def _reference(per_comparison: dict[int, list[tuple[int, int]]], comparison_id: int, labeler_id: int) -> int | None:
    """The researchers' answer for this comparison with `labeler_id`'s own label left out."""
    answers = per_comparison.get(comparison_id)
    if not answers:
        return None
    return metrics.majority(choice for user, choice in answers if user != labeler_id)


def _researcher_answers(rows: Iterable[tuple]) -> dict[int, list[tuple[int, int]]]:
    """comparison id → [(researcher id, choice)] from (labeler, comparison, chosen) rows already filtered."""
    out: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for labeler_id, comparison_id, chosen in rows:
        out[comparison_id].append((labeler_id, chosen))
    return out


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


# ---------------------------------------------------------------- project overview


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


def _week_start(moment: datetime) -> date:
    day = moment.date()
    return day - timedelta(days=day.weekday())


def project_quality(project: Project) -> ProjectQuality:
    """The dashboard's figures for one project (a fixed number of queries whatever the size)."""
    k = project.k
    researchers = researcher_ids()
    labels = Label.objects.filter(comparison__project=project)

    # 1. Volume: labels per day and the overall rates, aggregated in SQL.
    per_day = list(
        labels.annotate(day=TruncDate("created_at")).values_list("day").annotate(n=Count("id")).order_by("day")
    )
    flagged = SampleFlag.objects.filter(label_id=OuterRef("pk"))
    totals = labels.aggregate(
        n_all=Count("id"), n_skipped=Count("id", filter=Q(skipped=True)),
        n_unsure=Count("id", filter=Q(skipped=False, unsure=True)), n_flagged=Count("id", filter=Q(Exists(flagged))),
    )
    total, skipped, unsure, n_flagged = totals["n_all"], totals["n_skipped"], totals["n_unsure"], totals["n_flagged"]

    # 2. Calibration labels: researcher answers and everyone's agreement with them.
    calibration = list(
        labels.filter(comparison__is_calibration=True, skipped=False)
        .values_list("labeler_id", "comparison_id", "chosen_index", "created_at", "instructions__version")
        .order_by("id")
    )
    answers = _researcher_answers((u, c, ch) for u, c, ch, _, _ in calibration if u in researchers)
    overall, rr, majority_tally = _Tally(), _Tally(), _Tally()
    weekly: dict[date, _Tally] = defaultdict(_Tally)
    versions: dict[int | None, _Tally] = defaultdict(_Tally)
    labeler_choices: dict[int, list[int]] = defaultdict(list)
    for labeler_id, comparison_id, chosen, created_at, version in calibration:
        reference = _reference(answers, comparison_id, labeler_id)
        if labeler_id not in researchers:
            labeler_choices[comparison_id].append(chosen)
        if reference is None:
            continue
        if labeler_id in researchers:
            rr.add(chosen == reference)
            continue
        overall.add(chosen == reference)
        weekly[_week_start(created_at)].add(chosen == reference)
        versions[version].add(chosen == reference)
    majority_items = 0
    for comparison_id, choices in labeler_choices.items():
        reference = _reference(answers, comparison_id, -1)
        if len(choices) < 2 or reference is None:
            continue
        majority_items += 1
        modal = metrics.majority(choices)
        if modal is not None:
            majority_tally.add(modal == reference)

    # 3. Labeler–labeler on overlapping comparisons (non-researchers' answers).
    overlap_rows = (
        labels.filter(skipped=False, comparison__label_count__gte=2)
        .exclude(labeler_id__in=researchers)
        .values_list("comparison_id", "chosen_index")
    )
    per_item: dict[int, list[int]] = defaultdict(list)
    for comparison_id, chosen in overlap_rows:
        per_item[comparison_id].append(chosen)
    counts = metrics.category_counts([c for c in per_item.values() if len(c) >= 2], k)
    inter = InterRater(
        items=len(counts), ratings=int(counts.sum()), percent=metrics.percent_agreement(counts),
        fleiss_kappa=metrics.fleiss_kappa(counts), krippendorff_alpha=metrics.krippendorff_alpha(counts),
    )
    answered = total - skipped
    return ProjectQuality(
        project=project, k=k, chance_kway=1 / k, chance_pairwise=0.5, progress=project_progress(project),
        labels_per_day=per_day, labels=total,
        skip_rate=metrics.rate(skipped, total), unsure_rate=metrics.rate(unsure, answered),
        flag_rate=metrics.rate(n_flagged, total),
        labeler_researcher=overall.result(k), researcher_researcher=rr.result(k),
        weekly=[(week, tally.result(k)) for week, tally in sorted(weekly.items())],
        by_instructions=[(v, t.result(k)) for v, t in sorted(versions.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))],
        labeler_labeler=inter, majority_vs_researchers=majority_tally.result(k), majority_items=majority_items,
    )


# ---------------------------------------------------------------- text statistics per comparison


@dataclass(frozen=True)
class TextStats:
    """Per canonical index: text length and copy overlap with the context; all characters read."""

    lengths: tuple[int, ...]
    overlaps: tuple[float, ...]
    chars: int


# Samples and contexts never change once a comparison exists, and n-gram overlap of 100k labels'
# samples costs seconds (measured by bench/dashboard_load.py), so the figures are kept per
# process, keyed by (comparison id, created_at) so a reused id never hits a stale entry.
_TEXT_CACHE: OrderedDict[tuple[int, datetime], TextStats] = OrderedDict()
_TEXT_CACHE_MAX = 500_000
_TEXT_LOCK = threading.Lock()


def text_stats_cache_clear() -> None:
    with _TEXT_LOCK:
        _TEXT_CACHE.clear()


def _stats_of(context: str, texts: list[str]) -> TextStats:
    return TextStats(
        lengths=tuple(text_length(t) for t in texts),
        overlaps=tuple(copy_overlap(context, t) for t in texts),
        chars=len(context) + sum(len(t) for t in texts),
    )


def comparison_text_stats(keys: set[tuple[int, datetime]], *, project: Project) -> dict[int, TextStats]:
    """TextStats of the given (comparison id, created_at) keys: at most 2 queries, none when all are known."""
    with _TEXT_LOCK:
        known = {key: _TEXT_CACHE[key] for key in keys if key in _TEXT_CACHE}
    missing = {key[0]: key for key in keys if key not in known}
    if missing:
        texts: dict[int, dict[int, str]] = defaultdict(dict)
        query_of: dict[int, int] = {}
        rows = ComparisonSample.objects.filter(comparison__project=project).values_list(
            "comparison_id", "position", "sample__text", "comparison__query_id"
        )
        if len(missing) < 1000:  # few: ask for those only (one IN list); many: the project's rows
            rows = rows.filter(comparison_id__in=list(missing))
        for comparison_id, position, text, query_id in rows:
            if comparison_id in missing:
                texts[comparison_id][position] = text
                query_of[comparison_id] = query_id
        contexts = dict(Query.objects.filter(id__in=set(query_of.values())).values_list("id", "context")) if len(
            query_of) < 1000 else dict(Query.objects.filter(project=project).values_list("id", "context"))
        fresh = {}
        for comparison_id, by_position in texts.items():
            ordered = [by_position[p] for p in sorted(by_position)]
            fresh[missing[comparison_id]] = _stats_of(contexts.get(query_of[comparison_id], ""), ordered)
        with _TEXT_LOCK:
            for key, value in fresh.items():
                _TEXT_CACHE[key] = value
            while len(_TEXT_CACHE) > _TEXT_CACHE_MAX:
                _TEXT_CACHE.popitem(last=False)
        known.update(fresh)
    return {key[0]: value for key, value in known.items()}


def _top_set(values: tuple, ) -> tuple[set[int], float]:
    """Indices tied at the maximum, and the chance of hitting one by picking uniformly."""
    best = max(values)
    top = {i for i, v in enumerate(values) if v == best}
    return top, len(top) / len(values)


# ---------------------------------------------------------------- per labeler


@dataclass
class LabelerQuality:
    """One labeler's row of the labeler table. Rates over all labels (skip, flag) or answers (unsure).

    Detectors (each a metrics.TestResult, flagged at p < ALPHA):
    - position: χ² of chosen display positions against uniform;
    - length: picks a longest sample (text_length) more than chance, exact Poisson-binomial test;
    - copy: picks a sample with the highest copy_overlap with the context more than chance (same test);
    - too_fast: share of answers faster than READING_CHARS_PER_SECOND over context + all samples,
      exact binomial test against TOO_FAST_ALLOWED_SHARE.
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
    hits: dict[str, set[int]] = field(default_factory=dict)  # detector → label ids behind it

    @property
    def flags(self) -> list[str]:
        return [name for name in DETECTORS if getattr(self, name).flagged(ALPHA)]

    @property
    def detector_results(self) -> list[metrics.TestResult]:
        return [getattr(self, name) for name in DETECTORS]


DETECTORS = ("position", "length", "copy", "too_fast")


@dataclass(frozen=True)
class _LabelRow:
    id: int
    labeler_id: int
    comparison_id: int
    comparison_created: datetime
    chosen: int | None
    unsure: bool
    skipped: bool
    duration_ms: int
    is_calibration: bool
    flagged: bool
    display_order: list[int]
    created_at: datetime


def _label_rows(labels) -> list[_LabelRow]:
    flagged = SampleFlag.objects.filter(label_id=OuterRef("pk"))
    rows = labels.annotate(has_flag=Exists(flagged)).values_list(
        "id", "labeler_id", "comparison_id", "comparison__created_at", "chosen_index", "unsure", "skipped",
        "duration_ms", "comparison__is_calibration", "has_flag", "assignment__display_order", "created_at",
    ).order_by("id")
    return [_LabelRow(*row) for row in rows]


def _labeler_quality(labeler_id: int, username: str, rows: list[_LabelRow], *, k: int, researchers: set[int],
                     answers: dict[int, list[tuple[int, int]]], texts: dict[int, TextStats]) -> LabelerQuality:
    durations = [r.duration_ms / 1000 for r in rows]
    answered = [r for r in rows if not r.skipped]
    tally = _Tally()
    positions, length_hits, length_chance, copy_hits, copy_chance = [], [], [], [], []
    hits: dict[str, set[int]] = {name: set() for name in DETECTORS}
    too_fast = 0
    for r in answered:
        if r.is_calibration:
            reference = _reference(answers, r.comparison_id, labeler_id)
            if reference is not None:
                tally.add(r.chosen == reference)
        position = r.display_order.index(r.chosen) if r.chosen in r.display_order else None
        if position is not None:
            positions.append(position)
        stats = texts.get(r.comparison_id)
        if stats is None or len(stats.lengths) != k:
            continue
        for name, values, hit_list, chance_list in (("length", stats.lengths, length_hits, length_chance),
                                                    ("copy", stats.overlaps, copy_hits, copy_chance)):
            top, chance = _top_set(values)
            if chance < 1:  # all tied: the label says nothing about this preference
                hit_list.append(r.chosen in top)
                chance_list.append(chance)
                if r.chosen in top:
                    hits[name].add(r.id)
        if r.duration_ms < 1000 * stats.chars / READING_CHARS_PER_SECOND:
            too_fast += 1
            hits["too_fast"].add(r.id)
    if positions:
        counts = np.bincount(positions, minlength=k)
        top_position = int(counts.argmax())
        hits["position"] = {r.id for r in answered if r.chosen in r.display_order
                            and r.display_order.index(r.chosen) == top_position}
    mean_s = sum(durations) / len(durations) if durations else 0
    return LabelerQuality(
        labeler_id=labeler_id, username=username, is_researcher=labeler_id in researchers,
        labels=len(rows), answers=len(answered),
        labels_per_hour=3600 / mean_s if mean_s > 0 else None,
        median_s=metrics.quantile(durations, 0.5), p10_s=metrics.quantile(durations, 0.1),
        skip_rate=metrics.rate(len(rows) - len(answered), len(rows)),
        flag_rate=metrics.rate(sum(r.flagged for r in rows), len(rows)),
        unsure_rate=metrics.rate(sum(r.unsure for r in answered), len(answered)),
        agreement=tally.result(k),
        position=metrics.position_bias_test(positions, k),
        length=metrics.preference_test(length_hits, length_chance),
        copy=metrics.preference_test(copy_hits, copy_chance),
        too_fast=metrics.too_fast_test(too_fast, sum(1 for r in answered if r.comparison_id in texts), TOO_FAST_ALLOWED_SHARE),
        hits=hits,
    )


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
}


def labelers_sort(rows: list[LabelerQuality], sort: str) -> list[LabelerQuality]:
    """Sort by a SORT_KEYS name, "-name" for descending; missing values last either way."""
    name = sort.lstrip("-")
    key = SORT_KEYS[name]
    present = [r for r in rows if key(r) is not None]
    absent = [r for r in rows if key(r) is None]
    present.sort(key=key, reverse=sort.startswith("-"))
    return present + sorted(absent, key=lambda r: r.username.lower())


def _quality_of(project: Project, labels, researchers: set[int]) -> dict[int, tuple[LabelerQuality, list[_LabelRow]]]:
    rows = _label_rows(labels)
    answers = _researcher_answers(
        (r.labeler_id, r.comparison_id, r.chosen) for r in rows
        if r.is_calibration and not r.skipped and r.labeler_id in researchers
    )
    texts = comparison_text_stats({(r.comparison_id, r.comparison_created) for r in rows if not r.skipped},
                                  project=project)
    by_labeler: dict[int, list[_LabelRow]] = defaultdict(list)
    for r in rows:
        by_labeler[r.labeler_id].append(r)
    names = dict(get_user_model().objects.filter(id__in=list(by_labeler)).values_list("id", "username"))
    return {
        labeler_id: (_labeler_quality(labeler_id, names.get(labeler_id, "?"), mine, k=project.k,
                                      researchers=researchers, answers=answers, texts=texts), mine)
        for labeler_id, mine in by_labeler.items()
    }


def labelers_quality(project: Project, *, sort: str = "username") -> list[LabelerQuality]:
    """One LabelerQuality per user who labeled in the project, sorted (a fixed number of queries)."""
    researchers = researcher_ids()
    quality = _quality_of(project, Label.objects.filter(comparison__project=project), researchers)
    return labelers_sort([q for q, _ in quality.values()], sort)


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
class LabelerDetail:
    quality: LabelerQuality
    labels: list[LabelDetail]
    total: int


def labeler_detail(project: Project, *, labeler_id: int, offset: int = 0, limit: int | None = 100) -> LabelerDetail:
    """A labeler's figures and their labels (newest first, a page of `limit`) beside the researchers' answers.

    404 when the user has no label in the project. A fixed number of queries.
    """
    researchers = researcher_ids()
    labels = Label.objects.filter(comparison__project=project).filter(
        Q(labeler_id=labeler_id) | Q(labeler_id__in=researchers, comparison__is_calibration=True)
    )
    quality = _quality_of(project, labels, researchers)
    if labeler_id not in quality:
        raise Http404("No labels by this user in this project.")
    mine, rows = quality[labeler_id]
    answers = _researcher_answers(
        (r.labeler_id, r.comparison_id, r.chosen)
        for q, rs in quality.values() for r in rs if r.is_calibration and not r.skipped and r.labeler_id in researchers
    )
    page = list(reversed(rows))[offset: None if limit is None else offset + limit]
    comparison_ids = {r.comparison_id for r in page}
    texts: dict[int, dict[int, str]] = defaultdict(dict)
    contexts: dict[int, str] = {}
    for comparison_id, position, text, context in ComparisonSample.objects.filter(
        comparison_id__in=comparison_ids
    ).values_list("comparison_id", "position", "sample__text", "comparison__query__context"):
        texts[comparison_id][position] = text
        contexts[comparison_id] = context
    stats = comparison_text_stats({(r.comparison_id, r.comparison_created) for r in page}, project=project)
    details = []
    for r in page:
        stat = stats.get(r.comparison_id)
        shown = [
            ShownText(canonical=c, letter=LETTERS[p], text=texts[r.comparison_id].get(c, ""),
                      length=stat.lengths[c] if stat and c < len(stat.lengths) else None,
                      overlap=stat.overlaps[c] if stat and c < len(stat.overlaps) else None)
            for p, c in enumerate(r.display_order)
        ]
        reference = _reference(answers, r.comparison_id, labeler_id) if r.is_calibration else None
        details.append(LabelDetail(
            id=r.id, created_at=r.created_at, context=contexts.get(r.comparison_id, ""), samples=shown,
            chosen=r.chosen,
            chosen_letter=LETTERS[r.display_order.index(r.chosen)] if r.chosen in r.display_order else None,
            researchers=reference, agrees=None if reference is None or r.skipped else r.chosen == reference,
            duration_s=r.duration_ms / 1000, unsure=r.unsure, skipped=r.skipped,
            markers=[name for name in DETECTORS if r.id in mine.hits.get(name, ())],
        ))
    return LabelerDetail(quality=mine, labels=details, total=len(rows))
