"""REST API: projects, imports, exports, instructions, progress, token auth, OpenAPI schema and docs."""
import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from labeling.models import Comparison, InstructionsAck, Label, Project, Query
from labeling.services import LabelInput, instructions_publish, label_submit
from tests.factories import ProjectFactory, make_assignment, make_comparison

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture
def api():
    return APIClient()


def _url(name, project=None, **kwargs):
    if project is not None:
        kwargs["project_slug"] = project.slug
    return reverse(name, kwargs=kwargs or None)


# ---------------------------------------------------------------- projects


def test_project_create(api, researcher):
    api.force_authenticate(researcher)
    response = api.post(_url("api-project-create"), {"name": "Books", "slug": "books", "k": 2}, format="json")
    assert response.status_code == 201
    assert response.json()["k"] == 2 and response.json()["slug"] == "books"
    assert response.json()["calibration_labels_wanted"] == 10
    assert Project.objects.get(slug="books").created_by == researcher


def test_project_create_without_k_takes_the_default(api, researcher):
    api.force_authenticate(researcher)
    response = api.post(_url("api-project-create"), {"name": "Plain", "slug": "plain"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["k"] == 4


@pytest.mark.parametrize("k", [1, 9, 0, -2, "4", 4.0, None, True])
def test_project_create_with_k_outside_2_to_8_is_400(api, researcher, k):
    api.force_authenticate(researcher)
    response = api.post(_url("api-project-create"), {"name": "Bad", "slug": "bad", "k": k}, format="json")
    assert response.status_code == 400
    assert "2" in json.dumps(response.json()) and "8" in json.dumps(response.json())
    assert not Project.objects.filter(slug="bad").exists()


@pytest.mark.parametrize("wanted", [0, 1001, -1])
def test_project_create_with_calibration_labels_outside_1_to_1000_is_400(api, researcher, wanted):
    api.force_authenticate(researcher)
    response = api.post(_url("api-project-create"), {"name": "Bad", "slug": "bad", "calibration_labels_wanted": wanted},
                        format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "calibration_labels_wanted"
    assert not Project.objects.filter(slug="bad").exists()


def test_project_create_duplicate_slug_is_400(api, researcher, project):
    api.force_authenticate(researcher)
    response = api.post(_url("api-project-create"), {"name": "x", "slug": project.slug, "k": 4}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "slug"


def test_project_list_hides_inactive_projects_from_labelers(api, contractor, researcher):
    ProjectFactory(slug="open", name="Open")
    ProjectFactory(slug="closed", name="Closed", is_active=False)
    api.force_authenticate(contractor)
    assert [p["slug"] for p in api.get(_url("api-project-list")).json()] == ["open"]
    assert api.get(_url("api-project-detail", project_slug="closed")).status_code == 404
    api.force_authenticate(researcher)
    assert [p["slug"] for p in api.get(_url("api-project-list")).json()] == ["closed", "open"]
    assert api.get(_url("api-project-detail", project_slug="closed")).status_code == 200


def test_project_progress(api, researcher, project, contractor):
    make_comparison(project, labels_wanted=2)
    make_comparison(project)
    api.force_authenticate(researcher)
    assert api.get(_url("api-project-progress", project)).json() == {"comparisons": 2, "wanted": 3, "labeled": 0}


# ---------------------------------------------------------------- imports


def test_queries_import_as_multipart_upload(api, researcher, project):
    api.force_authenticate(researcher)
    upload = SimpleUploadedFile("queries.jsonl", (FIXTURES / "queries.jsonl").read_bytes())
    response = api.post(_url("api-queries-import", project), {"file": upload}, format="multipart")
    assert response.status_code == 201
    assert response.json()["queries_created"] == 3 and response.json()["samples_created"] == 3
    assert Query.objects.filter(project=project).count() == 3


def test_comparisons_import_as_raw_jsonl_body_with_options(api, researcher, project):
    api.force_authenticate(researcher)
    response = api.post(_url("api-comparisons-import", project) + "?tokenizer=bytes&batch=b1&labeler=legacy",
                        (FIXTURES / "comparisons_2019_k4.jsonl").read_bytes(), content_type="application/x-ndjson")
    assert response.status_code == 201, response.content
    assert response.json()["comparisons_created"] == 3 and response.json()["labels_created"] == 2
    assert set(Label.objects.values_list("labeler__username", flat=True)) == {"legacy"}
    assert set(Comparison.objects.values_list("batch", flat=True)) == {"b1"}


def test_comparisons_import_malformed_line_is_400_naming_the_line(api, researcher, project):
    api.force_authenticate(researcher)
    body = b'{"query": "q", "sample0": "a", "sample1": "b", "sample2": "c", "sample3": "d"}\n{"query": "q"\n'
    response = api.post(_url("api-comparisons-import", project), body, content_type="application/x-ndjson")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("line 2: invalid JSON")
    assert Comparison.objects.count() == 0 and Query.objects.count() == 0


def test_comparisons_import_missing_sample_key_names_it(api, researcher, project):
    api.force_authenticate(researcher)
    good = {"query": "q", "sample0": "a", "sample1": "b", "sample2": "c", "sample3": "d"}
    lines = [good] * 6 + [{"query": "q", "sample0": "a", "sample1": "b", "sample2": "c", "sample4": "d"}]
    body = "".join(json.dumps(x) + "\n" for x in lines).encode()
    response = api.post(_url("api-comparisons-import", project), body, content_type="application/x-ndjson")
    assert response.status_code == 400
    assert response.json()["detail"] == "line 7: missing key 'sample3'."
    assert Comparison.objects.count() == 0


def test_comparisons_import_k_mismatch_is_400(api, researcher):
    project = ProjectFactory(k=2)
    api.force_authenticate(researcher)
    response = api.post(_url("api-comparisons-import", project), (FIXTURES / "comparisons_2019_k4.jsonl").read_bytes(),
                        content_type="application/x-ndjson")
    assert response.status_code == 400
    assert "K=2" in response.json()["detail"]


@override_settings(IMPORT_MAX_BYTES=100)
def test_upload_over_the_size_limit_is_413_and_writes_nothing(api, researcher, project):
    api.force_authenticate(researcher)
    body = (FIXTURES / "queries.jsonl").read_bytes()
    assert len(body) > 100
    raw = api.post(_url("api-queries-import", project), body, content_type="application/x-ndjson")
    upload = api.post(_url("api-queries-import", project), {"file": SimpleUploadedFile("q.jsonl", body)}, format="multipart")
    assert raw.status_code == upload.status_code == 413
    assert "limited to 100 bytes" in raw.json()["detail"] and "limited to 100 bytes" in upload.json()["detail"]
    assert Query.objects.count() == 0


def test_import_refuses_other_file_types(api, researcher, project):
    api.force_authenticate(researcher)
    pickled = SimpleUploadedFile("model.pt", b"\x80\x04\x95")
    response = api.post(_url("api-queries-import", project), {"file": pickled}, format="multipart")
    assert response.status_code == 400
    raw = api.post(_url("api-queries-import", project), b"\x80\x04\x95", content_type="application/octet-stream")
    assert raw.status_code == 415
    assert Query.objects.count() == 0


def test_multipart_without_a_file_field_is_400(api, researcher, project):
    api.force_authenticate(researcher)
    response = api.post(_url("api-queries-import", project), {"data": "x"}, format="multipart")
    assert response.status_code == 400
    assert response.json()["field"] == "file"
    assert Query.objects.count() == 0


def test_import_tokenizer_outside_artifacts_is_400(api, researcher, project):
    api.force_authenticate(researcher)
    response = api.post(_url("api-comparisons-import", project) + "?tokenizer=/etc", b'{"query": "q"}\n',
                        content_type="application/x-ndjson")
    assert response.status_code == 400
    assert response.json()["field"] == "tokenizer"


# ---------------------------------------------------------------- exports


def test_export_streams_jsonl(api, researcher, project, contractor):
    make_comparison(project, texts=["a", "b", "c", "d"])
    assignment = make_assignment(project, contractor)
    label_submit(assignment_id=assignment.id, labeler=contractor, answer=LabelInput(position=0, duration_ms=5))
    api.force_authenticate(researcher)
    response = api.get(_url("api-labels-export", project), {"layout": "pairs"})
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("application/x-ndjson")
    assert f'{project.slug}-labels-pairs.jsonl' in response["Content-Disposition"]
    rows = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert len(rows) == 3 and {r["chosen"] for r in rows} == {"abcd"[assignment.display_order[0]]}


def test_export_2020_for_k4_is_400(api, researcher, project):
    api.force_authenticate(researcher)
    response = api.get(_url("api-labels-export", project), {"layout": "2020"})
    assert response.status_code == 400
    assert "K=4" in response.json()["detail"]
    assert api.get(_url("api-labels-export", project), {"layout": "xml"}).status_code == 400


def test_export_honours_an_ndjson_accept_header(api, researcher, project):
    """Clients that ask for JSON Lines get it, and an error comes back as one JSON line."""
    api.force_authenticate(researcher)
    ok = api.get(_url("api-labels-export", project), HTTP_ACCEPT="application/x-ndjson")
    assert ok.status_code == 200 and b"".join(ok.streaming_content) == b""
    bad = api.get(_url("api-labels-export", project), {"layout": "2020"}, HTTP_ACCEPT="application/x-ndjson")
    assert bad.status_code == 400
    assert "K=4" in json.loads(bad.content.decode().strip())["detail"]


# ---------------------------------------------------------------- instructions


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


# ---------------------------------------------------------------- token auth


def test_token_command_and_token_auth(project, researcher):
    out = StringIO()
    call_command("create_api_token", researcher.username, stdout=out)
    key = out.getvalue().strip()
    assert Token.objects.get(user=researcher).key == key
    client = APIClient()
    assert client.get(_url("api-project-progress", project)).status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get(_url("api-project-progress", project)).status_code == 200

    again = StringIO()
    call_command("create_api_token", researcher.username, stdout=again)
    assert again.getvalue().strip() == key  # stable unless rotated
    rotated = StringIO()
    call_command("create_api_token", researcher.username, "--rotate", stdout=rotated)
    assert rotated.getvalue().strip() != key
    assert client.get(_url("api-project-progress", project)).status_code == 401


def test_token_command_unknown_user():
    with pytest.raises(CommandError, match="No user"):
        call_command("create_api_token", "nobody", stdout=StringIO())


def test_anonymous_gets_401_with_token_challenge(project):
    response = APIClient().get(_url("api-project-list"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


# ---------------------------------------------------------------- OpenAPI


def test_schema_validates_without_warnings(tmp_path):
    """`manage.py spectacular --validate --fail-on-warn` passes (every endpoint typed, no name clashes)."""
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    schema = target.read_text()
    for path in ["/api/projects/", "/api/projects/create/", "/api/projects/{project_slug}/",
                 "/api/projects/{project_slug}/progress/", "/api/projects/{project_slug}/queries/import/",
                 "/api/projects/{project_slug}/comparisons/import/", "/api/projects/{project_slug}/labels/export/",
                 "/api/projects/{project_slug}/instructions/", "/api/projects/{project_slug}/instructions/publish/",
                 "/api/projects/{project_slug}/instructions/ack/", "/api/assignments/{assignment_id}/label/",
                 "/api/assignments/next/{project_slug}/", "/api/projects/{project_slug}/instructions/versions/"]:
        assert f"  {path}:\n" in schema, path
    assert "application/x-ndjson" in schema and "multipart/form-data" in schema
    assert "#/components/schemas/ErrorOutput" in schema and "'413':" in schema  # error answers are documented too


@pytest.mark.parametrize("name", ["schema", "api-docs", "api-redoc"])
def test_schema_and_docs_are_for_researchers(client, contractor, researcher, name):
    """Anonymous: 401 (schema) or the login page (docs); in detail in tests/config/test_api_docs.py."""
    assert client.get(reverse(name)).status_code in (302, 401)
    client.force_login(contractor)
    assert client.get(reverse(name)).status_code == 403
    client.force_login(researcher)
    assert client.get(reverse(name)).status_code == 200


def test_docs_page_uses_only_local_assets(client, researcher):
    client.force_login(researcher)
    page = client.get(reverse("api-docs"))
    assert page.status_code == 200
    html = page.content.decode()
    urls = re.findall(r"""(?:src|href)=["']([^"']+)""", html)
    script = client.get(reverse("api-docs") + "?script=")
    assert script.status_code == 200
    urls += re.findall(r"""["'](https?://[^"']+|/static/[^"']+)""", script.content.decode())
    assert urls
    assert all(u.startswith(("/static/", "/api/")) for u in urls), urls
    assert "swagger-ui-dist" in html  # the vendored sidecar copy
    for static_url in [u for u in urls if u.startswith("/static/")]:
        # Served by WhiteNoise after collectstatic; here: the file exists in the installed sidecar.
        assert finders.find(static_url.removeprefix("/static/")), static_url
