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
(columns via values_list, computed on numpy arrays). Each process keeps a project's label columns
and the samples' text statistics between requests (see `_project_columns` and
`comparison_text_stats` for why and how they stay fresh); `text_stats_cache_clear` forgets both.
"""
from __future__ import annotations

import json
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime

import numpy as np
from django.contrib.auth import get_user_model
from django.db.models import Count, F, Q, Sum, TextField, Value
from django.db.models.functions import Cast, Coalesce, TruncDate
from django.http import Http404

from labeling import metrics
from labeling.models import ComparisonSample, Instructions, Label, Project, Query, SampleFlag
from labeling.roles import PERM_RESEARCH
from labeling.selectors import LETTERS, project_progress
from labeling.textstats import copy_overlaps, text_length

ALPHA = 0.01  # detectors flag at p < ALPHA
READING_CHARS_PER_SECOND = 60.0  # ≈ 3× a fast reader (~20 chars/s): faster than this is not reading
TOO_FAST_ALLOWED_SHARE = 0.05  # a labeler may answer this share too fast (known items, obvious junk)

_MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"


# ---------------------------------------------------------------- shared reads


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


# ---------------------------------------------------------------- text statistics per comparison


@dataclass(frozen=True)
class TextStats:
    """Per canonical index: text length and copy overlap with the context; all characters read.

    `length_top`/`copy_top` are bit masks of the indices tied at the maximum (bit i = index i).
    """

    lengths: tuple[int, ...]
    overlaps: tuple[float, ...]
    chars: int
    length_top: int
    copy_top: int


# Samples and contexts never change once a comparison exists, and the n-gram overlaps of 100k
# labels' samples cost seconds (bench/dashboard_load.py: "first" against later requests), so the
# figures are kept per process, by comparison id with its query id checked. Tests clear it.
_TEXT_CACHE: OrderedDict[int, tuple[int, TextStats]] = OrderedDict()
_TEXT_CACHE_MAX = 500_000
_TEXT_LOCK = threading.Lock()


def text_stats_cache_clear() -> None:
    """Forget what this process keeps between requests (text statistics and label columns)."""
    with _TEXT_LOCK:
        _TEXT_CACHE.clear()
        _COLUMNS_CACHE.clear()


def _top_mask(values: tuple) -> int:
    best = max(values)
    return sum(1 << i for i, v in enumerate(values) if v == best)


def _stats_of(context: str, texts: list[str]) -> TextStats:
    lengths = tuple(text_length(t) for t in texts)
    overlaps = tuple(copy_overlaps(context, texts))  # = copy_overlap per text, the simulated labelers' score
    return TextStats(lengths=lengths, overlaps=overlaps, chars=len(context) + sum(len(t) for t in texts),
                     length_top=_top_mask(lengths), copy_top=_top_mask(overlaps))


def comparison_text_stats(keys: dict[int, int], *, project: Project) -> dict[int, TextStats]:
    """TextStats of the given comparisons ({comparison id: query id}): at most 2 queries, none when all are known."""
    known: dict[int, TextStats] = {}
    with _TEXT_LOCK:
        cache_get = _TEXT_CACHE.get
        for comparison_id, query_id in keys.items():
            entry = cache_get(comparison_id)
            if entry is not None and entry[0] == query_id:
                known[comparison_id] = entry[1]
    missing = {c: q for c, q in keys.items() if c not in known}
    if missing:
        texts: dict[int, dict[int, str]] = defaultdict(dict)
        rows = ComparisonSample.objects.filter(comparison__project=project).values_list(
            "comparison_id", "position", "sample__text"
        )
        contexts = Query.objects.filter(project=project)
        if len(missing) < 1000:  # few: ask for those only (one IN list); many: the project's rows
            rows = rows.filter(comparison_id__in=list(missing))
            contexts = contexts.filter(id__in=set(missing.values()))
        for comparison_id, position, text in rows:
            if comparison_id in missing:
                texts[comparison_id][position] = text
        context_of = dict(contexts.values_list("id", "context"))
        fresh = {
            comparison_id: _stats_of(context_of.get(missing[comparison_id], ""), [by_position[p] for p in sorted(by_position)])
            for comparison_id, by_position in texts.items()
        }
        with _TEXT_LOCK:
            for comparison_id, value in fresh.items():
                _TEXT_CACHE[comparison_id] = (missing[comparison_id], value)
            while len(_TEXT_CACHE) > _TEXT_CACHE_MAX:
                _TEXT_CACHE.popitem(last=False)
        known.update(fresh)
    return known


# ---------------------------------------------------------------- per labeler


DETECTORS = ("position", "length", "copy", "too_fast")


@dataclass
class LabelerQuality:
    """One labeler's row of the labeler table. Rates over all labels (skip, flag) or answers (unsure).

    Detectors (each a metrics.TestResult, flagged at p < ALPHA):
    - position: χ² of chosen display positions against uniform;
    - length: picks a longest sample (text_length) more than chance, exact Poisson-binomial test;
    - copy: picks a sample with the highest copy_overlap with the context more than chance (same test);
    - too_fast: share of answers faster than READING_CHARS_PER_SECOND over context + all samples,
      exact binomial test against TOO_FAST_ALLOWED_SHARE.
    `hits` (filled for the drill-down) holds, per detector, the ids of the labels behind it: the
    label chose the longest / most copying sample, was too fast, or chose the labeler's most
    chosen screen position.
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
    hits: dict[str, set[int]] = field(default_factory=dict)

    @property
    def flags(self) -> list[str]:
        return [name for name in DETECTORS if getattr(self, name).flagged(ALPHA)]

    @property
    def detector_results(self) -> list[metrics.TestResult]:
        return [getattr(self, name) for name in DETECTORS]


