"""The researcher's import page: the dry run (every bad line, nothing written), then the import of the kept
file with deliberate ticks (a repeated file, existing accounts), big files as a task with a progress
endpoint, the size cap before parsing, and who may use it."""
import hashlib
import json
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from labeling.errors import ExistingAccounts
from labeling.models import Assignment, Comparison, ComparisonSample, Import, Label, Query, Sample
from labeling.services.imports import import_stash
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def _jsonl(*rows) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


def _line(i: int, k: int = 4, **extra) -> dict:
    return {"query": f"query {i}", **{f"sample{j}": f"sample {i}.{j}" for j in range(k)}, **extra}


def _counts() -> tuple:
    return tuple(m.objects.count() for m in (Query, Sample, Comparison, ComparisonSample, Assignment, Label, Import,
                                             get_user_model()))


def _url(name, project, **kwargs):
    return reverse(name, kwargs={"slug": project.slug, **kwargs})


def _check(client, project, data: bytes, name="c.jsonl", **fields):
    upload = SimpleUploadedFile(name, data, content_type="application/x-ndjson")
    return client.post(_url("labeling-import", project), {"file": upload, "kind": "comparisons", "layout": "auto",
                                                          "labeler": "imported", **fields})


def _import(client, project, data: bytes, name="c.jsonl", **fields):
    """The "Import" form the dry run shows, posted as the page would."""
    return client.post(_url("labeling-import", project), {
        "action": "import", "kind": "comparisons", "layout": "auto", "labeler": "imported",
        "sha256": hashlib.sha256(data).hexdigest(), "file_name": name, **fields})


@pytest.fixture
def researcher_client(client, researcher, settings, tmp_path):
    settings.VAR_DIR = tmp_path  # the kept uploads live under VAR_DIR/imports
    client.force_login(researcher)
    return client


# ---------------------------------------------------------------- the page and who may use it


def test_the_page_offers_the_upload_and_lists_previous_imports(researcher_client, project, researcher):
    Import.objects.create(project=project, kind="comparisons", file_name="old.jsonl", sha256="ab" * 32, lines=7,
                          comparisons_created=7, labels_created=5, imported_by=researcher)
    page = researcher_client.get(_url("labeling-import", project))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'enctype="multipart/form-data"' in html and 'name="csrfmiddlewaretoken"' in html
    assert "old.jsonl" in html and "abababababab" in html and "researcher1" in html
    assert "labeling/import.js" in html and "<script>" not in html
    home = researcher_client.get(reverse("home"))
    assert _url("labeling-import", project).encode() in home.content


