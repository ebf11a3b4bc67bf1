"""A project's rounds-and-runs page (researchers): start a round, the demo's simulated labelers, win rates."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from labeling.csv_export import csv_response
from labeling.errors import LabelingError
from labeling.models import Query
from labeling.selectors import project_get_for_researcher
from labeling.services.demo import DEMO_SIMULATED_LABELS
from training import selectors, services
from training.views.responses import error_notice


@require_GET
@login_required
def training_project_runs(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_get_for_researcher(slug=slug, user=request.user)
    return render(request, "training/project_runs.html", {
        "project": project,
        "runs": selectors.runs_for_project(project)[:50],
        "rounds": project.rounds.all()[:20],
        "can_start": request.user.has_perm("training.start_runs"),
        "demo_labels": DEMO_SIMULATED_LABELS,
        "win_rates": [(row[Query.Split.VALID], row[None]) for row in selectors.round_win_rate_table(project=project)],
    })


@require_GET
@login_required
def training_win_rates_csv(request: HttpRequest, slug: str) -> HttpResponse:
    """Policy-versus-base win rate per round (selectors.round_win_rates), validation and all splits."""
    project = project_get_for_researcher(slug=slug, user=request.user)
    rows = selectors.win_rate_csv_rows(selectors.round_win_rate_table(project=project))
    return csv_response(filename=f"{project.slug}-win-rates.csv", header=selectors.WIN_RATE_CSV_HEADER, rows=rows)


@require_POST
@login_required
def training_round_start(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_get_for_researcher(slug=slug, user=request.user)
    try:
        rnd = services.round_start(project=project, user=request.user)
    except LabelingError as error:
        return error_notice(request, error)
    first = rnd.runs.order_by("id").first()
    return redirect("training-run-detail", run_id=first.id)


@require_POST
@login_required
def training_demo_autolabel(request: HttpRequest, slug: str) -> HttpResponse:
    """Demo helper: simulated labelers label a batch in the background, so a round can start
    without 40 keypresses."""
    from labeling.services.demo import demo_autolabel_start

    project = project_get_for_researcher(slug=slug, user=request.user)
    if not request.user.has_perm("training.start_runs"):
        raise Http404("No such project.")
    spec = demo_autolabel_start(project=project, n=DEMO_SIMULATED_LABELS)
    message = (f"{spec.count} simulated {spec.kind} labelers (sim-{spec.kind}-1…) are labeling "
               f"{DEMO_SIMULATED_LABELS} comparisons in the background.")
    return render(request, "labeling/_notice.html", {"message": message, "level": "info"})