_ORDERS: dict[str, tuple[int, ...]] = {}  # display_order JSON text → tuple (at most K! distinct values)


def _order(text: str) -> tuple[int, ...]:
    order = _ORDERS.get(text)
    if order is None:
        order = _ORDERS[text] = tuple(json.loads(text))
    return order


@dataclass
class _Labels:
    """A project's labels as columns (numpy arrays, one entry per label)."""

    id: np.ndarray
    labeler: np.ndarray
    comparison: np.ndarray
    query: np.ndarray
    chosen: np.ndarray  # canonical index, −1 when skipped
    position: np.ndarray  # display position of the chosen sample, −1 when skipped
    orders: list[tuple[int, ...]]
    unsure: np.ndarray
    skipped: np.ndarray
    duration_ms: np.ndarray
    calibration: np.ndarray
    flagged: np.ndarray
    day: np.ndarray  # date.toordinal() of created_at (UTC date, as TruncDate)
    instructions: np.ndarray  # Instructions id, −1 when none

    _ARRAYS = ("id", "labeler", "comparison", "query", "chosen", "position", "unsure", "skipped", "duration_ms",
               "calibration", "flagged", "day", "instructions")

    def subset(self, mask: np.ndarray) -> _Labels:
        picked = np.flatnonzero(mask).tolist()
        return _Labels(**{name: getattr(self, name)[mask] for name in self._ARRAYS},
                       orders=[self.orders[i] for i in picked])

    def extended(self, more: _Labels) -> _Labels:
        return _Labels(**{name: np.concatenate([getattr(self, name), getattr(more, name)]) for name in self._ARRAYS},
                       orders=self.orders + more.orders)

    def fingerprint(self) -> tuple[int, ...]:
        """What `_labels_fingerprint` reads from the database for the same rows."""
        return (len(self.id), int(self.id.sum()), int(self.comparison.sum()), int(self.labeler.sum()),
                int(self.chosen.sum()), int(self.duration_ms.sum()), int(self.unsure.sum()), int(self.skipped.sum()),
                int(self.calibration.sum()), int(self.instructions.sum()), int((self.id * self.chosen).sum()))


