"""Exports of a project's labels: reads, streamed row by row (`iterator()`), never all in memory.

Layouts (one JSON object per line, one line per answered label; skipped labels have no answer
and are left out; several labels of one comparison are several lines, as in the 2019 data):

- "2019": `{"query", "sample0".."sample{K-1}", "best"}` with `best` the canonical chosen index,
  plus `comparison_id`, `labeler`, `split`, `unsure`, `calibration` (ignored by 2019 readers;
  `comparisons_import` reads `labeler`, `split` and `unsure` back).
- "2020": `{"info": {"id", "post"}, "summaries": [{"text", "policy"}, …], "choice", "worker",
  "batch", "split", "extra": {"unsure", "confidence"?}}` (confidence: the label's 9-point scale, when it has one). Only for K=2 projects: the layout has no way to say
  which of K>2 summaries were shown, and its consumers expect pairs (use "pairs" instead).
  Splits map back valid → valid1, test → valid2.
- "pairs": `{"prompt", "chosen", "rejected"}`, K−1 lines per label (label_types.BestOfK.pairs); on a ranking
  project every strictly ordered pair of the ranking (label_types.Ranking.pairs: up to K·(K−1)/2, ties make none).
- "2020-axes" (projects with Likert axes): the 2020 `axis_evals` layout, one line per sample of each label,
  `{"info": {"id", "post"}, "summary": {"text", "policy", "axes": {axis: 1–7}}, "worker", "batch", "split"}`.

The label types' own parts go into the 2019 layout (and `comparisons_import` reads them back): `ranks` (ranking
projects: the rank of each sample, canonical, 1 = best, equal ranks tie), `likert` ({axis: [rating of each sample]})
and `none_acceptable` (projects that offer it); the 2020 layout's `extra` carries `none_acceptable` too.

Filters (keyword arguments of every function here, all optional; `labels_export_filters_check` says
what is wrong with them, naming the field): `split`; `created_from` / `created_to`, dates of the
label's `created_at`, both inclusive, in the site's time zone (settings.TIME_ZONE); `instructions_version`,
the version the label was given under (`Label.instructions`); `labeler_kind`: "people" (given on the
labeling page by an account that is not simulated), "simulated" (given on the labeling page by a
`SimulatedLabeler` account) or "imported" (written by an import, `Label.source_import`), which
split every label three ways; `calibration`: "include" (the default), "exclude" or "only" the
calibration comparisons.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from labeling.errors import InvalidInput
from labeling.label_types import BestOfK, Ranking
from labeling.models import ComparisonSample, Instructions, Label, Project, Query

EXPORT_LAYOUTS = ("2019", "2020", "pairs", "2020-axes")
LABELER_KINDS = ("people", "simulated", "imported")
CALIBRATION_CHOICES = ("include", "exclude", "only")
_SPLITS_2020 = {Query.Split.TRAIN: "train", Query.Split.VALID: "valid1", Query.Split.TEST: "valid2"}
_CHUNK = 500


def labels_for_export(*, project: Project, split: str | None = None, created_from: date | None = None,
                      created_to: date | None = None, instructions_version: int | None = None,
                      labeler_kind: str | None = None, calibration: str = "include") -> QuerySet[Label]:
    """The project's answered labels that pass the filters, in id order, with everything an export line
    needs prefetched. The filters are taken as valid (see labels_export_filters_check)."""
    labels = _labels_matching(project, split=split, created_from=created_from, created_to=created_to,
                              instructions_version=instructions_version, labeler_kind=labeler_kind,
                              calibration=calibration)
    entries = ComparisonSample.objects.select_related("sample").order_by("position")
    return (
        labels.select_related("comparison__query", "labeler")
        .prefetch_related(Prefetch("comparison__entries", queryset=entries))
        .order_by("id")
    )


def _labels_matching(project: Project, *, split=None, created_from=None, created_to=None, instructions_version=None,
                     labeler_kind=None, calibration="include") -> QuerySet[Label]:
    # Qualification answers test the labeler on copies of answered comparisons: never exported as data.
    labels = Label.objects.filter(comparison__project=project, comparison__is_qualification=False, skipped=False)
    if split:
        labels = labels.filter(comparison__query__split=split)
    if created_from is not None:
        labels = labels.filter(created_at__gte=_day_start(created_from))
    if created_to is not None:
        labels = labels.filter(created_at__lt=_day_start(created_to + timedelta(days=1)))
    if instructions_version is not None:
        labels = labels.filter(instructions__version=instructions_version)
    if labeler_kind == "imported":
        labels = labels.filter(source_import__isnull=False)
    elif labeler_kind in ("people", "simulated"):
        labels = labels.filter(source_import__isnull=True,
                               labeler__simulated_labeler__isnull=labeler_kind == "people")
    if calibration == "exclude":
        labels = labels.filter(comparison__is_calibration=False)
    elif calibration == "only":
        labels = labels.filter(comparison__is_calibration=True)
    return labels


def _day_start(day: date) -> datetime:
    """Midnight starting `day` in the site's time zone (not the request's: an export URL means the same to all)."""
    return datetime.combine(day, time.min, tzinfo=timezone.get_default_timezone())


def labels_export_layout_check(*, project: Project, layout: str) -> None:
    """InvalidInput (field "layout") unless `layout` is one of EXPORT_LAYOUTS and fits the project's K."""
    if layout not in EXPORT_LAYOUTS:
        raise InvalidInput(f"layout must be one of {', '.join(EXPORT_LAYOUTS)}.", field="layout")
    if layout == "2020" and project.k != 2:
        raise InvalidInput(
            f"The 2020 layout holds pairs; project {project.slug!r} has K={project.k}. "
            'Export "2019" (K-way) or "pairs" instead.', field="layout")
    if layout == "2020-axes" and not project.likert_axes:
        raise InvalidInput(f"The 2020-axes layout holds Likert ratings; project {project.slug!r} asks for none.",
                           field="layout")


