"""Storing answers (label_submit) and its API: idempotent, conflicts, permissions, bad input, nothing written on error."""
from datetime import timedelta

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from labeling.errors import Conflict, Forbidden, InvalidInput, NotFound
from labeling.models import Assignment, Comparison, ComparisonSample, Label, SampleFlag
from labeling.services import (
    FlagInput,
    LabelInput,
    assignments_expire,
    comparison_next_for_labeler,
    comparisons_withdraw,
    instructions_acknowledge,
    instructions_publish,
    label_submit,
)
from tests.factories import make_comparison

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hotpath")]

LEASE = timedelta(minutes=settings.LABELING_LEASE_MINUTES)
T0 = timezone.now().replace(microsecond=0)
SOON = T0 + timedelta(seconds=10)

BAD_SERVICE_POSITIONS = [4, 7, -1, "2", "1 OR 1=1", None, True, 2.0]


@pytest.fixture
def assignment(project, contractor):
    make_comparison(project, labels_wanted=2)
    return comparison_next_for_labeler(project=project, labeler=contractor, now=T0)


def _submit(assignment, labeler, *, now=SOON, **kwargs):
    fields = {"position": 1, "duration_ms": 4000, **kwargs}
    return label_submit(assignment_id=assignment.id, labeler=labeler, answer=LabelInput(**fields), now=now)


def _written():
    """Everything a submit may write, to compare before and after a refused submit."""
    return (
        list(Label.objects.values_list("id", "chosen_index", "skipped")),
        SampleFlag.objects.count(),
        list(Assignment.objects.values_list("id", "state")),
        list(Comparison.objects.values_list("id", "label_count", "open_slots")),
    )


# ---------------------------------------------------------------- stored values


def test_submit_stores_canonical_choice_duration_and_order(assignment, contractor):
    """The chosen display position is stored as its canonical index; the lease's display order is kept."""
    label, created = _submit(assignment, contractor, position=2, duration_ms=7000)
    assignment.refresh_from_db()
    comparison = assignment.comparison
    comparison.refresh_from_db()
    assert created is True
    assert label.chosen_index == assignment.display_order[2]
    assert Label.objects.get(id=label.id).display_position == 2  # stored (the dashboards' position-bias check reads it)
    assert sorted(assignment.display_order) == [0, 1, 2, 3]
    assert label.duration_ms == 7000
    assert label.comparison_id == comparison.id and label.labeler_id == contractor.id
    assert assignment.state == Assignment.State.SUBMITTED
    assert (comparison.label_count, comparison.open_slots) == (1, 1)


def test_implausible_client_duration_is_replaced_by_server_time(assignment, contractor):
    """A client timer longer than the lease has run (plus 5 s slack) is replaced by the server's measure."""
    label, _ = _submit(assignment, contractor, duration_ms=10 * 60 * 1000)
    assert label.duration_ms == 10_000


def test_unsure_and_flags_are_stored_against_the_shown_sample(assignment, contractor):
    """A flag on display position p is stored on the sample the labeler saw at p."""
    flag = FlagInput(position=3, note="Repeats itself.", suggested_correction="Fixed text")
    label, _ = _submit(assignment, contractor, unsure=True, flags=[flag])
    shown = ComparisonSample.objects.get(comparison=assignment.comparison, position=assignment.display_order[3])
    stored = SampleFlag.objects.get()
    assert label.unsure is True
    assert (stored.label_id, stored.sample_id, stored.note) == (label.id, shown.sample_id, "Repeats itself.")


def test_skip_stores_reason_and_no_choice(assignment, contractor):
    """A skip is stored with its reason and no choice, and does not count as a label."""
    label, _ = _submit(assignment, contractor, position=None, skipped=True, skip_reason="  Unreadable  ")
    comparison = Comparison.objects.get()
    assert (label.skipped, label.chosen_index, label.skip_reason) == (True, None, "Unreadable")
    assert Label.objects.get(id=label.id).display_position is None
    assert (comparison.label_count, comparison.open_slots) == (0, 2)


# ---------------------------------------------------------------- idempotency and conflicts