def _label_rows_fetch(labels) -> _Labels:
    """One query: the label columns (flagged left False)."""
    rows = list(labels.annotate(
        order_text=Cast("assignment__display_order", TextField()),
        day_text=Cast(TruncDate("created_at"), TextField()),  # 60 distinct strings convert faster than 100k dates
    ).values_list(
        "id", "labeler_id", "comparison_id", "comparison__query_id", "chosen_index", "unsure", "skipped",
        "duration_ms", "comparison__is_calibration", "order_text", "day_text", "instructions_id",
    ).order_by())  # no ORDER BY: sorting 100k rows costs more than the rest of the query
    if not rows:
        empty = np.zeros(0, dtype=np.int64)
        return _Labels(empty, empty, empty, empty, empty, empty, [], empty.astype(bool), empty.astype(bool), empty,
                       empty.astype(bool), empty.astype(bool), empty, empty)
    (ids, labelers, comparisons, queries, chosen, unsure, skipped, durations, calibration, order_texts, day_texts,
     instructions) = zip(*rows)
    day_of: dict[str, int] = {}
    for text in set(day_texts):
        day_of[text] = date.fromisoformat(str(text)[:10]).toordinal()
    # Display orders take at most K! distinct values: index them, then look positions up in a table.
    index: dict[str, int] = {}
    order_ids = np.fromiter((index.setdefault(t, len(index)) for t in order_texts), dtype=np.int64, count=len(rows))
    distinct = [_order(text) for text in index]
    position_of = np.full((len(distinct), Project.K_MAX), -1, dtype=np.int64)
    for row, order in enumerate(distinct):
        for position, canonical in enumerate(order):
            if 0 <= canonical < Project.K_MAX:
                position_of[row, canonical] = position
    chosen_arr = np.nan_to_num(np.array(chosen, dtype=float), nan=-1).astype(np.int64)
    positions = np.where(chosen_arr >= 0, position_of[order_ids, chosen_arr.clip(0, Project.K_MAX - 1)], -1)
    return _Labels(
        id=np.array(ids, dtype=np.int64), labeler=np.array(labelers, dtype=np.int64),
        comparison=np.array(comparisons, dtype=np.int64), query=np.array(queries, dtype=np.int64),
        chosen=chosen_arr, position=positions, orders=[distinct[i] for i in order_ids.tolist()],
        unsure=np.array(unsure, dtype=bool), skipped=np.array(skipped, dtype=bool),
        duration_ms=np.array(durations, dtype=np.int64), calibration=np.array(calibration, dtype=bool),
        flagged=np.zeros(len(rows), dtype=bool),
        day=np.array([day_of[text] for text in day_texts], dtype=np.int64),
        instructions=np.array([-1 if i is None else i for i in instructions], dtype=np.int64),
    )


def _labels_fingerprint(labels, up_to_id: int) -> tuple[int, ...]:
    """Count and column sums of the labels with id ≤ up_to_id: one aggregate query, nothing transferred."""
    agg = labels.filter(id__lte=up_to_id).aggregate(
        n=Count("id"), ids=Sum("id"), comparisons=Sum("comparison_id"), labelers=Sum("labeler_id"),
        chosen=Sum(Coalesce("chosen_index", Value(-1))), duration=Sum("duration_ms"),
        unsure=Count("id", filter=Q(unsure=True)), skipped=Count("id", filter=Q(skipped=True)),
        calibration=Count("id", filter=Q(comparison__is_calibration=True)),
        instructions=Sum(Coalesce("instructions_id", Value(-1))),
        weighted=Sum(F("id") * Coalesce("chosen_index", Value(-1))),  # an edit that swaps two choices shows here
    )
    keys = ("n", "ids", "comparisons", "labelers", "chosen", "duration", "unsure", "skipped", "calibration",
            "instructions", "weighted")
    return tuple(int(agg[key] or 0) for key in keys)


