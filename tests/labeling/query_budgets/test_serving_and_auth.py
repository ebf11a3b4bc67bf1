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
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.test import APIClient

from labeling.auth_backends import ModelBackendOneQuery, TokenAuthenticationWithPermissions
from labeling.models import Assignment, Comparison, Label
from labeling.roles import ADMIN, CONTRACTOR, RESEARCHER, user_set_role
from labeling.selectors import assignment_for_display
from labeling.services import comparison_next_for_labeler, instructions_acknowledge, instructions_publish
from tests.factories import ProjectFactory, UserFactory, make_comparison

# On PostgreSQL: the token, its user and permissions in one statement, then one call of the SQL
# function (labeling/sql/): next is labeling_next (project by slug, labeler lock, expiry,
# live lease or lease, display data), submit is labeling_submit (lookup, checks, label, state,
# count). Elsewhere (the ORM path, SQLite) permissions are one more query per request, and next
# takes the project, BEGIN, the expiry check, labeler lock, live lease, the pick in a savepoint
# (three), slot, insert, COMMIT and the samples read; submit BEGIN, assignment, instructions,
# label, state, count, COMMIT.
# Plus one each for labelers who earn trust (labeling/services/qualification.py): next reads the labeler's
# standing in the project (qualifying / paused labelers are refused before the lease), submit asks whether
# the comparison is a qualification or gold item (a GoldAnswer by its primary key) to score it.
# Plus one on submit for the confidence scale (labeling/label_types.PairwiseConfidence): the project's label
# type and the display order, read before the SQL function so a missing or contradicting point writes nothing.
NEXT_QUERIES = 3
SUBMIT_QUERIES = 4
SQLITE_EXTRA = {"next": 12, "submit": 7}


def _cycle(client, project) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as next_queries:
        response = client.post(f"/api/assignments/next/{project.slug}/")
    assert response.status_code == 200, response.content
    with CaptureQueriesContext(connection) as submit_queries:
        answer = client.post(f"/api/assignments/{response.json()['id']}/label/", {"position": 1, "duration_ms": 900},
                             format="json")
    assert answer.status_code == 201, answer.content
    # The token statement is prepared once per connection: that PREPARE is not a per-label round trip.
    def per_label(queries):
        return len([q for q in queries.captured_queries if not q["sql"].startswith("PREPARE ")])

    return per_label(next_queries), per_label(submit_queries)


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
    extra = {"next": 0, "submit": 0} if connection.vendor == "postgresql" else SQLITE_EXTRA
    for _ in range(3):
        n_next, n_submit = _cycle(client, project)
        assert n_next <= NEXT_QUERIES + extra["next"]
        assert n_submit <= SUBMIT_QUERIES + extra["submit"]


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


@pytest.mark.django_db
@pytest.mark.parametrize("role", [CONTRACTOR, RESEARCHER, None])
def test_token_authentication_reads_the_same_permissions_fresh_on_every_request(role):
    user = UserFactory(username=f"token-perm-{role}", role=role)
    user.user_permissions.add(*Permission.objects.filter(codename="view_label"))
    key = Token.objects.create(user=user).key
    expected = ModelBackend().get_all_permissions(type(user).objects.get(pk=user.pk))
    authenticated, _ = TokenAuthenticationWithPermissions().authenticate_credentials(key)
    assert ModelBackendOneQuery().get_all_permissions(authenticated) == expected
    if connection.vendor == "postgresql":  # token, user and permissions in one round trip
        assert authenticated._perm_cache == expected

    # A revoked role counts from the next request: nothing outlives the request that read it.
    user.groups.clear()
    user.user_permissions.clear()
    again, _ = TokenAuthenticationWithPermissions().authenticate_credentials(key)
    assert ModelBackendOneQuery().get_all_permissions(again) == set()


@pytest.mark.django_db
def test_revoked_labeling_role_is_refused_on_the_next_token_request():
    project = ProjectFactory(k=2)
    make_comparison(project)
    make_comparison(project)
    labeler = UserFactory(username="revoked", role=CONTRACTOR)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.create(user=labeler).key)
    assert client.post(f"/api/assignments/next/{project.slug}/").status_code == 200
    labeler.groups.clear()
    assert client.post(f"/api/assignments/next/{project.slug}/").status_code == 403
    user_set_role(labeler, CONTRACTOR)
    assert client.post(f"/api/assignments/next/{project.slug}/").status_code == 200


