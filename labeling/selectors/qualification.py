"""Reads for labelers who earn trust: a labeler's standing in a project (the serving gate), the
researchers' answer to a comparison, and the researchers' standings page (attempts, gold accuracy).
The writes and the rules are labeling/services/qualification.py."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from django.db.models import OuterRef, Subquery

from labeling import metrics
from labeling.models import (
    Comparison,
    GoldAnswer,
    Label,
    LabelerStanding,
    Project,
    QualificationAttempt,
    StandingChange,
)
from labeling.roles import is_researcher, researchers

Status = LabelerStanding.Status


@dataclass(frozen=True)
class Standing:
    """Where a labeler stands: `admitted` to the live queue or not, and why (shown to them)."""

    status: str
    reason: str = ""

    @property
    def admitted(self) -> bool:
        return self.status == Status.QUALIFIED

    @property
    def qualifying(self) -> bool:
        return self.status == Status.QUALIFYING


ADMITTED = Standing(status=Status.QUALIFIED)


def _standing(required: bool, status: str | None, reason: str | None) -> Standing:
    if status is None:  # no row: the project's default
        return Standing(status=Status.QUALIFYING) if required else ADMITTED
    return Standing(status=status, reason=reason or "")


def labeler_standing_get(*, project: Project, labeler) -> Standing:
    """The labeler's standing in `project` (one indexed query; none for researchers, always admitted)."""
    if is_researcher(labeler):
        return ADMITTED
    row = LabelerStanding.objects.filter(project=project, labeler=labeler).values_list("status", "reason").first()
    return _standing(project.qualification_required, *(row or (None, None)))


def labeler_standing_by_slug(*, slug: str, labeler) -> Standing | None:
    """labeler_standing_get for the active project `slug`, project and standing in one query; None
    when there is no such project."""
    if is_researcher(labeler):
        return ADMITTED
    mine = LabelerStanding.objects.filter(project=OuterRef("pk"), labeler=labeler)
    row = (Project.objects.filter(slug=slug, is_active=True)
           .values_list("qualification_required", Subquery(mine.values("status")[:1]),
                        Subquery(mine.values("reason")[:1]))
           .first())
    return None if row is None else _standing(*row)


def researchers_answer(*, comparison: Comparison) -> int | None:
    """The researchers' answer to `comparison` (canonical index): their majority among answered labels;
    None when they gave none or tie."""
    votes = Counter(Label.objects.filter(comparison=comparison, labeler__in=researchers(), skipped=False)
                    .values_list("chosen_index", flat=True))
    top = votes.most_common(2)
    if not top or (len(top) == 2 and top[0][1] == top[1][1]):
        return None
    return top[0][0]


def gold_answer_get(*, comparison_id: int) -> GoldAnswer | None:
    return GoldAnswer.objects.filter(comparison_id=comparison_id).first()


@dataclass
class StandingRow:
    """One labeler on the standings page."""

    labeler_id: int
    username: str
    status: str
    reason: str
    changed_by: str
    changed_at: object
    gold_answered: int
    gold_correct: int
    attempts: list[QualificationAttempt] = field(default_factory=list)
    changes: list[StandingChange] = field(default_factory=list)

    @property
    def gold_accuracy(self) -> float | None:
        return self.gold_correct / self.gold_answered if self.gold_answered else None

    @property
    def gold_interval(self) -> tuple[float, float] | None:
        return metrics.wilson_interval(self.gold_correct, self.gold_answered)


_ORDER = {Status.PAUSED: 0, Status.QUALIFYING: 1, Status.REVOKED: 2, Status.QUALIFIED: 3}


def project_standings(*, project: Project) -> list[StandingRow]:
    """Every labeler with a standing in `project`, paused first, with attempts and standing history (3 queries)."""
    rows = {
        s.labeler_id: StandingRow(
            labeler_id=s.labeler_id, username=s.labeler.username, status=s.status, reason=s.reason,
            changed_by=s.changed_by.username if s.changed_by else "", changed_at=s.changed_at,
            gold_answered=s.gold_answered, gold_correct=s.gold_correct)
        for s in LabelerStanding.objects.filter(project=project).select_related("labeler", "changed_by")
    }
    for attempt in QualificationAttempt.objects.filter(project=project, labeler_id__in=rows).order_by("number"):
        rows[attempt.labeler_id].attempts.append(attempt)
    for change in (StandingChange.objects.filter(standing__project=project)
                   .select_related("standing", "changed_by").order_by("id")):
        rows[change.standing.labeler_id].changes.append(change)
    return sorted(rows.values(), key=lambda r: (_ORDER.get(r.status, 9), r.username))


@dataclass(frozen=True)
class TrustItems:
    qualification: list[GoldAnswer]
    gold: list[GoldAnswer]
    calibration_answered: int


def project_trust_items(*, project: Project) -> TrustItems:
    """The project's qualification set and gold comparisons, with their researchers' answers and notes."""
    answers = list(GoldAnswer.objects.filter(comparison__project=project)
                   .select_related("comparison", "created_by").order_by("comparison_id"))
    answered = (Comparison.objects.filter(project=project, is_calibration=True, labels__labeler__in=researchers())
                .distinct().count())
    return TrustItems(qualification=[a for a in answers if a.comparison.is_qualification],
                      gold=[a for a in answers if not a.comparison.is_qualification],
                      calibration_answered=answered)
