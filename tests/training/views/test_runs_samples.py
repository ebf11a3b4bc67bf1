"""A run's page shows the new policy's published samples beside the base policy's for the same queries (the
sample run's page and its PPO run's), the texts escaped, comparisons holding a base sample first (K=2 publishes
many policy-only pairs); a run that published nothing has no such section."""
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from labeling.models import Comparison, Query, Sample
from labeling.services import comparison_create
from tests.factories import ProjectFactory
from training.models import BASE_POLICY_SOURCE, Round, TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def round_runs():
    project = ProjectFactory(k=2, calibration_share=0.0)
    done = {"status": TrainingRun.Status.FINISHED, "finished_at": timezone.now(), "base_model": "tiny"}
    rnd = Round.objects.create(project=project, number=1, status=Round.Status.FINISHED)
    fit = TrainingRun.objects.create(project=project, round=rnd, kind="fit_reward", **done)
    ppo = TrainingRun.objects.create(project=project, round=rnd, kind="ppo", reward_run=fit, **done)
    sample = TrainingRun.objects.create(project=project, round=rnd, kind="sample", policy_run=ppo, **done)
    for i in range(3):
        query = Query.objects.create(project=project, context=f"query {i} <i>ctx</i>")
        samples = [Sample.objects.create(query=query, text=f"policy says {i} <script>x()</script>",
                                         source=f"run{ppo.id}-step3"),
                   Sample.objects.create(query=query, text=f"base says {i} <b>hi</b>", source=BASE_POLICY_SOURCE)]
        comparison = comparison_create(project=project, query=query, samples=samples)
        Comparison.objects.filter(id=comparison.id).update(source_run=sample)
    # Newer, policy-only comparisons: shown after those with a base sample, the base side saying so.
    for i in range(3, 3 + 7):
        query = Query.objects.create(project=project, context=f"policy-only {i}")
        samples = [Sample.objects.create(query=query, text=f"only policy {i}.{j}", source=f"run{ppo.id}-step3")
                   for j in range(2)]
        comparison = comparison_create(project=project, query=query, samples=samples)
        Comparison.objects.filter(id=comparison.id).update(source_run=sample)
    return {"fit": fit, "ppo": ppo, "sample": sample}


def _section(client, run) -> str:
    html = client.get(reverse("training-run-detail", kwargs={"run_id": run.id})).content.decode()
    start = html.find("Recent samples: policy beside base")
    return html[start:html.find("Andon log", start)] if start >= 0 else ""


@pytest.mark.parametrize("kind", ["sample", "ppo"])
def test_the_policys_samples_beside_the_bases_for_the_same_queries(client, researcher, round_runs, kind):
    client.force_login(researcher)
    section = _section(client, round_runs[kind])
    rows = section.split('class="sample-row"')[1:]
    assert len(rows) == 8  # the limit
    for i, row in zip((2, 1, 0), rows[:3]):  # those with a base sample first, newest first
        policy, base = row.split('<div class="card">')[1:3]
        assert f"query {i} &lt;i&gt;ctx&lt;/i&gt;" in row
        assert f"policy says {i} &lt;script&gt;x()&lt;/script&gt;" in policy and "base says" not in policy
        assert f"base says {i} &lt;b&gt;hi&lt;/b&gt;" in base and "policy says" not in base
    assert "<script>x()" not in section and "<b>hi</b>" not in section
    assert len(re.findall(r"comparison \d+</a>", section)) == 8
    for i, row in zip((9, 8, 7, 6, 5), rows[3:]):
        assert f"policy-only {i}" in row and "None in this comparison (policy samples only)." in row


def test_a_run_without_published_samples_has_no_section(client, researcher, round_runs):
    client.force_login(researcher)
    assert _section(client, round_runs["fit"]) == ""
