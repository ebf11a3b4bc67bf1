"""No API input gives a 5xx: every operation in the OpenAPI schema, fed malformed bodies and parameters.

A small, dependency-free stand-in for schemathesis (RELIABILITY.md "schema fuzzing"): the
operations come from drf-spectacular's schema, so a new endpoint is fuzzed without editing this file.
"""
import json
from urllib.parse import urlencode

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from labeling.services import comparison_next_for_labeler, instructions_acknowledge, instructions_publish
from tests.factories import make_comparison

pytestmark = pytest.mark.django_db

NUL, DEEP = "a\u0000b", json.loads("[" * 500 + "]" * 500)
JSON_BODIES = [
    {}, [], None, "x", 0, True, {"position": 2**70, "duration_ms": 2**70}, {"position": 0, "duration_ms": 2**40},
    {"position": 0, "duration_ms": 1, "skip_reason": NUL}, {"name": NUL, "slug": "x", "k": 2},
    {"name": "n" * 10_000, "slug": "s" * 500, "k": 2, "labels_per_comparison": 2**40, "calibration_share": 1e308},
    {"body": NUL}, {"body": "x" * 1_000_000}, {"version": 2**70}, {"version": -1}, {"k": DEEP},
    {"position": 0, "duration_ms": 1, "flags": [{"position": 0, "note": NUL, "suggested_correction": "x"}]},
    {"position": 0, "duration_ms": 1, "flags": [{"position": 2**70, "note": "n"}] * 50},
]
RAW_BODIES = [b"", b"\xff\xfe\x00", b"[", b"{}", b"\x00" * 100, b'{"context": "\\ud800"}', b"[" * 50_000,
              b'{"query": "q", "sample0": [0], "sample1": "b", "sample2": "c", "sample3": "d", "best": 0}']
QUERIES = [{}, {"layout": "bogus"}, {"layout": "2020"}, {"split": NUL}, {"pad_id": "-1"}, {"pad_id": str(2**70)},
           {"tokenizer": "../../../../etc"}, {"tokenizer": NUL}, {"labeler": NUL}, {"labeler": "x" * 1000},
           {"calibration": "maybe"}, {"batch": NUL}]


def _operations() -> list[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return [(path, method) for path, item in schema["paths"].items() for method in item if path.startswith("/api/")]


OPERATIONS = _operations()


@pytest.fixture
def world(project, admin_user):
    instructions_acknowledge(instructions=instructions_publish(project=project, body="Rules."), user=admin_user)
    make_comparison(project)
    lease = comparison_next_for_labeler(project=project, labeler=admin_user)
    client = APIClient()
    client.force_authenticate(admin_user)  # the widest permissions reach the deepest code
    return project, lease, client


def _urls(path: str, project, lease) -> list[str]:
    slugs = [project.slug, "no-such-project"]
    ids = [str(lease.id), "0", str(2**70)]
    if "{assignment_id}" in path:
        return [path.replace("{assignment_id}", i) for i in ids]
    if "{project_slug}" in path:
        return [path.replace("{project_slug}", s) for s in slugs]
    return [path]


def test_the_schema_lists_every_api_operation():
    assert len(OPERATIONS) >= 12


@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m}-{p}" for p, m in OPERATIONS])
def test_no_input_gives_a_5xx(world, path, method):
    """Each bad query string with an empty body, and each bad body without a query string."""
    project, lease, client = world
    call = getattr(client, method)
    for url in _urls(path, project, lease):
        responses = [call(f"{url}?{urlencode(params)}") for params in QUERIES]
        if method != "get":
            responses += [call(url, body, format="json") for body in JSON_BODIES]
            responses += [call(url, raw, content_type="application/x-ndjson") for raw in RAW_BODIES]
            responses.append(call(url, {"file": b"junk"}, format="multipart"))
        for response in responses:
            assert response.status_code < 500, (url, response.status_code, response.content[:300])


_ABSENT = object()
ANSWER_VALUES = {
    "position": [0, 3, 7, 9, -1, None, True, 2.0, "1", _ABSENT],
    "duration_ms": [0, 900, 24 * 3600 * 1000, 24 * 3600 * 1000 + 1, -5, "900", 1.5, True, None, _ABSENT],
    "unsure": [True, False, 1, "true", None, _ABSENT],
    "skipped": [True, False, 0, _ABSENT],
    "skip_reason": ["", " ", "too short", NUL, None, _ABSENT],
    "flags": [[], [{"position": 0, "note": "typo"}], "x", None, _ABSENT],
    "other": [1, _ABSENT],
}


def test_plain_answers_are_what_the_serializer_makes_of_them():
    """The submit endpoint's shortcut (plain_answer) accepts only what the serializer accepts, and
    gives the same LabelInput; everything else it leaves to the serializer."""
    import random

    from labeling.api.serving import LabelCreateApi, plain_answer
    from labeling.services import LabelInput

    rng = random.Random(0)
    shortcut = 0
    for _ in range(20_000):  # about 1 in 200 is plain
        payload = {k: v for k, v in ((k, rng.choice(vs)) for k, vs in ANSWER_VALUES.items()) if v is not _ABSENT}
        answer = plain_answer(payload)
        if answer is None:
            continue
        shortcut += 1
        serializer = LabelCreateApi.InputSerializer(data=payload)
        assert serializer.is_valid(), (payload, serializer.errors)
        assert answer == LabelInput(**serializer.validated_data), payload
    assert shortcut > 40  # the shortcut is taken for plain answers
    assert plain_answer({"position": 1, "duration_ms": 900}) == LabelInput(position=1, duration_ms=900)
    assert plain_answer([{"position": 1, "duration_ms": 900}]) is None
