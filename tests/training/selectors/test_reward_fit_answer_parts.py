"""A reward fit's records carry the answer parts beyond the choice (training/selectors/reward_fit._records): the
ranking, the Likert ratings, and "none acceptable" where the project offers it (None where it does not)."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from labeling.models import Project
from tests.factories import ProjectFactory, UserFactory, make_comparison, make_label
from training.selectors import comparison_records_for_snapshot, reward_fit_data

pytestmark = pytest.mark.django_db


def _ranking_project(**fields):
    return ProjectFactory(k=3, label_type=Project.LabelType.RANKING, likert_axes=["overall", "coverage"],
                          allow_none_acceptable=True, **fields)


def test_records_carry_the_ranking_the_ratings_and_none_acceptable():
    project = _ranking_project()
    a, b = UserFactory(username="rank-a"), UserFactory(username="rank-b")
    first, second = make_comparison(project), make_comparison(project)
    make_label(first, a, chosen_index=1, ranking=[2, 1, 2],
               likert={"overall": [3, 7, 3], "coverage": [4, 5, 4]}, none_acceptable=True)
    make_label(first, b, chosen_index=0, ranking=[1, 3, 2],
               likert={"overall": [6, 1, 4], "coverage": [7, 2, 2]})
    make_label(second, a, chosen_index=None, skip_reason="unclear")  # skipped: no record

    records = reward_fit_data(project=project, max_label_id=None).train
    assert [(r.group, r.best) for r in records] == [(first.id, 1), (first.id, 0)]
    assert [r.ranks for r in records] == [[2, 1, 2], [1, 3, 2]]
    assert [r.likert for r in records] == [{"overall": [3, 7, 3], "coverage": [4, 5, 4]},
                                           {"overall": [6, 1, 4], "coverage": [7, 2, 2]}]
    # Offered: True, and False for the label that did not say it (not None, which means "not offered").
    assert [r.none_acceptable for r in records] == [True, False]


def test_a_best_of_k_project_without_the_options_gives_none_for_every_part():
    project = ProjectFactory(k=2)
    comparison = make_comparison(project)
    make_label(comparison, UserFactory(username="plain-a"), chosen_index=1)
    (record,) = comparison_records_for_snapshot(project=project, max_label_id=None)
    assert (record.best, record.ranks, record.likert, record.none_acceptable) == (1, None, None, None)


def test_none_acceptable_is_none_once_the_project_does_not_offer_it():
    """A label stored while the option was on, read after it was turned off: the fit must not train on it."""
    project = _ranking_project()
    comparison = make_comparison(project)
    make_label(comparison, UserFactory(username="off-a"), chosen_index=0, ranking=[1, 2, 2], none_acceptable=True)
    Project.objects.filter(id=project.id).update(allow_none_acceptable=False)
    (record,) = comparison_records_for_snapshot(project=project, max_label_id=None)
    assert record.none_acceptable is None and record.ranks == [1, 2, 2]


def test_reading_the_parts_costs_no_query_per_label():
    project = _ranking_project()
    comparisons = [make_comparison(project) for _ in range(4)]
    labelers = [UserFactory(username=f"count-{i}") for i in range(3)]

    def queries():
        with CaptureQueriesContext(connection) as captured:
            records = comparison_records_for_snapshot(project=project, max_label_id=None)
        return len(captured), len(records)

    make_label(comparisons[0], labelers[0], chosen_index=0, ranking=[1, 2, 3], none_acceptable=True)
    few = queries()
    for i, comparison in enumerate(comparisons):
        for labeler in labelers[1 if i == 0 else 0:]:
            make_label(comparison, labeler, chosen_index=2, ranking=[2, 2, 1], likert={"overall": [1, 2, 3]})
    many = queries()
    assert many[1] == 12 and few[1] == 1
    assert many[0] == few[0]