# Labels are written once (label_submit never updates one) and a project's table is read often,
# so each process keeps the columns it fetched and, per request, checks with one aggregate that the
# rows it holds are unchanged (count and column sums) and fetches only the newer ones; anything
# else (an admin edit or delete, a comparison moved in or out of calibration) reloads everything.
# bench/dashboard_load.py measured the full fetch at most of the labeler table's time at 100k labels.
_COLUMNS_CACHE: OrderedDict[int, _Labels] = OrderedDict()
_COLUMNS_CACHE_PROJECTS = 16


def _project_columns(project: Project) -> _Labels:
    """The project's label columns with fresh flags: 3 queries warm (check, newer rows, flags), 2 cold."""
    labels = Label.objects.filter(comparison__project=project)
    with _TEXT_LOCK:
        cached = _COLUMNS_CACHE.get(project.id)
    if cached is not None and len(cached.id):
        newest = int(cached.id.max())
        if _labels_fingerprint(labels, newest) == cached.fingerprint():
            cols = cached.extended(_label_rows_fetch(labels.filter(id__gt=newest)))
        else:
            cols = _label_rows_fetch(labels)
    else:
        cols = _label_rows_fetch(labels)
    with _TEXT_LOCK:
        _COLUMNS_CACHE[project.id] = cols
        _COLUMNS_CACHE.move_to_end(project.id)
        while len(_COLUMNS_CACHE) > _COLUMNS_CACHE_PROJECTS:
            _COLUMNS_CACHE.popitem(last=False)
    # Flags may come later than their label (admin), and are few: always read fresh.
    flagged_ids = list(SampleFlag.objects.filter(label__comparison__project=project).values_list("label_id", flat=True))
    return replace(cols, flagged=np.isin(cols.id, np.array(flagged_ids, dtype=np.int64)))


def _agreement_by_labeler(cols: _Labels, researchers: set[int], k: int) -> tuple[dict[int, Agreement], ResearcherAnswers]:
    """Each labeler's agreement with the researchers' answer (own label left out), and the answers."""
    calibration = np.flatnonzero(cols.calibration & ~cols.skipped)
    rows = list(zip(cols.labeler[calibration].tolist(), cols.comparison[calibration].tolist(),
                    cols.chosen[calibration].tolist(), strict=True))
    answers = ResearcherAnswers(row for row in rows if row[0] in researchers)
    tallies: dict[int, _Tally] = defaultdict(_Tally)
    for labeler_id, comparison_id, chosen in rows:
        reference = answers.reference(comparison_id, labeler_id)
        if reference is not None:
            tallies[labeler_id].add(chosen == reference)
    return {labeler_id: tally.result(k) for labeler_id, tally in tallies.items()}, answers


def _groups(values: np.ndarray, group: np.ndarray, n_groups: int) -> list[np.ndarray]:
    """values split by group index (0..n_groups−1)."""
    order = np.argsort(group, kind="stable")
    bounds = np.searchsorted(group[order], np.arange(n_groups + 1))
    ordered = values[order]
    return [ordered[bounds[g]: bounds[g + 1]] for g in range(n_groups)]


