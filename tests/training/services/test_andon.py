"""The andon cord: who may pull it, what it stops and withdraws, how admins resolve it."""
import pytest
from django.utils import timezone

from labeling.errors import Conflict, Forbidden, InvalidInput
from labeling.models import Comparison, Label
from labeling.services import comparison_next_for_labeler
from training.models import AndonPull, Round, TrainingRun
from training.selectors import reward_fit_data
from training.services import (
    Quarantined,
    andon_abort,
    andon_pull,
    andon_pull_comparison,
    andon_resolve,
    andon_resume,
    round_run_ended,
    round_start,
    run_claim,
    run_create,
)
from training.services.leases import run_heartbeat, run_release
from tests.factories import TrainingRunFactory, make_comparison
from tests.training.helpers import cord_scenario

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


# ---------------------------------------------------------------- the cord on what the labeler saw


@pytest.fixture
def pulled(project, contractor, other_contractor, researcher):
    """The cord pulled by a contractor on a comparison of round 1's finished sample run while round 2 runs."""
    world = cord_scenario(project, contractor)
    shown = comparison_next_for_labeler(project=project, labeler=other_contractor)
    world["pull"] = andon_pull_comparison(comparison=shown.comparison, user=other_contractor, reason="slurs")
    return world


def _statuses(runs):
    return [TrainingRun.objects.get(id=r.id).status for r in runs]


def test_a_pull_names_the_checkpoint_and_stops_the_next_round(pulled, other_contractor):
    pull, ppo1 = pulled["pull"], pulled["ppo1"]
    assert pull.run == ppo1 and pull.source == f"run{ppo1.id}-step3" and pull.checkpoint == pulled["checkpoint"]
    assert pull.pulled_by == other_contractor and pull.comparison_id is not None
    # The next round trains on labels of the checkpoint's samples: its running fit is asked to stop (it stops at
    # its next heartbeat), its waiting PPO and sample run stop at once.
    fit2, ppo2, sample2 = pulled["next_runs"]
    assert _statuses(pulled["next_runs"]) == [Status.STOP_REQUESTED, Status.STOPPED, Status.STOPPED]
    assert run_heartbeat(run_id=fit2.id, owner="w1", step=1).stop_requested
    assert set(pull.stopped.values_list("id", flat=True)) == {fit2.id, ppo2.id, sample2.id}
    run_release(run_id=fit2.id, owner="w1", status=Status.STOPPED)
    round_run_ended(run_id=fit2.id)
    assert Round.objects.get(id=pulled["round2"].id).status == Round.Status.STOPPED


def test_every_comparison_of_the_checkpoint_leaves_the_queue_labeled_or_not(project, pulled, contractor, researcher):
    ids = [c.id for c in pulled["comparisons"]]
    labeled = pulled["labeled"]
    labeled.refresh_from_db()
    assert labeled.label_count == 1 and labeled.labels_wanted == 2  # partly labeled
    assert set(Comparison.objects.filter(id__in=ids).values_list("status", flat=True)) == {"withdrawn"}
    assert set(pulled["pull"].withdrawn.values_list("id", flat=True)) == set(ids)
    # The contractor who labeled one is not served the others, nor is anyone else.
    assert comparison_next_for_labeler(project=project, labeler=contractor) is None
    assert comparison_next_for_labeler(project=project, labeler=researcher) is None
    # While the pull is open, reward fits leave its labels out.
    assert reward_fit_data(project=project, max_label_id=None).train == []