def test_double_submit_stores_one_label(assignment, contractor):
    """Replaying the same answer returns the stored label and writes nothing."""
    first, created = _submit(assignment, contractor)
    before = _written()
    again, created_again = _submit(assignment, contractor, now=SOON + timedelta(seconds=3))
    assert (created, created_again) == (True, False)
    assert again.id == first.id
    assert _written() == before
    assert Label.objects.count() == 1


def test_replay_after_lease_end_returns_the_stored_label(assignment, contractor):
    """A replay after the lease would have expired still returns the stored answer (a retried request)."""
    first, _ = _submit(assignment, contractor)
    again, created = _submit(assignment, contractor, now=T0 + 2 * LEASE)
    assert (again.id, created) == (first.id, False)


def test_conflicting_second_answer(assignment, contractor):
    """A different answer to an answered assignment is a Conflict and changes nothing."""
    _submit(assignment, contractor, position=1)
    before = _written()
    with pytest.raises(Conflict):
        _submit(assignment, contractor, position=0)
    with pytest.raises(Conflict):
        _submit(assignment, contractor, position=None, skipped=True, skip_reason="changed my mind")
    assert _written() == before


def test_expired_by_time_is_conflict(assignment, contractor):
    """A submit after the lease ran out (not yet reaped) is a Conflict; nothing is written."""
    before = _written()
    with pytest.raises(Conflict):
        _submit(assignment, contractor, now=T0 + LEASE)
    assert _written() == before


def test_expired_by_reaper_is_conflict(assignment, contractor):
    """A submit on a reaped lease is a Conflict even with a clock inside the old lease."""
    assignments_expire(now=T0 + LEASE + timedelta(seconds=1))
    before = _written()
    with pytest.raises(Conflict):
        _submit(assignment, contractor)
    assert _written() == before


def test_foreign_assignment_is_forbidden(assignment, other_contractor):
    """Another labeler's assignment is Forbidden; nothing is written."""
    before = _written()
    with pytest.raises(Forbidden):
        _submit(assignment, other_contractor)
    assert _written() == before


def test_missing_assignment_is_not_found(contractor):
    with pytest.raises(NotFound):
        label_submit(assignment_id=987654, labeler=contractor, answer=LabelInput(position=0, duration_ms=1))


def test_withdrawn_is_conflict(assignment, contractor):
    """A submit on a withdrawn comparison is a Conflict; nothing is written."""
    comparisons_withdraw(comparison_ids=[assignment.comparison_id])
    before = _written()
    with pytest.raises(Conflict):
        _submit(assignment, contractor)
    assert _written() == before


def test_unacknowledged_instructions_are_conflict_until_read(project, assignment, contractor):
    """Current instructions must be acknowledged before a label is stored; the label records the version."""
    instructions = instructions_publish(project=project, body="Pick the most helpful.")
    before = _written()
    with pytest.raises(Conflict):
        _submit(assignment, contractor)
    assert _written() == before
    instructions_acknowledge(instructions=instructions, user=contractor)
    label, _ = _submit(assignment, contractor)
    assert label.instructions_id == instructions.id


# ---------------------------------------------------------------- invalid input


@pytest.mark.parametrize("position", BAD_SERVICE_POSITIONS)
def test_bad_position_is_invalid_and_writes_nothing(assignment, contractor, position):
    """Out-of-range, non-integer, injected and missing choices are refused before any write."""
    before = _written()
    with pytest.raises(InvalidInput):
        _submit(assignment, contractor, position=position)
    assert _written() == before


@pytest.mark.parametrize(
    "fields",
    [
        {"position": 0, "skipped": True, "skip_reason": "both"},
        {"position": None, "skipped": True, "skip_reason": "   "},
        {"duration_ms": -1},
        {"flags": [FlagInput(position=4, note="out of range")]},
        {"flags": [FlagInput(position=0, note="  ")]},
    ],
)
def test_bad_answer_is_invalid_and_writes_nothing(assignment, contractor, fields):
    before = _written()
    with pytest.raises(InvalidInput):
        _submit(assignment, contractor, **fields)
    assert _written() == before


