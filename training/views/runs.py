"""A run's page (polled while it runs), the admins' actions on it, checkpoint downloads and its plots."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from labeling.errors import LabelingError
from training import selectors, services
from training.charts import line_chart
from training.models import AndonPull, Checkpoint, TrainingRun
from training.views.responses import done_notice, error_notice


def _run_context(request: HttpRequest, run: TrainingRun) -> dict:
    series = selectors.run_metric_series(run, selectors.CHART_KEYS)
    return {
        "run": run,
        "charts": [line_chart(key, series[key]) for key in selectors.CHART_KEYS if key in series],
        "latest": selectors.run_latest_metrics(run),
        "checkpoints": selectors.run_checkpoints(run),
        "audit": selectors.run_audit_log(run),
        "can_pull": services.andon_can_pull(run=run, user=request.user),
        "can_manage": request.user.has_perm("training.manage_runs"),
        "progress_pct": round(run.progress * 100),
        "report": selectors.run_report(run),
        "reward_data": selectors.run_reward_data(run),
        "quarantine": selectors.run_quarantine(run.id),
        "open_pull": run.andon_pulls.filter(resolution=AndonPull.Resolution.OPEN).first(),
        "stopping_pulls": selectors.run_stopping_pulls(run),
        # How long the worker has been silent: a dead worker shows here long before the reaper acts.
        "heartbeat_age_s": round((timezone.now() - run.heartbeat_at).total_seconds()) if run.heartbeat_at else None,
    }


@require_GET
@login_required
def training_run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = selectors.run_get_for_user(run_id=run_id, user=request.user)
    context = _run_context(request, run)
    if request.htmx:
        response = render(request, "training/run_detail.html#run-status", context)
        # The poll ends with the run: 286 makes htmx stop (after this last swap).
        return HttpResponseStopPolling(response.content) if not run.is_active else response
    context["samples"] = selectors.run_samples_side_by_side(run)
    return render(request, "training/run_detail.html", context)


@require_POST
@login_required
def training_run_action(request: HttpRequest, run_id: int, action: str) -> HttpResponse:
    run = selectors.run_get_for_user(run_id=run_id, user=request.user)
    note = request.POST.get("note", "")[:5000]
    try:
        if action == "resume":
            services.andon_resume(run=run, user=request.user, note=note)
            message = f"Run {run.id} resumes from its last checkpoint."
        elif action == "abort":
            services.andon_abort(run=run, user=request.user, note=note)
            message = f"Run {run.id} is aborted."
        elif action == "escalate":
            message = services.andon_escalate(run=run, user=request.user)
        else:
            raise Http404("No such action.")
    except LabelingError as error:
        return error_notice(request, error)
    return done_notice(request, run, message)


@require_GET
@login_required
def training_checkpoint_download(request: HttpRequest, checkpoint_id: int) -> HttpResponse:
    """A zip of the checkpoint folder (researchers and admins; the folder must lie under ARTIFACTS_DIR)."""
    if not selectors.user_sees_all_runs(request.user):
        raise Http404("No such checkpoint.")
    checkpoint = Checkpoint.objects.filter(id=checkpoint_id).first()
    if checkpoint is None:
        raise Http404("No such checkpoint.")
    pull = selectors.run_quarantine(checkpoint.run_id)
    if pull is not None:  # a quarantined checkpoint is not handed out, e.g. as another trainer's base
        return HttpResponse(f"Checkpoint {checkpoint.name} is quarantined by andon pull {pull.id} until an admin "
                            "dismisses it.", status=409, content_type="text/plain")
    folder = Path(checkpoint.path).resolve()
    root = Path(settings.ARTIFACTS_DIR).resolve()
    if root not in folder.parents or not folder.is_dir():
        raise Http404("Checkpoint files are not on this server.")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            archive.write(path, path.relative_to(folder))
    buffer.seek(0)
    return FileResponse(buffer, as_attachment=True, filename=f"{checkpoint.name}.zip")


@require_GET
@login_required
def training_run_plot(request: HttpRequest, run_id: int, name: str) -> HttpResponse:
    """A PNG plot the experiment recorded for this run (researchers and admins); its path comes from the database."""
    if not selectors.user_sees_all_runs(request.user):
        raise Http404("No such plot.")
    run = TrainingRun.objects.filter(id=run_id).first()
    path = selectors.run_plot_path(run, name) if run is not None else None
    if path is None:
        raise Http404("No such plot.")
    return FileResponse(path.open("rb"), content_type="image/png")
