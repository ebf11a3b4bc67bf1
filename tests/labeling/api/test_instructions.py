"""REST API: instructions published, read and acknowledged; bad input."""

import pytest

from labeling.models import InstructionsAck
from labeling.services import instructions_publish
from tests.factories import ProjectFactory
from tests.labeling.api.helpers import url as _url

pytestmark = pytest.mark.django_db


def test_instructions_publish_read_and_acknowledge(api, researcher, contractor, project):
    api.force_authenticate(researcher)
    published = api.post(_url("api-instructions-publish", project), {"body": "Pick the most **helpful**."}, format="json")
    assert published.status_code == 201 and published.json()["version"] == 1
    api.force_authenticate(contractor)
    current = api.get(_url("api-instructions", project)).json()
    assert (current["version"], current["acknowledged"]) == (1, False)
    ack = api.post(_url("api-instructions-ack", project), {"version": 1}, format="json")
    assert ack.status_code == 200 and ack.json()["version"] == 1
    assert api.get(_url("api-instructions", project)).json()["acknowledged"] is True
    assert api.post(_url("api-instructions-ack", project), {"version": 1}, format="json").status_code == 200
    assert InstructionsAck.objects.filter(user=contractor).count() == 1


def test_instructions_bad_input(api, researcher, contractor, project):
    other = ProjectFactory()
    instructions_publish(project=other, body="other project's rules")
    api.force_authenticate(researcher)
    assert api.post(_url("api-instructions-publish", project), {"body": "   "}, format="json").status_code == 400
    api.force_authenticate(contractor)
    assert api.get(_url("api-instructions", project)).status_code == 404  # none published
    assert api.post(_url("api-instructions-ack", project), {"version": 1}, format="json").status_code == 404
    assert api.post(_url("api-instructions-ack", project), {"version": "x"}, format="json").status_code == 400
    assert not InstructionsAck.objects.exists()
