"""The fit_reward run on real labels, and the sign-flip tripwire on researchers' calibration answers."""
import pytest

from labeling.models import Comparison, Query, Sample
from labeling.roles import RESEARCHER
from labeling.services import comparison_create
from training.models import BASE_POLICY_SOURCE, AndonPull, Checkpoint, RunMetric, TrainingRun
from training.rlhf.config import ConfigError
from training.rlhf.models import RewardModel
from training.selectors import base_policy_sample_pairs
from training.services.execute import run_execute
from training.services.reward_fit import reward_fit_config
from training.services.rounds import round_configs
from tests.factories import ProjectFactory, TrainingRunFactory, UserFactory
from tests.training.helpers import FAST_REWARD, labeled_project

pytestmark = pytest.mark.django_db
Status = TrainingRun.Status


@pytest.mark.slow
def test_fit_reward_run_learns_the_labels_and_saves_a_checkpoint(contractor):
    researcher = UserFactory(username="r-fit", role=RESEARCHER)
    project = labeled_project(contractor, researcher)
    run = TrainingRunFactory(project=project, kind="fit_reward", seed=1, config=FAST_REWARD)
    assert run_execute(run_id=run.id) == Status.FINISHED
    metrics = dict(RunMetric.objects.filter(run=run).values_list("key", "value"))
    assert metrics["valid/accuracy"] >= 0.8
    assert metrics["calibration/accuracy"] >= 0.8
    assert "normalization/gain" in metrics
    assert metrics["normalization_before/samples"] == FAST_REWARD["normalize_samples"]  # rho sampled afresh
    checkpoint = Checkpoint.objects.get(run=run)
    assert checkpoint.is_final and len(checkpoint.sha256) == 64
    assert not AndonPull.objects.exists()


@pytest.mark.slow
def test_reward_that_disagrees_with_researchers_pulls_the_cord(contractor):
    researcher = UserFactory(username="r-flip", role=RESEARCHER)
    project = labeled_project(contractor, researcher, researcher_flips=True)
    run = TrainingRunFactory(project=project, kind="fit_reward", seed=1, config=FAST_REWARD)
    assert run_execute(run_id=run.id) == Status.STOPPED
    pull = AndonPull.objects.get(run=run)
    assert pull.tripwire == "reward_sign" and pull.role == "tripwire" and "calibration" in pull.reason
    assert Comparison.objects.filter(project=project).count() == 108


def add_base_policy_comparisons(project, *, base_model: str, n: int, prefix: str = "b") -> list[tuple[str, str]]:
    """n/2 K=2 comparisons published by a sample run of `base_model`, both slots written by rho."""
    sample_run = TrainingRunFactory(project=project, kind="sample", base_model=base_model)
    pairs = []
    for i in range(n // 2):
        query = Query.objects.create(project=project, context=f"{prefix}{i} ")
        texts = [f"{'z' * (i % 5)}rho {j}" for j in range(2)]
        samples = [Sample.objects.create(query=query, text=t, source=BASE_POLICY_SOURCE) for t in texts]
        comparison = comparison_create(project=project, query=query, samples=samples, batch=f"{prefix}-base")
        Comparison.objects.filter(id=comparison.id).update(source_run=sample_run)
        pairs += [(query.context, t) for t in texts]
    return pairs


def test_base_policy_sample_pairs_are_rhos_stored_samples_for_that_base_model():
    project = ProjectFactory(k=2)
    tiny = add_base_policy_comparisons(project, base_model="tiny", n=6)
    add_base_policy_comparisons(project, base_model="other-model", n=4, prefix="o")
    add_base_policy_comparisons(ProjectFactory(k=2), base_model="tiny", n=4)
    query = Query.objects.create(project=project, context="p ")
    policy = [Sample.objects.create(query=query, text=t, source="run9-step5") for t in ("x", "y")]
    comparison_create(project=project, query=query, samples=policy)
    assert base_policy_sample_pairs(project=project, base_model="tiny", limit=100) == tiny
    assert base_policy_sample_pairs(project=project, base_model="tiny", limit=4) == tiny[:4]


@pytest.mark.slow
def test_fit_reward_run_normalises_before_training_on_stored_base_policy_samples(contractor):
    researcher = UserFactory(username="r-base", role=RESEARCHER)
    project = labeled_project(contractor, researcher)
    add_base_policy_comparisons(project, base_model="tiny", n=40)
    run = TrainingRunFactory(project=project, kind="fit_reward", seed=1,
                             config={**FAST_REWARD, "normalize_samples": 48})
    assert run_execute(run_id=run.id) == Status.FINISHED
    metrics = dict(RunMetric.objects.filter(run=run).values_list("key", "value"))
    assert metrics["normalization_before/samples"] == 40  # the stored ones, not 48 fresh samples
    assert metrics["valid/accuracy"] >= 0.8


def test_project_reward_settings_choose_the_reward_readout():
    """training_settings "reward" keys reach RewardFitConfig through the round's run config."""
    project = ProjectFactory(training_settings={"reward": {"readout": "mean"}})
    run = TrainingRunFactory(project=project, kind="fit_reward", config=round_configs(project)["reward"])
    assert reward_fit_config(run).readout == "mean"
    assert reward_fit_config(TrainingRunFactory(project=ProjectFactory(), kind="fit_reward")).readout == "last"
    bad = TrainingRunFactory(project=project, kind="fit_reward", config={"readout": "first"})
    with pytest.raises(ConfigError, match="readout"):
        reward_fit_config(bad)


@pytest.mark.slow
def test_fit_reward_run_with_mean_readout_learns_and_saves_the_readout(contractor):
    researcher = UserFactory(username="r-mean", role=RESEARCHER)
    project = labeled_project(contractor, researcher)
    project.training_settings = {"reward": {**FAST_REWARD, "readout": "mean"}}
    project.save(update_fields=["training_settings"])
    run = TrainingRunFactory(project=project, kind="fit_reward", seed=1, config=round_configs(project)["reward"])
    assert run_execute(run_id=run.id) == Status.FINISHED
    metrics = dict(RunMetric.objects.filter(run=run).values_list("key", "value"))
    assert metrics["valid/accuracy"] >= 0.8
    model, _ = RewardModel.from_pretrained(Checkpoint.objects.get(run=run).path)
    assert model.readout == "mean"
