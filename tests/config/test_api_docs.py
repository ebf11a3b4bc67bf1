"""The OpenAPI schema and docs: researchers and admins only; the docs pages pass the site's CSP."""
import re

import pytest
from django.contrib.staticfiles import finders
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

DOCS_PAGES = ["api-docs", "api-redoc"]


def _json_refusal(response, status: int) -> None:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json", response["Content-Type"]
    assert response.json()["detail"]


def test_anonymous_schema_request_gets_401_with_token_challenge(client):
    response = client.get(reverse("schema"))
    _json_refusal(response, 401)
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize("name", DOCS_PAGES)
def test_anonymous_browser_on_a_docs_page_is_sent_to_log_in(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={reverse(name)}"


@pytest.mark.parametrize("name", ["schema", *DOCS_PAGES])
def test_contractors_get_403(client, contractor, name):
    client.force_login(contractor)
    _json_refusal(client.get(reverse(name)), 403)


def test_contractor_token_gets_403_on_the_schema(contractor):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=contractor).key}")
    _json_refusal(api.get(reverse("schema")), 403)


@pytest.mark.parametrize("name", ["schema", *DOCS_PAGES])
@pytest.mark.parametrize("role", ["researcher", "admin_user"])
def test_researchers_and_admins_read_them(client, request, role, name):
    client.force_login(request.getfixturevalue(role))
    response = client.get(reverse(name))
    assert response.status_code == 200


def test_researcher_token_reads_the_schema(researcher):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=researcher).key}")
    response = api.get(reverse("schema"), HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert "/api/assignments/{assignment_id}/label/" in response.json()["paths"]


@pytest.mark.parametrize("name", DOCS_PAGES)
def test_docs_pages_load_only_same_origin_files_and_no_inline_code(client, researcher, name):
    """The site's CSP: `script-src 'self'; style-src 'self'`, no inline script or style, nothing off-site."""
    client.force_login(researcher)
    response = client.get(reverse(name))
    csp = response["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe-inline" not in csp
    html = response.content.decode()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
    assert scripts
    assert all('src="' in attrs and not body.strip() for attrs, body in scripts), scripts
    assert "<style" not in html and " style=" not in html
    urls = re.findall(r"""<(?:script|link)\b[^>]*\b(?:src|href)=["']([^"']+)""", html)
    assert all(url.startswith(("/static/", f"{reverse(name)}?")) for url in urls), urls
    for url in urls:
        if url.startswith("/static/"):
            assert finders.find(url.removeprefix("/static/")), url  # served by WhiteNoise after collectstatic


def test_swagger_init_script_is_a_same_origin_file(client, researcher):
    client.force_login(researcher)
    page = client.get(reverse("api-docs")).content.decode()
    script_url = re.search(r'<script src="(/api/docs/\?[^"]*script=[^"]*)"', page).group(1)
    script = client.get(script_url.replace("&amp;", "&"))
    assert script.status_code == 200 and script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle(" in script.content.decode()
