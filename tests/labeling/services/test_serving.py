"""Serving comparisons to labelers (comparison_next_for_labeler), at the service level on the real DB.

Time moves through the `now=` parameters, never by sleeping.
"""
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from labeling.models import Assignment, Comparison, Label
from labeling.roles import CONTRACTOR
from labeling.services import LabelInput, assignments_expire, comparison_next_for_labeler, label_submit
from tests.factories import ProjectFactory, UserFactory, make_comparison

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("hotpath")]

LEASE = timedelta(minutes=settings.LABELING_LEASE_MINUTES)
T0 = timezone.now().replace(microsecond=0)


def _next(project, labeler, now=T0):
    return comparison_next_for_labeler(project=project, labeler=labeler, now=now)


def _answer(assignment, labeler, *, position=0, now=T0 + timedelta(seconds=5), **kwargs):
    answer = LabelInput(position=position, duration_ms=kwargs.pop("duration_ms", 3000), **kwargs)
    return label_submit(assignment_id=assignment.id, labeler=labeler, answer=answer, now=now)


def _contractors(n):
    return [UserFactory(role=CONTRACTOR) for _ in range(n)]


def test_nothing_to_serve_is_none(project, contractor):
    """An empty project answers None, not an error."""
    assert _next(project, contractor) is None
    assert Assignment.objects.count() == 0


def test_lease_takes_one_slot_and_shuffles_display_order(project, contractor):
    """A lease takes exactly one open slot and stores a permutation of the K canonical indexes."""
    comparison = make_comparison(project, labels_wanted=2)
    assignment = _next(project, contractor)
    comparison.refresh_from_db()
    assert assignment.comparison_id == comparison.id
    assert assignment.state == Assignment.State.LEASED
    assert assignment.leased_at == T0
    assert assignment.expires_at == T0 + LEASE
    assert sorted(assignment.display_order) == list(range(project.k))
    assert comparison.open_slots == 1
    assert comparison.label_count == 0


def test_oldest_comparison_first(project, contractor):
    """Comparisons are served oldest first."""
    first, second = make_comparison(project), make_comparison(project)
    assert _next(project, contractor).comparison_id == first.id
    assert second.id > first.id


def test_live_lease_is_handed_back(project, contractor):
    """A labeler who holds a live lease gets the same assignment back and no second slot is taken."""
    comparison = make_comparison(project, labels_wanted=3)
    make_comparison(project)
    first = _next(project, contractor)
    again = _next(project, contractor, now=T0 + LEASE - timedelta(seconds=1))
    comparison.refresh_from_db()
    assert again.id == first.id
    assert Assignment.objects.filter(labeler=contractor).count() == 1
    assert comparison.open_slots == 2


def test_never_the_same_comparison_twice(project, contractor):
    """After labeling a comparison that still wants labels, the same labeler is not served it again."""
    comparison = make_comparison(project, labels_wanted=3)
    _answer(_next(project, contractor), contractor)
    assert _next(project, contractor, now=T0 + timedelta(minutes=1)) is None
    comparison.refresh_from_db()
    assert comparison.open_slots == 2
    assert comparison.label_count == 1


def test_own_expired_lease_is_not_served_again(project, contractor):
    """A labeler whose lease ran out does not get that comparison back; someone else can."""
    comparison = make_comparison(project)
    _next(project, contractor)
    later = T0 + LEASE + timedelta(minutes=1)
    assert _next(project, contractor, now=later) is None
    comparison.refresh_from_db()
    assert comparison.open_slots == 1
    assert Assignment.objects.get(labeler=contractor).state == Assignment.State.EXPIRED


def test_every_labeler_served_in_order_and_nobody_twice(project):
    """Three labelers over three comparisons wanting two labels each: oldest first, nobody twice, all labeled."""
    c1, c2, c3 = (make_comparison(project, labels_wanted=2) for _ in range(3))
    labelers = _contractors(3)
    served = []
    for minute in range(2):
        for labeler in labelers:
            assignment = _next(project, labeler, now=T0 + timedelta(minutes=minute))
            served.append(assignment.comparison_id)
            _answer(assignment, labeler, now=T0 + timedelta(minutes=minute, seconds=30))
    assert served == [c1.id, c1.id, c2.id, c2.id, c3.id, c3.id]
    assert [_next(project, labeler, now=T0 + timedelta(minutes=2)) for labeler in labelers] == [None] * 3
    assert list(Comparison.objects.values_list("label_count", "open_slots")) == [(2, 0)] * 3
    assert Label.objects.count() == 6


