"""`manage.py demo`: it builds the demo base before seeding, and its server runs with DEBUG off, so
people see the site's own error pages (never Django's debug pages)."""
import pytest
from django.core.management import call_command
from django.template.loader import render_to_string
from django.test import RequestFactory
from django.urls import reverse

from config.api_errors import server_error
from labeling.management.commands.demo import server_env
from labeling.models import Project

pytestmark = pytest.mark.django_db


@pytest.fixture
def var(settings, tmp_path):
    settings.VAR_DIR = tmp_path / "var"
    settings.ARTIFACTS_DIR = tmp_path / "var" / "artifacts"
    return tmp_path


def test_seed_only_builds_the_base_first_and_points_the_projects_at_it(var, monkeypatch, capsys):
    import training.services.demo_base as demo_base

    built = var / "bases" / "demo-0123"
    calls = []

    def fake_ensure(*, log):
        calls.append(Project.objects.count())  # before any project is seeded
        log("pretraining …")
        return built

    monkeypatch.setattr(demo_base, "demo_base_ensure", fake_ensure)
    call_command("demo", "--seed-only")
    assert calls == [0] and "pretraining …" in capsys.readouterr().out
    assert {p.training_settings["base_model"] for p in Project.objects.all()} == {str(built)}


def test_no_base_seeds_without_pretraining(var, monkeypatch):
    import training.services.demo_base as demo_base

    monkeypatch.setattr(demo_base, "demo_base_ensure", lambda **_: pytest.fail("pretrained"))
    call_command("demo", "--seed-only", "--no-base")
    assert {p.training_settings["base_model"] for p in Project.objects.all()} == {"tiny"}


def test_server_runs_with_debug_off_unless_asked():
    env = server_env("127.0.0.1:8000", {"PATH": "/bin"})
    assert env["DEBUG"] == "0" and env["ALLOWED_HOSTS"] == "localhost,127.0.0.1,[::1]"
    assert server_env("0.0.0.0:8000", {})["ALLOWED_HOSTS"] == "*"
    assert server_env("demo.lan:8000", {})["ALLOWED_HOSTS"].endswith(",demo.lan")
    assert server_env("127.0.0.1:8000", {"DEBUG": "1", "ALLOWED_HOSTS": "x"}) == {
        "DEBUG": "1", "ALLOWED_HOSTS": "x", "RLHF_SKIP_BOOTSTRAP": "1"}


# --- the error pages, as the demo's server (DEBUG off) shows them -------------------------------


def test_unknown_page_is_the_sites_404(client, settings, contractor):
    settings.DEBUG = False
    client.force_login(contractor)
    response = client.get("/no-such-page/<b>")
    page = response.content.decode()
    assert response.status_code == 404 and "<h1>Not found</h1>" in page
    assert "/no-such-page/%3Cb%3E" in page and "<b>" not in page  # the path, quoted
    assert "URLconf" not in page and contractor.username in page  # base.html, with the user's bar
    api = client.get("/api/no-such-endpoint/")
    assert api.status_code == 404 and api.json()["code"] == "not_found"  # the API still answers JSON


def test_forbidden_page_is_the_sites_403(client, settings, contractor):
    settings.DEBUG = False
    client.force_login(contractor)
    response = client.get(reverse("dashboard-project", kwargs={"slug": "anything"}))
    page = response.content.decode()
    assert response.status_code == 403 and "<h1>Not allowed</h1>" in page and "Traceback" not in page


def test_server_error_page_needs_no_request():
    assert "Something went wrong" in render_to_string("500.html")
    response = server_error(RequestFactory().get("/projects/"))
    assert response.status_code == 500 and b"Something went wrong" in response.content
