"""publish_samples against the andon cord: samples drawn while the cord was pulled stay out of the queue."""
import pytest

from labeling.models import Comparison, Query
from tests.factories import ProjectFactory
from training.models import TrainingRun
from training.rlhf.models import load_lm
from training.services.runs import run_create
from training.services.sampling import publish_samples

pytestmark = pytest.mark.django_db
CFG = {"n_queries": 1, "response_length": 4, "query_length": 8}


@pytest.mark.parametrize("status", ["stop_requested", "stopped", "aborted"])
def test_a_run_whose_cord_was_pulled_publishes_nothing(status):
    project = ProjectFactory(k=2)
    Query.objects.create(project=project, context="the story begins", external_id="q1")
    run = run_create(project=project, kind="ppo", base_model="tiny", seed=1, config={}, enqueue=False)
    lm, tokenizer = load_lm("tiny")

    def publish(batch):
        return publish_samples(run=run, policy_lm=lm, base_lm=lm, tokenizer=tokenizer, source="policy", cfg=CFG,
                               seed=0, batch=batch)

    TrainingRun.objects.filter(id=run.id).update(status=status)  # the pull committed while sampling
    assert publish("step1").comparisons == 0
    assert not Comparison.objects.filter(source_run=run).exists()
    TrainingRun.objects.filter(id=run.id).update(status=TrainingRun.Status.RUNNING)
    assert publish("step2").comparisons == 1
    assert Comparison.objects.filter(source_run=run, batch="step2", status="active").count() == 1
