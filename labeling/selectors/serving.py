"""What a labeler is shown: an assignment's samples in display order, and their counts per project (labels
today, comparisons left)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Exists, F, OuterRef
from django.utils import timezone

from labeling.models import Assignment, Comparison, ComparisonSample, Label, Sample

LETTERS = "ABCDEFGH"


@dataclass(frozen=True)
class ShownSample:
    position: int  # display position, 0 = A
    letter: str
    sample: Sample

    @property
    def text(self) -> str:
        """The text as shown: without the single leading space most tokenizers put before a word, which
        under `white-space: pre-wrap` read as an indent (the stored text keeps it). Two or more leading
        spaces are a real indent and stay."""
        text = self.sample.text
        return text[1:] if text.startswith(" ") and not text[1:2].isspace() else text


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


@dataclass(frozen=True)
class QueueCounts:
    today: int  # the labeler's answers (not skips) in the project since local midnight
    remaining: int  # comparisons still wanting labels that the labeler may be served (their current one included)


def labeler_queue_counts(*, user, project_ids: list[int], now: datetime | None = None) -> dict[int, QueueCounts]:
    """Per project: today's labels of `user` and the comparisons left for them (2 queries)."""
    now = timezone.localtime(now or timezone.now())
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    today = dict(
        Label.objects.filter(labeler=user, created_at__gte=start, skipped=False, comparison__project_id__in=project_ids)
        .values_list("comparison__project_id").annotate(n=Count("id")).order_by()
    )
    done_by_user = Assignment.objects.filter(comparison=OuterRef("pk"), labeler=user).exclude(state=Assignment.State.LEASED)
    remaining = dict(
        Comparison.objects.filter(project_id__in=project_ids, status=Comparison.Status.ACTIVE,
                                  label_count__lt=F("labels_wanted"))
        .filter(~Exists(done_by_user))
        .values_list("project_id").annotate(n=Count("id")).order_by()
    )
    return {pid: QueueCounts(today=today.get(pid, 0), remaining=remaining.get(pid, 0)) for pid in project_ids}
