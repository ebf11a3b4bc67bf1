"""The fit_reward run on real labels, and the sign-flip tripwire on researchers' calibration answers."""
import pytest

from labeling.models import Comparison
from labeling.roles import RESEARCHER
from training.models import AndonPull, Checkpoint, RunMetric, TrainingRun
from training.services.execute import run_execute
from tests.factories import TrainingRunFactory, UserFactory
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
