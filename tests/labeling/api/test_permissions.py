"""The role × endpoint allow table of the REST API (RELIABILITY.md "Security"), and foreign/unknown ids.

Each row is one endpoint; each column the status the role gets for a well-formed request:
anonymous 401 (token challenge), a role lacking the permission 403, allowed roles the success code.
"""
import json

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from labeling.models import Assignment, Comparison, Instructions, InstructionsAck, Label, Project, Query
from labeling.services import (
    LabelInput,
    comparison_next_for_labeler,
    instructions_acknowledge,
    instructions_publish,
    label_submit,
)
from tests.factories import ProjectFactory, TrainingRunFactory, make_comparison

pytestmark = pytest.mark.django_db

ROLES = ["anonymous", "contractor", "researcher", "admin"]
LINE_2019 = json.dumps({"query": "q", "sample0": "a", "sample1": "b", "sample2": "c", "sample3": "d", "best": 1}) + "\n"

#  endpoint name,            method, body (JSON or raw JSONL),              anonymous, contractor, researcher, admin
TABLE = [
    ("api-project-list",         "get",  None,                                 401, 200, 200, 200),
    ("api-project-create",       "post", {"name": "N", "slug": "fresh", "k": 2}, 401, 403, 201, 201),
    ("api-project-detail",       "get",  None,                                 401, 200, 200, 200),
    ("api-project-progress",     "get",  None,                                 401, 403, 200, 200),
    ("api-queries-import",       "post", '{"context": "c"}\n',                 401, 403, 201, 201),
    ("api-comparisons-import",   "post", LINE_2019,                            401, 403, 201, 201),
    ("api-labels-export",        "get",  None,                                 401, 403, 200, 200),
    ("api-instructions",         "get",  None,                                 401, 200, 200, 200),
    ("api-instructions-publish", "post", {"body": "v2"},                       401, 403, 201, 201),
    ("api-instructions-ack",     "post", {"version": 1},                       401, 200, 200, 200),
    ("api-assignment-next",      "post", None,                                 401, 200, 200, 200),
    ("api-instructions-versions", "get", None,                                 401, 403, 200, 200),
    ("api-dashboard-labelers",   "get",  None,                                 401, 403, 200, 200),
]
ROWS = [pytest.param(*row[:3], dict(zip(ROLES, row[3:], strict=True)), role, id=f"{row[0]}-{role}")
        for row in TABLE for role in ROLES]


@pytest.fixture
def users(contractor, researcher, admin_user):
    return {"anonymous": None, "contractor": contractor, "researcher": researcher, "admin": admin_user}


@pytest.fixture
def world(project):
    """A project with acknowledged-able instructions and something to label."""
    instructions_publish(project=project, body="Pick the best.")
    make_comparison(project)
    return project


def _call(client, name, method, body, project):
    kwargs = {} if name in ("api-project-list", "api-project-create") else {"project_slug": project.slug}
    url = reverse(name, kwargs=kwargs or None)
    if isinstance(body, str):
        return getattr(client, method)(url, body.encode(), content_type="application/x-ndjson")
    return getattr(client, method)(url, body, format="json")


def _writes() -> tuple:
    return tuple(m.objects.count() for m in (Project, Query, Comparison, Label, Instructions, InstructionsAck))


@pytest.mark.parametrize(("name", "method", "body", "expected", "role"), ROWS)
def test_role_endpoint_table(world, users, name, method, body, expected, role):
    client = APIClient()
    if users[role] is not None:
        client.force_authenticate(users[role])
    before = _writes()
    response = _call(client, name, method, body, world)
    assert response.status_code == expected[role], response.content
    if expected[role] in (401, 403):
        assert _writes() == before  # refused requests write nothing


@pytest.mark.parametrize("role", ROLES)
def test_label_create_own_assignment_by_role(world, users, role):
    """Anyone who may label answers their own lease; anonymous is 401."""
    client = APIClient()
    user = users[role]
    owner = user or users["contractor"]
    instructions_acknowledge(instructions=world.instructions.get(), user=owner)
    assignment = comparison_next_for_labeler(project=world, labeler=owner)
    if user is not None:
        client.force_authenticate(user)
    response = client.post(reverse("api-label-create", kwargs={"assignment_id": assignment.id}),
                           {"position": 0, "duration_ms": 10}, format="json")
    assert response.status_code == {"anonymous": 401}.get(role, 201)
    assert Label.objects.count() == {"anonymous": 0}.get(role, 1)


@pytest.mark.parametrize("role", ["contractor", "researcher", "admin"])
def test_another_labelers_assignment_is_403_and_writes_nothing(world, users, other_contractor, role):
    assignment = comparison_next_for_labeler(project=world, labeler=other_contractor)
    client = APIClient()
    client.force_authenticate(users[role])
    response = client.post(reverse("api-label-create", kwargs={"assignment_id": assignment.id}),
                           {"position": 0, "duration_ms": 10}, format="json")
    assert response.status_code == 403
    assert not Label.objects.exists()
    assert Assignment.objects.get(id=assignment.id).state == Assignment.State.LEASED


