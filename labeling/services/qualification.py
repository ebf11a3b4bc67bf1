"""Labelers who earn trust: the qualification set before the queue, gold checks in it, and the
researchers' hand on a labeler's standing.

- **Qualification items** are copies of researcher-answered comparisons (`Comparison.is_qualification`)
  with the researchers' answer and a note (`GoldAnswer`). The live queue never serves them: their
  `open_slots` stays 0 (a check constraint holds it, so even a skip through the API cannot open one)
  and their leases never expire. Exports and reward fits leave them out.
- A labeler who must qualify (`Project.qualification_required`, standing `qualifying`) is served them
  by `qualification_next`, one attempt of `Project.qualification_items` unseen items at a time; each
  answer goes through `label_submit` like any other and is scored here (`trust_after_label`). The
  attempt passes at `qualification_threshold` agreement unless more than a fifth of its answers came
  faster than reading the texts (`READING_CHARS_PER_SECOND`, as the too-fast detector); then the
  standing becomes `qualified`. A failed attempt may be retried with items not seen before.
- **Gold** comparisons are calibration comparisons with a `GoldAnswer` (a share of them, `gold_share`,
  marked by `gold_mark_share`); they are opened to every labeler. Each gold answer updates the
  labeler's accuracy over their latest `gold_window` gold answers; when its Wilson 95% upper end is
  below `gold_accuracy_threshold` (with at least GOLD_MIN_ANSWERS answers) the labeler is `paused`:
  serving leases them nothing until a researcher resumes them or sends them back to qualification.
- Every change of standing is kept (`StandingChange`: who, when, why).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F, Max
from django.db.models.functions import Greatest
from django.utils import timezone

from labeling import metrics
from labeling.errors import Conflict, InvalidInput, NotFound
from labeling.models import (
    Assignment,
    Comparison,
    ComparisonSample,
    GoldAnswer,
    Label,
    LabelerStanding,
    Project,
    QualificationAttempt,
    StandingChange,
)
from labeling.roles import researchers
from labeling.selectors.qualification import researchers_answer

Status = LabelerStanding.Status

ITEM_LABELS_WANTED = 32767  # every labeler may answer a qualification or gold item (the column's maximum)
QUALIFICATION_LEASE = timedelta(days=365 * 100)  # a qualification lease never expires (it holds no slot)
TOO_FAST_ALLOWED = 0.2  # an attempt may have this share of answers faster than reading
GOLD_MIN_ANSWERS = 5
# The too-fast detector's reading speed (labeling/selectors/quality/common.py; a test holds them equal):
# importing the quality package here would import labels.py back.
READING_CHARS_PER_SECOND = 60.0

_rng = random.SystemRandom()


@dataclass(frozen=True)
class AnswerFeedback:
    """What the labeler is shown after answering a qualification or gold item."""

    kind: str  # "qualification" or "gold"
    chosen_index: int | None  # canonical
    researchers_index: int
    note: str
    display_order: list[int]
    attempt: QualificationAttempt | None = None
    status: str = ""  # the standing after this answer

    @property
    def correct(self) -> bool:
        return self.chosen_index == self.researchers_index

    @property
    def researchers_position(self) -> int:
        return self.display_order.index(self.researchers_index)

    @property
    def chosen_position(self) -> int | None:
        return None if self.chosen_index is None else self.display_order.index(self.chosen_index)


# --- Researchers: the items ------------------------------------------------------------------------------------


def _researchers_answer_or_refuse(comparison: Comparison) -> int:
    answer = researchers_answer(comparison=comparison)
    if answer is None:
        raise InvalidInput(f"Comparison {comparison.id} has no clear researchers' answer: label it first.",
                           field="comparison")
    return answer


def _calibration_comparison(project: Project, comparison_id: int) -> Comparison:
    comparison = Comparison.objects.filter(project=project, id=comparison_id, is_qualification=False).first()
    if comparison is None:
        raise NotFound(f"No comparison {comparison_id} in this project.")
    return comparison


def qualification_item_add(*, project: Project, comparison_id: int, note: str = "", by=None) -> Comparison:
    """Copy a researcher-answered comparison of `project` into its qualification set, with the researchers'
    answer and `note`. The copy shares the samples; the original stays where it was."""
    source = _calibration_comparison(project, comparison_id)
    answer = _researchers_answer_or_refuse(source)
    with transaction.atomic():
        copy = Comparison.objects.create(
            project=project, query_id=source.query_id, labels_wanted=ITEM_LABELS_WANTED, open_slots=0,
            is_qualification=True, batch=f"qualification of {source.id}", length_top=source.length_top,
            copy_top=source.copy_top, text_chars=source.text_chars)
        ComparisonSample.objects.bulk_create(
            ComparisonSample(comparison=copy, sample_id=e.sample_id, position=e.position, sample_source=e.sample_source,
                             sample_text_length=e.sample_text_length)
            for e in ComparisonSample.objects.filter(comparison=source))
        GoldAnswer.objects.create(comparison=copy, chosen_index=answer, note=note.strip(), created_by=by)
    return copy


def gold_mark(*, project: Project, comparison_id: int, note: str = "", by=None) -> GoldAnswer:
    """Mark a researcher-answered calibration comparison gold, with the researchers' answer and `note`
    (a second mark updates the note). Opens it to every labeler."""
    comparison = _calibration_comparison(project, comparison_id)
    if not comparison.is_calibration:
        raise InvalidInput(f"Comparison {comparison_id} is not a calibration comparison.", field="comparison")
    answer = _researchers_answer_or_refuse(comparison)
    with transaction.atomic():
        gold, created = GoldAnswer.objects.update_or_create(
            comparison=comparison, defaults={"chosen_index": answer, "note": note.strip(), "created_by": by})
        Comparison.objects.filter(id=comparison.id, labels_wanted__lt=ITEM_LABELS_WANTED).update(
            open_slots=Greatest(F("open_slots") + ITEM_LABELS_WANTED - F("labels_wanted"), 0),
            labels_wanted=ITEM_LABELS_WANTED)
    return gold


def gold_mark_share(*, project: Project, by=None) -> int:
    """Mark gold until `project.gold_share` of its researcher-answered calibration comparisons are (oldest
    first; those without a clear answer are passed over). Returns how many were marked now."""
    answered = list(Comparison.objects.filter(project=project, is_calibration=True, is_qualification=False,
                                              labels__labeler__in=researchers()).distinct().order_by("id"))
    have = set(GoldAnswer.objects.filter(comparison__in=answered).values_list("comparison_id", flat=True))
    wanted = math.ceil(project.gold_share * len(answered)) - len(have)
    marked = 0
    for comparison in answered:
        if marked >= wanted:
            break
        if comparison.id in have or researchers_answer(comparison=comparison) is None:
            continue
        gold_mark(project=project, comparison_id=comparison.id, by=by)
        marked += 1
    return marked


# --- Standing -------------------------------------------------------------------------------------------------


def _standing_change(standing: LabelerStanding, *, status: str, reason: str, by=None,
                     now: datetime | None = None) -> None:
    now = now or timezone.now()
    if status == Status.QUALIFIED and standing.status == Status.PAUSED:
        # A resume starts a fresh gold window: the answers that paused them would pause them again.
        standing.gold_since, standing.gold_answered, standing.gold_correct = now, 0, 0
    standing.status, standing.reason, standing.changed_by, standing.changed_at = status, reason, by, now
    standing.save()
    StandingChange.objects.create(standing=standing, status=status, reason=reason, changed_by=by)
    if status != Status.QUALIFYING:
        # Out of qualification: an unanswered qualification lease would come back as their "live lease".
        Assignment.objects.filter(labeler=standing.labeler_id, comparison__project=standing.project_id,
                                  comparison__is_qualification=True, state=Assignment.State.LEASED
                                  ).update(state=Assignment.State.WITHDRAWN)


def _standing_locked(project: Project, labeler) -> LabelerStanding:
    standing, _ = LabelerStanding.objects.get_or_create(
        project=project, labeler=labeler,
        defaults={"status": Status.QUALIFYING if project.qualification_required else Status.QUALIFIED})
    return LabelerStanding.objects.select_for_update().get(pk=standing.pk)


ACTIONS = {
    "admit": (Status.QUALIFIED, {Status.QUALIFYING, Status.REVOKED, Status.PAUSED}),
    "revoke": (Status.REVOKED, {Status.QUALIFYING, Status.QUALIFIED, Status.PAUSED}),
    "resume": (Status.QUALIFIED, {Status.PAUSED}),
    "send_back": (Status.QUALIFYING, {Status.QUALIFIED, Status.PAUSED, Status.REVOKED}),
}


def standing_act(*, project: Project, labeler, action: str, reason: str, by) -> LabelerStanding:
    """A researcher's hand on a labeler's standing: admit, revoke, resume (from paused) or send back to
    qualification, with a reason that is kept. Conflict when the action does not apply to the status."""
    if action not in ACTIONS:
        raise InvalidInput(f"Unknown action {action!r}.", field="action")
    if not reason.strip():
        raise InvalidInput("Say why: the reason is kept and shown to the labeler.", field="reason")
    status, allowed_from = ACTIONS[action]
    with transaction.atomic():
        standing = _standing_locked(project, labeler)
        if standing.status not in allowed_from:
            raise Conflict(f"Cannot {action.replace('_', ' ')} a labeler who is {standing.status}.")
        _standing_change(standing, status=status, reason=reason.strip(), by=by)
    return standing


# --- Qualification: serving -----------------------------------------------------------------------------------


def _unseen_items(project: Project, labeler):
    return (Comparison.objects.filter(project=project, is_qualification=True, status=Comparison.Status.ACTIVE)
            .exclude(assignments__labeler=labeler).order_by("id"))


def qualification_next(*, project: Project, labeler, now: datetime | None = None) -> Assignment | None:
    """The next qualification item for a qualifying labeler (their unanswered one if any), opening an attempt
    when none is under way. None when they are not qualifying or too few unseen items are left for an
    attempt (a researcher adds items or admits them by hand)."""
    now = now or timezone.now()
    with transaction.atomic():
        standing = _standing_locked(project, labeler)
        if standing.status != Status.QUALIFYING:
            return None
        live = (Assignment.objects.filter(labeler=labeler, comparison__project=project, state=Assignment.State.LEASED,
                                          comparison__is_qualification=True).order_by("id").first())
        if live is not None:
            return live
        attempt = QualificationAttempt.objects.filter(project=project, labeler=labeler, passed__isnull=True).first()
        unseen = _unseen_items(project, labeler)
        left = unseen.count()
        if attempt is None:
            if left < project.qualification_items:
                return None
            number = (QualificationAttempt.objects.filter(project=project, labeler=labeler)
                      .aggregate(n=Max("number"))["n"] or 0) + 1
            attempt = QualificationAttempt.objects.create(project=project, labeler=labeler, number=number,
                                                          items=project.qualification_items)
        elif left < attempt.items - attempt.answered:
            return None
        comparison = unseen.first()
        order = list(range(project.k))
        _rng.shuffle(order)
        return Assignment.objects.create(comparison=comparison, labeler=labeler, display_order=order, leased_at=now,
                                         expires_at=now + QUALIFICATION_LEASE)


def qualification_progress(*, project: Project, labeler) -> QualificationAttempt | None:
    """The attempt under way (or the last one), for the page's "item i of N"."""
    return (QualificationAttempt.objects.filter(project=project, labeler=labeler)
            .order_by("-number").first())


