"""REST API: token command and token auth, the anonymous challenge, the OpenAPI schema and its docs pages."""
import re
from io import StringIO

import pytest
from django.contrib.staticfiles import finders
from django.core.management import CommandError, call_command
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.labeling.api.helpers import url as _url

pytestmark = pytest.mark.django_db


def test_token_command_and_token_auth(project, researcher):
    out = StringIO()
    call_command("create_api_token", researcher.username, stdout=out)
    key = out.getvalue().strip()
    assert Token.objects.get(user=researcher).key == key
    client = APIClient()
    assert client.get(_url("api-project-progress", project)).status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get(_url("api-project-progress", project)).status_code == 200

    again = StringIO()
    call_command("create_api_token", researcher.username, stdout=again)
    assert again.getvalue().strip() == key  # stable unless rotated
    rotated = StringIO()
    call_command("create_api_token", researcher.username, "--rotate", stdout=rotated)
    assert rotated.getvalue().strip() != key
    assert client.get(_url("api-project-progress", project)).status_code == 401


def test_token_command_unknown_user():
    with pytest.raises(CommandError, match="No user"):
        call_command("create_api_token", "nobody", stdout=StringIO())


def test_anonymous_gets_401_with_token_challenge(project):
    response = APIClient().get(_url("api-project-list"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_schema_validates_without_warnings(tmp_path):
    """`manage.py spectacular --validate --fail-on-warn` passes (every endpoint typed, no name clashes)."""
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    schema = target.read_text()
    for path in ["/api/projects/", "/api/projects/create/", "/api/projects/{project_slug}/",
                 "/api/projects/{project_slug}/progress/", "/api/projects/{project_slug}/queries/import/",
                 "/api/projects/{project_slug}/comparisons/import/", "/api/projects/{project_slug}/labels/export/",
                 "/api/projects/{project_slug}/instructions/", "/api/projects/{project_slug}/instructions/publish/",
                 "/api/projects/{project_slug}/instructions/ack/", "/api/assignments/{assignment_id}/label/",
                 "/api/assignments/next/{project_slug}/", "/api/projects/{project_slug}/instructions/versions/"]:
        assert f"  {path}:\n" in schema, path
    assert "application/x-ndjson" in schema and "multipart/form-data" in schema
    assert "#/components/schemas/ErrorOutput" in schema and "'413':" in schema  # error answers are documented too


@pytest.mark.parametrize("name", ["schema", "api-docs", "api-redoc"])
def test_schema_and_docs_are_for_researchers(client, contractor, researcher, name):
    """Anonymous: 401 (schema) or the login page (docs); in detail in tests/config/test_api_docs.py."""
    assert client.get(reverse(name)).status_code in (302, 401)
    client.force_login(contractor)
    assert client.get(reverse(name)).status_code == 403
    client.force_login(researcher)
    assert client.get(reverse(name)).status_code == 200


def test_docs_page_uses_only_local_assets(client, researcher):
    client.force_login(researcher)
    page = client.get(reverse("api-docs"))
    assert page.status_code == 200
    html = page.content.decode()
    urls = re.findall(r"""(?:src|href)=["']([^"']+)""", html)
    script = client.get(reverse("api-docs") + "?script=")
    assert script.status_code == 200
    urls += re.findall(r"""["'](https?://[^"']+|/static/[^"']+)""", script.content.decode())
    assert urls
    assert all(u.startswith(("/static/", "/api/")) for u in urls), urls
    assert "swagger-ui-dist" in html  # the vendored sidecar copy
    for static_url in [u for u in urls if u.startswith("/static/")]:
        # Served by WhiteNoise after collectstatic; here: the file exists in the installed sidecar.
        assert finders.find(static_url.removeprefix("/static/")), static_url
