"""Runs through a real Celery worker process: enqueue on commit, lease claim, duplicate delivery."""
import pytest

from labeling.models import Comparison, Query
from training.models import TrainingRun
from training.services import run_create
from training.tasks import run_execute_task
from tests.factories import ProjectFactory
from tests.training.conftest import wait_for

pytestmark = [pytest.mark.slow]
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
