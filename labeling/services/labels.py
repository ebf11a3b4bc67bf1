"""Storing a labeler's answer to an assignment (label_submit), with its flags, and the labels'
derived fields. Submitting again with the same answer returns the stored label (idempotent); a
different answer is a conflict. On PostgreSQL the submit is one SQL function call (labeling/sql/labels.sql,
see labeling/services/serving.py for why); the ORM path below is the same checks in
the same order.

label_undo takes back the labeler's last label within LABELING_UNDO_SECONDS: it is rare, so it has one
ORM path on every database, which leaves the rows as the submit found them (the lease live again, the
comparison's label_count or open_slots as before) so that either path of next serves it again."""
from __future__ import annotations

import json
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from labeling.errors import Conflict, Forbidden, InstructionsUnread, InvalidInput, NotFound
from labeling.models import (
    Assignment,
    Comparison,
    ComparisonSample,
    GoldAnswer,
    InstructionsAck,
    Label,
    Project,
    SampleFlag,
)
from labeling.label_types import LikertAxes, PairwiseConfidence, Ranking
from labeling.roles import is_researcher
from labeling.services.qualification import trust_after_label
from labeling.services.serving import _lock_labeler, _sql_functions
from training.models import Round, TrainingRun


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
    # Pairwise-confidence projects: the 9-point scale as shown (1 = the sample shown first definitely better).
    confidence: int | None = None
    # Ranking projects: the rank of each sample as shown (A, B, …), 1 = best, equal ranks tie.
    ranking: list[int] | None = None
    # Projects with Likert axes: {axis: [rating 1–7 of each sample as shown]}.
    likert: dict | None = None
    # Projects that allow it: every sample is bad; the choice is the least bad.
    none_acceptable: bool = False


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


def _same_answer(label: Label, assignment: Assignment, answer: LabelInput, parts: dict) -> bool:
    chosen = None if answer.position is None else assignment.display_order[answer.position]
    return (label.skipped == answer.skipped and label.chosen_index == chosen
            and all(getattr(label, name) == parts.get(name, default) for name, default in _PART_DEFAULTS.items()))


# The parts of an answer a project's label type and options add to the choice (Label fields, their default).
_PART_DEFAULTS = {"confidence": None, "ranking": None, "likert": None, "none_acceptable": False}


def _normalised(answer: LabelInput) -> LabelInput:
    """A ranking without a choice chooses the top tier's sample shown first (the page sends the first one pressed)."""
    if answer.skipped or answer.position is not None or not isinstance(answer.ranking, list) or 1 not in answer.ranking:
        return answer
    return replace(answer, position=answer.ranking.index(1))


