"""Imports for the import page: every bad line named (not only the first), the dry run that writes nothing,
the kept copy of an upload, and a big file's import as a task (claim, progress, failure)."""
import json
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from rest_framework.test import APIClient

from labeling.errors import InvalidInput, PayloadTooLarge
from labeling.models import Assignment, Comparison, ComparisonSample, Import, Label, Query, Sample
from labeling.services import comparisons_import, queries_import
from labeling.services import imports as imports_module
from labeling.services.imports import (
    BadLines,
    import_dry_run,
    import_execute,
    import_start,
    import_stash,
    import_stashed,
)
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def _jsonl(*rows) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


def _line(i: int, k: int = 4, **extra) -> dict:
    return {"query": f"query {i}", **{f"sample{j}": f"sample {i}.{j}" for j in range(k)}, **extra}


def _counts() -> tuple:
    return tuple(m.objects.count() for m in (Query, Sample, Comparison, ComparisonSample, Assignment, Label, Import,
                                             get_user_model()))


BAD = _jsonl(_line(0, best=0), "{oops", _line(2, best=7), [1, 2], {"query": "q", "sample0": "a"}, _line(5))


# ---------------------------------------------------------------- every bad line


def test_an_import_names_every_bad_line_in_file_order_and_writes_nothing(project):
    before = _counts()
    with pytest.raises(BadLines) as error:
        comparisons_import(project=project, source=BAD)
    assert [e.where for e in error.value.errors] == ["line 2", "line 3", "line 4", "line 5"]
    assert error.value.total == 4 and error.value.field == "file"
    lines = error.value.message.split("\n")
    assert lines[0].startswith("line 2: invalid JSON")
    assert lines[1] == "line 3: 'best' must be an integer from 0 to 3, got 7."
    assert lines[2] == "line 4: expected a JSON object, got list."
    assert lines[3].startswith("line 5: the line has 1 samples")
    assert _counts() == before


def test_past_the_cap_bad_lines_are_counted_not_listed(project, monkeypatch):
    monkeypatch.setattr(imports_module, "MAX_LINE_ERRORS_LISTED", 2)
    with pytest.raises(BadLines) as error:
        comparisons_import(project=project, source=BAD)
    assert [e.where for e in error.value.errors] == ["line 2", "line 3"]
    assert error.value.total == 4
    assert error.value.message.endswith("\n… and 2 more bad lines.")


def test_queries_name_every_repeated_and_taken_external_id(project):
    queries_import(project=project, source=_jsonl({"context": "a", "external_id": "x"}))
    data = _jsonl({"context": "b", "external_id": "x"}, {"context": "c", "external_id": "y"},
                  {"context": "d", "external_id": "y"}, {"nope": 1})
    with pytest.raises(BadLines) as error:
        queries_import(project=project, source=data)
    assert sorted(e.message for e in error.value.errors) == [
        "line 1: a query with external_id 'x' exists in this project.",
        "line 3: external_id 'y' repeats line 2.",
        "line 4: missing key 'context'.",
    ]
    assert Query.objects.count() == 1


def test_a_file_of_only_bad_lines_names_them_rather_than_saying_it_is_empty(project):
    with pytest.raises(BadLines, match="^line 1: invalid JSON"):
        queries_import(project=project, source=b"{oops\n")


def test_the_api_400_names_every_bad_line(project, researcher):
    api = APIClient()
    api.force_authenticate(researcher)
    response = api.post(reverse("api-comparisons-import", kwargs={"project_slug": project.slug}), BAD,
                        content_type="application/x-ndjson")
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert [line.split(":")[0] for line in detail.split("\n")] == ["line 2", "line 3", "line 4", "line 5"]
    assert Comparison.objects.count() == 0


# ---------------------------------------------------------------- the dry run


def test_the_dry_run_writes_nothing_and_reports_rows_errors_and_accounts(project, contractor, researcher):
    comparisons_import(project=project, source=_jsonl(_line(90, best=0, labeler="old-import")))
    before = _counts()
    data = _jsonl(_line(0, best=1, labeler="contractor1", split="test"), "{oops", _line(2, best=0, labeler="old-import"),
                  _line(3, best=2, labeler="researcher1"), _line(4, best=3), _line(5))
    preview = import_dry_run(project=project, source=data, kind="comparisons", labelers_existing=["researcher1"])
    assert _counts() == before
    assert (preview.layout, preview.records, preview.error_count, preview.ok) == ("2019", 6, 1, False)
    assert [e.message for e in preview.errors] == ["line 2: invalid JSON (Expecting property name enclosed in "
                                                   "double quotes at column 2)."]
    first = preview.rows[0]
    assert (first.where, first.query.context, [s.text for s in first.samples], first.best, first.labeler,
            first.query.split) == ("line 1", "query 0", ["sample 0.0", "sample 0.1", "sample 0.2", "sample 0.3"], 1,
                                   "contractor1", "test")
    assert (preview.accounts_created, preview.accounts_reused) == (["imported"], ["old-import"])
    assert [(a.username, a.role, a.lines, a.listed) for a in preview.accounts_existing] == [
        ("contractor1", "contractor", ["line 1"], False), ("researcher1", "researcher", ["line 4"], True)]
    assert preview.previous_imports == []


