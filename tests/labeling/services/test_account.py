"""API tokens: created once, replaced only when asked, revoked; the key authenticates API calls."""
import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from labeling.errors import Conflict, InvalidInput
from labeling.services import token_create, token_revoke
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _api_status(key: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get("/api/projects/").status_code


def test_created_token_authenticates_as_its_user(contractor):
    token = token_create(user=contractor)
    assert Token.objects.get(user=contractor).key == token.key
    assert _api_status(token.key) == 200


def test_a_second_create_is_refused_unless_replacing(researcher):
    first = token_create(user=researcher)
    with pytest.raises(Conflict):
        token_create(user=researcher)
    assert Token.objects.get(user=researcher).key == first.key
    second = token_create(user=researcher, replace=True)
    assert second.key != first.key
    assert _api_status(first.key) == 401 and _api_status(second.key) == 200


def test_revoke_stops_the_key(researcher):
    token = token_create(user=researcher)
    assert token_revoke(user=researcher) is True
    assert _api_status(token.key) == 401
    assert token_revoke(user=researcher) is False
    assert not Token.objects.filter(user=researcher).exists()


def test_inactive_users_get_no_token():
    user = UserFactory(username="gone", is_active=False)
    with pytest.raises(InvalidInput, match="inactive"):
        token_create(user=user)
    assert not Token.objects.exists()
