"""Pairwise-confidence projects (the 2020 9-point scale): label_submit stores the scale canonical, checks it,
the labeling page sends it, and the 2020 import and export carry it (labeling/label_types.PairwiseConfidence)."""
import json
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from labeling.errors import Conflict, InvalidInput
from labeling.label_types import PairwiseConfidence
from labeling.models import Assignment, Comparison, Label, Project
from labeling.selectors.exports import labels_export_jsonl, labels_export_rows
from labeling.services import LabelInput, comparison_next_for_labeler, comparisons_import, label_submit
from tests.factories import ProjectFactory, make_comparison

pytestmark = [pytest.mark.django_db]

T0 = timezone.now().replace(microsecond=0)
SOON = T0 + timedelta(seconds=10)


@pytest.fixture
def pairwise(db):
    return ProjectFactory(k=2, label_type=Project.LabelType.PAIRWISE_CONFIDENCE)


def _lease(project, labeler, display_order):
    make_comparison(project)
    assignment = comparison_next_for_labeler(project=project, labeler=labeler, now=T0)
    Assignment.objects.filter(id=assignment.id).update(display_order=display_order)
    return assignment


def _submit(assignment, labeler, **fields):
    answer = LabelInput(**{"duration_ms": 3000, **fields})
    return label_submit(assignment_id=assignment.id, labeler=labeler, answer=answer, now=SOON)


def _written():
    return (list(Label.objects.values_list("id", "chosen_index", "confidence")),
            list(Assignment.objects.values_list("id", "state")),
            list(Comparison.objects.values_list("id", "label_count", "open_slots")))


# ---------------------------------------------------------------- the scale itself (pure)


def test_scale_sides_canonical_mapping_and_targets():
    assert [PairwiseConfidence.side(c) for c in range(1, 10)] == [0, 0, 0, 0, None, 1, 1, 1, 1]
    assert PairwiseConfidence.to_canonical(2, [0, 1]) == 2
    assert PairwiseConfidence.to_canonical(2, [1, 0]) == 8  # "A fairly sure" where A is canonical sample 1
    assert PairwiseConfidence.to_canonical(5, [1, 0]) == 5
    assert [PairwiseConfidence.target(c) for c in (1, 3, 5, 9)] == [0.0, 0.25, 0.5, 1.0]
    assert PairwiseConfidence.from_2020(1, 7) == 7
    assert PairwiseConfidence.from_2020(0, 8) is None  # the other side: the choice is kept, the scale dropped
    assert PairwiseConfidence.from_2020(0, 5) == 5
    assert PairwiseConfidence.from_2020(None, 3) is None
    for bad in (0, 10, True, "3", 2.0):
        assert not PairwiseConfidence.is_valid(bad)


# ---------------------------------------------------------------- label_submit


@pytest.mark.usefixtures("hotpath")
@pytest.mark.parametrize(("order", "position", "shown", "chosen", "stored"), [
    ([0, 1], 0, 2, 0, 2),   # identity order: as shown
    ([1, 0], 0, 2, 1, 8),   # A is canonical sample 1: "A better" is 8 canonical
    ([1, 0], 1, 9, 0, 1),   # B is canonical sample 0, definitely
    ([1, 0], 0, 5, 1, 5),   # no preference stays 5, with the side shown first
])
def test_submit_stores_the_scale_canonical(pairwise, contractor, order, position, shown, chosen, stored):
    assignment = _lease(pairwise, contractor, order)
    label, created = _submit(assignment, contractor, position=position, confidence=shown)
    assert created and (label.chosen_index, label.confidence) == (chosen, stored)
    assert Label.objects.values_list("chosen_index", "confidence").get() == (chosen, stored)
    # A replay is idempotent; the same side with another point is a conflict that writes nothing.
    assert _submit(assignment, contractor, position=position, confidence=shown)[1] is False
    before = _written()
    with pytest.raises(Conflict):  # the same side, another point
        _submit(assignment, contractor, position=position, confidence={2: 3, 9: 8, 5: 4}[shown])
    assert _written() == before