# ---------------------------------------------------------------- API


def _api(client, assignment_id, payload):
    url = reverse("api-label-create", kwargs={"assignment_id": assignment_id})
    return client.post(url, payload, content_type="application/json")


@pytest.fixture
def live(client, project, contractor):
    """A lease taken now through the API, with the contractor logged in."""
    make_comparison(project)
    client.force_login(contractor)
    response = client.post(reverse("api-assignment-next", kwargs={"project_slug": project.slug}))
    assert response.status_code == 200
    return Assignment.objects.get(id=response.json()["id"])


def test_api_next_then_label_then_replay(client, live):
    """201 on the first submit, 200 with the same label on a replay, the canonical index in the body."""
    first = _api(client, live.id, {"position": 3, "duration_ms": 1})
    replay = _api(client, live.id, {"position": 3, "duration_ms": 1})
    assert (first.status_code, replay.status_code) == (201, 200)
    assert first.json()["id"] == replay.json()["id"]
    assert first.json()["chosen_index"] == live.display_order[3]
    assert Label.objects.get().duration_ms == 1


def test_api_next_is_204_when_nothing_left(client, project, contractor):
    client.force_login(contractor)
    response = client.post(reverse("api-assignment-next", kwargs={"project_slug": project.slug}))
    assert response.status_code == 204


def test_api_conflict_is_409(client, live):
    _api(client, live.id, {"position": 3, "duration_ms": 1})
    response = _api(client, live.id, {"position": 0, "duration_ms": 1})
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert Label.objects.count() == 1


@pytest.mark.parametrize(
    "payload",
    [
        {"position": 7, "duration_ms": 1},
        {"position": -1, "duration_ms": 1},
        {"position": "2", "duration_ms": 1},
        {"position": "1 OR 1=1", "duration_ms": 1},
        {"duration_ms": 1},
        {"position": None, "duration_ms": 1},
        {"position": 2.0, "duration_ms": 1},
        {"position": True, "duration_ms": 1},
        {"position": 1},
        {"position": 1, "duration_ms": "1 OR 1=1"},
        {"position": 1, "duration_ms": -5},
        {"position": 1, "duration_ms": 1, "flags": [{"position": 9, "note": "x"}]},
        {"position": 1, "duration_ms": 1, "flags": ["not an object"]},
    ],
)
def test_api_bad_values_are_400_and_zero_rows(client, live, payload):
    """Every malformed answer is a 400 and no label, flag or counter changes."""
    before = _written()
    response = _api(client, live.id, payload)
    assert response.status_code == 400
    assert _written() == before
    assert Label.objects.count() == 0


def test_api_non_object_body_is_400(client, live):
    response = _api(client, live.id, [1, 2])
    assert response.status_code == 400
    assert Label.objects.count() == 0


def test_api_foreign_assignment_is_refused(client, live, other_contractor):
    """Another labeler cannot answer the assignment (refused with a 4xx, nothing written)."""
    client.force_login(other_contractor)
    response = _api(client, live.id, {"position": 1, "duration_ms": 1})
    assert response.status_code in (403, 404)
    assert Label.objects.count() == 0


def test_api_anonymous_is_refused(client, project, contractor):
    make_comparison(project)
    assignment = comparison_next_for_labeler(project=project, labeler=contractor)
    response = _api(client, assignment.id, {"position": 1, "duration_ms": 1})
    assert response.status_code in (401, 403)
    assert Label.objects.count() == 0


@pytest.mark.parametrize("accept, status", [
    (None, 201), ("*/*", 201), ("application/json", 201), ("application/json; indent=2", 201),
    ("text/html, */*;q=0.1", 201), ("text/html", 406),
])
def test_api_answers_json_to_every_accept_that_admits_it(client, live, accept, status):
    """The hot endpoints skip DRF's negotiation for the usual headers; the others still get DRF's answer."""
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    url = reverse("api-label-create", kwargs={"assignment_id": live.id})
    response = client.post(url, {"position": 1, "duration_ms": 5}, content_type="application/json", **headers)
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    assert Label.objects.count() == (1 if status == 201 else 0)
