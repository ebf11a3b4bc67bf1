"""The runs page's "Over-optimisation sweep" section (researchers): each sweep's points against √KL, its chart
(a PNG), and the form that starts a sweep. The section loads into the runs page with htmx and is re-rendered
by the form's answer, its errors beside the field."""
from __future__ import annotations

import re

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from labeling.errors import LabelingError
from labeling.selectors import project_get_for_researcher
from training.charts import sweep_chart_png
from training.models import Round
from training.selectors.sweep import sweep_points, sweep_rounds
from training.services.sweep import MAX_BETAS, MIN_BETAS, sweep_betas_errors, sweep_start


class SweepStartForm(forms.Form):
    betas = forms.CharField(
        label="β values (KL coefficients)", max_length=200,
        help_text=f"{MIN_BETAS} to {MAX_BETAS} positive numbers, separated by commas or spaces, e.g. 0.01, 0.05, 0.2. "
                  "One PPO run per β against one reward model; each policy's samples are published against the base's.",
        widget=forms.TextInput(attrs={"placeholder": "0.01, 0.05, 0.2, 1", "autocomplete": "off"}))

    def clean_betas(self) -> list[float]:
        words = [w for w in re.split(r"[,\s]+", self.cleaned_data["betas"].strip()) if w]
        betas = []
        for word in words:
            try:
                betas.append(float(word))
            except ValueError:
                raise forms.ValidationError(f"{word!r} is not a number.") from None
        errors = sweep_betas_errors(betas)
        if errors:
            raise forms.ValidationError([e[0].upper() + e[1:] + "." for e in errors])
        return betas


def _section(request: HttpRequest, project, form: SweepStartForm | None = None, status: int = 200) -> HttpResponse:
    sweeps = [(rnd, sweep_points(rnd=rnd)) for rnd in sweep_rounds(project=project)]
    if form is not None and form.errors:  # back to the field to fix; a fresh section leaves the page's focus alone
        form.fields["betas"].widget.attrs["autofocus"] = True
    return render(request, "training/project_runs.html#sweep", {
        "project": project, "sweeps": sweeps, "can_start": request.user.has_perm("training.start_runs"),
        "sweep_form": form or SweepStartForm(),
    }, status=status)


@require_GET
@login_required
def training_sweep_section(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_get_for_researcher(slug=slug, user=request.user)
    return _section(request, project)


@require_POST
@login_required
def training_sweep_start(request: HttpRequest, slug: str) -> HttpResponse:
    """Start a sweep (services.sweep.sweep_start); a bad β list or a refused start shows beside the field."""
    project = project_get_for_researcher(slug=slug, user=request.user)
    form = SweepStartForm(request.POST)
    if not form.is_valid():
        return _section(request, project, form, status=400)
    try:
        sweep_start(project=project, user=request.user, betas=form.cleaned_data["betas"])
    except LabelingError as error:
        form.add_error("betas" if error.field == "betas" else None, error.message)
        return _section(request, project, form, status=error.status_code)
    if request.htmx:
        return _section(request, project)
    return redirect("training-project-runs", slug=project.slug)


@require_GET
@login_required
def training_sweep_chart(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    """A sweep round's win rate and reward-model score against √KL, as a PNG."""
    project = project_get_for_researcher(slug=slug, user=request.user)
    rnd = get_object_or_404(Round, project=project, number=number)
    if not rnd.sweep:
        raise Http404("That round is not a sweep.")
    response = HttpResponse(sweep_chart_png(sweep_points(rnd=rnd)), content_type="image/png")
    response["Cache-Control"] = "no-store"  # labels and metrics keep arriving
    return response