# --- After each label -----------------------------------------------------------------------------------------


def trust_after_label(*, label: Label) -> AnswerFeedback | None:
    """Called by label_submit for each new label of a labeler (not a researcher): one query when the
    comparison is neither a qualification nor a gold item; else scores it and returns the feedback
    (None for a gold item when the project shows none, or for a skip)."""
    item = (GoldAnswer.objects.filter(comparison_id=label.comparison_id)
            .values("chosen_index", "note", "comparison__is_qualification", "comparison__text_chars",
                    "comparison__project_id").first())
    if item is None or label.skipped:
        return None
    project = Project.objects.get(pk=item["comparison__project_id"])
    order = list(Assignment.objects.filter(pk=label.assignment_id).values_list("display_order", flat=True)[0])
    feedback = dict(chosen_index=label.chosen_index, researchers_index=item["chosen_index"], note=item["note"],
                    display_order=order)
    correct = label.chosen_index == item["chosen_index"]
    if item["comparison__is_qualification"]:
        too_fast = label.duration_ms * READING_CHARS_PER_SECOND < 1000 * (item["comparison__text_chars"] or 0)
        attempt, status = _attempt_count(project, label, correct=correct, too_fast=too_fast)
        return AnswerFeedback(kind="qualification", attempt=attempt, status=status, **feedback)
    status = _gold_count(project, label)
    if not project.gold_feedback:
        return None
    return AnswerFeedback(kind="gold", status=status, **feedback)


