"""Runs through a real Celery worker process: enqueue on commit, lease claim, duplicate delivery."""
import pytest

from labeling.models import Comparison, Query
from training.models import TrainingRun
from training.services import run_create
from training.tasks import run_execute_task
from django.urls import reverse
from tests.factories import ProjectFactory
from tests.training.conftest import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.worker]
Status = TrainingRun.Status


def test_worker_runs_a_sample_run_and_a_duplicate_delivery_exits_at_the_claim(live_worker):
    project = ProjectFactory(k=2)
    for i in range(4):
        Query.objects.create(project=project, context=f"Query {i}:", external_id=f"q{i}")
    run = run_create(project=project, kind="sample", base_model="tiny", config={"n_queries": 3, "response_length": 6})
    run_execute_task.delay(run.id)  # the same message a second time, as a redelivery would
    live_worker.start()
    wait_for(lambda: TrainingRun.objects.get(id=run.id).status == Status.FINISHED, message="run finished")
    wait_for(lambda: live_worker.logs().count("succeeded") >= 2 or "not claimable" in live_worker.logs(),
             timeout=60, message="second delivery handled")
    run.refresh_from_db()
    assert run.attempts == 1
    assert Comparison.objects.filter(source_run=run).count() == 3
    assert "not claimable" in live_worker.logs()


def test_round_through_the_worker_serves_new_comparisons_and_shows_metrics(live_worker, contractor, other_contractor,
                                                                          client):
    """labels → round_start → reward model → PPO → new comparisons tagged with the checkpoint, served."""
    from labeling.roles import RESEARCHER
    from training.models import Checkpoint, Round
    from training.services import round_start
    from tests.factories import UserFactory
    from tests.training.helpers import FAST_PPO, FAST_REWARD, FAST_SAMPLE, labeled_project

    researcher = UserFactory(username="r-worker", role=RESEARCHER)
    project = labeled_project(contractor, researcher, n=48, n_calibration=10)
    project.training_settings = {"reward": {**FAST_REWARD, "epochs": 3}, "ppo": FAST_PPO, "sample": FAST_SAMPLE}
    project.save()
    live_worker.start()
    rnd = round_start(project=project, user=researcher)
    wait_for(lambda: Round.objects.get(id=rnd.id).status != Round.Status.RUNNING, timeout=240, message="round ended")
    fit, ppo, sample = rnd.runs.order_by("id")
    assert [r.status for r in rnd.runs.order_by("id")] == [Status.FINISHED] * 3, live_worker.logs()[-3000:]
    final = Checkpoint.objects.get(run=ppo, is_final=True)
    published = Comparison.objects.filter(source_run=sample)
    assert published.count() == FAST_SAMPLE["n_queries"]
    assert all(final.name in c.samples.values_list("source", flat=True) for c in published)

    client.force_login(other_contractor)
    page = client.get(reverse("labeling-compare", kwargs={"slug": project.slug}))
    # The cord is offered on the comparison shown, hence on the policy that wrote it.
    shown = other_contractor.assignments.get().comparison_id
    assert reverse("training-andon-pull-comparison", kwargs={"comparison_id": shown}).encode() in page.content
    client.force_login(researcher)
    run_page = client.get(reverse("training-run-detail", kwargs={"run_id": ppo.id}))
    assert b"objective/kl" in run_page.content and b"Finished" in run_page.content
