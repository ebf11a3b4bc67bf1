"""Ranking of K with ties, per-sample Likert axes and "none acceptable" (issue 18, item 4): the pure rules of
labeling/label_types.py, label_submit on both paths (canonical storage, checks naming the field, idempotent
replays, conflicts that write nothing), the labeling page's form, the 2019 / pairs / 2020-axes exports and the
2019 import reading them back."""
import json
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from labeling.errors import Conflict, InvalidInput
from labeling.label_types import LikertAxes, Ranking, tiers_from_keys
from labeling.models import Assignment, Comparison, Label, Project
from labeling.selectors.exports import labels_export_jsonl, labels_export_rows
from labeling.services import LabelInput, comparison_next_for_labeler, comparisons_import, label_submit
from labeling.services.projects import project_create
from tests.factories import ProjectFactory, make_comparison

pytestmark = [pytest.mark.django_db]

T0 = timezone.now().replace(microsecond=0)
SOON = T0 + timedelta(seconds=10)
AXES = ["overall", "accuracy"]


@pytest.fixture
def ranking(db):
    return ProjectFactory(k=4, label_type=Project.LabelType.RANKING)


@pytest.fixture
def rated(db):
    return ProjectFactory(k=2, likert_axes=AXES, allow_none_acceptable=True)


def _lease(project, labeler, display_order):
    make_comparison(project)
    assignment = comparison_next_for_labeler(project=project, labeler=labeler, now=T0)
    Assignment.objects.filter(id=assignment.id).update(display_order=display_order)
    return assignment


def _submit(assignment, labeler, **fields):
    return label_submit(assignment_id=assignment.id, labeler=labeler,
                        answer=LabelInput(**{"duration_ms": 3000, **fields}), now=SOON)


def _written():
    return (list(Label.objects.values_list("id", "chosen_index", "ranking", "likert", "none_acceptable")),
            list(Assignment.objects.values_list("id", "state")),
            list(Comparison.objects.values_list("id", "label_count", "open_slots")))


# ---------------------------------------------------------------- the rules (pure)


def test_keys_build_tiers_as_the_page_does():
    assert tiers_from_keys("B=CAD", 4) == [[1, 2], [0], [3]]
    assert tiers_from_keys("2=31", 3) == [[1, 2], [0]]
    assert Ranking.from_tiers([[1, 2], [0], [3]], 4) == [2, 1, 1, 3]
    for keys in ("=ABCD", "AAB", "AB", "AB=", "ABE", "A==B"):
        with pytest.raises(ValueError):
            tiers_from_keys(keys, 3 if keys != "=ABCD" else 4)


def test_ranking_checks_canonical_mapping_and_pairs():
    rule = Ranking(3)
    assert rule.is_valid([1, 2, 2]) and rule.is_valid([3, 1, 2])
    assert "skip none" in rule.errors([1, 3, 3])
    assert "ties every sample" in rule.errors([1, 1, 1])
    assert "every one of the 3" in rule.errors([1, 2])
    assert rule.errors([1, True, 2]) is not None
    # Shown as [2, 0, 1]: A is canonical 2, B canonical 0, C canonical 1.
    assert Ranking.to_canonical([1, 2, 3], [2, 0, 1]) == [2, 3, 1]
    pairs = rule.pairs("q", ["x", "y", "z"], [2, 1, 2])
    assert [(p.chosen, p.rejected) for p in pairs] == [("y", "x"), ("y", "z")]  # x and z tie: no pair


def test_likert_axes_and_ratings_checks():
    assert LikertAxes.axes_errors(["overall", "coverage"]) is None
    assert "lower-case" in LikertAxes.axes_errors(["Overall"])
    assert "Each axis once" in LikertAxes.axes_errors(["a", "a"])
    assert LikertAxes.axes_errors("overall") is not None
    assert LikertAxes.errors({"overall": [7, 1], "accuracy": [4, 4]}, AXES, 2) is None
    assert "Rate every sample" in LikertAxes.errors({"overall": [7, 1]}, AXES, 2)
    assert "from 1 to 7" in LikertAxes.errors({"overall": [8, 1], "accuracy": [4, 4]}, AXES, 2)
    assert LikertAxes.to_canonical({"overall": [7, 1, 3]}, [2, 0, 1]) == {"overall": [1, 3, 7]}


