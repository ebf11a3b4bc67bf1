"""A sweep's points from hand-made runs, metrics and labels: last-step KL and score, √KL, win rate vs base."""
import pytest

from labeling.metrics import wilson_interval
from labeling.models import Comparison, Query, Sample
from labeling.services import comparison_create
from training.models import BASE_POLICY_SOURCE, Round, RunMetric
from training.selectors.sweep import sweep_points, sweep_rounds
from tests.factories import ProjectFactory, TrainingRunFactory, UserFactory, make_label

pytestmark = pytest.mark.django_db


def _comparison(project, sample_run, i, sources):
    query = Query.objects.create(project=project, context=f"q{sample_run.id}.{i} ")
    samples = [Sample.objects.create(query=query, text=f"t{i}.{j}", source=s) for j, s in enumerate(sources)]
    comparison = comparison_create(project=project, query=query, samples=samples, batch=f"run{sample_run.id}")
    Comparison.objects.filter(id=comparison.id).update(source_run=sample_run)
    return comparison


def _sweep(project, betas):
    rnd = Round.objects.create(project=project, number=1, sweep={"betas": betas})
    fit = TrainingRunFactory(project=project, round=rnd, kind="fit_reward")
    pairs = []
    for beta in betas:
        ppo = TrainingRunFactory(project=project, round=rnd, kind="ppo", reward_run=fit, config={"kl_coef": beta})
        sample = TrainingRunFactory(project=project, round=rnd, kind="sample", policy_run=ppo)
        pairs.append((ppo, sample))
    return rnd, pairs


def test_points_read_the_last_step_and_count_labels_per_budget():
    project = ProjectFactory(k=2)
    labelers = [UserFactory(username=f"l{i}") for i in range(4)]
    rnd, [(ppo1, sample1), (ppo2, sample2), (ppo3, sample3)] = _sweep(project, [0.5, 0.1, 0.02])
    for step, kl, score in ((1, 0.2, 0.1), (2, 0.25, 0.3)):
        RunMetric.objects.create(run=ppo1, step=step, key="objective/kl", value=kl)
        RunMetric.objects.create(run=ppo1, step=step, key="objective/score", value=score)
    RunMetric.objects.create(run=ppo2, step=3, key="objective/kl", value=4.0)
    RunMetric.objects.create(run=ppo2, step=3, key="objective/score", value=1.5)
    RunMetric.objects.create(run=ppo3, step=3, key="objective/kl", value=-0.01)  # an early negative estimate

    # β 0.5: policy (position 0) chosen 3 times out of 4; a reference chosen is not counted, nor a skip.
    c1 = _comparison(project, sample1, 0, ["run1-step2", BASE_POLICY_SOURCE])
    c2 = _comparison(project, sample1, 1, [BASE_POLICY_SOURCE, "run1-step2"])
    c3 = _comparison(project, sample1, 2, ["reference", BASE_POLICY_SOURCE])
    make_label(c1, labelers[0], chosen_index=0)
    make_label(c1, labelers[1], chosen_index=0)
    make_label(c1, labelers[2], chosen_index=1)
    make_label(c2, labelers[0], chosen_index=1)
    make_label(c2, labelers[1])  # skipped
    make_label(c3, labelers[0], chosen_index=0)
    # β 0.1: the base always wins; policy-only comparisons do not count.
    c4 = _comparison(project, sample2, 0, ["run2-step3", BASE_POLICY_SOURCE])
    c5 = _comparison(project, sample2, 1, ["run2-step3", "run2-step3"])
    make_label(c4, labelers[0], chosen_index=1)
    make_label(c4, labelers[3], chosen_index=1)
    make_label(c5, labelers[0], chosen_index=0)

    assert sweep_rounds(project=project) == [rnd]
    p1, p2, p3 = sweep_points(rnd=rnd)
    assert [p.beta for p in (p1, p2, p3)] == [0.5, 0.1, 0.02]
    assert (p1.ppo_run_id, p1.sample_run_id) == (ppo1.id, sample1.id)
    assert p1.kl == 0.25 and p1.sqrt_kl == pytest.approx(0.5) and p1.score == 0.3
    assert p2.sqrt_kl == 2.0 and p2.score == 1.5
    assert p3.kl == -0.01 and p3.sqrt_kl == 0.0 and p3.score is None
    assert (p1.comparisons, p2.comparisons, p3.comparisons) == (3, 2, 0)
    assert (p1.wins, p1.losses, p1.rate) == (3, 1, 0.75)
    assert p1.interval == wilson_interval(3, 4)
    assert (p2.wins, p2.losses, p2.rate) == (0, 2, 0.0)
    assert p3.n == 0 and p3.rate is None and p3.interval is None


def test_a_sweep_without_metrics_or_labels_has_empty_points_and_plain_rounds_are_not_sweeps():
    project = ProjectFactory(k=2)
    Round.objects.create(project=project, number=2)  # a plain round
    rnd, _ = _sweep(project, [1.0, 2.0, 3.0])
    points = sweep_points(rnd=rnd)
    assert [p.beta for p in points] == [1.0, 2.0, 3.0]
    assert all(p.kl is None and p.sqrt_kl is None and p.score is None and p.n == 0 for p in points)
    assert sweep_rounds(project=project) == [rnd]
