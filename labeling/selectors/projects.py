"""Which projects a user may open, as a labeler or as a researcher, and a project's progress.
Every function that takes a user-supplied slug also takes the actor."""
from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from labeling.models import Project
from labeling.roles import PERM_LABEL, is_researcher


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
    """The project with this slug (active or not) for a researcher's page or endpoint.

    The one rule of every researcher page and endpoint of a project: a user who is not a researcher
    (labeling/roles.py) gets 403 whatever the slug, decided before the lookup so the answer says
    nothing about the project (labelers know project slugs anyway); a researcher gets 404 for an
    unknown slug. Anonymous users never get here (login_required sends them to the login page, the
    API's permission classes answer 401). Pages of one run or checkpoint are fetched by run id
    instead, and those are 404 to non-researchers: a run's existence is not theirs to learn.
    """
    if not is_researcher(user):
        raise PermissionDenied("Only researchers may see this.")
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        raise Http404("No such project.")
    return project


def project_get_for_user(*, slug: str, user) -> Project:
    """A project as this user may read it: researchers any, labelers the active ones; 404 otherwise
    (no existence leak). For what both roles read (a project's detail and instructions)."""
    if is_researcher(user):
        project = Project.objects.filter(slug=slug).first()
        if project is None:
            raise Http404("No such project.")
        return project
    return project_get_for_labeler(slug=slug, user=user)


def project_progress(project: Project) -> dict:
    """Comparisons, wanted labels and labels so far (researcher view)."""
    from django.db.models import Count, Sum

    agg = project.comparisons.filter(status="active").aggregate(
        comparisons=Count("id"), wanted=Sum("labels_wanted"), labeled=Sum("label_count")
    )
    return {k: v or 0 for k, v in agg.items()}