def test_handed_out_until_wanted_labels(project):
    """A comparison wanting 3 labels goes to 3 labelers, then to nobody; it ends with 3 labels."""
    comparison = make_comparison(project, labels_wanted=3)
    first, second, third, fourth = _contractors(4)
    leases = [_next(project, labeler) for labeler in (first, second, third)]
    assert [a.comparison_id for a in leases] == [comparison.id] * 3
    assert _next(project, fourth) is None
    for assignment, labeler in zip(leases, (first, second, third)):
        _answer(assignment, labeler)
    assert _next(project, fourth, now=T0 + timedelta(minutes=1)) is None
    comparison.refresh_from_db()
    assert comparison.label_count == 3
    assert comparison.open_slots == 0
    assert Label.objects.filter(comparison=comparison).count() == 3


def test_expired_lease_returns_to_pool(project, contractor, other_contractor):
    """A lease past its expiry gives its slot back; the next labeler gets the comparison."""
    comparison = make_comparison(project)
    first = _next(project, contractor)
    assert _next(project, other_contractor, now=T0 + LEASE - timedelta(seconds=1)) is None
    second = _next(project, other_contractor, now=T0 + LEASE + timedelta(seconds=1))
    first.refresh_from_db()
    comparison.refresh_from_db()
    assert second.comparison_id == comparison.id
    assert first.state == Assignment.State.EXPIRED
    assert comparison.open_slots == 0


def test_lease_at_its_exact_expiry_is_expired(project, contractor, other_contractor):
    """At `expires_at` itself a lease is over: the slot goes back and a submit is refused alike."""
    comparison = make_comparison(project)
    first = _next(project, contractor)
    second = _next(project, other_contractor, now=first.expires_at)
    first.refresh_from_db()
    assert first.state == Assignment.State.EXPIRED
    assert second is not None and second.comparison_id == comparison.id


def test_assignments_expire_counts_and_restores_slots(project):
    """assignments_expire touches only leases past expiry and gives exactly their slots back."""
    comparison = make_comparison(project, labels_wanted=3)
    early, late, done = _contractors(3)
    _next(project, early, now=T0)
    _next(project, late, now=T0 + timedelta(minutes=10))
    _answer(_next(project, done, now=T0), done)
    assert assignments_expire(project=project, now=T0 + LEASE + timedelta(minutes=1)) == 1
    comparison.refresh_from_db()
    assert comparison.open_slots == 1
    assert sorted(Assignment.objects.values_list("state", flat=True)) == ["expired", "leased", "submitted"]
    assert assignments_expire(project=project, now=T0 + LEASE + timedelta(minutes=1)) == 0


def test_expiry_in_another_project_is_left_alone(project, contractor):
    """Expiring one project's leases leaves another project's leases as they are."""
    other = ProjectFactory()
    make_comparison(other)
    lease = _next(other, contractor)
    assert assignments_expire(project=project, now=T0 + 2 * LEASE) == 0
    lease.refresh_from_db()
    assert lease.state == Assignment.State.LEASED


def test_skip_returns_the_slot(project, contractor, other_contractor):
    """A skip is not an answer: the slot goes back to the pool for someone else, not the skipper."""
    comparison = make_comparison(project)
    assignment = _next(project, contractor)
    _answer(assignment, contractor, position=None, skipped=True, skip_reason="Both are empty.")
    comparison.refresh_from_db()
    assert comparison.open_slots == 1
    assert comparison.label_count == 0
    assert _next(project, contractor, now=T0 + timedelta(minutes=1)) is None
    assert _next(project, other_contractor, now=T0 + timedelta(minutes=1)).comparison_id == comparison.id


def test_withdrawn_comparison_is_not_served(project, contractor):
    """A withdrawn comparison leaves the pool even with open slots."""
    from labeling.services import comparisons_withdraw

    comparison = make_comparison(project)
    comparisons_withdraw(comparison_ids=[comparison.id])
    assert _next(project, contractor) is None


