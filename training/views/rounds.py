"""A project's rounds-and-runs page (researchers): start a round (the settings it will use, one-round
overrides), the demo's simulated labelers, win rates, the policies' leaderboard and sample-to-label latency."""
from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from labeling.csv_export import csv_response
from labeling.errors import LabelingError
from labeling.models import Query
from labeling.selectors import project_get_for_researcher
from labeling.services.demo import DEMO_SIMULATED_LABELS
from training import selectors, services
from training.forms import RoundStartForm
from training.services.rounds import round_configs
from training.services.settings import round_overrides_errors
from training.services.task import task_fill, task_of
from training.views.responses import error_notice


def round_preview(project) -> tuple[list[tuple[str, list[tuple[str, str]]]], str]:
    """The settings a round started now would use, per section (each run's config as it will store it, the
    task filled in), as (section, [(field, JSON value)]); or why they cannot be read."""
    try:
        configs = round_configs(project)
        task = configs["task"]
        sections = [("base_model", {"": configs["base_model"]}), ("seed", {"": configs["seed"]}),
                    ("task", task_of({}, task)),
                    *((name, task_fill(configs[name], task)) for name in ("reward", "ppo", "sample")),
                    *((f"{name} (product)", keys) for name, keys in configs["product"].items() if keys),
                    ("tripwires", configs["tripwires"])]
    except (TypeError, ValueError, AttributeError) as error:  # stored settings of the wrong shape
        return [], f"The project's training settings cannot be read: {error}"
    return [(name, [(key, json.dumps(value)) for key, value in values.items()]) for name, values in sections], ""


def _runs_page(request: HttpRequest, project, form: RoundStartForm | None = None, status: int = 200) -> HttpResponse:
    preview, preview_error = round_preview(project)
    latency = {row.round_id: row for row in selectors.round_label_latencies(project=project)}
    return render(request, "training/project_runs.html", {
        "project": project,
        "runs": selectors.runs_for_project(project)[:50],
        "rounds": [(r, latency.get(r.id)) for r in project.rounds.all()[:20]],
        "can_start": request.user.has_perm("training.start_runs"),
        "start_form": form or RoundStartForm(project_settings=project.training_settings),
        "preview": preview, "preview_error": preview_error,
        "demo_labels": DEMO_SIMULATED_LABELS,
        "win_rates": [(row[Query.Split.VALID], row[None]) for row in selectors.round_win_rate_table(project=project)],
        "leaderboard": selectors.project_leaderboard(project=project),
    }, status=status)


@require_GET
@login_required
def training_project_runs(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_get_for_researcher(slug=slug, user=request.user)
    return _runs_page(request, project)


@require_GET
@login_required
def training_win_rates_csv(request: HttpRequest, slug: str) -> HttpResponse:
    """Policy-versus-base win rate per round (selectors.round_win_rates), validation and all splits."""
    project = project_get_for_researcher(slug=slug, user=request.user)
    rows = selectors.win_rate_csv_rows(selectors.round_win_rate_table(project=project))
    return csv_response(filename=f"{project.slug}-win-rates.csv", header=selectors.WIN_RATE_CSV_HEADER, rows=rows)


@require_GET
@login_required
def training_leaderboard_csv(request: HttpRequest, slug: str) -> HttpResponse:
    """The leaderboard (selectors.project_leaderboard) as CSV: one row per policy, best first."""
    project = project_get_for_researcher(slug=slug, user=request.user)
    rows = selectors.leaderboard_csv_rows(selectors.project_leaderboard(project=project))
    return csv_response(filename=f"{project.slug}-leaderboard.csv", header=selectors.LEADERBOARD_CSV_HEADER, rows=rows)


@require_GET
@login_required
def training_leaderboard_json(request: HttpRequest, slug: str) -> HttpResponse:
    """The leaderboard as JSON, with how it was computed (scale, anchor, interval, pairs dropped)."""
    project = project_get_for_researcher(slug=slug, user=request.user)
    return JsonResponse(selectors.leaderboard_json(selectors.project_leaderboard(project=project)))


@require_POST
@login_required
def training_round_start(request: HttpRequest, slug: str) -> HttpResponse:
    """Start a round with the project's settings and this round's overrides (the common fields and a JSON
    box), checked as the settings page checks them: any error shows beside its field and starts nothing."""
    project = project_get_for_researcher(slug=slug, user=request.user)
    form = RoundStartForm(request.POST, project_settings=project.training_settings)
    if not form.is_valid():
        return _runs_page(request, project, form, status=400)
    overrides = form.cleaned_data["overrides"]
    errors = round_overrides_errors(project=project, overrides=overrides)
    if errors:
        form.show_errors(errors)
        return _runs_page(request, project, form, status=400)
    try:
        rnd = services.round_start(project=project, user=request.user, overrides=overrides or None)
    except LabelingError as error:
        if request.htmx:
            return error_notice(request, error)
        form.add_error(None, error.message)
        return _runs_page(request, project, form, status=error.status_code)
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
