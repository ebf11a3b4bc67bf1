"""The researchers' qualification-and-gold page and the labeling page's qualification, feedback and pause."""
import pytest

from labeling.models import GoldAnswer, LabelerStanding, Project, StandingChange
from labeling.roles import CONTRACTOR
from labeling.services.qualification import qualification_item_add, standing_act
from tests.factories import ProjectFactory, UserFactory, make_comparison, make_label

pytestmark = pytest.mark.django_db


@pytest.fixture
def qproject(researcher):
    project = ProjectFactory(k=2, qualification_required=True, qualification_items=2, qualification_threshold=1.0)
    for i in range(4):
        comparison = make_comparison(project, is_calibration=True, texts=[f" good {i}", f" bad {i}"])
        make_label(comparison, researcher, chosen_index=0)
        qualification_item_add(project=project, comparison_id=comparison.id, note=f"Note {i}: the good one.")
    return project


URLS = ["labeling-qualification", "labeling-qualification-settings", "labeling-qualification-item-add",
        "labeling-qualification-gold-share", "labeling-qualification-standing"]


@pytest.mark.parametrize("name", URLS)
def test_contractors_get_403_on_every_page_and_action(client, qproject, name):
    from django.urls import reverse

    client.force_login(UserFactory(username="c-403", role=CONTRACTOR))
    url = reverse(name, kwargs={"slug": qproject.slug})
    response = client.get(url) if name == "labeling-qualification" else client.post(
        url, {"username": "c-403", "action": "admit", "reason": "me", "comparison": "1", "use": "gold"})
    assert response.status_code == 403
    assert not StandingChange.objects.exists()


def test_page_lists_standings_attempts_and_items(client, researcher, qproject):
    labeler = UserFactory(username="ann", role=CONTRACTOR)
    client.force_login(labeler)
    client.get(f"/projects/{qproject.slug}/label/")  # starts qualifying
    client.force_login(researcher)
    page = client.get(f"/projects/{qproject.slug}/labelers/trust/")
    assert page.status_code == 200
    body = page.content.decode()
    assert 'id="standing-ann" data-status="qualifying"' in body
    assert "#1: 0/0 of 2" in body and "Note 3: the good one." in body


def test_standing_action_needs_a_reason_and_keeps_it(client, researcher, qproject):
    UserFactory(username="bob", role=CONTRACTOR)
    client.force_login(researcher)
    url = f"/projects/{qproject.slug}/labelers/trust/standing/"
    refused = client.post(url, {"username": "bob", "action": "admit", "reason": ""})
    assert refused.status_code == 400 and "Say why" in refused.content.decode()
    assert not LabelerStanding.objects.filter(labeler__username="bob").exclude(status="qualifying").exists()
    assert client.post(url, {"username": "nobody", "action": "admit", "reason": "x"}).status_code == 400
    assert client.post(url, {"username": "bob", "action": "admit", "reason": "Known."}).status_code == 302
    change = StandingChange.objects.get(standing__labeler__username="bob")
    assert (change.status, change.reason, change.changed_by) == ("qualified", "Known.", researcher)
    conflict = client.post(url, {"username": "bob", "action": "resume", "reason": "x"})
    assert conflict.status_code == 409 and "Cannot resume" in conflict.content.decode()


def test_item_add_refuses_an_unanswered_comparison_beside_the_field(client, researcher, qproject):
    unanswered = make_comparison(qproject, is_calibration=True)
    client.force_login(researcher)
    response = client.post(f"/projects/{qproject.slug}/labelers/trust/items/",
                           {"comparison": str(unanswered.id), "use": "gold", "note": "n"})
    assert response.status_code == 400 and 'id="item-error"' in response.content.decode()
    assert not GoldAnswer.objects.filter(comparison=unanswered).exists()
    bad = client.post(f"/projects/{qproject.slug}/labelers/trust/items/", {"comparison": "x", "use": "gold"})
    assert bad.status_code == 400


def test_settings_form_shows_field_errors_and_writes_nothing(client, researcher, qproject):
    client.force_login(researcher)
    response = client.post(f"/projects/{qproject.slug}/labelers/trust/settings/", {
        "qualification_required": "on", "qualification_threshold": "1.5", "qualification_items": "2",
        "gold_share": "0.5", "gold_accuracy_threshold": "0.7", "gold_window": "50"})
    assert response.status_code == 400 and 'id="id_qualification_threshold_error"' in response.content.decode()
    assert Project.objects.get(pk=qproject.pk).qualification_threshold == 1.0


def test_labeling_page_serves_qualification_then_feedback(client, qproject, hotpath):
    labeler = UserFactory(username="cara", role=CONTRACTOR)
    client.force_login(labeler)
    page = client.get(f"/projects/{qproject.slug}/label/")
    assert 'id="qualification-banner"' in page.content.decode()
    shown = page.context["shown"]
    good = shown.assignment.display_order.index(0)
    answered = client.post(f"/projects/{qproject.slug}/label/submit/",
                           {"assignment": shown.assignment.id, "choice": "AB"[good], "duration_ms": "9000"},
                           HTTP_HX_REQUEST="true")
    body = answered.content.decode()
    assert 'id="answer-feedback"' in body and "You agreed with the researchers" in body and "the good one." in body
    assert "data-feedback-continue" in body


def test_paused_labeler_is_told_why_and_whom_to_ask(client, researcher):
    project = ProjectFactory(k=2)
    make_comparison(project)
    labeler = UserFactory(username="dan", role=CONTRACTOR)
    LabelerStanding.objects.create(project=project, labeler=labeler, status="paused", reason="Gold accuracy 1/8 is low.")
    client.force_login(labeler)
    body = client.get(f"/projects/{project.slug}/label/").content.decode()
    assert "Labeling is paused for you" in body and "Gold accuracy 1/8 is low." in body and "ask them" in body
