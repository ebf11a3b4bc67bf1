"""The leaderboard on the rounds-and-runs page, its CSV and JSON, latency per round, and who may see them."""
import csv
import io

import pytest
from django.urls import reverse

from labeling.models import Comparison, Sample
from labeling.services import comparison_create
from tests.factories import QueryFactory, TrainingRunFactory, UserFactory, make_label
from training.models import BASE_POLICY_SOURCE, Round
from training.selectors import project_leaderboard

POLICY = "run3-step40"

pytestmark = pytest.mark.django_db


@pytest.fixture
def labeled(project):
    """One round; two comparisons [P, base, P, <script>] published by its sample run, each answered three times."""
    rnd = Round.objects.create(project=project, number=1)
    run = TrainingRunFactory(project=project, round=rnd, kind="sample")
    labelers = [UserFactory(username=f"lv{i}") for i in range(3)]
    for _ in range(2):
        query = QueryFactory(project=project)
        sources = [POLICY, BASE_POLICY_SOURCE, POLICY, "<script>alert(1)</script>"]
        samples = [Sample.objects.create(query=query, text=f"text {i}", source=s) for i, s in enumerate(sources)]
        comparison = comparison_create(project=project, query=query, samples=samples, labels_wanted=4)
        Comparison.objects.filter(id=comparison.id).update(source_run=run)
        for labeler, chosen in zip(labelers, [0, 1, 2], strict=True):  # P>base; base>P twice; P>base
            make_label(comparison, labeler, chosen_index=chosen)
    return project


def _urls(project):
    return [reverse(name, kwargs={"slug": project.slug}) for name in
            ("training-project-runs", "training-leaderboard-csv", "training-leaderboard-json")]


def test_runs_page_shows_the_leaderboard_and_latency(client, researcher, labeled):
    client.force_login(researcher)
    html = client.get(reverse("training-project-runs", kwargs={"slug": labeled.slug})).content.decode()
    board = project_leaderboard(project=labeled)
    top = board.rows[0]
    assert 'id="leaderboard-table"' in html and "with the base policy fixed at 0" in html
    assert f"{top.strength:.3f} [{top.low:.3f}, {top.high:.3f}]" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html  # policy names escaped
    assert "sample → label, median" in html and " min</td>" in html  # round 1 has labels: a latency


def test_leaderboard_csv(client, researcher, labeled):
    client.force_login(researcher)
    response = client.get(reverse("training-leaderboard-csv", kwargs={"slug": labeled.slug}))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [row["policy"] for row in rows] == [r.policy for r in project_leaderboard(project=labeled).rows]
    by_policy = {row["policy"]: row for row in rows}
    assert by_policy[BASE_POLICY_SOURCE]["strength"] == "0.0"
    assert (by_policy[POLICY]["vs_base_n"], float(by_policy[POLICY]["vs_base_win_rate"])) == ("8", 0.5)


def test_leaderboard_json(client, researcher, labeled):
    client.force_login(researcher)
    data = client.get(reverse("training-leaderboard-json", kwargs={"slug": labeled.slug})).json()
    assert data["anchor"] == "base" and data["labels"] == 6 and data["within_policy_pairs_dropped"] == 4
    assert {p["policy"] for p in data["policies"]} == {POLICY, BASE_POLICY_SOURCE, "<script>alert(1)</script>"}
    assert data["policies"][0]["rank"] == 1


def test_contractors_get_403_and_anonymous_users_the_login_page(client, contractor, labeled):
    for url in _urls(labeled):
        response = client.get(url)
        assert response.status_code == 302 and reverse("login") in response["Location"]
    client.force_login(contractor)
    assert [client.get(url).status_code for url in _urls(labeled)] == [403, 403, 403]


def test_unknown_project_is_404_for_a_researcher(client, researcher, labeled):
    client.force_login(researcher)
    for name in ("training-leaderboard-csv", "training-leaderboard-json"):
        assert client.get(reverse(name, kwargs={"slug": "no-such-project"})).status_code == 404


def test_endpoints_refuse_post(client, researcher, labeled):
    client.force_login(researcher)
    assert [client.post(url).status_code for url in _urls(labeled)[1:]] == [405, 405]