def test_contractors_get_403_on_every_page_and_action(client, contractor, project, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    record = Import.objects.create(project=project, kind="queries", sha256="0" * 64)
    data = _jsonl(_line(0, best=0))
    import_stash(project=project, data=data)
    client.force_login(contractor)
    before = _counts()
    assert client.get(_url("labeling-import", project)).status_code == 403
    assert _check(client, project, data).status_code == 403
    assert _import(client, project, data).status_code == 403
    assert client.get(_url("labeling-import-detail", project, import_id=record.id)).status_code == 403
    assert client.get(_url("labeling-import-status", project, import_id=record.id)).status_code == 403
    assert _counts() == before


def test_an_import_of_another_project_is_404(researcher_client, project):
    other = Import.objects.create(project=ProjectFactory(), kind="queries", sha256="0" * 64)
    assert researcher_client.get(_url("labeling-import-detail", project, import_id=other.id)).status_code == 404
    assert researcher_client.get(_url("labeling-import-status", project, import_id=other.id)).status_code == 404


def test_posting_without_the_csrf_token_is_refused_and_writes_nothing(researcher, project, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    client = Client(enforce_csrf_checks=True)
    client.force_login(researcher)
    data = _jsonl(_line(0, best=0))
    import_stash(project=project, data=data)
    before = _counts()
    assert _check(client, project, data).status_code == 403
    assert _import(client, project, data).status_code == 403
    assert _counts() == before


# ---------------------------------------------------------------- the dry run


def test_the_dry_run_lists_every_bad_line_with_its_number_and_writes_nothing(researcher_client, project, tmp_path):
    data = _jsonl(_line(0, best=0), '{"query": "broken"', _line(2, best=9), {"query": "q", "sample0": "a"},
                  _line(4, best=1))
    before = _counts()
    response = _check(researcher_client, project, data)
    assert response.status_code == 200
    html = response.content.decode()
    assert "3 bad lines" in html
    assert "line 2: invalid JSON" in html
    assert "line 3: &#x27;best&#x27; must be an integer from 0 to 3, got 9." in html
    assert "line 4: the line has 1 samples" in html
    assert html.index("line 2:") < html.index("line 3:") < html.index("line 4:")
    assert 'id="import-confirm"' not in html  # no import offered for a bad file
    assert _counts() == before
    assert not list((tmp_path / "imports").glob("*/*"))  # nor is a bad file kept


def test_the_dry_run_shows_rows_as_stored_and_accounts_and_keeps_the_file(researcher_client, project, tmp_path):
    data = _jsonl(_line(0, best=2, labeler="w1", split="valid"), _line(1), _line(2, best=0))
    before = _counts()
    response = _check(researcher_client, project, data, batch="b7")
    assert response.status_code == 200
    html = response.content.decode()
    assert "3 lines read, 2019 layout" in html and "Nothing was written." in html
    assert "query 0" in html and "sample 0.3" in html and "valid" in html and "unlabeled" in html
    assert "<code>imported</code>, <code>w1</code>" in html  # accounts to create
    assert 'id="import-confirm"' in html and 'name="batch" value="b7"' in html
    assert _counts() == before
    assert len(list((tmp_path / "imports").glob("*/*.jsonl"))) == 1


def test_the_dry_run_escapes_the_files_text(researcher_client, project):
    response = _check(researcher_client, project, _jsonl(_line(0, query="<script>alert(1)</script>")))
    assert b"<script>alert(1)" not in response.content and b"&lt;script&gt;alert(1)" in response.content


def test_a_wrong_layout_for_the_project_is_a_field_error(researcher_client, project):
    row = {"info": {"id": "x", "post": "p"}, "summaries": [{"text": "a"}, {"text": "b"}], "choice": 0}
    response = _check(researcher_client, project, _jsonl(row), layout="2020")
    assert response.status_code == 400
    assert b'id="id_layout-error"' in response.content and b"K=4" in response.content


@pytest.mark.parametrize("where", ["header", "file"])
def test_the_size_cap_is_checked_before_parsing(researcher_client, project, settings, where):
    """Over IMPORT_MAX_BYTES is a 413 with the reason, and the file is never parsed."""
    settings.IMPORT_MAX_BYTES = 64 if where == "file" else 1000
    data = b"not json at all " * (20 if where == "file" else 10_000)
    with mock.patch("labeling.views.imports.import_dry_run") as dry_run, \
            mock.patch("labeling.services.imports.import_rows") as rows:
        response = _check(researcher_client, project, data)
    assert response.status_code == 413
    assert f"imports are limited to {settings.IMPORT_MAX_BYTES} bytes".encode() in response.content
    assert b'id="id_file-error"' in response.content and b'aria-describedby="id_file-error"' in response.content
    assert not dry_run.called and not rows.called
    assert Import.objects.count() == 0


@pytest.mark.parametrize("size", [5_000, 200_000])  # declared within the multipart allowance, and past it
def test_a_file_past_the_cap_is_never_stored_beyond_it(researcher_client, project, settings, size):
    """The upload handler stops storing at IMPORT_MAX_BYTES while the body is read (before the view, before
    parsing), and the page says why; the API answers the same upload with 413 too."""
    from django.core.files.uploadhandler import MemoryFileUploadHandler

    settings.IMPORT_MAX_BYTES = 1000
    stored = []
    receive = MemoryFileUploadHandler.receive_data_chunk

    def counting(self, raw_data, start):
        stored.append(len(raw_data))
        return receive(self, raw_data, start)

    with mock.patch.object(MemoryFileUploadHandler, "receive_data_chunk", counting):
        response = _check(researcher_client, project, b"x" * size)
        api = researcher_client.post(reverse("api-comparisons-import", kwargs={"project_slug": project.slug}),
                                     {"file": SimpleUploadedFile("c.jsonl", b"x" * size)})
    assert response.status_code == 413 and b"imports are limited to 1000 bytes" in response.content
    assert api.status_code == 413 and "1000 bytes" in api.json()["detail"]
    assert sum(stored) <= 2 * 1000  # at most the cap (per request), never the file
    assert Import.objects.count() == 0


def test_a_dry_run_needs_a_file(researcher_client, project):
    response = researcher_client.post(_url("labeling-import", project), {"kind": "queries"})
    assert response.status_code == 400 and b"Choose a file" in response.content


# ---------------------------------------------------------------- the import


def test_import_writes_everything_and_shows_the_summary(researcher_client, project, researcher, tmp_path):
    data = _jsonl(_line(0, best=2, labeler="w1"), _line(1), _line(2, best=0))
    assert _check(researcher_client, project, data).status_code == 200
    response = _import(researcher_client, project, data)
    record = Import.objects.get()
    assert response.status_code == 302
    assert response["Location"] == _url("labeling-import-detail", project, import_id=record.id)
    assert (record.status, record.via, record.imported_by, record.file_name) == ("done", "web", researcher, "c.jsonl")
    assert (Comparison.objects.count(), Label.objects.count()) == (3, 2)
    assert not list((tmp_path / "imports").glob("*/*.jsonl"))  # the kept copy is gone
    page = researcher_client.get(response["Location"]).content.decode()
    assert "3 lines imported" in page and "3 comparisons, 2 labels created" in page
    assert "<code>imported</code>, <code>w1</code>" in page
    assert _url("dashboard-project", project) in page and reverse("training-project-runs", args=[project.slug]) in page
    assert "c.jsonl" in page  # and in the list of imports


def test_queries_import_through_the_page(researcher_client, project):
    data = _jsonl({"context": "a", "samples": [{"text": "x"}]}, {"context": "b", "split": "test"})
    check = _check(researcher_client, project, data, name="q.jsonl", kind="queries")
    assert b"2 lines read" in check.content
    response = _import(researcher_client, project, data, name="q.jsonl", kind="queries")
    assert response.status_code == 302
    assert sorted(Query.objects.values_list("context", "split")) == [("a", "train"), ("b", "test")]
    assert Import.objects.get().kind == "queries"


def test_import_without_a_kept_file_asks_to_upload_again(researcher_client, project):
    response = _import(researcher_client, project, _jsonl(_line(0)))
    assert response.status_code == 400 and b"upload it again" in response.content
    assert Import.objects.count() == 0


def test_the_same_file_again_is_flagged_and_needs_the_tick(researcher_client, project):
    data = _jsonl(_line(0, best=1))
    _check(researcher_client, project, data)
    _import(researcher_client, project, data)
    first = Import.objects.get()

    check = _check(researcher_client, project, data)
    assert b'id="import-repeat"' in check.content and f"import {first.id}".encode() in check.content
    before = _counts()
    refused = _import(researcher_client, project, data)
    assert refused.status_code == 400 and b"imported into this project before" in refused.content
    assert _counts() == before
    again = _import(researcher_client, project, data, import_again="on")
    assert again.status_code == 302
    assert (Import.objects.count(), Comparison.objects.count()) == (2, 2)


def test_an_existing_account_is_refused_unless_ticked(researcher_client, project, contractor, researcher):
    data = _jsonl(_line(0, best=0, labeler="contractor1"), _line(1, best=1, labeler="researcher1"),
                  _line(2, best=2, labeler="new1"))
    check = _check(researcher_client, project, data).content.decode()
    assert 'name="labelers_existing" value="contractor1"' in check
    assert "<code>researcher1</code> (researcher: calibration answers) on line 2" in check
    assert "checked" not in check.split('id="import-existing"')[1].split("</fieldset>")[0]
    before = _counts()
    unticked = _import(researcher_client, project, data, labelers_existing=["contractor1"])
    assert unticked.status_code == 400 and b"Tick each one" in unticked.content
    assert _counts() == before
    ticked = _import(researcher_client, project, data, labelers_existing=["contractor1", "researcher1"])
    assert ticked.status_code == 302
    record = Import.objects.get()
    assert sorted(record.accounts_existing.values_list("username", flat=True)) == ["contractor1", "researcher1"]
    assert list(record.accounts_created.values_list("username", flat=True)) == ["new1"]


def test_a_service_refusal_at_import_time_shows_the_dry_run_again(researcher_client, project):
    """Should the page's checks be passed (an account created between the dry run and the import), the
    service still refuses, and nothing is written."""
    data = _jsonl(_line(0, best=0, labeler="late"))
    _check(researcher_client, project, data)
    refusal = ExistingAccounts("The file writes labels under existing accounts", accounts={"late": ["line 1"]})
    with mock.patch("labeling.views.imports.comparisons_import", side_effect=refusal):
        response = _import(researcher_client, project, data)
    assert response.status_code == 400 and b"existing accounts" in response.content
    assert b'id="import-preview"' in response.content
    assert Import.objects.count() == 0


# ---------------------------------------------------------------- big files: a task and its progress


def test_a_big_file_runs_as_a_task_and_its_status_stops_polling_when_done(
        researcher_client, project, settings, tmp_path, django_capture_on_commit_callbacks):
    """Over IMPORT_ASYNC_LINES the import is queued (Celery eager here), and the status endpoint polls until it ends."""
    settings.IMPORT_ASYNC_LINES = 3
    data = _jsonl(*[_line(i, best=i % 4) for i in range(5)])
    _check(researcher_client, project, data)
    with mock.patch("labeling.tasks.import_execute_task.delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            response = _import(researcher_client, project, data, batch="big")
    record = Import.objects.get()
    delay.assert_called_once_with(record.id)
    assert (record.status, record.progress_total, record.options["batch"]) == ("queued", 5, "big")
    assert Comparison.objects.count() == 0
    detail = researcher_client.get(response["Location"]).content.decode()
    status_url = _url("labeling-import-status", project, import_id=record.id)
    assert f'hx-get="{status_url}"' in detail and "Waiting for a worker" in detail
    polling = researcher_client.get(status_url, HTTP_HX_REQUEST="true")
    assert polling.status_code == 200 and b"<progress" in polling.content

    Import.objects.filter(id=record.id).update(status="running", progress_done=2)
    running = researcher_client.get(status_url, HTTP_HX_REQUEST="true")
    assert b"2 of 5 lines read" in running.content and b'value="40"' in running.content

    from labeling.tasks import import_execute_task

    Import.objects.filter(id=record.id).update(status="queued", progress_done=0)
    import_execute_task.delay(record.id)  # eager in tests
    record.refresh_from_db()
    assert (record.status, record.progress_done, record.comparisons_created) == ("done", 5, 5)
    assert set(Comparison.objects.values_list("batch", flat=True)) == {"big"}
    done = researcher_client.get(status_url, HTTP_HX_REQUEST="true")
    assert done.status_code == 286  # htmx stops polling
    assert b"5 lines imported" in done.content and b"hx-get" not in done.content
    assert not list((tmp_path / "imports").glob("*/*.jsonl"))


def test_a_failed_task_shows_its_reason_and_wrote_nothing(researcher_client, project, settings):
    settings.IMPORT_ASYNC_LINES = 1
    data = _jsonl(_line(0, best=0, labeler="w9"), _line(1, best=0, labeler="w9"))
    _check(researcher_client, project, data)
    with mock.patch("labeling.tasks.import_execute_task.delay"):
        _import(researcher_client, project, data)
    record = Import.objects.get()
    get_user_model().objects.create_user(username="w9")  # a person took the name meanwhile
    from labeling.tasks import import_execute_task

    import_execute_task.delay(record.id)
    record.refresh_from_db()
    assert record.status == "failed" and "'w9' (no role) on line 1, line 2" in record.error
    assert Comparison.objects.count() == Label.objects.count() == 0
    response = researcher_client.get(_url("labeling-import-status", project, import_id=record.id),
                                     HTTP_HX_REQUEST="true")
    assert response.status_code == 286 and b"The import failed and wrote nothing" in response.content
