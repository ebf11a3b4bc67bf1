"""Researchers' instructions pages: versions with label counts, publishing, sanitised preview, diff,
and labelers re-acknowledging a version published mid-session."""
import difflib

import pytest
from django.http import Http404
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from labeling.models import Assignment, Instructions, InstructionsAck, Label
from labeling.selectors.instructions import instructions_get_version, instructions_versions, text_diff
from labeling.services import instructions_acknowledge, instructions_publish
from tests.factories import ProjectFactory, make_comparison, make_label

pytestmark = pytest.mark.django_db

XSS = "<script>alert(1)</script><img src=x onerror=alert(1)>"


def _url(name, project, **kwargs):
    return reverse(name, kwargs={"slug": project.slug, **kwargs})


# ---------------------------------------------------------------- selectors


def test_versions_newest_first_with_author_and_label_counts(project, researcher, contractor, other_contractor):
    v1 = instructions_publish(project=project, body="one", author=researcher)
    v2 = instructions_publish(project=project, body="two")
    other = instructions_publish(project=ProjectFactory(), body="elsewhere")
    make_label(make_comparison(project), contractor, chosen_index=0, instructions=v1)
    make_label(make_comparison(project), other_contractor, chosen_index=1, instructions=v1)
    make_label(make_comparison(project), contractor, chosen_index=2, instructions=v2)
    make_label(make_comparison(project), contractor, chosen_index=2, instructions=None)
    rows = [(v.version, v.created_by.username if v.created_by else None, v.label_count)
            for v in instructions_versions(project)]
    assert rows == [(2, None, 1), (1, researcher.username, 2)]
    assert other.version == 1


def test_versions_query_count_is_constant(project, researcher, contractor, django_assert_num_queries):
    v1 = instructions_publish(project=project, body="one", author=researcher)
    with django_assert_num_queries(1):
        [v.created_by.username for v in instructions_versions(project)]
    for n in range(2, 8):
        make_label(make_comparison(project), contractor, chosen_index=0, instructions=v1)
        instructions_publish(project=project, body=f"version {n}", author=researcher)
    with django_assert_num_queries(1):
        rows = [(v.created_by.username, v.label_count) for v in instructions_versions(project)]
    assert len(rows) == 7 and rows[-1][1] == 6


def test_text_diff_hand_computed():
    old = "a\nb\nc\nd"
    new = "a\nB\nc\nd\ne"
    [hunk] = text_diff(old, new, context=1)
    assert hunk.header == "@@ -1,4 +1,5 @@"
    assert [(line.kind, line.old_no, line.new_no, line.text) for line in hunk.lines] == [
        ("same", 1, 1, "a"), ("removed", 2, None, "b"), ("added", None, 2, "B"), ("same", 3, 3, "c"),
        ("same", 4, 4, "d"), ("added", None, 5, "e"),
    ]


def test_text_diff_headers_match_difflib_unified_diff():
    old = "\n".join(f"line {i}" for i in range(40))
    new_lines = [f"line {i}" for i in range(40)]
    new_lines[3] = "changed 3"
    del new_lines[20]
    new_lines.insert(35, "inserted")
    new = "\n".join(new_lines)
    ours = [hunk.header for hunk in text_diff(old, new)]
    theirs = [line for line in difflib.unified_diff(old.split("\n"), new.split("\n"), lineterm="") if line.startswith("@@")]
    assert ours == theirs and len(ours) == 3


def test_text_diff_of_equal_texts_is_empty_and_crlf_is_not_a_change():
    assert text_diff("same\ntext", "same\r\ntext") == []


# ---------------------------------------------------------------- publishing


@pytest.mark.parametrize("body", ["", "   \n\t", "Pick the best.", "Pick the best.\r\n", "Pick the best.  \n\n"])
def test_empty_or_unchanged_body_is_rejected_and_writes_nothing(project, researcher, client, body):
    instructions_publish(project=project, body="Pick the best.", author=researcher)
    client.force_login(researcher)
    response = client.post(_url("labeling-instructions-edit", project), {"body": body})
    assert response.status_code == 400
    assert Instructions.objects.filter(project=project).count() == 1
    assert ("cannot be empty" in response.content.decode()) or ("Nothing changed since v1" in response.content.decode())


