"""The labeling page (HTMX): one view renders the full page or, for htmx, the #pair partial; submit
stores the label and swaps in the next comparison; undo takes the last label back and swaps its
comparison in again."""
from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect, reswap, retarget

from labeling import services
from labeling.errors import InstructionsUnread, InvalidInput, LabelingError
from labeling.label_types import Ranking, tiers_from_keys
from labeling.selectors import (
    LETTERS,
    assignment_for_display,
    labeler_queue_counts,
    project_get_for_labeler,
    projects_for_user,
)
from labeling.selectors.instructions import (
    instructions_current,
    instructions_is_acknowledged,
)
from labeling.views.qualification import answer_feedback_context, labeling_next_for_page


@require_GET
@login_required
def labeling_home(request: HttpRequest) -> HttpResponse:
    projects = list(projects_for_user(request.user))
    counts = labeler_queue_counts(user=request.user, project_ids=[p.id for p in projects])
    rows = [(p, counts[p.id]) for p in projects]
    return render(request, "labeling/home.html", {"projects": projects, "project_rows": rows})


# The 9-point scale of pairwise-confidence projects as shown: A and B are the samples in display order
# (labeling/label_types.PairwiseConfidence; the service maps a point to canonical order).
CONFIDENCE_SCALE = [
    (1, "A definitely better"), (2, "A better"), (3, "A somewhat better"), (4, "A slightly better"),
    (5, "About the same"),
    (6, "B slightly better"), (7, "B somewhat better"), (8, "B better"), (9, "B definitely better"),
]


# The 7-point ratings (labeling/label_types.LikertAxes), as the 2020 labelers saw them: 1 worst … 7 best.
LIKERT_POINTS = [1, 2, 3, 4, 5, 6, 7]


def _pair_context(request: HttpRequest, project, *, undo_label=None) -> dict:
    """What #pair shows: the next comparison, the counts, and (after a submit) the label Undo takes back."""
    # A qualifying labeler's next is a qualification item; a paused or revoked one gets the reason instead.
    assignment, trust = labeling_next_for_page(project=project, labeler=request.user)
    counts = labeler_queue_counts(user=request.user, project_ids=[project.id])[project.id]
    return {
        "project": project,
        "shown": assignment_for_display(assignment) if assignment else None,
        "today_count": counts.today,
        "remaining_count": counts.remaining,
        "letters": LETTERS[: project.k],
        "scale": CONFIDENCE_SCALE if project.label_type == project.LabelType.PAIRWISE_CONFIDENCE else None,
        "ranking": project.label_type == project.LabelType.RANKING,
        "likert_axes": project.likert_axes or [],
        "likert_points": LIKERT_POINTS,
        "undo_label": undo_label,
        "undo_seconds": getattr(settings, "LABELING_UNDO_SECONDS", 10),
        **trust,
    }


@require_GET
@login_required
def labeling_compare(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_get_for_labeler(slug=slug, user=request.user)
    instructions = instructions_current(project)
    needs_ack = instructions is not None and not instructions_is_acknowledged(
        instructions=instructions, user=request.user
    )
    if needs_ack:
        return render(request, "labeling/instructions_ack.html", {"project": project, "instructions": instructions})
    context = {**_pair_context(request, project), "instructions": instructions}
    template = "labeling/compare.html#pair" if request.htmx else "labeling/compare.html"
    return render(request, template, context)


def _int_or_none(raw: str | None, field: str) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"{field} must be a whole number.", field=field) from None


def _choice(raw: str | None, k: int) -> int | None:
    """A display position from the form: a number 1..K as shown on screen or a letter A..H."""
    if raw is None or raw == "":
        return None
    raw = raw.strip()
    if len(raw) == 1 and raw.upper() in LETTERS[:k]:
        return LETTERS.index(raw.upper())
    if raw.isdigit() and 1 <= int(raw) <= k:
        return int(raw) - 1
    raise InvalidInput(f"Unknown choice {raw[:20]!r}: pick 1–{k} or A–{LETTERS[k - 1]}.", field="choice")


