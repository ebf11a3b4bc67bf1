"""What the dashboards read per label and per comparison, and what each process keeps between requests."""
from __future__ import annotations

import json
import threading
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, replace
from datetime import date

import numpy as np
from django.db.models import Count, F, Q, Sum, TextField, Value
from django.db.models.functions import Cast, Coalesce, TruncDate

from labeling.models import ComparisonSample, Label, Project, Query, SampleFlag
from labeling.textstats import copy_overlaps, text_length

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