def labels_export_filters_check(*, project: Project, split: str | None = None, created_from: date | None = None,
                                created_to: date | None = None, instructions_version: int | None = None,
                                labeler_kind: str | None = None, calibration: str = "include") -> None:
    """InvalidInput naming the field of the first filter that is malformed or cannot match by construction
    (a backwards date range, an instructions version the project never had)."""
    if split and split not in Query.Split.values:
        raise InvalidInput(f"split must be one of {', '.join(Query.Split.values)}.", field="split")
    for name, value in (("created_from", created_from), ("created_to", created_to)):
        if value is not None and (not isinstance(value, date) or isinstance(value, datetime)):
            raise InvalidInput(f"{name} must be a date (YYYY-MM-DD).", field=name)
    if created_from is not None and created_to is not None and created_to < created_from:
        raise InvalidInput(f"The date range ends ({created_to.isoformat()}) before it starts "
                           f"({created_from.isoformat()}).", field="created_to")
    if instructions_version is not None:
        if isinstance(instructions_version, bool) or not isinstance(instructions_version, int):
            raise InvalidInput("instructions_version must be a version number.", field="instructions_version")
        if not Instructions.objects.filter(project=project, version=instructions_version).exists():
            raise InvalidInput(f"Project {project.slug!r} has no instructions version {instructions_version}.",
                               field="instructions_version")
    if labeler_kind and labeler_kind not in LABELER_KINDS:
        raise InvalidInput(f"labeler_kind must be one of {', '.join(LABELER_KINDS)}.", field="labeler_kind")
    if calibration not in CALIBRATION_CHOICES:
        raise InvalidInput(f"calibration must be one of {', '.join(CALIBRATION_CHOICES)}.", field="calibration")


def labels_export_versions(*, project: Project) -> list[int]:
    """The project's instructions version numbers, oldest first: what `instructions_version` may be."""
    return list(Instructions.objects.filter(project=project).order_by("version").values_list("version", flat=True))


def labels_export_count(*, project: Project, **filters) -> int:
    """How many labels the export with these filters holds (lines too, except "pairs": K−1 lines a label)."""
    labels_export_filters_check(project=project, **filters)
    return _labels_matching(project, **filters).count()


def labels_export_rows(*, project: Project, layout: str, **filters) -> Iterator[dict]:
    """Export rows in `layout`; the layout, K and filters are checked now, the rows are read lazily."""
    labels_export_layout_check(project=project, layout=layout)
    labels_export_filters_check(project=project, **filters)
    return _rows(project, layout, labels_for_export(project=project, **filters))


def _parts(project: Project, label: Label) -> dict:
    """The label type's own parts of an answer, canonical, for the 2019 layout (absent where the project has none)."""
    parts: dict = {}
    if label.ranking:
        parts["ranks"] = label.ranking
    if label.likert:
        parts["likert"] = label.likert
    if project.allow_none_acceptable:
        parts["none_acceptable"] = label.none_acceptable
    return parts


def _rows(project: Project, layout: str, labels: QuerySet[Label]) -> Iterator[dict]:
    label_type = BestOfK(project.k)
    ranking = Ranking(project.k)
    for label in labels.iterator(chunk_size=_CHUNK):
        comparison = label.comparison
        query = comparison.query
        samples = [entry.sample for entry in comparison.entries.all()]
        record = label_type.record(query=query.context, samples=[s.text for s in samples], best=label.chosen_index)
        if layout == "2019":
            yield {**record.as_2019(), "comparison_id": comparison.id, "labeler": label.labeler.username,
                   "split": query.split, "unsure": label.unsure, "calibration": comparison.is_calibration,
                   **_parts(project, label)}
        elif layout == "2020":
            yield {
                "info": {"id": query.external_id or str(query.id), "post": query.context},
                "summaries": [{"text": s.text, "policy": s.source} for s in samples],
                "choice": label.chosen_index,
                "worker": label.labeler.username,
                "batch": comparison.batch,
                "split": _SPLITS_2020.get(query.split, query.split),
                # confidence: the 9-point scale (1 = summaries[0] definitely better … 9 = summaries[1]), canonical like
                # choice, when the label has one (labeling/label_types.PairwiseConfidence); the import reads it back.
                "extra": {"unsure": label.unsure, **({"confidence": label.confidence} if label.confidence else {}),
                          **({"none_acceptable": label.none_acceptable} if project.allow_none_acceptable else {})},
            }
        elif layout == "2020-axes":
            for index, sample in enumerate(samples):
                yield {
                    "info": {"id": query.external_id or str(query.id), "post": query.context},
                    "summary": {"text": sample.text, "policy": sample.source,
                                "axes": {axis: ratings[index] for axis, ratings in (label.likert or {}).items()}},
                    "worker": label.labeler.username,
                    "batch": comparison.batch,
                    "split": _SPLITS_2020.get(query.split, query.split),
                }
        elif label.ranking:
            yield from (pair.as_dict() for pair in ranking.pairs(query.context, [s.text for s in samples], label.ranking))
        else:
            yield from (pair.as_dict() for pair in label_type.pairs(record))


def labels_export_jsonl(*, project: Project, layout: str, **filters) -> Iterator[str]:
    """The export as JSON Lines text, one line at a time (for streaming responses and files); checks as
    labels_export_rows, before the first line."""
    rows = labels_export_rows(project=project, layout=layout, **filters)
    return (json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
