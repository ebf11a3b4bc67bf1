"""What the training pages answer to an action: a notice (htmx) or the run's page, and a service's error."""
from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django_htmx.http import reswap, retarget

from labeling.errors import LabelingError
from training.models import TrainingRun


def error_notice(request: HttpRequest, error: LabelingError) -> HttpResponse:
    """The service's refusal as a notice with its HTTP status (htmx swaps it into #notice)."""
    response = render(request, "labeling/_notice.html", {"message": error.message, "level": "error"},
                      status=error.status_code)
    return reswap(retarget(response, "#notice"), "innerHTML") if request.htmx else response


def done_notice(request: HttpRequest, run: TrainingRun, message: str) -> HttpResponse:
    """A done action: its message for htmx, else the run's page."""
    if request.htmx:
        return render(request, "labeling/_notice.html", {"message": message, "level": "info"})
    return redirect("training-run-detail", run_id=run.id)
