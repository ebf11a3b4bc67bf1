"""What a labeler is shown: an assignment's samples in display order, and today's count."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from labeling.models import Assignment, ComparisonSample, Label, Sample

LETTERS = "ABCDEFGH"


@dataclass(frozen=True)
class ShownSample:
    position: int  # display position, 0 = A
    letter: str
    sample: Sample


@dataclass(frozen=True)
class AssignmentView:
    assignment: Assignment
    context: str
    reference: str
    samples: list[ShownSample]


def assignment_for_display(assignment: Assignment) -> AssignmentView:
    """The assignment's samples in its display order, lettered A, B, … (1 query; none when the lease read them)."""
    prefetched = getattr(assignment, "prefetched_display", None)
    if prefetched is not None:
        query, entries = prefetched
    else:
        entries = {
            e.position: e.sample
            for e in ComparisonSample.objects.filter(comparison_id=assignment.comparison_id)
            .select_related("sample", "sample__query")
        }
        query = next(iter(entries.values())).query
    shown = [
        ShownSample(position=p, letter=LETTERS[p], sample=entries[canonical])
        for p, canonical in enumerate(assignment.display_order)
    ]
    return AssignmentView(assignment=assignment, context=query.context, reference=query.reference, samples=shown)


def labeler_labels_today(*, user, now: datetime | None = None) -> int:
    now = timezone.localtime(now or timezone.now())
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return Label.objects.filter(labeler=user, created_at__gte=start, skipped=False).count()
