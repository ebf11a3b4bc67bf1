"""Dashboard selectors on a small project whose figures are worked out by hand (tests/labeling/quality_helpers.py)."""
from datetime import date

import pytest

from labeling.selectors.quality import labeler_detail, labelers_quality, project_quality, dashboard_cache_clear
from tests.labeling.quality_helpers import hand_world

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("dashboard_path")]


@pytest.fixture(autouse=True)
def _fresh_dashboard_cache():
    dashboard_cache_clear()


def test_project_agreement_hand_computed(project):
    """Labelers: a 2 same 1 different, b 1/1, c 2/0 → 5 of 7; pairwise 15/(15 + 2); researchers 4 of 6."""
    hand_world(project)
    q = project_quality(project)
    assert (q.labeler_researcher.same, q.labeler_researcher.different) == (5, 2)
    assert q.labeler_researcher.kway.value == pytest.approx(5 / 7)
    assert q.labeler_researcher.pairwise.value == pytest.approx(15 / 17)
    assert (q.researcher_researcher.same, q.researcher_researcher.different) == (4, 2)
    assert q.chance_kway == 0.25 and q.chance_pairwise == 0.5


def test_project_weekly_and_instructions_breakdown(project):
    """Week of Monday 5 Jan: a (2/1); week of 12 Jan: b and c (3/1). v1: a + b (3/2); v2: c (2/0)."""
    hand_world(project)
    q = project_quality(project)
    assert [(week, a.same, a.different) for week, a in q.weekly] == [(date(2026, 1, 5), 2, 1), (date(2026, 1, 12), 3, 1)]
    assert [(v, a.same, a.different) for v, a in q.by_instructions] == [(1, 3, 2), (2, 2, 0)]


def test_project_volume_and_rates(project):
    """18 labels: 13 on 5 Jan (8 researchers', 5 of a), 5 on 13 Jan; 2 skipped; b's 2 answers unsure; 1 flagged."""
    hand_world(project)
    q = project_quality(project)
    assert q.labels_per_day == [(date(2026, 1, 5), 13), (date(2026, 1, 13), 5)]
    assert (q.skip_rate.hits, q.skip_rate.n) == (2, 18)
    assert (q.unsure_rate.hits, q.unsure_rate.n) == (2, 16)
    assert (q.flag_rate.hits, q.flag_rate.n) == (1, 18)


def test_labeler_labeler_and_majority(project):
    """C1 answers 0,1,0 and C2 2,1,1: P̄ = 1/3, P̄e = 14/36, κ = −1/11; majorities 0 and 1 both match researchers."""
    hand_world(project)
    q = project_quality(project)
    assert (q.labeler_labeler.items, q.labeler_labeler.ratings) == (2, 6)
    assert q.labeler_labeler.percent == pytest.approx(1 / 3)
    assert q.labeler_labeler.fleiss_kappa == pytest.approx(-1 / 11)
    assert q.labeler_labeler.krippendorff_alpha is not None
    assert (q.majority_items, q.majority_vs_researchers.same, q.majority_vs_researchers.different) == (2, 2, 0)


def test_labeler_rows_hand_computed(project):
    world = hand_world(project)
    rows = {q.username: q for q in labelers_quality(project)}
    a, b = rows["lab-a"], rows["lab-b"]
    assert (a.agreement.same, a.agreement.different) == (2, 1)
    assert a.agreement.pairwise.value == pytest.approx(6 / 7)
    assert (b.agreement.same, b.agreement.different) == (1, 1)
    assert (b.labels, b.answers, b.skip_rate.value, b.unsure_rate.value) == (3, 2, pytest.approx(1 / 3), 1.0)
    assert (a.flag_rate.hits, a.median_s, a.labels_per_hour) == (1, 10.0, pytest.approx(360.0))
    assert rows["res-one"].is_researcher and (rows["res-one"].agreement.same, rows["res-one"].agreement.different) == (2, 1)
    assert world["a"].id == a.labeler_id


def test_labelers_sort_and_missing_last(project):
    hand_world(project)
    by_kway = [q.username for q in labelers_quality(project, sort="-kway")]
    assert by_kway[0] == "lab-c"  # 2 of 2
    assert [q.username for q in labelers_quality(project, sort="labels")][-1] == "lab-a"


def test_labeler_detail_shows_researchers_answer(project):
    world = hand_world(project)
    detail = labeler_detail(project, labeler_id=world["a"].id)
    assert detail.total == 5
    answers = [(label.chosen, label.researchers, label.agrees) for label in detail.labels]
    # newest first: C5, C4, C3, C2, C1
    assert answers == [(1, None, None), (0, 0, True), (2, None, None), (2, 1, False), (0, 0, True)]
    assert [s.letter for s in detail.labels[0].samples] == ["A", "B", "C", "D"]


def test_labeler_detail_unknown_user_is_404(project, contractor):
    hand_world(project)
    from django.http import Http404

    with pytest.raises(Http404):
        labeler_detail(project, labeler_id=contractor.id)


def test_labeler_table_follows_new_edited_and_deleted_labels(project):
    """The per-process column cache never serves stale rows: new labels are added, edits and deletes reload."""
    from labeling.models import Assignment, Label
    from tests.factories import make_comparison
    from tests.labeling.quality_helpers import add_label

    world = hand_world(project)
    before = {q.username: q for q in labelers_quality(project)}
    assert before["lab-c"].labels == 2
    add_label(make_comparison(project, labels_wanted=8), world["c"], 3)
    assert {q.username: q for q in labelers_quality(project)}["lab-c"].labels == 3
    first_of_a = Label.objects.filter(labeler=world["a"]).order_by("id").first()  # C1, chose 0 = researchers
    Label.objects.filter(id=first_of_a.id).update(chosen_index=3)
    after_edit = {q.username: q for q in labelers_quality(project)}["lab-a"]
    assert (after_edit.agreement.same, after_edit.agreement.different) == (1, 2)
    newest = Label.objects.filter(labeler=world["c"]).order_by("-id").first()
    assignment_id = newest.assignment_id
    newest.delete()
    Assignment.objects.filter(id=assignment_id).delete()
    assert {q.username: q for q in labelers_quality(project)}["lab-c"].labels == 2


def test_swapped_choices_are_not_served_stale(project):
    """An edit that swaps two labels' choices keeps count and sums: the id-weighted sum still catches it."""
    from labeling.models import Label

    world = hand_world(project)
    assert labeler_detail(project, labeler_id=world["a"].id).quality.agreement.same == 2
    c1, c2 = Label.objects.filter(labeler=world["a"]).order_by("id")[:2]  # chose 0 (agrees) and 2 (differs)
    Label.objects.filter(id=c1.id).update(chosen_index=2)
    Label.objects.filter(id=c2.id).update(chosen_index=0)
    agreement = labeler_detail(project, labeler_id=world["a"].id).quality.agreement
    assert (agreement.same, agreement.different) == (1, 2)
