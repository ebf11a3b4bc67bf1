"""The new-project page: a project and its instructions v1 from one form, errors next to their
fields with nothing written, CSRF enforced, researchers and admins only."""
import re
from types import ModuleType

import pytest
from django.http import HttpResponse
from django.test import Client
from django.urls import include, path, resolve, reverse

from labeling import urls as labeling_urls
from labeling.models import Instructions, Project
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db

URL = "/projects/new/"


def _form(**overrides):
    data = {
        "name": "Helpful summaries", "slug": "helpful-summaries", "task_kind": "summarization", "k": "2",
        "labels_per_comparison": "3", "calibration_share": "0.25", "calibration_labels_wanted": "12",
        "description": "TL;DR of Reddit posts.", "instructions": "Pick the summary a **busy reader** prefers.",
    }
    data.update(overrides)
    return data


def _field_html(html: str, name: str) -> str:
    """The markup of one field's block: its label, input, help text and errors."""
    start = html.index(f'id="field-{name}"')
    end = html.find('<div class="field"', start)
    return html[start: end if end != -1 else html.index("</form>", start)]


def _urlconf(*extra) -> ModuleType:
    """The labeling and training pages, without the import page (plus `extra` routes)."""
    module = ModuleType("new_project_urls")
    labeling = [p for p in labeling_urls.urlpatterns if getattr(p, "name", None) != "labeling-import"]
    module.urlpatterns = [*extra, path("training/", include("training.urls")), path("", include(labeling))]
    return module


def _import_stub(request, slug):
    return HttpResponse("import page")


def test_new_is_not_captured_by_a_slug_pattern():
    assert reverse("labeling-project-new") == URL
    assert resolve(URL).url_name == "labeling-project-new"


def test_page_has_every_field_with_labels_and_the_name_focused(client, researcher):
    client.force_login(researcher)
    response = client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    for name in ["name", "slug", "task_kind", "k", "labels_per_comparison", "calibration_share",
                 "calibration_labels_wanted", "description", "instructions"]:
        assert f'<label for="id_{name}">' in _field_html(html, name), name
    assert re.search(r'<input[^>]*name="name"[^>]*autofocus', html)
    assert "labeling/project_new.js" in html
    assert "<script>" not in html  # CSP: no inline script


def test_create_writes_project_and_instructions_v1_and_goes_to_the_import_page(client, researcher, settings):
    settings.ROOT_URLCONF = _urlconf(path("projects/<slug:slug>/import/", _import_stub, name="labeling-import"))
    client.force_login(researcher)
    response = client.post(URL, _form())
    assert response.status_code == 302
    assert response["Location"] == "/projects/helpful-summaries/import/"
    project = Project.objects.get(slug="helpful-summaries")
    assert (project.name, project.task_kind, project.k, project.labels_per_comparison, project.calibration_share,
            project.calibration_labels_wanted, project.description, project.created_by) == (
        "Helpful summaries", "summarization", 2, 3, 0.25, 12, "TL;DR of Reddit posts.", researcher)
    [first] = Instructions.objects.filter(project=project)
    assert (first.version, first.body, first.created_by) == (
        1, "Pick the summary a **busy reader** prefers.", researcher)


def test_without_an_import_page_create_goes_to_the_rounds_page(client, researcher, settings):
    settings.ROOT_URLCONF = _urlconf()
    client.force_login(researcher)
    response = client.post(URL, _form())
    assert response.status_code == 302
    assert response["Location"] == "/training/projects/helpful-summaries/runs/"


def test_an_empty_slug_is_made_from_the_name(client, admin_user):
    client.force_login(admin_user)
    response = client.post(URL, _form(name="Ünïcode & Friends: v2", slug=""))
    assert response.status_code == 302
    assert Project.objects.get().slug == "unicode-friends-v2"