def test_publish_from_the_editor(project, researcher, client):
    client.force_login(researcher)
    editor = client.get(_url("labeling-instructions-edit", project))
    assert editor.status_code == 200 and b"Publishing makes it v1" in editor.content
    response = client.post(_url("labeling-instructions-edit", project), {"body": "Pick the **kindest**.\r\nThen submit."})
    assert response.status_code == 302 and response["Location"] == _url("labeling-instructions-list", project)
    published = Instructions.objects.get(project=project)
    assert (published.version, published.body, published.created_by) == (1, "Pick the **kindest**.\nThen submit.", researcher)
    editor = client.get(_url("labeling-instructions-edit", project))
    assert b"Pick the **kindest**." in editor.content and b"publishing makes it v2" in editor.content


def test_too_long_body_is_400(project, researcher, client):
    client.force_login(researcher)
    response = client.post(_url("labeling-instructions-edit", project), {"body": "x" * 100_001})
    assert response.status_code == 400 and not Instructions.objects.exists()


# ---------------------------------------------------------------- pages


def test_list_page_shows_versions_counts_and_escapes(project, researcher, contractor, client):
    v1 = instructions_publish(project=project, body="one", author=researcher)
    instructions_publish(project=project, body="two", author=researcher)
    make_label(make_comparison(project), contractor, chosen_index=0, instructions=v1)
    client.force_login(researcher)
    html = client.get(_url("labeling-instructions-list", project)).content.decode()
    assert "v2" in html and "current" in html and researcher.username in html
    assert "?from=1&amp;to=2" in html


