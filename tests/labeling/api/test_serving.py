"""LabelCreateApi bad input: each is a clear 400 (or 403 for someone else's lease) and writes nothing."""
import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from labeling.models import Assignment, Comparison, Label, SampleFlag
from labeling.services import comparison_next_for_labeler
from tests.factories import make_comparison

pytestmark = pytest.mark.django_db


@pytest.fixture
def lease(project, contractor):
    make_comparison(project)
    return comparison_next_for_labeler(project=project, labeler=contractor)


def _post(user, assignment, payload, **kwargs):
    client = APIClient()
    client.force_authenticate(user)
    return client.post(reverse("api-label-create", kwargs={"assignment_id": assignment.id}), payload, **kwargs)


def _state(assignment) -> tuple:
    comparison = Comparison.objects.get(id=assignment.comparison_id)
    return (Label.objects.count(), SampleFlag.objects.count(), Assignment.objects.get(id=assignment.id).state,
            comparison.label_count, comparison.open_slots)


@pytest.mark.parametrize("position", [7, -1, 4, "2", "1 OR 1=1", 1.5, True, [1], {"p": 1}])
def test_unknown_choice_index_is_400(lease, contractor, position):
    before = _state(lease)
    response = _post(contractor, lease, {"position": position, "duration_ms": 100}, format="json")
    assert response.status_code == 400
    assert "position" in response.json() or response.json().get("field") == "choice"
    assert _state(lease) == before


def test_missing_choice_is_400(lease, contractor):
    before = _state(lease)
    response = _post(contractor, lease, {"duration_ms": 100}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "choice"
    assert "Choose a sample" in response.json()["detail"]
    assert _state(lease) == before


@pytest.mark.parametrize("payload", [
    {"position": 0},  # no duration
    {"position": 0, "duration_ms": -5},
    {"position": 0, "duration_ms": "fast"},
    {"position": 0, "duration_ms": 1, "flags": [{"position": 9, "note": "x"}]},
    {"position": 0, "duration_ms": 1, "flags": "not a list"},
])
def test_other_bad_fields_are_400(lease, contractor, payload):
    before = _state(lease)
    assert _post(contractor, lease, payload, format="json").status_code == 400
    assert _state(lease) == before


def test_form_encoded_string_choice_is_400(lease, contractor):
    """Form posts carry strings; the API takes JSON integers only, so "2" is refused there too."""
    before = _state(lease)
    assert _post(contractor, lease, {"position": "2", "duration_ms": "1"}).status_code == 400
    assert _state(lease) == before


def test_another_labelers_assignment_is_403(lease, other_contractor):
    before = _state(lease)
    response = _post(other_contractor, lease, {"position": 0, "duration_ms": 100}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert _state(lease) == before
