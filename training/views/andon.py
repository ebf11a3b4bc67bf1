"""Pulling the andon cord from a run's page, or from the labeling page on the comparison shown (anyone shown
its samples), and an admin's resolution of a pull (confirmed or dismissed, with a reason)."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_POST

from labeling.errors import LabelingError
from training import selectors, services
from training.models import AndonPull
from training.views.responses import done_notice, error_notice


def _pulled(request: HttpRequest, pull: AndonPull) -> HttpResponse:
    what = f"checkpoint {pull.source} of run {pull.run_id}" if pull.source else f"run {pull.run_id}"
    message = (f"Cord pulled on {what}: {pull.withdrawn.count()} comparisons left the queue and "
               f"{pull.stopped.count()} runs are stopping. An admin reviews the pull.")
    response = done_notice(request, pull.run, message)
    if request.htmx:
        response["HX-Trigger"] = "andon-pulled"
    return response


@require_POST
@login_required
def training_andon_pull(request: HttpRequest, run_id: int) -> HttpResponse:
    run = selectors.run_get_for_user(run_id=run_id, user=request.user)
    try:
        pull = services.andon_pull(run=run, user=request.user, reason=request.POST.get("reason", "")[:5000])
    except LabelingError as error:
        return error_notice(request, error)
    return _pulled(request, pull)


@require_POST
@login_required
def training_andon_pull_comparison(request: HttpRequest, comparison_id: int) -> HttpResponse:
    """The labeling page's cord: stops the policy (checkpoint) that wrote the comparison the labeler was shown."""
    comparison = selectors.comparison_get_for_puller(comparison_id=comparison_id, user=request.user)
    try:
        pull = services.andon_pull_comparison(comparison=comparison, user=request.user,
                                              reason=request.POST.get("reason", "")[:5000])
    except LabelingError as error:
        return error_notice(request, error)
    return _pulled(request, pull)


@require_POST
@login_required
def training_andon_resolve(request: HttpRequest, pull_id: int) -> HttpResponse:
    """Admin: confirm (quarantine kept, labels optionally left out of reward fits) or dismiss a pull."""
    pull = AndonPull.objects.select_related("run").filter(id=pull_id).first()
    if pull is None or not request.user.has_perm("training.manage_runs"):
        raise Http404("No such pull.")
    resolution = request.POST.get("resolution", "")
    try:
        services.andon_resolve(pull=pull, user=request.user, resolution=resolution,
                               note=request.POST.get("note", "")[:5000],
                               exclude_labels=request.POST.get("exclude_labels") == "1")
    except LabelingError as error:
        return error_notice(request, error)
    if resolution == AndonPull.Resolution.DISMISSED:
        message = f"Pull {pull.id} dismissed: its comparisons are back in the queue; stopped runs may be resumed."
    else:
        message = f"Pull {pull.id} confirmed: the policy of run {pull.run_id} stays quarantined."
    return done_notice(request, pull.run, message)
