"""REST API: projects created, listed and read, and their progress."""
import json

import pytest

from labeling.models import Project
from tests.factories import ProjectFactory, make_comparison
from tests.labeling.api.helpers import url as _url

pytestmark = pytest.mark.django_db


def test_project_create(api, researcher):
    api.force_authenticate(researcher)
    response = api.post(_url("api-project-create"), {"name": "Books", "slug": "books", "k": 2}, format="json")
    assert response.status_code == 201
    assert response.json()["k"] == 2 and response.json()["slug"] == "books"
    assert response.json()["calibration_labels_wanted"] == 10
    assert Project.objects.get(slug="books").created_by == researcher


def test_project_create_without_k_takes_the_default(api, researcher):
    api.force_authenticate(researcher)
    response = api.post(_url("api-project-create"), {"name": "Plain", "slug": "plain"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["k"] == 4


@pytest.mark.parametrize("k", [1, 9, 0, -2, "4", 4.0, None, True])
def test_project_create_with_k_outside_2_to_8_is_400(api, researcher, k):
    api.force_authenticate(researcher)
    response = api.post(_url("api-project-create"), {"name": "Bad", "slug": "bad", "k": k}, format="json")
    assert response.status_code == 400
    assert "2" in json.dumps(response.json()) and "8" in json.dumps(response.json())
    assert not Project.objects.filter(slug="bad").exists()


@pytest.mark.parametrize("wanted", [0, 1001, -1])
def test_project_create_with_calibration_labels_outside_1_to_1000_is_400(api, researcher, wanted):
    api.force_authenticate(researcher)
    response = api.post(_url("api-project-create"), {"name": "Bad", "slug": "bad", "calibration_labels_wanted": wanted},
                        format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "calibration_labels_wanted"
    assert not Project.objects.filter(slug="bad").exists()


def test_project_create_duplicate_slug_is_400(api, researcher, project):
    api.force_authenticate(researcher)
    response = api.post(_url("api-project-create"), {"name": "x", "slug": project.slug, "k": 4}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "slug"


def test_project_list_hides_inactive_projects_from_labelers(api, contractor, researcher):
    ProjectFactory(slug="open", name="Open")
    ProjectFactory(slug="closed", name="Closed", is_active=False)
    api.force_authenticate(contractor)
    assert [p["slug"] for p in api.get(_url("api-project-list")).json()] == ["open"]
    assert api.get(_url("api-project-detail", project_slug="closed")).status_code == 404
    api.force_authenticate(researcher)
    assert [p["slug"] for p in api.get(_url("api-project-list")).json()] == ["closed", "open"]
    assert api.get(_url("api-project-detail", project_slug="closed")).status_code == 200


def test_project_progress(api, researcher, project, contractor):
    make_comparison(project, labels_wanted=2)
    make_comparison(project)
    api.force_authenticate(researcher)
    assert api.get(_url("api-project-progress", project)).json() == {"comparisons": 2, "wanted": 3, "labeled": 0}
