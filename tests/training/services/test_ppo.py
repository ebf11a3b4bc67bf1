"""A PPO run's online publishing: valid samples only, and the invalid share recorded at the step it published."""
import pytest

from labeling.models import Comparison, Query, Sample
from tests.factories import ProjectFactory
from tests.training.helpers import FAST_PPO
from training.models import RunMetric, TrainingRun
from training.services import run_create
from training.services.execute import run_execute

pytestmark = pytest.mark.django_db


def test_online_publishing_records_the_invalid_share_and_publishes_valid_samples_only():
    project = ProjectFactory(k=2)
    for i in range(4):
        Query.objects.create(project=project, context=f"the story number {i} begins", external_id=f"q{i}")
    online = {"n_queries": 4, "response_length": 6, "truncate_text": ".", "truncate_after": 0, "max_tries": 2}
    run = run_create(project=project, kind="ppo", base_model="tiny", seed=2, enqueue=False,
                     config={**FAST_PPO, "reward": "builtin:lowercase", "total_episodes": FAST_PPO["batch_size"]},
                     product={"publish_every": 1, "online_sample": online})
    assert run_execute(run_id=run.id) == TrainingRun.Status.FINISHED, TrainingRun.objects.get(id=run.id).error
    metrics = dict(RunMetric.objects.filter(run=run, step=1, key__startswith="sample/").values_list("key", "value"))
    published = Comparison.objects.filter(source_run=run, batch=f"run{run.id}-step1").count()
    # The untrained tiny model rarely writes "." (about 1 byte in 258): most draws are invalid.
    assert metrics["sample/invalid_share"] > 0.5 and metrics["sample/dropped_queries"] == 4 - published
    assert all("." in text for text in Sample.objects.filter(comparisons__source_run=run).values_list("text", flat=True))
