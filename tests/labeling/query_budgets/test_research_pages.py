"""Researcher pages make the same number of queries with few rows as with many (no N+1)."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from labeling.models import Comparison, SampleFlag
from labeling.services import instructions_publish
from tests.factories import TrainingRunFactory, UserFactory, make_comparison, make_label
from training.models import Round

pytestmark = pytest.mark.django_db


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_comparison_page(client, researcher, project, django_assert_max_num_queries):
    comparison = make_comparison(project, labels_wanted=8)
    version = instructions_publish(project=project, body="rules", author=researcher)
    make_label(comparison, researcher, chosen_index=0, instructions=version)
    url = reverse("labeling-comparison-detail", kwargs={"slug": project.slug, "comparison_id": comparison.id})
    client.force_login(researcher)
    few = _queries(client, url)
    for n in range(6):
        label = make_label(comparison, UserFactory(username=f"q{n}", role="contractor"), chosen_index=n % 4,
                           instructions=version)
        SampleFlag.objects.create(label=label, sample=comparison.entries.get(position=n % 4).sample, note="x")
    with django_assert_max_num_queries(few):
        client.get(url)


def test_instructions_list_page(client, researcher, contractor, project, django_assert_max_num_queries):
    version = instructions_publish(project=project, body="v1", author=researcher)
    url = reverse("labeling-instructions-list", kwargs={"slug": project.slug})
    client.force_login(researcher)
    few = _queries(client, url)
    for n in range(2, 8):
        make_label(make_comparison(project), contractor, chosen_index=0, instructions=version)
        version = instructions_publish(project=project, body=f"v{n}", author=UserFactory(username=f"author{n}"))
    with django_assert_max_num_queries(few):
        client.get(url)


def test_runs_page_with_win_rates(client, researcher, contractor, project, django_assert_max_num_queries):
    def a_round(number):
        rnd = Round.objects.create(project=project, number=number)
        run = TrainingRunFactory(project=project, round=rnd, kind="sample")
        comparison = make_comparison(project)
        Comparison.objects.filter(id=comparison.id).update(source_run=run)
        make_label(comparison, contractor, chosen_index=0)

    a_round(1)
    url = reverse("training-project-runs", kwargs={"slug": project.slug})
    client.force_login(researcher)
    few = _queries(client, url)
    for number in range(2, 7):
        a_round(number)
    with django_assert_max_num_queries(few):
        client.get(url)
