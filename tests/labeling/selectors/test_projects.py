"""Which projects a user may open, as a labeler or as a researcher (labeling/selectors/projects.py)."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import Http404

from labeling.selectors import project_get_for_researcher, project_get_for_user

pytestmark = pytest.mark.django_db


def test_project_get_for_researcher(project, researcher, contractor):
    assert project_get_for_researcher(slug=project.slug, user=researcher) == project
    with pytest.raises(PermissionDenied):
        project_get_for_researcher(slug=project.slug, user=contractor)
    with pytest.raises(PermissionDenied):
        project_get_for_researcher(slug="no-such", user=contractor)  # no existence check before the role check
    with pytest.raises(Http404):
        project_get_for_researcher(slug="no-such", user=researcher)
    with pytest.raises(PermissionDenied):
        project_get_for_researcher(slug=project.slug, user=AnonymousUser())


def test_project_get_for_user(project, researcher, contractor):
    """What both roles read: researchers any project, labelers active ones, anything else 404."""
    project.is_active = False
    project.save(update_fields=["is_active"])
    assert project_get_for_user(slug=project.slug, user=researcher) == project
    for user, slug in ((contractor, project.slug), (researcher, "no-such"), (AnonymousUser(), project.slug)):
        with pytest.raises(Http404):
            project_get_for_user(slug=slug, user=user)
    project.is_active = True
    project.save(update_fields=["is_active"])
    assert project_get_for_user(slug=project.slug, user=contractor) == project
