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

On PostgreSQL the hot path (next, submit) runs as a few fixed SQL statements instead of ORM
queries (each one below says what it replaces): same rows locked in the same order, same checks,
fewer round trips and no ORM compilation per request (bench/hotpath_profile.py measures it). The
ORM path stays for other databases (SQLite in development), and the tests run both.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from labeling.errors import Conflict, Forbidden, InstructionsUnread, InvalidInput, NotFound
from labeling.models import (
    Assignment, Comparison, ComparisonSample, Instructions, InstructionsAck, Label, Project, Query, Sample, SampleFlag,
)
from labeling.roles import PERM_RESEARCH

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


# One round trip on PostgreSQL for what the ORM path does in four (pick, slot, insert, and the
# display data read afterwards): the same pick (oldest servable comparison of the pool that this
# labeler was never assigned, locked FOR UPDATE [SKIP LOCKED]), its slot taken, the Assignment
# inserted, and the comparison's samples and context returned for display. The CTEs share one
# snapshot; the labeler's row lock (taken before) makes the NOT EXISTS exact, and PostgreSQL
# re-checks the locked row's own conditions (open_slots > 0, status) after waiting for it.
_LEASE_SQL = """
WITH picked AS (
    SELECT c.id FROM {comparison} c
    WHERE c.project_id = %(project)s AND c.status = 'active' AND c.is_calibration = %(calibration)s
      AND c.open_slots > 0
      AND NOT EXISTS (SELECT 1 FROM {assignment} a WHERE a.comparison_id = c.id AND a.labeler_id = %(labeler)s)
    ORDER BY c.id LIMIT 1
    FOR UPDATE OF c {skip_locked}
), slot AS (
    UPDATE {comparison} c SET open_slots = c.open_slots - 1 FROM picked WHERE c.id = picked.id RETURNING c.id
), lease AS (
    INSERT INTO {assignment} (comparison_id, labeler_id, display_order, leased_at, expires_at, state)
    SELECT slot.id, %(labeler)s, %(order)s::jsonb, %(now)s, %(expires)s, 'leased' FROM slot
    RETURNING id, comparison_id
)
SELECT lease.id, lease.comparison_id, cs.position, s.id, s.text, q.id, q.context, q.reference
FROM lease
JOIN {entry} cs ON cs.comparison_id = lease.comparison_id
JOIN {sample} s ON s.id = cs.sample_id
JOIN {query} q ON q.id = s.query_id
"""


def _lease_one_postgresql(*, project: Project, labeler, calibration: bool, now: datetime, wait: bool,
                          order: list[int], expires_at: datetime) -> Assignment | None:
    sql = _LEASE_SQL.format(
        comparison=Comparison._meta.db_table, assignment=Assignment._meta.db_table,
        entry=ComparisonSample._meta.db_table, sample=Sample._meta.db_table, query=Query._meta.db_table,
        skip_locked="" if wait else "SKIP LOCKED",
    )
    params = {"project": project.id, "calibration": calibration, "labeler": labeler.id, "order": json.dumps(order),
              "now": now, "expires": expires_at}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return None
    assignment = Assignment(id=rows[0][0], comparison_id=rows[0][1], labeler=labeler, display_order=order,
                            leased_at=now, expires_at=expires_at, state=Assignment.State.LEASED)
    assignment._state.adding, assignment._state.db = False, connection.alias
    query = Query(id=rows[0][5], project_id=project.id, context=rows[0][6], reference=rows[0][7])
    # Read by selectors.assignment_for_display instead of querying the samples again.
    assignment.prefetched_display = (query, {
        position: Sample(id=sample_id, query=query, text=text) for _, _, position, sample_id, text, *_ in rows
    })
    return assignment


def _lease_one(*, project: Project, labeler, calibration: bool, now: datetime, wait: bool) -> Assignment | None:
    # Runs inside comparison_next_for_labeler's transaction, after the labeler's row lock: every
    # statement here sees all assignments committed by the labeler's earlier requests, so the
    # exclusion below is exact and the unique (comparison, labeler) constraint cannot fire short
    # of a bug. No savepoint, then (it cost two round trips per lease); should the constraint
    # ever fire, the whole request rolls back and nothing is half-written.
    order = list(range(project.k))
    _rng.shuffle(order)
    expires_at = now + timedelta(minutes=settings.LABELING_LEASE_MINUTES)
    if connection.vendor == "postgresql":
        return _lease_one_postgresql(project=project, labeler=labeler, calibration=calibration, now=now, wait=wait,
                                     order=order, expires_at=expires_at)
    already_assigned = Assignment.objects.filter(comparison=OuterRef("pk"), labeler=labeler)
    with transaction.atomic(savepoint=False):
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
            return None
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


