"""Agreement on rankings and Likert ratings (labeling/selectors/quality/answer_parts.py) against hand counts, and
its table on the project dashboard."""
import pytest
from django.urls import reverse

from labeling.models import Project
from labeling.roles import CONTRACTOR
from labeling.selectors.quality.answer_parts import project_answer_parts_agreement, ranking_pairs_alike
from tests.factories import ProjectFactory, UserFactory, make_comparison, make_label

pytestmark = pytest.mark.django_db


def test_pairs_alike_leave_out_ties_in_either_ranking():
    assert ranking_pairs_alike([1, 2, 3], [1, 2, 3]) == (3, 3)
    assert ranking_pairs_alike([1, 2, 3], [3, 2, 1]) == (0, 3)
    # (0,1): 1<2 vs 2>1 differ; (0,2): both order 0 first; (1,2): the second ties them, left out.
    assert ranking_pairs_alike([1, 2, 3], [2, 1, 1]) == (0, 2)
    assert ranking_pairs_alike([1, 1, 2], [1, 2, 3]) == (2, 2)


def test_project_figures_are_the_hand_counts(researcher):
    project = ProjectFactory(k=3, label_type=Project.LabelType.RANKING, likert_axes=["overall"],
                             allow_none_acceptable=True)
    a, b = (UserFactory(role=CONTRACTOR) for _ in range(2))
    calibration = make_comparison(project, is_calibration=True)
    make_label(calibration, researcher, chosen_index=0, ranking=[1, 2, 3], likert={"overall": [7, 4, 1]})
    make_label(calibration, a, chosen_index=0, ranking=[1, 3, 2], likert={"overall": [6, 2, 1]})
    plain = make_comparison(project)
    make_label(plain, a, chosen_index=1, ranking=[2, 1, 2], likert={"overall": [3, 5, 3]})
    make_label(plain, b, chosen_index=1, ranking=[3, 1, 2], likert={"overall": [1, 5, 4]}, none_acceptable=True)
    make_label(make_comparison(project), b, chosen_index=None, skip_reason="unreadable")  # skipped: left out

    parts = project_answer_parts_agreement(project)
    # a vs the researcher: pairs (0,1) alike, (0,2) alike, (1,2) differ -> 2 of 3.
    assert (parts.ranking_labeler_researcher.hits, parts.ranking_labeler_researcher.n) == (2, 3)
    # a vs b on `plain`: (0,1) alike; (0,2) a ties them, out; (1,2) alike -> 2 of 2.
    assert (parts.ranking_labeler_labeler.hits, parts.ranking_labeler_labeler.n) == (2, 2)
    (overall,) = parts.ratings
    assert (overall.labeler_researcher.hits, overall.labeler_researcher.n) == (2, 3)  # |1|, |2|, |0|
    assert (overall.labeler_labeler.hits, overall.labeler_labeler.n) == (2, 3)  # |2|, |0|, |1|
    assert overall.labeler_labeler_mean_abs == pytest.approx(1.0)

    # None acceptable: a agrees with the researcher (neither said it), a and b differ on `plain`; b said it once of 3.
    assert (parts.none_labeler_researcher.hits, parts.none_labeler_researcher.n) == (1, 1)
    assert (parts.none_labeler_labeler.hits, parts.none_labeler_labeler.n) == (0, 1)
    assert (parts.none_share.hits, parts.none_share.n) == (1, 3)

    assert project_answer_parts_agreement(ProjectFactory(k=2)) is None


def test_the_dashboard_shows_the_table_only_where_it_applies(client, researcher):
    project = ProjectFactory(k=2, label_type=Project.LabelType.RANKING)
    make_label(make_comparison(project), researcher, chosen_index=0, ranking=[1, 2])
    client.force_login(researcher)
    html = client.get(reverse("dashboard-project", args=[project.slug])).content.decode()
    assert 'id="agreement-parts"' in html and "sample pairs ordered alike" in html
    plain = ProjectFactory(k=2)
    html = client.get(reverse("dashboard-project", args=[plain.slug])).content.decode()
    assert 'id="agreement-parts"' not in html
