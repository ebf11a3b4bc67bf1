"""Storing a labeler's answer to an assignment (label_submit), with its flags, and the labels'
derived fields. Submitting again with the same answer returns the stored label (idempotent); a
different answer is a conflict. On PostgreSQL the submit is one SQL function call (labeling/sql/labels.sql,
see labeling/services/serving.py for why); the ORM path below is the same checks in
the same order."""
from __future__ import annotations

import json
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from labeling.errors import Conflict, Forbidden, InstructionsUnread, InvalidInput, NotFound
from labeling.models import (
    Assignment,
    Comparison,
    ComparisonSample,
    InstructionsAck,
    Label,
    Project,
    SampleFlag,
)
from labeling.services.serving import _sql_functions


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
    """label_submit on PostgreSQL: one call of the `labeling_submit` function (labeling/sql/labels.sql), which
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


def labels_display_position_fill(*, label_ids: Iterable[int]) -> int:
    """Store display_position (= assignment.display_order.index(chosen_index)) of these answered labels
    where it is NULL (labels written around label_submit and the imports); returns how many were written.
    A choice missing from its display order stays NULL."""
    rows = Label.objects.filter(id__in=list(label_ids), chosen_index__isnull=False, display_position__isnull=True
                                ).values_list("id", "chosen_index", "assignment__display_order")
    filled = [Label(id=i, display_position=list(order).index(chosen)) for i, chosen, order in rows if chosen in order]
    Label.objects.bulk_update(filled, ["display_position"], batch_size=500)
    return len(filled)
