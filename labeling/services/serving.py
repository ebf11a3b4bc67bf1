"""Serving comparisons to labelers: the next comparison, leases and their expiry.
(Storing the answer is labeling/services/labels.py.)

How the next comparison is chosen:
1. A labeler who holds a live lease in the project gets it back (a reload shows the same item).
2. Expired leases in the project give their slots back to the pool.
3. The pool is the calibration slice with probability `calibration_share` (researchers: always
   the calibration slice first), otherwise the ordinary slice; if the chosen slice is empty the
   other one is tried.
4. The oldest active comparison with an open slot that this labeler has never been assigned is
   locked with `SELECT … FOR UPDATE SKIP LOCKED`, its slot taken and an Assignment created with
   a fresh random display order. The unique (comparison, labeler) constraint and the
   non-negative `open_slots` check are the last line of defence.

On PostgreSQL the hot path is two SQL functions (labeling/sql/serving.sql and labeling/sql/labels.sql), one call each for
next and submit: the same rows locked in the same order, the same checks in the same order, one
round trip and plans kept per connection instead of ORM queries compiled per request
(bench/hotpath_profile.py measures it). The ORM path below stays for other databases (SQLite in
development) and is what `LABELING_SQL_FUNCTIONS=0` selects; the tests run both on PostgreSQL."""
from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef
from django.http import Http404
from django.utils import timezone

from labeling.errors import Forbidden, NotFound
from labeling.models import (
    Assignment,
    Comparison,
    Project,
    Query,
    Sample,
)
from labeling.roles import PERM_LABEL, is_researcher
from labeling.selectors import project_get_for_labeler
from labeling.selectors.qualification import Standing, labeler_standing_by_slug, labeler_standing_get

_rng = random.SystemRandom()


def assignments_expire(*, project: Project | None = None, now: datetime | None = None, limit: int = 1000) -> int:
    """Mark leases past their expiry as expired and give their slots back. Returns how many."""
    now = now or timezone.now()
    qs = Assignment.objects.filter(state=Assignment.State.LEASED, expires_at__lte=now)
    if project is not None:
        qs = qs.filter(comparison__project=project)
    with transaction.atomic():
        rows = list(qs.select_for_update(skip_locked=True, of=("self",)).values_list("id", "comparison_id")[:limit])
        if not rows:
            return 0
        Assignment.objects.filter(id__in=[r[0] for r in rows]).update(state=Assignment.State.EXPIRED)
        per_comparison: dict[int, int] = {}
        for _, comparison_id in rows:
            per_comparison[comparison_id] = per_comparison.get(comparison_id, 0) + 1
        for comparison_id, n in sorted(per_comparison.items()):
            Comparison.objects.filter(id=comparison_id).update(open_slots=F("open_slots") + n)
    return len(rows)


def _sql_functions() -> bool:
    """Whether next and submit call the PostgreSQL functions (else the ORM path, as on SQLite)."""
    return connection.vendor == "postgresql" and settings.LABELING_SQL_FUNCTIONS


