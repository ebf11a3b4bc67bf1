"""The population anomaly test on the dashboard's pages: the labeler table (HTML, CSV, JSON API) and the
drill-down's list of disagreements. Figures: tests/labeling/selectors/quality/test_population.py."""
import csv
import io

import pytest
from django.urls import reverse

from labeling.roles import CONTRACTOR
from labeling.selectors.quality import dashboard_cache_clear
from tests.factories import UserFactory, make_comparison
from tests.labeling.quality_helpers import add_label

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_dashboard_cache():
    dashboard_cache_clear()


@pytest.fixture
def crowd(project):
    """Three labelers choose 0 on six comparisons; the dissenter chooses 1 on all of them (π = 3/4 each),
    so the dissenter's p = (1/4)⁶ ≈ 0.00024 and the others' p = 1."""
    people = [UserFactory(username=f"crowd-{i}", role=CONTRACTOR) for i in range(3)]
    dissenter = UserFactory(username="dissenter", role=CONTRACTOR)
    comparisons = [make_comparison(project, labels_wanted=4) for _ in range(6)]
    for comparison in comparisons:
        for user in people:
            add_label(comparison, user, 0)
        add_label(comparison, dissenter, 1)
    return {"dissenter": dissenter, "comparisons": comparisons}


def test_labeler_table_shows_the_population_column_flagged_and_sortable(client, researcher, project, crowd):
    client.force_login(researcher)
    url = reverse("dashboard-labelers", kwargs={"slug": project.slug})
    body = client.get(url, {"sort": "population"}).content.decode()
    assert '<a href="?sort=-population">Population</a>' in body.replace("aria-sort=\"ascending\" ", "")
    population_cells = {row.split("</td>")[0].split(">")[-2].split("<")[0]: row.split("<td")[-1]
                        for row in body.split("<tr>")[2:]}  # labeler → the row's last cell
    assert set(population_cells) == {"dissenter", "crowd-0", "crowd-1", "crowd-2"}
    assert "⚑ flagged" in population_cells["dissenter"] and "-0.750 / p 0.0002" in population_cells["dissenter"]
    assert not any("⚑" in population_cells[f"crowd-{i}"] for i in range(3))
    assert body.index("dissenter") < body.index("crowd-0")
    assert "Bonferroni" in body
    descending = client.get(url, {"sort": "-population"}).content.decode()
    assert descending.index("crowd-0") < descending.index("dissenter")


def test_labeler_table_csv_and_api_carry_the_population_test(client, researcher, project, crowd):
    client.force_login(researcher)
    response = client.get(reverse("dashboard-labelers", kwargs={"slug": project.slug}), {"format": "csv"})
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    by_name = {r[0]: dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
    dissenter = by_name["dissenter"]
    assert (dissenter["population_n"], dissenter["population_statistic"]) == ("6", "-0.75")
    assert float(dissenter["population_p_value"]) == pytest.approx(0.25 ** 6)
    assert (dissenter["population_flagged"], by_name["crowd-0"]["population_flagged"]) == ("yes", "no")

    api = client.get(reverse("api-dashboard-labelers", kwargs={"project_slug": project.slug}),
                     {"sort": "population"}).json()
    assert api[0]["username"] == "dissenter"
    assert api[0]["population"]["p_value"] == pytest.approx(0.25 ** 6)
    assert (api[0]["population"]["observed"], api[0]["population"]["expected"]) == (0, 4.5)
    assert api[0]["population"]["flagged"] is True and "population" in api[0]["flags"]
    assert api[1]["population"]["flagged"] is False and "population" not in api[1]["flags"]


def test_drilldown_lists_disagreements_with_links_and_counts(client, researcher, project, crowd):
    client.force_login(researcher)
    url = reverse("dashboard-labeler", kwargs={"slug": project.slug, "user_id": crowd["dissenter"].id})
    body = client.get(url).content.decode()
    assert "Disagreements with the population" in body and "newest 6 of 6" in body
    for comparison in crowd["comparisons"]:
        assert reverse("labeling-comparison-detail", kwargs={"slug": project.slug, "comparison_id": comparison.id}) in body
    assert body.count("A 3 · B 0 ✔ · C 0 · D 0") == 6
    assert "population</td>" in body  # the label list marks them too
    crowd_url = reverse("dashboard-labeler", kwargs={"slug": project.slug, "user_id": crowd["comparisons"][0]
                                                      .labels.exclude(labeler=crowd["dissenter"]).first().labeler_id})
    assert "newest 0 of 0" in client.get(crowd_url).content.decode()


def test_contractors_get_403_on_the_pages_with_the_population_test(client, contractor, project, crowd):
    client.force_login(contractor)
    table = reverse("dashboard-labelers", kwargs={"slug": project.slug})
    drill = reverse("dashboard-labeler", kwargs={"slug": project.slug, "user_id": crowd["dissenter"].id})
    for url in (table, f"{table}?format=csv&sort=population", drill):
        assert client.get(url).status_code == 403
    assert client.get(reverse("api-dashboard-labelers", kwargs={"project_slug": project.slug})).status_code == 403
