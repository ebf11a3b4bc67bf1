"""A sample run publishes comparisons of the policy's (and base policy's) samples, once."""
import pytest

from labeling.models import Comparison, Query, Sample
from training.models import TrainingRun
from training.services.execute import run_execute
from tests.factories import ProjectFactory, TrainingRunFactory

pytestmark = pytest.mark.django_db
Status = TrainingRun.Status


@pytest.fixture
def project_with_queries():
    project = ProjectFactory(k=4)
    for i in range(6):
        Query.objects.create(project=project, context=f"Once upon a time number {i}, there was", external_id=f"q{i}")
    return project


@pytest.fixture
def finished_policy_run(project_with_queries, settings, tmp_path):
    """A PPO run whose final checkpoint is a (differently seeded) tiny policy saved with save_pretrained."""
    from training.rlhf.models import PolicyWithValue, build_tiny
    from training.services import checkpoint_record

    settings.ARTIFACTS_DIR = tmp_path
    ppo = TrainingRunFactory(project=project_with_queries, kind="ppo", status=Status.FINISHED)
    lm, tokenizer = build_tiny(seed=7)
    folder = tmp_path / "runs" / f"run-{ppo.id}" / "final"
    PolicyWithValue(lm).save_pretrained(folder, tokenizer)
    checkpoint_record(run=ppo, step=5, path=folder, is_final=True)
    return ppo


def test_sample_run_publishes_k_samples_per_query_once(project_with_queries, finished_policy_run):
    run = TrainingRunFactory(project=project_with_queries, kind="sample", seed=3, policy_run=finished_policy_run,
                             config={"n_queries": 4, "response_length": 8, "base_share": 1.0})
    assert run_execute(run_id=run.id) == Status.FINISHED
    comparisons = Comparison.objects.filter(source_run=run)
    assert comparisons.count() == 4
    for comparison in comparisons:
        sources = sorted(comparison.samples.values_list("source", flat=True))
        assert len(sources) == 4
        assert sources.count("baseline:base-policy") == 2  # base_share 1.0: half the slots
        assert sources.count(f"run{finished_policy_run.id}-step5") == 2  # tagged with the checkpoint
    assert Sample.objects.filter(generation_params__seed=3).count() == 16
    run.refresh_from_db()
    assert run.status == Status.FINISHED and run.lease_owner == ""
    # A re-delivered message cannot claim a finished run; even a forced re-run publishes nothing twice.
    assert run_execute(run_id=run.id) is None
    TrainingRun.objects.filter(id=run.id).update(status=Status.QUEUED)
    run_execute(run_id=run.id)
    assert Comparison.objects.filter(source_run=run).count() == 4


def test_sample_run_without_queries_fails_with_reason():
    run = TrainingRunFactory(project=ProjectFactory(), kind="sample")
    assert run_execute(run_id=run.id) == Status.FAILED
    run.refresh_from_db()
    assert "no train queries" in run.error
