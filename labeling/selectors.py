"""Reads of the labeling app. Every function that takes a user-supplied id also takes the actor."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from labeling.models import Assignment, ComparisonSample, Label, Project, Sample
from labeling.roles import PERM_LABEL, PERM_RESEARCH

LETTERS = "ABCDEFGH"


def projects_for_user(user) -> QuerySet[Project]:
    if not user.is_authenticated or not user.has_perm(PERM_LABEL):
        return Project.objects.none()
    return Project.objects.filter(is_active=True).order_by("name")


def project_get_for_labeler(*, slug: str, user) -> Project:
    """The active project with this slug, if the user may label; 404 otherwise (no existence leak)."""
    project = projects_for_user(user).filter(slug=slug).first()
    if project is None:
        raise Http404("No such project.")
    return project


def project_get_for_researcher(*, slug: str, user) -> Project:
    if not user.is_authenticated or not user.has_perm(PERM_RESEARCH):
        raise Http404("No such project.")
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        raise Http404("No such project.")
    return project


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


def project_progress(project: Project) -> dict:
    """Comparisons, wanted labels and labels so far (researcher view)."""
    from django.db.models import Count, Sum

    agg = project.comparisons.filter(status="active").aggregate(
        comparisons=Count("id"), wanted=Sum("labels_wanted"), labeled=Sum("label_count")
    )
    return {k: v or 0 for k, v in agg.items()}


def project_get_for_research_page(*, slug: str, user) -> Project:
    """Like project_get_for_researcher, but a signed-in user without the researcher role gets 403
    (the researcher dashboards answer 403, as the issue asks); an unknown slug is 404."""
    if user.is_authenticated and not user.has_perm(PERM_RESEARCH):
        raise PermissionDenied("Only researchers may see this page.")
    return project_get_for_researcher(slug=slug, user=user)
