"""A big file from the import page through a real Celery worker process: queued on commit, progress on its
Import, everything written, the status endpoint stops polling."""
import hashlib
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from labeling.models import Comparison, Import, Label
from tests.training.conftest import LiveWorker, _reset_connections, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.worker]


@pytest.fixture
def import_worker(tmp_path, transactional_db, settings, monkeypatch):
    """A worker sharing this test's database, broker folder and VAR_DIR (where the page keeps uploads)."""
    from config.celery import app

    monkeypatch.setenv("CELERY_BROKER_URL", "filesystem://")
    settings.VAR_DIR = tmp_path
    worker = LiveWorker(tmp_path, extra_env={})
    saved = {k: app.conf.get(k) for k in ("broker_url", "broker_transport_options", "task_always_eager")}
    app.conf.update(broker_url="filesystem://", broker_transport_options=worker.transport_options,
                    task_always_eager=False)
    _reset_connections(app)
    yield worker
    worker.stop()
    app.conf.update(saved)
    _reset_connections(app)


def test_a_big_file_imports_through_the_worker_with_progress(import_worker, client, researcher, project, settings):
    settings.IMPORT_ASYNC_LINES = 10
    lines = [{"query": f"q{i}", **{f"sample{j}": f"s{i}.{j}" for j in range(4)}, "best": i % 4, "labeler": f"w{i % 3}"}
             for i in range(300)]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    url = reverse("labeling-import", kwargs={"slug": project.slug})
    client.force_login(researcher)
    check = client.post(url, {"file": SimpleUploadedFile("big.jsonl", data), "kind": "comparisons", "layout": "auto",
                              "labeler": "imported"})
    assert b"300 lines read" in check.content
    response = client.post(url, {"action": "import", "kind": "comparisons", "layout": "auto", "labeler": "imported",
                                 "sha256": hashlib.sha256(data).hexdigest(), "file_name": "big.jsonl"})
    assert response.status_code == 302
    record = Import.objects.get()
    assert record.status == "queued" and Comparison.objects.count() == 0

    import_worker.start()
    status_url = reverse("labeling-import-status", kwargs={"slug": project.slug, "import_id": record.id})
    final = wait_for(lambda: (r := client.get(status_url, HTTP_HX_REQUEST="true")).status_code == 286 and r,
                     timeout=120, message="import ended")
    record.refresh_from_db()
    assert record.status == "done", (record.error, import_worker.logs()[-3000:])
    assert (record.progress_done, record.progress_total, record.comparisons_created) == (300, 300, 300)
    assert b"300 lines imported" in final.content
    assert Label.objects.filter(source_import=record).count() == 300
    assert "succeeded" in import_worker.logs()