def test_preview_is_sanitised_markdown(project, researcher, client):
    client.force_login(researcher)
    body = f"Be **kind**. {XSS} [x](javascript:alert(3))"
    response = client.post(_url("labeling-instructions-preview", project), {"body": body}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200 and "<html" not in html
    assert "<strong>kind</strong>" in html
    assert "<script" not in html and "onerror" not in html and "javascript:" not in html
    assert not Instructions.objects.exists()


def test_editor_redisplays_hostile_text_escaped(project, researcher, client):
    instructions_publish(project=project, body=f"rules {XSS}", author=researcher)
    client.force_login(researcher)
    html = client.get(_url("labeling-instructions-edit", project)).content.decode()
    assert "rules &lt;script&gt;alert(1)&lt;/script&gt;" in html  # the textarea holds the text, escaped
    assert "<script>alert(1)" not in html


def test_diff_page_escapes_and_numbers_lines(project, researcher, client):
    instructions_publish(project=project, body="keep\nold line", author=researcher)
    instructions_publish(project=project, body=f"keep\n{XSS}\n  indented", author=researcher)
    client.force_login(researcher)
    response = client.get(_url("labeling-instructions-diff", project))
    html = response.content.decode()
    assert response.status_code == 200
    assert "v1 → v2" in html
    assert 'class="diff-removed"' in html and "old line" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert "  indented" in html
    assert 'id="change-1"' in html and 'tabindex="-1"' in html


def test_diff_between_any_two_versions(project, researcher, client):
    for body in ["alpha", "beta", "gamma"]:
        instructions_publish(project=project, body=body, author=researcher)
    client.force_login(researcher)
    html = client.get(_url("labeling-instructions-diff", project) + "?from=3&to=1").content.decode()
    assert "v3 → v1" in html and "gamma" in html and "alpha" in html and "beta" not in html.split("<table")[1]
    same = client.get(_url("labeling-instructions-diff", project) + "?from=2&to=2").content.decode()
    assert "have the same text" in same


@pytest.mark.parametrize(("query", "status"), [("?from=x&to=1", 400), ("?from=-1&to=1", 400), ("?from=1&to=9", 404),
                                               ("?from=99999999999&to=1", 400)])
def test_diff_bad_versions(project, researcher, client, query, status):
    instructions_publish(project=project, body="one", author=researcher)
    client.force_login(researcher)
    assert client.get(_url("labeling-instructions-diff", project) + query).status_code == status


def test_diff_of_another_projects_version_is_404(project, researcher, client):
    instructions_publish(project=project, body="one", author=researcher)
    other = ProjectFactory()
    for body in ["a", "b", "c"]:
        instructions_publish(project=other, body=body)
    client.force_login(researcher)
    assert client.get(_url("labeling-instructions-diff", project) + "?from=1&to=3").status_code == 404


PAGES = [("labeling-instructions-list", "get"), ("labeling-instructions-edit", "get"),
         ("labeling-instructions-edit", "post"), ("labeling-instructions-preview", "post"),
         ("labeling-instructions-diff", "get")]


@pytest.mark.parametrize(("name", "method"), PAGES)
def test_roles(project, researcher, contractor, client, name, method):
    """Anonymous: to the login page; contractor: 403 and nothing written; unknown project: 404."""
    instructions_publish(project=project, body="one", author=researcher)
    url = _url(name, project)
    response = getattr(client, method)(url, {"body": "changed"})
    assert response.status_code == 302 and reverse("login") in response["Location"]
    client.force_login(contractor)
    assert getattr(client, method)(url, {"body": "changed"}).status_code == 403
    assert Instructions.objects.count() == 1
    client.force_login(researcher)
    assert getattr(client, method)(reverse(name, kwargs={"slug": "no-such"}), {"body": "x"}).status_code == 404


# ---------------------------------------------------------------- labelers re-acknowledge


def test_contractor_mid_session_must_reacknowledge_and_next_label_records_new_version(
        project, researcher, contractor, client):
    """A researcher publishes v2 from the editor while a contractor holds a lease: the contractor's
    htmx submit sends them to the acknowledge page; after acknowledging, the same comparison's
    label records v2."""
    make_comparison(project)
    make_comparison(project)
    instructions_acknowledge(instructions=instructions_publish(project=project, body="v1 rules", author=researcher),
                             user=contractor)
    labeler = client
    labeler.force_login(contractor)
    labeler.get(_url("labeling-compare", project))
    lease = Assignment.objects.get(labeler=contractor)
    research = Client()
    research.force_login(researcher)
    assert research.post(_url("labeling-instructions-edit", project), {"body": "v2 rules: be **strict**"}).status_code == 302

    stale = labeler.post(_url("labeling-submit", project), {"assignment": lease.id, "choice": "A", "duration_ms": "9"},
                         HTTP_HX_REQUEST="true")
    assert stale.status_code == 200 and stale["HX-Redirect"] == _url("labeling-compare", project)
    assert not Label.objects.exists()
    page = labeler.get(_url("labeling-compare", project)).content.decode()
    assert "I have read instructions v2" in page and "<strong>strict</strong>" in page
    labeler.post(_url("labeling-instructions-ack", project), {"version": 2})
    assert InstructionsAck.objects.filter(user=contractor, instructions__version=2).exists()
    again = labeler.get(_url("labeling-compare", project)).content.decode()
    assert f'data-assignment="{lease.id}"' in again  # the lease was kept through the detour
    labeler.post(_url("labeling-submit", project), {"assignment": lease.id, "choice": "A", "duration_ms": "9"},
                 HTTP_HX_REQUEST="true")
    label = Label.objects.get()
    assert label.assignment_id == lease.id and label.instructions.version == 2


# ---------------------------------------------------------------- API


def test_versions_api_lists_versions_with_counts(project, researcher, contractor):
    v1 = instructions_publish(project=project, body="one", author=researcher)
    instructions_publish(project=project, body="two")
    make_label(make_comparison(project), contractor, chosen_index=0, instructions=v1)
    api = APIClient()
    api.force_authenticate(researcher)
    response = api.get(reverse("api-instructions-versions", kwargs={"project_slug": project.slug}))
    assert response.status_code == 200
    assert [(v["version"], v["author"], v["label_count"], v["body"]) for v in response.json()] == [
        (2, None, 0, "two"), (1, researcher.username, 1, "one")]
    api.force_authenticate(contractor)
    assert api.get(reverse("api-instructions-versions", kwargs={"project_slug": project.slug})).status_code == 403


@pytest.mark.parametrize("body", ["Pick the best.", "Pick the best.\r\n", "  "])
def test_publish_api_refuses_unchanged_or_empty_body(project, researcher, body):
    instructions_publish(project=project, body="Pick the best.", author=researcher)
    api = APIClient()
    api.force_authenticate(researcher)
    response = api.post(reverse("api-instructions-publish", kwargs={"project_slug": project.slug}), {"body": body},
                        format="json")
    assert response.status_code == 400
    assert Instructions.objects.filter(project=project).count() == 1


def test_instructions_get_version_scopes_to_the_project(project):
    mine = instructions_publish(project=project, body="mine")
    instructions_publish(project=ProjectFactory(), body="a")
    instructions_publish(project=ProjectFactory(), body="b")
    assert instructions_get_version(project=project, version=1) == mine
    with pytest.raises(Http404):
        instructions_get_version(project=project, version=2)