def test_an_admin_dismisses_the_pull_and_the_comparisons_and_runs_come_back(
        project, pulled, contractor, researcher, admin_user, django_capture_on_commit_callbacks, monkeypatch):
    sent = []
    monkeypatch.setattr("training.tasks.run_execute_task.delay", lambda run_id: sent.append(run_id))
    fit2, ppo2, sample2 = pulled["next_runs"]
    run_release(run_id=fit2.id, owner="w1", status=Status.STOPPED)
    round_run_ended(run_id=fit2.id)
    with pytest.raises(Conflict, match="dismisses that pull first"):
        andon_resume(run=fit2, user=admin_user)
    with pytest.raises(Forbidden):
        andon_resolve(pull=pulled["pull"], user=researcher, resolution="dismissed", note="fine")
    with pytest.raises(InvalidInput):
        andon_resolve(pull=pulled["pull"], user=admin_user, resolution="dismissed", note=" ")
    pull = andon_resolve(pull=pulled["pull"], user=admin_user, resolution="dismissed", note="samples were fine")
    assert pull.resolution == "dismissed" and pull.resolved_by == admin_user
    ids = [c.id for c in pulled["comparisons"]]
    assert set(Comparison.objects.filter(id__in=ids).values_list("status", flat=True)) == {"active"}
    assert Comparison.objects.get(id=pulled["labeled"].id).open_slots == 1
    assert comparison_next_for_labeler(project=project, labeler=researcher).comparison_id in ids
    with pytest.raises(Conflict):
        andon_resolve(pull=pull, user=admin_user, resolution="confirmed", note="changed my mind")
    # The stopped runs may be resumed: the round continues where it stopped.
    with django_capture_on_commit_callbacks(execute=True):
        andon_resume(run=fit2, user=admin_user, note="dismissed")
    assert _statuses(pulled["next_runs"]) == [Status.QUEUED] * 3 and sent == [fit2.id]
    assert Round.objects.get(id=pulled["round2"].id).status == Round.Status.RUNNING


def test_confirm_keeps_the_quarantine_and_may_leave_its_labels_out(project, pulled, admin_user, researcher):
    fit2 = pulled["next_runs"][0]
    run_release(run_id=fit2.id, owner="w1", status=Status.STOPPED)
    round_run_ended(run_id=fit2.id)
    andon_resolve(pull=pulled["pull"], user=admin_user, resolution="confirmed", note="really broken",
                  exclude_labels=True)
    assert Comparison.objects.filter(id=pulled["labeled"].id, status="withdrawn").exists()
    assert Label.objects.filter(comparison=pulled["labeled"]).exists()
    assert reward_fit_data(project=project, max_label_id=None).train == []
    with pytest.raises(Conflict):
        andon_resume(run=fit2, user=admin_user)
    # Nothing samples, publishes or starts from the quarantined checkpoint.
    ppo1 = pulled["ppo1"]
    with pytest.raises(Quarantined, match=f"run {ppo1.id} is quarantined"):
        run_create(project=project, kind="sample", base_model="tiny", policy_run=ppo1)
    with pytest.raises(Quarantined):
        round_start(project=project, user=researcher, overrides={"base_model": pulled["checkpoint"].path})
    assert Round.objects.filter(project=project).count() == 2


def test_confirm_without_excluding_keeps_the_labels_for_reward_fits(project, pulled, admin_user):
    andon_resolve(pull=pulled["pull"], user=admin_user, resolution="confirmed", note="broken, labels still useful")
    assert len(reward_fit_data(project=project, max_label_id=None).train) == 1


def test_a_pull_on_imported_samples_is_refused(project, contractor):
    comparison = make_comparison(project)
    with pytest.raises(Conflict):
        andon_pull_comparison(comparison=comparison, user=contractor, reason="bad")


@pytest.mark.django_db(transaction=True)
def test_a_checkpoint_pruned_while_the_cord_is_pulled_does_not_fail_the_pull(project, researcher, monkeypatch):
    """The trainer prunes old checkpoints and drops their rows; one named by the samples may go between the pull's
    read and its commit (a foreign-key error at commit, which once read as "already pulled", a 409 that pulled
    nothing). The pull reads the checkpoint again and goes through."""
    from training.models import Checkpoint
    from training.services import andon as andon_service

    run = TrainingRunFactory(project=project, kind="ppo")
    run_claim(run_id=run.id, owner="w1")
    pruned = Checkpoint.objects.create(run=run, step=3, path="/gone", sha256="0" * 64)
    Checkpoint.objects.filter(id=pruned.id).delete()  # the row goes; the object read before it stays
    reads = iter([pruned, None])
    monkeypatch.setattr(andon_service, "checkpoint_by_name", lambda run, name: next(reads))
    pull = andon_pull(run=run, user=researcher, reason="garbage", source=f"run{run.id}-step3")
    assert pull.checkpoint is None and TrainingRun.objects.get(id=run.id).status == Status.STOP_REQUESTED
    assert AndonPull.objects.count() == 1