def _attempt_count(project: Project, label: Label, *, correct: bool, too_fast: bool):
    with transaction.atomic():
        standing = _standing_locked(project, label.labeler)
        attempt = (QualificationAttempt.objects.select_for_update()
                   .filter(project=project, labeler=label.labeler, passed__isnull=True).first())
        if attempt is None or standing.status != Status.QUALIFYING:
            return attempt, standing.status
        attempt.answered += 1
        attempt.correct += correct
        attempt.too_fast += too_fast
        attempt.duration_ms_total += label.duration_ms
        if attempt.answered >= attempt.items:
            attempt.finished_at = timezone.now()
            rushed = attempt.too_fast > TOO_FAST_ALLOWED * attempt.items
            attempt.passed = attempt.score >= project.qualification_threshold and not rushed
            summary = (f"Attempt {attempt.number}: {attempt.correct}/{attempt.answered} agreed with the researchers "
                       f"(needs {project.qualification_threshold:.0%})")
            if rushed:
                summary += f"; {attempt.too_fast} answers came faster than the texts can be read"
            if attempt.passed:
                _standing_change(standing, status=Status.QUALIFIED, reason=summary + ": passed.")
            else:
                standing.reason = summary + ": not passed. Try again with new items."
                standing.save(update_fields=["reason"])
        attempt.save()
    return attempt, standing.status


