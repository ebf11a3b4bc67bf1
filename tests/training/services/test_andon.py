"""The andon cord: who may pull it, what it stops and withdraws, how admins resolve it."""
import pytest
from django.utils import timezone

from labeling.errors import Conflict, Forbidden, InvalidInput
from labeling.models import Comparison
from labeling.services import comparison_next_for_labeler
from training.models import AndonPull, TrainingRun
from training.services import andon_abort, andon_pull, andon_resume, run_claim
from training.services.leases import run_heartbeat
from tests.factories import TrainingRunFactory, make_comparison

pytestmark = pytest.mark.django_db
Status = TrainingRun.Status


@pytest.fixture
def running(project):
    run = TrainingRunFactory(project=project)
    run_claim(run_id=run.id, owner="w1")
    return run


def _publish(project, run, n=2):
    comparisons = [make_comparison(project) for _ in range(n)]
    Comparison.objects.filter(id__in=[c.id for c in comparisons]).update(source_run=run)
    return comparisons


def test_contractor_may_pull_only_on_runs_served_to_them(project, running, contractor):
    with pytest.raises(Forbidden):
        andon_pull(run=running, user=contractor, reason="gibberish")
    _publish(project, running)
    assert comparison_next_for_labeler(project=project, labeler=contractor) is not None
    pull = andon_pull(run=running, user=contractor, reason="it writes hateful text")
    running.refresh_from_db()
    assert running.status == Status.STOP_REQUESTED and running.stop_requested_by == contractor
    assert pull.role == "contractor" and pull.reason == "it writes hateful text"


def test_pull_withdraws_unlabeled_comparisons_and_ends_their_leases(project, running, researcher, contractor):
    _publish(project, running, n=3)
    leased = comparison_next_for_labeler(project=project, labeler=contractor)
    andon_pull(run=running, user=researcher, reason="KL looks wrong")
    assert not Comparison.objects.filter(source_run=running, status="active").exists()
    leased.refresh_from_db()
    assert leased.state == "withdrawn"
    assert comparison_next_for_labeler(project=project, labeler=contractor) is None


def test_reason_required_and_one_open_pull_per_run(running, researcher, admin_user):
    with pytest.raises(InvalidInput):
        andon_pull(run=running, user=researcher, reason="  ")
    andon_pull(run=running, user=researcher, reason="first")
    with pytest.raises(Conflict):
        andon_pull(run=running, user=admin_user, reason="second")
    assert AndonPull.objects.count() == 1


def test_pulling_a_queued_run_stops_it_at_once(project, researcher):
    run = TrainingRunFactory(project=project)
    andon_pull(run=run, user=researcher, reason="wrong config")
    run.refresh_from_db()
    assert run.status == Status.STOPPED
    assert not run_claim(run_id=run.id, owner="w1")


def test_only_admins_resume_and_abort(running, researcher, admin_user, django_capture_on_commit_callbacks, monkeypatch):
    sent = []
    monkeypatch.setattr("training.tasks.run_execute_task.delay", lambda run_id: sent.append(run_id))
    andon_pull(run=running, user=researcher, reason="check it")
    TrainingRun.objects.filter(id=running.id).update(status=Status.STOPPED, lease_owner="")
    with pytest.raises(Forbidden):
        andon_resume(run=running, user=researcher)
    with django_capture_on_commit_callbacks(execute=True):
        andon_resume(run=running, user=admin_user, note="false alarm")
    running.refresh_from_db()
    assert running.status == Status.QUEUED and running.attempts == 0 and sent == [running.id]
    pull = AndonPull.objects.get()
    assert pull.resolution == "resumed" and pull.resolved_by == admin_user and pull.resolution_note == "false alarm"
    assert run_claim(run_id=running.id, owner="w2")
    with pytest.raises(Forbidden):
        andon_abort(run=running, user=researcher)
    andon_abort(run=running, user=admin_user)
    running.refresh_from_db()
    assert running.status == Status.ABORTED
    with pytest.raises(Conflict):
        andon_resume(run=running, user=admin_user)


def test_pull_records_the_step_the_trainer_last_reported(running, researcher):
    run_heartbeat(run_id=running.id, owner="w1", step=7)
    pull = andon_pull(run=running, user=researcher, reason="KL climbs")
    assert pull.at_step == 7
    # The trainer's next heartbeat (step 8, the one in progress) sees the stop request.
    assert run_heartbeat(run_id=running.id, owner="w1", step=8).stop_requested


def test_tripwire_pull_has_no_user(running):
    pull = andon_pull(run=running, reason="kl_cap: KL 40 nats", tripwire="kl_cap")
    assert pull.role == "tripwire" and pull.pulled_by is None


def test_pulls_are_rate_limited_per_user(project, researcher):
    runs = [TrainingRunFactory(project=project) for _ in range(6)]
    for run in runs[:5]:
        andon_pull(run=run, user=researcher, reason="stop")
    with pytest.raises(Conflict):
        andon_pull(run=runs[5], user=researcher, reason="stop")
    assert AndonPull.objects.filter(created_at__lte=timezone.now()).count() == 5
