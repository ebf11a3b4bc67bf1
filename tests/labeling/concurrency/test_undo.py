"""Undo under real concurrency: threads, one PostgreSQL connection each (SQLite serialises writers: skipped).

An undo racing a round start leaves the label either in the round's snapshot (and the undo refused) or out
of it (and gone); an undo racing the labeler's own submit of the next lease leaves every comparison's
counts equal to its rows."""
import threading
from unittest import mock

import pytest
from django.db import connection
from django.db.models import Count, Q

from labeling.errors import LabelingError
from labeling.models import Assignment, Comparison, Label
from labeling.roles import CONTRACTOR, RESEARCHER
from labeling.services import LabelInput, comparison_next_for_labeler, label_submit, label_undo
from tests.factories import ProjectFactory, UserFactory, make_comparison
from training.models import Round
from training.services import round_start

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL row locks"),
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.usefixtures("hotpath"),
]

ROUNDS = 8


def _race(*targets):
    """Run the targets in threads released together; return what each returned or raised."""
    barrier = threading.Barrier(len(targets))
    results = [None] * len(targets)

    def body(i):
        try:
            barrier.wait()
            results[i] = targets[i]()
        except LabelingError as error:
            results[i] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(len(targets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a worker thread hung"
    return results


def _counts_match_rows():
    """Every comparison's label_count is its answered labels, and open_slots + live leases + labels = wanted."""
    rows = Comparison.objects.annotate(
        answered=Count("labels", filter=Q(labels__skipped=False), distinct=True),
        leased=Count("assignments", filter=Q(assignments__state=Assignment.State.LEASED), distinct=True),
    ).values_list("id", "label_count", "answered", "open_slots", "leased", "labels_wanted")
    return [(cid, count, answered, slots + leased + count, wanted) for cid, count, answered, slots, leased, wanted in rows
            if count != answered or slots + leased + count != wanted]


def _submit(labeler, assignment_id, position=0):
    return label_submit(assignment_id=assignment_id, labeler=labeler, answer=LabelInput(position=position,
                                                                                      duration_ms=2000))


def test_undo_racing_a_round_start_is_in_the_snapshot_or_gone():
    """Either the round's snapshot holds the label and the undo is refused, or the undo won and the snapshot
    stops before it: never a snapshot naming a label that is gone."""
    project = ProjectFactory(k=2, labels_per_comparison=1)
    labeler = UserFactory(role=CONTRACTOR)
    researcher = UserFactory(role=RESEARCHER)
    for _ in range(ROUNDS + 1):
        make_comparison(project)
    _submit(labeler, comparison_next_for_labeler(project=project, labeler=labeler).id)  # round 1 has a label
    with mock.patch("training.tasks.run_execute_task.delay"):
        for _ in range(ROUNDS):
            label, _ = _submit(labeler, comparison_next_for_labeler(project=project, labeler=labeler).id)
            undo, rnd = _race(lambda: label_undo(project=project, label_id=label.id, labeler=labeler),
                              lambda: round_start(project=project, user=researcher))
            assert isinstance(rnd, Round), rnd
            rnd.refresh_from_db()
            in_snapshot = rnd.label_snapshot["max_label_id"] >= label.id
            exists = Label.objects.filter(id=label.id).exists()
            assert (in_snapshot, exists, isinstance(undo, LabelingError)) in {(True, True, True), (False, False, False)}
            Round.objects.filter(id=rnd.id).update(status=Round.Status.FINISHED)
            if not exists:  # answer the restored lease again, so the next turn has a new last label
                _submit(labeler, comparison_next_for_labeler(project=project, labeler=labeler).id)
    assert _counts_match_rows() == []


def test_undo_racing_the_labelers_next_submit_keeps_counts_equal_to_rows():
    """Undo of label 1 while the same labeler submits the lease served after it (two tabs): one of them wins,
    the other is refused, and the counts stay equal to the rows."""
    project = ProjectFactory(k=2, labels_per_comparison=2)
    labeler = UserFactory(role=CONTRACTOR)
    for _ in range(3 * ROUNDS + 1):
        make_comparison(project)
    for _ in range(ROUNDS):
        label, _ = _submit(labeler, comparison_next_for_labeler(project=project, labeler=labeler).id)
        following = comparison_next_for_labeler(project=project, labeler=labeler)
        undo, submit = _race(lambda: label_undo(project=project, label_id=label.id, labeler=labeler),
                             lambda: _submit(labeler, following.id))
        assert isinstance(undo, LabelingError) != isinstance(submit, LabelingError), (undo, submit)
        assert _counts_match_rows() == []
        live = comparison_next_for_labeler(project=project, labeler=labeler)
        _submit(labeler, live.id)  # the restored lease (or a fresh one) answered: next turn starts clean
    assert _counts_match_rows() == []