def _answer_from_form(request: HttpRequest, project) -> services.LabelInput:
    k = project.k
    skipped = request.POST.get("skip") == "1"
    confidence = None
    position = None if skipped else _choice(request.POST.get("choice"), k)
    if project.label_type == project.LabelType.PAIRWISE_CONFIDENCE:
        # The scale point says the side too (1–4: A, 6–9: B; 5: A, the sample shown first, a random canonical one).
        confidence = _int_or_none(request.POST.get("confidence"), "confidence")
        if not skipped and position is None and confidence is not None:
            position = 0 if confidence <= 5 else 1
    ranking = None
    if project.label_type == project.LabelType.RANKING and not skipped and request.POST.get("ranking"):
        # The keys pressed, best first, "=" tying the next sample with the one before ("B=CAD"); the first pressed
        # is the choice (label_types.tiers_from_keys holds the page's rule).
        try:
            tiers = tiers_from_keys(request.POST["ranking"][:40], k)
        except ValueError as error:
            raise InvalidInput(str(error), field="ranking") from None
        ranking = Ranking.from_tiers(tiers, k)
        position = tiers[0][0] if position is None else position
    likert = None
    if project.likert_axes and not skipped:
        # One field per axis: the ratings of A, B, … as digits 1–7 ("64": A 6, B 4).
        raw = {axis: request.POST.get(f"likert-{axis}", "") for axis in project.likert_axes}
        if any(raw.values()):
            likert = {axis: [int(c) if c.isdigit() else 0 for c in value[:k]] for axis, value in raw.items()}
    flags = []
    flag_position = _choice(request.POST.get("flag_position"), k)
    if flag_position is not None:
        flags.append(
            services.FlagInput(
                position=flag_position,
                note=request.POST.get("flag_note", "")[:2000],
                suggested_correction=request.POST.get("flag_correction", "")[:20000],
            )
        )
    return services.LabelInput(
        position=position,
        duration_ms=_int_or_none(request.POST.get("duration_ms"), "duration_ms") or 0,
        unsure=request.POST.get("unsure") == "1",
        skipped=skipped,
        skip_reason=request.POST.get("skip_reason", "")[:2000],
        flags=flags,
        confidence=confidence,
        ranking=ranking,
        likert=likert,
        none_acceptable=request.POST.get("none_acceptable") == "1",
    )


@require_POST
@login_required
def labeling_submit(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_get_for_labeler(slug=slug, user=request.user)
    try:
        assignment_id = _int_or_none(request.POST.get("assignment"), "assignment")
        if assignment_id is None:
            raise InvalidInput("Missing assignment.", field="assignment")
        answer = _answer_from_form(request, project)
        label, _ = services.label_submit(assignment_id=assignment_id, labeler=request.user, answer=answer)
    except LabelingError as error:
        if request.htmx and isinstance(error, InstructionsUnread):
            # New instructions were published mid-session: off to read and acknowledge them (the lease is kept).
            return HttpResponseClientRedirect(reverse("labeling-compare", kwargs={"slug": project.slug}))
        response = render(request, "labeling/_notice.html", {"message": error.message, "level": "error"},
                          status=error.status_code)
        if request.htmx:
            # Keep the comparison on screen; show the message in the notice bar instead.
            response = reswap(retarget(response, "#notice"), "innerHTML")
        return response
    if not request.htmx:
        return redirect("labeling-compare", slug=project.slug)
    if label.feedback is not None:  # a qualification or gold item: the researchers' answer first, Enter continues
        return render(request, "labeling/_answer_feedback.html", answer_feedback_context(project, label.feedback))
    instructions = instructions_current(project)
    context = {**_pair_context(request, project, undo_label=label), "instructions": instructions, "oob_count": True}
    return render(request, "labeling/compare.html#pair", context)


@require_POST
@login_required
def labeling_undo(request: HttpRequest, slug: str) -> HttpResponse:
    """Take back the labeler's last label (services.label_undo) and show its comparison again; a refusal
    (too late, in a training snapshot, ...) keeps the page as it is and says why in the notice bar."""
    project = project_get_for_labeler(slug=slug, user=request.user)
    try:
        label_id = _int_or_none(request.POST.get("label"), "label")
        if label_id is None:
            raise InvalidInput("Missing label.", field="label")
        services.label_undo(project=project, label_id=label_id, labeler=request.user)
    except LabelingError as error:
        response = render(request, "labeling/_notice.html", {"message": error.message, "level": "error"},
                          status=error.status_code)
        return reswap(retarget(response, "#notice"), "innerHTML") if request.htmx else response
    if not request.htmx:
        return redirect("labeling-compare", slug=project.slug)
    context = {**_pair_context(request, project), "instructions": instructions_current(project), "oob_count": True}
    return render(request, "labeling/compare.html#pair", context)