# ---------------------------------------------------------------- label_submit


@pytest.mark.usefixtures("hotpath")
def test_ranking_is_stored_canonical_and_its_top_is_the_choice(ranking, contractor):
    assignment = _lease(ranking, contractor, [2, 0, 3, 1])
    # Shown A B C D = canonical 2 0 3 1; the labeler ranks C first, then A and D tied, then B.
    label, created = _submit(assignment, contractor, position=None, ranking=[2, 3, 1, 2])
    assert created
    assert (label.chosen_index, label.display_position, label.ranking) == (3, 2, [3, 2, 2, 1])
    assert Label.objects.values_list("chosen_index", "ranking").get() == (3, [3, 2, 2, 1])
    assert _submit(assignment, contractor, position=2, ranking=[2, 3, 1, 2])[1] is False  # a replay
    before = _written()
    with pytest.raises(Conflict):
        _submit(assignment, contractor, position=2, ranking=[3, 2, 1, 2])
    assert _written() == before


@pytest.mark.usefixtures("hotpath")
@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"position": 0}, "ranking", "Rank the samples"),
    ({"position": 0, "ranking": [1, 2, 3]}, "ranking", "every one of the 4"),
    ({"position": 0, "ranking": [1, 1, 1, 1]}, "ranking", "ties every sample"),
    ({"position": 0, "ranking": [1, 3, 3, 4]}, "ranking", "skip none"),
    ({"position": 1, "ranking": [1, 2, 3, 4]}, "ranking", "top tier"),
    ({"position": 0, "ranking": [1, 2, 3, 4], "likert": {"overall": [1, 2, 3, 4]}}, "likert", "does not ask for ratings"),
    ({"position": 0, "ranking": [1, 2, 3, 4], "none_acceptable": True}, "none_acceptable", "does not offer"),
    ({"position": None, "skipped": True, "skip_reason": "x", "ranking": [1, 2, 3, 4]}, "ranking", "A skip has no ranking"),
])
def test_bad_rankings_name_the_field_and_write_nothing(ranking, contractor, fields, field, message):
    assignment = _lease(ranking, contractor, [0, 1, 2, 3])
    before = _written()
    with pytest.raises(InvalidInput, match=message) as error:
        _submit(assignment, contractor, **fields)
    assert error.value.field == field
    assert _written() == before


@pytest.mark.usefixtures("hotpath")
def test_best_of_k_refuses_a_ranking_and_a_ranking_project_takes_a_skip(ranking, contractor, other_contractor):
    plain = ProjectFactory(k=2)
    assignment = _lease(plain, contractor, [0, 1])
    with pytest.raises(InvalidInput, match="does not ask for a ranking"):
        _submit(assignment, contractor, position=0, ranking=[1, 2])
    assignment = _lease(ranking, other_contractor, [0, 1, 2, 3])
    label, _ = _submit(assignment, other_contractor, position=None, skipped=True, skip_reason="unreadable")
    assert (label.skipped, label.ranking) == (True, None)


@pytest.mark.usefixtures("hotpath")
def test_likert_and_none_acceptable_are_stored_canonical(rated, contractor):
    assignment = _lease(rated, contractor, [1, 0])
    likert = {"overall": [2, 5], "accuracy": [3, 6]}  # as shown: A is canonical 1
    label, created = _submit(assignment, contractor, position=1, likert=likert, none_acceptable=True)
    assert created and label.chosen_index == 0
    stored = Label.objects.values_list("likert", "none_acceptable").get()
    assert stored == ({"overall": [5, 2], "accuracy": [6, 3]}, True)
    assert (label.likert, label.none_acceptable) == stored
    assert _submit(assignment, contractor, position=1, likert=likert, none_acceptable=True)[1] is False
    before = _written()
    with pytest.raises(Conflict):
        _submit(assignment, contractor, position=1, likert=likert, none_acceptable=False)
    assert _written() == before