def _quality_rows(project: Project, cols: _Labels, researchers: set[int], *, with_hits_for: int | None = None,
                  ) -> tuple[list[LabelerQuality], ResearcherAnswers]:
    """Every labeler's LabelerQuality from one pass over the label columns (a fixed number of queries)."""
    k = project.k
    agreements, answers = _agreement_by_labeler(cols, researchers, k)
    labeler_ids, g = np.unique(cols.labeler, return_inverse=True)
    n_groups = len(labeler_ids)
    names = dict(get_user_model().objects.filter(id__in=labeler_ids.tolist()).values_list("id", "username"))

    # 1. Text statistics of every answered comparison, as per-label columns.
    answered = ~cols.skipped
    comparisons, first = np.unique(cols.comparison[answered], return_index=True)
    queries = cols.query[answered][first]
    texts = comparison_text_stats(dict(zip(comparisons.tolist(), queries.tolist(), strict=True)), project=project)
    per_comparison = np.zeros((len(comparisons), 4), dtype=np.int64)  # known, length_top, copy_top, chars
    for row, c in enumerate(comparisons.tolist()):
        stat = texts.get(c)
        if stat is not None and len(stat.lengths) == k:
            per_comparison[row] = (1, stat.length_top, stat.copy_top, stat.chars)
    known, length_top, copy_top, chars = per_comparison[:, 0].astype(bool), *per_comparison[:, 1:].T
    where = np.searchsorted(comparisons, cols.comparison).clip(0, max(len(comparisons) - 1, 0))
    has_text = answered & (known[where] if len(comparisons) else np.zeros(len(cols.id), dtype=bool))
    chosen_bit = np.left_shift(1, cols.chosen.clip(0))

    # 2. Per-label detector inputs.
    popcount = np.array([bin(m).count("1") for m in range(1 << k)])
    detectors: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for name, top in (("length", length_top), ("copy", copy_top)):
        per_label = top[where] if len(comparisons) else np.zeros(len(cols.id), dtype=np.int64)
        ties = popcount[per_label]
        informative = has_text & (ties < k) & (ties > 0)  # all tied: says nothing
        hit = informative & ((per_label & chosen_bit) > 0)
        detectors[name] = (informative, hit, ties)
    too_fast = has_text & (cols.duration_ms * READING_CHARS_PER_SECOND < 1000 * chars[where] if len(comparisons) else False)

    # 3. Per-labeler sums and tests.
    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(g, weights=mask.astype(float), minlength=n_groups).astype(int)

    n_labels, n_answered = count(np.ones(len(cols.id), dtype=bool)), count(answered)
    n_skipped, n_flagged, n_unsure = count(cols.skipped), count(cols.flagged), count(cols.unsure & answered)
    n_text, n_fast = count(has_text), count(too_fast)
    position_counts = np.zeros((n_groups, k), dtype=int)
    shown = answered & (cols.position >= 0)  # a choice missing from its display order counts nowhere
    np.add.at(position_counts, (g[shown], cols.position[shown]), 1)
    chance_counts = {}
    for name, (informative, hit, ties) in detectors.items():
        by_ties = np.zeros((n_groups, k + 1), dtype=int)
        np.add.at(by_ties, (g[informative], ties[informative]), 1)
        chance_counts[name] = (by_ties, count(hit))
    seconds = _groups(cols.duration_ms / 1000, g, n_groups)

    rows = []
    for index, labeler_id in enumerate(labeler_ids.tolist()):
        durations = seconds[index]
        mean_s = float(durations.mean()) if len(durations) else 0.0
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
            }
        rows.append(LabelerQuality(
            labeler_id=labeler_id, username=names.get(labeler_id, "?"), is_researcher=labeler_id in researchers,
            labels=int(n_labels[index]), answers=int(n_answered[index]),
            labels_per_hour=3600 / mean_s if mean_s > 0 else None,
            median_s=metrics.quantile(durations, 0.5), p10_s=metrics.quantile(durations, 0.1),
            skip_rate=metrics.rate(int(n_skipped[index]), int(n_labels[index])),
            flag_rate=metrics.rate(int(n_flagged[index]), int(n_labels[index])),
            unsure_rate=metrics.rate(int(n_unsure[index]), int(n_answered[index])),
            agreement=agreements.get(labeler_id, Agreement.of(0, 0, k)),
            position=metrics.position_bias_counts_test(positions),
            length=tests["length"], copy=tests["copy"],
            too_fast=metrics.too_fast_test(int(n_fast[index]), int(n_text[index]), TOO_FAST_ALLOWED_SHARE),
            hits=hits_sets,
        ))
    return rows, answers


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
    key = SORT_KEYS[sort.lstrip("-")]
    present = [r for r in rows if key(r) is not None]
    absent = [r for r in rows if key(r) is None]
    present.sort(key=key, reverse=sort.startswith("-"))
    return present + sorted(absent, key=lambda r: r.username.lower())


