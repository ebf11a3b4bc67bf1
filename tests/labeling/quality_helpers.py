"""Builders for the dashboard tests: labels written directly, with chosen display order, time and day."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from django.db.models import F

from labeling.models import Assignment, Comparison, Label, SampleFlag
from labeling.roles import CONTRACTOR, RESEARCHER
from labeling.services import instructions_publish
from tests.factories import UserFactory, make_comparison

MONDAY = datetime(2026, 1, 5, 10, 0, tzinfo=timezone.utc)
NEXT_TUESDAY = datetime(2026, 1, 13, 10, 0, tzinfo=timezone.utc)


def add_label(comparison, user, chosen, *, display_order=None, duration_ms=20000, unsure=False, instructions=None,
              at=None, flag=False) -> Label:
    """A submitted label; chosen None means skipped. display_order defaults to canonical order."""
    k = comparison.project.k
    at = at or MONDAY
    display_order = display_order or list(range(k))
    assignment = Assignment.objects.create(
        comparison=comparison, labeler=user, display_order=display_order, leased_at=at,
        expires_at=at + timedelta(minutes=30), state=Assignment.State.SUBMITTED,
    )
    label = Label.objects.create(
        assignment=assignment, comparison=comparison, labeler=user, chosen_index=chosen, skipped=chosen is None,
        display_position=None if chosen is None else display_order.index(chosen),
        skip_reason="x" if chosen is None else "", unsure=unsure, duration_ms=duration_ms, instructions=instructions,
    )
    Label.objects.filter(id=label.id).update(created_at=at)
    if chosen is not None:
        Comparison.objects.filter(id=comparison.id).update(label_count=F("label_count") + 1)
    if flag:
        SampleFlag.objects.create(label=label, sample=comparison.samples.first(), note="odd")
    return label


def hand_world(project):
    """The hand-computed project of selectors/quality/test_quality.py (K=4); returns a dict of its users and comparisons.

    Researchers r1, r2 on calibration C1..C4: C1 0/0, C2 1/1, C3 2/3 (tie: no answer), C4 r1 0, r2 skipped.
    Labeler a (Monday, v1): C1 0 ✓, C2 2 ✗, C3 2 (no answer), C4 0 ✓, C5 1 (not calibration; flagged).
    Labeler b (next Tuesday, v1): C1 1 ✗, C2 1 ✓, C4 skipped.   Labeler c (next Tuesday, v2): C1 0 ✓, C2 1 ✓.
    """
    v1 = instructions_publish(project=project, body="v1")
    v2 = instructions_publish(project=project, body="v2")
    r1 = UserFactory(username="res-one", role=RESEARCHER)
    r2 = UserFactory(username="res-two", role=RESEARCHER)
    a = UserFactory(username="lab-a", role=CONTRACTOR)
    b = UserFactory(username="lab-b", role=CONTRACTOR)
    c = UserFactory(username="lab-c", role=CONTRACTOR)
    cal = [make_comparison(project, is_calibration=True, labels_wanted=8) for _ in range(4)]
    c5 = make_comparison(project, labels_wanted=8)
    for comparison, first, second in zip(cal, [0, 1, 2, 0], [0, 1, 3, None], strict=True):
        add_label(comparison, r1, first, instructions=v1)
        add_label(comparison, r2, second, instructions=v1)
    for comparison, chosen in zip([*cal, c5], [0, 2, 2, 0, 1], strict=True):
        add_label(comparison, a, chosen, instructions=v1, flag=comparison is c5, duration_ms=10000)
    for comparison, chosen in zip([cal[0], cal[1], cal[3]], [1, 1, None], strict=True):
        add_label(comparison, b, chosen, instructions=v1, at=NEXT_TUESDAY, unsure=chosen == 1, duration_ms=30000)
    for comparison, chosen in zip(cal[:2], [0, 1], strict=True):
        add_label(comparison, c, chosen, instructions=v2, at=NEXT_TUESDAY)
    return {"r1": r1, "r2": r2, "a": a, "b": b, "c": c, "cal": cal, "c5": c5}
