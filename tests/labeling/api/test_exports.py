"""REST API: the label export's filters (the same as the export page's), their 400s naming the field,
and their documentation in the schema. The layouts and streaming are tested in test_data.py."""
import json
from datetime import datetime, timezone as dt_timezone

import pytest
from drf_spectacular.generators import SchemaGenerator

from labeling.models import Label, Query, SimulatedLabeler
from labeling.roles import CONTRACTOR
from labeling.services import instructions_publish
from tests.factories import UserFactory, make_comparison, make_label
from tests.labeling.api.helpers import url as _url

pytestmark = pytest.mark.django_db


@pytest.fixture
def labels(project, contractor, researcher):
    """A valid-split label under v1 on 2 May 2024, a calibration label, and a simulated labeler's label."""
    v1 = instructions_publish(project=project, body="Pick one.", author=researcher)
    first = make_comparison(project)
    Query.objects.filter(id=first.query_id).update(split="valid")
    valid = make_label(first, contractor, chosen_index=1, instructions=v1)
    Label.objects.filter(id=valid.id).update(created_at=datetime(2024, 5, 2, 12, tzinfo=dt_timezone.utc))
    calibration = make_label(make_comparison(project, is_calibration=True), researcher, chosen_index=2)
    bot = UserFactory(username="sim-length-1", role=CONTRACTOR)
    SimulatedLabeler.objects.create(user=bot, kind=SimulatedLabeler.Kind.LENGTH, temperature=0.0, seed=1)
    simulated = make_label(make_comparison(project), bot, chosen_index=3)
    return {"valid": valid, "calibration": calibration, "simulated": simulated}


def _exported(api, project, **params) -> list[int]:
    response = api.get(_url("api-labels-export", project), params)
    assert response.status_code == 200, response.content
    return [json.loads(line)["comparison_id"] for line in b"".join(response.streaming_content).decode().splitlines()]


def test_each_filter_narrows_the_export(api, researcher, project, labels):
    api.force_authenticate(researcher)
    valid, calibration, simulated = (labels[k].comparison_id for k in ("valid", "calibration", "simulated"))
    assert _exported(api, project) == [valid, calibration, simulated]
    assert _exported(api, project, split="valid") == [valid]
    assert _exported(api, project, created_from="2024-05-02", created_to="2024-05-02") == [valid]
    assert _exported(api, project, created_to="2024-05-01") == []
    assert _exported(api, project, instructions_version=1) == [valid]
    assert _exported(api, project, labeler_kind="people") == [valid, calibration]
    assert _exported(api, project, labeler_kind="simulated") == [simulated]
    assert _exported(api, project, labeler_kind="imported") == []
    assert _exported(api, project, calibration="exclude") == [valid, simulated]
    assert _exported(api, project, calibration="only") == [calibration]
    assert _exported(api, project, labeler_kind="people", calibration="exclude", split="valid") == [valid]


def test_a_backwards_range_is_400_naming_created_to(api, researcher, project):
    api.force_authenticate(researcher)
    response = api.get(_url("api-labels-export", project), {"created_from": "2024-05-03", "created_to": "2024-05-01"})
    assert response.status_code == 400
    assert response.json()["field"] == "created_to" and "before it starts" in response.json()["detail"]


def test_an_unknown_instructions_version_is_400_naming_it(api, researcher, project):
    api.force_authenticate(researcher)
    response = api.get(_url("api-labels-export", project), {"instructions_version": 4})
    assert response.status_code == 400
    assert response.json()["field"] == "instructions_version"


@pytest.mark.parametrize(("params", "field"), [
    ({"created_from": "yesterday"}, "created_from"),
    ({"created_to": "2024-02-30"}, "created_to"),
    ({"instructions_version": "0"}, "instructions_version"),
    ({"labeler_kind": "robots"}, "labeler_kind"),
    ({"calibration": "maybe"}, "calibration"),
])
def test_malformed_filters_are_field_errors(api, researcher, project, params, field):
    api.force_authenticate(researcher)
    response = api.get(_url("api-labels-export", project), params)
    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_contractors_get_403_whatever_the_filters(api, contractor, project):
    api.force_authenticate(contractor)
    assert api.get(_url("api-labels-export", project), {"labeler_kind": "people"}).status_code == 403


def test_the_schema_documents_the_filters():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operation = next(item["get"] for path, item in schema["paths"].items() if path.endswith("/labels/export/"))
    parameters = {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}
    filters = {"layout", "split", "created_from", "created_to", "instructions_version", "labeler_kind", "calibration"}
    assert filters <= set(parameters)
    assert parameters["created_from"]["schema"]["format"] == "date"
    assert parameters["labeler_kind"]["schema"]["enum"] == ["people", "simulated", "imported"]
    assert parameters["calibration"]["schema"]["default"] == "include"
    assert all(parameters[name].get("description") for name in filters)
    assert "labeler_kind" in operation["description"]
