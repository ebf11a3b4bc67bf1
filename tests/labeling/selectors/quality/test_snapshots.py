"""Snapshots of a project's label columns shared by every process through the `dashboard` cache:
a process that has just started reads the snapshot and only the newer labels, and falls back to
reading every row when the snapshot is stale, damaged or the cache is down."""
import logging

import numpy as np
import pytest
from django.core.cache import caches
from django.urls import reverse

from config.devservices import port_open
from labeling.models import Label
from labeling.roles import CONTRACTOR
from labeling.selectors.quality import columns, dashboard_cache_clear, labelers_quality, project_quality
from tests.factories import UserFactory, make_comparison
from tests.labeling.quality_helpers import add_label
from tests.training.conftest import live_worker  # noqa: F401 (a fixture: a real Celery worker process)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("dashboard_path")]


@pytest.fixture
def world(project):
    """Two labelers on six comparisons (two in calibration), a skip and a flag among them."""
    a = UserFactory(username="snap-a", role=CONTRACTOR)
    b = UserFactory(username="snap-b", role=CONTRACTOR)
    made = [make_comparison(project, is_calibration=n < 2, labels_wanted=4) for n in range(6)]
    for n, comparison in enumerate(made):
        add_label(comparison, a, n % 4, duration_ms=2000 + 100 * n)
        add_label(comparison, b, None if n == 5 else (n + 1) % 4, flag=n == 2)
    return {"a": a, "b": b, "comparisons": made}


@pytest.fixture
def fetches(monkeypatch):
    """The `after_id` of every read of label rows (0: every row; else only the newer ones)."""
    seen = []
    real = columns._label_rows_fetch

    def spy(project, after_id=0):
        seen.append(after_id)
        return real(project, after_id)

    monkeypatch.setattr(columns, "_label_rows_fetch", spy)
    return seen


def _table(project):
    return {q.username: (q.labels, q.answers, q.skip_rate.hits, q.flag_rate.hits, q.median_s, q.position.n)
            for q in labelers_quality(project)}


def _snapshot(project):
    return caches[columns.SNAPSHOT_CACHE].get(columns._snapshot_key(project))


def test_a_new_process_reads_the_snapshot_not_every_row(project, world, fetches):
    cold = _table(project)
    assert fetches == [0] and _snapshot(project) is not None  # the first read shares what it read
    newest = int(Label.objects.filter(comparison__project=project).order_by("-id").values_list("id", flat=True)[0])
    dashboard_cache_clear(shared=False)  # another process, or this one restarted
    assert _table(project) == cold
    assert fetches == [0, newest]  # the snapshot, checked, then only labels newer than it
    assert cold["snap-a"] == (6, 6, 0, 0, 2.25, 6) and cold["snap-b"][2:4] == (1, 1)


def test_labels_after_the_snapshot_are_read_on_top_of_it(project, world, fetches):
    _table(project)
    later = make_comparison(project, labels_wanted=4)
    add_label(later, world["a"], 3, duration_ms=9000)
    dashboard_cache_clear(shared=False)
    table = _table(project)
    assert table["snap-a"][:2] == (7, 7)
    assert fetches[-1] > 0  # not a full read
    assert project_quality(project).labels == 13


def test_an_edit_of_an_old_label_makes_the_snapshot_stale(project, world, fetches):
    """Edited around the services: the fingerprint check sees it, every row is read again and shared again."""
    _table(project)
    label = Label.objects.filter(labeler=world["a"], skipped=False).order_by("id").first()
    Label.objects.filter(id=label.id).update(skipped=True, chosen_index=None, display_position=None)
    dashboard_cache_clear(shared=False)
    assert _table(project)["snap-a"][:3] == (6, 5, 1)
    assert fetches == [0, 0]  # the stale snapshot was not used
    assert len(_snapshot(project)["columns"]["id"]) == 12
    dashboard_cache_clear(shared=False)
    assert _table(project)["snap-a"][:3] == (6, 5, 1)
    assert fetches[-1] > 0  # the rewritten snapshot is good again


def test_a_damaged_or_foreign_snapshot_is_ignored(project, world, fetches):
    expected = _table(project)
    cache = caches[columns.SNAPSHOT_CACHE]
    key = columns._snapshot_key(project)
    good = cache.get(key)
    for bad in ["garbage", {"format": 999}, {**good, "fingerprint": (1, 2, 3)},
                {**good, "columns": {**good["columns"], "id": good["columns"]["id"][:3]}}]:
        cache.set(key, bad)
        dashboard_cache_clear(shared=False)
        assert _table(project) == expected
        assert fetches[-1] == 0
    assert columns._snapshot_unpack(cache.get(key)) is not None  # replaced by a good one


def test_snapshots_are_kept_in_narrow_integers(project, world):
    _table(project)
    packed = _snapshot(project)["columns"]
    assert packed["chosen"].dtype == np.int8 and packed["skipped"].dtype == bool
    assert packed["duration_ms"].dtype.itemsize <= 4


