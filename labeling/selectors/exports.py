"""Exports of a project's labels: reads, streamed row by row (`iterator()`), never all in memory.

Layouts (one JSON object per line, one line per answered label; skipped labels have no answer
and are left out; several labels of one comparison are several lines, as in the 2019 data):

- "2019": `{"query", "sample0".."sample{K-1}", "best"}` with `best` the canonical chosen index,
  plus `comparison_id`, `labeler`, `split`, `unsure`, `calibration` (ignored by 2019 readers;
  `comparisons_import` reads `labeler`, `split` and `unsure` back).
- "2020": `{"info": {"id", "post"}, "summaries": [{"text", "policy"}, …], "choice", "worker",
  "batch", "split", "extra": {"unsure"}}`. Only for K=2 projects: the layout has no way to say
  which of K>2 summaries were shown, and its consumers expect pairs (use "pairs" instead).
  Splits map back valid → valid1, test → valid2.
- "pairs": `{"prompt", "chosen", "rejected"}`, K−1 lines per label (label_types.BestOfK.pairs).
"""
from __future__ import annotations

import json
from collections.abc import Iterator

from django.db.models import Prefetch, QuerySet

from labeling.errors import InvalidInput
from labeling.label_types import BestOfK
from labeling.models import ComparisonSample, Label, Project, Query

EXPORT_LAYOUTS = ("2019", "2020", "pairs")
_SPLITS_2020 = {Query.Split.TRAIN: "train", Query.Split.VALID: "valid1", Query.Split.TEST: "valid2"}
_CHUNK = 500


def labels_for_export(*, project: Project, split: str | None = None) -> QuerySet[Label]:
    """The project's answered labels in id order, with everything an export line needs prefetched."""
    labels = Label.objects.filter(comparison__project=project, skipped=False)
    if split:
        labels = labels.filter(comparison__query__split=split)
    entries = ComparisonSample.objects.select_related("sample").order_by("position")
    return (
        labels.select_related("comparison__query", "labeler")
        .prefetch_related(Prefetch("comparison__entries", queryset=entries))
        .order_by("id")
    )


def labels_export_rows(*, project: Project, layout: str, split: str | None = None) -> Iterator[dict]:
    """Export rows in `layout`; the layout and K are checked now, the rows are read lazily."""
    if layout not in EXPORT_LAYOUTS:
        raise InvalidInput(f"layout must be one of {', '.join(EXPORT_LAYOUTS)}.", field="layout")
    if layout == "2020" and project.k != 2:
        raise InvalidInput(
            f"The 2020 layout holds pairs; project {project.slug!r} has K={project.k}. "
            'Export "2019" (K-way) or "pairs" instead.', field="layout")
    if split and split not in Query.Split.values:
        raise InvalidInput(f"split must be one of {', '.join(Query.Split.values)}.", field="split")
    return _rows(project, layout, split)


def _rows(project: Project, layout: str, split: str | None) -> Iterator[dict]:
    label_type = BestOfK(project.k)
    for label in labels_for_export(project=project, split=split).iterator(chunk_size=_CHUNK):
        comparison = label.comparison
        query = comparison.query
        samples = [entry.sample for entry in comparison.entries.all()]
        record = label_type.record(query=query.context, samples=[s.text for s in samples], best=label.chosen_index)
        if layout == "2019":
            yield {**record.as_2019(), "comparison_id": comparison.id, "labeler": label.labeler.username,
                   "split": query.split, "unsure": label.unsure, "calibration": comparison.is_calibration}
        elif layout == "2020":
            yield {
                "info": {"id": query.external_id or str(query.id), "post": query.context},
                "summaries": [{"text": s.text, "policy": s.source} for s in samples],
                "choice": label.chosen_index,
                "worker": label.labeler.username,
                "batch": comparison.batch,
                "split": _SPLITS_2020.get(query.split, query.split),
                "extra": {"unsure": label.unsure},
            }
        else:
            yield from (pair.as_dict() for pair in label_type.pairs(record))


def labels_export_jsonl(*, project: Project, layout: str, split: str | None = None) -> Iterator[str]:
    """The export as JSON Lines text, one line at a time (for streaming responses and files)."""
    rows = labels_export_rows(project=project, layout=layout, split=split)
    return (json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
