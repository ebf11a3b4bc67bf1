"""The fit_reward run on real labels, and the sign-flip tripwire on researchers' calibration answers."""
import random

import pytest

from labeling.models import Comparison, ComparisonSample, Query, Sample
from labeling.roles import RESEARCHER
from labeling.services import LabelInput, comparison_create, comparison_next_for_labeler, label_submit
from training.models import AndonPull, Checkpoint, RunMetric, TrainingRun
from training.services.execute import run_execute
from tests.factories import ProjectFactory, TrainingRunFactory, UserFactory

pytestmark = pytest.mark.django_db
Status = TrainingRun.Status
FAST = {"epochs": 6, "lr": 1e-3, "batch_size": 16, "normalize_samples": 16, "query_length": 16,
        "response_length": 16, "valid_fraction": 0.2, "log_every": 5}


def _labeled_project(contractor, researcher, *, n=96, n_calibration=12, researcher_flips=False):
    """K=2 comparisons; the better sample has more 'z'. Researchers label the calibration slice."""
    rng = random.Random(0)
    project = ProjectFactory(k=2, calibration_share=0.0)
    for i in range(n + n_calibration):
        query = Query.objects.create(project=project, context=f"q{i} ")
        good = "z" * rng.randint(6, 12) + "a" * rng.randint(0, 4)
        bad = "a" * rng.randint(6, 12) + "z" * rng.randint(0, 2)
        pair = [good, bad] if rng.random() < 0.5 else [bad, good]
        samples = [Sample.objects.create(query=query, text=t, source="test") for t in pair]
        comparison_create(project=project, query=query, samples=samples, is_calibration=i >= n)
    for labeler, calibration in ((contractor, False), (researcher, True)):
        while (assignment := comparison_next_for_labeler(project=project, labeler=labeler)) is not None:
            if assignment.comparison.is_calibration != calibration:
                break
            texts = [ComparisonSample.objects.get(comparison=assignment.comparison, position=p).sample.text
                     for p in assignment.display_order]
            best = max(range(2), key=lambda p: texts[p].count("z"))
            if calibration and researcher_flips:
                best = 1 - best
            label_submit(assignment_id=assignment.id, labeler=labeler, answer=LabelInput(position=best, duration_ms=900))
    return project


@pytest.mark.slow
def test_fit_reward_run_learns_the_labels_and_saves_a_checkpoint(contractor):
    researcher = UserFactory(username="r-fit", role=RESEARCHER)
    project = _labeled_project(contractor, researcher)
    run = TrainingRunFactory(project=project, kind="fit_reward", seed=1, config=FAST)
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
    project = _labeled_project(contractor, researcher, researcher_flips=True)
    run = TrainingRunFactory(project=project, kind="fit_reward", seed=1, config=FAST)
    assert run_execute(run_id=run.id) == Status.STOPPED
    pull = AndonPull.objects.get(run=run)
    assert pull.tripwire == "reward_sign" and pull.role == "tripwire" and "calibration" in pull.reason
    assert Comparison.objects.filter(project=project).count() == 108