@pytest.mark.django_db
def test_superuser_and_inactive_token_users():
    root = UserFactory(username="token-root", is_superuser=True)
    key = Token.objects.create(user=root).key
    authenticated, _ = TokenAuthenticationWithPermissions().authenticate_credentials(key)
    assert authenticated.has_perm("labeling.administer") and authenticated.has_perm("training.manage_runs")
    gone = UserFactory(username="token-gone", role=CONTRACTOR, is_active=False)
    with pytest.raises(AuthenticationFailed):
        TokenAuthenticationWithPermissions().authenticate_credentials(Token.objects.create(user=gone).key)
    with pytest.raises(AuthenticationFailed):
        TokenAuthenticationWithPermissions().authenticate_credentials("no-such-key")


@pytest.mark.django_db
@pytest.mark.parametrize("calibration_share", [0.0, 1.0])
def test_lease_returns_the_display_data_the_selector_reads(calibration_share):
    project = ProjectFactory(k=4, calibration_share=calibration_share)
    for i in range(3):
        make_comparison(project, is_calibration=i == 1)
    labeler = UserFactory(username=f"display-{calibration_share}", role=CONTRACTOR)
    seen = set()
    for _ in range(3):
        assignment = comparison_next_for_labeler(project=project, labeler=labeler)
        seen.add(assignment.comparison_id)
        if connection.vendor == "postgresql":
            assert assignment.prefetched_display is not None  # read by the lease statement itself
        stored = Assignment.objects.get(pk=assignment.pk)
        assert (stored.comparison_id, stored.labeler_id, stored.display_order, stored.state) == (
            assignment.comparison_id, labeler.id, assignment.display_order, Assignment.State.LEASED)
        assert stored.expires_at == assignment.expires_at and stored.leased_at == assignment.leased_at
        leased, fresh = assignment_for_display(assignment), assignment_for_display(stored)
        assert (leased.context, leased.reference) == (fresh.context, fresh.reference)
        assert [(s.position, s.letter, s.sample.id, s.sample.text) for s in leased.samples] == [
            (s.position, s.letter, s.sample.id, s.sample.text) for s in fresh.samples]
        comparison = Comparison.objects.get(pk=assignment.comparison_id)
        assert comparison.open_slots == comparison.labels_wanted - 1  # the lease took one slot
        assert comparison_next_for_labeler(project=project, labeler=labeler).pk == assignment.pk  # the live lease again
        Assignment.objects.filter(pk=assignment.pk).update(state=Assignment.State.SUBMITTED)
    assert len(seen) == 3
    assert comparison_next_for_labeler(project=project, labeler=labeler) is None


@pytest.mark.django_db
def test_hot_endpoints_answer_what_their_serializers_give():
    """next and submit build their answers as plain dicts: the same as the documented serializers."""
    from labeling.api.serving import AssignmentOutputSerializer, LabelCreateApi

    project = ProjectFactory(k=3)
    make_comparison(project, texts=["<b>one</b>", "two", "three"])
    labeler = UserFactory(username="shape", role=CONTRACTOR)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + Token.objects.create(user=labeler).key)
    shown = client.post(f"/api/assignments/next/{project.slug}/")
    assignment = Assignment.objects.get(pk=shown.json()["id"])
    assert shown.json() == AssignmentOutputSerializer(assignment_for_display(assignment)).data
    assert [s["letter"] for s in shown.json()["samples"]] == ["A", "B", "C"]
    for expected_status in (201, 200):  # the answer, then its replay
        answer = client.post(f"/api/assignments/{assignment.id}/label/", {"position": 2, "duration_ms": 5},
                             format="json")
        assert answer.status_code == expected_status
        label = Label.objects.get(assignment=assignment)
        assert answer.json() == LabelCreateApi.OutputSerializer(label).data
        assert answer.json()["chosen_index"] == assignment.display_order[2]


@pytest.mark.django_db(transaction=True)
def test_token_statement_is_prepared_once_per_connection_and_again_when_forgotten():
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements: PostgreSQL")
    user = UserFactory(username="prepared", role=CONTRACTOR)
    key = Token.objects.create(user=user).key
    auth = TokenAuthenticationWithPermissions()

    def prepared() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE name = 'labeling_token_user'")
            return cursor.fetchone()[0]

    for _ in range(3):
        got, _token = auth.authenticate_credentials(key)
        assert got == user and "labeling.label_comparisons" in got._perm_cache
        assert prepared() == 1
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # what a pooler's reset does
    got, _token = auth.authenticate_credentials(key)
    assert got == user and prepared() == 1
    from labeling import auth_backends

    auth_backends._prepared_on.clear()  # a pooler's server connection that another client prepared
    got, _token = auth.authenticate_credentials(key)
    assert got == user and prepared() == 1
    with pytest.raises(AuthenticationFailed):
        auth.authenticate_credentials("not-a-key")
