"""The run row owns a run's fate: lease claims, heartbeats and the reaper."""
from datetime import timedelta

import pytest
from django.utils import timezone

from training.models import TrainingRun
from training.services import run_claim, run_heartbeat, run_release, runs_reap
from tests.factories import TrainingRunFactory

pytestmark = pytest.mark.django_db
Status = TrainingRun.Status


def test_a_second_claim_of_the_same_run_fails():
    """A duplicate delivery of a run's message exits at the lease claim."""
    run = TrainingRunFactory()
    assert run_claim(run_id=run.id, owner="w1")
    assert not run_claim(run_id=run.id, owner="w2")
    run.refresh_from_db()
    assert run.status == Status.RUNNING and run.lease_owner == "w1" and run.attempts == 1 and run.pid


def test_heartbeat_renews_lease_and_reads_stop_flag():
    run = TrainingRunFactory()
    run_claim(run_id=run.id, owner="w1")
    beat = run_heartbeat(run_id=run.id, owner="w1", step=3)
    assert not beat.lease_lost and not beat.stop_requested
    TrainingRun.objects.filter(id=run.id).update(status=Status.STOP_REQUESTED)
    assert run_heartbeat(run_id=run.id, owner="w1").stop_requested
    run.refresh_from_db()
    assert run.step == 3


def test_heartbeat_of_a_stranger_reports_lease_lost():
    run = TrainingRunFactory()
    run_claim(run_id=run.id, owner="w1")
    beat = run_heartbeat(run_id=run.id, owner="zombie")
    assert beat.lease_lost


def test_expired_lease_can_be_claimed_again_and_old_owner_loses_it():
    run = TrainingRunFactory()
    now = timezone.now()
    run_claim(run_id=run.id, owner="w1", now=now)
    later = now + timedelta(hours=1)
    assert run_claim(run_id=run.id, owner="w2", now=later)
    assert run_heartbeat(run_id=run.id, owner="w1", now=later).lease_lost
    assert not run_release(run_id=run.id, owner="w1", status=Status.FINISHED)
    assert run_release(run_id=run.id, owner="w2", status=Status.FINISHED)
    run.refresh_from_db()
    assert run.status == Status.FINISHED and run.lease_owner == "" and run.finished_at


def test_reaper_requeues_then_fails_after_max_attempts(django_capture_on_commit_callbacks, monkeypatch):
    sent = []
    monkeypatch.setattr("training.tasks.run_execute_task.delay", lambda run_id: sent.append(run_id))
    run = TrainingRunFactory(max_attempts=2)
    now = timezone.now()
    for attempt in (1, 2):
        assert run_claim(run_id=run.id, owner=f"w{attempt}", now=now)
        now += timedelta(hours=1)
        with django_capture_on_commit_callbacks(execute=True):
            result = runs_reap(now=now)
        run.refresh_from_db()
    assert result["failed"] == [run.id]
    assert run.status == Status.FAILED and "2 attempts" in run.error
    assert sent == [run.id]  # re-queued once, after the first lost worker
    assert not run_claim(run_id=run.id, owner="w3", now=now)


def test_reaper_leaves_live_leases_alone():
    run = TrainingRunFactory()
    run_claim(run_id=run.id, owner="w1")
    assert runs_reap() == {"requeued": [], "failed": [], "stopped": [], "unresponsive": []}
    run.refresh_from_db()
    assert run.status == Status.RUNNING


def test_reaper_marks_unacknowledged_stop_unresponsive_and_stops_dead_trainers():
    run = TrainingRunFactory()
    now = timezone.now()
    run_claim(run_id=run.id, owner="w1", now=now)
    TrainingRun.objects.filter(id=run.id).update(status=Status.STOP_REQUESTED, stop_requested_at=now)
    assert runs_reap(now=now + timedelta(seconds=90))["unresponsive"] == [run.id]
    result = runs_reap(now=now + timedelta(hours=1))
    run.refresh_from_db()
    assert result["stopped"] == [run.id] and run.status == Status.STOPPED and run.unresponsive_at