def test_unknown_assignment_is_404(world, contractor):
    client = APIClient()
    client.force_authenticate(contractor)
    response = client.post(reverse("api-label-create", kwargs={"assignment_id": 999999}), {"position": 0, "duration_ms": 1},
                           format="json")
    assert response.status_code == 404


@pytest.mark.parametrize(("name", "method"), [(row[0], row[1]) for row in TABLE if row[0] not in ("api-project-list",
                                                                                                  "api-project-create")])
def test_unknown_project_is_404(world, researcher, name, method):
    client = APIClient()
    client.force_authenticate(researcher)
    response = getattr(client, method)(reverse(name, kwargs={"project_slug": "no-such-project"}), {}, format="json")
    assert response.status_code == 404


@pytest.mark.parametrize("name", ["api-project-detail", "api-instructions", "api-assignment-next", "api-instructions-ack"])
def test_inactive_project_is_404_for_contractors(contractor, name):
    hidden = ProjectFactory(is_active=False)
    instructions_publish(project=hidden, body="x")
    make_comparison(hidden)
    client = APIClient()
    client.force_authenticate(contractor)
    method = "get" if name in ("api-project-detail", "api-instructions") else "post"
    response = getattr(client, method)(reverse(name, kwargs={"project_slug": hidden.slug}), {"version": 1}, format="json")
    assert response.status_code == 404
    assert not Assignment.objects.exists() and not InstructionsAck.objects.exists()


def test_contractor_sees_no_calibration_flag_or_answers(project, contractor, researcher):
    """A calibration item served to a contractor carries no calibration flag and no one's answer."""
    project.calibration_share = 1.0
    project.save()
    calibration = make_comparison(project, is_calibration=True, labels_wanted=2)
    lease = comparison_next_for_labeler(project=project, labeler=researcher)
    label_submit(assignment_id=lease.id, labeler=researcher, answer=LabelInput(position=1, duration_ms=1))
    client = APIClient()
    client.force_authenticate(contractor)
    response = client.post(reverse("api-assignment-next", kwargs={"project_slug": project.slug}))
    assert response.status_code == 200
    assert response.json()["comparison_id"] == calibration.id
    body = json.dumps(response.json())
    for leak in ("calibration", "chosen", "best", "label", researcher.username):
        assert leak not in body
    assert client.get(reverse("api-labels-export", kwargs={"project_slug": project.slug})).status_code == 403


def test_contractor_cannot_open_admin_label_pages(client, contractor, admin_user):
    client.force_login(contractor)
    assert client.get(reverse("admin:labeling_label_changelist")).status_code == 302  # to the admin login
    client.force_login(admin_user)
    assert client.get(reverse("admin:labeling_label_changelist")).status_code == 200


#  researcher HTML pages and their htmx partials: page name, needs,                anonymous, contractor, researcher, admin
PAGE_TABLE = [
    ("training-run-detail",           "run",                                             302, 404, 200, 200),
    ("admin:labeling_label_changelist", None,                                            302, 302, 302, 200),
    ("admin:labeling_comparison_changelist", None,                                       302, 302, 302, 200),
    # every page of a project answers 403 to contractors (labeling.selectors.project_get_for_researcher)
    ("training-project-runs",         "project",                                         302, 403, 200, 200),
    ("labeling-instructions-list",    "project",                                         302, 403, 200, 200),
    ("labeling-instructions-edit",    "project",                                         302, 403, 200, 200),
    ("labeling-instructions-diff",    "project",                                         302, 403, 200, 200),
    ("labeling-comparison-detail",    "comparison",                                      302, 403, 200, 200),
    ("labeling-comparison-labels-csv", "comparison",                                     302, 403, 200, 200),
    ("training-win-rates-csv",        "project",                                         302, 403, 200, 200),
    ("dashboard-project",             "project",                                         302, 403, 200, 200),
    ("dashboard-labelers",            "project",                                         302, 403, 200, 200),
]
PAGE_ROWS = [pytest.param(row[0], row[1], dict(zip(ROLES, row[2:], strict=True)), role, hx, id=f"{row[0]}-{role}-{hx}")
             for row in PAGE_TABLE for role in ROLES for hx in ("page", "htmx")]


@pytest.mark.parametrize(("name", "needs", "expected", "role", "hx"), PAGE_ROWS)
def test_researcher_pages_table(client, world, users, name, needs, expected, role, hx):
    """Researcher pages (full and htmx partial) of a run are 404 for contractors (not even a run's
    existence shows); every page of a project, whose URL names only a slug a contractor already knows,
    is 403, decided before the lookup (labeling.selectors.project_get_for_researcher)."""
    run = TrainingRunFactory(project=world)  # never served to the contractor
    comparison = world.comparisons.first()
    kwargs = {"project": {"slug": world.slug}, "run": {"run_id": run.id}, None: {},
              "comparison": {"slug": world.slug, "comparison_id": comparison.id}}[needs]
    if users[role] is not None:
        client.force_login(users[role])
    headers = {"HTTP_HX_REQUEST": "true"} if hx == "htmx" else {}
    response = client.get(reverse(name, kwargs=kwargs or None), **headers)
    assert response.status_code == expected[role]