# comparison_next_for_labeler on PostgreSQL, after the labeler's row lock: the live lease and
# whether any lease in the project is past its expiry, in one statement (the ORM path takes two,
# the expiry check before the transaction).
_LIVE_LEASE_SQL = """
SELECT {assignment_cols},
       EXISTS (SELECT 1 FROM {assignment} e JOIN {comparison} ec ON ec.id = e.comparison_id
               WHERE e.state = 'leased' AND e.expires_at <= %(now)s AND ec.project_id = %(project)s)
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (
    SELECT a.* FROM {assignment} a JOIN {comparison} c ON c.id = a.comparison_id
    WHERE a.labeler_id = %(labeler)s AND c.project_id = %(project)s AND a.state = 'leased' AND a.expires_at > %(now)s
    ORDER BY a.leased_at LIMIT 1
) a ON true
"""


def _lock_labeler(labeler) -> None:
    """One lease at a time per labeler: concurrent requests of one labeler (double clicks, client
    retries) would otherwise each lease a comparison and hoard its slot until expiry."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            user = get_user_model()._meta
            cursor.execute(f"SELECT 1 FROM {user.db_table} WHERE {user.pk.column} = %s FOR NO KEY UPDATE", [labeler.id])
        return
    list(get_user_model().objects.select_for_update(no_key=True).filter(id=labeler.id).values_list("id"))


def _live_lease_postgresql(*, project: Project, labeler, now: datetime) -> tuple[Assignment | None, bool]:
    """(the labeler's live lease in the project or None, whether any lease in the project has expired)."""
    fields = [f.attname for f in Assignment._meta.concrete_fields]
    sql = _LIVE_LEASE_SQL.format(
        assignment_cols=", ".join(f'a."{Assignment._meta.get_field(f).column}"' for f in fields),
        assignment=Assignment._meta.db_table, comparison=Comparison._meta.db_table,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, {"now": now, "project": project.id, "labeler": labeler.id})
        row = cursor.fetchone()
    return (_assignment_from_row(fields, row[:-1]) if row[0] is not None else None), row[-1]


def _assignment_from_row(fields: list[str], row) -> Assignment:
    """An Assignment from raw columns in model field order (from_db applies no converters: decode the JSON)."""
    values = list(row)
    i = fields.index("display_order")
    values[i] = Assignment._meta.get_field("display_order").from_db_value(values[i], None, connection)
    return Assignment.from_db(connection.alias, fields, values)


def comparison_next_for_labeler(*, project: Project, labeler, now: datetime | None = None) -> Assignment | None:
    """Lease the next comparison for `labeler` in `project`, or None when nothing is left for them.

    Never the same comparison twice to one labeler; a comparison is handed out until it has its
    wanted number of labels; safe under any number of concurrent callers.
    """
    now = now or timezone.now()
    postgresql = connection.vendor == "postgresql"
    if not postgresql:
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
        if postgresql:
            live, expired = _live_lease_postgresql(project=project, labeler=labeler, now=now)
            if expired:
                # Rare: give the expired slots back now, inside this transaction (a savepoint), so
                # the lease below can take them.
                assignments_expire(project=project, now=now)
        else:
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


# label_submit on PostgreSQL: two fixed statements where the ORM takes five queries (and their
# compilation). The lookup locks the assignment (FOR UPDATE OF it only, as the ORM path does) and
# reads with it the comparison's status, the project's K, the project's current instructions and
# whether this labeler acknowledged them. The write stores the label, marks the assignment
# submitted and counts the answer (or, for a skip, gives the slot back) in one statement. The
# assignment row is re-read once its lock is granted (a concurrent submit of it is seen: replay or
# 409); the comparison and project come from the statement's snapshot, as on the ORM path, and so
# do the instructions (the ORM path reads them just after the lock): a version published while
# this submit waited on the lock applies from the labeler's next label.
_SUBMIT_LOOKUP_SQL = """
SELECT {assignment_cols}, c.status, c.project_id, p.k, i.id, i.version,
       EXISTS (SELECT 1 FROM {ack} k WHERE k.instructions_id = i.id AND k.user_id = %(labeler)s)
FROM {assignment} a
JOIN {comparison} c ON c.id = a.comparison_id
JOIN {project} p ON p.id = c.project_id
LEFT JOIN LATERAL (
    SELECT id, version FROM {instructions} WHERE project_id = c.project_id ORDER BY version DESC LIMIT 1
) i ON true
WHERE a.id = %(assignment)s
FOR UPDATE OF a
"""

_SUBMIT_WRITE_SQL = """
WITH label AS (
    INSERT INTO {label} (assignment_id, comparison_id, labeler_id, chosen_index, unsure, skipped, skip_reason,
                         duration_ms, instructions_id, created_at)
    VALUES (%(assignment)s, %(comparison)s, %(labeler)s, %(chosen_index)s, %(unsure)s, %(skipped)s, %(skip_reason)s,
            %(duration_ms)s, %(instructions)s, %(created_at)s)
    RETURNING id
), submitted AS (
    UPDATE {assignment} SET state = 'submitted' WHERE id = %(assignment)s
), counted AS (
    UPDATE {comparison} SET label_count = label_count + %(answered)s, open_slots = open_slots + %(skips)s
    WHERE id = %(comparison)s
)
SELECT id FROM label
"""


def _submit_lookup_postgresql(*, assignment_id: int, labeler) -> tuple[Assignment | None, Instructions | None]:
    fields = [f.attname for f in Assignment._meta.concrete_fields]
    sql = _SUBMIT_LOOKUP_SQL.format(
        assignment_cols=", ".join(f'a."{Assignment._meta.get_field(f).column}"' for f in fields),
        assignment=Assignment._meta.db_table, comparison=Comparison._meta.db_table, project=Project._meta.db_table,
        instructions=Instructions._meta.db_table, ack=InstructionsAck._meta.db_table,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, {"assignment": assignment_id, "labeler": labeler.id})
        row = cursor.fetchone()
    if row is None:
        return None, None
    n = len(fields)
    status, project_id, k, instructions_id, version, acknowledged = row[n:]
    # Instances with only the columns read; any other field is loaded on access (deferred).
    assignment = _assignment_from_row(fields, row[:n])
    comparison = Comparison.from_db(connection.alias, ["id", "project_id", "status"],
                                    [assignment.comparison_id, project_id, status])
    comparison.project = Project.from_db(connection.alias, ["id", "k"], [project_id, k])
    assignment.comparison = comparison
    instructions = None
    if instructions_id is not None:
        instructions = Instructions.from_db(connection.alias, ["id", "project_id", "version"],
                                            [instructions_id, project_id, version])
        instructions.acknowledged = acknowledged
    return assignment, instructions


def _submit_write_postgresql(label: Label) -> None:
    """Insert `label` (unsaved), mark its assignment submitted and count it, in one statement."""
    label.created_at = timezone.now()
    sql = _SUBMIT_WRITE_SQL.format(label=Label._meta.db_table, assignment=Assignment._meta.db_table,
                                   comparison=Comparison._meta.db_table)
    params = {
        "assignment": label.assignment_id, "comparison": label.comparison_id, "labeler": label.labeler_id,
        "chosen_index": label.chosen_index, "unsure": label.unsure, "skipped": label.skipped,
        "skip_reason": label.skip_reason, "duration_ms": label.duration_ms, "instructions": label.instructions_id,
        "created_at": label.created_at, "answered": 0 if label.skipped else 1, "skips": 1 if label.skipped else 0,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        label.id = cursor.fetchone()[0]
    label._state.adding, label._state.db = False, connection.alias


def label_submit(*, assignment_id: int, labeler, answer: LabelInput, now: datetime | None = None) -> tuple[Label, bool]:
    """Store the answer to a lease. Returns (label, created).

    Idempotent: replaying the same answer returns the stored label; a different answer to an
    already answered assignment is a Conflict (409). Another labeler's assignment is Forbidden
    (403); an expired or withdrawn one is a Conflict. Nothing is written on any error.
    """
    now = now or timezone.now()
    postgresql = connection.vendor == "postgresql"
    with transaction.atomic():
        if postgresql:
            assignment, instructions = _submit_lookup_postgresql(assignment_id=assignment_id, labeler=labeler)
        else:
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

        if not postgresql:
            # The current version and whether this labeler acknowledged it, in one query.
            instructions = (
                project.instructions.order_by("-version")
                .annotate(
                    acknowledged=Exists(InstructionsAck.objects.filter(instructions=OuterRef("pk"), user=labeler))
                )
                .first()
            )
        if instructions is not None and not instructions.acknowledged:
            raise InstructionsUnread(f"Read and acknowledge instructions v{instructions.version} first.")

        # Trust the client's timer only when it is plausible against the server's clock.
        server_ms = max(0, int((now - assignment.leased_at).total_seconds() * 1000))
        duration = answer.duration_ms if 0 < answer.duration_ms <= server_ms + 5000 else server_ms
        label = Label(
            assignment=assignment,
            comparison=comparison,
            labeler=labeler,
            chosen_index=None if answer.skipped else assignment.display_order[answer.position],
            unsure=answer.unsure,
            skipped=answer.skipped,
            skip_reason=answer.skip_reason.strip(),
            duration_ms=duration,
            instructions=instructions,
        )
        assignment.state = Assignment.State.SUBMITTED
        if postgresql:
            _submit_write_postgresql(label)
        else:
            label.save(force_insert=True)
            assignment.save(update_fields=["state"])
            if answer.skipped:
                # A skip is not an answer: the slot goes back to the pool for someone else.
                Comparison.objects.filter(id=comparison.id).update(open_slots=F("open_slots") + 1)
            else:
                Comparison.objects.filter(id=comparison.id).update(label_count=F("label_count") + 1)
        if answer.flags:
            samples = dict(ComparisonSample.objects.filter(comparison=comparison).values_list("position", "sample_id"))
            SampleFlag.objects.bulk_create(
                SampleFlag(
                    label=label,
                    sample_id=samples[assignment.display_order[flag.position]],
                    note=flag.note.strip(),
                    suggested_correction=flag.suggested_correction,
                )
                for flag in answer.flags
            )
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
