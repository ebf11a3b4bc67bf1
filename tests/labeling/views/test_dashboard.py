"""Dashboard pages: what a researcher sees, CSV downloads, sorting, escaping, bad input."""
import csv
import io

import pytest
from django.urls import reverse

from labeling.csv_export import csv_cell
from labeling.models import Assignment
from labeling.selectors.quality import dashboard_cache_clear
from tests.factories import make_comparison
from tests.labeling.quality_helpers import add_label, hand_world

pytestmark = pytest.mark.django_db

XSS = "=HYPERLINK(\"http://evil\")<script>alert(1)</script>"


@pytest.fixture(autouse=True)
def _fresh_dashboard_cache():
    dashboard_cache_clear()


@pytest.fixture
def world(project):
    return hand_world(project)


def _csv(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_overview_shows_charts_agreement_and_chance(client, researcher, project, world):
    client.force_login(researcher)
    response = client.get(reverse("dashboard-project", kwargs={"slug": project.slug}))
    body = response.content.decode()
    assert response.status_code == 200
    assert body.count("<svg") == 3
    assert "chance 25%" in body and "chance 50%" in body
    assert "71.4% (" in body  # labelers vs researchers: 5 of 7
    assert "Fleiss' κ -0.091" in body
    assert "v1" in body and "v2" in body


def test_overview_csv_tables(client, researcher, project, world):
    client.force_login(researcher)
    url = reverse("dashboard-project", kwargs={"slug": project.slug})
    weekly = client.get(url, {"format": "csv", "table": "weekly"})
    assert weekly["Content-Type"].startswith("text/csv")
    assert weekly["Content-Disposition"] == f'attachment; filename="{project.slug}-agreement-weekly.csv"'
    rows = _csv(weekly)
    assert rows[0][:3] == ["week_start", "n_labels", "kway"]
    assert [r[:2] for r in rows[1:]] == [["2026-01-05", "3"], ["2026-01-12", "4"]]
    days = _csv(client.get(url, {"format": "csv", "table": "days"}))
    assert days[1:] == [["2026-01-05", "13"], ["2026-01-13", "5"]]
    assert client.get(url, {"format": "csv", "table": "instructions"}).status_code == 200
    assert client.get(url, {"format": "csv", "table": "summary"}).status_code == 200
    assert client.get(url, {"format": "csv", "table": "nope"}).status_code == 400


def test_labeler_table_sorts_and_links(client, researcher, project, world):
    client.force_login(researcher)
    url = reverse("dashboard-labelers", kwargs={"slug": project.slug})
    body = client.get(url, {"sort": "-kway"}).content.decode()
    assert body.index("lab-c") < body.index("lab-b")
    assert 'aria-sort="descending"' in body
    assert reverse("dashboard-labeler", kwargs={"slug": project.slug, "user_id": world["a"].id}) in body
    body = client.get(url, {"sort": "kway"}).content.decode()
    assert body.index("lab-b") < body.index("lab-c")
    assert client.get(url, {"sort": "password"}).status_code == 400


def test_labeler_table_csv(client, researcher, project, world):
    client.force_login(researcher)
    response = client.get(reverse("dashboard-labelers", kwargs={"slug": project.slug}), {"format": "csv"})
    rows = _csv(response)
    assert response["Content-Disposition"] == f'attachment; filename="{project.slug}-labelers.csv"'
    header = rows[0]
    by_name = {r[0]: dict(zip(header, r, strict=True)) for r in rows[1:]}
    assert set(by_name) == {"res-one", "res-two", "lab-a", "lab-b", "lab-c"}
    assert by_name["lab-a"]["n_labels"] == "3" and by_name["lab-a"]["kway"] == "0.6667"
    assert {"position_p_value", "copy_flagged", "too_fast_statistic"} <= set(header)


def test_drilldown_escapes_text_and_csv_neutralises_formulas(client, researcher, project, contractor):
    hostile = make_comparison(project, texts=[XSS, " b", " c", " d"])
    add_label(hostile, contractor, 0)
    client.force_login(researcher)
    url = reverse("dashboard-labeler", kwargs={"slug": project.slug, "user_id": contractor.id})
    body = client.get(url).content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    rows = _csv(client.get(url, {"format": "csv"}))
    assert rows[1][3] == "'" + XSS
    assert client.get(url, {"page": "x"}).status_code == 400


def test_drilldown_of_someone_without_labels_is_404(client, researcher, project, world, other_contractor):
    client.force_login(researcher)
    url = reverse("dashboard-labeler", kwargs={"slug": project.slug, "user_id": other_contractor.id})
    assert client.get(url).status_code == 404


def test_unknown_project_is_404_for_researchers(client, researcher):
    client.force_login(researcher)
    assert client.get(reverse("dashboard-project", kwargs={"slug": "nope"})).status_code == 404


def test_empty_project_renders(client, researcher, project):
    client.force_login(researcher)
    assert client.get(reverse("dashboard-project", kwargs={"slug": project.slug})).status_code == 200
    assert client.get(reverse("dashboard-labelers", kwargs={"slug": project.slug})).status_code == 200


@pytest.mark.parametrize(("value", "expected"), [
    ("=1+1", "'=1+1"), ("+x", "'+x"), ("-x", "'-x"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"),
    ("plain", "plain"), (-0.5, -0.5), (3, 3), (None, ""), (True, "yes"),
])
def test_csv_cells_are_neutralised(value, expected):
    assert csv_cell(value) == expected


def test_dashboard_linked_from_project_list_for_researchers_only(client, researcher, contractor, project):
    url = reverse("dashboard-project", kwargs={"slug": project.slug})
    client.force_login(researcher)
    assert url in client.get(reverse("home")).content.decode()
    client.force_login(contractor)
    assert url not in client.get(reverse("home")).content.decode()


def _dashboard_urls(project, labeler):
    overview = reverse("dashboard-project", kwargs={"slug": project.slug})
    table = reverse("dashboard-labelers", kwargs={"slug": project.slug})
    drill = reverse("dashboard-labeler", kwargs={"slug": project.slug, "user_id": labeler.id})
    return [overview, f"{overview}?format=csv&table=weekly", table, f"{table}?format=csv", drill, f"{drill}?format=csv",
            reverse("api-dashboard-labelers", kwargs={"project_slug": project.slug})]


def test_contractors_get_403_on_every_dashboard_page_and_export(client, contractor, project, world):
    client.force_login(contractor)
    for url in _dashboard_urls(project, world["a"]):
        response = client.get(url)
        assert response.status_code == 403, url
        assert b"lab-a" not in response.content


def test_anonymous_is_sent_to_login_from_dashboard_pages(client, project, world):
    for url in _dashboard_urls(project, world["a"])[:-1]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login"))


def test_api_labeler_table_for_researchers(client, researcher, project, world):
    client.force_login(researcher)
    url = reverse("api-dashboard-labelers", kwargs={"project_slug": project.slug})
    rows = {r["username"]: r for r in client.get(url, {"sort": "-labels"}).json()}
    assert rows["lab-a"]["agreement"]["same"] == 2
    assert rows["lab-a"]["agreement"]["kway"]["value"] == pytest.approx(2 / 3)
    assert set(rows["lab-a"]["copy"]) >= {"statistic", "p_value", "flagged"}
    bad = client.get(url, {"sort": "nope"})
    assert bad.status_code == 400 and bad.json()["field"] == "sort"


def test_api_labeler_table_is_in_the_schema(client, researcher):
    client.force_login(researcher)
    schema = client.get(reverse("schema"), HTTP_ACCEPT="application/json").content.decode()
    assert "/api/projects/{project_slug}/dashboard/labelers/" in schema
    assert "LabelerQualityOutput" in schema


def test_labeling_page_does_not_reveal_calibration(client, contractor, researcher, project):
    """A calibration comparison on the contractor's labeling page shows no calibration marker or researcher answer."""
    project.calibration_share = 1.0
    project.save()
    calibration = make_comparison(project, is_calibration=True, labels_wanted=3)
    add_label(calibration, researcher, 2)
    client.force_login(contractor)
    body = client.get(reverse("labeling-compare", kwargs={"slug": project.slug})).content.decode().lower()
    assert Assignment.objects.get(labeler=contractor).comparison_id == calibration.id
    assert "label-form" in body
    for leak in ("calibration", researcher.username, "researchers"):
        assert leak not in body