@pytest.mark.parametrize(("field", "value", "message"), [
    ("name", "", "This field is required."),
    ("slug", "no spaces", "letters, numbers, underscores or hyphens"),
    ("slug", "new", "the name of a page"),
    ("k", "9", "less than or equal to 8"),
    ("k", "two", "Enter a whole number."),
    ("labels_per_comparison", "0", "greater than or equal to 1"),
    ("calibration_share", "1.5", "less than or equal to 1"),
    ("calibration_labels_wanted", "1001", "less than or equal to 1000"),
    ("task_kind", "poetry", "Select a valid choice."),
    ("instructions", "", "This field is required."),
    ("instructions", "   \r\n  ", "Instructions cannot be empty."),
])
def test_bad_input_is_an_error_next_to_its_field_and_writes_nothing(client, researcher, field, value, message):
    client.force_login(researcher)
    response = client.post(URL, _form(**{field: value}))
    assert response.status_code == 400
    html = response.content.decode()
    block = _field_html(html, field)
    assert f'id="id_{field}_error"' in block and message in block
    widget = re.search(rf'<(input|select|textarea)[^>]*id="id_{field}"[^>]*>', block).group(0)
    assert 'aria-invalid="true"' in widget and "autofocus" in widget  # the cursor lands on the wrong field
    assert html.count('<div class="notice notice-error" id="id_') == 1  # the other fields are fine
    assert "TL;DR of Reddit posts." in html  # what was typed is kept
    assert Project.objects.count() == 0 and Instructions.objects.count() == 0


def test_duplicate_slug_is_an_error_next_to_the_slug_field(client, researcher):
    ProjectFactory(slug="helpful-summaries", name="Older")
    client.force_login(researcher)
    response = client.post(URL, _form(name="<b>Mine</b>"))
    assert response.status_code == 400
    html = response.content.decode()
    assert "A project with slug &#x27;helpful-summaries&#x27; exists." in _field_html(html, "slug")
    assert 'value="&lt;b&gt;Mine&lt;/b&gt;"' in html  # typed text comes back escaped
    assert list(Project.objects.values_list("name", flat=True)) == ["Older"]
    assert Instructions.objects.count() == 0


def test_csrf_is_enforced(researcher):
    client = Client(enforce_csrf_checks=True)
    client.force_login(researcher)
    assert client.post(URL, _form()).status_code == 403
    assert Project.objects.count() == 0
    client.get(URL)
    response = client.post(URL, {**_form(), "csrfmiddlewaretoken": client.cookies["csrftoken"].value})
    assert response.status_code == 302
    assert Project.objects.filter(slug="helpful-summaries").exists()


def test_contractors_get_403_and_write_nothing(client, contractor):
    client.force_login(contractor)
    assert client.get(URL).status_code == 403
    assert client.post(URL, _form()).status_code == 403
    assert Project.objects.count() == 0


def test_anonymous_is_sent_to_log_in(client):
    response = client.post(URL, _form())
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert Project.objects.count() == 0


def test_project_list_links_the_page_for_researchers_only(client, researcher, contractor):
    client.force_login(researcher)
    assert f'href="{URL}"' in client.get("/").content.decode()
    client.force_login(contractor)
    assert f'href="{URL}"' not in client.get("/").content.decode()


def test_a_pairwise_confidence_project_needs_k_2(client, researcher):
    from labeling.models import Project

    client.force_login(researcher)
    fields = {"name": "Scale", "slug": "scale", "task_kind": "summarization", "k": 4, "label_type": "pairwise_confidence",
              "labels_per_comparison": 1, "calibration_share": 0.1, "calibration_labels_wanted": 10,
              "instructions": "Which summary is better, and how sure are you?"}
    refused = client.post(reverse("labeling-project-new"), fields)
    assert refused.status_code == 400 and b"set K to 2" in refused.content and not Project.objects.exists()
    created = client.post(reverse("labeling-project-new"), {**fields, "k": 2})
    assert created.status_code == 302
    assert Project.objects.get(slug="scale").label_type == "pairwise_confidence"