def test_calibration_mixed_in_at_project_share():
    """Contractors get calibration comparisons at about the project's share (300 draws, share 0.3).

    Expected 90 of 300, standard deviation ~7.9; the bounds 60..120 are ~3.8 sigma, so a correct
    implementation fails about once in 10,000 runs; share 0 or 1 always fails, 0.15 almost always.
    """
    project = ProjectFactory(calibration_share=0.3)
    labelers = _contractors(20)
    for _ in range(16):
        make_comparison(project, labels_wanted=20)
        make_comparison(project, labels_wanted=20, is_calibration=True)
    draws = []
    for labeler in labelers:
        for i in range(15):
            # Each draw lets the previous lease expire, so a labeler never runs out of either slice.
            draws.append(_next(project, labeler, now=T0 + i * (LEASE + timedelta(minutes=1))))
    calibration = Comparison.objects.filter(is_calibration=True)
    served_calibration = sum(1 for a in draws if a.comparison_id in set(calibration.values_list("id", flat=True)))
    assert len(draws) == 300
    assert None not in draws
    assert 60 <= served_calibration <= 120


def test_share_one_falls_back_to_ordinary_when_no_calibration(contractor):
    """With calibration share 1 but no calibration comparison, the ordinary slice is served."""
    project = ProjectFactory(calibration_share=1.0)
    ordinary = make_comparison(project)
    assert _next(project, contractor).comparison_id == ordinary.id


def test_researchers_get_calibration_first(researcher):
    """Researchers label the calibration slice first, whatever the share."""
    project = ProjectFactory(calibration_share=0.0)
    make_comparison(project)
    calibration = make_comparison(project, is_calibration=True)
    assert _next(project, researcher).comparison_id == calibration.id


def test_calibration_comparisons_are_labeled_by_researchers_and_many_labelers(researcher):
    """One label would use up a calibration comparison and leave nothing to agree on: it wants the
    project's calibration labels (default 10), while an ordinary comparison wants labels_per_comparison."""
    project = ProjectFactory(k=4, labels_per_comparison=1, calibration_share=1.0)
    calibration = make_comparison(project, is_calibration=True)
    ordinary = make_comparison(project)
    assert (calibration.labels_wanted, ordinary.labels_wanted) == (10, 1)
    _answer(_next(project, researcher), researcher)
    served = []
    for labeler in _contractors(3):
        assignment = _next(project, labeler)
        served.append(assignment.comparison_id)
        _answer(assignment, labeler)
    assert served == [calibration.id] * 3  # every labeler gets the calibration slice first at share 1.0
    calibration.refresh_from_db()
    assert (calibration.label_count, calibration.open_slots) == (4, 6)


def test_existing_calibration_comparisons_get_their_slots_back():
    """The migration that added calibration_labels_wanted reopens calibration comparisons made before it."""
    from importlib import import_module

    from django.apps import apps

    migration = import_module("labeling.migrations.0005_project_calibration_labels_wanted")
    project = ProjectFactory(k=2, labels_per_comparison=2, calibration_labels_wanted=5)
    old = make_comparison(project, is_calibration=True, labels_wanted=2)
    Comparison.objects.filter(id=old.id).update(label_count=2, open_slots=0)
    ordinary = make_comparison(project)
    migration.raise_calibration_slots(apps, None)
    old.refresh_from_db()
    ordinary.refresh_from_db()
    assert (old.labels_wanted, old.label_count, old.open_slots) == (5, 2, 3)
    assert (ordinary.labels_wanted, ordinary.open_slots) == (2, 2)


def test_next_by_slug_serves_active_projects_to_labelers_only(contractor):
    """The API's next (by slug), on both paths: the active project serves; an inactive or unknown
    project, a user without the labeling role and an anonymous one all get NotFound, nothing leased."""
    from django.contrib.auth.models import AnonymousUser

    from labeling.errors import NotFound
    from labeling.services import comparison_next_by_slug

    active, inactive = ProjectFactory(k=3), ProjectFactory(is_active=False)
    make_comparison(active)
    make_comparison(inactive)
    nobody = UserFactory(username="no-role")
    for slug, user in [(inactive.slug, contractor), ("no-such-project", contractor), (active.slug, nobody),
                       (active.slug, AnonymousUser())]:
        with pytest.raises(NotFound):
            comparison_next_by_slug(slug=slug, labeler=user, now=T0)
    assert Assignment.objects.count() == 0
    assignment = comparison_next_by_slug(slug=active.slug, labeler=contractor, now=T0)
    assert assignment.comparison.project_id == active.id and len(assignment.display_order) == 3
