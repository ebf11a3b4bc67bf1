"""Pulling a run's andon cord from its page or the labeling page (anyone shown its samples)."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_POST

from labeling.errors import LabelingError
from training import selectors, services
from training.views.runs import _done, _error


@require_POST
@login_required
def training_andon_pull(request: HttpRequest, run_id: int) -> HttpResponse:
    run = selectors.run_get_for_user(run_id=run_id, user=request.user)
    try:
        services.andon_pull(run=run, user=request.user, reason=request.POST.get("reason", "")[:5000])
    except LabelingError as error:
        return _error(request, error)
    response = _done(request, run, f"Cord pulled: run {run.id} is stopping, and its samples left the queue.")
    if request.htmx:
        response["HX-Trigger"] = "andon-pulled"
    return response
