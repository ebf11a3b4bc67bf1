"""The labeling hot path's round trips: next and submit through the API, counted.

Each query is a round trip on every label; these budgets keep a refactor from quietly adding
one (bench/labeling_load.py measures what they cost). The counts must not grow with the table.
"""
import pytest
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AnonymousUser, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from labeling.auth_backends import ModelBackendOneQuery
from labeling.roles import ADMIN, CONTRACTOR, RESEARCHER
from labeling.services import instructions_acknowledge, instructions_publish
from tests.factories import ProjectFactory, UserFactory, make_comparison

NEXT_QUERIES = 12  # token+user, permissions, project, expiry check, BEGIN, labeler lock, live lease, pick, slot, insert, COMMIT, samples
SUBMIT_QUERIES = 9  # token+user, permissions, BEGIN, assignment, instructions+ack, label, assignment state, count, COMMIT


def _cycle(client, project) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as next_queries:
        response = client.post(f"/api/assignments/next/{project.slug}/")
    assert response.status_code == 200, response.content
    with CaptureQueriesContext(connection) as submit_queries:
        answer = client.post(f"/api/assignments/{response.json()['id']}/label/", {"position": 1, "duration_ms": 900},
                             format="json")
    assert answer.status_code == 201, answer.content
    return len(next_queries), len(submit_queries)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("comparisons", [3, 40])
def test_next_and_submit_stay_within_their_query_budget(comparisons):
    project = ProjectFactory(k=4, calibration_share=0.0)
    instructions = instructions_publish(project=project, body="Pick the best.")
    for _ in range(comparisons):
        make_comparison(project)
    labeler = UserFactory(username="budget", role=CONTRACTOR)
    instructions_acknowledge(instructions=instructions, user=labeler)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.create(user=labeler).key)
    for _ in range(3):
        n_next, n_submit = _cycle(client, project)
        assert n_next <= NEXT_QUERIES
        assert n_submit <= SUBMIT_QUERIES


@pytest.mark.django_db
@pytest.mark.parametrize("role", [CONTRACTOR, RESEARCHER, ADMIN, None])
def test_one_query_backend_grants_what_model_backend_grants(role, django_assert_num_queries):
    user = UserFactory(username=f"perm-{role}", role=role)
    user.user_permissions.add(*Permission.objects.filter(codename="view_label"))  # a direct one, besides the role's
    expected = ModelBackend().get_all_permissions(type(user).objects.get(pk=user.pk))
    fresh = type(user).objects.get(pk=user.pk)
    with django_assert_num_queries(1):
        got = ModelBackendOneQuery().get_all_permissions(fresh)
        assert ModelBackendOneQuery().has_perm(fresh, "labeling.view_label")  # cached on the user: no new query
    assert got == expected
    assert "labeling.view_label" in got


@pytest.mark.django_db
def test_one_query_backend_superuser_inactive_and_anonymous():
    superuser = UserFactory(username="root-perms", is_superuser=True)
    assert ModelBackendOneQuery().get_all_permissions(superuser) == ModelBackend().get_all_permissions(
        type(superuser).objects.get(pk=superuser.pk))
    inactive = UserFactory(username="gone", role=RESEARCHER, is_active=False)
    assert ModelBackendOneQuery().get_all_permissions(inactive) == set()
    assert not ModelBackendOneQuery().has_perm(inactive, "labeling.view_research")
    assert ModelBackendOneQuery().get_all_permissions(AnonymousUser()) == set()
