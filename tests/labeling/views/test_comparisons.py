"""The researchers' comparison page and its label CSV: content, escaping, scoping, roles, query counts."""
import csv
import io

import pytest
from django.http import Http404
from django.urls import reverse

from labeling.models import Comparison, Sample, SampleFlag
from labeling.selectors.comparisons import (
    LABEL_CSV_HEADER,
    comparison_detail,
    comparison_get_for_researcher,
    comparison_label_table,
)
from labeling.services import comparison_next_for_labeler, instructions_publish
from tests.factories import (
    ProjectFactory,
    TrainingRunFactory,
    UserFactory,
    make_comparison,
    make_label,
)

pytestmark = pytest.mark.django_db

XSS = "<script>alert(1)</script><img src=x onerror=alert(1)>"


def _url(name, comparison, slug=None):
    return reverse(name, kwargs={"slug": slug or comparison.project.slug, "comparison_id": comparison.id})


@pytest.fixture
def labeled(project, researcher, contractor, other_contractor):
    """A calibration comparison: a researcher's answer, a contractor's flagged unsure label, a skip."""
    v1 = instructions_publish(project=project, body="rules", author=researcher)
    comparison = make_comparison(project, is_calibration=True, labels_wanted=3,
                                 texts=[XSS, "  two\n  lines", "=HYPERLINK(\"http://x\")", "d"])
    Sample.objects.filter(id=comparison.entries.get(position=0).sample_id).update(
        source="run3-step40", generation_params={"temperature": 0.7, "note": "<b>bold</b>"})
    make_label(comparison, researcher, chosen_index=1, display_order=[3, 2, 1, 0], instructions=v1, duration_ms=4200)
    flagged = make_label(comparison, contractor, chosen_index=2, display_order=[2, 0, 1, 3], unsure=True,
                         instructions=v1, duration_ms=900)
    SampleFlag.objects.create(label=flagged, sample=comparison.entries.get(position=3).sample,
                              note="-2+3 contains a phone", suggested_correction="@redacted")
    make_label(comparison, other_contractor, skip_reason="=cmd|' /C calc'!A0", display_order=[0, 1, 2, 3])
    return comparison


def test_selector_hand_checked(labeled, researcher, contractor, other_contractor):
    detail = comparison_detail(labeled)
    assert [row.index for row in detail.samples] == [0, 1, 2, 3]
    assert detail.samples[0].sample.source == "run3-step40" and '"temperature": 0.7' in detail.samples[0].params_json
    rows = [(r.labeler, r.by_researcher, r.chosen_index, r.display_position, r.display_letter, r.unsure, r.skipped,
             r.instructions_version, [(f.index, f.note, f.suggested_correction) for f in r.flags])
            for r in detail.labels]
    assert rows == [
        (researcher.username, True, 1, 2, "C", False, False, 1, []),
        (contractor.username, False, 2, 0, "A", True, False, 1, [(3, "-2+3 contains a phone", "@redacted")]),
        (other_contractor.username, False, None, None, "", False, True, None, []),
    ]
    assert [r.labeler for r in detail.researcher_answers] == [researcher.username]


def test_selector_query_count_is_constant(project, researcher, django_assert_num_queries):
    comparison = make_comparison(project, labels_wanted=8)
    make_label(comparison, researcher, chosen_index=0)
    with django_assert_num_queries(4):
        comparison_detail(comparison)
    for n in range(6):
        label = make_label(comparison, UserFactory(username=f"many{n}", role="contractor"), chosen_index=n % 4)
        SampleFlag.objects.create(label=label, sample=comparison.entries.get(position=n % 4).sample, note="n")
    with django_assert_num_queries(4):
        detail = comparison_detail(comparison)
    assert len(detail.labels) == 7 and sum(len(r.flags) for r in detail.labels) == 6


def test_page_shows_everything_escaped_with_whitespace_kept(client, researcher, labeled, contractor):
    client.force_login(researcher)
    response = client.get(_url("labeling-comparison-detail", labeled))
    html = response.content.decode()
    assert response.status_code == 200
    assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "  two\n  lines" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html and "run3-step40" in html
    assert "calibration" in html and f"{researcher.username} chose <strong>#1</strong>" in html
    assert "-2+3 contains a phone" in html and "@redacted" in html
    assert "900 ms" in html and "unsure" in html and "skipped:" in html
    assert reverse("labeling-comparison-labels-csv", kwargs={"slug": labeled.project.slug,
                                                             "comparison_id": labeled.id}) in html


def test_csv_neutralises_formulas(client, researcher, labeled):
    client.force_login(researcher)
    response = client.get(_url("labeling-comparison-labels-csv", labeled))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == LABEL_CSV_HEADER
    by_labeler = {row[1]: dict(zip(LABEL_CSV_HEADER, row, strict=True)) for row in rows[1:]}
    assert by_labeler["contractor2"]["skip_reason"] == "'=cmd|' /C calc'!A0"
    assert by_labeler["contractor1"]["flags"] == "#3: -2+3 contains a phone [correction: @redacted]"
    assert by_labeler["contractor1"]["display_letter"] == "A" and by_labeler["contractor1"]["chosen_index"] == "2"
    for row in rows[1:]:
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in row), row


def test_csv_rows_match_the_table(labeled):
    table = comparison_label_table(comparison_detail(labeled))
    assert [row[5] for row in table] == [1, 2, ""]  # canonical chosen index; skipped is empty
    assert [row[7] for row in table] == ["C", "A", ""]


def test_foreign_or_unknown_comparison_is_404(client, researcher, project):
    other = make_comparison(ProjectFactory())
    mine = make_comparison(project)
    client.force_login(researcher)
    for name in ("labeling-comparison-detail", "labeling-comparison-labels-csv"):
        assert client.get(_url(name, other, slug=project.slug)).status_code == 404
        assert client.get(reverse(name, kwargs={"slug": project.slug, "comparison_id": 999999})).status_code == 404
        assert client.get(_url(name, mine, slug="no-such-project")).status_code == 404
        assert client.get(_url(name, mine)).status_code == 200


@pytest.mark.parametrize("name", ["labeling-comparison-detail", "labeling-comparison-labels-csv"])
def test_roles(client, contractor, admin_user, project, name):
    comparison = make_comparison(project)
    url = _url(name, comparison)
    response = client.get(url)
    assert response.status_code == 302 and reverse("login") in response["Location"]
    client.force_login(contractor)
    assert client.get(url).status_code == 403
    client.force_login(admin_user)
    assert client.get(url).status_code == 200


def test_run_page_links_its_samples_comparisons_for_researchers_only(client, researcher, contractor, project):
    run = TrainingRunFactory(project=project, kind="sample")
    comparison = make_comparison(project)
    Comparison.objects.filter(id=comparison.id).update(source_run=run)
    link = _url("labeling-comparison-detail", comparison)
    client.force_login(researcher)
    assert link in client.get(reverse("training-run-detail", kwargs={"run_id": run.id})).content.decode()
    comparison_next_for_labeler(project=project, labeler=contractor)  # served its samples: may see the run
    client.force_login(contractor)
    page = client.get(reverse("training-run-detail", kwargs={"run_id": run.id}))
    assert page.status_code == 200 and link not in page.content.decode()


def test_comparison_get_for_researcher_scopes_to_the_project(project):
    mine, theirs = make_comparison(project), make_comparison(ProjectFactory())
    assert comparison_get_for_researcher(project=project, comparison_id=mine.id) == mine
    with pytest.raises(Http404):
        comparison_get_for_researcher(project=project, comparison_id=theirs.id)
