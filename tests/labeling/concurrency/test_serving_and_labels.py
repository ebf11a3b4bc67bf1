"""Serving and submitting under real concurrency: threads, one PostgreSQL connection each.

SQLite serialises writers, so these tests say nothing there and are skipped.
"""
import threading
import time
from collections import Counter

import pytest
from django.db import connection, transaction
from django.db.models import Count, F

from labeling.models import Assignment, Comparison, ComparisonSample, Label
from labeling.roles import CONTRACTOR
from labeling.services import LabelInput, comparison_next_for_labeler, label_submit
from tests.factories import ProjectFactory, QueryFactory, SampleFactory, UserFactory

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL row locks"),
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.usefixtures("hotpath"),
]

LABELERS = 50
COMPARISONS = 500
WANTED = 2


def _bulk_comparisons(project, n):
    """n comparisons of one query's K samples, open for their wanted labels, in two bulk inserts."""
    query = QueryFactory(project=project)
    samples = [SampleFactory(query=query) for _ in range(project.k)]
    comparisons = Comparison.objects.bulk_create(
        Comparison(project=project, query=query, labels_wanted=project.labels_per_comparison,
                   open_slots=project.labels_per_comparison)
        for _ in range(n)
    )
    ComparisonSample.objects.bulk_create(
        ComparisonSample.of(c, s, i) for c in comparisons for i, s in enumerate(samples)
    )
    return comparisons


def _run_threads(n, target):
    """Run target(i) in n threads released together; return the exceptions they raised."""
    barrier = threading.Barrier(n)
    errors = []

    def body(i):
        try:
            barrier.wait()
            target(i)
        except Exception as error:  # collected and asserted empty by the test
            errors.append(repr(error))
        finally:
            connection.close()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a worker thread hung"
    return errors


def test_50_labelers_drain_500_comparisons_exactly():
    """50 labelers looping next → submit until None leave every comparison with exactly its 2 labels.

    Nobody labels a comparison twice, every acknowledged submit is a row, no slot is left open.
    """
    project = ProjectFactory(labels_per_comparison=WANTED)
    _bulk_comparisons(project, COMPARISONS)
    labelers = [UserFactory(role=CONTRACTOR) for _ in range(LABELERS)]
    acknowledged = [[] for _ in range(LABELERS)]

    def label_until_done(i):
        labeler = labelers[i]
        while (assignment := comparison_next_for_labeler(project=project, labeler=labeler)) is not None:
            label, created = label_submit(
                assignment_id=assignment.id, labeler=labeler, answer=LabelInput(position=i % project.k, duration_ms=100)
            )
            acknowledged[i].append((label.id, created))

    errors = _run_threads(LABELERS, label_until_done)

    acked_ids = [label_id for per_thread in acknowledged for label_id, _ in per_thread]
    per_comparison = Counter(Label.objects.values_list("comparison_id", flat=True))
    assert errors == []
    assert all(created for per_thread in acknowledged for _, created in per_thread)
    assert len(acked_ids) == len(set(acked_ids)) == COMPARISONS * WANTED
    assert set(Label.objects.values_list("id", flat=True)) == set(acked_ids)
    assert set(per_comparison.values()) == {WANTED}
    assert len(per_comparison) == COMPARISONS
    assert not Label.objects.values("comparison", "labeler").annotate(n=Count("id")).filter(n__gt=1).exists()
    assert not Assignment.objects.values("comparison", "labeler").annotate(n=Count("id")).filter(n__gt=1).exists()
    assert set(Comparison.objects.values_list("open_slots", "label_count")) == {(0, WANTED)}
    assert set(Assignment.objects.values_list("state", flat=True)) == {Assignment.State.SUBMITTED}


def test_20_concurrent_double_submits_store_one_row():
    """The same answer sent 20 times at once is stored once; 19 callers get the stored label back."""
    project = ProjectFactory()
    _bulk_comparisons(project, 1)
    labeler = UserFactory(role=CONTRACTOR)
    assignment = comparison_next_for_labeler(project=project, labeler=labeler)
    results = []

    def submit(_):
        label, created = label_submit(
            assignment_id=assignment.id, labeler=labeler, answer=LabelInput(position=1, duration_ms=100)
        )
        results.append((label.id, created))

    errors = _run_threads(20, submit)

    assert errors == []
    assert len(results) == 20
    assert len({label_id for label_id, _ in results}) == 1
    assert sorted(created for _, created in results) == [False] * 19 + [True]
    assert Label.objects.count() == 1
    assert Comparison.objects.get().label_count == 1


def test_20_concurrent_conflicting_submits_store_one_row():
    """20 different answers at once: one stored, the rest are replays or Conflicts, never a second row."""
    from labeling.errors import Conflict

    project = ProjectFactory()
    _bulk_comparisons(project, 1)
    labeler = UserFactory(role=CONTRACTOR)
    assignment = comparison_next_for_labeler(project=project, labeler=labeler)
    conflicts = []

    def submit(i):
        try:
            label_submit(assignment_id=assignment.id, labeler=labeler, answer=LabelInput(position=i % 4, duration_ms=1))
        except Conflict:
            conflicts.append(i)

    errors = _run_threads(20, submit)

    stored = Label.objects.get()
    assert errors == []
    assert len(conflicts) == 15  # the 15 answers whose position differs from the stored one
    assert stored.display_position in range(4)
    assert Comparison.objects.get().label_count == 1


def test_one_labeler_asking_20_times_at_once_holds_one_lease():
    """A labeler's concurrent next requests (double clicks, retries) must not lease several comparisons."""
    project = ProjectFactory()
    _bulk_comparisons(project, 30)
    labeler = UserFactory(role=CONTRACTOR)
    leased = []

    def ask(_):
        leased.append(comparison_next_for_labeler(project=project, labeler=labeler).id)

    errors = _run_threads(20, ask)

    assert errors == []
    assert Assignment.objects.filter(labeler=labeler).count() == 1
    assert len(set(leased)) == 1


def test_comparison_locked_for_a_moment_is_not_reported_as_nothing_left():
    """A comparison whose row is briefly locked (another labeler's submit in flight) is still served.

    SKIP LOCKED alone answers None here, and a labeler's client reads None as "all done" while
    the comparison still wants a label: at the end of a pool, comparisons end under-labeled.
    """
    project = ProjectFactory(labels_per_comparison=2)
    (comparison,) = _bulk_comparisons(project, 1)
    labeler = UserFactory(role=CONTRACTOR)
    locked = threading.Event()

    def hold_row_lock_like_a_submit():
        try:
            with transaction.atomic():
                Comparison.objects.filter(id=comparison.id).update(label_count=F("label_count"))
                locked.set()
                time.sleep(0.5)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_row_lock_like_a_submit)
    holder.start()
    assert locked.wait(timeout=10)
    assignment = comparison_next_for_labeler(project=project, labeler=labeler)
    holder.join(timeout=10)

    assert assignment is not None
    assert assignment.comparison_id == comparison.id