@pytest.mark.usefixtures("hotpath")
@pytest.mark.parametrize(("fields", "message"), [
    ({"position": 0}, "Choose a point of the 9-point scale"),
    ({"position": 0, "confidence": 0}, "Choose a point of the 9-point scale"),
    ({"position": 0, "confidence": 10}, "Choose a point of the 9-point scale"),
    ({"position": 0, "confidence": True}, "Choose a point of the 9-point scale"),
    ({"position": 0, "confidence": 7}, "prefers the other sample"),
    ({"position": 1, "confidence": 4}, "prefers the other sample"),
    ({"position": None, "skipped": True, "skip_reason": "unreadable", "confidence": 3}, "A skip has no confidence"),
])
def test_bad_confidence_is_refused_and_writes_nothing(pairwise, contractor, fields, message):
    assignment = _lease(pairwise, contractor, [0, 1])
    before = _written()
    with pytest.raises(InvalidInput, match=message) as error:
        _submit(assignment, contractor, **fields)
    assert error.value.field == "confidence"
    assert _written() == before


@pytest.mark.usefixtures("hotpath")
def test_skip_needs_no_confidence_and_best_of_k_refuses_one(pairwise, contractor, other_contractor):
    assignment = _lease(pairwise, contractor, [0, 1])
    label, _ = _submit(assignment, contractor, position=None, skipped=True, skip_reason="unreadable")
    assert (label.skipped, Label.objects.get().confidence) == (True, None)

    best_of_two = ProjectFactory(k=2)
    assignment = _lease(best_of_two, other_contractor, [0, 1])
    with pytest.raises(InvalidInput, match="does not use the confidence scale"):
        _submit(assignment, other_contractor, position=0, confidence=2)
    label, _ = _submit(assignment, other_contractor, position=0)
    assert label.confidence is None