def test_the_snapshot_is_rewritten_once_enough_labels_came(project, world, monkeypatch):
    monkeypatch.setattr(columns, "SNAPSHOT_REWRITE_ROWS", 2)
    monkeypatch.setattr(columns, "SNAPSHOT_REWRITE_SHARE", 1.0)  # min(2 labels, all of them)
    _table(project)
    comparison = make_comparison(project, labels_wanted=4)
    add_label(comparison, world["a"], 0)
    _table(project)
    assert len(_snapshot(project)["columns"]["id"]) == 12  # one more label: not yet
    add_label(comparison, world["b"], 1)
    _table(project)
    assert len(_snapshot(project)["columns"]["id"]) == 14


def _cache_settings(settings, backend: dict) -> None:
    settings.CACHES = {**settings.CACHES, "dashboard": {**backend, "TIMEOUT": None}}


def test_a_cache_that_is_down_costs_only_the_full_read(client, researcher, project, world, settings, caplog):
    """Redis on a port nobody listens on: the pages still answer, from the database."""
    _cache_settings(settings, {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                               "LOCATION": "redis://127.0.0.1:9/0", "OPTIONS": {"socket_connect_timeout": 0.2}})
    client.force_login(researcher)
    with caplog.at_level(logging.WARNING, logger="labeling.selectors.quality.columns"):
        response = client.get(reverse("dashboard-labelers", kwargs={"slug": project.slug}))
    assert response.status_code == 200 and b"snap-a" in response.content
    assert "cannot read" in caplog.text and "cannot write" in caplog.text


def _shared_between_processes(project, fetches):
    expected = _table(project)
    dashboard_cache_clear(shared=False)
    assert _table(project) == expected
    assert fetches[0] == 0 and fetches[-1] > 0


def test_snapshot_in_files(project, world, settings, tmp_path, fetches):
    """The default store (files under var/cache/dashboard)."""
    _cache_settings(settings, {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                               "LOCATION": str(tmp_path / "dashboard")})
    _shared_between_processes(project, fetches)
    assert list((tmp_path / "dashboard").glob("*.djcache"))


@pytest.mark.skipif(not port_open(6379), reason="needs Redis on its standard port")
def test_snapshot_in_redis(project, world, settings, fetches):
    _cache_settings(settings, {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                               "LOCATION": "redis://127.0.0.1:6379/14", "KEY_PREFIX": "rlhf-test"})
    caches["dashboard"].clear()
    _shared_between_processes(project, fetches)
    assert caches["dashboard"].get(columns._snapshot_key(project)) is not None
    caches["dashboard"].clear()


def test_beat_refreshes_the_snapshots_of_active_projects(project, world, fetches, settings):
    """After an edit of an old label, the beat task rewrites the stale snapshot, so the next page read in a new
    process starts from it; a project without labels this week is left alone."""
    from datetime import timedelta

    from django.utils import timezone

    from config.celery import app
    from labeling.tasks import dashboard_snapshots_refresh_task
    from tests.factories import ProjectFactory

    assert settings.CELERY_BEAT_SCHEDULE["dashboard-snapshots"]["task"] == dashboard_snapshots_refresh_task.name
    assert dashboard_snapshots_refresh_task.name in app.tasks
    Label.objects.filter(comparison__project=project).update(created_at=timezone.now() - timedelta(hours=1))
    quiet = ProjectFactory(k=4, slug="quiet")
    add_label(make_comparison(quiet, labels_wanted=4), world["a"], 0)  # labelled MONDAY, long ago

    _table(project)
    Label.objects.filter(labeler=world["b"], skipped=True).update(duration_ms=99_000)  # around the services
    result = dashboard_snapshots_refresh_task.delay().get()
    assert result == {str(project.id): 12}
    assert _snapshot(quiet) is None
    dashboard_cache_clear(shared=False)
    fetches.clear()
    _table(project)
    assert fetches and fetches[0] > 0  # the refreshed snapshot passed the check

    caches[columns.SNAPSHOT_CACHE].clear()  # emptied while this process still holds the columns
    dashboard_snapshots_refresh_task.delay().get()
    assert len(_snapshot(project)["columns"]["id"]) == 12


@pytest.mark.slow
@pytest.mark.worker
def test_a_real_worker_shares_its_snapshot_with_this_process(project, world, live_worker, settings, fetches):
    """Beat's task in a real Celery worker process (its own settings: files under its var/) writes the
    snapshot; this process, reading the same folder, starts from it instead of reading every row."""
    from datetime import timedelta

    from django.utils import timezone

    from labeling.tasks import dashboard_snapshots_refresh_task
    from tests.training.conftest import wait_for

    Label.objects.filter(comparison__project=project).update(created_at=timezone.now() - timedelta(hours=1))
    folder = live_worker.tmp / "cache" / "dashboard"  # the worker's RLHF_VAR_DIR default
    _cache_settings(settings, {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                               "LOCATION": str(folder)})
    dashboard_snapshots_refresh_task.delay()
    live_worker.start()
    wait_for(lambda: _snapshot(project) is not None, timeout=90, message="the worker's snapshot")
    assert len(_snapshot(project)["columns"]["id"]) == 12
    assert _table(project)["snap-a"] == (6, 6, 0, 0, 2.25, 6)
    assert fetches and fetches[0] > 0  # read on top of the worker's snapshot, not every row
