"""The API docs pages render under the site's strict CSP: no violation, nothing fetched off-site, operations shown.

One refusal is expected, and wanted: Redoc's sidebar shows Redocly's logo from cdn.redoc.ly; `img-src` blocks
it and Redoc hides the broken image (config/api_docs.py).
"""
import pytest

from labeling.roles import RESEARCHER
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PASSWORD = "pw-for-tests-123"
REDOCLY_LOGO = "Loading the image 'https://cdn.redoc.ly/redoc/logo-mini.svg' violates"


@pytest.mark.parametrize(("path", "shown", "refusals"), [
    ("/api/docs/", "#swagger-ui .opblock-summary-path[data-path='/api/assignments/{assignment_id}/label/']", []),
    ("/api/redoc/", "[data-section-id^='operation/'] h2", [REDOCLY_LOGO]),
])
def test_docs_page_renders_without_csp_violations(live_server, page, path, shown, refusals):
    UserFactory(username="res", role=RESEARCHER)
    base = live_server.url
    console, responses = [], []
    page.on("console", lambda message: console.append((message.type, message.text)))
    page.on("response", lambda response: responses.append(response.url))

    page.goto(f"{base}{path}")  # anonymous: the login page, then back
    page.fill("input[name=username]", "res")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}{path}")
    page.locator(shown).first.wait_for()
    page.wait_for_load_state("networkidle")

    errors = [text for kind, text in console if kind == "error"]
    assert [text for text in errors if not text.startswith(tuple(refusals))] == [], errors
    assert all(url.startswith(base) or url.startswith("data:") for url in responses), responses