def _next_postgresql(*, project_id: int | None, slug: str | None, labeler, now: datetime) -> Assignment | None:
    """comparison_next_for_labeler on PostgreSQL: one call of the `labeling_next` function
    (labeling/sql/serving.sql), which takes the labeler's lock, expires stale leases, returns a live
    lease or leases the next comparison as the ORM path below does, and reads what the page shows.
    NotFound when the project (by slug: an active one) does not exist."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM labeling_next(%s, %s, %s, %s, %s, %s)",
                       [project_id, slug, labeler.id, is_researcher(labeler), now,
                        timedelta(minutes=settings.LABELING_LEASE_MINUTES)])
        rows = cursor.fetchall()
    outcome, project_id = rows[0][0], rows[0][1]
    if outcome == "no_project":
        raise NotFound("No such project.")
    if outcome == "none":
        return None
    _, _, assignment_id, comparison_id, display_order, leased_at, expires_at, *_ = rows[0]
    assignment = Assignment(id=assignment_id, comparison_id=comparison_id, labeler=labeler,
                            display_order=json.loads(display_order) if isinstance(display_order, str) else display_order,
                            leased_at=leased_at, expires_at=expires_at, state=Assignment.State.LEASED)
    assignment._state.adding, assignment._state.db = False, connection.alias
    query = Query(id=rows[0][10], project_id=project_id, context=rows[0][11], reference=rows[0][12])
    # Read by selectors.assignment_for_display instead of querying the samples again.
    assignment.prefetched_display = (query, {
        position: Sample(id=sample_id, query=query, text=text) for *_, position, sample_id, text, _, _, _ in rows
    })
    return assignment


def _lease_one(*, project: Project, labeler, calibration: bool, now: datetime, wait: bool) -> Assignment | None:
    # Runs inside comparison_next_for_labeler's transaction, after the labeler's row lock: every
    # statement here sees all assignments committed by the labeler's earlier requests, so the
    # exclusion below is exact and the unique (comparison, labeler) constraint cannot fire short
    # of a bug; should it ever fire, the whole request rolls back and nothing is half-written.
    # The pick is a savepoint: on PostgreSQL a row it locked that then failed the recheck (its last
    # slot taken meanwhile) stays locked, and a pick that finds nothing rolls back so that the next
    # pick never waits while holding such locks (two pools visited in opposite orders deadlocked).
    order = list(range(project.k))
    _rng.shuffle(order)
    expires_at = now + timedelta(minutes=settings.LABELING_LEASE_MINUTES)
    already_assigned = Assignment.objects.filter(comparison=OuterRef("pk"), labeler=labeler)
    pick = transaction.savepoint()
    comparison = (
        Comparison.objects.filter(
            project=project, status=Comparison.Status.ACTIVE, is_calibration=calibration, open_slots__gt=0
        )
        .exclude(Exists(already_assigned))
        .order_by("id")
        .select_for_update(skip_locked=not wait, of=("self",))
        .only("id", "project_id")
        .first()
    )
    if comparison is None:
        transaction.savepoint_rollback(pick)
        return None
    transaction.savepoint_commit(pick)
    Comparison.objects.filter(id=comparison.id).update(open_slots=F("open_slots") - 1)
    return Assignment.objects.create(
        comparison=comparison, labeler=labeler, display_order=order, leased_at=now, expires_at=expires_at
    )


def _live_lease(*, project: Project, labeler, now: datetime) -> Assignment | None:
    return (
        Assignment.objects.filter(
            labeler=labeler, comparison__project=project, state=Assignment.State.LEASED, expires_at__gt=now
        )
        .order_by("leased_at")
        .first()
    )


def _lock_labeler(labeler) -> None:
    """One lease at a time per labeler: concurrent requests of one labeler (double clicks, client
    retries) would otherwise each lease a comparison and hoard its slot until expiry."""
    list(get_user_model().objects.select_for_update(no_key=True).filter(id=labeler.id).values_list("id"))


def comparison_next_for_labeler(*, project: Project, labeler, now: datetime | None = None,
                                standing: Standing | None = None) -> Assignment | None:
    """Lease the next comparison for `labeler` in `project`, or None when nothing is left for them.

    Never the same comparison twice to one labeler; a comparison is handed out until it has its
    wanted number of labels; safe under any number of concurrent callers. None, too, for a labeler
    the project does not admit (qualifying, paused, revoked: labeling/services/qualification.py);
    `standing` is the caller's read of it, else it is read here (one query).
    """
    now = now or timezone.now()
    if not (standing or labeler_standing_get(project=project, labeler=labeler)).admitted:
        return None
    if _sql_functions():
        return _next_postgresql(project_id=project.id, slug=None, labeler=labeler, now=now)
    # A plain existence check first: the locking expiry costs three round trips, and on most
    # requests nothing has expired.
    expired = Assignment.objects.filter(state=Assignment.State.LEASED, expires_at__lte=now,
                                        comparison__project=project)
    if expired.exists():
        assignments_expire(project=project, now=now)

    if is_researcher(labeler):
        pools = [True, False]
    else:
        first = _rng.random() < project.calibration_share
        pools = [first, not first]
    with transaction.atomic():
        _lock_labeler(labeler)
        live = _live_lease(project=project, labeler=labeler, now=now)
        if live is not None:
            return live
        # SKIP LOCKED passes over rows another transaction holds for a moment (a lease or a submit
        # in flight); only when that finds nothing, wait for those rows, so a slot that is merely
        # locked is never reported as "nothing left".
        for wait in (False, True):
            for calibration in pools:
                assignment = _lease_one(project=project, labeler=labeler, calibration=calibration, now=now, wait=wait)
                if assignment is not None:
                    return assignment
    return None


def _not_admitted_message(standing: Standing) -> str:
    if standing.qualifying:
        return "Answer the qualification set on the labeling page first."
    return f"You are {standing.status} in this project: {standing.reason} Ask a researcher of the project."


def comparison_next_by_slug(*, slug: str, labeler, now: datetime | None = None) -> Assignment | None:
    """comparison_next_for_labeler in the active project `slug` (the API's next): NotFound when there
    is none or the user may not label. On PostgreSQL the project is read by the same call."""
    if not _sql_functions():
        try:
            project = project_get_for_labeler(slug=slug, user=labeler)
        except Http404 as error:
            raise NotFound("No such project.") from error
        standing = labeler_standing_get(project=project, labeler=labeler)
        if not standing.admitted:
            raise Forbidden(_not_admitted_message(standing))
        return comparison_next_for_labeler(project=project, labeler=labeler, now=now, standing=standing)
    if not labeler.is_authenticated or not labeler.has_perm(PERM_LABEL):
        raise NotFound("No such project.")
    standing = labeler_standing_by_slug(slug=slug, labeler=labeler)
    if standing is not None and not standing.admitted:
        raise Forbidden(_not_admitted_message(standing))
    return _next_postgresql(project_id=None, slug=slug, labeler=labeler, now=now or timezone.now())