def labelers_quality(project: Project, *, sort: str = "username") -> list[LabelerQuality]:
    """One LabelerQuality per user who labeled in the project, sorted (a fixed number of queries)."""
    rows, _ = _quality_rows(project, _project_columns(project), researcher_ids())
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
class LabelerDetail:
    quality: LabelerQuality
    labels: list[LabelDetail]
    total: int


def labeler_detail(project: Project, *, labeler_id: int, offset: int = 0, limit: int | None = 100) -> LabelerDetail:
    """A labeler's figures and their labels (newest first, a page of `limit`) beside the researchers' answers.

    404 when the user has no label in the project. A fixed number of queries.
    """
    researchers = researcher_ids()
    cols = _project_columns(project)
    researcher_array = np.array(sorted(researchers), dtype=np.int64)
    cols = cols.subset((cols.labeler == labeler_id) | (np.isin(cols.labeler, researcher_array) & cols.calibration))
    rows, answers = _quality_rows(project, cols, researchers, with_hits_for=labeler_id)
    mine = next((row for row in rows if row.labeler_id == labeler_id), None)
    if mine is None:
        raise Http404("No labels by this user in this project.")
    indices = np.flatnonzero(cols.labeler == labeler_id)
    indices = indices[np.argsort(-cols.id[indices], kind="stable")]  # newest (highest id) first
    page = indices[offset: None if limit is None else offset + limit].tolist()
    page_ids = [int(cols.id[i]) for i in page]
    created = dict(Label.objects.filter(id__in=page_ids).values_list("id", "created_at"))
    texts: dict[int, dict[int, str]] = defaultdict(dict)
    contexts: dict[int, str] = {}
    for comparison_id, position, text, context in ComparisonSample.objects.filter(
        comparison_id__in={int(cols.comparison[i]) for i in page}
    ).values_list("comparison_id", "position", "sample__text", "comparison__query__context"):
        texts[comparison_id][position] = text
        contexts[comparison_id] = context
    stats = comparison_text_stats({int(cols.comparison[i]): int(cols.query[i]) for i in page}, project=project)
    details = []
    for i in page:
        label_id, comparison_id = int(cols.id[i]), int(cols.comparison[i])
        chosen = None if cols.skipped[i] else int(cols.chosen[i])
        order = cols.orders[i]
        stat = stats.get(comparison_id)
        shown = [
            ShownText(canonical=c, letter=LETTERS[p], text=texts[comparison_id].get(c, ""),
                      length=stat.lengths[c] if stat and c < len(stat.lengths) else None,
                      overlap=stat.overlaps[c] if stat and c < len(stat.overlaps) else None)
            for p, c in enumerate(order)
        ]
        reference = answers.reference(comparison_id, labeler_id) if cols.calibration[i] else None
        details.append(LabelDetail(
            id=label_id, created_at=created.get(label_id), context=contexts.get(comparison_id, ""), samples=shown,
            chosen=chosen, chosen_letter=LETTERS[order.index(chosen)] if chosen in order else None,
            researchers=reference, agrees=None if reference is None or chosen is None else chosen == reference,
            duration_s=int(cols.duration_ms[i]) / 1000, unsure=bool(cols.unsure[i]), skipped=chosen is None,
            markers=[name for name in DETECTORS if label_id in mine.hits.get(name, ())],
        ))
    return LabelerDetail(quality=mine, labels=details, total=len(indices))