@pytest.mark.usefixtures("hotpath")
@pytest.mark.parametrize(("fields", "message"), [
    ({"position": 0}, "Rate every sample on overall, accuracy"),
    ({"position": 0, "likert": {"overall": [1, 2]}}, "Rate every sample"),
    ({"position": 0, "likert": {"overall": [1, 2], "accuracy": [0, 2]}}, "from 1 to 7"),
    ({"position": 0, "likert": {"overall": [1, 2], "accuracy": [3]}}, "each of the 2"),
])
def test_missing_or_bad_ratings_name_the_field(rated, contractor, fields, message):
    assignment = _lease(rated, contractor, [0, 1])
    before = _written()
    with pytest.raises(InvalidInput, match=message) as error:
        _submit(assignment, contractor, **fields)
    assert error.value.field == "likert"
    assert _written() == before


def test_database_refuses_answer_parts_on_a_skip_and_ranking_off_the_types(contractor):
    project = ProjectFactory(k=2)
    comparison = make_comparison(project)
    assignment = Assignment.objects.create(comparison=comparison, labeler=contractor, display_order=[0, 1],
                                           leased_at=T0, expires_at=SOON, state=Assignment.State.SUBMITTED)
    with pytest.raises(IntegrityError), transaction.atomic():
        Label.objects.create(assignment=assignment, comparison=comparison, labeler=contractor, skipped=True,
                             skip_reason="x", none_acceptable=True, duration_ms=0)
    with pytest.raises(IntegrityError), transaction.atomic():
        ProjectFactory(k=2, slug="bad-type", label_type="ranking_typo")


def test_project_create_checks_the_axes(researcher):
    with pytest.raises(InvalidInput) as error:
        project_create(name="P", slug="p", k=2, likert_axes=["Overall!"])
    assert error.value.field == "likert_axes"
    assert not Project.objects.filter(slug="p").exists()
    project = project_create(name="P", slug="p", k=3, label_type=Project.LabelType.RANKING,
                             likert_axes=["overall", "coverage"], allow_none_acceptable=True)
    project.refresh_from_db()
    assert (project.label_type, project.likert_axes, project.allow_none_acceptable) == (
        "ranking", ["overall", "coverage"], True)


# ---------------------------------------------------------------- the page's form


