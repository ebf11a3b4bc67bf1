"""PPO in a real Celery worker: the andon cord through the web page, resume and abort, and a
worker killed with SIGKILL whose run the reaper hands to a new worker."""
import time

import pytest
import torch
from django.test import Client
from django.urls import reverse
from safetensors.torch import load_file

from labeling.models import Comparison, Query
from labeling.services import comparison_next_for_labeler
from training.models import AndonPull, Checkpoint, RunMetric, TrainingRun
from training.services import run_create, runs_reap
from training.services.execute import run_execute
from tests.factories import ProjectFactory
from tests.training.conftest import wait_for
from tests.training.helpers import FAST_PPO, cord_scenario

pytestmark = [pytest.mark.slow, pytest.mark.worker]
Status = TrainingRun.Status


def _ppo_config(steps: int) -> dict:
    return {**FAST_PPO, "reward": "builtin:lowercase", "total_episodes": FAST_PPO["batch_size"] * steps,
            "save_every": 1}


def _online(every: int) -> dict:
    """Product keys of a PPO run that publishes the current policy's samples every `every` updates."""
    return {"publish_every": every, "online_sample": {"n_queries": 2, "response_length": 6}}


def _project():
    project = ProjectFactory(k=2)
    for i in range(8):
        Query.objects.create(project=project, context=f"the story number {i} begins", external_id=f"q{i}")
    return project


def test_andon_cord_through_the_web_page_stops_ppo_then_resume_and_abort(live_worker, contractor, admin_user):
    project = _project()
    run = run_create(project=project, kind="ppo", base_model="tiny", seed=5,
                     config=_ppo_config(200), product=_online(1))
    live_worker.start()
    wait_for(lambda: Comparison.objects.filter(source_run=run).exists(), message="online samples published")

    # A contractor is served the run's samples and pulls the cord from the labeling page.
    labeler = Client()
    labeler.force_login(contractor)
    page = labeler.get(reverse("labeling-compare", kwargs={"slug": project.slug}))
    shown = contractor.assignments.get().comparison
    cord = reverse("training-andon-pull-comparison", kwargs={"comparison_id": shown.id})
    assert cord.encode() in page.content
    pulled = labeler.post(cord, {"reason": "the samples are garbage"}, HTTP_HX_REQUEST="true")
    assert pulled.status_code == 200, (pulled.content.decode()[:500],
                                       list(AndonPull.objects.values_list("role", "reason", "tripwire", "at_step")))
    wait_for(lambda: TrainingRun.objects.get(id=run.id).status == Status.STOPPED, timeout=60, message="stopped")
    run.refresh_from_db()
    # Within one step: the step in progress when the cord was pulled is the last one.
    pull = AndonPull.objects.get(run=run)
    assert pull.at_step is not None and pull.at_step <= run.step <= pull.at_step + 1
    assert pull.source.startswith(f"run{run.id}-step") and pull.comparison == shown
    checkpoint = Checkpoint.objects.filter(run=run).order_by("-step").first()
    assert checkpoint is not None and checkpoint.step == run.step
    assert not Comparison.objects.filter(source_run=run, status="active").exists()
    assert comparison_next_for_labeler(project=project, labeler=contractor) is None

    # An admin resumes: the run continues from the checkpoint's step.
    admin = Client()
    admin.force_login(admin_user)
    resume = reverse("training-run-action", kwargs={"run_id": run.id, "action": "resume"})
    assert admin.post(resume).status_code == 302
    wait_for(lambda: RunMetric.objects.filter(run=run, step=checkpoint.step + 1, key="objective/kl").exists(),
             timeout=90, message="a step after the checkpoint")
    assert TrainingRun.objects.get(id=run.id).attempts == 1  # resume resets the attempt count

    # Abort ends it for good: the trainer loses its lease at the next heartbeat.
    abort = reverse("training-run-action", kwargs={"run_id": run.id, "action": "abort"})
    assert admin.post(abort).status_code == 302
    wait_for(lambda: "lease lost" in live_worker.logs(), timeout=60, message="trainer noticed the abort")
    time.sleep(1)
    assert TrainingRun.objects.get(id=run.id).status == Status.ABORTED


