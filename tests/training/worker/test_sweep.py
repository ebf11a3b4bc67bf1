"""An over-optimisation sweep through a real Celery worker on the tiny model: three KL budgets, comparisons
published per budget against the base, and the plot's data (the selector's points, the chart PNG)."""
import pytest
from django.urls import reverse

from labeling.models import Comparison
from labeling.roles import RESEARCHER
from training.models import BASE_POLICY_SOURCE, Checkpoint, Round, TrainingRun
from training.selectors.sweep import sweep_points
from training.services.sweep import sweep_start
from tests.factories import UserFactory, make_label
from tests.training.conftest import wait_for
from tests.training.helpers import FAST_PPO, FAST_REWARD, FAST_SAMPLE, labeled_project

pytestmark = [pytest.mark.slow, pytest.mark.worker]
Status = TrainingRun.Status
BETAS = [1.0, 0.1, 0.01]


def test_sweep_through_the_worker_publishes_each_budget_against_the_base(live_worker, contractor, other_contractor,
                                                                        client):
    researcher = UserFactory(username="r-sweep-worker", role=RESEARCHER)
    project = labeled_project(contractor, researcher, n=32, n_calibration=6)
    project.training_settings = {"reward": {**FAST_REWARD, "epochs": 2}, "ppo": FAST_PPO, "sample": FAST_SAMPLE}
    project.save()
    live_worker.start()
    rnd = sweep_start(project=project, user=researcher, betas=BETAS)
    wait_for(lambda: Round.objects.get(id=rnd.id).status != Round.Status.RUNNING, timeout=240, message="sweep ended")
    runs = list(rnd.runs.order_by("id"))
    assert [r.status for r in runs] == [Status.FINISHED] * 7, live_worker.logs()[-3000:]

    points = sweep_points(rnd=rnd)
    assert [p.beta for p in points] == BETAS
    for point in points:
        published = Comparison.objects.filter(source_run_id=point.sample_run_id)
        policy = Checkpoint.objects.get(run_id=point.ppo_run_id, is_final=True).name
        assert point.comparisons == published.count() > 0
        for comparison in published:  # base_share 1.0: each holds this budget's policy and the base
            sources = list(comparison.samples.values_list("source", flat=True))
            assert BASE_POLICY_SOURCE in sources and policy in sources, sources
        assert point.kl is not None and point.sqrt_kl is not None and point.score is not None
        # A labeler prefers the policy on every comparison of this budget: its win rate is 1 over those labels.
        for comparison in published:
            sources = list(comparison.entries.order_by("position").values_list("sample__source", flat=True))
            make_label(comparison, other_contractor, chosen_index=sources.index(policy))
    points = sweep_points(rnd=rnd)
    assert all(p.n == p.comparisons and p.rate == 1.0 for p in points)

    client.force_login(researcher)
    section = client.get(reverse("training-sweep", kwargs={"slug": project.slug}))
    assert section.status_code == 200 and f'id="sweep-{rnd.number}"'.encode() in section.content
    chart = client.get(reverse("training-sweep-chart", kwargs={"slug": project.slug, "number": rnd.number}))
    assert chart.status_code == 200 and chart["Content-Type"] == "image/png"
    assert chart.content.startswith(b"\x89PNG\r\n\x1a\n")
