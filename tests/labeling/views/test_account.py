"""The account page: every logged-in user creates, replaces and revokes their own API token; the key
is shown once, then only its first 4 characters and its date."""
import pytest
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from labeling.services import token_create

pytestmark = pytest.mark.django_db

PAGE, CREATE, REVOKE = "/account/", "/account/token/create/", "/account/token/revoke/"


def _api_status(key: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get("/api/projects/").status_code


def test_without_a_token_the_page_offers_create(client, contractor):
    client.force_login(contractor)
    html = client.get(PAGE).content.decode()
    assert "You have no API token." in html
    assert f'action="{CREATE}"' in html and "Create token" in html
    assert "Revoke token" not in html


def test_create_shows_the_key_once_then_only_its_start(client, contractor):
    client.force_login(contractor)
    response = client.post(CREATE)
    assert response.status_code == 302 and response["Location"] == PAGE
    key = Token.objects.get(user=contractor).key
    shown = client.get(PAGE)
    assert "no-store" in shown["Cache-Control"]
    assert f'value="{key}"' in shown.content.decode()
    again = client.get(PAGE).content.decode()
    assert key not in again
    assert f"starting <code>{key[:4]}…</code>" in again and "Replace token" in again and "Revoke token" in again
    assert _api_status(key) == 200  # a contractor's own scripts may label through the API


def test_replace_gives_a_new_key_and_the_old_one_stops(client, researcher):
    old = token_create(user=researcher).key
    client.force_login(researcher)
    assert client.post(CREATE, {"replace": "1"}).status_code == 302
    new = Token.objects.get(user=researcher).key
    assert new != old and f'value="{new}"' in client.get(PAGE).content.decode()
    assert _api_status(old) == 401 and _api_status(new) == 200


def test_create_without_replace_keeps_an_existing_token(client, researcher):
    old = token_create(user=researcher).key
    client.force_login(researcher)
    response = client.post(CREATE)
    assert response.status_code == 409
    assert "replace it" in response.content.decode() and old not in response.content.decode()
    assert Token.objects.get(user=researcher).key == old


def test_revoke(client, researcher):
    key = token_create(user=researcher).key
    client.force_login(researcher)
    assert client.post(REVOKE).status_code == 302
    assert not Token.objects.filter(user=researcher).exists()
    assert _api_status(key) == 401
    assert "You have no API token." in client.get(PAGE).content.decode()


def test_a_key_is_only_shown_to_its_own_session(client, researcher):
    """The one-time key lives in the creating session: another login of the same user sees only its start."""
    client.force_login(researcher)
    client.post(CREATE)
    key = Token.objects.get(user=researcher).key
    other = Client()
    other.force_login(researcher)
    assert key not in other.get(PAGE).content.decode()


def test_get_cannot_write_and_csrf_is_enforced(researcher):
    client = Client(enforce_csrf_checks=True)
    client.force_login(researcher)
    assert client.get(CREATE).status_code == 405
    assert client.post(CREATE).status_code == 403
    assert not Token.objects.exists()
    client.get(PAGE)
    assert client.post(CREATE, {"csrfmiddlewaretoken": client.cookies["csrftoken"].value}).status_code == 302
    assert Token.objects.filter(user=researcher).exists()


def test_anonymous_is_sent_to_log_in(client):
    responses = [client.get(PAGE), client.post(CREATE), client.post(REVOKE)]
    assert [(r.status_code, r["Location"].split("?")[0]) for r in responses] == [(302, "/accounts/login/")] * 3
    assert not Token.objects.exists()


def test_top_nav_links_the_account_page_for_everyone(client, contractor):
    client.force_login(contractor)
    assert f'<a href="{PAGE}">Account</a>' in client.get("/").content.decode()