def test_the_dry_run_knows_a_file_imported_before_and_shows_2020_contexts_as_stored():
    project = ProjectFactory(k=2)
    row = {"info": {"id": "t3", "post": "Body.", "title": "T", "subreddit": "tifu"},
           "summaries": [{"text": "a", "policy": "p"}, {"text": "b", "policy": "q"}], "choice": 1, "worker": "w"}
    data = _jsonl(row)
    done = comparisons_import(project=project, source=data)
    Import.objects.create(project=project, kind="comparisons", sha256=done.sha256, status="failed")
    preview = import_dry_run(project=project, source=data, kind="comparisons", rows_shown=1)
    assert [p.id for p in preview.previous_imports] == [done.import_id]  # a failed one wrote nothing
    assert preview.rows[0].query.context == "SUBREDDIT: r/tifu\n\nTITLE: T\n\nPOST: Body.\n\nTL;DR:"
    assert [s.source for s in preview.rows[0].samples] == ["p", "q"]
    assert preview.accounts_reused == ["w"]


def test_the_dry_run_refuses_what_the_whole_file_cannot_be(project, settings):
    settings.IMPORT_MAX_BYTES = 10
    with mock.patch.object(imports_module, "import_rows") as rows:
        with pytest.raises(PayloadTooLarge):
            import_dry_run(project=project, source=b"x" * 11, kind="queries")
    assert not rows.called
    with pytest.raises(InvalidInput, match="kind must be"):
        import_dry_run(project=project, source=b"{}", kind="labels")


# ---------------------------------------------------------------- the kept copy and the task


@pytest.fixture
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


def test_a_kept_copy_belongs_to_its_project(project, var_dir):
    digest = import_stash(project=project, data=b'{"context": "a"}\n')
    assert import_stashed(project=project, sha256=digest) == b'{"context": "a"}\n'
    with pytest.raises(InvalidInput, match="upload it again"):
        import_stashed(project=ProjectFactory(), sha256=digest)
    with pytest.raises(InvalidInput, match="upload it again"):
        import_stashed(project=project, sha256="../../etc/passwd")


def test_a_queued_import_reports_progress_and_ends_done(project, researcher, var_dir, monkeypatch,
                                                        django_capture_on_commit_callbacks):
    monkeypatch.setattr(imports_module, "_PROGRESS_EVERY", 2)
    data = _jsonl(*[_line(i, best=0) for i in range(5)])
    digest = import_stash(project=project, data=data)
    with mock.patch("labeling.tasks.import_execute_task.delay") as delay:
        with django_capture_on_commit_callbacks(execute=True):
            record = import_start(project=project, sha256=digest, kind="comparisons", name="big.jsonl",
                                  options={"layout": "auto", "batch": "b"}, imported_by=researcher)
    delay.assert_called_once_with(record.id)
    assert (record.status, record.progress_total) == ("queued", 5)
    import_execute(import_id=record.id)
    record.refresh_from_db()
    assert (record.status, record.progress_done, record.progress_total, record.lines) == ("done", 5, 5, 5)
    assert (record.via, record.imported_by, record.batch) == ("web", researcher, "b")
    assert Comparison.objects.filter(source_import=record).count() == 5
    assert not list(var_dir.glob("imports/*/*.jsonl"))
    import_execute(import_id=record.id)  # a second delivery: no longer queued, nothing happens
    assert Comparison.objects.count() == 5


def test_progress_is_reported_while_lines_are_read(project, monkeypatch):
    monkeypatch.setattr(imports_module, "_PROGRESS_EVERY", 2)
    calls = []
    queries_import(project=project, source=_jsonl(*[{"context": f"c{i}"} for i in range(5)]),
                   on_progress=lambda done, total: calls.append((done, total)))
    assert calls == [(2, 5), (4, 5), (5, 5)]


def test_a_queued_import_of_a_refused_file_fails_with_the_reason_and_writes_nothing(project, var_dir):
    digest = import_stash(project=project, data=_jsonl(_line(0), "{oops"))
    with mock.patch("labeling.tasks.import_execute_task.delay"):
        record = import_start(project=project, sha256=digest, kind="comparisons", name="c.jsonl", options={},
                              imported_by=None)
    before = _counts()
    import_execute(import_id=record.id)
    record.refresh_from_db()
    assert record.status == "failed" and record.error.startswith("line 2: invalid JSON")
    assert _counts() == before
    assert not list(var_dir.glob("imports/*/*.jsonl"))


def test_a_task_that_crashes_marks_its_import_failed(project, var_dir):
    """Whatever escapes the service (a lost database, the time limit) reaches the task's failure hook."""
    from labeling.tasks import import_execute_task

    record = Import.objects.create(project=project, kind="queries", sha256="0" * 64, status="queued")
    with mock.patch("labeling.services.imports.import_execute", side_effect=RuntimeError("database gone")):
        result = import_execute_task.apply(args=[record.id], throw=False)  # as a worker runs it: hooks called
    assert result.failed()
    record.refresh_from_db()
    assert (record.status, record.error) == ("failed", "RuntimeError: database gone")