def _gold_count(project: Project, label: Label) -> str:
    with transaction.atomic():
        standing = _standing_locked(project, label.labeler)
        window = Label.objects.filter(labeler=label.labeler, comparison__project=project, skipped=False,
                                      comparison__is_qualification=False, comparison__gold_answer__isnull=False)
        if standing.gold_since is not None:
            window = window.filter(created_at__gte=standing.gold_since)
        rows = list(window.order_by("-id").values_list("chosen_index", "comparison__gold_answer__chosen_index")
                    [:project.gold_window])
        standing.gold_answered = len(rows)
        standing.gold_correct = sum(chosen == gold for chosen, gold in rows)
        standing.save(update_fields=["gold_answered", "gold_correct"])
        low_high = metrics.wilson_interval(standing.gold_correct, standing.gold_answered)
        if (standing.status == Status.QUALIFIED and project.gold_accuracy_threshold > 0
                and standing.gold_answered >= GOLD_MIN_ANSWERS and low_high[1] < project.gold_accuracy_threshold):
            _standing_change(standing, status=Status.PAUSED, reason=(
                f"Gold accuracy {standing.gold_correct}/{standing.gold_answered} (95% interval "
                f"{low_high[0]:.0%}–{low_high[1]:.0%}) is below the project's {project.gold_accuracy_threshold:.0%}."))
    return standing.status
