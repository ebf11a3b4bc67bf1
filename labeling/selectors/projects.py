"""Which projects a user may open, as a labeler or as a researcher, and a project's progress.
Every function that takes a user-supplied slug also takes the actor."""
from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from labeling.models import Project
from labeling.roles import PERM_LABEL, PERM_RESEARCH


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