def test_database_refuses_the_scale_off_k2_and_off_range(contractor):
    with pytest.raises(IntegrityError), transaction.atomic():
        ProjectFactory(k=4, label_type=Project.LabelType.PAIRWISE_CONFIDENCE)
    project = ProjectFactory(k=2, label_type=Project.LabelType.PAIRWISE_CONFIDENCE)
    label, _ = _submit(_lease(project, contractor, [0, 1]), contractor, position=0, confidence=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Label.objects.filter(id=label.id).update(confidence=10)


# ---------------------------------------------------------------- the labeling page


def test_page_shows_the_scale_and_a_point_submits_with_its_side(client, pairwise, contractor):
    make_comparison(pairwise)
    client.force_login(contractor)
    page = client.get(reverse("labeling-compare", kwargs={"slug": pairwise.slug}))
    html = page.content.decode()
    assert 'data-scale="9"' in html and html.count('name="confidence"') == 9 and 'name="choice"' not in html
    assignment = Assignment.objects.get(labeler=contractor)
    Assignment.objects.filter(id=assignment.id).update(display_order=[1, 0])
    response = client.post(reverse("labeling-submit", kwargs={"slug": pairwise.slug}),
                           {"assignment": assignment.id, "confidence": "7", "duration_ms": "1000"})
    assert response.status_code == 302
    assert Label.objects.values_list("chosen_index", "display_position", "confidence").get() == (0, 1, 3)


def test_page_without_a_point_says_so_and_writes_nothing(client, pairwise, contractor):
    make_comparison(pairwise)
    client.force_login(contractor)
    client.get(reverse("labeling-compare", kwargs={"slug": pairwise.slug}))
    assignment = Assignment.objects.get(labeler=contractor)
    for data, message in (({}, "Choose a point of the 9-point scale"), ({"confidence": "x"}, "whole number")):
        response = client.post(reverse("labeling-submit", kwargs={"slug": pairwise.slug}),
                               {"assignment": assignment.id, "duration_ms": "1000", **data})
        assert response.status_code == 400 and message in response.content.decode()
    assert not Label.objects.exists()


def test_best_of_k_page_has_no_scale(client, contractor):
    project = ProjectFactory(k=2)
    make_comparison(project)
    client.force_login(contractor)
    html = client.get(reverse("labeling-compare", kwargs={"slug": project.slug})).content.decode()
    assert 'name="confidence"' not in html and 'name="choice"' in html


# ---------------------------------------------------------------- 2020 import and export


def _line(choice, confidence, worker, post_id):
    row = {"info": {"id": post_id, "post": f"post {post_id}"},
           "summaries": [{"text": " first", "policy": "sup"}, {"text": " second", "policy": "ref"}],
           "choice": choice, "worker": worker, "batch": "batch1", "split": "train"}
    if confidence is not None:
        row["extra"] = {"confidence": confidence}
    return json.dumps(row)


def test_2020_confidence_round_trips(pairwise):
    lines = [_line(0, 2, "w1", "p1"), _line(1, 9, "w1", "p2"), _line(0, 5, "w1", "p3"), _line(1, None, "w1", "p4"),
             _line(0, 8, "w1", "p5"), _line(1, 12, "w1", "p6")]
    comparisons_import(project=pairwise, source="\n".join(lines).encode(), layout="2020")
    stored = dict(Label.objects.values_list("comparison__query__external_id", "confidence"))
    # Against the choice (p5) or off the scale (p6): dropped, the choice kept.
    assert stored == {"p1": 2, "p2": 9, "p3": 5, "p4": None, "p5": None, "p6": None}

    rows = list(labels_export_rows(project=pairwise, layout="2020"))
    assert [(r["info"]["id"], r["choice"], r["extra"].get("confidence")) for r in rows] == [
        ("p1", 0, 2), ("p2", 1, 9), ("p3", 0, 5), ("p4", 1, None), ("p5", 0, None), ("p6", 1, None)]

    again = ProjectFactory(k=2, label_type=Project.LabelType.PAIRWISE_CONFIDENCE)
    exported = "".join(labels_export_jsonl(project=pairwise, layout="2020")).encode()
    comparisons_import(project=again, source=exported, layout="2020", labelers_existing=["w1"])
    assert sorted(Label.objects.filter(comparison__project=again).values_list(
        "comparison__query__external_id", "chosen_index", "confidence")) == sorted(
        Label.objects.filter(comparison__project=pairwise).values_list(
            "comparison__query__external_id", "chosen_index", "confidence"))


def test_export_of_a_page_label_is_canonical(pairwise, contractor):
    assignment = _lease(pairwise, contractor, [1, 0])
    _submit(assignment, contractor, position=0, confidence=3)  # A = canonical sample 1, fairly sure
    (row,) = labels_export_rows(project=pairwise, layout="2020")
    assert (row["choice"], row["extra"]) == (1, {"unsure": False, "confidence": 7})


def test_the_api_takes_the_scale_and_answers_it_canonical(pairwise, contractor, client):
    """A script labels through the REST API as the page does: the point as shown, stored and answered canonical."""
    assignment = _lease(pairwise, contractor, [1, 0])  # the samples shown swapped
    client.force_login(contractor)
    url = reverse("api-label-create", kwargs={"assignment_id": assignment.id})
    refused = client.post(url, {"position": 0, "duration_ms": 3000}, content_type="application/json")
    assert refused.status_code == 400 and not Label.objects.exists()
    response = client.post(url, {"position": 0, "duration_ms": 3000, "confidence": 2}, content_type="application/json")
    assert response.status_code == 201, response.content
    # Shown first (A) was canonical sample 1; "A better, fairly sure" (2) is canonical 8.
    assert (response.json()["chosen_index"], response.json()["confidence"]) == (1, 8)
    assert Label.objects.get().confidence == 8


def test_a_reward_fit_reads_the_labels_confidence(pairwise, contractor):
    from training.selectors.reward_fit import reward_fit_data

    assignment = _lease(pairwise, contractor, [0, 1])
    _submit(assignment, contractor, position=1, confidence=7)
    (record,) = reward_fit_data(project=pairwise, max_label_id=None).train
    assert (record.best, record.confidence) == (1, 7)


def test_simulated_labelers_answer_the_scale_on_their_side(pairwise):
    """A simulated labeler answers a scale project with a point on the side it chose, surer when its scorer's
    gap is larger (T = 0: always at the ends)."""
    from labeling.services.simulation import (
        LabelerSpec,
        simulate_labeling,
        simulated_confidence,
        simulated_labelers_ensure,
    )

    assert simulated_confidence([0.0, 5.0], 1, 0.0, 0) == 1 and simulated_confidence([0.0, 5.0], 1, 0.0, 1) == 9
    assert simulated_confidence([0.0, 0.1], 1, 1.0, 1) == 5  # a near tie: about the same
    assert simulated_confidence([0.0, 2.0], 1, 1.0, 1) in (7, 8)  # sigma(2) = 0.88: 3 points out
    for i in range(6):
        make_comparison(pairwise)
    (labeler,) = simulated_labelers_ensure(project=pairwise, specs=[LabelerSpec("sentiment", 1, temperature=0.1)])
    assert simulate_labeling(project=pairwise, labelers=[labeler]).labeled == 6
    for label in Label.objects.all():
        assert PairwiseConfidence.is_valid(label.confidence)
        assert label.confidence == 5 or int(label.confidence > 5) == label.chosen_index
