"""Undoing the last label (label_undo): the lease comes back, the counts are as before the submit, and every
refusal (too late, not the last, another's, snapshotted, withdrawn, slot taken) writes nothing."""
from datetime import timedelta

import pytest
from django.utils import timezone

from labeling.errors import Conflict, Forbidden, NotFound
from labeling.models import Assignment, Comparison, Label, SampleFlag
from labeling.services import (
    FlagInput,
    LabelInput,
    comparison_next_for_labeler,
    comparisons_withdraw,
    label_submit,
    label_undo,
)
from tests.factories import ProjectFactory, TrainingRunFactory, make_comparison
from training.models import Round

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hotpath")]


def _label(project, labeler, **answer):
    assignment = comparison_next_for_labeler(project=project, labeler=labeler)
    fields = {"position": 1, "duration_ms": 3000, **answer}
    label, _ = label_submit(assignment_id=assignment.id, labeler=labeler, answer=LabelInput(**fields))
    return assignment, label


def _written():
    return (
        list(Label.objects.values_list("id", "chosen_index", "skipped")),
        SampleFlag.objects.count(),
        list(Assignment.objects.order_by("id").values_list("id", "state", "expires_at")),
        list(Comparison.objects.values_list("id", "label_count", "open_slots")),
    )


def test_undo_gives_the_same_comparison_back_in_the_same_order(project, contractor):
    """After an undo the labeler's next comparison is the undone one, same assignment and display order;
    its label is gone (flags too), label_count is as before, and answering again stores a new label."""
    first = make_comparison(project, labels_wanted=2)
    make_comparison(project, labels_wanted=2)
    assignment, label = _label(project, contractor, flags=[FlagInput(position=0, note="typo")])
    served_next = comparison_next_for_labeler(project=project, labeler=contractor)  # the page shows the next one
    assert served_next.comparison_id != first.id

    restored = label_undo(project=project, label_id=label.id, labeler=contractor)

    assert restored.id == assignment.id and restored.state == Assignment.State.LEASED
    assert not Label.objects.exists() and not SampleFlag.objects.exists()
    first.refresh_from_db()
    assert (first.label_count, first.open_slots) == (0, 1)  # one slot held by the restored lease
    # The lease served after the label went back to the pool whole: no assignment row, its slot open.
    assert not Assignment.objects.filter(id=served_next.id).exists()
    assert Comparison.objects.get(id=served_next.comparison_id).open_slots == 2
    again = comparison_next_for_labeler(project=project, labeler=contractor)
    assert (again.id, again.display_order) == (assignment.id, assignment.display_order)
    relabel, created = label_submit(assignment_id=again.id, labeler=contractor,
                                    answer=LabelInput(position=0, duration_ms=1000))
    assert created and relabel.chosen_index == assignment.display_order[0]
    first.refresh_from_db()
    assert first.label_count == 1


def test_undo_of_a_skip_takes_the_slot_back(project, contractor):
    """A skip had given its slot back; its undo takes the slot again for the restored lease."""
    comparison = make_comparison(project, labels_wanted=1)
    assignment, label = _label(project, contractor, position=None, skipped=True, skip_reason="unreadable")
    comparison.refresh_from_db()
    assert comparison.open_slots == 1

    label_undo(project=project, label_id=label.id, labeler=contractor)

    comparison.refresh_from_db()
    assert (comparison.open_slots, comparison.label_count) == (0, 0)
    assert comparison_next_for_labeler(project=project, labeler=contractor).id == assignment.id


def test_undo_of_a_skip_whose_slot_went_to_another_labeler_is_refused(project, contractor, other_contractor):
    make_comparison(project, labels_wanted=1)
    _, label = _label(project, contractor, position=None, skipped=True, skip_reason="unreadable")
    comparison_next_for_labeler(project=project, labeler=other_contractor)
    before = _written()
    with pytest.raises(Conflict, match="another labeler"):
        label_undo(project=project, label_id=label.id, labeler=contractor)
    assert _written() == before