def test_the_page_sends_keys_ratings_and_none_acceptable(client, contractor):
    project = ProjectFactory(k=3, label_type=Project.LabelType.RANKING, likert_axes=["overall"],
                             allow_none_acceptable=True)
    make_comparison(project)
    client.force_login(contractor)
    page = client.get(reverse("labeling-compare", args=[project.slug]))
    assert b'data-ranking="1"' in page.content and b'data-likert="overall"' in page.content
    assert b'name="none_acceptable"' in page.content
    assignment = Assignment.objects.get(labeler=contractor)
    order = assignment.display_order
    response = client.post(reverse("labeling-submit", args=[project.slug]), {
        "assignment": assignment.id, "duration_ms": "2000", "ranking": "C=AB", "likert-overall": "245",
        "none_acceptable": "1"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    label = Label.objects.get()
    shown_ranks = [1, 2, 1]  # C and A tie first, B last
    assert label.ranking == Ranking.to_canonical(shown_ranks, order)
    assert label.chosen_index == order[2]  # C was pressed first
    assert label.likert == LikertAxes.to_canonical({"overall": [2, 4, 5]}, order)
    assert label.none_acceptable is True


def test_the_page_refuses_keys_that_do_not_rank_every_sample(client, contractor):
    project = ProjectFactory(k=3, label_type=Project.LabelType.RANKING)
    make_comparison(project)
    client.force_login(contractor)
    client.get(reverse("labeling-compare", args=[project.slug]))
    assignment = Assignment.objects.get(labeler=contractor)
    response = client.post(reverse("labeling-submit", args=[project.slug]), {
        "assignment": assignment.id, "duration_ms": "2000", "ranking": "CA"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 400 and b"Place all 3 samples" in response.content
    assert not Label.objects.exists()


# ---------------------------------------------------------------- export and import


def _labeled_ranking_project(contractor):
    project = ProjectFactory(k=3, label_type=Project.LabelType.RANKING, likert_axes=["overall"],
                             allow_none_acceptable=True)
    assignment = _lease(project, contractor, [0, 1, 2])
    _submit(assignment, contractor, position=None, ranking=[2, 1, 2], likert={"overall": [3, 6, 3]},
            none_acceptable=False)
    return project


def test_exports_carry_the_parts_and_the_ranking_pairs(contractor):
    project = _labeled_ranking_project(contractor)
    (row,) = labels_export_rows(project=project, layout="2019")
    assert (row["best"], row["ranks"], row["likert"], row["none_acceptable"]) == (1, [2, 1, 2], {"overall": [3, 6, 3]}, False)
    pairs = list(labels_export_rows(project=project, layout="pairs"))
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [(row["sample1"], row["sample0"]), (row["sample1"], row["sample2"])]
    axes = list(labels_export_rows(project=project, layout="2020-axes"))
    assert [a["summary"]["axes"] for a in axes] == [{"overall": 3}, {"overall": 6}, {"overall": 3}]
    assert [a["summary"]["text"] for a in axes] == [row["sample0"], row["sample1"], row["sample2"]]
    with pytest.raises(InvalidInput) as error:
        labels_export_rows(project=ProjectFactory(k=2), layout="2020-axes")
    assert error.value.field == "layout"


def test_the_2019_export_imports_back_into_a_project_of_the_same_type(contractor, researcher):
    source = _labeled_ranking_project(contractor)
    data = "".join(labels_export_jsonl(project=source, layout="2019")).encode()
    target = ProjectFactory(k=3, label_type=Project.LabelType.RANKING, likert_axes=["overall"],
                            allow_none_acceptable=True)
    comparisons_import(project=target, source=data, imported_by=researcher, labelers_existing=[contractor.username])
    label = Label.objects.get(comparison__project=target)
    assert (label.chosen_index, label.ranking, label.likert, label.none_acceptable) == (
        1, [2, 1, 2], {"overall": [3, 6, 3]}, False)
    # Into a project that does not rank, or has no axes: refused, naming the line, nothing written.
    for project, message in ((ProjectFactory(k=3), "does not rank"),
                             (ProjectFactory(k=3, label_type=Project.LabelType.RANKING), "no Likert axes")):
        with pytest.raises(InvalidInput, match=message):
            comparisons_import(project=project, source=data, imported_by=researcher,
                               labelers_existing=[contractor.username])
        assert not Comparison.objects.filter(project=project).exists()


def test_import_refuses_a_ranking_that_contradicts_best_or_is_missing(researcher):
    project = ProjectFactory(k=2, label_type=Project.LabelType.RANKING)
    line = {"query": "q", "sample0": "a", "sample1": "b"}
    for extra, message in (({"best": 0, "ranks": [2, 1]}, "does not put first"),
                           ({"best": 0}, "needs 'ranks'"),
                           ({"ranks": [1, 1]}, "ties every sample")):
        with pytest.raises(InvalidInput, match=message):
            comparisons_import(project=project, source=json.dumps({**line, **extra}).encode(), imported_by=researcher)
    comparisons_import(project=project, source=json.dumps({**line, "ranks": [2, 1]}).encode(), imported_by=researcher)
    assert Label.objects.values_list("chosen_index", "ranking").get() == (1, [2, 1])


# ---------------------------------------------------------------- simulated labelers


def test_simulated_ranking_is_a_plackett_luce_draw_headed_by_the_choice():
    import random

    from labeling.scorers import softmax_choice
    from labeling.services.simulation import simulated_ranking, simulated_rating

    assert simulated_ranking([0.2, 0.9, 0.2, -1.0], 0.0, random.Random(1)) == [2, 1, 2, 3]  # T = 0: ties kept
    tied = simulated_ranking([0.0, 0.0, 0.0], 0.0, random.Random(3))
    assert sorted(tied) == [1, 2, 3]  # all equal: the noise orders them
    assert tied.index(1) == softmax_choice([0.0, 0.0, 0.0], 0.0, random.Random(3))
    for seed in range(20):
        scores = [0.1, 0.5, -0.3, 0.4]
        ranks = simulated_ranking(scores, 0.5, random.Random(seed))
        assert sorted(ranks) == [1, 2, 3, 4]
        assert ranks.index(1) == softmax_choice(scores, 0.5, random.Random(seed))
    # Over many draws at a temperature the better sample is ranked above the worse more often, not always.
    above = sum(simulated_ranking([1.0, 0.0], 1.0, random.Random(seed))[0] == 1 for seed in range(2000)) / 2000
    assert 0.66 < above < 0.80  # sigma(1) = 0.731
    assert [simulated_rating(s) for s in (-1.0, 0.0, 1.0)] == [1, 4, 7]


def test_simulated_labelers_answer_rankings_ratings_and_none_acceptable():
    from labeling.services.simulation import LabelerSpec, simulate_labeling, simulated_labelers_ensure

    project = ProjectFactory(k=3, label_type=Project.LabelType.RANKING, likert_axes=["overall"],
                             allow_none_acceptable=True)
    texts = [["great lovely day", "awful bad day", "a day"], ["terrible awful", "bad sad", "horrible ugly"]]
    for three in texts:
        make_comparison(project, texts=three)
    (labeler,) = simulated_labelers_ensure(project=project, specs=[LabelerSpec("sentiment", 1, temperature=0.0)])
    assert simulate_labeling(project=project, labelers=[labeler]).labeled == 2
    happy, sad = Label.objects.order_by("comparison_id")
    assert happy.ranking == [1, 3, 2] and happy.chosen_index == 0 and not happy.none_acceptable
    assert happy.likert["overall"][0] > happy.likert["overall"][2] > happy.likert["overall"][1]
    assert sad.none_acceptable  # every sample scores below 0


def test_the_api_takes_the_parts_as_shown_and_answers_them_canonical(client, contractor):
    project = ProjectFactory(k=3, label_type=Project.LabelType.RANKING, likert_axes=["overall"],
                             allow_none_acceptable=True)
    assignment = _lease(project, contractor, [2, 0, 1])
    client.force_login(contractor)
    url = reverse("api-label-create", kwargs={"assignment_id": assignment.id})
    refused = client.post(url, {"duration_ms": 3000, "ranking": [1, 2, 3]}, content_type="application/json")
    assert refused.status_code == 400 and "likert" in refused.content.decode() and not Label.objects.exists()
    response = client.post(url, {"duration_ms": 3000, "ranking": [2, 1, 3], "likert": {"overall": [5, 6, 1]},
                                 "none_acceptable": True}, content_type="application/json")
    assert response.status_code == 201, response.content
    body = response.json()
    # Shown A B C = canonical 2 0 1: B (canonical 0) first, A (canonical 2) second, C (canonical 1) last.
    assert (body["chosen_index"], body["ranking"], body["likert"], body["none_acceptable"]) == (
        0, [1, 3, 2], {"overall": [6, 1, 5]}, True)


def test_the_comparison_page_and_its_csv_show_the_whole_answer(client, contractor, researcher):
    from labeling.selectors.comparisons import answer_parts_text

    project = _labeled_ranking_project(contractor)
    label = Label.objects.get()
    assert answer_parts_text(label) == "ranking #1 > #0 = #2; overall 3 6 3"
    label.none_acceptable, label.ranking, label.likert, label.confidence = True, None, None, 7
    assert answer_parts_text(label) == "confidence 7/9; none acceptable"
    client.force_login(researcher)
    url = reverse("labeling-comparison-detail", args=[project.slug, label.comparison_id])
    assert "ranking #1 &gt; #0 = #2; overall 3 6 3" in client.get(url).content.decode()
    csv_url = reverse("labeling-comparison-labels-csv", args=[project.slug, label.comparison_id])
    rows = client.get(csv_url).content.decode().splitlines()
    assert rows[0].endswith(",answer_parts") and rows[1].endswith(",ranking #1 > #0 = #2; overall 3 6 3")
