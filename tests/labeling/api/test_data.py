"""REST API: imports (multipart and raw JSON Lines, errors naming the line, size and type limits) and exports."""
import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from labeling.models import Comparison, Label, Query
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






