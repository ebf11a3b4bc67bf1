"""Serving comparisons to labelers and storing their answers.

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

On PostgreSQL the hot path is two SQL functions (labeling migration 0006), one call each for
next and submit: the same rows locked in the same order, the same checks in the same order, one
round trip and plans kept per connection instead of ORM queries compiled per request
(bench/hotpath_profile.py measures it). The ORM path below stays for other databases (SQLite in
development) and is what `LABELING_SQL_FUNCTIONS=0` selects; the tests run both on PostgreSQL.
"""
from __future__ import annotations

import json
import random
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef
from django.http import Http404
from django.utils import timezone

from labeling.errors import Conflict, Forbidden, InstructionsUnread, InvalidInput, NotFound
from labeling.models import (
    Assignment, Comparison, ComparisonSample, InstructionsAck, Label, Project, Query, Sample, SampleFlag,
)
from labeling.roles import PERM_LABEL, PERM_RESEARCH
from labeling.selectors import project_get_for_labeler

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
    """comparison_next_for_labeler on PostgreSQL: one call of the `labeling_next` function (migration
    0006), which takes the labeler's lock, expires stale leases, returns a live lease or leases the
    next comparison as the ORM path below does, and reads what the page shows. NotFound when the
    project (by slug: an active one) does not exist."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM labeling_next(%s, %s, %s, %s, %s, %s)",
                       [project_id, slug, labeler.id, labeler.has_perm(PERM_RESEARCH), now,
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


def comparison_next_for_labeler(*, project: Project, labeler, now: datetime | None = None) -> Assignment | None:
    """Lease the next comparison for `labeler` in `project`, or None when nothing is left for them.

    Never the same comparison twice to one labeler; a comparison is handed out until it has its
    wanted number of labels; safe under any number of concurrent callers.
    """
    now = now or timezone.now()
    if _sql_functions():
        return _next_postgresql(project_id=project.id, slug=None, labeler=labeler, now=now)
    # A plain existence check first: the locking expiry costs three round trips, and on most
    # requests nothing has expired.
    expired = Assignment.objects.filter(state=Assignment.State.LEASED, expires_at__lte=now,
                                        comparison__project=project)
    if expired.exists():
        assignments_expire(project=project, now=now)

    if labeler.has_perm(PERM_RESEARCH):
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


def comparison_next_by_slug(*, slug: str, labeler, now: datetime | None = None) -> Assignment | None:
    """comparison_next_for_labeler in the active project `slug` (the API's next): NotFound when there
    is none or the user may not label. On PostgreSQL the project is read by the same call."""
    if not _sql_functions():
        try:
            project = project_get_for_labeler(slug=slug, user=labeler)
        except Http404 as error:
            raise NotFound("No such project.") from error
        return comparison_next_for_labeler(project=project, labeler=labeler, now=now)
    if not labeler.is_authenticated or not labeler.has_perm(PERM_LABEL):
        raise NotFound("No such project.")
    return _next_postgresql(project_id=None, slug=slug, labeler=labeler, now=now or timezone.now())


@dataclass(frozen=True)
class FlagInput:
    """A note on the sample shown at display `position` (0 = A)."""

    position: int
    note: str
    suggested_correction: str = ""


@dataclass(frozen=True)
class LabelInput:
    """What a labeler answered, in display terms (what they saw), before mapping to canonical."""

    position: int | None  # display position chosen, None when skipped
    duration_ms: int
    unsure: bool = False
    skipped: bool = False
    skip_reason: str = ""
    flags: list[FlagInput] = field(default_factory=list)


def _validate(answer: LabelInput, k: int) -> None:
    if answer.skipped:
        if answer.position is not None:
            raise InvalidInput("A skipped comparison cannot also have a choice.", field="choice")
        if not answer.skip_reason.strip():
            raise InvalidInput("Say why you skip this comparison.", field="skip_reason")
    else:
        if answer.position is None:
            raise InvalidInput("Choose a sample (or skip with a reason).", field="choice")
        if isinstance(answer.position, bool) or not isinstance(answer.position, int) or not 0 <= answer.position < k:
            raise InvalidInput(f"Choice must be a sample index from 0 to {k - 1}.", field="choice")
    if not isinstance(answer.duration_ms, int) or answer.duration_ms < 0:
        raise InvalidInput("duration_ms must be a non-negative integer.", field="duration_ms")
    for flag in answer.flags:
        if not 0 <= flag.position < k:
            raise InvalidInput(f"Flagged sample must be an index from 0 to {k - 1}.", field="flags")
        if not flag.note.strip():
            raise InvalidInput("A flag needs a note saying what is wrong.", field="flags")


def _same_answer(label: Label, assignment: Assignment, answer: LabelInput) -> bool:
    chosen = None if answer.position is None else assignment.display_order[answer.position]
    return label.skipped == answer.skipped and label.chosen_index == chosen


_LABEL_FIELDS = ["id", "assignment_id", "comparison_id", "labeler_id", "chosen_index", "unsure", "skipped",
                 "skip_reason", "duration_ms", "instructions_id", "created_at"]


def _submit_postgresql(*, assignment_id: int, labeler, answer: LabelInput, now: datetime) -> tuple[Label, bool]:
    """label_submit on PostgreSQL: one call of the `labeling_submit` function (migration 0006), which
    locks the assignment, makes the checks below in the same order and stores the label, marks the
    assignment submitted and counts the answer (a skip gives its slot back). Flags follow in the
    same transaction. The answer's shape is checked here first (`valid`); the function adds the
    checks that need the project's K and says "invalid", and _validate then names the fault."""
    try:
        _validate(answer, Project.K_MAX)
        valid = True
    except InvalidInput:
        valid = False
    position = answer.position if valid else None
    flag_max = max((f.position for f in answer.flags), default=-1) if valid else -1
    with transaction.atomic() if answer.flags else nullcontext():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT * FROM labeling_submit(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [assignment_id, labeler.id, valid, position, bool(answer.unsure), bool(answer.skipped),
                 answer.skip_reason.strip(), answer.duration_ms if valid else 0, flag_max, now, timezone.now()])
            outcome, k, version, display_order, *label_row = cursor.fetchone()
        if outcome == "not_found":
            raise NotFound("No such assignment.")
        if outcome == "forbidden":
            raise Forbidden("This assignment belongs to another labeler.")
        if outcome == "invalid":
            _validate(answer, k)
            raise InvalidInput("Invalid answer.")  # unreachable unless the two checks disagree
        if outcome == "conflict":
            raise Conflict("This comparison was already answered differently.")
        if outcome == "withdrawn":
            raise Conflict("This comparison was withdrawn from labeling.")
        if outcome == "expired":
            raise Conflict("Your lease on this comparison expired; it went back to the pool.")
        if outcome == "unread":
            raise InstructionsUnread(f"Read and acknowledge instructions v{version} first.")
        label = Label.from_db(connection.alias, _LABEL_FIELDS, label_row)
        if outcome == "created" and answer.flags:
            order = json.loads(display_order) if isinstance(display_order, str) else display_order
            _flags_store(label, order, answer.flags)
    return label, outcome == "created"


def _flags_store(label: Label, display_order: list[int], flags: list[FlagInput]) -> None:
    samples = dict(ComparisonSample.objects.filter(comparison_id=label.comparison_id)
                   .values_list("position", "sample_id"))
    SampleFlag.objects.bulk_create(
        SampleFlag(label=label, sample_id=samples[display_order[flag.position]], note=flag.note.strip(),
                   suggested_correction=flag.suggested_correction)
        for flag in flags
    )


def label_submit(*, assignment_id: int, labeler, answer: LabelInput, now: datetime | None = None) -> tuple[Label, bool]:
    """Store the answer to a lease. Returns (label, created).

    Idempotent: replaying the same answer returns the stored label; a different answer to an
    already answered assignment is a Conflict (409). Another labeler's assignment is Forbidden
    (403); an expired or withdrawn one is a Conflict. Nothing is written on any error.
    """
    now = now or timezone.now()
    if _sql_functions():
        return _submit_postgresql(assignment_id=assignment_id, labeler=labeler, answer=answer, now=now)
    with transaction.atomic():
        assignment = (
            Assignment.objects.select_for_update(of=("self",))
            .select_related("comparison__project")
            .filter(id=assignment_id)
            .first()
        )
        if assignment is None:
            raise NotFound("No such assignment.")
        if assignment.labeler_id != labeler.id:
            raise Forbidden("This assignment belongs to another labeler.")
        comparison = assignment.comparison
        project = comparison.project
        _validate(answer, project.k)
        if assignment.state == Assignment.State.SUBMITTED:
            label = Label.objects.get(assignment=assignment)
            if _same_answer(label, assignment, answer):
                return label, False
            raise Conflict("This comparison was already answered differently.")
        if assignment.state == Assignment.State.WITHDRAWN or comparison.status != Comparison.Status.ACTIVE:
            raise Conflict("This comparison was withdrawn from labeling.")
        if assignment.state == Assignment.State.EXPIRED or assignment.expires_at <= now:
            raise Conflict("Your lease on this comparison expired; it went back to the pool.")
        # The current version and whether this labeler acknowledged it, in one query.
        instructions = (
            project.instructions.order_by("-version")
            .annotate(acknowledged=Exists(InstructionsAck.objects.filter(instructions=OuterRef("pk"), user=labeler)))
            .first()
        )
        if instructions is not None and not instructions.acknowledged:
            raise InstructionsUnread(f"Read and acknowledge instructions v{instructions.version} first.")

        # Trust the client's timer only when it is plausible against the server's clock.
        server_ms = max(0, int((now - assignment.leased_at).total_seconds() * 1000))
        duration = answer.duration_ms if 0 < answer.duration_ms <= server_ms + 5000 else server_ms
        label = Label.objects.create(
            assignment=assignment,
            comparison=comparison,
            labeler=labeler,
            chosen_index=None if answer.skipped else assignment.display_order[answer.position],
            display_position=None if answer.skipped else answer.position,
            unsure=answer.unsure,
            skipped=answer.skipped,
            skip_reason=answer.skip_reason.strip(),
            duration_ms=duration,
            instructions=instructions,
        )
        assignment.state = Assignment.State.SUBMITTED
        assignment.save(update_fields=["state"])
        if answer.skipped:
            # A skip is not an answer: the slot goes back to the pool for someone else.
            Comparison.objects.filter(id=comparison.id).update(open_slots=F("open_slots") + 1)
        else:
            Comparison.objects.filter(id=comparison.id).update(label_count=F("label_count") + 1)
        if answer.flags:
            _flags_store(label, assignment.display_order, answer.flags)
    return label, True


def comparisons_withdraw(*, comparison_ids: list[int]) -> int:
    """Take comparisons out of the labeling queue (andon cord); live leases on them end."""
    with transaction.atomic():
        n = Comparison.objects.filter(id__in=comparison_ids, status=Comparison.Status.ACTIVE).update(
            status=Comparison.Status.WITHDRAWN
        )
        Assignment.objects.filter(comparison_id__in=comparison_ids, state=Assignment.State.LEASED).update(
            state=Assignment.State.WITHDRAWN
        )
    return n
