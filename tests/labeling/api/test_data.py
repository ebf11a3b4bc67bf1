"""REST API: imports (multipart and raw JSON Lines, errors naming the line, size and type limits, whose accounts
labels go under) and exports."""
import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from drf_spectacular.generators import SchemaGenerator

from labeling.models import Comparison, Import, Label, Query
from labeling.services import LabelInput, label_submit
from tests.factories import ProjectFactory, make_assignment, make_comparison
from tests.labeling.api.helpers import url as _url

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"






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




def _lines(*labelers) -> bytes:
    return "".join(json.dumps({"query": f"q{i}", **{f"sample{j}": f"s{i}.{j}" for j in range(4)}, "best": 0,
                               "labeler": name}) + "\n" for i, name in enumerate(labelers)).encode()


def test_comparisons_import_naming_an_existing_account_is_a_field_error(api, researcher, project, contractor):
    """The 400 has the shape of the API's other field errors ({detail, code, field}) and writes nothing."""
    api.force_authenticate(researcher)
    response = api.post(_url("api-comparisons-import", project), _lines("fresh", "contractor1"),
                        content_type="application/x-ndjson")
    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {"detail", "code", "field"}
    assert (body["code"], body["field"]) == ("existing_accounts", "labelers_existing")
    assert "'contractor1' (contractor) on line 2" in body["detail"]
    assert Comparison.objects.count() == Label.objects.count() == Import.objects.count() == 0


def test_comparisons_import_with_labelers_existing_writes_and_names_the_accounts(api, researcher, project, contractor):
    api.force_authenticate(researcher)
    response = api.post(_url("api-comparisons-import", project) + "?labelers_existing=contractor1",
                        _lines("fresh", "contractor1"), content_type="application/x-ndjson")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["accounts_created"], body["accounts_existing"], body["accounts_reused"]) == (
        ["fresh"], ["contractor1"], [])
    assert body["previously_imported"] is False and len(body["sha256"]) == 64
    record = Import.objects.get(id=body["import_id"])
    assert (record.imported_by, record.via) == (researcher, "api")
    assert set(Label.objects.values_list("source_import", flat=True)) == {record.id}
    again = api.post(_url("api-comparisons-import", project) + "?labelers_existing=contractor1",
                     _lines("fresh"), content_type="application/x-ndjson")
    assert again.status_code == 201 and again.json()["accounts_reused"] == ["fresh"]


def test_labelers_existing_as_multipart_fields_and_comma_lists(api, researcher, project, contractor, admin_user):
    api.force_authenticate(researcher)
    upload = SimpleUploadedFile("c.jsonl", _lines("contractor1", "admin1"))
    response = api.post(_url("api-comparisons-import", project),
                        {"file": upload, "labelers_existing": ["contractor1,admin1"]}, format="multipart")
    assert response.status_code == 201, response.content
    assert response.json()["accounts_existing"] == ["admin1", "contractor1"]
    assert Import.objects.get().file_name == "c.jsonl"


def test_labelers_existing_naming_no_account_is_400(api, researcher, project):
    api.force_authenticate(researcher)
    response = api.post(_url("api-comparisons-import", project) + "?labelers_existing=ghost", _lines("fresh"),
                        content_type="application/x-ndjson")
    assert response.status_code == 400
    assert response.json()["field"] == "labelers_existing" and "'ghost'" in response.json()["detail"]
    assert Comparison.objects.count() == 0


def test_the_schema_documents_labelers_existing():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operation = next(item["post"] for path, item in schema["paths"].items() if path.endswith("/comparisons/import/"))
    parameter = next(p for p in operation["parameters"] if p["name"] == "labelers_existing")
    assert parameter["in"] == "query" and parameter["schema"]["type"] == "array"
    assert "existing_accounts" in parameter["description"]
    multipart = operation["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert "labelers_existing" in schema["components"]["schemas"][multipart]["properties"]
    output = schema["components"]["schemas"]["ImportOutput"]["properties"]
    assert {"accounts_created", "accounts_existing", "accounts_reused", "previously_imported"} <= set(output)


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