def test_cord_on_a_finished_rounds_checkpoint_stops_the_next_rounds_ppo_in_the_worker(live_worker, contractor,
                                                                                       other_contractor):
    """The labeler sees round 1's samples (its PPO and sample run long finished); round 2's PPO, which optimises a
    reward fitted on labels of those samples, is training in the worker: the pull stops it within one step."""
    project = _project()
    world = cord_scenario(project, contractor)
    fit2 = world["next_runs"][0]
    live = run_create(project=project, kind="ppo", base_model="tiny", seed=3, config=_ppo_config(200),
                      reward_run=fit2)
    live_worker.start()
    wait_for(lambda: TrainingRun.objects.get(id=live.id).step >= 1, timeout=90, message="round 2's PPO training")

    labeler = Client()
    labeler.force_login(other_contractor)
    labeler.get(reverse("labeling-compare", kwargs={"slug": project.slug}))
    shown = other_contractor.assignments.get().comparison
    pulled = labeler.post(reverse("training-andon-pull-comparison", kwargs={"comparison_id": shown.id}),
                          {"reason": "round 1's policy writes slurs"}, HTTP_HX_REQUEST="true")
    assert pulled.status_code == 200
    step_at_pull = TrainingRun.objects.get(id=live.id).step
    wait_for(lambda: TrainingRun.objects.get(id=live.id).status == Status.STOPPED, timeout=60, message="stopped")
    assert TrainingRun.objects.get(id=live.id).step <= step_at_pull + 1
    pull = AndonPull.objects.get()
    assert pull.run == world["ppo1"] and set(pull.stopped.values_list("id", flat=True)) >= {live.id, fit2.id}
    assert not Comparison.objects.filter(id__in=[c.id for c in world["comparisons"]], status="active").exists()
    assert comparison_next_for_labeler(project=project, labeler=contractor) is None


def test_killed_worker_run_is_reaped_resumed_and_matches_an_uninterrupted_run(live_worker, settings):
    project = _project()
    # 24 tiny steps: the kill must land mid-run, and on a quiet machine 6 steps could all finish
    # between the poll that saw the second checkpoint and the kill.
    steps, every = 24, 8
    config, product = _ppo_config(steps), _online(every)
    live_worker.extra_env["TRAINING_LEASE_SECONDS"] = "3"
    run = run_create(project=project, kind="ppo", base_model="tiny", seed=11, config=config, product=product)
    first = live_worker.start()
    wait_for(lambda: Checkpoint.objects.filter(run=run, step__gte=2).exists(), interval=0.05,
             message="second checkpoint")
    live_worker.kill9(first)
    killed_at = TrainingRun.objects.get(id=run.id).step
    assert killed_at < steps
    time.sleep(3.5)  # the lease runs out
    assert runs_reap()["requeued"] == [run.id]
    live_worker.start()
    wait_for(lambda: TrainingRun.objects.get(id=run.id).status == Status.FINISHED, timeout=120, message="finished")
    run.refresh_from_db()
    assert run.attempts == 2 and run.step == steps

    # No comparison published twice: every online batch holds exactly its queries.
    batches = list(Comparison.objects.filter(source_run=run).values_list("batch", flat=True))
    assert sorted(set(batches)) == sorted(f"run{run.id}-step{s}" for s in range(every, steps + 1, every))
    assert all(batches.count(b) == 2 for b in set(batches))

    # The same run, uninterrupted, in this process: identical final weights.
    twin = run_create(project=project, kind="ppo", base_model="tiny", seed=11, config=config, product=product,
                      enqueue=False)
    assert run_execute(run_id=twin.id) == Status.FINISHED
    ours = load_file(f"{Checkpoint.objects.get(run=run, is_final=True).path}/policy/model.safetensors")
    theirs = load_file(f"{Checkpoint.objects.get(run=twin, is_final=True).path}/policy/model.safetensors")
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)
