"""The researchers' "Labelers: qualification and gold" page of a project: its settings, the
qualification set and the gold comparisons (with notes), and every labeler's standing (attempts,
gold accuracy with its Wilson interval) with admit / revoke / resume / send-back actions and a reason.
The rules are labeling/services/qualification.py. Researchers only: contractors get 403."""
from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from labeling import services
from labeling.errors import InvalidInput, LabelingError, NotFound
from labeling.models import Assignment, Project
from labeling.selectors import LETTERS, project_get_for_researcher
from labeling.selectors.qualification import labeler_standing_get, project_standings, project_trust_items
from labeling.services.qualification import (
    ACTIONS,
    AnswerFeedback,
    gold_mark,
    gold_mark_share,
    qualification_item_add,
    qualification_next,
    qualification_progress,
    standing_act,
)


def labeling_next_for_page(*, project: Project, labeler) -> tuple[Assignment | None, dict]:
    """For the labeling page (views/serving.py): the item to show by the labeler's standing (one query),
    a qualification item while they qualify, and what the page says when it shows none."""
    standing = labeler_standing_get(project=project, labeler=labeler)
    if standing.qualifying:
        assignment = qualification_next(project=project, labeler=labeler)
        return assignment, {"qualification": qualification_progress(project=project, labeler=labeler),
                            "standing": standing, "standing_blocked": assignment is None}
    if not standing.admitted:
        return None, {"standing": standing, "standing_blocked": True}
    return services.comparison_next_for_labeler(project=project, labeler=labeler, standing=standing), {}


def answer_feedback_context(project: Project, feedback: AnswerFeedback) -> dict:
    """What the page shows after a qualification or gold item: both answers as the letters the labeler saw."""
    chosen = feedback.chosen_position
    return {"project": project, "feedback": feedback, "researchers_letter": LETTERS[feedback.researchers_position],
            "chosen_letter": "" if chosen is None else LETTERS[chosen]}


class TrustSettingsForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = ["qualification_required", "qualification_threshold", "qualification_items", "gold_share",
                  "gold_feedback", "gold_accuracy_threshold", "gold_window"]


def _page(request: HttpRequest, project: Project, *, form: TrustSettingsForm | None = None, errors: dict | None = None,
          posted: dict | None = None, status: int = 200) -> HttpResponse:
    standings = project_standings(project=project)
    errors = errors or {}
    # A standing action's error shows in its row, or under the "another labeler" form.
    errors["standing_in_table"] = any(r.username == errors.get("standing_user") for r in standings)
    return render(request, "labeling/qualification.html", {
        "project": project, "form": form or TrustSettingsForm(instance=project), "errors": errors,
        "posted": posted or {}, "items": project_trust_items(project=project), "standings": standings,
        "actions": list(ACTIONS),
    }, status=status)


@require_GET
@login_required
def labeling_qualification(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_get_for_researcher(slug=slug, user=request.user)
    return _page(request, project)


@require_POST
@login_required
def labeling_qualification_settings(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_get_for_researcher(slug=slug, user=request.user)
    form = TrustSettingsForm(request.POST, instance=project)
    if not form.is_valid():
        project.refresh_from_db()
        return _page(request, project, form=form, status=400)
    form.save()
    return redirect("labeling-qualification", slug=project.slug)


def _comparison_id(raw: str) -> int:
    if not raw.strip().isdigit() or len(raw.strip()) > 12:
        raise InvalidInput("Give a comparison number.", field="comparison")
    return int(raw.strip())


@require_POST
@login_required
def labeling_qualification_item_add(request: HttpRequest, slug: str) -> HttpResponse:
    """Add a researcher-answered comparison to the qualification set (a copy) or mark it gold, with a note."""
    project = project_get_for_researcher(slug=slug, user=request.user)
    use, note = request.POST.get("use", ""), request.POST.get("note", "")[:2000]
    try:
        comparison_id = _comparison_id(request.POST.get("comparison", ""))
        if use == "qualification":
            qualification_item_add(project=project, comparison_id=comparison_id, note=note, by=request.user)
        elif use == "gold":
            gold_mark(project=project, comparison_id=comparison_id, note=note, by=request.user)
        else:
            raise InvalidInput("Choose qualification or gold.", field="use")
    except LabelingError as error:
        status = 400 if isinstance(error, NotFound) else error.status_code
        return _page(request, project, errors={"item": error.message}, posted=request.POST, status=status)
    return redirect("labeling-qualification", slug=project.slug)


@require_POST
@login_required
def labeling_qualification_gold_share(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_get_for_researcher(slug=slug, user=request.user)
    gold_mark_share(project=project, by=request.user)
    return redirect("labeling-qualification", slug=project.slug)


@require_POST
@login_required
def labeling_qualification_standing(request: HttpRequest, slug: str) -> HttpResponse:
    """Admit, revoke, resume or send back a labeler (by username), with a reason that is kept."""
    project = project_get_for_researcher(slug=slug, user=request.user)
    username = request.POST.get("username", "").strip()
    try:
        labeler = get_user_model().objects.filter(username=username).first()
        if labeler is None:
            raise InvalidInput(f"No labeler {username[:150]!r}.", field="username")
        standing_act(project=project, labeler=labeler, action=request.POST.get("action", ""),
                     reason=request.POST.get("reason", "")[:2000], by=request.user)
    except LabelingError as error:
        return _page(request, project, errors={"standing": error.message, "standing_user": username},
                     posted=request.POST, status=error.status_code)
    return redirect("labeling-qualification", slug=project.slug)