def _answer_parts(*, assignment_id: int, labeler, answer: LabelInput) -> dict:
    """The answer's parts beyond the choice, in canonical terms, as Label fields (only those set): the 9-point
    scale (labeling/label_types.PairwiseConfidence), the ranking (Ranking), the Likert ratings (LikertAxes),
    none acceptable. InvalidInput naming the field when a part the project asks for is missing or wrong, or a
    part it does not ask for is given; a skip has none. One query. An assignment that is not the labeler's passes
    here: the submit says NotFound or Forbidden."""
    row = (Assignment.objects.filter(id=assignment_id, labeler_id=labeler.id)
           .values_list("comparison__project__label_type", "comparison__project__k",
                        "comparison__project__likert_axes", "comparison__project__allow_none_acceptable",
                        "display_order").first())
    if row is None:
        return {}
    label_type, k, axes, allow_none, display_order = row
    order = json.loads(display_order) if isinstance(display_order, str) else display_order
    axes = json.loads(axes) if isinstance(axes, str) else (axes or [])
    parts: dict = {}
    given = {"confidence": answer.confidence is not None, "ranking": answer.ranking is not None,
             "likert": answer.likert is not None, "none_acceptable": bool(answer.none_acceptable)}
    if answer.skipped:
        for name, is_given in given.items():
            if is_given:
                raise InvalidInput("A skip has no " + name.replace("_", " ") + ".", field=name)
        return parts
    asks = {"confidence": label_type == Project.LabelType.PAIRWISE_CONFIDENCE,
            "ranking": label_type == Project.LabelType.RANKING, "likert": bool(axes), "none_acceptable": allow_none}
    for name, is_given in given.items():
        if is_given and not asks[name]:
            raise InvalidInput({"confidence": "This project does not use the confidence scale.",
                                "ranking": "This project does not ask for a ranking.",
                                "likert": "This project does not ask for ratings.",
                                "none_acceptable": 'This project does not offer "none acceptable".'}[name], field=name)
    chosen = answer.position if isinstance(answer.position, int) and not isinstance(answer.position, bool) else None
    if asks["confidence"]:
        if not PairwiseConfidence.is_valid(answer.confidence):
            raise InvalidInput("Choose a point of the 9-point scale (1 to 9).", field="confidence")
        if chosen in (0, 1) and not PairwiseConfidence.agrees(answer.confidence, chosen):
            raise InvalidInput("The scale point prefers the other sample than the one chosen.", field="confidence")
        parts["confidence"] = PairwiseConfidence.to_canonical(answer.confidence, order)
    if asks["ranking"]:
        problem = "Rank the samples: press them in order, best first." if answer.ranking is None \
            else Ranking(k).errors(answer.ranking)
        if problem:
            raise InvalidInput(problem, field="ranking")
        if chosen is not None and 0 <= chosen < k and answer.ranking[chosen] != 1:
            raise InvalidInput("The chosen sample must be in the ranking's top tier.", field="ranking")
        parts["ranking"] = Ranking.to_canonical(answer.ranking, order)
    if asks["likert"]:
        problem = LikertAxes.errors(answer.likert, axes, k)
        if problem:
            raise InvalidInput(problem, field="likert")
        parts["likert"] = LikertAxes.to_canonical({axis: list(answer.likert[axis]) for axis in axes}, order)
    if answer.none_acceptable:
        parts["none_acceptable"] = True
    return parts


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
    """_label_submit, then the qualification and gold checks of a labeler's new label (labeling/services/
    qualification.py): their feedback, if any, is `label.feedback`. A skip of a qualification item is a
    Conflict (the constraint that keeps it out of the live queue refuses it; nothing is written)."""
    try:
        label, created = _label_submit(assignment_id=assignment_id, labeler=labeler, answer=answer, now=now)
    except IntegrityError as error:
        if "comparison_qualification_never_served" in str(error):
            raise Conflict("A qualification item cannot be skipped: choose a sample.") from None
        raise
    label.feedback = trust_after_label(label=label) if created and not is_researcher(labeler) else None
    return label, created


def _label_submit(*, assignment_id: int, labeler, answer: LabelInput, now: datetime | None = None) -> tuple[Label, bool]:
    """Store the answer to a lease. Returns (label, created).

    Idempotent: replaying the same answer returns the stored label; a different answer to an
    already answered assignment is a Conflict (409). Another labeler's assignment is Forbidden
    (403); an expired or withdrawn one is a Conflict. Nothing is written on any error.
    """
    now = now or timezone.now()
    answer = _normalised(answer)
    parts = _answer_parts(assignment_id=assignment_id, labeler=labeler, answer=answer)
    if _sql_functions():
        if not parts:
            label, created = _submit_postgresql(assignment_id=assignment_id, labeler=labeler, answer=answer, now=now)
            for name, default in _PART_DEFAULTS.items():  # none asked (or a skip): known without reading the row again
                setattr(label, name, default)
            return label, created
        # The SQL function leaves the parts at their defaults; they are written here, in the same transaction.
        with transaction.atomic():
            label, created = _submit_postgresql(assignment_id=assignment_id, labeler=labeler, answer=answer, now=now)
            if created:
                Label.objects.filter(id=label.id).update(**parts)
                for name, default in _PART_DEFAULTS.items():
                    setattr(label, name, parts.get(name, default))
            else:
                stored = Label.objects.filter(id=label.id).values(*_PART_DEFAULTS).get()
                if any(stored[name] != parts.get(name, default) for name, default in _PART_DEFAULTS.items()):
                    raise Conflict("This comparison was already answered differently.")
                for name in _PART_DEFAULTS:
                    setattr(label, name, stored[name])
        return label, created
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
            if _same_answer(label, assignment, answer, parts):
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
            **parts,
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


