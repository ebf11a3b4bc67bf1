"""Every error under /api/ is JSON in the API's shape, also where Django, not DRF, answers; HTML pages elsewhere."""
import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient
from rest_framework.views import APIView

pytestmark = pytest.mark.django_db


def _json_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json", response["Content-Type"]
    body = response.json()
    assert body["code"] == code and body["detail"], body
    return body


@pytest.mark.parametrize("path", [
    "/api/assignments/abc/label/",  # fails <int:assignment_id>
    "/api/assignments/-1/label/",
    "/api/projects/no.dots/",  # fails <slug:project_slug>
    "/api/no-such-endpoint/",
    "/api/",
])
def test_unmatched_api_paths_answer_json_404(client, contractor, path):
    assert _json_error(client.get(path), 404, "not_found") == {"detail": "Not found.", "code": "not_found"}
    client.force_login(contractor)
    _json_error(client.post(path, {"position": 0}, content_type="application/json"), 404, "not_found")


def test_a_token_client_gets_json_404_too(contractor):
    from rest_framework.authtoken.models import Token

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=contractor).key}")
    _json_error(api.post("/api/assignments/abc/label/", {}, format="json"), 404, "not_found")


def test_other_paths_keep_the_html_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.urls("tests.config.urls_errors")
def test_uncaught_exceptions_under_api_answer_json_500():
    client = Client(raise_request_exception=False)
    _json_error(client.get("/api/crash/"), 500, "server_error")
    html = client.get("/crash/")
    assert html.status_code == 500 and html["Content-Type"].startswith("text/html")


@pytest.mark.urls("tests.config.urls_errors")
def test_django_permission_denied_under_api_answers_json_403(client):
    _json_error(client.get("/api/denied/"), 403, "forbidden")
    html = client.get("/denied/")
    assert html.status_code == 403 and html["Content-Type"].startswith("text/html")


def test_bad_requests_under_api_answer_json_400(client):
    """Django rejects a request before any view (here a Host not in ALLOWED_HOSTS)."""
    _json_error(client.get("/api/projects/", HTTP_HOST="evil.example"), 400, "bad_request")
    html = client.get("/accounts/login/", HTTP_HOST="evil.example")
    assert html.status_code == 400 and html["Content-Type"].startswith("text/html")


def _api_views(resolver: URLResolver, prefix: str = "") -> list[tuple[str, object]]:
    out = []
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            out += _api_views(entry, route)
        elif isinstance(entry, URLPattern) and route.startswith("api/"):
            out.append((route, entry.callback))
    return out


def test_every_api_route_is_a_drf_view():
    """So a 405, a parse error or a refused login under /api/ is DRF's JSON answer, never Django's empty one."""
    views = _api_views(get_resolver())
    assert len(views) >= 15
    not_drf = [route for route, callback in views if not issubclass(getattr(callback, "cls", object), APIView)]
    assert not_drf == []


@pytest.mark.parametrize("path", ["/api/projects/", "/api/schema/", "/api/docs/"])
def test_wrong_method_under_api_answers_json_405(client, researcher, path):
    client.force_login(researcher)
    response = client.delete(path)
    assert response.status_code == 405 and response["Content-Type"] == "application/json", response.content[:300]
    assert response.json()["detail"]
