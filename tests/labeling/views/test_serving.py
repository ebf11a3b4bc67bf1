"""The HTMX labeling page: full page vs partial, submit swaps in the next comparison, errors, escaping."""
import pytest
from django.urls import reverse

from labeling.models import Assignment, Label
from labeling.services import instructions_acknowledge, instructions_publish
from tests.factories import ProjectFactory, make_comparison

pytestmark = pytest.mark.django_db

XSS = "<script>alert(1)</script><img src=x onerror=alert(1)>"


def _page(client, project, **extra):
    return client.get(reverse("labeling-compare", kwargs={"slug": project.slug}), **extra)


def _submit(client, project, data, **extra):
    return client.post(reverse("labeling-submit", kwargs={"slug": project.slug}), data, **extra)


def test_anonymous_is_sent_to_login(client, project):
    response = _page(client, project)
    assert response.status_code == 302
    assert reverse("login") in response["Location"]


def test_full_page_and_partial(client, contractor, project):
    make_comparison(project)
    client.force_login(contractor)
    full = _page(client, project)
    partial = _page(client, project, HTTP_HX_REQUEST="true")
    assert full.status_code == partial.status_code == 200
    assert b"<html" in full.content and b'id="pair"' in full.content
    assert b"<html" not in partial.content and b'id="pair"' in partial.content
    assert Assignment.objects.filter(labeler=contractor).count() == 1  # the reload got the same lease back


def test_model_text_is_escaped_and_whitespace_kept(client, contractor, project):
    make_comparison(project, texts=[XSS, "  two\n  lines", "c", "d"])
    client.force_login(contractor)
    html = _page(client, project).content.decode()
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "  two\n  lines" in html


def test_submit_stores_canonical_choice_and_swaps_next(client, contractor, project):
    make_comparison(project)
    make_comparison(project)
    client.force_login(contractor)
    _page(client, project)
    first = Assignment.objects.get(labeler=contractor)
    response = _submit(client, project, {"assignment": first.id, "choice": "C", "duration_ms": "1200"},
                       HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    label = Label.objects.get()
    assert label.chosen_index == first.display_order[2]
    assert label.display_position == 2
    second = Assignment.objects.exclude(id=first.id).get(labeler=contractor)
    assert f'data-assignment="{second.id}"'.encode() in response.content
    assert b'hx-swap-oob="true"' in response.content  # today's count updates too


def test_number_keys_map_to_positions(client, contractor, project):
    make_comparison(project)
    client.force_login(contractor)
    _page(client, project)
    a = Assignment.objects.get(labeler=contractor)
    _submit(client, project, {"assignment": a.id, "choice": "4", "duration_ms": "10"}, HTTP_HX_REQUEST="true")
    assert Label.objects.get().chosen_index == a.display_order[3]


@pytest.mark.parametrize("choice", ["E", "0", "5", "-1", "1 OR 1=1", ""])
def test_bad_choice_is_400_and_writes_nothing(client, contractor, project, choice):
    make_comparison(project)
    client.force_login(contractor)
    _page(client, project)
    a = Assignment.objects.get(labeler=contractor)
    response = _submit(client, project, {"assignment": a.id, "choice": choice, "duration_ms": "5"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    assert response["HX-Retarget"] == "#notice"
    assert Label.objects.count() == 0
    assert Assignment.objects.get(id=a.id).state == Assignment.State.LEASED


def test_other_labelers_assignment_is_403(client, contractor, other_contractor, project):
    make_comparison(project)
    client.force_login(other_contractor)
    _page(client, project)
    theirs = Assignment.objects.get(labeler=other_contractor)
    client.force_login(contractor)
    response = _submit(client, project, {"assignment": theirs.id, "choice": "A", "duration_ms": "5"})
    assert response.status_code == 403
    assert Label.objects.count() == 0


def test_skip_needs_reason_and_returns_slot(client, contractor, project):
    comparison = make_comparison(project)
    client.force_login(contractor)
    _page(client, project)
    a = Assignment.objects.get(labeler=contractor)
    assert _submit(client, project, {"assignment": a.id, "skip": "1", "skip_reason": " ", "duration_ms": "5"}).status_code == 400
    response = _submit(client, project, {"assignment": a.id, "skip": "1", "skip_reason": "unreadable", "duration_ms": "5"})
    assert response.status_code == 302
    label = Label.objects.get()
    assert label.skipped and label.chosen_index is None and label.skip_reason == "unreadable"
    comparison.refresh_from_db()
    assert comparison.open_slots == 1 and comparison.label_count == 0


def test_flag_is_stored_on_the_displayed_sample(client, contractor, project):
    make_comparison(project)
    client.force_login(contractor)
    _page(client, project)
    a = Assignment.objects.get(labeler=contractor)
    _submit(client, project, {"assignment": a.id, "choice": "A", "duration_ms": "5", "flag_position": "B",
                              "flag_note": "contains a phone number", "flag_correction": "redacted"})
    flag = Label.objects.get().flags.get()
    canonical = a.display_order[1]
    assert flag.sample_id == a.comparison.entries.get(position=canonical).sample_id
    assert flag.note == "contains a phone number" and flag.suggested_correction == "redacted"


def test_new_instructions_must_be_acknowledged(client, contractor, researcher, project):
    make_comparison(project)
    v1 = instructions_publish(project=project, body="Pick the **happiest** one.", author=researcher)
    client.force_login(contractor)
    response = _page(client, project)
    assert b"I have read instructions v1" in response.content
    assert b"<strong>happiest</strong>" in response.content
    assert not Assignment.objects.exists()
    client.post(reverse("labeling-instructions-ack", kwargs={"slug": project.slug}), {"version": 1})
    _page(client, project)
    a = Assignment.objects.get(labeler=contractor)
    instructions_publish(project=project, body="Now pick the saddest.", author=researcher)
    stale = _submit(client, project, {"assignment": a.id, "choice": "A", "duration_ms": "5"})
    assert stale.status_code == 409
    assert Label.objects.count() == 0
    instructions_acknowledge(instructions=project.instructions.get(version=2), user=contractor)
    _submit(client, project, {"assignment": a.id, "choice": "A", "duration_ms": "5"})
    assert Label.objects.get().instructions.version == 2
    assert v1.version == 1


def test_instructions_markdown_is_sanitised(client, contractor, researcher, project):
    instructions_publish(project=project, body="Hi <script>alert(2)</script> [x](javascript:alert(3))", author=researcher)
    client.force_login(contractor)
    html = _page(client, project).content.decode()
    assert "<script>alert(2)" not in html
    assert "javascript:" not in html


def test_empty_queue_message(client, contractor):
    project = ProjectFactory()
    client.force_login(contractor)
    assert b"Nothing left to label" in _page(client, project).content


def test_unknown_project_is_404(client, contractor):
    client.force_login(contractor)
    assert client.get(reverse("labeling-compare", kwargs={"slug": "nope"})).status_code == 404


def test_user_without_role_cannot_label(client, project, django_user_model):
    nobody = django_user_model.objects.create_user("nobody", password="x-long-password-1")
    client.force_login(nobody)
    assert _page(client, project).status_code == 404