def test_undo_after_the_window_is_refused(project, contractor, settings):
    settings.LABELING_UNDO_SECONDS = 10
    make_comparison(project)
    _, label = _label(project, contractor)
    before = _written()
    with pytest.raises(Conflict, match="Too late"):
        label_undo(project=project, label_id=label.id, labeler=contractor, now=timezone.now() + timedelta(seconds=11))
    assert _written() == before
    label_undo(project=project, label_id=label.id, labeler=contractor, now=timezone.now() + timedelta(seconds=9))
    assert not Label.objects.exists()


def test_only_the_last_label_can_be_undone(project, contractor):
    make_comparison(project)
    make_comparison(project)
    _, older = _label(project, contractor)
    _label(project, contractor)
    before = _written()
    with pytest.raises(Conflict, match="last label"):
        label_undo(project=project, label_id=older.id, labeler=contractor)
    assert _written() == before


def test_another_labelers_label_is_forbidden_and_unknown_is_not_found(project, contractor, other_contractor):
    make_comparison(project)
    _, label = _label(project, contractor)
    before = _written()
    with pytest.raises(Forbidden):
        label_undo(project=project, label_id=label.id, labeler=other_contractor)
    with pytest.raises(NotFound):
        label_undo(project=project, label_id=label.id + 1000, labeler=contractor)
    assert _written() == before


def test_undo_after_a_round_snapshot_that_includes_the_label_is_refused(project, contractor, researcher):
    """A round's label snapshot up to this label's id (or beyond) freezes it; an older snapshot does not."""
    make_comparison(project)
    make_comparison(project)
    _, first = _label(project, contractor)
    Round.objects.create(project=project, number=1, label_snapshot={"max_label_id": first.id - 1, "count": 0})
    _, label = _label(project, contractor)
    Round.objects.create(project=project, number=2, label_snapshot={"max_label_id": label.id, "count": 2})
    before = _written()
    with pytest.raises(Conflict, match="snapshot"):
        label_undo(project=project, label_id=label.id, labeler=contractor)
    assert _written() == before


def test_undo_after_a_reward_fits_own_snapshot_is_refused(project, contractor):
    make_comparison(project)
    _, label = _label(project, contractor)
    TrainingRunFactory(project=project, kind="fit_reward", product={"label_snapshot": {"max_label_id": label.id + 5}})
    with pytest.raises(Conflict, match="snapshot"):
        label_undo(project=project, label_id=label.id, labeler=contractor)
    assert Label.objects.filter(id=label.id).exists()


def test_undo_on_a_withdrawn_comparison_is_refused(project, contractor):
    comparison = make_comparison(project)
    _, label = _label(project, contractor)
    comparisons_withdraw(comparison_ids=[comparison.id])
    before = _written()
    with pytest.raises(Conflict, match="withdrawn"):
        label_undo(project=project, label_id=label.id, labeler=contractor)
    assert _written() == before


def test_a_second_undo_of_the_same_label_is_refused(project, contractor):
    """A double press undoes once: the label is gone, the second call names no label."""
    make_comparison(project)
    _, label = _label(project, contractor)
    label_undo(project=project, label_id=label.id, labeler=contractor)
    with pytest.raises(NotFound):
        label_undo(project=project, label_id=label.id, labeler=contractor)


def test_a_label_of_another_project_is_not_found(project, contractor):
    make_comparison(project)
    _, label = _label(project, contractor)
    with pytest.raises(NotFound):
        label_undo(project=ProjectFactory(k=2), label_id=label.id, labeler=contractor)
    assert Label.objects.filter(id=label.id).exists()


def test_an_answer_on_a_gold_item_cannot_be_undone(project, contractor, researcher):
    """After a gold (or qualification) item the labeler may have seen the researchers' answer: a second try
    would score the answer key, so the undo is refused and nothing changes."""
    from labeling.models import GoldAnswer

    gold = make_comparison(project, labels_wanted=2, is_calibration=True)
    GoldAnswer.objects.create(comparison=gold, chosen_index=0, note="the first is kinder", created_by=researcher)
    project.calibration_share = 1.0
    project.save(update_fields=["calibration_share"])
    _, label = _label(project, contractor)
    assert label.comparison_id == gold.id
    before = _written()
    with pytest.raises(Conflict, match="qualification and gold items cannot be undone"):
        label_undo(project=project, label_id=label.id, labeler=contractor)
    assert _written() == before