def label_undo(*, project: Project, label_id: int, labeler, now: datetime | None = None) -> Assignment:
    """Take back `labeler`'s label `label_id` and return its lease, live again for a full lease time, so
    that the next comparison served to them is that one, in the same order (a lease served after the
    label is given back). Only the labeler's own last label in its project, within
    LABELING_UNDO_SECONDS of its creation, on an active comparison, and only while no round or reward
    fit has snapshotted it: otherwise a Conflict (NotFound for no such label in `project`, Forbidden for
    another labeler's) and nothing is written."""
    now = now or timezone.now()
    window = timedelta(seconds=getattr(settings, "LABELING_UNDO_SECONDS", 10))
    with transaction.atomic():
        # 1. Locks, in the order serving and a round start take them: the labeler's row (one lease at a
        #    time; both paths of next take it), the project's row (a round start snapshots the labels
        #    under it, so a snapshot sees the label or never will), then the labeler's leases and the
        #    label's assignment (a submit in flight finishes first, and its label is then the last one).
        label = Label.objects.select_related("comparison").filter(id=label_id, comparison__project=project).first()
        if label is None:
            raise NotFound("No such label.")
        if label.labeler_id != labeler.id:
            raise Forbidden("This label belongs to another labeler.")
        project_id = project.id
        _lock_labeler(labeler)
        list(Project.objects.select_for_update().filter(id=project_id).values_list("id"))
        leases = list(
            Assignment.objects.select_for_update(of=("self",))
            .filter(labeler=labeler, comparison__project_id=project_id, state=Assignment.State.LEASED)
            .values_list("id", "comparison_id")
        )
        assignment = Assignment.objects.select_for_update(of=("self",)).get(id=label.assignment_id)

        # 2. The checks, each a refusal that writes nothing.
        last = (Label.objects.filter(labeler=labeler, comparison__project_id=project_id)
                .order_by("-id").values_list("id", flat=True).first())
        if last != label.id:
            raise Conflict("Only your last label can be undone.")
        if label.source_import_id is not None or assignment.state != Assignment.State.SUBMITTED:
            raise Conflict("This label was not given on the labeling page; it cannot be undone.")
        if now - label.created_at > window:
            raise Conflict(f"Too late to undo: a label can be undone for {int(window.total_seconds())} seconds.")
        comparison = Comparison.objects.select_for_update().get(id=label.comparison_id)
        if comparison.status != Comparison.Status.ACTIVE:
            raise Conflict("This comparison was withdrawn from labeling.")
        if comparison.is_qualification or GoldAnswer.objects.filter(comparison_id=comparison.id).exists():
            # The researchers' answer may have been shown: a second try would score the answer key, not the labeler.
            raise Conflict("Answers on qualification and gold items cannot be undone.")
        snapshotted = (Round.objects.filter(project_id=project_id, label_snapshot__max_label_id__gte=label.id).exists()
                       or TrainingRun.objects.filter(project_id=project_id,
                                                     product__label_snapshot__max_label_id__gte=label.id).exists())
        if snapshotted:
            raise Conflict("This label is already in a training snapshot; it cannot be undone.")
        if label.skipped and comparison.open_slots <= 0:
            raise Conflict("The comparison you skipped went to another labeler; it cannot be undone.")

        # 3. The lease served after the label goes back to the pool (one lease at a time per labeler);
        #    deleting it, not expiring it, lets that comparison come to this labeler again later.
        for lease_id, comparison_id in leases:
            Assignment.objects.filter(id=lease_id).delete()
            Comparison.objects.filter(id=comparison_id).update(open_slots=F("open_slots") + 1)
        # 4. The label goes; its lease and the comparison's counts are as before the submit (a skip had
        #    given its slot back: the lease takes it again).
        label.delete()  # its flags cascade
        if label.skipped:
            Comparison.objects.filter(id=comparison.id).update(open_slots=F("open_slots") - 1)
        else:
            Comparison.objects.filter(id=comparison.id).update(label_count=F("label_count") - 1)
        assignment.state = Assignment.State.LEASED
        assignment.leased_at = now
        assignment.expires_at = now + timedelta(minutes=settings.LABELING_LEASE_MINUTES)
        assignment.save(update_fields=["state", "leased_at", "expires_at"])
    return assignment


def labels_display_position_fill(*, label_ids: Iterable[int]) -> int:
    """Store display_position (= assignment.display_order.index(chosen_index)) of these answered labels
    where it is NULL (labels written around label_submit and the imports); returns how many were written.
    A choice missing from its display order stays NULL."""
    rows = Label.objects.filter(id__in=list(label_ids), chosen_index__isnull=False, display_position__isnull=True
                                ).values_list("id", "chosen_index", "assignment__display_order")
    filled = [Label(id=i, display_position=list(order).index(chosen)) for i, chosen, order in rows if chosen in order]
    Label.objects.bulk_update(filled, ["display_position"], batch_size=500)
    return len(filled)
