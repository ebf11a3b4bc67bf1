"""Reads behind the researchers' comparison page: one comparison, its K samples and every label on it."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Prefetch
from django.http import Http404

from labeling.models import (
    Comparison,
    ComparisonSample,
    Label,
    Project,
    Sample,
    SampleFlag,
)
from labeling.roles import researchers
from labeling.selectors.serving import LETTERS


def comparison_get_for_researcher(*, project: Project, comparison_id: int) -> Comparison:
    """The comparison if it belongs to `project` (the caller already checked the researcher role); 404 otherwise."""
    comparison = (
        Comparison.objects.select_related("query", "source_run", "source_run__round")
        .filter(project=project, id=comparison_id)
        .first()
    )
    if comparison is None:
        raise Http404("No such comparison in this project.")
    return comparison


@dataclass(frozen=True)
class FlagRow:
    index: int  # canonical index of the flagged sample
    note: str
    suggested_correction: str


@dataclass(frozen=True)
class LabelRow:
    id: int
    labeler: str
    by_researcher: bool  # a researcher's or admin's answer: the calibration truth on calibration items
    created_at: datetime
    duration_ms: int
    chosen_index: int | None  # canonical; None when skipped
    display_position: int | None  # where the labeler saw the chosen sample, 0 = A
    unsure: bool
    skipped: bool
    skip_reason: str
    instructions_version: int | None
    flags: list[FlagRow]
    parts: str = ""  # the answer beyond the choice (answer_parts_text), canonical

    @property
    def display_letter(self) -> str:
        return "" if self.display_position is None else LETTERS[self.display_position]


@dataclass(frozen=True)
class SampleRow:
    index: int  # canonical index
    sample: Sample
    params_json: str  # generation parameters, pretty-printed (plain text: the template escapes it)


@dataclass(frozen=True)
class ComparisonDetail:
    comparison: Comparison
    samples: list[SampleRow]  # canonical order
    labels: list[LabelRow]  # in the order they were given

    @property
    def researcher_answers(self) -> list[LabelRow]:
        return [row for row in self.labels if row.by_researcher and not row.skipped]


def answer_parts_text(label: Label) -> str:
    """An answer's parts beyond the choice as one line, canonical indexes: "confidence 7/9", "ranking #1 > #0 = #2",
    "overall 6 3 2", "none acceptable" (labeling/label_types.py); "" for a plain choice."""
    parts = []
    if label.confidence:
        parts.append(f"confidence {label.confidence}/9")
    if label.ranking:
        tiers: dict[int, list[int]] = {}
        for index, rank in enumerate(label.ranking):
            tiers.setdefault(rank, []).append(index)
        parts.append("ranking " + " > ".join(" = ".join(f"#{i}" for i in tiers[rank]) for rank in sorted(tiers)))
    for axis, ratings in (label.likert or {}).items():
        parts.append(f"{axis} {' '.join(map(str, ratings))}")
    if label.none_acceptable:
        parts.append("none acceptable")
    return "; ".join(parts)


def _researcher_ids(user_ids: set[int]) -> set[int]:
    """Which of these users answer as researchers (labeling/roles.py)."""
    if not user_ids:
        return set()
    return set(researchers().filter(id__in=user_ids).values_list("id", flat=True))


def comparison_detail(comparison: Comparison) -> ComparisonDetail:
    """Everything the comparison page shows, in at most 4 queries however many labels and flags."""
    entries = list(
        ComparisonSample.objects.filter(comparison=comparison).select_related("sample").order_by("position")
    )
    index_of = {entry.sample_id: entry.position for entry in entries}
    labels = list(
        Label.objects.filter(comparison=comparison)
        .select_related("labeler", "assignment", "instructions")
        .prefetch_related(Prefetch("flags", queryset=SampleFlag.objects.order_by("id")))
        .order_by("created_at", "id")
    )
    researchers = _researcher_ids({label.labeler_id for label in labels})
    rows = [
        LabelRow(
            id=label.id,
            labeler=label.labeler.username,
            by_researcher=label.labeler_id in researchers,
            created_at=label.created_at,
            duration_ms=label.duration_ms,
            chosen_index=label.chosen_index,
            display_position=label.display_position,
            unsure=label.unsure,
            skipped=label.skipped,
            skip_reason=label.skip_reason,
            instructions_version=label.instructions.version if label.instructions else None,
            flags=[FlagRow(index=index_of[flag.sample_id], note=flag.note,
                           suggested_correction=flag.suggested_correction) for flag in label.flags.all()],
            parts=answer_parts_text(label),
        )
        for label in labels
    ]
    samples = [SampleRow(index=entry.position, sample=entry.sample,
                         params_json=json.dumps(entry.sample.generation_params, indent=1, sort_keys=True,
                                                ensure_ascii=False))
               for entry in entries]
    return ComparisonDetail(comparison=comparison, samples=samples, labels=rows)


LABEL_CSV_HEADER = ["label_id", "labeler", "researcher", "created_at", "duration_ms", "chosen_index",
                    "display_position", "display_letter", "unsure", "skipped", "skip_reason",
                    "instructions_version", "flags", "answer_parts"]


def comparison_label_table(detail: ComparisonDetail) -> list[list]:
    """The label table as CSV rows (LABEL_CSV_HEADER); flags as "#index: note [correction: …]" joined by " | ".
    Cells are raw: the CSV writer neutralises formulas."""
    def blank(value):
        return "" if value is None else value

    def flag_text(flag: FlagRow) -> str:
        correction = f" [correction: {flag.suggested_correction}]" if flag.suggested_correction else ""
        return f"#{flag.index}: {flag.note}{correction}"

    return [
        [row.id, row.labeler, row.by_researcher, row.created_at.isoformat(), row.duration_ms, blank(row.chosen_index),
         blank(row.display_position), row.display_letter, row.unsure, row.skipped, row.skip_reason,
         blank(row.instructions_version), " | ".join(flag_text(f) for f in row.flags), row.parts]
        for row in detail.labels
    ]
