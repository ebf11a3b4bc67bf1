"""The labeling page for a day's work: undo of the last label, counts per project on the page and the home
page, the help overlay listing every key compare.js handles, and samples' leading space."""
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from labeling.models import Assignment, Label
from labeling.roles import CONTRACTOR
from tests.factories import ProjectFactory, UserFactory, make_comparison

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


def _url(name, project):
    return reverse(name, kwargs={"slug": project.slug})


def _submit_first(client, project, contractor):
    client.get(_url("labeling-compare", project))
    assignment = Assignment.objects.get(labeler=contractor, state=Assignment.State.LEASED)
    response = client.post(_url("labeling-submit", project),
                           {"assignment": assignment.id, "choice": "A", "duration_ms": "900"}, **HX)
    return assignment, response


def test_submit_offers_undo_of_that_label_and_undo_brings_its_comparison_back(client, contractor, project):
    make_comparison(project)
    make_comparison(project)
    client.force_login(contractor)
    assignment, response = _submit_first(client, project, contractor)
    label = Label.objects.get()
    html = response.content.decode()
    assert f'name="label" value="{label.id}"' in html and 'form="undo-form"' in html

    undone = client.post(_url("labeling-undo", project), {"label": label.id}, **HX)

    assert undone.status_code == 200 and not Label.objects.exists()
    assert f'name="assignment" value="{assignment.id}"' in undone.content.decode()
    assert 'id="undo-form"' not in undone.content.decode()  # nothing left to undo


def test_refused_undo_answers_the_reason_in_the_notice_bar(client, contractor, other_contractor, project):
    make_comparison(project, labels_wanted=2)
    client.force_login(contractor)
    _submit_first(client, project, contractor)
    label = Label.objects.get()
    client.force_login(other_contractor)
    response = client.post(_url("labeling-undo", project), {"label": label.id}, **HX)
    assert response.status_code == 403 and response["HX-Retarget"] == "#notice"
    assert "another labeler" in response.content.decode()
    assert client.post(_url("labeling-undo", project), {"label": "x"}, **HX).status_code == 400
    assert Label.objects.count() == 1


def test_undo_needs_a_labeler_and_a_post(client, researcher, project):
    make_comparison(project)
    assert client.post(_url("labeling-undo", project), {"label": 1}).status_code == 302  # to the login page
    outsider = UserFactory(username="no-role")
    client.force_login(outsider)
    assert client.post(_url("labeling-undo", project), {"label": 1}).status_code in (403, 404)
    client.force_login(UserFactory(username="c9", role=CONTRACTOR))
    assert client.get(_url("labeling-undo", project)).status_code == 405


def test_page_and_home_count_today_and_remaining_per_project(client, contractor, project):
    other = ProjectFactory(k=2, name="Other")
    for _ in range(3):
        make_comparison(project)
    make_comparison(other)
    client.force_login(contractor)
    _, response = _submit_first(client, project, contractor)
    html = response.content.decode()
    assert "today <strong>1</strong> label</span>" in html and '"remaining-count"' in html
    assert re.search(r'id="remaining-count"[^>]*><strong>2</strong> left', html)
    page = client.get(_url("labeling-compare", other)).content.decode()
    assert "today <strong>0</strong> labels</span>" in page  # per project
    assert re.search(r'id="remaining-count"[^>]*><strong>1</strong> left', page)
    home = client.get(reverse("home")).content.decode()
    assert re.search(rf'data-project="{project.slug}">today <strong>1</strong> label · <strong>2</strong> left', home)
    assert re.search(rf'data-project="{other.slug}">today <strong>0</strong> labels · <strong>1</strong> left', home)


# Keys compare.js acts on only where the project asks for a ranking, ratings or "none acceptable".
OPTIONAL_KEYS = {"=", "Backspace", "N"}


@pytest.mark.parametrize("options", ["plain", "ranking-likert-none"])
def test_help_lists_every_key_the_page_handles(client, contractor, project, options):
    """Each key compare.js acts on (and Ctrl+Enter, Esc) has a row in the ? overlay; the keys of a ranking, of
    Likert ratings and of "none acceptable" only where the project has them."""
    if options != "plain":
        project.label_type, project.likert_axes, project.allow_none_acceptable = "ranking", ["overall"], True
        project.save()
    make_comparison(project)
    client.force_login(contractor)
    html = client.get(_url("labeling-compare", project)).content.decode()
    help_dialog = html[html.index('id="help-dialog"'):]
    listed = set(re.findall(r"<dt>(.*?)</dt>", help_dialog, re.S))
    keys = set(re.findall(r"<kbd>([^<]+)</kbd>", " ".join(listed)))
    js = (Path(settings.BASE_DIR) / "static/labeling/compare.js").read_text()
    handled = set(re.findall(r'(?:upper|key) === "([^"]+)"', js))
    handled = {k.upper() if len(k) == 1 else k for k in handled}
    assert OPTIONAL_KEYS <= handled
    if options == "plain":
        assert not OPTIONAL_KEYS & keys
        handled -= OPTIONAL_KEYS
    else:
        assert OPTIONAL_KEYS <= keys and {"1", "7"} <= keys  # the ratings' keys too
    assert handled >= {"?", "Enter", "U", "S", "X", "I", "Z"}
    assert handled <= keys | {"F"} and "F" in " ".join(listed)
    assert {"Ctrl+Enter", "Ctrl+Z", "Esc", "?", "Z", "X"} <= keys


def test_a_samples_single_leading_space_is_not_shown_as_an_indent(client, contractor, project):
    make_comparison(project, texts=[" the dog ran", "  indented", "c", "d"])
    client.force_login(contractor)
    html = client.get(_url("labeling-compare", project)).content.decode()
    assert '<span class="model-text sample-text">the dog ran</span>' in html
    assert '<span class="model-text sample-text">  indented</span>' in html
